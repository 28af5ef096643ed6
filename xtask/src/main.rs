//! `cargo xtask`: the one front door. `main` only dispatches, one module per task.

mod bench;
mod gate;
mod nested;
mod replay;
mod report;
mod scenario;

use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask <task> [args]

tasks:
  bench [--quick]                       run the benchmarks, write target/bench/{results.json,report.html}
  report [RESULTS...]                   regenerate the HTML report from results files
  gate [--baseline FILE] [--results FILE]  fail on a regression against the baseline
  replay FILE [--tracker NAME] [--trace OUT.json]  replay an accountant trace (SPEC section 3)
  nested [host|vmx|svm|all] [--only TEST...] [--full]  the hv suite on VT-x/AMD-V emulators
  scenario seed [--accounting on|off]   the original proposal's scenario on real guests
  scenario trace FILE [--accounting on|off]  apply a trace through the hypervisor, check its #=> lines
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (task, rest) = match args.split_first() {
        Some((t, r)) => (t.as_str(), r),
        None => {
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match task {
        "bench" => bench::run(rest),
        "report" => report::run(rest),
        "gate" => gate::run(rest),
        "replay" => replay::run(rest),
        "scenario" => scenario::run(rest),
        "nested" => nested::run(rest),
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        other => {
            eprintln!("xtask: unknown task `{other}`\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
