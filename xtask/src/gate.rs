//! `cargo xtask gate [--baseline FILE] [--results FILE] [--only PREFIX]
//! [--alpha P] [--min-effect F]`: compares results (default
//! `target/bench/results.json`) with the committed baseline (default
//! `bench/baseline.json`), prints a Markdown summary and exits 1 on a
//! regression beyond noise (rules in `reports::gate`), 2 on bad usage or
//! unreadable files.
//!
//! `cargo xtask gate --demo [--runs N] [--baseline FILE]` shows the gate is
//! trustworthy: it runs the port-check benchmark N times (default 20) as an
//! A/A test against the baseline (`--baseline`, else the committed
//! `bench/baseline.json`, else a fresh run of the same build), then N times
//! with
//! `IOACCT_INJECT_PORT_CHECK_SLOWDOWN=10` (a calibrated 10 % spin the bench
//! harness adds inside each timed batch; the accountant is untouched), and
//! prints how many A/A runs raised an alarm and how many injected runs were
//! caught. It exits 0 only if no A/A run alarmed and at least 19 in 20
//! injected runs were caught.
//!
//! `cargo xtask gate --make-baseline [--runs N] [--out FILE]` runs the quick
//! benchmark N times (default 5) and writes the first run as the baseline
//! (default `bench/baseline.json`), each timing annotated with its measured
//! between-run noise: the largest relative deviation of a run's median
//! normalized sample from the median over the N runs.
use crate::report;
use reports::gate::{compare, GateConfig};
use reports::Results;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const INJECT_ENV: &str = "IOACCT_INJECT_PORT_CHECK_SLOWDOWN";
const DEMO_METRIC: &str = "accountant.port_check";

/// `cargo xtask gate`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Exit status: 0 pass, 1 a regression (or a failed demo), 2 bad usage or unreadable files."
)]
pub struct Args {
    /// The baseline results file [default: bench/baseline.json]; with --demo, the A/A reference.
    #[arg(long, value_name = "FILE")]
    baseline: Option<PathBuf>,
    /// The results file to judge [default: target/bench/results.json].
    #[arg(long, value_name = "FILE", conflicts_with_all = ["demo", "make_baseline"])]
    results: Option<PathBuf>,
    /// Judge only the metrics whose name starts with PREFIX.
    #[arg(long, value_name = "PREFIX")]
    only: Option<String>,
    /// Significance level of the one-sided Mann-Whitney test, in (0, 1) [default: 0.01].
    #[arg(long, value_name = "P", value_parser = probability)]
    alpha: Option<f64>,
    /// Smallest slowdown that counts as a regression, as a fraction [default: 0.10; the port check is held to 0.05].
    #[arg(long, value_name = "F", value_parser = fraction)]
    min_effect: Option<f64>,
    /// Re-measure each regressed metric N times (0 to 5) in fresh runs; fail only if it reproduces every time.
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=5))]
    confirm: u8,
    /// Do not fail on a baseline metric the results lack (a host without /dev/kvm, valgrind).
    #[arg(long)]
    allow_missing: bool,
    /// Show the gate is trustworthy: N A/A runs and N runs with an injected 10 % port-check slowdown.
    #[arg(long, conflicts_with = "make_baseline")]
    demo: bool,
    /// Run the quick benchmark N times and write the first run, annotated with its noise, as the baseline.
    #[arg(long)]
    make_baseline: bool,
    /// With --make-baseline: where to write it [default: bench/baseline.json].
    #[arg(long, value_name = "FILE", requires = "make_baseline")]
    out: Option<PathBuf>,
    /// With --demo or --make-baseline: how many runs (1 to 1000) [default: 20 for --demo, 5 for --make-baseline].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1000))]
    runs: Option<u16>,
}

fn probability(s: &str) -> Result<f64, String> {
    s.parse()
        .ok()
        .filter(|p: &f64| *p > 0.0 && *p < 1.0)
        .ok_or_else(|| "takes a probability in (0, 1)".to_string())
}

fn fraction(s: &str) -> Result<f64, String> {
    s.parse()
        .ok()
        .filter(|p: &f64| *p >= 0.0 && *p < 10.0)
        .ok_or_else(|| "takes a fraction, e.g. 0.10".to_string())
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
}

