//! The project's own contract: `cargo xtask conformance` runs every trace of
//! `spec/conformance/` and passes, with nothing outside the repository.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}

fn traces() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("spec/conformance"))
        .expect("spec/conformance exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "trace"))
        .collect();
    v.sort();
    v
}

#[test]
fn every_conformance_trace_passes() {
    let n = traces().len();
    assert!(n >= 7, "the suite has its traces: {n}");
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("conformance")
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    // Every trace, the malformed-trace check, and every trace through the
    // C replay compared with the Rust replay.
    assert!(
        text.contains(&format!("conformance: {} passed, 0 failed", 2 * n + 1)),
        "{text}"
    );
    assert_eq!(text.matches("= Rust replay").count(), n, "{text}");
}

#[test]
fn a_broken_expectation_fails_with_exit_1() {
    let dir = std::env::temp_dir().join(format!("ioacct-conf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let t = dir.join("wrong.trace");
    std::fs::write(&t, "boot #=> ok\ncreate 1 #=> ok\ncreate 1 #=> ok\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("conformance")
        .arg("--rust-only")
        .arg(&t)
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL wrong.trace"), "{text}");
    assert!(text.contains("line 3 `create 1`"), "{text}");
    assert!(text.contains("1 passed, 1 failed"), "{text}");
}

#[test]
fn the_docs_name_only_files_a_clone_has() {
    for doc in ["README.md", "ARCHITECTURE.md"] {
        let text = std::fs::read_to_string(root().join(doc)).expect("doc exists");
        for (i, line) in text.lines().enumerate() {
            // CI also runs the external suite; that line says so.
            if line.contains("../shared") {
                assert!(
                    line.contains(".ci/run"),
                    "{doc}:{}: names a path outside the repository: {line}",
                    i + 1
                );
            }
        }
    }
    assert!(root().join("spec/SPEC.md").exists());
}
