//! The runner: the plan's steps, each under its timeout, in the guest
//! (`nested --in-guest PLAN`) or on the host; and the hv bench smoke run
//! (`nested --bench-smoke`) a plan ends with.
use super::host::sh;
use super::plan::Step;
use super::results::{parse_log, Outcome};
use super::Res;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// The hv suite's workloads of `cargo xtask bench` (`hv::workloads`), with
/// few samples: evidence that they run on this virtualization, not a
/// measurement (an emulator's times mean nothing). Fails if a workload
/// fails or returns a wrong number of samples.
pub(super) fn bench_smoke() -> ExitCode {
    use hv::acct::Accounting;
    use hv::workloads as w;
    const N: usize = 500;
    let mut ok = true;
    let mut show = |what: String, want: usize, r: Result<Vec<u64>, hv::HvError>| match r {
        Ok(mut v) if v.len() == want && v.iter().all(|&x| x > 0) => {
            v.sort_unstable();
            let p = |q: usize| v[(v.len() - 1) * q / 100];
            println!(
                "bench smoke {what}: {} samples, p50 {} ns, p99 {} ns (a smoke run: not a measurement)",
                v.len(),
                p(50),
                p(99)
            );
        }
        Ok(v) => {
            println!("bench smoke {what}: FAILED, {} samples of {want}", v.len());
            ok = false;
        }
        Err(e) => {
            println!("bench smoke {what}: FAILED: {e}");
            ok = false;
        }
    };
    let setup = w::Setup::default();
    show(format!("hv.bare_exit n={N}"), N, w::bare_exit(N, &setup));
    for acc in [Accounting::On, Accounting::Off] {
        for pages in [0u64, 65536] {
            show(
                format!(
                    "hv.pio_exit accounting={} mmio_tracked_pages={pages}",
                    acc.name()
                ),
                N,
                w::pio_exit(acc, pages, N, &setup),
            );
        }
    }
    // Paired workloads: the step samples (the floor is the bare KVM call).
    show(
        "hv.bind pages=256".into(),
        3,
        w::paired::bind(256, 3, None, &setup).map(|p| p.step),
    );
    show(
        "hv.revoke_force pages=256".into(),
        3,
        w::paired::revoke_force(256, 3, w::paired::VcpuState::Parked, None, &setup).map(|p| p.step),
    );
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The in-guest runner: every step of the plan under its timeout, each
/// framed by `NESTED start ID` / `NESTED result ID rc=N secs=S` lines.
pub(super) fn in_guest(plan: &Path) -> ExitCode {
    let text = match std::fs::read_to_string(plan) {
        Ok(t) => t,
        Err(e) => {
            println!("NESTED error reading the plan {}: {e}", plan.display());
            return ExitCode::from(2);
        }
    };
    for step in text.lines().filter_map(Step::parse) {
        run_step(&step);
    }
    println!("NESTED end");
    ExitCode::SUCCESS
}

fn run_step(step: &Step) {
    println!("NESTED start {}", step.id);
    let _ = std::io::stdout().flush();
    let t0 = Instant::now();
    let rc = match Command::new(&step.program)
        .args(&step.args)
        .env("CI", "true")
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .spawn()
    {
        Ok(mut child) => {
            let limit = Duration::from_secs(step.timeout_s);
            loop {
                match child.try_wait() {
                    Ok(Some(s)) => break s.code().map_or("signal".to_string(), |c| c.to_string()),
                    Ok(None) if t0.elapsed() > limit => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break "timeout".to_string();
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                    Err(e) => break format!("wait-error-{}", e.raw_os_error().unwrap_or(0)),
                }
            }
        }
        Err(e) => format!("spawn-error-{}", e.raw_os_error().unwrap_or(0)),
    };
    println!(
        "NESTED result {} rc={rc} secs={:.1}",
        step.id,
        t0.elapsed().as_secs_f64()
    );
    let _ = std::io::stdout().flush();
}

pub(super) fn run_host(work: &Path, steps: &[Step]) -> Res<Outcome> {
    let plan = work.join("host.plan");
    write_plan(&plan, steps)?;
    let log = work.join("host.log");
    let exe = std::env::current_exe().map_err(|e| format!("this binary: {e}"))?;
    let f = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let f2 = f.try_clone().map_err(|e| e.to_string())?;
    eprintln!(
        "xtask nested host: {} steps, log {}",
        steps.len(),
        log.display()
    );
    sh(Command::new(exe)
        .args(["nested", "--in-guest"])
        .arg(&plan)
        .stdout(f)
        .stderr(f2))?;
    let text = std::fs::read_to_string(&log).map_err(|e| e.to_string())?;
    Ok(parse_log(&text, steps, &[]))
}

pub(super) fn write_plan(path: &Path, steps: &[Step]) -> Res<()> {
    let mut s = String::new();
    for st in steps {
        s.push_str(&st.line());
        s.push('\n');
    }
    std::fs::write(path, s).map_err(|e| format!("{}: {e}", path.display()))
}
