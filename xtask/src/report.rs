//! `cargo xtask report [RESULTS [BASELINE]] [--baseline FILE] [--out FILE]`:
//! renders the self-contained HTML report from a results file (default
//! `target/bench/results.json`), compared with a baseline when one is given
//! (a second positional file or `--baseline`). Writes `--out` or, by
//! default, `report.html` next to the results.
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The workspace root (xtask lives one level below it).
pub fn root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}

/// Renders `results` (with `baseline`) to `out`; a message on failure.
pub fn render(results: &Path, baseline: Option<&Path>, out: &Path) -> Result<(), String> {
    let r = reports::Results::load(results).map_err(|e| e.to_string())?;
    let b = match baseline {
        Some(p) => Some(reports::Results::load(p).map_err(|e| e.to_string())?),
        None => None,
    };
    let html = reports::html::report(&r, b.as_ref());
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(out, html).map_err(|e| format!("{}: {e}", out.display()))
}

/// `cargo xtask report`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The results file [default: target/bench/results.json].
    #[arg(value_name = "RESULTS")]
    results: Option<PathBuf>,
    /// A baseline results file to compare with (same as --baseline).
    #[arg(value_name = "BASELINE", conflicts_with = "baseline")]
    baseline_file: Option<PathBuf>,
    /// A baseline results file to compare with.
    #[arg(long, value_name = "FILE")]
    baseline: Option<PathBuf>,
    /// Where to write the HTML [default: report.html next to RESULTS].
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// Runs the task.
pub fn run(a: Args) -> ExitCode {
    let results = a
        .results
        .unwrap_or_else(|| root().join("target/bench/results.json"));
    let baseline = a.baseline.or(a.baseline_file);
    let out = a
        .out
        .unwrap_or_else(|| results.with_file_name("report.html"));
    match render(&results, baseline.as_deref(), &out) {
        Ok(()) => {
            println!("report: {}", out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("xtask report: {e}");
            ExitCode::FAILURE
        }
    }
}
