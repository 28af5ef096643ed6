//! The one way xtask builds and runs the bench binary (`ioacct-bench`):
//! `bench`, `gate` (confirmation, demonstration, baseline), `ab` (each side)
//! and `nested` build it here and run it through [`BenchBin::run`].
//!
//! A build is copied out of its target directory ([`build`]), so a later
//! build of the same tree (an edit while `gate --make-baseline` runs for half
//! an hour, another A/B session) cannot change the binary a series of runs
//! uses: a running binary keeps its inode, and the copy is renamed over the
//! old one.
use reports::Results;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Every injection knob the bench binary reads: never inherited by a run
/// unless asked for ([`BenchRun::env`]).
pub const INJECT_KNOBS: [&str; 3] = [
    "IOACCT_INJECT_PORT_CHECK_SLOWDOWN",
    "IOACCT_INJECT_OP_SLOWDOWN",
    "IOACCT_INJECT_HV_SLOWDOWN",
];

/// `cargo`, as the running cargo named it.
pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// Builds `tree`'s bench binary in release mode into `target` and copies it
/// to `bin` (copy, then rename over). `quiet` hides cargo's progress.
pub fn build(tree: &Path, target: &Path, bin: &Path, quiet: bool) -> Result<PathBuf, String> {
    let mut cmd = Command::new(cargo());
    cmd.current_dir(tree).env("CARGO_TARGET_DIR", target).args([
        "build",
        "--release",
        "-p",
        "bench",
        "--bin",
        "ioacct-bench",
    ]);
    if quiet {
        cmd.arg("--quiet");
    }
    let st = cmd.status().map_err(|e| format!("cannot run cargo: {e}"))?;
    if !st.success() {
        return Err(format!("cargo build of ioacct-bench failed ({st})"));
    }
    let dir = bin.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let tmp = dir.join(format!(".ioacct-bench.{}", std::process::id()));
    std::fs::copy(target.join("release/ioacct-bench"), &tmp)
        .and_then(|_| std::fs::rename(&tmp, bin))
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    Ok(bin.to_owned())
}

/// A built bench binary and the tree it measures (whose commit its results
/// record).
#[derive(Clone, Debug)]
pub struct BenchBin {
    /// The binary.
    pub path: PathBuf,
    /// The source tree it was built from: the runs' working directory.
    pub tree: PathBuf,
    /// Its `--help` text, to tell which options an older revision accepts.
    help: String,
}

/// One run of the bench binary.
#[derive(Clone, Debug, Default)]
pub struct BenchRun<'a> {
    /// `--quick`.
    pub quick: bool,
    /// `--only PREFIX`.
    pub only: Option<&'a str>,
    /// `--cpus LIST`, passed only when the binary accepts it.
    pub cpus: Option<&'a str>,
    /// Show the binary's progress (otherwise `--no-progress` when accepted).
    pub progress: bool,
    /// Environment variables for this run; every other injection knob is
    /// removed.
    pub env: &'a [(String, String)],
}

impl BenchBin {
    /// The binary of the working tree `root`, built into its own `target/`
    /// and copied to `target/bench/bin/ioacct-bench`.
    pub fn of_workspace(root: &Path, quiet: bool) -> Result<BenchBin, String> {
        let bin = root.join("target/bench/bin/ioacct-bench");
        let path = build(root, &root.join("target"), &bin, quiet)?;
        BenchBin::at(path, root.to_owned())
    }

    /// A binary already built from `tree`.
    pub fn at(path: PathBuf, tree: PathBuf) -> Result<BenchBin, String> {
        let out = Command::new(&path)
            .arg("--help")
            .output()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let help = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        Ok(BenchBin { path, tree, help })
    }

    /// Whether the binary's usage names `flag`.
    pub fn accepts(&self, flag: &str) -> bool {
        self.help.contains(flag)
    }

    /// Runs the binary once into `out` and loads the results.
    pub fn run(&self, run: &BenchRun<'_>, out: &Path) -> Result<Results, String> {
        let mut cmd = Command::new(&self.path);
        cmd.current_dir(&self.tree).arg("--out").arg(out);
        if run.quick {
            cmd.arg("--quick");
        }
        if !run.progress && self.accepts("--no-progress") {
            cmd.arg("--no-progress");
        }
        if let Some(o) = run.only {
            cmd.args(["--only", o]);
        }
        if let Some(c) = run.cpus.filter(|_| self.accepts("--cpus")) {
            cmd.args(["--cpus", c]);
        }
        for knob in INJECT_KNOBS {
            cmd.env_remove(knob);
        }
        for (k, v) in run.env {
            cmd.env(k, v);
        }
        let st = cmd
            .status()
            .map_err(|e| format!("{}: {e}", self.path.display()))?;
        if !st.success() {
            return Err(format!("ioacct-bench failed ({st})"));
        }
        Results::load(out).map_err(|e| e.to_string())
    }
}
