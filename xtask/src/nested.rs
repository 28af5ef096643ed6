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
use crate::report;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

const USAGE: &str = "usage: cargo xtask nested [host|vmx|svm|all] [--only TEST...] [--full]
  host   this machine's /dev/kvm (PVM here)
  svm    AMD-V under QEMU TCG (-cpu max)
  vmx    VT-x under Bochs (corei7_skylake_x); a named subset unless --full
  all    host, svm and vmx (the default)
  --only TEST...  run only the tests whose id contains one of these strings, in that order
  --full          on vmx, also run the tests left out of the default subset for time
  --cpus N        CPUs of the emulated machine (default 1)
  --stall SECS    wall time without serial output after which the emulator counts as hung
An explicit --only runs the named tests even when the back end's skip list holds them.";

/// The Debian packages the emulated back ends use, with a file each
/// installs (present means installed).
const PACKAGES: &[(&str, &str)] = &[
    ("qemu-system-x86", "/usr/bin/qemu-system-x86_64"),
    ("bochs", "/usr/bin/bochs"),
    ("bochsbios", "/usr/share/bochs/BIOS-bochs-latest"),
    ("vgabios", "/usr/share/vgabios/vgabios.bin"),
    (
        "bochs-term",
        "/usr/lib/x86_64-linux-gnu/bochs/plugins/libbx_term_gui.so",
    ),
    ("busybox-static", "/bin/busybox"),
    ("isolinux", "/usr/lib/ISOLINUX/isolinux.bin"),
    (
        "syslinux-common",
        "/usr/lib/syslinux/modules/bios/ldlinux.c32",
    ),
    ("xorriso", "/usr/bin/xorriso"),
    ("cpio", "/usr/bin/cpio"),
];

/// The kernel modules loaded in the guest (their dependencies are found in
/// each module's `depends=` and loaded first).
const MODULES: &[&str] = &["kvm-amd", "kvm-intel"];

/// `cargo xtask nested`'s arguments, parsed by [`run`] (see [`USAGE`]).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// [host|vmx|svm|all] [--only TEST...] [--full] [--cpus N] [--stall SECS]
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// A back end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    /// This machine's `/dev/kvm`.
    Host,
    /// AMD-V under QEMU TCG.
    Svm,
    /// VT-x under Bochs.
    Vmx,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Host => "host",
            Backend::Svm => "svm",
            Backend::Vmx => "vmx",
        }
    }

    fn emulated(self) -> bool {
        self != Backend::Host
    }

    /// Per-test timeout, in the clock of the machine the test runs on (a
    /// Bochs guest's clock advances with emulated instructions, not with
    /// wall time).
    fn test_timeout(self) -> u64 {
        match self {
            Backend::Host => 120,
            Backend::Svm => 300,
            // Guest seconds: about a hundred times as many wall seconds.
            Backend::Vmx => 60,
        }
    }

    /// Wall time without any new serial output after which the emulator is
    /// taken to be hung; the test then running is recorded as hung and the
    /// emulator is booted again for the rest of the plan.
    fn stall(self) -> Duration {
        match self {
            Backend::Host | Backend::Svm => Duration::from_secs(600),
            Backend::Vmx => Duration::from_secs(900),
        }
    }
}

/// A test that a back end does not run, and why.
struct Skip {
    /// Substring of the test id.
    test: &'static str,
    /// Why.
    reason: &'static str,
}

/// Tests never run on a back end (also not with `--full`). Empty on the
/// host and on AMD-V: everything runs there.
fn skips(b: Backend) -> &'static [Skip] {
    match b {
        Backend::Host | Backend::Svm => &[],
        Backend::Vmx => VMX_SKIP,
    }
}

/// Tests Bochs cannot run. Empty: every hv test passes under Bochs.
///
/// Two tests once hung there (`domains::revoke_without_force_drains_until_unmap`
/// and `containment::a_spinning_guest_is_stopped_by_destroy`, whose guest
/// runs without exits while the host must stop or change it). The cause is
/// Bochs (2.7, and its current source alike): VM entry recomputes which
/// events are masked (`handleCpuContextChange` → `handleInterruptMaskChange`
/// in `VMenterLoadCheckGuestState`) before it sets `in_vmx_guest`, so for a
/// guest entered with RFLAGS.IF = 0 external interrupts stay masked as in
/// root mode, and "external-interrupt exiting" never fires until the guest
/// exits by itself. With one CPU the guest kernel then never runs again
/// while such a guest spins (in 600 s of Bochs executing, no heartbeat and
/// no host thread). Real VT-x exits there whatever RFLAGS.IF. hv's guests ran with IF = 0 then; since their
/// VMs have KVM's irqchip they run with IF = 1 (`hv::vm`), which Bochs
/// handles: both tests pass under Bochs. A probe guest spinning without
/// exits for 10⁹ instructions, with the host thread sleeping 10 ms: with
/// IF = 1 the host thread woke after 10.0 ms (LOC +1900 meanwhile) and
/// stopped the guest; with IF = 0 it woke only after 285.8 ms, when the
/// guest's loop had ended by itself (LOC +11). On PVM both woke at 10 ms.
const VMX_SKIP: &[Skip] = &[];

/// The tests the default VT-x run (CI) includes: Bochs takes up to minutes
/// of wall time per test, so CI runs one of each kind of exit (port I/O,
/// MMIO, hypercalls, faults, tracepoints), an interrupt injected through
/// KVM's irqchip, two vCPUs revoked while running, the two whose guest
/// never exits while the host stops or changes it, and `--full` runs the
/// rest.
const VMX_SUBSET: &[&str] = &[
    "raw_vm::raw_cpl3_guest_port_io_and_mmio_exits",
    "domains::dom0_driver_maps_the_page_and_drives_the_ports",
    "domains::ungranted_domain_is_denied_ports_and_page",
    "domains::revoke_without_force_drains_until_unmap",
    "containment::faulting_guests_stop_alone",
    "containment::a_spinning_guest_is_stopped_by_destroy",
    "irqchip::bind_delivers_and_unbind_stops_before_it_returns",
    "smp::revoke_while_running_2_vcpus",
    "tracing::vm_exits_hypercalls_and_memslots_are_traced",
];

