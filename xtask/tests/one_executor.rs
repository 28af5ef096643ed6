//! `replay` (the accountant) and `scenario trace` (the hypervisor, real VMs)
//! run the same executor: for every conformance trace they print identical
//! lines. Needs `/dev/kvm` (fails under `CI=true` without it).

use std::path::{Path, PathBuf};
use std::process::Command;

fn traces() -> Vec<PathBuf> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = here.parent().unwrap_or(here).join("spec/conformance");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("spec/conformance exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "trace"))
        .collect();
    v.sort();
    v
}

fn run(args: &[&str], trace: &Path) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .arg(trace)
        .output()
        .expect("runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn replay_and_scenario_trace_print_identical_lines() {
    if !hv::host::require_kvm("replay_and_scenario_trace_print_identical_lines") {
        return;
    }
    let all = traces();
    assert!(all.len() >= 7);
    for t in &all {
        let (rc_r, replay) = run(&["replay"], t);
        let (rc_s, scenario) = run(&["scenario", "trace"], t);
        assert_eq!(rc_r, Some(0), "{}: replay", t.display());
        assert_eq!(rc_s, Some(0), "{}: scenario trace\n{scenario}", t.display());
        assert!(replay.lines().count() > 5, "{}: {replay}", t.display());
        assert_eq!(replay, scenario, "{}", t.display());
    }
}
