//! `ioacct-bench [--quick] [--out FILE] [--only PREFIX] [--no-progress]`:
//! runs the measurements and writes `results.json` (default
//! `target/bench/results.json`). `cargo xtask bench` builds it in release
//! mode and runs it.
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: ioacct-bench [--quick] [--out FILE] [--only PREFIX] [--no-progress]";

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
