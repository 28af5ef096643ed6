//! `cargo xtask bench`.
use std::process::ExitCode;

/// Runs the task.
pub fn run(_args: &[String]) -> ExitCode {
    eprintln!("xtask bench: not built yet");
    ExitCode::from(2)
}
