//! Results: what a back end's serial log (or the host runner's output)
//! says, and the one summary line per back end.
use super::plan::{Backend, Plan, Step};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// What a back end's log says.
#[derive(Debug, Default)]
pub(super) struct Outcome {
    /// Step id → `rc=…` word (`0`, `101`, `timeout`, `hung`, …) and output.
    pub(super) results: BTreeMap<String, (String, String)>,
    /// The virtualization the guest kernel reported (`NESTED virt …`).
    pub(super) virt: Option<String>,
    /// Boots of the emulator it took.
    pub(super) boots: u32,
}

/// Parses a serial log (or the host runner's output). `hung` names steps
/// the driver gave up on after a stall.
pub(super) fn parse_log(text: &str, steps: &[Step], hung: &[String]) -> Outcome {
    let mut o = Outcome::default();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(v) = line.strip_prefix("NESTED virt ") {
            o.virt = Some(v.trim().to_string());
        } else if let Some(id) = line.strip_prefix("NESTED start ") {
            current = Some((id.trim().to_string(), String::new()));
        } else if let Some(rest) = line.strip_prefix("NESTED result ") {
            let mut w = rest.split_whitespace();
            let id = w.next().unwrap_or_default().to_string();
            let rc = w
                .next()
                .and_then(|r| r.strip_prefix("rc="))
                .unwrap_or("?")
                .to_string();
            let out = match current.take() {
                Some((cid, out)) if cid == id => out,
                _ => String::new(),
            };
            o.results.insert(id, (rc, out));
        } else if let Some((_, out)) = current.as_mut() {
            out.push_str(line);
            out.push('\n');
        }
    }
    for h in hung {
        let out = match current.take() {
            Some((cid, out)) if &cid == h => out,
            _ => String::new(),
        };
        o.results.insert(h.clone(), ("hung".into(), out));
    }
    // Steps that never started are left absent: `summarize` counts them.
    let _ = steps;
    o
}

/// Sums "N native port exits, M pvm-trapped" over the output.
fn exit_counts(out: &str) -> (u64, u64) {
    let mut sum = (0, 0);
    for line in out.lines() {
        let Some(i) = line.find(" native port exits, ") else {
            continue;
        };
        let native = line[..i]
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse::<u64>().ok());
        let trapped = line[i + " native port exits, ".len()..]
            .split(' ')
            .next()
            .and_then(|n| n.parse::<u64>().ok());
        if let (Some(n), Some(t)) = (native, trapped) {
            sum.0 += n;
            sum.1 += t;
        }
    }
    sum
}

pub(super) struct Summary {
    pub(super) line: String,
    pub(super) ok: bool,
}

pub(super) fn summarize(b: Backend, plan: &Plan, o: &Outcome, took: Duration) -> Summary {
    let mut passed = 0;
    let mut failed = Vec::new();
    let mut native = 0;
    let mut trapped = 0;
    for st in &plan.steps {
        let r = o.results.get(&st.id);
        if let Some((_, out)) = r {
            let (n, t) = exit_counts(out);
            native += n;
            trapped += t;
        }
        if !st.is_test() {
            continue;
        }
        match r {
            Some((rc, _)) if rc == "0" => passed += 1,
            Some((rc, _)) => failed.push(format!("{} ({rc})", st.id)),
            None => failed.push(format!("{} (not run)", st.id)),
        }
    }
    for t in &plan.missing {
        failed.push(format!("{t} (no such test)"));
    }
    let verdict = |id: &str, want: &str| -> (String, bool) {
        match o.results.get(id) {
            Some((rc, out)) => {
                let v = out
                    .lines()
                    .find_map(|l| l.strip_prefix("verdict: "))
                    .map(|v| v.split(" — ").next().unwrap_or(v).to_string())
                    .unwrap_or_else(|| "no verdict".into());
                let good = rc == "0" && v == want;
                (
                    if good {
                        v
                    } else {
                        format!("{v} (rc={rc}, want {want})")
                    },
                    good,
                )
            }
            None => ("not run".into(), false),
        }
    };
    let (on, on_ok) = verdict("scenario-on", "no double access");
    let (off, off_ok) = verdict("scenario-off", "DOUBLE ACCESS");
    let (bench, bench_ok) = match o.results.get("bench") {
        Some((rc, _)) if rc == "0" => ("ok".to_string(), true),
        Some((rc, _)) => (format!("failed (rc={rc})"), false),
        None => ("not run".into(), false),
    };
    let virt = o.virt.clone().unwrap_or_else(|| {
        if b.emulated() {
            "unreported".into()
        } else {
            hv::host::detect().kind.name().into()
        }
    });
    let kind = match virt.as_str() {
        "pvm" => hv::host::VirtKind::Pvm,
        "vt-x" => hv::host::VirtKind::VtX,
        "amd-v" => hv::host::VirtKind::AmdV,
        _ => hv::host::VirtKind::Unknown,
    };
    let want_virt = match b {
        Backend::Host => true,
        Backend::Svm => kind == hv::host::VirtKind::AmdV,
        Backend::Vmx => kind == hv::host::VirtKind::VtX,
    };
    let path = hv::host::check_exit_path(kind, native, trapped);
    let ok = failed.is_empty() && on_ok && off_ok && bench_ok && want_virt && path.is_ok();
    let mut line = format!(
        "nested {} [{}]: {} — {virt}; tests {passed} passed, {} failed",
        b.name(),
        if b.emulated() { "emulated" } else { "native" },
        if ok { "PASS" } else { "FAIL" },
        failed.len()
    );
    if !failed.is_empty() {
        let _ = write!(line, " ({})", failed.join(", "));
    }
    let _ = write!(line, "; skipped {}", plan.skipped.len());
    let mut by_reason: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (id, why) in &plan.skipped {
        by_reason.entry(why).or_default().push(id);
    }
    for (why, ids) in by_reason {
        let _ = write!(line, " [{why}: {}]", ids.join(", "));
    }
    let _ = write!(
        line,
        "; seed on: {on}; seed off: {off}; bench smoke: {bench}; port exits {native} native, {trapped} pvm-trapped ({})",
        match &path {
            Ok(()) => "as this virtualization must".to_string(),
            Err(e) => e.to_string(),
        }
    );
    let _ = write!(line, "; {:.0} s wall", took.as_secs_f64());
    if o.boots > 1 {
        let _ = write!(line, ", {} boots", o.boots);
    }
    Summary { line, ok }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_gives_results_output_virt_and_exit_counts() {
        let log = "boot noise\r\nNESTED virt amd-v\nNESTED start a::t\nexit path on amd-v: 7 native port exits, 0 pvm-trapped\nNESTED result a::t rc=0 secs=1.0\nNESTED start b::u\npanicked\nNESTED result b::u rc=101 secs=0.5\nNESTED start c::v\nlast words\n";
        let o = parse_log(log, &[], &["c::v".into()]);
        assert_eq!(o.virt.as_deref(), Some("amd-v"));
        assert_eq!(o.results["a::t"].0, "0");
        assert_eq!(exit_counts(&o.results["a::t"].1), (7, 0));
        assert_eq!(o.results["b::u"].0, "101");
        assert_eq!(o.results["c::v"], ("hung".into(), "last words\n".into()));
        assert_eq!(
            exit_counts("d1 exit path on pvm: 0 native port exits, 112 pvm-trapped\nx: 3 native port exits, 4 pvm-trapped — ok"),
            (3, 116)
        );
    }
}
