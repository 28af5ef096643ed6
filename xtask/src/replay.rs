//! `cargo xtask replay`.
use std::process::ExitCode;

/// Runs the task.
pub fn run(_args: &[String]) -> ExitCode {
    eprintln!("xtask replay: not built yet");
    ExitCode::from(2)
}
