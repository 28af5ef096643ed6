//! Domains of several vCPUs: each vCPU knows its index and has its own
//! stacks, hypercall block and data area; a revoke that returns while every
//! vCPU hammers the device lets no later access land; destroy stops every
//! vCPU before it returns.
// Test code: unwrap is the assertion (also in the helpers the tests share).
#![allow(clippy::unwrap_used)]
mod common;
use accountant::Mode;
use common::*;
use hv::exit::StopReason;
use hv::layout;
use hv::programs;
use std::time::Duration;

#[test]
fn each_vcpu_knows_its_index() {
    let Some(hv) = boot(small()) else { return };
    for (dom, vcpus) in [(1u64, 2u32), (2, 4), (3, 1)] {
        hv.create_domain_smp(d(dom), &programs::vcpu_probe().unwrap(), vcpus)
            .unwrap();
        assert_eq!(
            hv.wait(d(dom), Duration::from_secs(20)),
            Some(StopReason::Done(0))
        );
        let ram = small().ram_bytes;
        for i in 0..vcpus {
            let (data, bytes) = layout::vcpu_data(i, vcpus, ram);
            assert!(bytes >= 24 && data + bytes <= ram);
            let got = hv.read_guest_u64s(d(dom), data, 3).unwrap();
            assert_eq!(
                got,
                vec![u64::from(i), u64::from(i), dom],
                "d{dom} vCPU {i}"
            );
        }
        assert_eq!(hv.vcpu_exits(d(dom)).unwrap().len(), vcpus as usize);
    }
    assert!(hv
        .create_domain_smp(d(4), &programs::idle().unwrap(), 0)
        .is_err());
    assert!(hv
        .create_domain_smp(d(4), &programs::idle().unwrap(), layout::MAX_VCPUS + 1)
        .is_err());
    // A refused create leaves nothing behind: the id is free again.
    hv.create_domain_smp(d(4), &programs::vcpu_probe().unwrap(), 1)
        .unwrap();
    hv.check_invariants().unwrap();
}

fn revoke_while_running(vcpus: u32) {
    let Some(hv) = boot(small()) else { return };
    let ports = device_a_ports();
    let dom = d(1);
    hv.create_domain_smp(dom, &programs::port_hammer(0x300).unwrap(), vcpus)
        .unwrap();
    let writes = || {
        hv.device_a_counters()
            .get(&1)
            .copied()
            .unwrap_or_default()
            .port_writes
    };
    for round in 0..20 {
        hv.grant(dom, ports, Mode::Exclusive, false).unwrap();
        let before = writes();
        advance(&hv, dom, 50);
        assert!(
            writes() > before,
            "round {round}: the holder reached the device"
        );
        hv.revoke(dom, ports, round % 2 == 0).unwrap();
        let frozen = writes();
        let denied = hv.stats(dom).unwrap().denied_ports;
        advance(&hv, dom, 50);
        assert_eq!(
            writes(),
            frozen,
            "round {round}: an access landed after the revoke"
        );
        assert!(hv.stats(dom).unwrap().denied_ports > denied);
    }
    let exits = hv.vcpu_exits(dom).unwrap();
    assert!(exits.iter().all(|&e| e > 0), "{exits:?}");
    hv.check_invariants().unwrap();
}

#[test]
fn revoke_while_running_2_vcpus() {
    revoke_while_running(2);
}

#[test]
fn revoke_while_running_4_vcpus() {
    revoke_while_running(4);
}

fn destroy_stops_every_vcpu(vcpus: u32) {
    let Some(hv) = boot(small()) else { return };
    let ports = device_a_ports();
    for round in 0..4u64 {
        let dom = d(1 + round % 2);
        hv.create_domain_smp(dom, &programs::port_hammer(0x300).unwrap(), vcpus)
            .unwrap();
        hv.grant(dom, ports, Mode::Exclusive, false).unwrap();
        advance(&hv, dom, 100);
        hv.destroy_domain(dom).unwrap();
        let frozen = hv.device_a_counters().get(&dom.get()).copied();
        assert!(hv.stats(dom).is_none(), "the domain is gone");
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(
            hv.device_a_counters().get(&dom.get()).copied(),
            frozen,
            "round {round}: a vCPU of the destroyed domain still reached the device"
        );
        hv.check_invariants().unwrap();
    }
    // The ports were freed by the destroy: another domain may take them.
    hv.create_domain_smp(d(3), &programs::idle().unwrap(), vcpus)
        .unwrap();
    hv.grant(d(3), ports, Mode::Exclusive, false).unwrap();
}

#[test]
fn destroy_stops_every_vcpu_2() {
    destroy_stops_every_vcpu(2);
}

#[test]
fn destroy_stops_every_vcpu_4() {
    destroy_stops_every_vcpu(4);
}