/// Runs the task.
pub fn run(args: Args) -> ExitCode {
    let mut cfg = GateConfig::default();
    if let Some(p) = args.alpha {
        cfg.alpha = p;
    }
    if let Some(f) = args.min_effect {
        cfg.min_effect = f;
    }
    cfg.allow_missing = args.allow_missing;
    let a = Opts {
        baseline: args.baseline,
        results: args.results,
        only: args.only,
        cfg,
        demo: args.demo,
        make_baseline: args.make_baseline,
        out: args.out,
        runs: args.runs.map(usize::from),
        confirm: usize::from(args.confirm),
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
    let g = compare(&b, &r, &a.cfg, a.only.as_deref());
    print!("{}", g.markdown());
    if !g.failed() {
        return ExitCode::SUCCESS;
    }
    if confirm(&root, &b, &a, &g) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// With `--confirm N`: re-measures each regressed metric family N times in
/// fresh runs of the bench (`--only NAME`) and keeps a regression only if it
/// reproduces in every one. A false alarm then needs N + 1 independent
/// unlucky runs; a real regression shows every time. Returns whether the
/// gate passes after confirmation.
fn confirm(root: &Path, base: &Results, a: &Opts, first: &reports::gate::GateReport) -> bool {
    use reports::gate::Verdict;
    let mut failing: Vec<String> = first
        .findings
        .iter()
        .filter(|f| f.verdict == Verdict::Regression)
        .map(|f| f.key.clone())
        .collect();
    if a.confirm == 0 || failing.iter().any(|k| k.starts_with("invariant")) {
        return false;
    }
    let dir = root.join("target/bench/confirm");
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("xtask gate: {}: {e}", dir.display());
        return false;
    }
    for round in 1..=a.confirm {
        let mut names: Vec<&str> = failing
            .iter()
            .filter_map(|k| k.split_whitespace().next())
            .collect();
        names.sort_unstable();
        names.dedup();
        println!("\n### Confirmation run {round} of {}\n", a.confirm);
        let mut still = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let out = dir.join(format!("round{round}-{i}.json"));
            // The injection knob (for testing the gate itself) carries over.
            let inject = std::env::var(INJECT_ENV).ok();
            let fresh = match bench_once(root, &out, inject.as_deref(), Some(name)) {
                Ok(r) => r,
                Err(e) => {
                    println!("- `{name}`: could not re-measure ({e}); the regression stands");
                    return false;
                }
            };
            let g = compare(base, &fresh, &a.cfg, Some(name));
            for key in failing
                .iter()
                .filter(|k| k.split_whitespace().next() == Some(*name))
            {
                // Only a fresh measurement that is judged and clean clears a
                // regression; missing or unjudged counts as reproduced.
                let f = g.findings.iter().find(|f| &f.key == key);
                let cleared =
                    f.is_some_and(|f| matches!(f.verdict, Verdict::Same | Verdict::Improvement));
                println!(
                    "- `{key}`: ratio {} — {}",
                    f.and_then(|f| f.ratio)
                        .map_or("–".to_owned(), |r| format!("{r:.3}")),
                    if cleared {
                        "did not reproduce"
                    } else if f.is_none() {
                        "not measured again: stands"
                    } else {
                        "reproduced"
                    }
                );
                if !cleared {
                    still.push(key.clone());
                }
            }
        }
        failing = still;
        if failing.is_empty() {
            println!("\n**Gate: pass** — no regression reproduced in a fresh run.");
            return true;
        }
    }
    println!(
        "\n**Gate: FAIL** — reproduced in every confirmation run: {}",
        failing.join(", ")
    );
    false
}

/// Runs the quick benchmark once into `out` (only the metrics starting with
/// `only`, when given), with the injected slowdown when `inject` is set.
fn bench_once(
    root: &Path,
    out: &Path,
    inject: Option<&str>,
    only: Option<&str>,
) -> Result<Results, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args([
            "run",
            "--release",
            "--quiet",
            "-p",
            "bench",
            "--bin",
            "ioacct-bench",
            "--",
        ])
        .args(["--quick", "--no-progress", "--out"])
        .arg(out);
    if let Some(o) = only {
        cmd.args(["--only", o]);
    }
    match inject {
        Some(p) => cmd.env(INJECT_ENV, p),
        None => cmd.env_remove(INJECT_ENV),
    };
    let st = cmd.status().map_err(|e| format!("cannot run cargo: {e}"))?;
    if !st.success() {
        return Err(format!("ioacct-bench failed ({st})"));
    }
    Results::load(out).map_err(|e| e.to_string())
}

