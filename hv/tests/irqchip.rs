//! Interrupts through KVM's in-kernel irqchip: a bound line is an irqfd on
//! the domain's VM and the guest takes it in its interrupt handler, which
//! counts it. Unbind, revoke, a forced grant and destroy deassign before
//! they return: a raise right after reaches nothing. Shared lines reach
//! every binder.
// Test code: unwrap is the assertion (also in the helpers the tests share).
#![allow(clippy::unwrap_used)]
mod common;
use accountant::{DomId, Mode, Space};
use common::*;
use hv::irqchip::Delivery;
use hv::programs;
use hv::Hypervisor;
use std::time::{Duration, Instant};

/// Boots with domains 1-3 spinning (interrupts on); `None` without KVM or
/// without an irqchip (then the event-page tests cover delivery).
fn setup() -> Option<Hypervisor> {
    let hv = boot(small())?;
    for n in [1, 2, 3] {
        hv.create_domain(d(n), &programs::spinner().unwrap())
            .unwrap();
    }
    if hv.irq_delivery(d(1)) != Some(Delivery::Irqchip) {
        assert!(
            std::env::var_os("CI").is_none() || !hv::host::detect().kvm_pvm_module,
            "PVM offers an irqchip"
        );
        return None;
    }
    Some(hv)
}

fn taken(hv: &Hypervisor, dom: DomId) -> u64 {
    hv.irqs_taken(dom).unwrap()
}

/// Waits until `dom`'s handler has taken at least `n` interrupts.
fn wait_taken(hv: &Hypervisor, dom: DomId, n: u64) {
    let end = Instant::now() + Duration::from_secs(10);
    while taken(hv, dom) < n {
        assert!(Instant::now() < end, "{dom} took {} of {n}", taken(hv, dom));
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Raises `line` and checks that exactly `got` (and not `not`) take it.
fn raise_reaches(hv: &Hypervisor, line: u32, got: &[DomId], not: &[DomId]) {
    let before: Vec<u64> = got.iter().chain(not).map(|&x| taken(hv, x)).collect();
    hv.raise_irq(line);
    for (i, &x) in got.iter().enumerate() {
        wait_taken(hv, x, before[i] + 1);
    }
    // Give a wrongly delivered interrupt time to land.
    std::thread::sleep(Duration::from_millis(30));
    for (i, &x) in not.iter().enumerate() {
        assert_eq!(
            taken(hv, x),
            before[got.len() + i],
            "{x} took line {line} it is not bound to"
        );
    }
}

#[test]
fn bind_delivers_and_unbind_stops_before_it_returns() {
    let Some(hv) = setup() else { return };
    let line = range(Space::Irq, 11, 11);
    hv.grant(d(1), line, Mode::Exclusive, false).unwrap();
    raise_reaches(&hv, 11, &[], &[d(1)]);
    for _ in 0..5 {
        hv.bind(d(1), line).unwrap();
        assert_eq!(hv.irqfd_lines(d(1)), vec![11]);
        raise_reaches(&hv, 11, &[d(1)], &[d(2), d(3)]);
        hv.unbind(d(1), line).unwrap();
        assert!(hv.irqfd_lines(d(1)).is_empty());
        raise_reaches(&hv, 11, &[], &[d(1)]);
    }
    hv.check_invariants().unwrap();
}

#[test]
fn revoke_and_forced_grant_deassign() {
    let Some(hv) = setup() else { return };
    let line = range(Space::Irq, 11, 11);
    hv.grant(d(1), line, Mode::Exclusive, false).unwrap();
    hv.bind(d(1), line).unwrap();
    raise_reaches(&hv, 11, &[d(1)], &[]);
    hv.revoke(d(1), line, true).unwrap();
    raise_reaches(&hv, 11, &[], &[d(1)]);
    // dom0 binds line 12 by its default right; a forced grant to d2 ends that.
    hv.create_domain(d(0), &programs::spinner().unwrap())
        .unwrap();
    let l12 = range(Space::Irq, 12, 12);
    hv.bind(d(0), l12).unwrap();
    raise_reaches(&hv, 12, &[d(0)], &[d(2)]);
    let td = hv.grant(d(2), l12, Mode::Exclusive, true).unwrap();
    assert!(td.iter().any(|t| t.space == Space::Irq && t.dom == d(0)));
    raise_reaches(&hv, 12, &[], &[d(0), d(2)]);
    hv.bind(d(2), l12).unwrap();
    raise_reaches(&hv, 12, &[d(2)], &[d(0)]);
    hv.check_invariants().unwrap();
}

#[test]
fn shared_line_reaches_every_binder_and_destroy_deassigns() {
    let Some(hv) = setup() else { return };
    let line = range(Space::Irq, 11, 11);
    for n in [1, 2, 3] {
        hv.grant(d(n), line, Mode::Shared, false).unwrap();
        hv.bind(d(n), line).unwrap();
    }
    raise_reaches(&hv, 11, &[d(1), d(2), d(3)], &[]);
    hv.destroy_domain(d(2)).unwrap();
    assert!(hv.irqfd_lines(d(2)).is_empty());
    raise_reaches(&hv, 11, &[d(1), d(3)], &[]);
    hv.unbind(d(3), line).unwrap();
    raise_reaches(&hv, 11, &[d(1)], &[d(3)]);
    // The destroyed id comes back with a fresh VM that took nothing.
    hv.create_domain(d(2), &programs::spinner().unwrap())
        .unwrap();
    raise_reaches(&hv, 11, &[d(1)], &[d(2), d(3)]);
    hv.check_invariants().unwrap();
}
