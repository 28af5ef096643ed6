//! `cargo xtask replay FILE [--tracker NAME] [--page-limit N] [--trace OUT.json]`:
//! SPEC section 3.
//!
//! One output line per op; a line that cannot be parsed ends the run with its
//! line number on stderr and exit status 2. The file is read line by line
//! (lines of at most [`accountant::trace::MAX_LINE`] bytes), so memory stays
//! bounded whatever the input. `--page-limit N` limits the MMIO tracker to N
//! live pages (fault injection: ops that create state then answer
//! `err no-memory`; teardowns still succeed). With `--trace`, the
//! accountant's tracepoints are recorded and written as Chrome trace JSON
//! (open it in Perfetto); the file is created before the replay starts. With
//! `RUST_LOG` set (e.g. `RUST_LOG=tracepoints=trace`), the events are also
//! printed on stderr through `tracing`. An error writing stdout is reported
//! (exit status 1), except a closed pipe (`replay FILE | head`), which ends
//! the run quietly.

use std::fs::File;
use std::io::{BufWriter, ErrorKind, Read, Write};
use std::process::ExitCode;

use accountant::trace::{LineReader, ReadBytes, Replay};
use accountant::TrackerKind;

struct Args {
    file: String,
    tracker: TrackerKind,
    page_limit: Option<u64>,
    trace: Option<String>,
}

const USAGE: &str =
    "usage: cargo xtask replay FILE [--tracker NAME] [--page-limit N] [--trace OUT.json]";

fn parse_args(args: &[String]) -> Result<Args, String> {
    let mut file = None;
    let mut tracker = TrackerKind::default();
    let mut page_limit = None;
    let mut trace = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--tracker" => {
                let name = it.next().ok_or("--tracker needs a name")?;
                tracker = TrackerKind::from_name(name).ok_or_else(|| {
                    format!("unknown tracker `{name}` (xmalloc-page, slab-page, slab-extent)")
                })?;
            }
            "--page-limit" => {
                let n = it.next().ok_or("--page-limit needs a number of pages")?;
                page_limit = Some(
                    accountant::num::Num::parse(n)
                        .and_then(|n| n.get())
                        .ok_or_else(|| format!("--page-limit: `{n}` is not a number of pages"))?,
                );
            }
            "--trace" => trace = Some(it.next().ok_or("--trace needs a file name")?.clone()),
            f if !f.starts_with("--") && file.is_none() => file = Some(f.to_string()),
            other => return Err(format!("unexpected argument `{other}`")),
        }
    }
    Ok(Args {
        file: file.ok_or(USAGE)?,
        tracker,
        page_limit,
        trace,
    })
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
pub fn run(args: &[String]) -> ExitCode {
    let args = match parse_args(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("xtask replay: {e}");
            return ExitCode::from(2);
        }
    };
    let input = match File::open(&args.file) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("xtask replay: {}: {e}", args.file);
            return ExitCode::from(2);
        }
    };
    // The trace file is created before the replay, so a bad path is
    // reported before any work is done.
    let trace_out = match &args.trace {
        Some(path) => match File::create(path) {
            Ok(f) => Some((path.clone(), f)),
            Err(e) => {
                eprintln!("xtask replay: --trace {path}: {e}");
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    let log = std::env::var_os("RUST_LOG").is_some();
    let collector = (trace_out.is_some() || log).then(|| {
        let c = tracepoints::Collector::install();
        tracepoints::enable();
        c
    });
    let code = replay(&args, Source(input));
    if let Some(c) = collector {
        tracepoints::disable();
        let records = c.drain_sorted();
        if log {
            if let Err(e) = tracepoints::sinks::tracing::install_fmt_subscriber() {
                eprintln!("xtask replay: RUST_LOG: {e}");
            }
            tracepoints::sinks::tracing::forward(&records, c.calibration());
        }
        if let Some((path, f)) = trace_out {
            match tracepoints::sinks::chrome::export_chrome_json(&records, c.calibration(), f) {
                Ok(()) => eprintln!("xtask replay: {} events written to {path}", records.len()),
                Err(e) => {
                    eprintln!("xtask replay: {path}: {e}");
                    return ExitCode::FAILURE;
                }
            }
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

fn replay(args: &Args, src: Source) -> ExitCode {
    let mut replay = Replay::with_page_limit(args.tracker, args.page_limit);
    let mut lines = LineReader::new(src);
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    loop {
        let fed = match lines.next_line() {
            Ok(Some(line)) => replay.feed_bytes(line),
            Ok(None) => break,
            Err(e) => match e.trace_error() {
                Some(te) => Err(te),
                None => {
                    if let accountant::trace::LineError::Read(e) = e {
                        eprintln!("xtask replay: {}: {e}", args.file);
                    }
                    let _ = out.flush();
                    return ExitCode::from(2);
                }
            },
        };
        match fed {
            Ok(None) => {}
            Ok(Some(output)) => {
                if let Err(e) = writeln!(out, "{output}") {
                    return stdout_failed(&e);
                }
            }
            Err(e) => {
                if let Err(e) = out.flush() {
                    return stdout_failed(&e);
                }
                eprintln!("{}:{}: {}", args.file, e.line, e.msg);
                return ExitCode::from(2);
            }
        }
    }
    if let Err(e) = out.flush() {
        return stdout_failed(&e);
    }
    ExitCode::SUCCESS
}
