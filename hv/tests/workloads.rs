//! The bench workloads run end to end on real guests and return what they
//! promise: one sample per exit or round, pairs in alternating order, and
//! every checked exit seen by the handler probe.
use hv::acct::Accounting;
use hv::affinity::{current_affinity, CpuSet};
use hv::workloads::{self, paired, Setup};

fn setup() -> Setup {
    // vCPUs on the last CPU this process may use, the control thread's CPU
    // the first, like the bench's default.
    let all = current_affinity();
    Setup {
        vcpu_cpus: all
            .as_ref()
            .map(|s| CpuSet::one(s.cpus()[s.cpus().len() - 1])),
        control_cpus: all.as_ref().map(|s| CpuSet::one(s.cpus()[0])),
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
    let p = paired::bind(256, 4, None, &s).unwrap();
    check_pairs(&p, 4);
    assert_eq!(p.vcpu_cpu, want, "vCPU thread pinned");
    check_pairs(&paired::unmap(256, 4, &s).unwrap(), 4);
    for st in [paired::VcpuState::Parked, paired::VcpuState::Running] {
        check_pairs(&paired::revoke_force(256, 4, st, None, &s).unwrap(), 4);
    }
}

#[test]
fn paired_steps_beside_a_painter_keep_the_measured_vcpu_apart() {
    use paired::Measured;
    use workloads::fb_load::Load;
    if !hv::host::require_kvm("workloads") {
        return;
    }
    let s = setup();
    let want = s.vcpu_cpus.as_ref().map(|c| c.cpus()[0] as u32);
    let at = |m| s.beside_load(m).1.map(|c| c.cpus()[0] as u32);
    let (beside_guest, beside_control) = (at(Measured::Guest), at(Measured::Control));
    for load in [Load::None, Load::FbPaint] {
        // Only a painting load has a running painter to place.
        let running = |c| if load == Load::FbPaint { c } else { None };
        let p = paired::bind(16, 4, Some(load), &s).unwrap();
        check_pairs(&p, 4);
        assert_eq!(p.vcpu_cpu, want, "{load:?}");
        assert_eq!(p.painter_cpu, running(beside_control), "{load:?}");
        for (st, cpu) in [
            (paired::VcpuState::Parked, beside_control),
            (paired::VcpuState::Running, beside_guest),
        ] {
            let p = paired::revoke_force(16, 4, st, Some(load), &s).unwrap();
            check_pairs(&p, 4);
            assert_eq!(p.painter_cpu, running(cpu), "{load:?} {st:?}");
        }
    }
    let c = paired::accounting_cost(1024, 4, 50, Some(Load::FbPaint), &s).unwrap();
    assert_eq!((c.all_on.len(), c.all_off.len(), c.dropped), (200, 200, 0));
    assert_eq!(c.painter_cpu, (beside_guest, beside_guest));
}

#[test]
fn accounting_cost_sees_every_checked_exit() {
    if !hv::host::require_kvm("workloads") {
        return;
    }
    let c = paired::accounting_cost(0, 4, 50, None, &setup()).unwrap();
    assert_eq!(c.on.len(), 4);
    assert_eq!(c.off.len(), 4);
    assert_eq!(c.all_on.len(), 200, "one probe sample per port exit");
    assert_eq!(c.all_off.len(), 200);
    assert_eq!(c.dropped, 0);
    assert!(c.on.iter().chain(&c.off).all(|v| *v > 0.0));
}

#[test]
fn realism_workloads_return_their_samples() {
    use workloads::fb_load::{self, Load};
    if !hv::host::require_kvm("workloads") {
        return;
    }
    // Irq binding needs an irqchip; PVM, VT-x and AMD-V all have one.
    let r = workloads::irq::bind_irq(20).unwrap();
    for p in [&r.bind, &r.unbind] {
        assert_eq!((p.floor.len(), p.step.len(), p.cpu.len()), (20, 20, 20));
        assert!(p.floor.iter().chain(&p.step).all(|&x| x > 0));
        assert_eq!(p.ratios().len(), 20);
    }
    let s = workloads::smp::pio_exit(Accounting::On, 2, 200, &setup()).unwrap();
    assert_eq!(s.len(), 200);
    assert!(s.iter().all(|&x| x > 0));
    let s = workloads::smp::revoke_force(16, 2, 2, &setup()).unwrap();
    assert_eq!(s.len(), 2);
    for load in [Load::None, Load::FbPaint] {
        let (s, pl) = fb_load::pio_exit(Accounting::On, load, 1024, 200, &setup()).unwrap();
        assert_eq!(s.len(), 200);
        assert!(s.iter().all(|&x| x > 0));
        assert_eq!(
            pl.painted_pages,
            if load == Load::FbPaint { 1024 } else { 0 }
        );
        // The measured vCPU is pinned; a painting painter is pinned apart.
        assert_eq!(pl.measured_vcpu, setup().vcpu_cpus);
        if load == Load::FbPaint && std::thread::available_parallelism().map_or(1, |c| c.get()) >= 2
        {
            assert!(pl.painter_vcpu.is_some() && pl.measured_vcpu != pl.painter_vcpu);
        }
    }
}
