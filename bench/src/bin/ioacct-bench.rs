//! `ioacct-bench [--quick] [--out FILE] [--only PREFIX] [--no-progress]`:
//! runs the measurements and writes `results.json` (default
//! `target/bench/results.json`). `cargo xtask bench` builds it in release
//! mode and runs it.
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str =
    "usage: ioacct-bench [--quick] [--out FILE] [--only PREFIX] [--cpus LIST] [--no-progress]

  --quick        fewer parameter points and samples (about two minutes on two cores)
  --out FILE     where to write results.json (default target/bench/results.json)
  --only PREFIX  only the metric families whose names start with PREFIX (e.g. hv.)
  --cpus LIST    pin the measuring thread to the first CPU of LIST and every vCPU
                 thread to the rest (e.g. 0,1 or 2,3-7; one CPU: all on it); default:
                 the first allowed CPU measures, the other allowed CPUs run vCPUs
  --no-progress  print nothing while measuring";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Internal: the loop that `accountant.port_check_instructions` runs under callgrind.
    if let ["--count-port-checks", grants, checks] = args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        let (Ok(grants), Ok(checks)) = (grants.parse(), checks.parse()) else {
            eprintln!("ioacct-bench: --count-port-checks GRANTS CHECKS");
            return ExitCode::from(2);
        };
        return match bench::suites::count_port_checks(grants, checks) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ioacct-bench: {e}");
                ExitCode::FAILURE
            }
        };
    }
    // Internal: every accountant operation once, for `accountant.instructions` under callgrind.
    if args.first().map(String::as_str) == Some(bench::instructions::ENTRY) {
        let quick = match &args[1..] {
            [] => false,
            [q] if q == "--quick" => true,
            _ => {
                eprintln!("ioacct-bench: {} [--quick]", bench::instructions::ENTRY);
                return ExitCode::from(2);
            }
        };
        return match bench::instructions::run_all(quick) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ioacct-bench: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let mut opts = bench::RunOptions {
        quick: false,
        only: None,
        tree: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
        progress: true,
        args: args.clone(),
        cpus: None,
    };
    let mut out = PathBuf::from("target/bench/results.json");
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => opts.quick = true,
            "--no-progress" => opts.progress = false,
            "--out" => match it.next() {
                Some(f) => out = PathBuf::from(f),
                None => {
                    eprintln!("ioacct-bench: --out needs a file\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "--only" => match it.next() {
                Some(p) => opts.only = Some(p.clone()),
                None => {
                    eprintln!("ioacct-bench: --only needs a prefix\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "--cpus" => match it.next().map(|l| hv::affinity::CpuSet::parse(l)) {
                Some(Ok(set)) => opts.cpus = Some(set),
                Some(Err(e)) => {
                    eprintln!("ioacct-bench: --cpus: {e}\n{USAGE}");
                    return ExitCode::from(2);
                }
                None => {
                    eprintln!("ioacct-bench: --cpus needs a CPU list\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("ioacct-bench: unknown argument `{other}`\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let results = bench::run(&opts);
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!("ioacct-bench: {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
    }
    if let Err(e) = std::fs::write(&out, results.to_json()) {
        eprintln!("ioacct-bench: {}: {e}", out.display());
        return ExitCode::FAILURE;
    }
    eprintln!(
        "ioacct-bench: {} metrics, {} not measured, {:.1} s -> {}",
        results.metrics.len(),
        results.not_measured.len(),
        results.run.wall_secs,
        out.display()
    );
    ExitCode::SUCCESS
}
