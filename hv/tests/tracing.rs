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
    // The records say which path each port exit took, and agree with the
    // domain's counters and with what this host must use.
    let trapped = exits.iter().filter(|r| r.is_trapped()).count() as u64;
    let native = exits.len() as u64 - trapped;
    println!(
        "traced port exits on {}: {native} native, {trapped} pvm-trapped",
        hv.host().kind.name()
    );
    hv::host::check_exit_path(hv.host().kind, native, trapped).unwrap();
    let s = hv.stats(d(0)).unwrap();
    assert_eq!(
        (native, trapped),
        (s.native_port_exits, s.trapped_port_exits)
    );
    let hc = recs.iter().find(|r| r.kind == Kind::Hypercall).unwrap();
    assert_eq!((hc.extra, hc.value), (hv::hypercall::op::MAP_IOMEM, 0));
    let slot = recs.iter().find(|r| r.kind == Kind::MemslotAdd).unwrap();
    assert_eq!((slot.first, slot.last), (0xfeb00, 0xfeb00));
    assert!(
        recs.iter().any(|r| r.kind == Kind::PortCheck),
        "the accountant's checks too"
    );
}
