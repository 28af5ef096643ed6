//! The bench workloads run end to end and return plausible samples.
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
