//! `cargo xtask conformance [TRACE...]`: runs every trace of the project's
//! conformance suite (`spec/conformance/*.trace`) through the replay
//! in-process and compares each output line with the line's `#=>`
//! expectation — the first token, and the error code after `err`, as SPEC
//! section 3 makes the contract. Also checks that a malformed trace ends
//! with an error naming its line. Then builds the C replay (`cargo xtask
//! capi`) and checks that it prints what the Rust replay prints on every
//! trace: the same full lines and exit status (`--rust-only` skips it).
//! Prints one line per trace and `conformance: N passed, N failed`; exit 1 if any failed, 2 if a trace
//! cannot be read or has an op without an expectation.
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use accountant::trace::Replay;
use accountant::TrackerKind;

use crate::report;

/// A result line on stdout; a closed stdout loses the lines, not the exit status.
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

/// `cargo xtask conformance`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Traces to run [default: every spec/conformance/*.trace].
    #[arg(value_name = "TRACE")]
    traces: Vec<PathBuf>,
    /// The MMIO tracker to replay with: xmalloc-page, slab-page or slab-extent.
    #[arg(long, value_name = "NAME", default_value = "slab-extent", value_parser = tracker)]
    tracker: TrackerKind,
    /// Skip the C replay (libioacct through its C API) and its comparison.
    #[arg(long)]
    rust_only: bool,
}

fn tracker(s: &str) -> Result<TrackerKind, String> {
    TrackerKind::from_name(s)
        .ok_or_else(|| format!("unknown tracker `{s}` (xmalloc-page, slab-page, slab-extent)"))
}

/// The part of an output line that is the contract: the first token, and
/// the code after `err`.
fn key(line: &str) -> Vec<&str> {
    let t: Vec<&str> = line.split_whitespace().take(2).collect();
    match t.as_slice() {
        ["err", code] => vec!["err", code],
        [first, ..] => vec![first],
        [] => vec![""],
    }
}

/// One op of a trace: its line number, its code and its expected output.
struct Expect {
    line: usize,
    code: String,
    want: String,
}

fn expectations(path: &Path, text: &str) -> Result<Vec<Expect>, String> {
    let mut v = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let code = line.split('#').next().unwrap_or("").trim();
        if code.is_empty() {
            continue;
        }
        let Some((_, want)) = line.split_once("#=>") else {
            return Err(format!(
                "{}:{}: op without a #=> expectation",
                path.display(),
                i + 1
            ));
        };
        v.push(Expect {
            line: i + 1,
            code: code.to_string(),
            want: want.trim().to_string(),
        });
    }
    Ok(v)
}

/// What went wrong in one trace (empty when it passed).
fn check(text: &str, exp: &[Expect], tracker: TrackerKind) -> Vec<String> {
    let mut replay = Replay::new(tracker);
    let mut got = Vec::new();
    let mut bad = Vec::new();
    for line in text.lines() {
        match replay.feed(line) {
            Ok(None) => {}
            Ok(Some(out)) => got.push(out),
            Err(e) => {
                bad.push(format!("the replay stopped: {e}"));
                break;
            }
        }
    }
    for (i, e) in exp.iter().enumerate() {
        let g = got.get(i).map_or("<no line>", String::as_str);
        if key(g) != key(&e.want) {
            bad.push(format!(
                "line {} `{}`: expected `{}`, got `{g}`",
                e.line, e.code, e.want
            ));
        }
    }
    if got.len() != exp.len() {
        bad.push(format!("{} output lines for {} ops", got.len(), exp.len()));
    }
    bad
}

/// The suite's traces, sorted.
fn suite() -> Result<Vec<PathBuf>, String> {
    let dir = report::root().join("spec/conformance");
    let rd = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "trace"))
        .collect();
    v.sort();
    if v.is_empty() {
        return Err(format!("{}: no *.trace files", dir.display()));
    }
    Ok(v)
}

