//! `cargo xtask loom [--preemptions N]`: the memory-ordering models.
//!
//! loom runs a model's threads under every interleaving (and every value a
//! weak load may return) up to a bound on preemptions, and reports a data
//! race on a `loom::cell::UnsafeCell` as a causality violation. The models
//! run the product's own code: the port table (`accountant/src/ports.rs`)
//! and the vCPU in-flight section (`hv/src/inflight.rs`) take their atomics,
//! and the interrupt table (`hv/src/irq_routing.rs`) its lock, from a
//! `sync` module that is loom's under `--cfg loom`. Each model has a
//! weakened twin (a `Relaxed` release, a fence left out, a raise that
//! delivers after letting the table go) that must fail;
//! it is a `#[should_panic]` test, so a model that stopped finding the
//! race fails this task.
//!
//! Built with `RUSTFLAGS=--cfg loom` into `target/loom`, apart from the
//! normal build (whose flags it would otherwise invalidate).
use crate::report;
use std::process::{Command, ExitCode};

/// `cargo xtask loom`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Preemptions explored per execution (`LOOM_MAX_PREEMPTIONS`). Default 3:
    /// every model, and every weakened twin's failure, within a minute on
    /// 2 cores; more explores more interleavings, slower.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=8))]
    preemptions: u64,
    /// Only the models whose test name contains FILTER.
    #[arg(long, value_name = "FILTER", default_value = "loom_model")]
    filter: String,
}

/// Runs the task.
pub fn run(args: Args) -> ExitCode {
    let root = report::root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(cargo)
        .current_dir(&root)
        .env("RUSTFLAGS", "--cfg loom")
        .env("LOOM_MAX_PREEMPTIONS", args.preemptions.to_string())
        .args([
            "test",
            "-p",
            "accountant",
            "-p",
            "hv",
            "--lib",
            "--target-dir",
            "target/loom",
            "--",
            &args.filter,
        ])
        .status();
    match status {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(s) => {
            eprintln!("loom: the models failed ({s})");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("loom: cannot run cargo: {e}");
            ExitCode::from(4)
        }
    }
}
