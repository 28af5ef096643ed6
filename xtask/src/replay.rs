//! `cargo xtask replay FILE [--tracker NAME] [--page-limit N] [--trace OUT.json]`:
//! SPEC section 3.
//!
//! One output line per op, each from the one trace executor
//! ([`accountant::ops::execute`]); a line that cannot be parsed ends the
//! run with its line number on stderr and exit status 2. The file is read
//! line by line (lines of at most [`accountant::trace::MAX_LINE`] bytes), so
//! memory stays bounded whatever the input. `--page-limit N` limits the MMIO
//! tracker to N live pages (fault injection: ops that create state then
//! answer `err no-memory`; teardowns still succeed). With `--trace`, the
//! accountant's tracepoints are recorded and written as Chrome trace JSON
//! (open it in Perfetto); the path is checked (created) before the replay
//! starts. With `RUST_LOG` set (e.g. `RUST_LOG=tracepoints=trace`), each
//! op's events are printed on stderr through `tracing` as it runs. An error
//! writing stdout is reported (exit status 1), except a closed pipe
//! (`replay FILE | head`), which ends the run quietly.

use std::fs::File;
use std::io::{BufWriter, ErrorKind, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use accountant::trace::{LineError, LineReader, ReadBytes, Replay};
use accountant::TrackerKind;

use crate::tap::Tap;

/// `cargo xtask replay`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Exit status: 0 replayed, 1 stdout could not be written, 2 a malformed line \
(longer than 4 MiB included) or an unreadable file (the message names the line).\n\
With RUST_LOG=tracepoints=trace each op's events print on stderr as it runs."
)]
pub struct Args {
    /// The trace: one op per line (SPEC section 3), `#` comments.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// The MMIO tracker: xmalloc-page, slab-page or slab-extent.
    #[arg(long, value_name = "NAME", default_value = "slab-extent", value_parser = tracker)]
    tracker: TrackerKind,
    /// At most N live pages for the MMIO tracker (fault injection: ops that
    /// create state answer `err no-memory`; teardowns still succeed).
    #[arg(long, value_name = "N")]
    page_limit: Option<u64>,
    /// Also record the tracepoints and write them as Chrome trace JSON (open in Perfetto).
    #[arg(long, value_name = "OUT.json")]
    trace: Option<PathBuf>,
}

fn tracker(s: &str) -> Result<TrackerKind, String> {
    TrackerKind::from_name(s)
        .ok_or_else(|| format!("unknown tracker `{s}` (xmalloc-page, slab-page, slab-extent)"))
}

struct Source(File);

impl ReadBytes for Source {
    type Error = std::io::Error;
    fn read_bytes(&mut self, buf: &mut [u8]) -> Result<usize, std::io::Error> {
        loop {
            match self.0.read(buf) {
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                r => return r,
            }
        }
    }
}

/// Runs the task.
pub fn run(args: Args) -> ExitCode {
    let input = match File::open(&args.file) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("xtask replay: {}: {e}", args.file.display());
            return ExitCode::from(2);
        }
    };
    // A bad --trace path is reported before any work is done.
    if let Some(path) = &args.trace {
        if let Err(e) = File::create(path) {
            eprintln!("xtask replay: --trace {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    let mut tap = Tap::start(args.trace.as_deref(), "xtask replay");
    let code = replay(&args, Source(input), tap.as_mut());
    if let Some(t) = tap {
        if let Err(e) = t.finish("xtask replay") {
            eprintln!("xtask replay: {e}");
            return ExitCode::FAILURE;
        }
    }
    code
}

/// What a failed write to stdout means for the run.
fn stdout_failed(e: &std::io::Error) -> ExitCode {
    if e.kind() == ErrorKind::BrokenPipe {
        // The reader is gone (`| head`): nothing left to tell anyone.
        ExitCode::SUCCESS
    } else {
        eprintln!("xtask replay: writing the output: {e}");
        ExitCode::FAILURE
    }
}

fn replay(args: &Args, src: Source, mut tap: Option<&mut Tap>) -> ExitCode {
    let mut replay = Replay::with_page_limit(args.tracker, args.page_limit);
    let mut lines = LineReader::new(src);
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let live = tap.as_ref().is_some_and(|t| t.logs());
    loop {
        let fed = match lines.next_line() {
            Ok(Some(line)) => replay.feed_bytes(line),
            Ok(None) => break,
            Err(LineError::Read(e)) => {
                let _ = out.flush();
                eprintln!("xtask replay: {}: {e}", args.file.display());
                return ExitCode::from(2);
            }
            Err(e) => match e.trace_error() {
                Some(te) => Err(te),
                None => return ExitCode::from(2),
            },
        };
        if let Some(t) = tap.as_deref_mut() {
            if live {
                if let Err(e) = out.flush() {
                    return stdout_failed(&e);
                }
            }
            t.pump();
        }
        match fed {
            Ok(None) => {}
            Ok(Some(output)) => {
                if let Err(e) =
                    writeln!(out, "{output}").and_then(|()| if live { out.flush() } else { Ok(()) })
                {
                    return stdout_failed(&e);
                }
            }
            Err(e) => {
                if let Err(e) = out.flush() {
                    return stdout_failed(&e);
                }
                eprintln!("{}:{}: {}", args.file.display(), e.line, e.msg);
                return ExitCode::from(2);
            }
        }
    }
    if let Err(e) = out.flush() {
        return stdout_failed(&e);
    }
    ExitCode::SUCCESS
}
