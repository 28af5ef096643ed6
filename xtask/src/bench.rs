//! `cargo xtask bench [--quick] [--baseline FILE]`: builds and runs the
//! `ioacct-bench` harness in release mode (it shows its own progress), which
//! writes `target/bench/results.json`, then renders
//! `target/bench/report.html` — compared with the committed
//! `bench/baseline.json` when it exists, or with `--baseline FILE`.
//!
//! xtask stays light: it depends on `reports`, never on the measured crates
//! or criterion; the measuring happens in the spawned release binary.
//!
//! Full runs are meant for a quiet bare-metal host: pin the run to one core
//! (`taskset -c 2 cargo xtask bench`), set the `performance` governor
//! (`cpupower frequency-set -g performance`), and disable turbo for stable
//! clocks. The report records the governor and clocksource it saw.
use crate::report;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

const USAGE: &str = "usage: cargo xtask bench [--quick] [--baseline FILE]";

/// Runs the task.
pub fn run(args: &[String]) -> ExitCode {
    let mut quick = false;
    let mut baseline: Option<PathBuf> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--baseline" => match it.next() {
                Some(f) => baseline = Some(PathBuf::from(f)),
                None => {
                    eprintln!("xtask bench: --baseline needs a file\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("xtask bench: unknown argument `{other}`\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let root = report::root();
    let dir = root.join("target/bench");
    let results = dir.join("results.json");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
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
        .arg("--out")
        .arg(&results);
    if quick {
        cmd.arg("--quick");
    }
    match cmd.status() {
        Ok(s) if s.success() => {}
        Ok(s) => {
            eprintln!("xtask bench: ioacct-bench failed ({s})");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("xtask bench: cannot run cargo: {e}");
            return ExitCode::FAILURE;
        }
    }
    let baseline = baseline.or_else(|| {
        let p = root.join("bench/baseline.json");
        p.exists().then_some(p)
    });
    let html = dir.join("report.html");
    if let Err(e) = report::render(&results, baseline.as_deref(), &html) {
        eprintln!("xtask bench: report: {e}");
        return ExitCode::FAILURE;
    }
    println!(
        "results: {}\nreport:  {}",
        results.display(),
        html.display()
    );
    ExitCode::SUCCESS
}