fn demo(a: &Opts) -> ExitCode {
    let root = report::root();
    let dir = root.join("target/bench/demo");
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("xtask gate: {}: {e}", dir.display());
        return ExitCode::from(2);
    }
    let committed = root.join("bench/baseline.json");
    let baseline = match &a.baseline {
        Some(p) => Results::load(p).map_err(|e| e.to_string()),
        None if committed.exists() => Results::load(&committed).map_err(|e| e.to_string()),
        None => {
            eprintln!("gate demo: no committed baseline; baseline run (same build) ...");
            bench_once(&root, &dir.join("baseline.json"), None, Some(DEMO_METRIC))
        }
    };
    let baseline = match baseline {
        Ok(b) => b,
        Err(e) => {
            eprintln!("xtask gate: {e}");
            return ExitCode::from(2);
        }
    };
    let runs = a.runs.unwrap_or(20);
    let mut rows = Vec::new();
    let (mut alarms, mut caught) = (0usize, 0usize);
    for (label, inject) in [("A/A", None), ("injected +10 %", Some("10"))] {
        for i in 0..runs {
            eprintln!("gate demo: {label} run {}/{runs} ...", i + 1);
            let out = dir.join(format!(
                "{}-{i:02}.json",
                if inject.is_some() { "inj" } else { "aa" }
            ));
            let r = match bench_once(&root, &out, inject, Some(DEMO_METRIC)) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("xtask gate: {e}");
                    return ExitCode::from(2);
                }
            };
            let g = compare(&baseline, &r, &a.cfg, Some(DEMO_METRIC));
            let worst = g
                .findings
                .iter()
                .filter_map(|f| f.ratio)
                .fold(f64::NAN, f64::max);
            let radix_ratios: Vec<String> = g
                .findings
                .iter()
                .filter(|f| f.key.contains("impl=radix"))
                .filter_map(|f| f.ratio.map(|r| format!("{r:.3}")))
                .collect();
            if g.failed() {
                if inject.is_some() {
                    caught += 1;
                } else {
                    alarms += 1;
                }
            }
            rows.push(format!(
                "| {label} | {} | {} | {} | {worst:.3} | {} |",
                i + 1,
                if g.failed() { "ALARM" } else { "pass" },
                g.regressions(),
                radix_ratios.join(" ")
            ));
        }
    }
    let ok = alarms == 0 && caught * 20 >= runs * 19;
    println!(
        "## Gate demonstration: {}\n\nA/A: {alarms}/{n} runs raised an alarm (want 0). \
         Injected 10 % port-check slowdown: caught in {caught}/{n} runs (want ≥ 19/20). \
         Gate: one-sided Mann-Whitney p < {}, minimum effect {:.0} %, on within-run \
         normalized samples of `{DEMO_METRIC}`.\n\n\
         | run kind | # | verdict | regressions | worst ratio | radix ratios by grants |\n\
         |---|---:|---|---:|---:|---|\n{}",
        if ok { "pass" } else { "FAIL" },
        a.cfg.alpha,
        a.cfg.headline_min_effect * 100.0,
        rows.join("\n"),
        n = runs,
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
    let runs = a.runs.unwrap_or(5).max(2);
    let dir = root.join("target/bench/baseline-runs");
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("xtask gate: {}: {e}", dir.display());
        return ExitCode::from(2);
    }
    let mut all = Vec::new();
    for i in 0..runs {
        eprintln!("make-baseline: run {}/{runs} ...", i + 1);
        match bench_once(&root, &dir.join(format!("run-{i:02}.json")), None, None) {
            Ok(r) => all.push(r),
            Err(e) => {
                eprintln!("xtask gate: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let mut base = all[0].clone();
    for m in &mut base.metrics {
        if m.norm_samples.is_empty() {
            continue;
        }
        let key = m.key();
        let medians: Vec<f64> = all
            .iter()
            .filter_map(|r| r.metrics.iter().find(|x| x.key() == key))
            .filter_map(|x| reports::stats::median(&x.norm_samples))
            .collect();
        let Some(center) = reports::stats::median(&medians).filter(|c| *c > 0.0) else {
            continue;
        };
        let noise = medians
            .iter()
            .map(|v| (v / center - 1.0).abs())
            .fold(0.0, f64::max);
        m.noise = Some((noise * 10_000.0).round() / 10_000.0);
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
