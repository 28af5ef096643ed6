//! `cargo xtask scenario seed --trace OUT.json`: real guests in Perfetto —
//! a named track per vCPU inside its domain's process, VM exits on those
//! tracks, the control plane apart, a flow from the forced grant. Needs
//! `/dev/kvm` (fails under `CI=true` without it).

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;

#[test]
fn seed_trace_has_a_track_per_vcpu_with_its_exits() {
    if !hv::host::require_kvm("seed_trace_has_a_track_per_vcpu_with_its_exits") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("ioacct-seed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let json = dir.join("seed.json");
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["scenario", "seed", "--accounting", "on", "--trace"])
        .arg(&json)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let doc: Value =
        serde_json::from_slice(&std::fs::read(&json).expect("written")).expect("valid JSON");
    let ev = doc["traceEvents"].as_array().expect("traceEvents");
    // (pid, tid) → thread name.
    let threads: BTreeMap<(u64, u64), &str> = ev
        .iter()
        .filter(|e| e["ph"] == "M" && e["name"] == "thread_name")
        .map(|e| {
            (
                (
                    e["pid"].as_u64().unwrap_or(0),
                    e["tid"].as_u64().unwrap_or(0),
                ),
                e["args"]["name"].as_str().unwrap_or(""),
            )
        })
        .collect();
    for (pid, want) in [(0, "d0 vCPU0"), (1, "d1 vCPU0")] {
        let tid = threads
            .iter()
            .find(|(k, n)| k.0 == pid && **n == want)
            .map(|(k, _)| k.1)
            .unwrap_or_else(|| panic!("no `{want}` track in {threads:?}"));
        let exits = ev
            .iter()
            .filter(|e| e["pid"] == pid && e["tid"] == tid)
            .filter(|e| {
                e["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("vm_exit io"))
            })
            .filter(|e| {
                e["args"]["port"]
                    .as_str()
                    .is_some_and(|p| p.starts_with("0x"))
            })
            .count();
        assert!(exits > 10, "{want}: {exits} port exits");
        // Every port exit says which path it took, and it is the host's.
        let want_path = match hv::host::detect().kind {
            hv::host::VirtKind::Pvm => "pvm-trapped",
            _ => "native",
        };
        let paths: Vec<&str> = ev
            .iter()
            .filter(|e| e["pid"] == pid && e["tid"] == tid && e["args"]["port"].is_string())
            .filter_map(|e| e["args"]["path"].as_str())
            .collect();
        assert!(
            !paths.is_empty() && paths.iter().all(|p| *p == want_path),
            "{want}: exit paths {paths:?}"
        );
    }
    // dom0's accesses after the forced grant are denied, and the exits say so.
    assert!(ev
        .iter()
        .any(|e| e["pid"] == 0 && e["name"] == "vm_exit io ✗ deny"));
    // The control plane: the forced grant, and its flow to d0's teardown.
    let grants: Vec<&Value> = ev
        .iter()
        .filter(|e| e["name"] == "grant" && e["args"]["force"] == true)
        .collect();
    assert!(!grants.is_empty());
    let flows: Vec<&Value> = ev.iter().filter(|e| e["ph"] == "f").collect();
    assert!(flows.iter().any(|f| f["pid"] == 0), "a flow ends on d0");
    // Time starts at 0.
    let min = ev
        .iter()
        .filter(|e| e["ph"] != "M")
        .filter_map(|e| e["ts"].as_f64())
        .fold(f64::INFINITY, f64::min);
    assert_eq!(min, 0.0);
}
