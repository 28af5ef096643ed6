//! `cargo xtask bench [--quick] [--only PREFIX] [--cpus LIST] [--baseline FILE]`: builds and runs the
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
use crate::benchbin::{BenchBin, BenchRun, INJECT_KNOBS};
use crate::report;
use std::path::PathBuf;
use std::process::ExitCode;

/// `cargo xtask bench`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The quick suite (under 5 minutes on 2 cores): fewer samples and sizes.
    #[arg(long)]
    quick: bool,
    /// Run only the metrics whose name starts with PREFIX (e.g. `hv.` or `accountant.port_check`).
    #[arg(long, value_name = "PREFIX")]
    only: Option<String>,
    /// Compare with this results file instead of the committed bench/baseline.json.
    #[arg(long, value_name = "FILE")]
    baseline: Option<PathBuf>,
    /// Pin the measuring thread to the first CPU of LIST and every vCPU thread to the
    /// rest (e.g. `0,1` or `2,3-7`); default: the first allowed CPU measures, the
    /// others run vCPUs. Printed, and recorded in results.json (host.affinity).
    #[arg(long, value_name = "LIST")]
    cpus: Option<String>,
}

/// Runs the task.
pub fn run(args: Args) -> ExitCode {
    let Args {
        quick,
        only,
        baseline,
        cpus,
    } = args;
    let root = report::root();
    let dir = root.join("target/bench");
    let results = dir.join("results.json");
    eprintln!(
        "xtask bench: building ioacct-bench in release mode if needed (a few minutes from scratch), then running it ..."
    );
    // An injection knob set for this command reaches the run, as it always
    // has (`IOACCT_INJECT_PORT_CHECK_SLOWDOWN=10 cargo xtask bench`).
    let inject: Vec<(String, String)> = INJECT_KNOBS
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| ((*k).to_owned(), v)))
        .collect();
    // The C API's instruction counts run the C harness `cargo xtask capi`
    // builds (target/capi/ioacct-count); without it they are not measured.
    if let Err(e) = crate::capi::build() {
        eprintln!("xtask bench: warning: libioacct's C programs not built ({e})");
    }
    let run = BenchRun {
        quick,
        only: only.as_deref(),
        cpus: cpus.as_deref(),
        progress: true,
        env: &inject,
    };
    if let Err(e) = BenchBin::of_workspace(&root, true).and_then(|b| b.run(&run, &results)) {
        eprintln!("xtask bench: {e}");
        return ExitCode::FAILURE;
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
