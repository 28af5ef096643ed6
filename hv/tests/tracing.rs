//! With tracepoints on, a guest's exits, hypercalls and memslot changes are
//! recorded (own test binary: the enable flag is process-wide).
mod common;
use common::*;
use hv::programs::{self, SI_STOP};
use std::time::Duration;
use tracepoints::{Collector, Kind, Space};

#[test]
fn vm_exits_hypercalls_and_memslots_are_traced() {
    let Some(hv) = boot(small()) else { return };
    let collector = Collector::install();
    tracepoints::enable();
    hv.create_domain(d(0), &programs::driver(0).unwrap())
        .unwrap();
    progress(&hv, d(0), 20);
    hv.write_guest_u64(d(0), SI_STOP, 1).unwrap();
    hv.wait(d(0), Duration::from_secs(10)).unwrap();
    tracepoints::disable();
    let recs = collector.drain();
    let exits: Vec<_> = recs
        .iter()
        .filter(|r| r.kind == Kind::VmExit && r.domain == 0 && r.space == Space::IoPort)
        .collect();
    assert!(exits.len() >= 40, "{} port exits", exits.len());
    assert!(exits.iter().any(|r| r.first == 0x300 && r.width == 4));
    assert!(exits.iter().all(|r| r.is_timed()));
    let hc = recs.iter().find(|r| r.kind == Kind::Hypercall).unwrap();
    assert_eq!((hc.extra, hc.value), (hv::hypercall::op::MAP_IOMEM, 0));
    let slot = recs.iter().find(|r| r.kind == Kind::MemslotAdd).unwrap();
    assert_eq!((slot.first, slot.last), (0xfeb00, 0xfeb00));
    assert!(
        recs.iter().any(|r| r.kind == Kind::PortCheck),
        "the accountant's checks too"
    );
}
