//! `cargo xtask replay FILE [--tracker NAME] [--trace OUT.json]`: SPEC section 3.
//!
//! One output line per op, each from the one trace executor
//! ([`accountant::exec::execute`]); a line that cannot be parsed ends the
//! run with its line number on stderr and exit status 2. With `--trace`,
//! the accountant's tracepoints are recorded and written as Chrome trace
//! JSON (open it in Perfetto); with `RUST_LOG` set (e.g.
//! `RUST_LOG=tracepoints=trace`), each op's events are printed on stderr
//! through `tracing` as it runs.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use accountant::trace::Replay;
use accountant::TrackerKind;

use crate::tap::Tap;

/// `cargo xtask replay`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Exit status: 0 replayed, 2 a malformed line or an unreadable file \
(the message names the line).\nWith RUST_LOG=tracepoints=trace each op's events print on stderr as it runs."
)]
pub struct Args {
    /// The trace: one op per line (SPEC section 3), `#` comments.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// The MMIO tracker: xmalloc-page, slab-page or slab-extent.
    #[arg(long, value_name = "NAME", default_value = "slab-extent", value_parser = tracker)]
    tracker: TrackerKind,
    /// Also record the tracepoints and write them as Chrome trace JSON (open in Perfetto).
    #[arg(long, value_name = "OUT.json")]
    trace: Option<PathBuf>,
}

fn tracker(s: &str) -> Result<TrackerKind, String> {
    TrackerKind::from_name(s)
        .ok_or_else(|| format!("unknown tracker `{s}` (xmalloc-page, slab-page, slab-extent)"))
}

/// Runs the task.
pub fn run(args: Args) -> ExitCode {
    let text = match std::fs::read(&args.file) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => {
            eprintln!("xtask replay: {}: {e}", args.file.display());
            return ExitCode::from(2);
        }
    };
    let mut tap = Tap::start(args.trace.as_deref(), "xtask replay");
    let code = replay(&args, &text, tap.as_mut());
    if let Some(t) = tap {
        if let Err(e) = t.finish("xtask replay") {
            eprintln!("xtask replay: {e}");
            return ExitCode::FAILURE;
        }
    }
    code
}

fn replay(args: &Args, text: &str, mut tap: Option<&mut Tap>) -> ExitCode {
    let mut replay = Replay::new(args.tracker);
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let live = tap.as_ref().is_some_and(|t| t.logs());
    for line in text.lines() {
        let fed = replay.feed(line);
        if let Some(t) = tap.as_deref_mut() {
            if live && out.flush().is_err() {
                return ExitCode::FAILURE;
            }
            t.pump();
        }
        match fed {
            Ok(None) => {}
            Ok(Some(output)) => {
                if writeln!(out, "{output}").is_err() || (live && out.flush().is_err()) {
                    return ExitCode::FAILURE;
                }
            }
            Err(e) => {
                let _ = out.flush();
                eprintln!("{}:{}: {}", args.file.display(), e.line, e.msg);
                return ExitCode::from(2);
            }
        }
    }
    if out.flush().is_err() {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
