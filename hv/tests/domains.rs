mod common;
use accountant::{ErrorCode, Mode, Space};
use common::*;
use hv::acct::Accounting;
use hv::exit::StopReason;
use hv::platform::{DEVICE_A_FRAME, DEVICE_A_IRQ, LAPIC_FRAME};
use hv::programs::{self, SI_STATUS, SI_STOP};
use hv::Config;
use std::time::Duration;

#[test]
fn dom0_driver_maps_the_page_and_drives_the_ports() {
    let Some(hv) = boot(small()) else { return };
    hv.create_domain(d(0), &programs::driver(0).unwrap())
        .unwrap();
    progress(&hv, d(0), 50);
    assert_eq!(
        hv.read_guest_u64(d(0), SI_STATUS),
        Some(0),
        "map hypercall ok"
    );
    hv.write_guest_u64(d(0), SI_STOP, 1).unwrap();
    assert_eq!(
        hv.wait(d(0), Duration::from_secs(10)),
        Some(StopReason::Done(0))
    );
    let c = hv.device_a_counters();
    assert!(c[&0].port_writes >= 50 && c[&0].port_reads >= 50, "{c:?}");
    let (dom, seq) = hv.platform().device_a.page_record(0);
    assert_eq!(dom, 0);
    assert!(seq >= 50);
    assert_eq!(hv.io_slots(d(0)), vec![(DEVICE_A_FRAME, DEVICE_A_FRAME)]);
    let s = hv.stats(d(0)).unwrap();
    assert_eq!(
        s.denied_mmio, 0,
        "page writes go through the memslot: {s:?}"
    );
    assert_eq!(s.denied_ports, 0);
    assert!(s.native_port_exits + s.trapped_port_exits >= 100, "{s:?}");
    assert_exit_path(&hv, d(0));
}

#[test]
fn ungranted_domain_is_denied_ports_and_page() {
    let Some(hv) = boot(small()) else { return };
    hv.create_domain(d(1), &programs::driver(20).unwrap())
        .unwrap();
    assert_eq!(
        hv.wait(d(1), Duration::from_secs(10)),
        Some(StopReason::Done(0))
    );
    assert_eq!(hv.read_guest_u64(d(1), SI_STATUS), Some(12), "not-granted");
    assert!(!hv.device_a_counters().contains_key(&1));
    let s = hv.stats(d(1)).unwrap();
    assert_eq!(s.denied_ports, 40);
    assert_eq!(
        s.denied_mmio, 40,
        "two record writes per turn exit and are denied"
    );
    assert_eq!(hv.platform().device_a.page_record(1), (0, 0));
}

#[test]
fn accounting_off_lets_two_domains_drive_and_keeps_revoked_mapping() {
    let Some(hv) = boot(Config {
        accounting: Accounting::Off,
        ..small()
    }) else {
        return;
    };
    hv.create_domain(d(0), &programs::driver(0).unwrap())
        .unwrap();
    progress(&hv, d(0), 10);
    domain(&hv, d(1), &programs::driver(0).unwrap())
        .device_a()
        .start();
    progress(&hv, d(1), 10);
    hv.revoke(d(0), mem(DEVICE_A_FRAME), true).unwrap();
    let before = hv.platform().device_a.page_record(0).1;
    advance(&hv, d(0), 20);
    let after = hv.platform().device_a.page_record(0).1;
    assert!(after > before, "dom0 still writes through its old mapping");
    let c = hv.device_a_counters();
    assert!(
        c[&0].port_writes > 0 && c[&1].port_writes > 0,
        "both drive the device: {c:?}"
    );
}

#[test]
fn accounting_on_refuses_then_forced_grant_tears_dom0_down() {
    let Some(hv) = boot(small()) else { return };
    hv.create_domain(d(0), &programs::driver(0).unwrap())
        .unwrap();
    progress(&hv, d(0), 10);
    hv.create_domain_paused(d(1), &programs::driver(0).unwrap(), hv::layout::DEFAULT_RAM)
        .unwrap();
    let e = hv
        .grant(d(1), mem(DEVICE_A_FRAME), Mode::Exclusive, false)
        .unwrap_err();
    assert_eq!(e.acct_code(), Some(ErrorCode::InUse));
    let td = hv
        .grant(d(1), mem(DEVICE_A_FRAME), Mode::Exclusive, true)
        .unwrap();
    assert_eq!(td.len(), 1);
    assert!(
        hv.io_slots(d(0)).is_empty(),
        "dom0's slot is gone when grant returns"
    );
    let frozen = hv.platform().device_a.page_record(0).1;
    let denied = hv.stats(d(0)).unwrap().denied_mmio;
    advance(&hv, d(0), 20);
    assert_eq!(
        hv.platform().device_a.page_record(0).1,
        frozen,
        "no write of dom0 lands"
    );
    assert!(hv.stats(d(0)).unwrap().denied_mmio >= denied + 20);
    hv.grant(d(1), device_a_ports(), Mode::Exclusive, false)
        .unwrap();
    let ports0 = hv.device_a_counters()[&0];
    hv.start(d(1)).unwrap();
    progress(&hv, d(1), 20);
    advance(&hv, d(0), 20);
    assert_eq!(
        hv.device_a_counters()[&0],
        ports0,
        "dom0 lost the ports by default right"
    );
    assert!(hv.platform().device_a.page_record(1).1 >= 20);
    // The hypervisor's own devices cannot be handed out.
    for r in [
        mem(LAPIC_FRAME),
        mem(hv::platform::IOAPIC_FRAME),
        range(Space::IoPort, 0x3f8, 0x3ff),
        range(Space::Irq, 2, 2),
        range(Space::IoPort, 0x500, 0x500),
    ] {
        let e = hv.grant(d(1), r, Mode::Exclusive, true).unwrap_err();
        assert_eq!(e.acct_code(), Some(ErrorCode::Reserved), "{r}");
    }
    hv.check_invariants().unwrap();
}

