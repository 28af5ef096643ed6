//! A replayed trace emits one tracepoint per operation, in order, with the
//! fields a person debugging needs; with tracing off it emits nothing.
//! (One test function: the enable flag and the collector are process-global.)

use accountant::trace::Replay;
use accountant::TrackerKind;
use tracepoints::{Collector, Kind, Mode, Outcome, Record, Space};

const TRACE: &[&str] = &[
    "boot reserve_ioports=0x3f8-0x3ff",
    "create 1",
    "map 0 iomem 0xfeb00",
    "grant 1 iomem 0xfeb00 exclusive",
    "grant 1 iomem 0xfeb00 exclusive force",
    "map 1 iomem 0xfeb00-0xfeb01",
    "grant 1 ioport 0x300-0x307 shared",
    "access 1 ioport 0x300 2",
    "access 0 ioport 0x3f8",
    "revoke 1 ioport 0x300-0x307",
    "grant 1 irq 11 exclusive",
    "bind 1 irq 11",
    "revoke 1 irq 11",
    "reserve ioport 0x2f8",
];

fn replay() {
    let mut rp = Replay::new(TrackerKind::SlabExtent);
    for l in TRACE {
        rp.feed(l).expect("well-formed");
    }
}

/// This thread's records (other test binaries' threads never share the
/// process, but the collector may hold records of earlier, finished threads).
fn ours(collector: &Collector, records: Vec<Record>) -> Vec<Record> {
    let me = collector.current_thread();
    records
        .into_iter()
        .filter(|r| Some(r.thread) == me)
        .collect()
}

#[test]
fn replay_emits_the_expected_events() {
    let collector = Collector::install();
    tracepoints::disable();
    collector.clear();
    replay();
    let off = collector.drain();
    assert!(off.is_empty(), "off: zero events, got {off:?}");

    tracepoints::enable();
    replay();
    tracepoints::disable();
    let recs = ours(&collector, collector.drain());
    let kinds: Vec<Kind> = recs.iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        [
            Kind::Reserve, // boot reservation
            Kind::Create,
            Kind::Map,
            Kind::Grant,    // refused: in use
            Kind::Teardown, // dom0's mapping, inside the forced grant
            Kind::Grant,
            Kind::Map, // refused: 0xfeb01 not granted
            Kind::Grant,
            Kind::PortCheck,
            Kind::PortCheck,
            Kind::Revoke,
            Kind::Grant,
            Kind::Bind,
            Kind::Revoke, // pending: still bound
            Kind::Reserve,
        ]
    );
    let r = &recs[3];
    assert_eq!(
        (r.domain, r.space, r.first, r.last),
        (1, Space::IoMem, 0xfeb00, 0xfeb00)
    );
    assert_eq!(
        (r.outcome, r.mode, r.is_forced()),
        (Outcome::InUse, Mode::Exclusive, false)
    );
    assert!(r.is_timed(), "operations carry their duration");
    let t = &recs[4];
    assert_eq!((t.domain, t.first, t.value), (0, 0xfeb00, 1));
    assert_eq!((recs[5].outcome, recs[5].is_forced()), (Outcome::Ok, true));
    assert_eq!(recs[6].outcome, Outcome::NotGranted);
    assert_eq!(
        (recs[8].outcome, recs[8].width, recs[8].last),
        (Outcome::Allow, 2, 0x301)
    );
    assert_eq!(recs[9].outcome, Outcome::Deny);
    assert_eq!(recs[13].outcome, Outcome::Pending);
    assert_eq!(
        (recs[14].domain, recs[14].outcome),
        (tracepoints::HYPERVISOR, Outcome::Ok)
    );
}
