//! What the integration tests share: the test data's paths, scratch
//! directories, and the command line run in-process.

// Each test file uses some of these helpers, none uses all.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use ioacct_check::cli::run;

/// `tests/data/REL`, as a string for the command line.
pub fn data(rel: &str) -> String {
    format!("{}/tests/data/{rel}", env!("CARGO_MANIFEST_DIR"))
}

/// The snapshot of a real host under `tests/data/hosts`.
pub fn host(name: &str) -> PathBuf {
    PathBuf::from(data(&format!("hosts/{name}")))
}

/// A fresh, empty directory for one test's files, named for the test
/// binary's process and `tag`.
pub fn scratch(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "ioacct-test-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
    d
}

/// Runs `ioacct ARGS…` in-process: the exit code, stdout and stderr.
pub fn ioacct(args: &[&str]) -> (i32, String, String) {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let argv: Vec<&str> = std::iter::once("ioacct")
        .chain(args.iter().copied())
        .collect();
    let code = run(argv, &mut out, &mut err);
    (
        code,
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}
