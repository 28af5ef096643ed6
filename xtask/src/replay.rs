//! `cargo xtask replay FILE [--tracker NAME]`: SPEC section 3.
//!
//! One output line per op; a line that cannot be parsed ends the run with its
//! line number on stderr and exit status 2.

use std::io::{BufWriter, Write};
use std::process::ExitCode;

use accountant::trace::Replay;
use accountant::TrackerKind;

struct Args {
    file: String,
    tracker: TrackerKind,
}

fn parse_args(args: &[String]) -> Result<Args, String> {
    let mut file = None;
    let mut tracker = TrackerKind::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--tracker" => {
                let name = it.next().ok_or("--tracker needs a name")?;
                tracker = TrackerKind::from_name(name).ok_or_else(|| {
                    format!("unknown tracker `{name}` (xmalloc-page, slab-page, slab-extent)")
                })?;
            }
            f if !f.starts_with("--") && file.is_none() => file = Some(f.to_string()),
            other => return Err(format!("unexpected argument `{other}`")),
        }
    }
    Ok(Args {
        file: file.ok_or("usage: cargo xtask replay FILE [--tracker NAME]")?,
        tracker,
    })
}

/// Runs the task.
pub fn run(args: &[String]) -> ExitCode {
    let args = match parse_args(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("xtask replay: {e}");
            return ExitCode::from(2);
        }
    };
    let text = match std::fs::read(&args.file) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => {
            eprintln!("xtask replay: {}: {e}", args.file);
            return ExitCode::from(2);
        }
    };
    let mut replay = Replay::new(args.tracker);
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    for line in text.lines() {
        match replay.feed(line) {
            Ok(None) => {}
            Ok(Some(output)) => {
                if writeln!(out, "{output}").is_err() {
                    return ExitCode::FAILURE;
                }
            }
            Err(e) => {
                let _ = out.flush();
                eprintln!("{}:{}: {}", args.file, e.line, e.msg);
                return ExitCode::from(2);
            }
        }
    }
    if out.flush().is_err() {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
