//! `cargo xtask fuzz TARGET [--secs N]`: coverage-guided fuzzing with
//! libFuzzer (through the `libfuzzer-sys` crate) on the stable toolchain.
//!
//! Why libFuzzer without cargo-fuzz: cargo-fuzz's own flags need nightly
//! for a sanitizer, but libFuzzer needs only sanitizer-coverage, and stable
//! rustc emits it (`-Cpasses=sancov-module` and LLVM's
//! `-sanitizer-coverage-*` options), so this task passes those flags to a
//! plain `cargo build` of the `accountant/fuzz/` crate, for the host target only (so
//! build scripts stay uninstrumented) into `target/fuzz`. Nothing to
//! install but a C++ compiler, which `libfuzzer-sys` builds libFuzzer with.
//! Without AddressSanitizer a finding is a panic, an abort, a hang
//! (`-timeout`) or memory past `-rss_limit_mb`; that is what safe Rust can
//! do wrong.
//!
//! Each target fuzzes from `target/fuzz/corpus/TARGET` (seeded from the
//! committed `accountant/fuzz/corpus/TARGET`, which it never writes); a crash is saved
//! as `target/fuzz/artifacts/TARGET/crash-…` and the task exits 1. Keep
//! every crash found as a regression test next to the code it broke.
//! `all` runs every target for `--secs` each (CI's smoke run).
use crate::report;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// The fuzz targets (binaries of `accountant/fuzz/`).
pub const TARGETS: &[&str] = &[
    "trace",
    "boot",
    "hv_exit",
    "capi",
    "host_map",
    "guest_config",
];

/// `all` or one of [`TARGETS`]. A new target: a `[[bin]]` in
/// `accountant/fuzz/Cargo.toml`, its seeds in `accountant/fuzz/corpus/NAME/`, and its name here.
fn target_parser() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(std::iter::once("all").chain(TARGETS.iter().copied()))
}

/// The host triple the targets are built for: naming it keeps the coverage
/// flags off build scripts and proc macros.
const HOST: &str = "x86_64-unknown-linux-gnu";

/// sanitizer-coverage as libFuzzer wants it (what cargo-fuzz passes with
/// `--sanitizer none`): 8-bit edge counters, the PC table for its feature
/// counts, and comparison tracing so it can solve `==` against constants.
const RUSTFLAGS: &[&str] = &[
    "-Cpasses=sancov-module",
    "-Cllvm-args=-sanitizer-coverage-level=4",
    "-Cllvm-args=-sanitizer-coverage-inline-8bit-counters",
    "-Cllvm-args=-sanitizer-coverage-pc-table",
    "-Cllvm-args=-sanitizer-coverage-trace-compares",
    "--cfg",
    "fuzzing",
];

/// `cargo xtask fuzz`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The target to fuzz (`trace`, `boot`, `hv_exit`, `capi`, `host_map`, `guest_config`), or `all` to run each in turn.
    #[arg(value_parser = target_parser())]
    target: String,
    /// Seconds of fuzzing per target (libFuzzer's `-max_total_time`). Default 60:
    /// a smoke run; a campaign wants hours.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    secs: u64,
    /// Only build the targets.
    #[arg(long)]
    build_only: bool,
    /// Extra libFuzzer options passed through (e.g. `-jobs=2`, `-dict=FILE`).
    #[arg(last = true)]
    extra: Vec<String>,
}

/// Runs the task.
pub fn run(args: Args) -> ExitCode {
    let root = report::root();
    if let Err(e) = build(&root) {
        eprintln!("fuzz: {e}");
        return ExitCode::from(4);
    }
    if args.build_only {
        return ExitCode::SUCCESS;
    }
    let targets: Vec<&str> = match args.target.as_str() {
        "all" => TARGETS.to_vec(),
        t => vec![t],
    };
    let mut failed = Vec::new();
    for t in targets {
        match fuzz(&root, t, args.secs, &args.extra) {
            Ok(true) => {}
            Ok(false) => failed.push(t),
            Err(e) => {
                eprintln!("fuzz {t}: {e}");
                return ExitCode::from(4);
            }
        }
    }
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "fuzz: findings in {} (inputs in target/fuzz/artifacts/)",
            failed.join(", ")
        );
        ExitCode::FAILURE
    }
}

/// Builds every target with coverage instrumentation.
fn build(root: &Path) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(cargo)
        .current_dir(root.join("accountant/fuzz"))
        .env("RUSTFLAGS", RUSTFLAGS.join(" "))
        .args([
            "build",
            "--release",
            "--bins",
            "--target",
            HOST,
            "--target-dir",
        ])
        .arg(root.join("target/fuzz"))
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "building the fuzz targets failed ({status}); libfuzzer-sys needs a C++ compiler (apt-get install g++)"
        ))
    }
}

/// Where a target's binary is built.
fn binary(root: &Path, target: &str) -> PathBuf {
    root.join("target/fuzz")
        .join(HOST)
        .join("release")
        .join(target)
}

/// Fuzzes one target for `secs`; `Ok(false)` on a finding.
fn fuzz(root: &Path, target: &str, secs: u64, extra: &[String]) -> Result<bool, String> {
    let seeds = root.join("accountant/fuzz/corpus").join(target);
    let corpus = root.join("target/fuzz/corpus").join(target);
    let artifacts = root.join("target/fuzz/artifacts").join(target);
    for d in [&corpus, &artifacts] {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    println!("==> fuzz {target} for {secs} s (seeds {})", seeds.display());
    let status = Command::new(binary(root, target))
        .arg(format!("-max_total_time={secs}"))
        .arg("-timeout=10")
        .arg("-rss_limit_mb=2048")
        .arg("-print_final_stats=1")
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .args(extra)
        // The first directory is written with new inputs; the seeds only read.
        .arg(&corpus)
        .arg(&seeds)
        .status()
        .map_err(|e| format!("cannot run {}: {e}", binary(root, target).display()))?;
    Ok(status.success())
}