/// Why a test outside [`VMX_SUBSET`] is not in the default VT-x run.
const VMX_NOT_IN_SUBSET: &str = "outside the VT-x CI subset for time (--full runs it)";

/// One entry of a run plan: a command run under a timeout.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Step {
    /// `binary::test` for tests, `scenario-on`, `scenario-off`, `bench`.
    id: String,
    timeout_s: u64,
    program: String,
    args: Vec<String>,
}

impl Step {
    fn line(&self) -> String {
        let mut s = format!("{}\t{}\t{}", self.timeout_s, self.id, self.program);
        for a in &self.args {
            s.push('\t');
            s.push_str(a);
        }
        s
    }

    fn parse(line: &str) -> Option<Step> {
        let mut f = line.split('\t');
        let timeout_s = f.next()?.parse().ok()?;
        let id = f.next()?.to_string();
        let program = f.next()?.to_string();
        Some(Step {
            id,
            timeout_s,
            program,
            args: f.map(str::to_string).collect(),
        })
    }

    fn is_test(&self) -> bool {
        self.id.contains("::")
    }
}

/// An hv test binary built on the host.
#[derive(Debug, Clone)]
struct TestBin {
    /// `hv` for the unit tests, else the integration test's name.
    name: String,
    path: PathBuf,
    tests: Vec<String>,
}

/// Runs the task.
pub fn run(args: &[String]) -> ExitCode {
    match args {
        [flag, plan] if flag == "--in-guest" => return in_guest(Path::new(plan)),
        [flag] if flag == "--bench-smoke" => return bench_smoke(),
        _ => {}
    }
    let mut backends = Vec::new();
    let mut only = Vec::new();
    let mut full = false;
    let mut in_only = false;
    let mut cpus = 1u32;
    let mut stall = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--stall" => match it.next().and_then(|n| n.parse().ok()) {
                Some(n) => stall = Some(Duration::from_secs(n)),
                None => {
                    eprintln!("xtask nested: --stall takes seconds\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "--cpus" => match it.next().and_then(|n| n.parse().ok()) {
                Some(n @ 1..=8) => cpus = n,
                _ => {
                    eprintln!("xtask nested: --cpus takes 1 to 8\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "host" => backends.push(Backend::Host),
            "svm" => backends.push(Backend::Svm),
            "vmx" => backends.push(Backend::Vmx),
            "all" => backends.extend([Backend::Host, Backend::Svm, Backend::Vmx]),
            "--full" => full = true,
            "--only" => in_only = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            s if in_only && !s.starts_with("--") => only.push(s.to_string()),
            other => {
                eprintln!("xtask nested: unknown argument `{other}`\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    if backends.is_empty() {
        backends.extend([Backend::Host, Backend::Svm, Backend::Vmx]);
    }
    match drive(&backends, &only, full, cpus, stall) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("xtask nested: {e}");
            ExitCode::from(2)
        }
    }
}

type Res<T> = Result<T, String>;

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

fn have(file: &str) -> bool {
    Path::new(file).exists()
}

fn ensure_packages() -> Res<()> {
    let missing: Vec<&str> = PACKAGES
        .iter()
        .filter(|(_, f)| !have(f))
        .map(|(p, _)| *p)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if !root || !have("/usr/bin/apt-get") {
        return Err(format!(
            "the emulated back ends need these Debian packages: {} (run as root on Debian/Ubuntu to have them installed, or install them yourself)",
            missing.join(" ")
        ));
    }
    eprintln!("xtask nested: installing {}", missing.join(" "));
    sh(Command::new("apt-get").args(["update", "-qq"]))?;
    sh(Command::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing))?;
    let still: Vec<&str> = PACKAGES
        .iter()
        .filter(|(_, f)| !have(f))
        .map(|(p, _)| *p)
        .collect();
    if still.is_empty() {
        Ok(())
    } else {
        Err(format!("installed, yet missing: {}", still.join(" ")))
    }
}

/// Runs a command to completion, its output shown; an error unless it
/// succeeded.
fn sh(cmd: &mut Command) -> Res<()> {
    let what = format!("{cmd:?}");
    match cmd.status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("{what}: {s}")),
        Err(e) => Err(format!("{what}: {e}")),
    }
}

/// Runs a command and returns its stdout.
fn output(cmd: &mut Command) -> Res<String> {
    let what = format!("{cmd:?}");
    match cmd.stderr(Stdio::inherit()).output() {
        Ok(o) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout).into_owned()),
        Ok(o) => Err(format!("{what}: {}", o.status)),
        Err(e) => Err(format!("{what}: {e}")),
    }
}

/// What the host built: the hv test binaries, this xtask binary and the
/// release bench binary.
struct Built {
    tests: Vec<TestBin>,
    xtask: PathBuf,
    bench: PathBuf,
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

fn build(root: &Path) -> Res<Built> {
    eprintln!("xtask nested: building the hv tests and the bench binary");
    let json = output(Command::new(cargo()).current_dir(root).args([
        "test",
        "-p",
        "hv",
        "--no-run",
        "--message-format=json",
    ]))?;
    let mut tests = Vec::new();
    for line in json.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let (Some(exe), Some(name)) = (
            v.get("executable").and_then(|e| e.as_str()),
            v.pointer("/target/name").and_then(|n| n.as_str()),
        ) else {
            continue;
        };
        if v.pointer("/profile/test").and_then(|t| t.as_bool()) != Some(true) {
            continue;
        }
        let path = PathBuf::from(exe);
        let list = output(Command::new(&path).args(["--list", "--format", "terse"]))?;
        let names = list
            .lines()
            .filter_map(|l| l.strip_suffix(": test"))
            .map(str::to_string)
            .collect();
        tests.push(TestBin {
            name: name.to_string(),
            path,
            tests: names,
        });
    }
    tests.sort_by(|a, b| a.name.cmp(&b.name));
    if tests.is_empty() {
        return Err("cargo built no hv test binary".into());
    }
    let bench = crate::benchbin::build(
        root,
        &root.join("target"),
        &root.join("target/bench/bin/ioacct-bench"),
        true,
    )?;
    let xtask = std::env::current_exe().map_err(|e| format!("this binary: {e}"))?;
    Ok(Built {
        tests,
        xtask,
        bench,
    })
}

