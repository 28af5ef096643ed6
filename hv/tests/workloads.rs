//! The bench workloads run end to end on real guests and return what they
//! promise: one sample per exit or round, pairs in alternating order, and
//! every checked exit seen by the handler probe.
use hv::acct::Accounting;
use hv::affinity::{current_affinity, CpuSet};
use hv::workloads::{self, paired, Setup};

fn setup() -> Setup {
    // The last CPU this process may use, like the bench's default.
    Setup {
        vcpu_cpus: current_affinity().map(|s| CpuSet::one(s.cpus()[s.cpus().len() - 1])),
    }
}

#[test]
fn exit_workloads_return_one_sample_per_exit() {
    if !hv::host::require_kvm("workloads") {
        return;
    }
    let s = setup();
    for acc in [Accounting::On, Accounting::Off] {
        let v = workloads::pio_exit(acc, 64, 200, &s).unwrap();
        assert_eq!(v.len(), 200);
        assert!(v.iter().all(|&x| x > 0), "{acc:?}");
    }
    let m = workloads::bare_mmio_exit(200, &s).unwrap();
    assert_eq!(m.len(), 200);
    assert!(m.iter().all(|&x| x > 0));
    let b = workloads::bare_exit(200, &s).unwrap();
    assert_eq!(b.len(), 200);
    assert!(b.iter().all(|&x| x > 0));
}

fn check_pairs(p: &paired::Paired, rounds: usize) {
    assert_eq!(p.floor.len(), rounds);
    assert_eq!(p.step.len(), rounds);
    assert_eq!(p.cpu.len(), rounds);
    assert!(p.floor.iter().chain(&p.step).all(|&x| x > 0), "{p:?}");
    // Alternating order, floor first in even rounds.
    assert!(p
        .floor_first
        .iter()
        .enumerate()
        .all(|(i, f)| *f == (i % 2 == 0)));
    assert!(p.ratios().iter().all(|r| r.is_finite() && *r > 0.0));
}

#[test]
fn paired_steps_alternate_and_pin_the_vcpu() {
    if !hv::host::require_kvm("workloads") {
        return;
    }
    let s = setup();
    let want = s.vcpu_cpus.as_ref().map(|c| c.cpus()[0] as u32);
    let p = paired::bind(256, 4, &s).unwrap();
    check_pairs(&p, 4);
    assert_eq!(p.vcpu_cpu, want, "vCPU thread pinned");
    check_pairs(&paired::unmap(256, 4, &s).unwrap(), 4);
    for st in [paired::VcpuState::Parked, paired::VcpuState::Running] {
        check_pairs(&paired::revoke_force(256, 4, st, &s).unwrap(), 4);
    }
}

#[test]
fn accounting_cost_sees_every_checked_exit() {
    if !hv::host::require_kvm("workloads") {
        return;
    }
    let c = paired::accounting_cost(0, 4, 50, &setup()).unwrap();
    assert_eq!(c.on.len(), 4);
    assert_eq!(c.off.len(), 4);
    assert_eq!(c.all_on.len(), 200, "one probe sample per port exit");
    assert_eq!(c.all_off.len(), 200);
    assert_eq!(c.dropped, 0);
    assert!(c.on.iter().chain(&c.off).all(|v| *v > 0.0));
}
