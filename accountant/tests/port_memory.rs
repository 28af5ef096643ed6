//! The port table is bounded by live domains (SPEC "Port table"): 100,000
//! domains, each holding ports and a bound checker for its vCPU, are
//! created and destroyed, and the table's memory stays flat.

use accountant::{Accountant, BootOptions, DomId, Mode, Space, TrackerKind, UnitRange};

fn ports(first: u64, last: u64) -> UnitRange {
    UnitRange::new(Space::IoPort, first, last).expect("a port range")
}

#[test]
fn a_hundred_thousand_domains_leave_the_port_table_flat() {
    let opts = BootOptions::parse("io_default=none").expect("valid");
    let mut a = Accountant::boot(&opts, TrackerKind::SlabExtent).expect("boots");
    let base = a.port_table_bytes();
    // At most 8 live domains at once, over every id of the table.
    let live = 8u64;
    let ids = u64::from(accountant::MAX_DOMID);
    let mut worst = 0;
    let mut checkers = std::collections::VecDeque::new();
    for i in 0..100_000u64 {
        let d = DomId::new(1 + (i * 7919) % ids).expect("a valid id");
        a.create(d).expect("fresh");
        let p = (i * 64) % 0xff00;
        a.grant(d, ports(p, p + 63), Mode::Exclusive, false)
            .expect("free");
        let c = a.bound_port_checker(d).expect("in the table");
        assert!(c.check(p as u16, 4));
        checkers.push_back((d, c, p));
        if checkers.len() as u64 == live {
            let (d, c, p) = checkers.pop_front().expect("one is live");
            a.destroy(d).expect("exists");
            assert!(!c.check(p as u16, 1), "denied once destroyed");
            drop(c); // the domain's vCPUs stop
        }
        worst = worst.max(a.port_table_bytes());
    }
    // Live leaves, plus at most every directory (2 KiB per 256 ids).
    let leaf = 8192 + 8;
    let bound = base + live * leaf + 128 * 2048;
    assert!(worst <= bound, "{worst} bytes past the bound {bound}");
    for (d, c, _) in checkers.drain(..) {
        a.destroy(d).expect("exists");
        drop(c);
    }
    a.create(DomId::new(1).expect("valid")).ok();
    let dirs_only = a.port_table_bytes() - base;
    assert_eq!(
        dirs_only % 2048,
        0,
        "only directories are left: {dirs_only}"
    );
    assert_eq!(a.check_invariants(), Ok(()));
}

#[test]
fn a_checker_kept_past_destroy_denies_and_holds_only_its_own_leaf() {
    let mut a = Accountant::new(TrackerKind::SlabExtent);
    let d = DomId::new(5).expect("valid");
    a.create(d).expect("fresh");
    a.grant(d, ports(0x70, 0x71), Mode::Exclusive, false)
        .expect("free");
    let old = a.bound_port_checker(d).expect("in the table");
    let before = a.port_table_bytes();
    a.destroy(d).expect("exists");
    assert!(
        a.port_table_bytes() < before,
        "the table let go of the leaf"
    );
    // The id is created again and granted the same ports: the old checker
    // (its leaf now its own) still denies.
    a.create(d).expect("fresh");
    a.grant(d, ports(0x70, 0x71), Mode::Exclusive, false)
        .expect("free");
    let new = a.bound_port_checker(d).expect("in the table");
    assert!(new.check(0x70, 2) && !old.check(0x70, 2));
    drop(old);
    assert!(new.clone().check(0x71, 1));
    assert_eq!(a.check_invariants(), Ok(()));
}
