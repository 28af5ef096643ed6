//! `cargo xtask gate [--baseline FILE] [--results FILE] [--only PREFIX]
//! [--alpha P] [--min-effect F|N%] [--confirm N] [--allow-missing]
//! [--cross-host] [--format md|json]`: compares results (default
//! `target/bench/results.json`) with the committed baseline (default
//! `bench/baseline.json`), prints the verdict (Markdown, or JSON with
//! `--format json`) and exits 1 on a regression beyond noise (rules in
//! `reports::gate`), 3 when the hosts differ and timings were therefore not
//! judged (unless `--cross-host`), 2 on bad usage or unreadable files.
//!
//! `cargo xtask gate --demo [--runs N] [--baseline FILE]` shows the gate is
//! trustworthy, per gated family (the port check, an accountant operation,
//! a hypervisor ratio): it runs that family's benchmark N times (default 20)
//! as an A/A test against the baseline (`--baseline`, else the committed
//! `bench/baseline.json`, else a fresh run of the same build), then N times
//! with an injected slowdown of 10 %, or twice the family's minimum effect
//! where that is larger (`IOACCT_INJECT_PORT_CHECK_SLOWDOWN`,
//! `IOACCT_INJECT_OP_SLOWDOWN=grant:P`: time the bench harness adds inside
//! each timed batch, the accountant untouched; `IOACCT_INJECT_HV_SLOWDOWN`:
//! a busy wait of P % of each timed hypervisor step's own duration, its
//! KVM floor untouched), and prints per family
//! how many A/A runs raised an alarm and how many injected runs were caught.
//! A family without a knob in this build is listed as not demonstrated. It
//! exits 0 only if no A/A run alarmed and at least 95 % of the injected runs
//! were caught (19 of 20 by default) in every demonstrated family. With
//! `--confirm N` an alarmed run is confirmed as the gate confirms (N fresh
//! runs of the family; the alarm stands only if it reproduces in each), and
//! both the first-pass and the confirmed A/A alarms are printed. With
//! `--only PREFIX` it runs only the families whose metric starts with
//! PREFIX (`--only hv.`).
//!
//! `cargo xtask gate --make-baseline [--runs N] [--out FILE]` runs the quick
//! benchmark N times (default and minimum 6) and writes the first run as the
//! baseline (default `bench/baseline.json`), each timing annotated with its
//! measured between-run noise: the median absolute deviation of the runs'
//! relative median within-run samples, scaled to a standard deviation
//! (`reports::stats::mad_sigma`), so one disturbed run cannot widen it.
use crate::benchbin::{BenchBin, BenchRun, INJECT_KNOBS};
use crate::judge::{print_report, Format, JudgeArgs};
use crate::report;
use reports::gate::{compare, GateConfig, GateReport, Verdict};
use reports::{MetricName, Results};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Fewest runs a baseline's noise estimate is made from.
const MIN_BASELINE_RUNS: usize = 6;

/// Percent: a slowdown of every timed port-check batch (bench harness).
const INJECT_ENV: &str = INJECT_KNOBS[0];
/// `OP:PERCENT`: a slowdown of one range operation (bench harness).
const INJECT_OP_ENV: &str = INJECT_KNOBS[1];
/// Percent: a slowdown of every timed hypervisor step of the paired hv
/// workloads (`hv::workloads::inject`).
const INJECT_HV_ENV: &str = INJECT_KNOBS[2];

