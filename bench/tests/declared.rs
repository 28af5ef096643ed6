//! The bench's metric set, as its suites declare it, against the committed
//! baseline and against what a suite really emits.
//!
//! A metric added, renamed or dropped changes the declaration (the suites
//! build their params with the functions their declarations use), and then
//! `bench/baseline.json` no longer matches: the change must land with a new
//! baseline (`cargo xtask gate --make-baseline`), or the gate would report
//! the old keys as missing and never judge the new ones.
use bench::{declared_keys, suites_for, KeyScope};
use reports::Results;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn baseline() -> Results {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("baseline.json");
    Results::load(&path).expect("bench/baseline.json loads")
}

/// The scope the baseline was measured in: its quick flag, and a placement
/// probe over the first (up to four) of its CPUs.
fn scope_of(b: &Results) -> KeyScope {
    KeyScope {
        quick: b.run.quick,
        probe_cpus: (0..b.host.cpus.min(4) as usize).collect(),
    }
}

#[test]
fn the_baseline_holds_exactly_the_declared_metrics() {
    let b = baseline();
    let declared = declared_keys(&scope_of(&b));
    let committed: BTreeSet<String> = b.metrics.iter().map(|m| m.key()).collect();
    let missing: Vec<&String> = declared.difference(&committed).collect();
    let stale: Vec<&String> = committed.difference(&declared).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "bench/baseline.json is out of step with the metrics the bench declares: \
         regenerate it (cargo xtask gate --make-baseline) in the change that adds, \
         renames or drops a metric.\n  declared, not in the baseline ({}): {missing:#?}\n  \
         in the baseline, no longer declared ({}): {stale:#?}",
        missing.len(),
        stale.len()
    );
}

#[test]
fn every_key_is_declared_once_and_named_by_its_suite() {
    let scope = KeyScope {
        quick: true,
        probe_cpus: vec![0, 1],
    };
    for s in suites_for(true, None) {
        let keys = (s.keys)(&scope);
        let distinct: BTreeSet<&String> = keys.iter().collect();
        assert_eq!(distinct.len(), keys.len(), "a key declared twice: {keys:?}");
        for k in &keys {
            let name = k.split(' ').next().unwrap_or("");
            assert!(
                s.emits.iter().any(|e| e.as_str() == name),
                "{k}: not among the suite's names {:?}",
                s.emits
            );
        }
    }
}

/// Runs the quick bench for the metrics starting with `only` and returns
/// the emitted keys and the run's warnings.
fn emitted(only: &str, out: &Path) -> (BTreeSet<String>, Vec<String>) {
    let st = Command::new(env!("CARGO_BIN_EXE_ioacct-bench"))
        .args(["--quick", "--no-progress", "--only", only, "--out"])
        .arg(out)
        .status()
        .expect("run ioacct-bench");
    assert!(st.success(), "ioacct-bench: {st}");
    let r = Results::load(out).expect("results");
    (r.metrics.iter().map(|m| m.key()).collect(), r.run.warnings)
}

#[test]
fn a_suite_emits_what_it_declares() {
    let dir = std::env::temp_dir().join(format!("ioacct-declared-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let scope = KeyScope {
        quick: true,
        probe_cpus: vec![],
    };
    // The exact, cheap suites: tracking memory and the tracepoint loop.
    for only in ["accountant.tracking_", "tracepoints."] {
        let (got, warnings) = emitted(only, &dir.join("results.json"));
        let suite = suites_for(true, Some(only))
            .into_iter()
            .find(|s| s.selected(Some(only)))
            .expect("a suite emits it");
        let want: BTreeSet<String> = (suite.keys)(&scope).into_iter().collect();
        assert_eq!(got, want, "--only {only}");
        assert!(
            !warnings.iter().any(|w| w.contains("declared")),
            "{warnings:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
