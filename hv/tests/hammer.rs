//! Domains hammer device A (ports and its page) while the control plane
//! grants, forces, revokes (forced and draining) and hands the device back to
//! dom0's default right: device A never sees an access from a domain that
//! does not hold it. Run with 1, 2 and 4 vCPUs per domain, every vCPU
//! driving the device.
// Test code: unwrap is the assertion (also in the helpers the tests share).
#![allow(clippy::unwrap_used)]
mod common;
use accountant::Mode;
use common::*;
use hv::platform::{DeviceCounters, DEVICE_A_FRAME};
use hv::programs;

/// What reached device A from one domain: its port counters and its page record.
type Seen = (DeviceCounters, (u64, u64));

#[test]
fn device_a_never_sees_a_non_holder() {
    hammer(1);
}

#[test]
fn device_a_never_sees_a_non_holder_2_vcpus() {
    hammer(2);
}

#[test]
fn device_a_never_sees_a_non_holder_4_vcpus() {
    hammer(4);
}

fn hammer(vcpus: u32) {
    let Some(hv) = boot(small()) else { return };
    let ports = device_a_ports();
    let page = mem(DEVICE_A_FRAME);
    for n in [0u16, 1, 2] {
        let p = programs::mmio_writer(programs::device_a_record_gpa(n), 0, true).unwrap();
        hv.create_domain_smp(d(n as u64), &p, vcpus).unwrap();
    }
    // dom0 drives the device by default right first.
    hv.map(d(0), page).unwrap();
    let snap = |n: u16| -> Seen {
        (
            hv.device_a_counters().get(&n).copied().unwrap_or_default(),
            hv.platform().device_a.page_record(n),
        )
    };
    let landed = |a: &Seen, b: &Seen| b.0.port_writes > a.0.port_writes && b.1 .1 > a.1 .1;
    advance(&hv, d(0), 30);
    let mut frozen: Vec<(u16, Seen)> = Vec::new();
    let mut dom0_maps = true;
    for round in 0..24u64 {
        let h = 1 + (round % 2) as u16;
        let hd = d(h as u64);
        let before = snap(h);
        // Forced: tears down dom0's default-right mapping if it has one.
        let td = hv.grant(hd, page, Mode::Exclusive, true).unwrap();
        assert_eq!(td.len(), dom0_maps as usize, "round {round}");
        dom0_maps = false;
        hv.grant(hd, ports, Mode::Exclusive, false).unwrap();
        frozen.push((0, snap(0)));
        hv.map(hd, page).unwrap();
        advance(&hv, hd, 30);
        advance(&hv, d(0), 10);
        assert!(
            landed(&before, &snap(h)),
            "round {round}: holder d{h} reached device A"
        );
        for (o, s) in frozen.drain(..) {
            assert_eq!(
                snap(o),
                s,
                "round {round}: d{o} reached device A without holding it"
            );
        }
        if round % 3 == 2 {
            // Drain: revoke without force, then the mapping ends by unmap.
            assert!(hv.revoke(hd, page, false).unwrap().pending);
            hv.unmap(hd, page).unwrap();
        } else {
            hv.revoke(hd, page, true).unwrap();
        }
        hv.revoke(hd, ports, round % 2 == 0).unwrap();
        let after_revoke = snap(h);
        advance(&hv, hd, 10);
        assert_eq!(
            snap(h),
            after_revoke,
            "round {round}: d{h} after its revoke"
        );
        frozen.push((h, after_revoke));
        if round % 4 == 3 {
            // Back to dom0's default right for a while.
            let b0 = snap(0);
            hv.map(d(0), page).unwrap();
            dom0_maps = true;
            advance(&hv, d(0), 30);
            assert!(
                landed(&b0, &snap(0)),
                "round {round}: dom0 regained device A"
            );
            frozen.retain(|(o, _)| *o != 0);
        }
        hv.check_invariants().unwrap();
    }
    for n in [0, 1, 2] {
        let s = hv.stats(d(n)).unwrap();
        assert!(s.denied_ports > 0 && s.denied_mmio > 0, "d{n}: {s:?}");
        // Every vCPU drove the device (each port access is an exit).
        let exits = hv.vcpu_exits(d(n)).unwrap();
        assert_eq!(exits.len(), vcpus as usize);
        assert!(exits.iter().all(|&e| e > 0), "d{n}: {exits:?}");
    }
}