/// A back end's plan and what it leaves out.
struct Plan {
    steps: Vec<Step>,
    /// Test ids left out, with the reason.
    skipped: Vec<(String, &'static str)>,
    /// Tests of [`VMX_SUBSET`] that no binary has (renamed?): failures.
    missing: Vec<&'static str>,
}

fn plan(b: Backend, built: &Built, only: &[String], full: bool) -> Plan {
    plan_with(b, skips(b), built, only, full)
}

/// [`plan`] with the skip list given.
fn plan_with(
    b: Backend,
    skip: &'static [Skip],
    built: &Built,
    only: &[String],
    full: bool,
) -> Plan {
    let in_guest = b.emulated();
    let prog = |host: &Path, name: &str| {
        if in_guest {
            format!("/x/{name}")
        } else {
            host.display().to_string()
        }
    };
    let mut steps = Vec::new();
    let mut skipped = Vec::new();
    let subset = b == Backend::Vmx && !full && only.is_empty();
    for bin in &built.tests {
        for t in &bin.tests {
            let id = format!("{}::{t}", bin.name);
            if !only.is_empty() && !only.iter().any(|o| id.contains(o.as_str())) {
                continue;
            }
            // Naming a test with --only runs it even where it is skipped.
            let listed = if only.is_empty() { skip } else { &[] };
            if let Some(s) = listed.iter().find(|s| id.contains(s.test)) {
                skipped.push((id, s.reason));
                continue;
            }
            if subset && !VMX_SUBSET.contains(&id.as_str()) {
                skipped.push((id, VMX_NOT_IN_SUBSET));
                continue;
            }
            steps.push(Step {
                id,
                timeout_s: b.test_timeout(),
                program: prog(&bin.path, &format!("t-{}", bin.name)),
                args: vec![
                    t.clone(),
                    "--exact".into(),
                    "--test-threads=1".into(),
                    "--nocapture".into(),
                ],
            });
        }
    }
    // Named tests run in the order named (a slow emulator reaches the
    // first ones first), each name's tests in binary order.
    steps.sort_by_key(|s| {
        only.iter()
            .position(|o| s.id.contains(o.as_str()))
            .unwrap_or(0)
    });
    let xtask = prog(&built.xtask, "xtask");
    for m in ["on", "off"] {
        steps.push(Step {
            id: format!("scenario-{m}"),
            timeout_s: b.test_timeout(),
            program: xtask.clone(),
            args: ["scenario", "seed", "--accounting", m]
                .map(String::from)
                .to_vec(),
        });
    }
    // The real harness where it finishes in a minute; in an emulator, where
    // its quick run would take most of the CI budget, the same workloads
    // with a few samples each.
    steps.push(if in_guest {
        Step {
            id: "bench".into(),
            timeout_s: b.test_timeout(),
            program: xtask,
            args: vec!["nested".into(), "--bench-smoke".into()],
        }
    } else {
        Step {
            id: "bench".into(),
            timeout_s: b.test_timeout() * 2,
            program: prog(&built.bench, "ioacct-bench"),
            args: [
                "--quick",
                "--only",
                "hv.",
                "--no-progress",
                "--out",
                "/tmp/nested-bench.json",
            ]
            .map(String::from)
            .to_vec(),
        }
    });
    let missing = if subset {
        VMX_SUBSET
            .iter()
            .filter(|t| !steps.iter().any(|s| s.id == **t))
            .copied()
            .collect()
    } else {
        Vec::new()
    };
    Plan {
        steps,
        skipped,
        missing,
    }
}

/// The hv suite's workloads of `cargo xtask bench` (`hv::workloads`), with
/// few samples: evidence that they run on this virtualization, not a
/// measurement (an emulator's times mean nothing). Fails if a workload
/// fails or returns a wrong number of samples.
fn bench_smoke() -> ExitCode {
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

// ---------------------------------------------------------------- runner

/// The in-guest runner: every step of the plan under its timeout, each
/// framed by `NESTED start ID` / `NESTED result ID rc=N secs=S` lines.
fn in_guest(plan: &Path) -> ExitCode {
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

fn run_host(work: &Path, steps: &[Step]) -> Res<Outcome> {
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

fn write_plan(path: &Path, steps: &[Step]) -> Res<()> {
    let mut s = String::new();
    for st in steps {
        s.push_str(&st.line());
        s.push('\n');
    }
    std::fs::write(path, s).map_err(|e| format!("{}: {e}", path.display()))
}

// ---------------------------------------------------------------- results

/// What a back end's log says.
#[derive(Debug, Default)]
struct Outcome {
    /// Step id → `rc=…` word (`0`, `101`, `timeout`, `hung`, …) and output.
    results: BTreeMap<String, (String, String)>,
    /// The virtualization the guest kernel reported (`NESTED virt …`).
    virt: Option<String>,
    /// Boots of the emulator it took.
    boots: u32,
}

/// Parses a serial log (or the host runner's output). `hung` names steps
/// the driver gave up on after a stall.
fn parse_log(text: &str, steps: &[Step], hung: &[String]) -> Outcome {
    let mut o = Outcome::default();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(v) = line.strip_prefix("NESTED virt ") {
            o.virt = Some(v.trim().to_string());
        } else if let Some(id) = line.strip_prefix("NESTED start ") {
            current = Some((id.trim().to_string(), String::new()));
        } else if let Some(rest) = line.strip_prefix("NESTED result ") {
            let mut w = rest.split_whitespace();
            let id = w.next().unwrap_or_default().to_string();
            let rc = w
                .next()
                .and_then(|r| r.strip_prefix("rc="))
                .unwrap_or("?")
                .to_string();
            let out = match current.take() {
                Some((cid, out)) if cid == id => out,
                _ => String::new(),
            };
            o.results.insert(id, (rc, out));
        } else if let Some((_, out)) = current.as_mut() {
            out.push_str(line);
            out.push('\n');
        }
    }
    for h in hung {
        let out = match current.take() {
            Some((cid, out)) if &cid == h => out,
            _ => String::new(),
        };
        o.results.insert(h.clone(), ("hung".into(), out));
    }
    // Steps that never started are left absent: `summarize` counts them.
    let _ = steps;
    o
}

/// Sums "N native port exits, M pvm-trapped" over the output.
fn exit_counts(out: &str) -> (u64, u64) {
    let mut sum = (0, 0);
    for line in out.lines() {
        let Some(i) = line.find(" native port exits, ") else {
            continue;
        };
        let native = line[..i]
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse::<u64>().ok());
        let trapped = line[i + " native port exits, ".len()..]
            .split(' ')
            .next()
            .and_then(|n| n.parse::<u64>().ok());
        if let (Some(n), Some(t)) = (native, trapped) {
            sum.0 += n;
            sum.1 += t;
        }
    }
    sum
}

struct Summary {
    line: String,
    ok: bool,
}

fn summarize(b: Backend, plan: &Plan, o: &Outcome, took: Duration) -> Summary {
    let mut passed = 0;
    let mut failed = Vec::new();
    let mut native = 0;
    let mut trapped = 0;
    for st in &plan.steps {
        let r = o.results.get(&st.id);
        if let Some((_, out)) = r {
            let (n, t) = exit_counts(out);
            native += n;
            trapped += t;
        }
        if !st.is_test() {
            continue;
        }
        match r {
            Some((rc, _)) if rc == "0" => passed += 1,
            Some((rc, _)) => failed.push(format!("{} ({rc})", st.id)),
            None => failed.push(format!("{} (not run)", st.id)),
        }
    }
    for t in &plan.missing {
        failed.push(format!("{t} (no such test)"));
    }
    let verdict = |id: &str, want: &str| -> (String, bool) {
        match o.results.get(id) {
            Some((rc, out)) => {
                let v = out
                    .lines()
                    .find_map(|l| l.strip_prefix("verdict: "))
                    .map(|v| v.split(" — ").next().unwrap_or(v).to_string())
                    .unwrap_or_else(|| "no verdict".into());
                let good = rc == "0" && v == want;
                (
                    if good {
                        v
                    } else {
                        format!("{v} (rc={rc}, want {want})")
                    },
                    good,
                )
            }
            None => ("not run".into(), false),
        }
    };
    let (on, on_ok) = verdict("scenario-on", "no double access");
    let (off, off_ok) = verdict("scenario-off", "DOUBLE ACCESS");
    let (bench, bench_ok) = match o.results.get("bench") {
        Some((rc, _)) if rc == "0" => ("ok".to_string(), true),
        Some((rc, _)) => (format!("failed (rc={rc})"), false),
        None => ("not run".into(), false),
    };
    let virt = o.virt.clone().unwrap_or_else(|| {
        if b.emulated() {
            "unreported".into()
        } else {
            hv::host::detect().kind.name().into()
        }
    });
    let kind = match virt.as_str() {
        "pvm" => hv::host::VirtKind::Pvm,
        "vt-x" => hv::host::VirtKind::VtX,
        "amd-v" => hv::host::VirtKind::AmdV,
        _ => hv::host::VirtKind::Unknown,
    };
    let want_virt = match b {
        Backend::Host => true,
        Backend::Svm => kind == hv::host::VirtKind::AmdV,
        Backend::Vmx => kind == hv::host::VirtKind::VtX,
    };
    let path = hv::host::check_exit_path(kind, native, trapped);
    let ok = failed.is_empty() && on_ok && off_ok && bench_ok && want_virt && path.is_ok();
    let mut line = format!(
        "nested {} [{}]: {} — {virt}; tests {passed} passed, {} failed",
        b.name(),
        if b.emulated() { "emulated" } else { "native" },
        if ok { "PASS" } else { "FAIL" },
        failed.len()
    );
    if !failed.is_empty() {
        let _ = write!(line, " ({})", failed.join(", "));
    }
    let _ = write!(line, "; skipped {}", plan.skipped.len());
    let mut by_reason: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (id, why) in &plan.skipped {
        by_reason.entry(why).or_default().push(id);
    }
    for (why, ids) in by_reason {
        let _ = write!(line, " [{why}: {}]", ids.join(", "));
    }
    let _ = write!(
        line,
        "; seed on: {on}; seed off: {off}; bench smoke: {bench}; port exits {native} native, {trapped} pvm-trapped ({})",
        match &path {
            Ok(()) => "as this virtualization must".to_string(),
            Err(e) => e.to_string(),
        }
    );
    let _ = write!(line, "; {:.0} s wall", took.as_secs_f64());
    if o.boots > 1 {
        let _ = write!(line, ", {} boots", o.boots);
    }
    Summary { line, ok }
}

// ---------------------------------------------------------------- guest image

/// The guest kernel and the modules it loads, in load order.
struct Kernel {
    vmlinuz: PathBuf,
    modules: Vec<PathBuf>,
}

fn fetch_kernel(work: &Path) -> Res<Kernel> {
    let cache = work.join("cache");
    std::fs::create_dir_all(&cache).map_err(|e| e.to_string())?;
    let deps = output(Command::new("apt-cache").args(["depends", "linux-image-amd64"]))?;
    let pkg = deps
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .map(str::trim)
        .find(|p| p.starts_with("linux-image-") && p.ends_with("-amd64"))
        .map(str::to_string)
        .ok_or("apt-cache names no linux-image-*-amd64 for linux-image-amd64 (apt-get update?)")?;
    let has_deb = |dir: &Path| -> Option<PathBuf> {
        std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("{pkg}_")) && n.ends_with(".deb"))
            })
    };
    let deb = match has_deb(&cache) {
        Some(d) => d,
        None => {
            eprintln!("xtask nested: apt-get download {pkg}");
            sh(Command::new("apt-get")
                .current_dir(&cache)
                .args(["download", &pkg]))?;
            has_deb(&cache).ok_or("apt-get download left no .deb")?
        }
    };
    let tree = cache.join(&pkg);
    if !tree.join("boot").exists() {
        sh(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tree))?;
    }
    let boot = std::fs::read_dir(tree.join("boot")).map_err(|e| e.to_string())?;
    let vmlinuz = boot
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-"))
        })
        .ok_or("no boot/vmlinuz-* in the kernel package")?;
    let mut all = BTreeMap::new();
    collect_modules(&tree.join("lib/modules"), &mut all);
    let mut order = Vec::new();
    for m in MODULES {
        add_module(m, &all, &mut order, 0)?;
    }
    Ok(Kernel {
        vmlinuz,
        modules: order,
    })
}

