//! `cargo xtask scenario`.
use std::process::ExitCode;

/// Runs the task.
pub fn run(_args: &[String]) -> ExitCode {
    eprintln!("xtask scenario: not built yet");
    ExitCode::from(2)
}