/// How to slow a family by a percentage: the environment variable and value.
type Knob = fn(f64) -> (&'static str, String);

/// A gated family the demonstration injects a slowdown into: what it is,
/// the metric, and how to slow it by a percentage (`None`: this build has
/// no knob for it).
struct DemoFamily {
    what: &'static str,
    metric: MetricName,
    knob: Option<Knob>,
}

const DEMO_FAMILIES: [DemoFamily; 3] = [
    DemoFamily {
        what: "port check",
        metric: MetricName::PortCheck,
        knob: Some(|pct| (INJECT_ENV, format!("{pct}"))),
    },
    DemoFamily {
        what: "accountant op (grant)",
        metric: MetricName::Grant,
        knob: Some(|pct| (INJECT_OP_ENV, format!("grant:{pct}"))),
    },
    DemoFamily {
        what: "hv ratio (bind over floor)",
        metric: MetricName::BindOverFloor,
        knob: Some(|pct| (INJECT_HV_ENV, format!("{pct}"))),
    },
];

/// `cargo xtask gate`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Exit status: 0 pass (also after confirmation), 1 a regression (or a failed demo), 2 bad usage or unreadable files, 3 timings not judged: the baseline's host differs (CPU model, vendor, virtualization, kernel, CPU count) and --cross-host was not given."
)]
pub struct Args {
    /// The baseline results file [default: bench/baseline.json]; with --demo, the A/A reference.
    #[arg(long, value_name = "FILE")]
    baseline: Option<PathBuf>,
    /// The results file to judge [default: target/bench/results.json].
    #[arg(long, value_name = "FILE", conflicts_with_all = ["demo", "make_baseline"])]
    results: Option<PathBuf>,
    /// Judge only the metrics whose name starts with PREFIX; with --demo, run only the families whose metric does.
    #[arg(long, value_name = "PREFIX")]
    only: Option<String>,
    #[command(flatten)]
    judge: JudgeArgs,
    /// Re-measure each regressed timing N times (0 to 5) in fresh runs of its family; fail only if it reproduces every time (with --demo, every alarmed run) [default: 1; 0 with --demo].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(0..=5))]
    confirm: Option<u8>,
    /// Do not fail on a baseline metric the results lack (a host without /dev/kvm).
    #[arg(long)]
    allow_missing: bool,
    /// Judge timings even when the baseline was measured on another host.
    #[arg(long)]
    cross_host: bool,
    /// Judge only exact counts, within-run invariants and missing metrics; list timings (cheap, any host: CI's check of the quick results).
    #[arg(long, conflicts_with_all = ["demo", "make_baseline", "cross_host"])]
    counts_only: bool,
    /// Show the gate is trustworthy, per gated family: N A/A runs and N runs with an injected slowdown.
    #[arg(long, conflicts_with = "make_baseline")]
    demo: bool,
    /// Run the quick benchmark N times (at least 6) and write the first run, annotated with its robust noise, as the baseline.
    #[arg(long)]
    make_baseline: bool,
    /// With --make-baseline: where to write it [default: bench/baseline.json].
    #[arg(long, value_name = "FILE", requires = "make_baseline")]
    out: Option<PathBuf>,
    /// With --demo or --make-baseline: how many runs (1 to 1000) [default: 20 for --demo, 6 for --make-baseline].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1000))]
    runs: Option<u16>,
}

struct Opts {
    baseline: Option<PathBuf>,
    results: Option<PathBuf>,
    only: Option<String>,
    cfg: GateConfig,
    demo: bool,
    make_baseline: bool,
    out: Option<PathBuf>,
    runs: Option<usize>,
    confirm: usize,
    format: Format,
}

/// Runs the task.
pub fn run(args: Args) -> ExitCode {
    let mut cfg = args.judge.config();
    cfg.allow_missing = args.allow_missing;
    cfg.cross_host = args.cross_host;
    cfg.counts_only = args.counts_only;
    let a = Opts {
        baseline: args.baseline,
        results: args.results,
        only: args.only,
        cfg,
        demo: args.demo,
        make_baseline: args.make_baseline,
        out: args.out,
        runs: args.runs.map(usize::from),
        // One fresh run of an alarmed family (seconds) tells a shift of the
        // code from a burst of load on a shared host; the demo counts
        // first-pass alarms unless asked to confirm.
        confirm: usize::from(args.confirm.unwrap_or(if args.demo { 0 } else { 1 })),
        format: args.judge.format,
    };
    if a.demo {
        return demo(&a);
    }
    if a.make_baseline {
        return make_baseline(&a);
    }
    let root = report::root();
    let baseline = a
        .baseline
        .clone()
        .unwrap_or_else(|| root.join("bench/baseline.json"));
    let results = a
        .results
        .clone()
        .unwrap_or_else(|| root.join("target/bench/results.json"));
    let (b, r) = match (Results::load(&baseline), Results::load(&results)) {
        (Ok(b), Ok(r)) => (b, r),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("xtask gate: {e}");
            return ExitCode::from(2);
        }
    };
    let mut g = compare(&b, &r, &a.cfg, a.only.as_deref());
    if !g.timing_regressions().is_empty() && (g.host_mismatch.is_empty() || a.cfg.cross_host) {
        confirm(&root, &b, &a, &mut g);
    }
    print_report(&g, a.format);
    ExitCode::from(g.outcome().exit_code())
}