#[test]
fn revoke_without_force_drains_until_unmap() {
    let Some(hv) = boot(small()) else { return };
    let gpa = programs::device_a_record_gpa(1);
    domain(&hv, d(1), &programs::mmio_writer(gpa, 0, false).unwrap())
        .grant(mem(DEVICE_A_FRAME), Mode::Exclusive)
        .map(mem(DEVICE_A_FRAME))
        .start();
    progress(&hv, d(1), 10);
    let r = hv.revoke(d(1), mem(DEVICE_A_FRAME), false).unwrap();
    assert!(r.pending);
    advance(&hv, d(1), 10);
    assert!(
        hv.platform().device_a.page_record(1).1 >= 20,
        "draining: mapping kept"
    );
    let e = hv
        .grant(d(2), mem(DEVICE_A_FRAME), Mode::Exclusive, false)
        .unwrap_err();
    assert_eq!(e.acct_code(), Some(ErrorCode::NoSuchDomain));
    hv.unmap(d(1), mem(DEVICE_A_FRAME)).unwrap();
    let frozen = hv.platform().device_a.page_record(1).1;
    advance(&hv, d(1), 10);
    assert_eq!(hv.platform().device_a.page_record(1).1, frozen);
    assert_eq!(
        hv.unmap(d(1), mem(DEVICE_A_FRAME)).unwrap_err().acct_code(),
        Some(ErrorCode::NotMapped)
    );
    hv.check_invariants().unwrap();
}

