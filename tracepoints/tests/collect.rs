//! Rings and collector end to end: order and fields, off means nothing,
//! exact overflow counting, concurrent writers.
#![cfg(all(feature = "std", feature = "compiled"))]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex, MutexGuard};

use tracepoints::{tp, Collector, Kind, Mode, Outcome, Record, Space, HYPERVISOR};

/// The enable flag, the sink and the rings are process-global: tests in this
/// binary take turns.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn mine(records: Vec<Record>, thread: u32) -> Vec<Record> {
    records.into_iter().filter(|r| r.thread == thread).collect()
}

#[test]
fn events_come_out_in_order_with_the_right_fields() {
    let _g = serial();
    let c = Collector::install();
    let me = c.current_thread().expect("thread is alive");
    c.clear();
    tracepoints::enable();
    for i in 0..200u64 {
        let t0 = tracepoints::start();
        assert!(t0.is_set());
        let d = (i % 7) as u16;
        match i % 4 {
            0 => tp!(Record::new(Kind::Grant)
                .domain(d)
                .range(Space::IoMem, i, i + 15)
                .mode(Mode::Shared)
                .forced(i.is_multiple_of(8))
                .outcome(Outcome::Ok)
                .since(t0)),
            1 => tp!(Record::new(Kind::PortCheck)
                .domain(d)
                .range(Space::IoPort, i, i + 1)
                .width(2)
                .outcome(Outcome::Deny)),
            2 => tp!(Record::new(Kind::Reserve)
                .domain(HYPERVISOR)
                .range(Space::Irq, i, i)
                .outcome(Outcome::Conflict)
                .since(t0)),
            _ => tp!(Record::new(Kind::VmExit).domain(d).extra(30).value(i)),
        }
    }
    tracepoints::disable();
    let got = mine(c.drain(), me);
    assert_eq!(got.len(), 200);
    let mut prev_tsc = 0;
    for (i, r) in got.iter().enumerate() {
        let i = i as u64;
        let d = (i % 7) as u16;
        assert_eq!(r.thread, me);
        match i % 4 {
            0 => {
                assert_eq!(r.kind, Kind::Grant);
                assert_eq!(
                    (r.domain, r.space, r.first, r.last),
                    (d, Space::IoMem, i, i + 15)
                );
                assert_eq!(r.mode, Mode::Shared);
                assert_eq!(r.is_forced(), i.is_multiple_of(8));
                assert_eq!(r.outcome, Outcome::Ok);
                assert!(r.is_timed());
            }
            1 => {
                assert_eq!(r.kind, Kind::PortCheck);
                assert_eq!((r.domain, r.first, r.last, r.width), (d, i, i + 1, 2));
                assert_eq!(r.outcome, Outcome::Deny);
                assert!(!r.is_timed());
                assert_eq!(r.duration, 0);
            }
            2 => {
                assert_eq!(r.kind, Kind::Reserve);
                assert_eq!((r.domain, r.space, r.first), (HYPERVISOR, Space::Irq, i));
                assert_eq!(r.outcome, Outcome::Conflict);
                assert!(r.is_timed());
            }
            _ => {
                assert_eq!(r.kind, Kind::VmExit);
                assert_eq!((r.extra, r.value), (30, i));
                assert_eq!(r.outcome, Outcome::None);
            }
        }
        // Emission order on one thread is timestamp order (a timed record's
        // stamp is its start, taken after the previous record's emit).
        assert!(r.tsc >= prev_tsc, "record {i} went back in time");
        prev_tsc = r.tsc + r.duration;
    }
}

