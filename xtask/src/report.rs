//! `cargo xtask report`.
use std::process::ExitCode;

/// Runs the task.
pub fn run(_args: &[String]) -> ExitCode {
    eprintln!("xtask report: not built yet");
    ExitCode::from(2)
}