/// Module name (with `_`) → path, for every uncompressed `.ko` below `dir`.
fn collect_modules(dir: &Path, out: &mut BTreeMap<String, PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect_modules(&p, out);
        } else if let Some(n) = p.file_name().and_then(|n| n.to_str()) {
            if let Some(stem) = n.strip_suffix(".ko") {
                out.insert(stem.replace('-', "_"), p.clone());
            }
        }
    }
}

/// Appends `name` after its dependencies (from the module's `depends=`).
fn add_module(
    name: &str,
    all: &BTreeMap<String, PathBuf>,
    order: &mut Vec<PathBuf>,
    depth: u32,
) -> Res<()> {
    let key = name.replace('-', "_");
    let path = all
        .get(&key)
        .ok_or_else(|| format!("module {name} not in the kernel package"))?;
    if order.contains(path) {
        return Ok(());
    }
    if depth > 16 {
        return Err(format!("module dependencies too deep at {name}"));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let deps = modinfo_depends(&bytes);
    for d in deps.split(',').filter(|d| !d.is_empty()) {
        add_module(d, all, order, depth + 1)?;
    }
    order.push(path.clone());
    Ok(())
}

/// The `depends=` value of a module's `.modinfo` strings.
fn modinfo_depends(ko: &[u8]) -> String {
    let key = b"depends=";
    let mut i = 0;
    while i + key.len() <= ko.len() {
        if &ko[i..i + key.len()] == key && (i == 0 || ko[i - 1] == 0) {
            let start = i + key.len();
            let end = ko[start..]
                .iter()
                .position(|&c| c == 0)
                .map_or(ko.len(), |p| start + p);
            return String::from_utf8_lossy(&ko[start..end]).into_owned();
        }
        i += 1;
    }
    String::new()
}

const INIT: &str = include_str!("../nested/init");

/// Builds an uncompressed initramfs (a Bochs guest would take minutes to
/// decompress one) holding busybox, the binaries, their libraries, the
/// modules, the plan and the init script.
fn initramfs(work: &Path, b: Backend, k: &Kernel, built: &Built, steps: &[Step]) -> Res<PathBuf> {
    let dir = work.join(format!("{}-root", b.name()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| e.to_string())?;
    }
    for d in ["bin", "x", "modules", "proc", "sys", "dev", "tmp"] {
        std::fs::create_dir_all(dir.join(d)).map_err(|e| e.to_string())?;
    }
    let copy = |from: &Path, to: &Path| -> Res<()> {
        if let Some(p) = to.parent() {
            std::fs::create_dir_all(p).map_err(|e| e.to_string())?;
        }
        std::fs::copy(from, to)
            .map(|_| ())
            .map_err(|e| format!("{} → {}: {e}", from.display(), to.display()))
    };
    copy(Path::new("/bin/busybox"), &dir.join("bin/busybox"))?;
    let mut bins: Vec<(PathBuf, String)> = built
        .tests
        .iter()
        .map(|t| (t.path.clone(), format!("t-{}", t.name)))
        .collect();
    bins.push((built.xtask.clone(), "xtask".into()));
    bins.push((built.bench.clone(), "ioacct-bench".into()));
    let mut libs = std::collections::BTreeSet::new();
    for (from, name) in &bins {
        let to = dir.join("x").join(name);
        // Debug info is most of a test binary; symbols stay for backtraces.
        sh(Command::new("objcopy")
            .arg("--strip-debug")
            .arg(from)
            .arg(&to))?;
        let ldd = output(Command::new("ldd").arg(from))?;
        for l in ldd.lines() {
            if let Some(p) = l.split_whitespace().find(|w| w.starts_with('/')) {
                libs.insert(PathBuf::from(p));
            }
        }
    }
    for l in &libs {
        let real = std::fs::canonicalize(l).map_err(|e| format!("{}: {e}", l.display()))?;
        let rel = l.strip_prefix("/").map_err(|e| e.to_string())?;
        copy(&real, &dir.join(rel))?;
    }
    let mut order = String::new();
    for m in &k.modules {
        let n = m
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or("module name")?;
        copy(m, &dir.join("modules").join(n))?;
        order.push_str(n);
        order.push('\n');
    }
    std::fs::write(dir.join("modules/order"), order).map_err(|e| e.to_string())?;
    write_plan(&dir.join("plan"), steps)?;
    let init = dir.join("init");
    std::fs::write(&init, INIT).map_err(|e| e.to_string())?;
    sh(Command::new("chmod").arg("755").arg(&init))?;
    let img = work.join(format!("{}-initrd.cpio", b.name()));
    let f = std::fs::File::create(&img).map_err(|e| e.to_string())?;
    let mut cpio = Command::new("cpio")
        .args(["-o", "-H", "newc", "--quiet"])
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(f)
        .spawn()
        .map_err(|e| format!("cpio: {e}"))?;
    let list = output(Command::new("find").arg(".").current_dir(&dir))?;
    if let Some(mut stdin) = cpio.stdin.take() {
        stdin
            .write_all(list.as_bytes())
            .map_err(|e| format!("cpio: {e}"))?;
    }
    let s = cpio.wait().map_err(|e| format!("cpio: {e}"))?;
    if !s.success() {
        return Err(format!("cpio: {s}"));
    }
    Ok(img)
}

const CMDLINE: &str = "console=ttyS0,115200 panic=-1 rdinit=/init mitigations=off";

/// Boots the back end's emulator until the plan is done, booting again for
/// the rest of the plan after a stall (the test running then is recorded
/// as hung).
fn run_emulated(
    b: Backend,
    work: &Path,
    k: &Kernel,
    built: &Built,
    steps: &[Step],
    cpus: u32,
    stall: Duration,
) -> Res<Outcome> {
    let mut left: Vec<Step> = steps.to_vec();
    let mut text = String::new();
    let mut hung: Vec<String> = Vec::new();
    let mut boots = 0;
    while !left.is_empty() && boots < 3 {
        boots += 1;
        let img = initramfs(work, b, k, built, &left)?;
        let log = work.join(format!("{}-serial-{boots}.log", b.name()));
        let _ = std::fs::remove_file(&log);
        eprintln!(
            "xtask nested {}: boot {boots}, {} steps, serial log {}",
            b.name(),
            left.len(),
            log.display()
        );
        let mut child = match b {
            Backend::Svm => qemu(k, &img, &log, cpus)?,
            Backend::Vmx => bochs(work, k, &img, &log, cpus)?,
            Backend::Host => return Err("host is not emulated".into()),
        };
        let stalled = watch(&mut child, &log, stall);
        let part = std::fs::read_to_string(&log).unwrap_or_default();
        let o = parse_log(&part, &left, &[]);
        text.push_str(&part);
        let done = |s: &Step| o.results.contains_key(&s.id);
        if stalled {
            // The step that started and never finished is the hung one.
            let cur = part
                .lines()
                .filter_map(|l| l.trim_end_matches('\r').strip_prefix("NESTED start "))
                .next_back()
                .map(|s| s.trim().to_string());
            match cur {
                Some(c) if !o.results.contains_key(&c) => {
                    eprintln!(
                        "xtask nested {}: {c} hung (no output for {stall:?})",
                        b.name()
                    );
                    hung.push(c);
                }
                _ => break,
            }
        } else if !part.contains("NESTED end") {
            break;
        }
        left.retain(|s| !done(s) && !hung.contains(&s.id));
    }
    let mut o = parse_log(&text, steps, &hung);
    o.boots = boots;
    Ok(o)
}

/// Waits for the emulator to exit; kills it and returns `true` when the log
/// has had nothing but heartbeats for `stall`.
fn watch(child: &mut std::process::Child, log: &Path, stall: Duration) -> bool {
    let mut last_len = 0;
    let mut last_work = 0;
    let mut last_change = Instant::now();
    let booted = Instant::now();
    let mut shown = 0usize;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        let len = std::fs::metadata(log).map(|m| m.len()).unwrap_or(0);
        if len != last_len {
            last_len = len;
            let text = std::fs::read(log).unwrap_or_default();
            let text = String::from_utf8_lossy(&text);
            let mut work = 0;
            let mut marks = Vec::new();
            for l in text.lines() {
                if l.starts_with("NESTED heartbeat") {
                    continue;
                }
                work += l.len() + 1;
                if l.starts_with("NESTED ") {
                    marks.push(l.trim_end());
                }
            }
            if work != last_work {
                last_work = work;
                last_change = Instant::now();
            }
            // Done: a Bochs guest's few seconds before powering off are
            // minutes of wall time; the serial log is complete already.
            if marks.contains(&"NESTED end") {
                std::thread::sleep(Duration::from_secs(3));
                kill_group(child);
                return false;
            }
            // Progress: echo the runner's lines as they come, with the
            // wall time since the emulator started.
            for l in marks.iter().skip(shown) {
                eprintln!("  [{:>5.0} s] {l}", booted.elapsed().as_secs_f64());
            }
            shown = marks.len();
        }
        if last_change.elapsed() > stall {
            kill_group(child);
            return true;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Kills the emulator's whole process group.
fn kill_group(child: &mut std::process::Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: the child was spawned as the leader of its own process
        // group (`process_group(0)`) and has not been reaped (we still hold
        // it), so `-pid` names only that group.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.wait();
}

fn qemu(k: &Kernel, img: &Path, log: &Path, cpus: u32) -> Res<std::process::Child> {
    Command::new("qemu-system-x86_64")
        .args(["-accel", "tcg,thread=multi", "-cpu", "max", "-m", "3G"])
        .arg("-smp")
        .arg(cpus.to_string())
        .arg("-kernel")
        .arg(&k.vmlinuz)
        .arg("-initrd")
        .arg(img)
        .args(["-append", CMDLINE])
        .args(["-display", "none", "-monitor", "none", "-no-reboot"])
        .arg("-serial")
        .arg(format!("file:{}", log.display()))
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("qemu-system-x86_64: {e}"))
}

/// Bochs boots from an ISO (isolinux); its debugger-enabled build stops at
/// a prompt unless its command file says `c`, and its `term` display needs
/// a terminal ([`drained_pty`]).
fn bochs(work: &Path, k: &Kernel, img: &Path, log: &Path, cpus: u32) -> Res<std::process::Child> {
    let iso_dir = work.join("vmx-iso");
    if iso_dir.exists() {
        std::fs::remove_dir_all(&iso_dir).map_err(|e| e.to_string())?;
    }
    std::fs::create_dir_all(iso_dir.join("isolinux")).map_err(|e| e.to_string())?;
    let cp = |from: &Path, to: &str| {
        std::fs::copy(from, iso_dir.join(to))
            .map(|_| ())
            .map_err(|e| format!("{}: {e}", from.display()))
    };
    cp(
        Path::new("/usr/lib/ISOLINUX/isolinux.bin"),
        "isolinux/isolinux.bin",
    )?;
    cp(
        Path::new("/usr/lib/syslinux/modules/bios/ldlinux.c32"),
        "isolinux/ldlinux.c32",
    )?;
    cp(&k.vmlinuz, "vmlinuz")?;
    cp(img, "initrd")?;
    std::fs::write(
        iso_dir.join("isolinux/isolinux.cfg"),
        format!("DEFAULT linux\nPROMPT 0\nLABEL linux\n  KERNEL /vmlinuz\n  APPEND initrd=/initrd {CMDLINE}\n"),
    )
    .map_err(|e| e.to_string())?;
    let iso = work.join("vmx.iso");
    let _ = std::fs::remove_file(&iso);
    sh(Command::new("xorriso")
        .stderr(Stdio::null())
        .args(["-as", "mkisofs", "-quiet", "-o"])
        .arg(&iso)
        .args([
            "-b",
            "isolinux/isolinux.bin",
            "-c",
            "isolinux/boot.cat",
            "-no-emul-boot",
            "-boot-load-size",
            "4",
            "-boot-info-table",
        ])
        .arg(&iso_dir))?;
    let rc = work.join("bochsrc");
    std::fs::write(
        &rc,
        format!(
            "megs: 2048
cpu: model=corei7_skylake_x, count={cpus}
romimage: file=/usr/share/bochs/BIOS-bochs-latest
vgaromimage: file=/usr/share/vgabios/vgabios.bin
ata0-master: type=cdrom, path={iso}, status=inserted
boot: cdrom
com1: enabled=1, mode=file, dev={log}
display_library: term
clock: sync=none, time0=local
log: {blog}
panic: action=fatal
error: action=report
info: action=ignore
debug: action=ignore
",
            iso = iso.display(),
            log = log.display(),
            blog = work.join("bochs.log").display(),
        ),
    )
    .map_err(|e| e.to_string())?;
    let cmds = work.join("bochs.cmds");
    std::fs::write(&cmds, "c\n").map_err(|e| e.to_string())?;
    let tty = drained_pty()?;
    let (tin, tout) = (
        tty.try_clone().map_err(|e| format!("pty: {e}"))?,
        tty.try_clone().map_err(|e| format!("pty: {e}"))?,
    );
    let child = Command::new("bochs")
        .arg("-q")
        .arg("-f")
        .arg(&rc)
        .arg("-rc")
        .arg(&cmds)
        .env("TERM", "xterm")
        .env("COLUMNS", "80")
        .env("LINES", "25")
        .process_group(0)
        .stdin(Stdio::from(tin))
        .stdout(Stdio::from(tout))
        .stderr(Stdio::from(tty))
        .spawn()
        .map_err(|e| format!("bochs: {e}"))?;
    drain_own_ptys(child.id());
    Ok(child)
}

/// Debian's Bochs (built with its debugger) draws the `term` display into
/// a pseudo-terminal it opens itself and that nobody reads: after some
/// 20 KiB of screen updates Bochs blocks writing to it, and the guest
/// stops dead in the middle of whatever test runs (seen as "hangs" of
/// tests that happened to be running then). A thread finds the terminals
/// Bochs opened (`/dev/ptmx` descriptors, `tty-index` in their fdinfo),
/// and reads and discards their other side until Bochs exits.
fn drain_own_ptys(pid: u32) {
    use std::io::Read as _;
    std::thread::spawn(move || {
        let mut draining: Vec<(String, std::fs::File)> = Vec::new();
        let mut buf = [0u8; 4096];
        let proc_fd = PathBuf::from(format!("/proc/{pid}/fd"));
        while proc_fd.exists() {
            if let Ok(rd) = std::fs::read_dir(&proc_fd) {
                for e in rd.flatten() {
                    let is_ptmx =
                        std::fs::read_link(e.path()).is_ok_and(|l| l == Path::new("/dev/ptmx"));
                    let info = std::fs::read_to_string(format!(
                        "/proc/{pid}/fdinfo/{}",
                        e.file_name().to_string_lossy()
                    ))
                    .unwrap_or_default();
                    let index = info
                        .lines()
                        .find_map(|l| l.strip_prefix("tty-index:"))
                        .map(|i| i.trim().to_string());
                    if let (true, Some(i)) = (is_ptmx, index) {
                        let name = format!("/dev/pts/{i}");
                        if draining.iter().all(|(n, _)| *n != name) {
                            use std::os::unix::fs::OpenOptionsExt as _;
                            if let Ok(f) = std::fs::OpenOptions::new()
                                .read(true)
                                .write(true)
                                .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
                                .open(&name)
                            {
                                draining.push((name, f));
                            }
                        }
                    }
                }
            }
            for (_, f) in draining.iter_mut() {
                while matches!(f.read(&mut buf), Ok(n) if n > 0) {}
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
}

/// A pseudo-terminal for Bochs' standard streams (its `term` display, the
/// only one without X, refuses to start without a terminal), whose output
/// a thread reads and discards. Returns the terminal side.
fn drained_pty() -> Res<std::os::fd::OwnedFd> {
    use std::io::Read as _;
    use std::os::fd::FromRawFd as _;
    let (mut m, mut s) = (-1, -1);
    // SAFETY: openpty stores two new descriptors in `m` and `s`; the name,
    // termios and window-size arguments may be null.
    let rc = unsafe {
        libc::openpty(
            &mut m,
            &mut s,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(format!("openpty: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: openpty succeeded, so both are open descriptors that nothing
    // else owns; each is wrapped exactly once.
    let (master, slave) = unsafe {
        (
            std::os::fd::OwnedFd::from_raw_fd(m),
            std::os::fd::OwnedFd::from_raw_fd(s),
        )
    };
    let mut master = std::fs::File::from(master);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        // Ends with EIO once Bochs, the last holder of the terminal side,
        // has exited.
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 {
                break;
            }
        }
    });
    Ok(slave)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_line_round_trips() {
        let s = Step {
            id: "domains::x".into(),
            timeout_s: 30,
            program: "/x/t-domains".into(),
            args: vec!["x".into(), "--exact".into()],
        };
        assert_eq!(Step::parse(&s.line()), Some(s.clone()));
        assert!(s.is_test());
        assert_eq!(Step::parse("x\tid\tprog"), None);
        assert_eq!(Step::parse(""), None);
    }

    #[test]
    fn the_log_gives_results_output_virt_and_exit_counts() {
        let log = "boot noise\r\nNESTED virt amd-v\nNESTED start a::t\nexit path on amd-v: 7 native port exits, 0 pvm-trapped\nNESTED result a::t rc=0 secs=1.0\nNESTED start b::u\npanicked\nNESTED result b::u rc=101 secs=0.5\nNESTED start c::v\nlast words\n";
        let o = parse_log(log, &[], &["c::v".into()]);
        assert_eq!(o.virt.as_deref(), Some("amd-v"));
        assert_eq!(o.results["a::t"].0, "0");
        assert_eq!(exit_counts(&o.results["a::t"].1), (7, 0));
        assert_eq!(o.results["b::u"].0, "101");
        assert_eq!(o.results["c::v"], ("hung".into(), "last words\n".into()));
        assert_eq!(
            exit_counts("d1 exit path on pvm: 0 native port exits, 112 pvm-trapped\nx: 3 native port exits, 4 pvm-trapped — ok"),
            (3, 116)
        );
    }

    #[test]
    fn modinfo_depends_is_read_from_the_strings() {
        let ko = b"\x7fELF...\0license=GPL\0depends=kvm,ccp\0vermagic=6.1\0";
        assert_eq!(modinfo_depends(ko), "kvm,ccp");
        assert_eq!(modinfo_depends(b"\0depends=\0"), "");
        assert_eq!(modinfo_depends(b"nothing here"), "");
    }

    fn built() -> Built {
        let bin = |name: &str, tests: &[&str]| TestBin {
            name: name.into(),
            path: PathBuf::from(format!("/b/{name}")),
            tests: tests.iter().map(|t| t.to_string()).collect(),
        };
        Built {
            tests: vec![
                bin("raw_vm", &["raw_cpl3_guest_port_io_and_mmio_exits"]),
                bin(
                    "domains",
                    &[
                        "dom0_driver_maps_the_page_and_drives_the_ports",
                        "revoke_without_force_drains_until_unmap",
                        "destroy_releases_everything",
                    ],
                ),
            ],
            xtask: PathBuf::from("/b/xtask"),
            bench: PathBuf::from("/b/ioacct-bench"),
        }
    }

    #[test]
    fn plans_run_everything_but_what_they_list_with_a_reason() {
        let b = built();
        let ids = |p: &Plan| -> Vec<String> {
            p.steps
                .iter()
                .filter(|s| s.is_test())
                .map(|s| s.id.clone())
                .collect()
        };
        for be in [Backend::Host, Backend::Svm] {
            let p = plan(be, &b, &[], false);
            assert_eq!(ids(&p).len(), 4, "{be:?}");
            assert!(p.skipped.is_empty());
            let rest: Vec<&str> = p.steps.iter().skip(4).map(|s| s.id.as_str()).collect();
            assert_eq!(rest, ["scenario-on", "scenario-off", "bench"]);
        }
        assert_eq!(
            plan(Backend::Host, &b, &[], false).steps[0].program,
            "/b/raw_vm"
        );
        assert_eq!(
            plan(Backend::Svm, &b, &[], false).steps[0].program,
            "/x/t-raw_vm"
        );
        // VT-x: the subset; the rest listed with its reason; subset tests
        // that no binary has are failures.
        let p = plan(Backend::Vmx, &b, &[], false);
        assert_eq!(
            ids(&p),
            [
                "raw_vm::raw_cpl3_guest_port_io_and_mmio_exits",
                "domains::dom0_driver_maps_the_page_and_drives_the_ports",
                "domains::revoke_without_force_drains_until_unmap",
            ]
        );
        assert_eq!(
            p.skipped,
            [(
                "domains::destroy_releases_everything".to_string(),
                VMX_NOT_IN_SUBSET
            )]
        );
        assert_eq!(p.missing.len(), VMX_SUBSET.len() - 3);
        // --full: everything.
        let p = plan(Backend::Vmx, &b, &[], true);
        assert_eq!((ids(&p).len(), p.skipped.len()), (4, 0));
        // A skip list holds its tests out of --full, with its reason; --only
        // naming a skipped test runs it.
        const SKIP: &[Skip] = &[Skip {
            test: "domains::destroy_releases",
            reason: "emulator limit",
        }];
        let p = plan_with(Backend::Vmx, SKIP, &b, &[], true);
        assert_eq!(ids(&p).len(), 3);
        assert_eq!(
            p.skipped,
            [(
                "domains::destroy_releases_everything".to_string(),
                "emulator limit"
            )]
        );
        let p = plan_with(Backend::Vmx, SKIP, &b, &["destroy_rel".into()], false);
        assert_eq!(ids(&p), ["domains::destroy_releases_everything"]);
        assert!(p.skipped.is_empty());
        // --only runs the tests in the order named.
        let p = plan(
            Backend::Svm,
            &b,
            &["domains::".into(), "raw_vm".into()],
            false,
        );
        assert_eq!(
            ids(&p),
            [
                "domains::dom0_driver_maps_the_page_and_drives_the_ports",
                "domains::revoke_without_force_drains_until_unmap",
                "domains::destroy_releases_everything",
                "raw_vm::raw_cpl3_guest_port_io_and_mmio_exits",
            ]
        );
    }

    #[test]
    fn emulated_back_ends_list_what_they_skip_and_amd_v_skips_nothing() {
        assert!(skips(Backend::Svm).is_empty());
        assert!(skips(Backend::Host).is_empty());
        for s in VMX_SKIP {
            assert!(!s.reason.is_empty() && !s.test.is_empty());
            assert!(!VMX_SUBSET.iter().any(|t| t.contains(s.test)));
        }
    }
}