#[test]
fn with_tracing_off_nothing_is_built_or_recorded() {
    let _g = serial();
    let c = Collector::install();
    let me = c.current_thread().expect("thread is alive");
    tracepoints::disable();
    c.clear();
    let lost_before = c.stats();
    let built = AtomicU64::new(0);
    for i in 0..1000u64 {
        tp!({
            built.fetch_add(1, Ordering::Relaxed);
            Record::new(Kind::Map).first_unit(i)
        });
        assert!(!tracepoints::start().is_set());
    }
    assert_eq!(built.load(Ordering::Relaxed), 0);
    assert!(mine(c.drain(), me).is_empty());
    assert_eq!(c.stats(), lost_before);

    // Same site, switched on: now it is built and recorded.
    tracepoints::enable();
    tp!({
        built.fetch_add(1, Ordering::Relaxed);
        Record::new(Kind::Map).first_unit(7)
    });
    tracepoints::disable();
    assert_eq!(built.load(Ordering::Relaxed), 1);
    let got = mine(c.drain(), me);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].first, 7);
}

trait FirstUnit {
    fn first_unit(self, u: u64) -> Record;
}
impl FirstUnit for Record {
    fn first_unit(self, u: u64) -> Record {
        self.range(Space::IoMem, u, u)
    }
}

#[test]
fn tiny_ring_overflow_is_counted_exactly() {
    let _g = serial();
    let c = Collector::install();
    c.clear();
    let before = c.stats();
    assert_eq!(tracepoints::set_ring_capacity(5), 8);
    tracepoints::enable();
    let writer = std::thread::spawn(move || {
        let id = c.current_thread().expect("thread is alive");
        for i in 0..20u64 {
            tp!(Record::new(Kind::Unmap).domain(1).range(Space::IoMem, i, i));
        }
        id
    });
    let id = writer.join().expect("writer thread does not panic");
    tracepoints::disable();
    tracepoints::set_ring_capacity(tracepoints::DEFAULT_RING_CAPACITY);

    let mid = c.stats();
    assert_eq!(mid.lost_ring_full - before.lost_ring_full, 12);
    let got = mine(c.drain(), id);
    assert_eq!(got.len(), 9);
    let firsts: Vec<u64> = got[..8].iter().map(|r| r.first).collect();
    assert_eq!(firsts, (0..8).collect::<Vec<_>>());
    assert_eq!((got[8].kind, got[8].extra), (Kind::Lost, 12));
    // The writer has exited and its ring is drained: it is retired (other
    // exited test threads may be retired in the same drain), and the loss
    // total does not go backwards.
    let after = c.stats();
    assert!(after.rings < mid.rings, "{mid:?} -> {after:?}");
    assert_eq!(after.lost_ring_full, mid.lost_ring_full);
}

#[test]
fn concurrent_writers_lose_and_tear_nothing() {
    const THREADS: u64 = 4;
    const PER_THREAD: u64 = 40_000;
    let _g = serial();
    let c = Collector::install();
    c.clear();
    tracepoints::enable();
    let barrier = Arc::new(Barrier::new(THREADS as usize));
    let writers: Vec<_> = (0..THREADS)
        .map(|w| {
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let id = c.current_thread().expect("thread is alive");
                barrier.wait();
                for i in 0..PER_THREAD {
                    // Every field derived from (w, i): a torn record would
                    // mix two records' values and fail the check below.
                    let tag = w << 32 | i;
                    tp!(Record::new(Kind::Bind)
                        .domain(w as u16)
                        .range(Space::Irq, tag, !tag)
                        .extra(tag.wrapping_mul(0x9e37_79b9_7f4a_7c15))
                        .value(tag ^ 0x5555_5555_5555_5555)
                        .outcome(Outcome::Ok));
                }
                (w, id)
            })
        })
        .collect();
    // Drain while they write.
    let mut all = Vec::new();
    while !writers.iter().all(|h| h.is_finished()) {
        c.drain_into(&mut all);
        std::thread::yield_now();
    }
    let ids: Vec<(u64, u32)> = writers
        .into_iter()
        .map(|h| h.join().expect("writer thread does not panic"))
        .collect();
    tracepoints::disable();
    c.drain_into(&mut all);

    for (w, id) in ids {
        let got: Vec<&Record> = all.iter().filter(|r| r.thread == id).collect();
        assert!(
            got.iter().all(|r| r.kind != Kind::Lost),
            "ring of writer {w} overflowed"
        );
        assert_eq!(got.len() as u64, PER_THREAD, "writer {w}");
        for (i, r) in got.iter().enumerate() {
            let tag = w << 32 | i as u64;
            assert_eq!(r.first, tag, "writer {w} record {i} out of order");
            assert_eq!(r.last, !tag);
            assert_eq!(r.extra, tag.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            assert_eq!(r.value, tag ^ 0x5555_5555_5555_5555);
            assert_eq!(
                (r.domain, r.kind, r.outcome),
                (w as u16, Kind::Bind, Outcome::Ok)
            );
        }
    }
}