/// With `--confirm N`: re-measures each metric family with a timing
/// regression N times in fresh runs of the bench (`--only NAME`) and keeps a
/// regression only if it reproduces in every one. A false alarm then needs
/// N + 1 independent unlucky runs; a real regression shows every time. A
/// cleared alarm becomes layout noise when its operation's instruction
/// count is unchanged, else "not reproduced". Progress goes to stderr; the
/// verdict is printed once, after confirmation.
fn confirm(root: &Path, base: &Results, a: &Opts, g: &mut GateReport) {
    if a.confirm == 0 {
        return;
    }
    let dir = root.join("target/bench/confirm");
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("xtask gate: {}: {e}", dir.display());
        return;
    }
    let bin = built(root);
    let rounds = a.confirm;
    reports::gate::confirm(g, rounds, "of the alarmed families", |round, i, name| {
        eprintln!("gate: confirmation run {round} of {rounds}: {name}");
        let out = dir.join(format!("round{round}-{i}.json"));
        // The injection knobs (for testing the gate itself) carry over.
        let inject: Vec<(String, String)> = INJECT_KNOBS
            .iter()
            .filter_map(|k| std::env::var(k).ok().map(|v| ((*k).to_owned(), v)))
            .collect();
        let fresh = bin
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|b| bench_once(b, &out, &inject, Some(name)))
            .map_err(|e| {
                format!("Confirmation of `{name}` failed ({e}): its regressions stand.")
            })?;
        Ok(compare(base, &fresh, &a.cfg, Some(name)))
    });
}

/// Runs the quick benchmark once into `out` (only the metrics starting with
/// `only`, when given), with the injected slowdown when `inject` is set.
fn bench_once(
    bin: &BenchBin,
    out: &Path,
    inject: &[(String, String)],
    only: Option<&str>,
) -> Result<Results, String> {
    let run = BenchRun {
        quick: true,
        only,
        env: inject,
        ..BenchRun::default()
    };
    bin.run(&run, out)
}

/// The working tree's bench binary, built once for a series of runs.
fn built(root: &Path) -> Result<BenchBin, String> {
    eprintln!("xtask gate: building ioacct-bench (release) ...");
    BenchBin::of_workspace(root, true)
}