/// Runs the task.
pub fn run(args: Args) -> ExitCode {
    let traces = if args.traces.is_empty() {
        match suite() {
            Ok(v) => v,
            Err(e) => {
                eprintln!("xtask conformance: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        args.traces
    };
    let (mut passed, mut failed) = (0, 0);
    for path in &traces {
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let text = match std::fs::read(path) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) => {
                eprintln!("xtask conformance: {}: {e}", path.display());
                return ExitCode::from(2);
            }
        };
        let exp = match expectations(path, &text) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("xtask conformance: {e}");
                return ExitCode::from(2);
            }
        };
        let bad = check(&text, &exp, args.tracker);
        if bad.is_empty() {
            passed += 1;
            say!("ok   {name} ({} ops)", exp.len());
        } else {
            failed += 1;
            say!("FAIL {name}");
            for b in bad.iter().take(20) {
                say!("    {b}");
            }
        }
    }
    // A malformed trace ends the run with an error naming its line.
    let mut r = Replay::new(args.tracker);
    let stopped = "boot\ncreate 1\nfrobnicate 1 2 3\n"
        .lines()
        .map(|l| r.feed(l))
        .find_map(Result::err);
    match stopped {
        Some(e) if e.line == 3 => {
            passed += 1;
            say!("ok   malformed trace: stops at line 3 ({})", e.msg);
        }
        other => {
            failed += 1;
            say!("FAIL malformed trace: {other:?}");
        }
    }
    if !args.rust_only {
        let (p, f) = c_replay(&traces, args.tracker);
        passed += p;
        failed += f;
    }
    say!("conformance: {passed} passed, {failed} failed");
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Every trace through the C replay, compared with the Rust replay line by
/// line; (passed, failed).
fn c_replay(traces: &[PathBuf], tracker: TrackerKind) -> (usize, usize) {
    let built = match crate::capi::build() {
        Ok(b) => b,
        Err(e) => {
            say!("FAIL C replay: cannot build it: {e}");
            return (0, 1);
        }
    };
    let name = tracker.name().to_string();
    let (mut passed, mut failed) = (0, 0);
    for t in traces {
        let rust = crate::capi::rust_replay(t, tracker, None);
        let args = ["--tracker".to_string(), name.clone()];
        let verdict = crate::capi::c_replay(&[], &built.replay, t, &args)
            .map(|c| crate::capi::diff(&rust, &c));
        let shown = t.file_name().map_or_else(
            || t.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        match verdict {
            Ok(None) => {
                passed += 1;
                say!(
                    "ok   C replay {shown} = Rust replay ({} lines)",
                    rust.lines.len()
                );
            }
            Ok(Some(d)) | Err(d) => {
                failed += 1;
                say!("FAIL C replay {shown}: {d}");
            }
        }
    }
    (passed, failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_the_first_token_and_the_error_code() {
        assert_eq!(key("ok torn down d0 iomem 0x10"), ["ok"]);
        assert_eq!(key("err conflict 0xfeb00"), ["err", "conflict"]);
        assert_eq!(key("err"), ["err"]);
        assert_eq!(key(""), [""]);
    }

    #[test]
    fn a_wrong_expectation_fails_and_names_the_line() {
        let text = "boot\ncreate 1 #=> ok\n";
        let p = Path::new("t.trace");
        assert!(expectations(p, text).is_err(), "boot has no #=>");
        let text = "boot #=> ok\ncreate 1 #=> ok\ncreate 1 #=> ok\n";
        let exp = expectations(p, text).unwrap_or_default();
        let bad = check(text, &exp, TrackerKind::default());
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert!(bad[0].starts_with("line 3 "), "{bad:?}");
        let text = "boot #=> ok\ncreate 1 #=> ok\ncreate 1 #=> err domain-exists\n";
        let exp = expectations(p, text).unwrap_or_default();
        assert!(check(text, &exp, TrackerKind::default()).is_empty());
    }
}
