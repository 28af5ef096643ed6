//! `cargo xtask nested [host|vmx|svm|all] [--only TEST…] [--full]`: the hv
//! suite on VT-x and AMD-V without such hardware.
//!
//! Each emulated back end boots Debian's kernel inside a CPU emulator that
//! implements the virtualization extension — QEMU TCG `-cpu max` for AMD-V,
//! Bochs `corei7_skylake_x` for VT-x — loads `kvm_amd` / `kvm_intel` there,
//! and runs every hv test binary (one test per process, each under a
//! timeout, so a hang is a failure), `scenario seed --accounting on` and
//! `--accounting off`, and an hv bench smoke run. The `host` back end runs
//! the same plan on this machine's own `/dev/kvm` (PVM here). `all` runs
//! host, AMD-V and VT-x in that order.
//!
//! One summary line per back end: tests passed/failed, the tests not run
//! and why, the scenario verdicts, the virtualization the guest kernel
//! reported, and the port exits counted native and PVM-trapped (they must
//! be native only on VT-x/AMD-V, trapped on PVM). Results from an emulator
//! are labelled `emulated`: its timings mean nothing and nothing here is
//! gated on time, only on counts and verdicts.
//!
//! What it needs (installed with apt-get when missing and running as root):
//! `qemu-system-x86`, `bochs`, `bochsbios`, `vgabios`, `bochs-term`,
//! `busybox-static`, `isolinux`, `syslinux-common`, `xorriso`, `cpio`, and
//! Debian's `linux-image-*-amd64` package, fetched once with
//! `apt-get download` into `target/nested/cache`. Everything generated
//! (initramfs, ISO, serial logs) lives under `target/nested/`.
//!
//! Inside the guest the runner is this binary again (`nested --in-guest
//! PLAN`): the init script mounts, loads the modules and hands over.
//!
//! Files: [`plan`] (back ends, skips, the steps), [`runner`] (the steps
//! under their timeouts, in the guest or on the host; the bench smoke run),
//! [`results`] (the log read back, the summary line), [`image`] (kernel,
//! modules, initramfs), [`emulators`] (QEMU and Bochs, stall watch),
//! [`pty`] (Bochs' terminals drained), [`host`] (packages, commands).
use crate::report;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

mod emulators;
mod host;
mod image;
mod plan;
mod pty;
mod results;
mod runner;

use emulators::run_emulated;
use host::ensure_packages;
use image::fetch_kernel;
use plan::{build, build_tests, plan, Backend, Built};
use results::summarize;
use runner::{bench_smoke, in_guest, run_host};

/// Failures as messages for the driver to print (exit 2).
type Res<T> = Result<T, String>;

/// `cargo xtask nested`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "An explicit --only runs the named tests even when the back end's skip list holds them.\n\nExit status: 0 every back end passed, 1 a back end failed, 2 bad usage or a set-up failure (packages, build, kernel, emulator)."
)]
pub struct Args {
    /// Back ends, run in the order given [default: all].
    #[arg(value_enum, value_name = "BACKEND")]
    backends: Vec<Which>,
    /// Run only the tests whose id contains one of these strings, in that order.
    #[arg(long, num_args = 1.., value_name = "TEST")]
    only: Vec<String>,
    /// On vmx, also run the tests left out of the default subset for time.
    #[arg(long)]
    full: bool,
    /// CPUs of the emulated machine (1 to 8).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=8))]
    cpus: u32,
    /// Wall time without serial output after which the emulator counts as hung [default: 600 on host and svm, 900 on vmx].
    #[arg(long, value_name = "SECS")]
    stall: Option<u64>,
    /// Print each back end's plan (steps, skipped tests and why, missing subset tests) and exit without running it; builds only the hv tests.
    #[arg(long)]
    list: bool,
    /// Inside the guest: run the plan file PLAN (the init script's hand-over).
    #[arg(long, value_name = "PLAN", hide = true, exclusive = true)]
    in_guest: Option<PathBuf>,
    /// Inside the guest: the hv bench smoke run a plan ends with.
    #[arg(long, hide = true, exclusive = true)]
    bench_smoke: bool,
}

/// A back end as named on the command line.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Which {
    /// This machine's /dev/kvm (PVM here).
    Host,
    /// AMD-V: Debian's kernel under QEMU TCG -cpu max, kvm_amd.
    Svm,
    /// VT-x: the same kernel under Bochs (corei7_skylake_x), kvm_intel; a named subset unless --full.
    Vmx,
    /// host, then svm, then vmx.
    All,
}

impl Args {
    /// The back ends to run, in order: each name once per mention, `all`
    /// (and no name) as host, svm, vmx.
    fn backends(&self) -> Vec<Backend> {
        let all = [Backend::Host, Backend::Svm, Backend::Vmx];
        if self.backends.is_empty() {
            return all.to_vec();
        }
        let mut out = Vec::new();
        for w in &self.backends {
            match w {
                Which::Host => out.push(Backend::Host),
                Which::Svm => out.push(Backend::Svm),
                Which::Vmx => out.push(Backend::Vmx),
                Which::All => out.extend(all),
            }
        }
        out
    }
}

