//! `cargo xtask`: the one front door. `main` only parses (clap) and
//! dispatches, one module per task; each module owns its `Args`.
//!
//! Adding a task: a module with `pub struct Args` (`#[derive(clap::Args)]`,
//! a doc comment per option) and `pub fn run(Args) -> ExitCode`, then one
//! `mod` line, one [`Task`] variant and one match arm here.

mod ab;
mod bench;
mod benchbin;
mod capi;
mod conformance;
mod export;
mod fuzz;
mod gate;
mod judge;
mod loom;
mod nested;
mod replay;
mod report;
mod scenario;
mod tap;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// ioacct's tasks: measure, report, gate, and run traces through the
/// accountant or the hypervisor.
#[derive(Parser, Debug)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
pub struct Cli {
    /// The task to run.
    #[command(subcommand)]
    pub task: Task,
}

/// One variant per task module.
#[derive(Subcommand, Debug)]
pub enum Task {
    /// Build and run the benchmarks (release), write target/bench/{results.json,report.html}.
    Bench(bench::Args),
    /// Re-render the HTML report from a results file (and a baseline).
    Report(report::Args),
    /// Compare results with the baseline; exit 1 on a regression beyond noise, 3 on a host mismatch.
    Gate(gate::Args),
    /// Build two revisions, run their benchmarks interleaved, judge B against A.
    Ab(ab::Args),
    /// Export a results file in another format (Bencher Metric Format).
    Export(export::Args),
    /// Replay an accountant trace (SPEC section 3): one output line per op.
    Replay(replay::Args),
    /// Run the original scenario, or a trace, on real KVM guests.
    Scenario(scenario::Args),
    /// Run every trace in spec/conformance/ and check its `#=>` expectations.
    Conformance(conformance::Args),
    /// Run the hv suite on VT-x (Bochs) and AMD-V (QEMU) guests, and on the host.
    Nested(nested::Args),
    /// Model-check the port table and the vCPU in-flight section with loom (weakened twins must fail).
    Loom(loom::Args),
    /// Coverage-guided fuzzing (libFuzzer, stable toolchain) of a target in accountant/fuzz/, or `all`.
    Fuzz(fuzz::Args),
    /// Build libioacct (the C library) and its C programs into target/capi/; --check runs the C checks.
    Capi(capi::Args),
}

fn main() -> ExitCode {
    match Cli::parse().task {
        Task::Bench(a) => bench::run(a),
        Task::Report(a) => report::run(a),
        Task::Gate(a) => gate::run(a),
        Task::Ab(a) => ab::run(a),
        Task::Export(a) => export::run(a),
        Task::Replay(a) => replay::run(a),
        Task::Scenario(a) => scenario::run(a),
        Task::Conformance(a) => conformance::run(a),
        Task::Nested(a) => nested::run(a),
        Task::Fuzz(a) => fuzz::run(a),
        Task::Loom(a) => loom::run(a),
        Task::Capi(a) => capi::run(a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_option_has_a_description() {
        fn walk(cmd: &clap::Command, path: &str) {
            for a in cmd.get_arguments() {
                let id = a.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                assert!(a.get_help().is_some(), "{path} {id} has no description");
            }
            for sub in cmd.get_subcommands() {
                if sub.get_name() == "help" {
                    continue;
                }
                assert!(
                    sub.get_about().is_some(),
                    "{path} {} has no description",
                    sub.get_name()
                );
                walk(sub, &format!("{path} {}", sub.get_name()));
            }
        }
        walk(&Cli::command(), "xtask");
    }

    #[test]
    fn usage_errors_are_exit_2_help_is_exit_0() {
        let parse =
            |v: &[&str]| Cli::try_parse_from(std::iter::once("xtask").chain(v.iter().copied()));
        let code = |v: &[&str]| parse(v).err().map(|e| e.exit_code());
        assert_eq!(code(&["bench", "--quick"]), None);
        assert_eq!(code(&["bench", "--frobnicate"]), Some(2));
        assert_eq!(
            code(&["scenario", "seed", "--accounting", "maybe"]),
            Some(2)
        );
        assert_eq!(code(&["scenario"]), Some(2));
        assert_eq!(code(&["gate", "--alpha", "2"]), Some(2));
        assert_eq!(code(&["gate", "--runs", "0"]), Some(2));
        assert_eq!(code(&["gate", "--min-effect", "5"]), Some(2));
        assert_eq!(code(&["gate", "--min-effect", "5%"]), None);
        assert_eq!(code(&["gate", "--format", "xml"]), Some(2));
        assert_eq!(code(&["ab"]), Some(2));
        assert_eq!(code(&["ab", "HEAD", "--rounds", "0"]), Some(2));
        assert_eq!(code(&["ab", "HEAD", "--env-b", "novalue"]), Some(2));
        assert_eq!(code(&["ab", "HEAD", "HEAD", "--quick"]), None);
        assert_eq!(code(&["export"]), Some(2));
        assert_eq!(code(&["replay"]), Some(2));
        assert_eq!(code(&["replay", "--help"]), Some(0));
        assert_eq!(code(&["scenario", "trace", "--help"]), Some(0));
        assert_eq!(code(&["loom", "--preemptions", "2"]), None);
        assert_eq!(code(&["loom", "--preemptions", "0"]), Some(2));
        assert_eq!(code(&["fuzz", "trace", "--secs", "5"]), None);
        assert_eq!(code(&["fuzz", "nothing"]), Some(2));
        assert_eq!(code(&["fuzz", "all", "--secs", "0"]), Some(2));
        assert_eq!(code(&["capi", "--check"]), None);
        assert_eq!(code(&["capi", "--random", "x"]), Some(2));
        assert_eq!(code(&[]), Some(2));
    }
}
