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

const USAGE: &str = "usage: cargo xtask gate [--baseline FILE] [--results FILE] [--only PREFIX] \
[--alpha P] [--min-effect F] [--confirm N] [--allow-missing]\n       cargo xtask gate --demo [--runs N] [--baseline FILE]\n       \
cargo xtask gate --make-baseline [--runs N] [--out FILE]";

const INJECT_ENV: &str = "IOACCT_INJECT_PORT_CHECK_SLOWDOWN";
const DEMO_METRIC: &str = "accountant.port_check";

struct Args {
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

fn parse(args: &[String]) -> Result<Args, String> {
    let mut a = Args {
        baseline: None,
        results: None,
        only: None,
        cfg: GateConfig::default(),
        demo: false,
        make_baseline: false,
        out: None,
        runs: None,
        confirm: 0,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--baseline" => a.baseline = Some(PathBuf::from(value()?)),
            "--results" => a.results = Some(PathBuf::from(value()?)),
            "--only" => a.only = Some(value()?),
            "--alpha" => {
                a.cfg.alpha = value()?
                    .parse()
                    .ok()
                    .filter(|p: &f64| *p > 0.0 && *p < 1.0)
                    .ok_or("--alpha takes a probability in (0, 1)")?
            }
            "--min-effect" => {
                a.cfg.min_effect = value()?
                    .parse()
                    .ok()
                    .filter(|p: &f64| *p >= 0.0 && *p < 10.0)
                    .ok_or("--min-effect takes a fraction, e.g. 0.10")?
            }
            "--confirm" => {
                a.confirm = value()?
                    .parse()
                    .ok()
                    .filter(|n| (0..=5).contains(n))
                    .ok_or("--confirm takes a count from 0 to 5")?
            }
            "--allow-missing" => a.cfg.allow_missing = true,
            "--demo" => a.demo = true,
            "--make-baseline" => a.make_baseline = true,
            "--out" => a.out = Some(PathBuf::from(value()?)),
            "--runs" => {
                a.runs = Some(
                    value()?
                        .parse()
                        .ok()
                        .filter(|n| (1..=1000).contains(n))
                        .ok_or("--runs takes a count from 1 to 1000")?,
                )
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(a)
}

/// Runs the task.
pub fn run(args: &[String]) -> ExitCode {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let a = match parse(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("xtask gate: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
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
fn confirm(root: &Path, base: &Results, a: &Args, first: &reports::gate::GateReport) -> bool {
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

fn demo(a: &Args) -> ExitCode {
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
fn make_baseline(a: &Args) -> ExitCode {
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
