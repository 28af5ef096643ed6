//! `cargo xtask report [RESULTS [BASELINE]] [--baseline FILE] [--out FILE]`:
//! renders the self-contained HTML report from a results file (default
//! `target/bench/results.json`), compared with a baseline when one is given
//! (a second positional file or `--baseline`). Writes `--out` or, by
//! default, `report.html` next to the results.
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask report [RESULTS [BASELINE]] [--baseline FILE] [--out FILE]";

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

/// Runs the task.
pub fn run(args: &[String]) -> ExitCode {
    let mut files: Vec<PathBuf> = Vec::new();
    let mut baseline: Option<PathBuf> = None;
    let mut out: Option<PathBuf> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--baseline" | "--out" => {
                let Some(v) = it.next() else {
                    eprintln!("xtask report: {a} needs a file\n{USAGE}");
                    return ExitCode::from(2);
                };
                if a == "--out" {
                    out = Some(PathBuf::from(v));
                } else {
                    baseline = Some(PathBuf::from(v));
                }
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            f if !f.starts_with('-') => files.push(PathBuf::from(f)),
            other => {
                eprintln!("xtask report: unknown argument `{other}`\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    if files.len() > 2 {
        eprintln!("xtask report: at most RESULTS and BASELINE\n{USAGE}");
        return ExitCode::from(2);
    }
    let results = files
        .first()
        .cloned()
        .unwrap_or_else(|| root().join("target/bench/results.json"));
    let baseline = baseline.or_else(|| files.get(1).cloned());
    let out = out.unwrap_or_else(|| results.with_file_name("report.html"));
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
