//! Many threads check ports while another grants, revokes and reserves.
//! Once a revoke (or a grant to another domain, or a reservation) has
//! returned, no later check may allow what it took away.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;

use accountant::{Accountant, BoundPortChecker, DomId, Mode, Space, TrackerKind, UnitRange};

/// Published by the control thread after an operation returned: which
/// (domain, port) pair is now forbidden, with a generation number.
struct Epoch {
    gen: AtomicU64,
    forbidden_dom: AtomicU64,
    forbidden_port: AtomicU64,
}

#[test]
fn no_allow_after_revoke_returns() {
    revoke_race(false);
}

/// The same race, with each reader holding checkers bound to domains 0-2
/// (as a vCPU thread holds its own domain's).
#[test]
fn no_bound_allow_after_revoke_returns() {
    revoke_race(true);
}

fn revoke_race(bound: bool) {
    let mut acct = Accountant::new(TrackerKind::SlabExtent);
    let d1 = DomId::new(1).expect("valid");
    let d2 = DomId::new(2).expect("valid");
    acct.create(d1).expect("fresh");
    acct.create(d2).expect("fresh");
    let checker = acct.port_checker();
    let bound_to: Vec<BoundPortChecker> = [DomId::DOM0, d1, d2]
        .into_iter()
        .map(|d| acct.bound_port_checker(d).expect("id in range"))
        .collect();
    let epoch = Arc::new(Epoch {
        gen: AtomicU64::new(0),
        forbidden_dom: AtomicU64::new(u64::MAX),
        forbidden_port: AtomicU64::new(0),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let violations = Arc::new(AtomicU64::new(0));
    let checks = Arc::new(AtomicU64::new(0));
    let validated = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..3)
        .map(|t| {
            let b = bound_to.clone();
            let (c, e, s, v, n, ok) = (
                checker.clone(),
                Arc::clone(&epoch),
                Arc::clone(&stop),
                Arc::clone(&violations),
                Arc::clone(&checks),
                Arc::clone(&validated),
            );
            thread::spawn(move || {
                let mut i = t as u64;
                while !s.load(Ordering::Acquire) {
                    // Seqlock read: the generation is even while no operation is
                    // in flight; a check bracketed by the same even generation
                    // ran entirely after the operation that forbade the pair
                    // returned and before the next one started.
                    let g1 = e.gen.load(Ordering::Acquire);
                    let dom = e.forbidden_dom.load(Ordering::Acquire);
                    let port = e.forbidden_port.load(Ordering::Acquire);
                    let allowed = if bound {
                        b.get(dom as usize).is_some_and(|b| b.check(port as u16, 1))
                    } else {
                        c.check(dom as u16, port as u16, 1)
                    };
                    let g2 = e.gen.load(Ordering::Acquire);
                    if g1 == g2 && g1 % 2 == 0 && dom != u64::MAX {
                        ok.fetch_add(1, Ordering::Relaxed);
                        if allowed {
                            v.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    // Unrelated checks keep the readers busy on other leaves too.
                    let _ = if bound {
                        b[(i % 3) as usize].check((i % 0x10000) as u16, 2)
                    } else {
                        c.check((i % 3) as u16, (i % 0x10000) as u16, 2)
                    };
                    i = i
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407)
                        >> 16;
                    n.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    // Odd generation while an operation is in flight (readers discard).
    let begin = || {
        epoch.gen.fetch_add(1, Ordering::AcqRel);
        epoch.forbidden_dom.store(u64::MAX, Ordering::Release);
    };
    // After the operation returned: what it forbade, and an even generation.
    let publish = |dom: DomId, port: u64| {
        epoch
            .forbidden_dom
            .store(u64::from(dom.get()), Ordering::Release);
        epoch.forbidden_port.store(port, Ordering::Release);
        epoch.gen.fetch_add(1, Ordering::AcqRel);
        // Give the readers a chance to check inside this quiet window.
        let seen = validated.load(Ordering::Relaxed);
        let until = std::time::Instant::now() + std::time::Duration::from_micros(200);
        while validated.load(Ordering::Relaxed) == seen && std::time::Instant::now() < until {
            std::hint::spin_loop();
        }
    };
    for round in 0..4000u64 {
        let port = 0x100 + (round * 37) % 0x3000;
        let r = UnitRange::new(Space::IoPort, port, port + 7).expect("valid");
        begin();
        acct.grant(d1, r, Mode::Exclusive, false)
            .expect("free ports");
        // The exclusive grant took dom0's default right away.
        publish(DomId::DOM0, port + 3);
        begin();
        acct.revoke(d1, r, false).expect("held");
        publish(d1, port + 5);
        begin();
        acct.grant(d2, r, Mode::Shared, false).expect("free again");
        acct.reserve(UnitRange::one(Space::IoPort, port + 6).expect("valid"))
            .expect_err("held by d2: conflict");
        publish(DomId::DOM0, port + 6);
        begin();
        acct.revoke(d2, r, false).expect("held");
        publish(d2, port + 1);
        begin();
        acct.reserve(r).expect("free");
        publish(DomId::DOM0, port + 2);
        begin();
        acct.unreserve(r).expect("reserved");
        publish(d1, port);
    }
    stop.store(true, Ordering::Release);
    for r in readers {
        r.join().expect("reader thread");
    }
    assert_eq!(
        violations.load(Ordering::Relaxed),
        0,
        "a check allowed a revoked access"
    );
    assert!(
        validated.load(Ordering::Relaxed) > 100,
        "enough checks ran inside a quiet window"
    );
    assert!(
        checks.load(Ordering::Relaxed) > 1000,
        "readers ran concurrently"
    );
    assert_eq!(acct.check_invariants(), Ok(()));
}
