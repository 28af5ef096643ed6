//! The bench workloads run end to end and return plausible samples.
// Test code: unwrap is the assertion.
#![allow(clippy::unwrap_used)]
use hv::acct::Accounting;
use hv::workloads;

#[test]
fn every_workload_returns_its_samples() {
    if !hv::host::require_kvm("workloads") {
        return;
    }
    for acc in [Accounting::On, Accounting::Off] {
        let s = workloads::pio_exit(acc, 64, 200).unwrap();
        assert_eq!(s.len(), 200);
        assert!(s.iter().all(|&x| x > 0), "{acc:?}");
    }
    let m = workloads::bare_mmio_exit(200).unwrap();
    assert_eq!(m.len(), 200);
    assert!(m.iter().all(|&x| x > 0));
    let b = workloads::bare_exit(200).unwrap();
    assert_eq!(b.len(), 200);
    assert!(b.iter().all(|&x| x > 0));
    for f in [
        workloads::bind,
        workloads::memslot_add,
        workloads::revoke_force,
        workloads::memslot_delete,
    ] {
        let s = f(256, 3).unwrap();
        assert_eq!(s.len(), 3);
        assert!(s.iter().all(|&x| x > 0));
    }
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
        assert_eq!((p.bare.len(), p.step.len(), p.cpu.len()), (20, 20, 20));
        assert!(p.bare.iter().chain(&p.step).all(|&x| x > 0));
        assert_eq!(p.ratios().len(), 20);
    }
    let s = workloads::smp::pio_exit(Accounting::On, 2, 200).unwrap();
    assert_eq!(s.len(), 200);
    assert!(s.iter().all(|&x| x > 0));
    let s = workloads::smp::revoke_force(16, 2, 2).unwrap();
    assert_eq!(s.len(), 2);
    for load in [Load::None, Load::FbPaint] {
        let (s, pl) = fb_load::pio_exit(Accounting::On, load, 1024, 200).unwrap();
        assert_eq!(s.len(), 200);
        assert!(s.iter().all(|&x| x > 0));
        assert_eq!(
            pl.painted_pages,
            if load == Load::FbPaint { 1024 } else { 0 }
        );
        if std::thread::available_parallelism().map_or(1, |c| c.get()) >= 2 {
            assert!(pl.measured_vcpu.is_some() && pl.measured_vcpu != pl.painter_vcpu);
        }
    }
}