/// Runs the task.
pub fn run(a: Args) -> ExitCode {
    if let Some(plan) = &a.in_guest {
        return in_guest(plan);
    }
    if a.bench_smoke {
        return bench_smoke();
    }
    let backends = a.backends();
    let stall = a.stall.map(Duration::from_secs);
    let done = if a.list {
        list(&backends, &a.only, a.full)
    } else {
        drive(&backends, &a.only, a.full, a.cpus, stall)
    };
    match done {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("xtask nested: {e}");
            ExitCode::from(2)
        }
    }
}

/// `--list`: each back end's plan, one step a line as the guest reads it
/// (`timeout id program args…`, tab-separated; the binaries under their
/// in-guest names, `xtask` and `ioacct-bench` by name on the host), then
/// the tests skipped with the reason and the subset tests no binary has.
fn list(backends: &[Backend], only: &[String], full: bool) -> Res<bool> {
    let built = Built {
        tests: build_tests(&report::root())?,
        xtask: "xtask".into(),
        bench: "ioacct-bench".into(),
    };
    for &b in backends {
        let p = plan(b, &built, only, full);
        println!("# {}", b.name());
        for s in &p.steps {
            println!("{}", s.line());
        }
        for (t, why) in &p.skipped {
            println!("skip {t}: {why}");
        }
        for t in &p.missing {
            println!("missing {t}");
        }
    }
    Ok(true)
}

fn drive(
    backends: &[Backend],
    only: &[String],
    full: bool,
    cpus: u32,
    stall: Option<Duration>,
) -> Res<bool> {
    let root = report::root();
    let work = root.join("target/nested");
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    if backends.iter().any(|b| b.emulated()) {
        ensure_packages()?;
    }
    let built = build(&root)?;
    let mut kernel = None;
    let mut lines = Vec::new();
    let mut ok = true;
    for &b in backends {
        let plan = plan(b, &built, only, full);
        let t0 = Instant::now();
        let outcome = if b.emulated() {
            if kernel.is_none() {
                kernel = Some(fetch_kernel(&work)?);
            }
            let k = kernel.as_ref().ok_or("no kernel")?;
            // One directory per machine shape and selection, so that two
            // can run at once.
            let sel = match (only.is_empty(), full) {
                (false, _) => "only",
                (true, true) => "full",
                (true, false) => "default",
            };
            let dir = work.join(format!("{}-{cpus}cpu-{sel}", b.name()));
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let stall = stall.unwrap_or(b.stall());
            run_emulated(b, &dir, k, &built, &plan.steps, cpus, stall)?
        } else {
            run_host(&work, &plan.steps)?
        };
        let summary = summarize(b, &plan, &outcome, t0.elapsed());
        println!("{}", summary.line);
        ok &= summary.ok;
        lines.push(summary.line);
    }
    if lines.len() > 1 {
        println!("\nnested summary:");
        for l in &lines {
            println!("{l}");
        }
    }
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Cli, Task};
    use clap::Parser as _;

    fn args(v: &[&str]) -> Result<Args, clap::Error> {
        let cli = Cli::try_parse_from(["xtask", "nested"].iter().chain(v).copied())?;
        match cli.task {
            Task::Nested(a) => Ok(a),
            t => panic!("parsed as another task: {t:?}"),
        }
    }

    #[test]
    fn ci_and_readme_command_lines_parse_as_before() {
        use Backend::{Host, Svm, Vmx};
        let a = args(&["all"]).expect("all");
        assert_eq!(a.backends(), [Host, Svm, Vmx]);
        assert!(a.only.is_empty() && !a.full && !a.list);
        assert_eq!((a.cpus, a.stall), (1, None));
        assert_eq!(args(&[]).expect("none").backends(), [Host, Svm, Vmx]);
        let a = args(&["vmx", "--full"]).expect("vmx --full");
        assert_eq!(a.backends(), [Vmx]);
        assert!(a.full);
        let a = args(&["svm", "--only", "domains::", "smp"]).expect("--only");
        assert_eq!(a.backends(), [Svm]);
        assert_eq!(a.only, ["domains::", "smp"]);
        let a = args(&["host", "svm", "--cpus", "2", "--stall", "30"]).expect("cpus");
        assert_eq!(a.backends(), [Host, Svm]);
        assert_eq!((a.cpus, a.stall), (2, Some(30)));
        let a = args(&["--in-guest", "/plan"]).expect("in guest");
        assert_eq!(a.in_guest, Some(PathBuf::from("/plan")));
        assert!(args(&["--bench-smoke"]).expect("smoke").bench_smoke);
    }

    #[test]
    fn bad_command_lines_are_refused() {
        for bad in [
            &["amd"][..],
            &["--cpus", "0"],
            &["--cpus", "9"],
            &["--stall", "soon"],
            &["--only"],
            &["--in-guest", "/plan", "vmx"],
            &["--bench-smoke", "--full"],
        ] {
            let e = args(bad).expect_err(&format!("{bad:?}"));
            assert_eq!(e.exit_code(), 2, "{bad:?}: {e}");
        }
    }
}
