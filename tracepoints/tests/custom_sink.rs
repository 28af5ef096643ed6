//! The `no_std` path: a sink registered as a plain function pointer gets
//! every record, stamped, with no rings involved.
#![cfg(feature = "compiled")]

use std::sync::Mutex;

use tracepoints::{tp, Kind, Outcome, Record, Space};

static SEEN: Mutex<Vec<Record>> = Mutex::new(Vec::new());

fn sink(r: &Record) {
    SEEN.lock().unwrap_or_else(|e| e.into_inner()).push(*r);
}

#[test]
fn registered_function_receives_stamped_records() {
    tracepoints::set_sink(sink);
    tracepoints::enable();
    let t0 = tracepoints::start();
    tp!(Record::new(Kind::HvMap)
        .domain(tracepoints::HYPERVISOR)
        .range(Space::IoMem, 0xfee00, 0xfee00)
        .outcome(Outcome::Ok)
        .since(t0));
    tp!(Record::new(Kind::PortCheck)
        .domain(1)
        .outcome(Outcome::Allow));
    tracepoints::disable();
    tp!(Record::new(Kind::PortCheck).domain(2));
    tracepoints::clear_sink();

    let seen = SEEN.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].kind, Kind::HvMap);
    assert!(seen[0].is_timed());
    assert_eq!(seen[0].tsc, t0.0);
    assert_eq!(seen[0].thread, 0, "no ring stamped a thread id");
    assert_eq!((seen[1].kind, seen[1].domain), (Kind::PortCheck, 1));
    assert!(seen[1].tsc >= seen[0].tsc);
    assert!(!seen[1].is_timed());
}