#[test]
fn emitting_with_no_sink_is_counted() {
    let _g = serial();
    let c = Collector::install();
    tracepoints::clear_sink();
    assert!(!tracepoints::sink_installed());
    let before = tracepoints::dropped_without_sink();
    tracepoints::enable();
    for _ in 0..5 {
        tp!(Record::new(Kind::Create).domain(9));
    }
    tracepoints::disable();
    assert_eq!(tracepoints::dropped_without_sink() - before, 5);
    assert_eq!(c.stats().lost_no_sink - before, 5);
    Collector::install();
    assert!(tracepoints::sink_installed());
}

#[test]
fn measure_overhead_runs_all_three_loops_and_restores_state() {
    let _g = serial();
    let c = Collector::install();
    tracepoints::disable();
    let s = tracepoints::bench_support::measure_overhead(10);
    assert_eq!(
        s.iters,
        tracepoints::bench_support::BATCH,
        "at least one batch"
    );
    for ns in [s.baseline_ns, s.disabled_ns, s.enabled_ns] {
        assert!(ns.is_finite() && ns > 0.0, "{s:?}");
    }
    assert!(!tracepoints::enabled(), "off state restored");
    assert_eq!(c.stats().pending, 0, "enabled loop drained what it wrote");
    eprintln!("{s:?}");
}

#[test]
fn drainer_delivers_every_record_or_reports_it_lost() {
    const N: u64 = 200_000;
    let _g = serial();
    let c = Collector::install();
    c.clear();
    let before = c.stats();
    tracepoints::set_ring_capacity(256);
    let seen: Arc<Mutex<Vec<Record>>> = Arc::default();
    let sink = Arc::clone(&seen);
    let drainer = c
        .spawn_drainer(std::time::Duration::from_micros(200), move |batch| {
            sink.lock()
                .expect("no panics while held")
                .extend_from_slice(batch);
        })
        .expect("thread spawn works in tests");
    tracepoints::enable();
    let writer = std::thread::spawn(move || {
        let id = c.current_thread().expect("thread is alive");
        for i in 0..N {
            tp!(Record::new(Kind::Teardown)
                .domain(77)
                .range(Space::IoMem, i, i));
        }
        id
    });
    let id = writer.join().expect("writer thread does not panic");
    tracepoints::disable();
    tracepoints::set_ring_capacity(tracepoints::DEFAULT_RING_CAPACITY);
    drainer.stop().expect("consumer does not panic");

    let seen = seen.lock().expect("no panics while held");
    let mine: Vec<&Record> = seen.iter().filter(|r| r.thread == id).collect();
    let delivered: Vec<u64> = mine
        .iter()
        .filter(|r| r.kind == Kind::Teardown)
        .map(|r| r.first)
        .collect();
    let lost: u64 = mine
        .iter()
        .filter(|r| r.kind == Kind::Lost)
        .map(|r| r.extra)
        .sum();
    assert_eq!(
        delivered.len() as u64 + lost,
        N,
        "delivered + reported lost"
    );
    assert!(delivered.windows(2).all(|w| w[0] < w[1]), "order kept");
    assert_eq!(c.stats().lost_ring_full - before.lost_ring_full, lost);
    eprintln!("drainer: {} delivered, {lost} lost", delivered.len());
}
