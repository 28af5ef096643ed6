mod common;
use accountant::Mode;
use common::*;
use hv::exit::StopReason;
use hv::platform::DEVICE_A_FRAME;
use hv::programs::{self, FaultKind, SI_ERRORS, SI_OKS};
use std::time::{Duration, Instant};

#[test]
fn faulting_guests_stop_alone() {
    let Some(hv) = boot(small()) else { return };
    hv.create_domain(d(0), &programs::driver(0).unwrap())
        .unwrap();
    for (n, kind, vector) in [
        (1, FaultKind::Ud2, 6),
        (2, FaultKind::NonCanonical, 13),
        (3, FaultKind::Unmapped, 14),
    ] {
        hv.create_domain(d(n), &programs::faulter(kind).unwrap())
            .unwrap();
        assert_eq!(
            hv.wait(d(n), Duration::from_secs(10)),
            Some(StopReason::Fault(vector)),
            "{kind:?}"
        );
        hv.destroy_domain(d(n)).unwrap();
    }
    hv.create_domain(d(4), &programs::faulter(FaultKind::TripleFault).unwrap())
        .unwrap();
    assert_eq!(
        hv.wait(d(4), Duration::from_secs(10)),
        Some(StopReason::TripleFault)
    );
    hv.destroy_domain(d(4)).unwrap();
    // Domain 0 kept running throughout.
    advance(&hv, d(0), 20);
}

#[test]
fn a_spinning_guest_is_stopped_by_destroy() {
    let Some(hv) = boot(small()) else { return };
    hv.create_domain(d(1), &programs::spinner().unwrap())
        .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        hv.wait(d(1), Duration::from_millis(10)),
        None,
        "still spinning"
    );
    let t = Instant::now();
    hv.destroy_domain(d(1)).unwrap();
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(hv.stats(d(1)).is_none());
    // stop() on a live spinner reports Killed.
    hv.create_domain(d(2), &programs::spinner().unwrap())
        .unwrap();
    assert_eq!(hv.stop(d(2)), Some(StopReason::Killed));
}

#[test]
fn hostile_guest_gets_error_codes_and_harms_no_one() {
    let Some(hv) = boot(small()) else { return };
    let gpa = programs::device_a_record_gpa(1);
    domain(&hv, d(1), &programs::mmio_writer(gpa, 0, true).unwrap())
        .grant_forced(mem(DEVICE_A_FRAME), Mode::Exclusive)
        .grant(device_a_ports(), Mode::Exclusive)
        .map(mem(DEVICE_A_FRAME))
        .start();
    for (n, seed) in [(2u64, 0x1234_5678u64), (3, 0x9e37_79b9_7f4a_7c15)] {
        hv.create_domain(d(n), &programs::hostile(seed, 3000).unwrap())
            .unwrap();
    }
    for n in [2, 3] {
        assert_eq!(
            hv.wait(d(n), Duration::from_secs(60)),
            Some(StopReason::Done(0)),
            "d{n}"
        );
        let s = hv.stats(d(n)).unwrap();
        let errs = hv.read_guest_u64(d(n), SI_ERRORS).unwrap();
        let oks = hv.read_guest_u64(d(n), SI_OKS).unwrap();
        assert!(errs > 100, "d{n}: {errs} errors");
        assert!(
            s.bad_hypercalls > 100 && s.denied_ports > 100 && s.denied_mmio > 100,
            "{s:?}"
        );
        assert!(oks < errs);
        // Nothing reached device A or its page from the hostile domains.
        assert!(!hv.device_a_counters().contains_key(&(n as u16)));
        assert_eq!(hv.platform().device_a.page_record(n as u16), (0, 0));
    }
    advance(&hv, d(1), 20);
    hv.check_invariants().unwrap();
    for n in [1, 2, 3] {
        hv.destroy_domain(d(n)).unwrap();
    }
    let i = hv
        .query(accountant::Space::IoMem, DEVICE_A_FRAME)
        .unwrap()
        .unwrap();
    assert!(i.uses.is_empty() && i.holders.is_empty());
}

#[test]
fn destroying_a_guest_in_the_middle_of_hypercalls_returns() {
    let Some(hv) = boot(small()) else { return };
    for round in 0..5u64 {
        let n = 10 + round;
        hv.create_domain(d(n), &programs::hostile(round + 7, u64::MAX >> 1).unwrap())
            .unwrap();
        std::thread::sleep(Duration::from_millis(30));
        let t = Instant::now();
        hv.destroy_domain(d(n)).unwrap();
        assert!(t.elapsed() < Duration::from_secs(5), "round {round}");
        assert!(hv.stats(d(n)).is_none());
    }
    hv.check_invariants().unwrap();
}