fn demo(a: &Opts) -> ExitCode {
    let root = report::root();
    let dir = root.join("target/bench/demo");
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("xtask gate: {}: {e}", dir.display());
        return ExitCode::from(2);
    }
    let committed = root.join("bench/baseline.json");
    let bin = match built(&root) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("xtask gate: {e}");
            return ExitCode::from(2);
        }
    };
    let runs = a.runs.unwrap_or(20);
    let want = (runs * 19).div_ceil(20);
    let mut summary = Vec::new();
    let mut rows = Vec::new();
    let mut ok = true;
    for fam in &DEMO_FAMILIES {
        let name = fam.metric.as_str();
        if let Some(o) = a.only.as_deref().filter(|o| !name.starts_with(o)) {
            summary.push(format!(
                "| {} | `{name}` | – | not run: `--only {o}` | – |",
                fam.what
            ));
            continue;
        }
        let Some(knob) = fam.knob else {
            summary.push(format!(
                "| {} | `{name}` | – | not demonstrated: this build has no injection knob for it | – |",
                fam.what
            ));
            continue;
        };
        let baseline = match &a.baseline {
            Some(p) => Results::load(p).map_err(|e| e.to_string()),
            None if committed.exists() => Results::load(&committed).map_err(|e| e.to_string()),
            None => {
                eprintln!("gate demo: no committed baseline; baseline run (same build) ...");
                bench_once(&bin, &dir.join("baseline.json"), &[], Some(name))
            }
        };
        let baseline = match baseline {
            Ok(b) => b,
            Err(e) => {
                eprintln!("xtask gate: {e}");
                return ExitCode::from(2);
            }
        };
        if !baseline.metrics.iter().any(|m| m.is(fam.metric)) {
            summary.push(format!(
                "| {} | `{name}` | – | not demonstrated: the baseline has no `{name}` | – |",
                fam.what
            ));
            continue;
        }
        // 10 %, or twice the family's minimum effect where that is larger.
        let effect = baseline
            .metrics
            .iter()
            .filter(|m| m.is(fam.metric))
            .map(|m| a.cfg.effect_for(&m.name, m.value))
            .fold(0.0, f64::max);
        let pct = (10.0f64).max((200.0 * effect).round());
        let (mut alarms, mut caught, mut first_alarms) = (0usize, 0usize, 0usize);
        for injected in [false, true] {
            let label = if injected {
                format!("+{pct:.0} %")
            } else {
                "A/A".to_owned()
            };
            for i in 0..runs {
                eprintln!("gate demo: {} {label} run {}/{runs} ...", fam.what, i + 1);
                let out = dir.join(format!(
                    "{}-{}-{i:02}.json",
                    name,
                    if injected { "inj" } else { "aa" }
                ));
                let env: Vec<(String, String)> = if injected {
                    let (k, v) = knob(pct);
                    vec![(k.to_owned(), v)]
                } else {
                    vec![]
                };
                let r = match bench_once(&bin, &out, &env, Some(name)) {
                    Ok(r) => r,
                    Err(e) => {
                        eprintln!("xtask gate: {e}");
                        return ExitCode::from(2);
                    }
                };
                let mut g = compare(&baseline, &r, &a.cfg, Some(name));
                let first = g.failed();
                if first && !injected {
                    first_alarms += 1;
                }
                // As the gate confirms: a fresh run of the family, the
                // alarm standing only where it reproduces every time.
                let mut failing = g.timing_regressions();
                let mut confirmed = 0;
                while confirmed < a.confirm && !failing.is_empty() {
                    confirmed += 1;
                    let out = dir.join(format!(
                        "{}-{}-{i:02}-confirm{confirmed}.json",
                        name,
                        if injected { "inj" } else { "aa" }
                    ));
                    let again = match bench_once(&bin, &out, &env, Some(name)) {
                        Ok(r) => compare(&baseline, &r, &a.cfg, Some(name)),
                        Err(e) => {
                            eprintln!("xtask gate: {e}");
                            return ExitCode::from(2);
                        }
                    };
                    failing.retain(|k| {
                        !again.findings.iter().any(|f| {
                            &f.key == k && matches!(f.verdict, Verdict::Same | Verdict::Improvement)
                        })
                    });
                }
                if confirmed > 0 {
                    g.confirmations = confirmed;
                    g.settle(&failing, "of the family");
                }
                let worst = g
                    .findings
                    .iter()
                    .filter(|f| f.p.is_some())
                    .filter_map(|f| f.ratio)
                    .fold(f64::NAN, f64::max);
                match (g.failed(), injected) {
                    (true, true) => caught += 1,
                    (true, false) => alarms += 1,
                    _ => {}
                }
                let verdict = match (first, g.failed()) {
                    (_, true) => "ALARM",
                    (true, false) => "pass after confirmation",
                    (false, false) => "pass",
                };
                rows.push(format!(
                    "| {} | {label} | {} | {verdict} | {} | {worst:.3} |",
                    fam.what,
                    i + 1,
                    g.regressions(),
                ));
            }
        }
        let fam_ok = alarms == 0 && caught >= want;
        ok &= fam_ok;
        let aa = if a.confirm > 0 {
            format!("{alarms}/{runs} alarmed after confirmation, {first_alarms}/{runs} on the first pass")
        } else {
            format!("{alarms}/{runs} alarmed")
        };
        summary.push(format!(
            "| {} | `{name}` | +{pct:.0} % | A/A: {aa} (want 0); injected: caught {caught}/{runs} (want ≥ {want}/{runs}) | {} |",
            fam.what,
            if fam_ok { "pass" } else { "FAIL" }
        ));
    }
    println!(
        "## Gate demonstration: {}\n\nPer gated family: {runs} A/A runs against the baseline, then \
         {runs} runs with an injected slowdown of that family (10 %, or twice its minimum effect \
         where that is larger). Gate: one-sided Mann-Whitney p < {} and the family's minimum \
         effect, on within-run samples; {}.\n\n\
         | family | metric | injected | alarms | verdict |\n|---|---|---:|---|---|\n{}\n\n{}",
        if ok { "pass" } else { "FAIL" },
        a.cfg.alpha,
        match a.confirm {
            0 => "no confirmation (`--confirm N` re-runs an alarmed family N times)".to_owned(),
            n => format!("an alarm stands only if it reproduces in {n} fresh run(s) of the family (`--confirm {n}`)"),
        },
        summary.join("\n"),
        reports::gate::Details {
            summary: "Every run",
            body: &format!(
                "| family | run kind | # | verdict | regressions | worst judged ratio |\n\
                 |---|---|---:|---|---:|---:|\n{}\n",
                rows.join("\n")
            ),
        },
    );
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Runs the quick benchmark several times and writes the first run,
/// annotated with each timing's between-run noise, as the baseline.
fn make_baseline(a: &Opts) -> ExitCode {
    let root = report::root();
    let runs = a.runs.unwrap_or(MIN_BASELINE_RUNS);
    if runs < MIN_BASELINE_RUNS {
        eprintln!("xtask gate: --make-baseline needs at least {MIN_BASELINE_RUNS} runs for a robust noise estimate");
        return ExitCode::from(2);
    }
    let dir = root.join("target/bench/baseline-runs");
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("xtask gate: {}: {e}", dir.display());
        return ExitCode::from(2);
    }
    // Built once and copied: an edit of the tree while the runs go on
    // cannot change what they measure.
    let bin = match built(&root) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("xtask gate: {e}");
            return ExitCode::from(2);
        }
    };
    let mut all = Vec::new();
    for i in 0..runs {
        eprintln!("make-baseline: run {}/{runs} ...", i + 1);
        match bench_once(&bin, &dir.join(format!("run-{i:02}.json")), &[], None) {
            Ok(r) => all.push(r),
            Err(e) => {
                eprintln!("xtask gate: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let mut base = all[0].clone();
    let cfg = GateConfig::default();
    for m in &mut base.metrics {
        if cfg.test_samples(m).is_none() {
            continue;
        }
        let key = m.key();
        let medians: Vec<f64> = all
            .iter()
            .filter_map(|r| r.metrics.iter().find(|x| x.key() == key))
            .filter_map(|x| cfg.test_samples(x).and_then(reports::stats::median))
            .collect();
        if medians.len() < MIN_BASELINE_RUNS {
            continue;
        }
        let Some(center) = reports::stats::median(&medians).filter(|c| *c > 0.0) else {
            continue;
        };
        let rel: Vec<f64> = medians.iter().map(|v| v / center).collect();
        if let Some(noise) = reports::stats::mad_sigma(&rel) {
            m.noise = Some((noise * 10_000.0).round() / 10_000.0);
        }
    }
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| root.join("bench/baseline.json"));
    if let Err(e) = std::fs::write(&out, base.to_json()) {
        eprintln!("xtask gate: {}: {e}", out.display());
        return ExitCode::FAILURE;
    }
    let mut noisy: Vec<(f64, String)> = base
        .metrics
        .iter()
        .filter_map(|m| m.noise.map(|n| (n, m.key())))
        .collect();
    noisy.sort_by(|x, y| y.0.total_cmp(&x.0));
    println!(
        "baseline: {} ({runs} runs); noisiest timings:",
        out.display()
    );
    for (n, k) in noisy.iter().take(8) {
        println!("  {:>6.1} %  {k}", n * 100.0);
    }
    ExitCode::SUCCESS
}
