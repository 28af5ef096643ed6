//! The run plan: back ends, what each skips and why, the hv test binaries
//! built on the host, and the steps (one command under a timeout each) a
//! back end runs.
use super::host::output;
use super::Res;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A back end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Backend {
    /// This machine's `/dev/kvm`.
    Host,
    /// AMD-V under QEMU TCG.
    Svm,
    /// VT-x under Bochs.
    Vmx,
}

impl Backend {
    pub(super) fn name(self) -> &'static str {
        match self {
            Backend::Host => "host",
            Backend::Svm => "svm",
            Backend::Vmx => "vmx",
        }
    }

    pub(super) fn emulated(self) -> bool {
        self != Backend::Host
    }

    /// Per-test timeout, in the clock of the machine the test runs on (a
    /// Bochs guest's clock advances with emulated instructions, not with
    /// wall time).
    pub(super) fn test_timeout(self) -> u64 {
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
    pub(super) fn stall(self) -> Duration {
        match self {
            Backend::Host | Backend::Svm => Duration::from_secs(600),
            Backend::Vmx => Duration::from_secs(900),
        }
    }
}

/// A test that a back end does not run, and why.
pub(super) struct Skip {
    /// Substring of the test id.
    pub(super) test: &'static str,
    /// Why.
    pub(super) reason: &'static str,
}

/// Tests never run on a back end (also not with `--full`). Empty on the
/// host and on AMD-V: everything runs there.
pub(super) fn skips(b: Backend) -> &'static [Skip] {
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
pub(super) struct Step {
    /// `binary::test` for tests, `scenario-on`, `scenario-off`, `bench`.
    pub(super) id: String,
    pub(super) timeout_s: u64,
    pub(super) program: String,
    pub(super) args: Vec<String>,
}

impl Step {
    pub(super) fn line(&self) -> String {
        let mut s = format!("{}\t{}\t{}", self.timeout_s, self.id, self.program);
        for a in &self.args {
            s.push('\t');
            s.push_str(a);
        }
        s
    }

    pub(super) fn parse(line: &str) -> Option<Step> {
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

    pub(super) fn is_test(&self) -> bool {
        self.id.contains("::")
    }
}

/// An hv test binary built on the host.
#[derive(Debug, Clone)]
pub(super) struct TestBin {
    /// `hv` for the unit tests, else the integration test's name.
    pub(super) name: String,
    pub(super) path: PathBuf,
    pub(super) tests: Vec<String>,
}

/// What the host built: the hv test binaries, this xtask binary and the
/// release bench binary.
pub(super) struct Built {
    pub(super) tests: Vec<TestBin>,
    pub(super) xtask: PathBuf,
    pub(super) bench: PathBuf,
}

pub(super) fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

pub(super) fn build(root: &Path) -> Res<Built> {
    eprintln!("xtask nested: building the hv tests and the bench binary");
    let tests = build_tests(root)?;
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

pub(super) fn build_tests(root: &Path) -> Res<Vec<TestBin>> {
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
    Ok(tests)
}

/// A back end's plan and what it leaves out.
pub(super) struct Plan {
    pub(super) steps: Vec<Step>,
    /// Test ids left out, with the reason.
    pub(super) skipped: Vec<(String, &'static str)>,
    /// Tests of [`VMX_SUBSET`] that no binary has (renamed?): failures.
    pub(super) missing: Vec<&'static str>,
}

pub(super) fn plan(b: Backend, built: &Built, only: &[String], full: bool) -> Plan {
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
