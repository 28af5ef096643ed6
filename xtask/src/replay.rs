//! `cargo xtask replay FILE [--tracker NAME] [--trace OUT.json]`: SPEC section 3.
//!
//! One output line per op; a line that cannot be parsed ends the run with its
//! line number on stderr and exit status 2. With `--trace`, the accountant's
//! tracepoints are recorded and written as Chrome trace JSON (open it in
//! Perfetto); with `RUST_LOG` set (e.g. `RUST_LOG=tracepoints=trace`), the
//! events are also printed on stderr through `tracing`.

use std::io::{BufWriter, Write};
use std::process::ExitCode;

use accountant::trace::Replay;
use accountant::TrackerKind;

struct Args {
    file: String,
    tracker: TrackerKind,
    trace: Option<String>,
}

fn parse_args(args: &[String]) -> Result<Args, String> {
    let mut file = None;
    let mut tracker = TrackerKind::default();
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
            "--trace" => trace = Some(it.next().ok_or("--trace needs a file name")?.clone()),
            f if !f.starts_with("--") && file.is_none() => file = Some(f.to_string()),
            other => return Err(format!("unexpected argument `{other}`")),
        }
    }
    Ok(Args {
        file: file.ok_or("usage: cargo xtask replay FILE [--tracker NAME] [--trace OUT.json]")?,
        tracker,
        trace,
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
    let log = std::env::var_os("RUST_LOG").is_some();
    let collector = (args.trace.is_some() || log).then(|| {
        let c = tracepoints::Collector::install();
        tracepoints::enable();
        c
    });
    let code = replay(&args, &text);
    if let Some(c) = collector {
        tracepoints::disable();
        let records = c.drain_sorted();
        if log {
            if let Err(e) = tracepoints::sinks::tracing::install_fmt_subscriber() {
                eprintln!("xtask replay: RUST_LOG: {e}");
            }
            tracepoints::sinks::tracing::forward(&records, c.calibration());
        }
        if let Some(path) = &args.trace {
            let written = std::fs::File::create(path)
                .map_err(|e| e.to_string())
                .and_then(|f| {
                    tracepoints::sinks::chrome::export_chrome_json(&records, c.calibration(), f)
                        .map_err(|e| e.to_string())
                });
            match written {
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

fn replay(args: &Args, text: &str) -> ExitCode {
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