#[test]
fn shared_irq_reaches_every_binder_and_stops_at_unbind() {
    let Some(hv) = boot(small()) else { return };
    let line = range(Space::Irq, DEVICE_A_IRQ as u64, DEVICE_A_IRQ as u64);
    for n in [1, 2] {
        domain(&hv, d(n), &programs::irq_waiter(DEVICE_A_IRQ, 3).unwrap())
            .grant(line, Mode::Shared)
            .start();
    }
    // Domain 3 is not granted the line: its bind is refused.
    hv.create_domain(d(3), &programs::irq_waiter(DEVICE_A_IRQ, 1).unwrap())
        .unwrap();
    assert_eq!(
        hv.wait(d(3), Duration::from_secs(10)),
        Some(StopReason::Done(1))
    );
    assert_eq!(hv.read_guest_u64(d(3), SI_STATUS), Some(12));
    // Wait until both bound (query shows two uses), then raise three times.
    for _ in 0..2000 {
        let i = hv.query(Space::Irq, DEVICE_A_IRQ as u64).unwrap().unwrap();
        if i.uses.len() == 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    for _ in 0..3 {
        assert_eq!(hv.raise_irq(DEVICE_A_IRQ), 2);
        std::thread::sleep(Duration::from_millis(20));
    }
    for n in [1, 2] {
        assert_eq!(
            hv.wait(d(n), Duration::from_secs(10)),
            Some(StopReason::Done(0)),
            "d{n}"
        );
        assert!(hv.stats(d(n)).unwrap().events >= 3);
    }
    hv.unbind(d(1), line).unwrap();
    assert_eq!(hv.raise_irq(DEVICE_A_IRQ), 1, "only d2 is still bound");
    hv.revoke(d(2), line, true).unwrap();
    assert_eq!(
        hv.raise_irq(DEVICE_A_IRQ),
        0,
        "forced revoke ended the binding"
    );
    hv.check_invariants().unwrap();
}

#[test]
fn destroy_releases_everything() {
    let Some(hv) = boot(small()) else { return };
    let gpa = programs::device_a_record_gpa(1);
    domain(&hv, d(1), &programs::mmio_writer(gpa, 0, true).unwrap())
        .device_a()
        .grant(range(Space::Irq, 11, 11), Mode::Exclusive)
        .bind(range(Space::Irq, 11, 11))
        .map(mem(DEVICE_A_FRAME))
        .start();
    progress(&hv, d(1), 10);
    let td = hv.destroy_domain(d(1)).unwrap();
    assert!(td.iter().any(|t| t.space == Space::IoMem));
    assert!(td.iter().any(|t| t.space == Space::Irq));
    assert!(hv.stats(d(1)).is_none(), "VM gone");
    assert_eq!(hv.raise_irq(11), 0);
    let i = hv.query(Space::IoMem, DEVICE_A_FRAME).unwrap().unwrap();
    assert!(i.holders.is_empty() && i.uses.is_empty());
    domain(&hv, d(2), &programs::spinner().unwrap())
        .grant(mem(DEVICE_A_FRAME), Mode::Exclusive)
        .paused();
    assert_eq!(
        hv.destroy_domain(d(0)).unwrap_err().acct_code(),
        Some(ErrorCode::NotPermitted)
    );
    hv.check_invariants().unwrap();
}

#[test]
fn a_doorbell_write_raises_the_line_for_every_binder() {
    let Some(hv) = boot(small()) else { return };
    let line = range(Space::Irq, DEVICE_A_IRQ as u64, DEVICE_A_IRQ as u64);
    for n in [1, 2] {
        let w = programs::irq_waiter(DEVICE_A_IRQ, 5).unwrap();
        domain(&hv, d(n), &w).grant(line, Mode::Shared).start();
    }
    let ring = programs::port_hammer(hv::platform::DEVICE_A_DOORBELL).unwrap();
    domain(&hv, d(3), &ring)
        .grant(device_a_ports(), Mode::Exclusive)
        .start();
    for n in [1, 2] {
        assert_eq!(
            hv.wait(d(n), Duration::from_secs(20)),
            Some(StopReason::Done(0)),
            "d{n}"
        );
    }
    assert!(hv.device_a_counters()[&3].doorbells >= 5);
    hv.destroy_domain(d(3)).unwrap();
}

#[test]
fn query_hypercall_reports_the_callers_view() {
    use hv::hypercall::{QUERY_EXCLUSIVE, QUERY_HELD, QUERY_RESERVED, QUERY_USES_SHIFT};
    let Some(hv) = boot(small()) else { return };
    let cases = [
        (
            1,
            DEVICE_A_FRAME,
            QUERY_HELD | QUERY_EXCLUSIVE | (1 << QUERY_USES_SHIFT),
        ),
        (1, LAPIC_FRAME, QUERY_RESERVED),
        (0, 0x3f8, QUERY_RESERVED),
        (1, 0x10, 0),
    ];
    for (i, (space, unit, want)) in cases.into_iter().enumerate() {
        let n = 1 + i as u64;
        let p = programs::query_probe(space, unit).unwrap();
        let mut s = domain(&hv, d(n), &p);
        if i == 0 {
            s = s
                .grant_forced(mem(DEVICE_A_FRAME), Mode::Exclusive)
                .map(mem(DEVICE_A_FRAME));
        }
        s.start();
        assert_eq!(
            hv.wait(d(n), Duration::from_secs(10)),
            Some(StopReason::Done(0))
        );
        assert_eq!(hv.read_guest_u64(d(n), SI_STATUS), Some(0), "case {i}");
        assert_eq!(
            hv.read_guest_u64(d(n), programs::SI_QUERY),
            Some(want),
            "case {i}"
        );
        hv.destroy_domain(d(n)).unwrap();
    }
    // A bad space is an error code, nothing else.
    hv.create_domain(d(9), &programs::query_probe(7, 0).unwrap())
        .unwrap();
    assert_eq!(
        hv.wait(d(9), Duration::from_secs(10)),
        Some(StopReason::Done(0))
    );
    assert_eq!(hv.read_guest_u64(d(9), SI_STATUS), Some(2), "out-of-range");
}

#[test]
fn boot_failures_are_typed_and_named() {
    if boot(small()).is_none() {
        return;
    }
    let e = hv::Hypervisor::boot(Config {
        boot_line: "no_such_option=1".into(),
        ..small()
    })
    .unwrap_err();
    assert!(
        matches!(
            e,
            hv::HvError::Boot(accountant::BootError::UnknownOption(_))
        ),
        "{e}"
    );
    let e = hv::Hypervisor::boot(Config {
        fb_bytes: 32 << 30,
        ..Config::default()
    })
    .unwrap_err();
    assert_eq!(
        e,
        hv::HvError::FramebufferTooLarge {
            bytes: 32 << 30,
            max_gib: hv::layout::MAX_MAPPED_GIB
        }
    );
}
