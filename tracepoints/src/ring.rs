//! Single-producer single-consumer ring of [`Record`]s.
//!
//! One ring per emitting thread: the thread owns the [`Producer`], the
//! collector owns the [`Reader`]. Neither side takes a lock.
//!
//! # Discipline (why a record is never torn)
//!
//! `head` and `tail` are free-running counters (slot = counter & mask).
//! The producer writes slots in `tail..head + capacity` only, then publishes
//! them with a `Release` store of `tail`; the reader loads `tail` with
//! `Acquire`, copies slots in `head..tail`, then gives them back with a
//! `Release` store of `head`, which the producer loads with `Acquire` before
//! reusing them. So no slot is ever written and read at the same time.
//!
//! # Overflow policy: drop the newest, count it, report it in-stream
//!
//! A full ring drops the record being pushed (the ones already in the ring
//! are kept, so the stream has a gap, not a rewrite) and adds one to the
//! ring's *pending lost* counter. The next push that finds room for two
//! records first writes a [`Kind::Lost`] marker carrying that count, like
//! xentrace's lost-records record; if the producer goes quiet, the reader
//! emits the marker at the end of its drain instead. Both sides take the
//! count with an atomic `swap(0)`, so every lost record is reported exactly
//! once. [`Reader::lost_total`] keeps the running total.

use std::cell::{Cell, UnsafeCell};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::{Kind, Record};

/// Smallest ring: room for one record and its lost-records marker.
pub const MIN_CAPACITY: usize = 2;

/// Pads a counter to its own cache line so producer and reader do not
/// bounce each other's line on every push.
#[repr(align(64))]
struct Padded<T>(T);

struct Shared {
    slots: Box<[UnsafeCell<Record>]>,
    mask: usize,
    /// Reader position; written only by the reader.
    head: Padded<AtomicUsize>,
    /// Producer position; written only by the producer.
    tail: Padded<AtomicUsize>,
    /// Records dropped and not yet reported by a marker.
    pending_lost: AtomicU64,
    /// Records dropped since creation; written only by the producer.
    lost_total: AtomicU64,
    /// Records accepted since creation (markers excluded); written only by
    /// the producer.
    written_total: AtomicU64,
    /// False once the producer is dropped (its thread has exited).
    producer_alive: AtomicBool,
    thread: u32,
}

// SAFETY: the slots are the only non-Sync part. Each slot is accessed by at
// most one side at a time under the head/tail discipline in the module docs:
// the producer only writes slots the reader has released (`head` loaded with
// Acquire), the reader only reads slots the producer has published (`tail`
// loaded with Acquire). `Producer` and `Reader` are the only handles that
// touch slots, and each exists once per ring (neither is Clone, `Producer`
// is !Sync).
unsafe impl Sync for Shared {}
// SAFETY: `Record` is plain data; moving the ring between threads moves
// owned memory only.
unsafe impl Send for Shared {}

/// The writing end of a ring. Not `Clone` and not `Sync`: exactly one thread
/// writes at a time, which is what makes the ring lock-free and sound.
pub struct Producer {
    shared: Arc<Shared>,
    /// Local copy of `tail` (only this side writes it).
    tail: Cell<usize>,
    /// Last `head` seen; refreshed only when the ring looks full.
    cached_head: Cell<usize>,
}

/// The reading end of a ring; owned by the collector.
pub struct Reader {
    shared: Arc<Shared>,
}

/// Creates a ring holding `capacity` records (rounded up to a power of two,
/// at least [`MIN_CAPACITY`]). `thread` is stamped into every record pushed
/// and into lost-records markers.
pub fn channel(capacity: usize, thread: u32) -> (Producer, Reader) {
    let cap = capacity.max(MIN_CAPACITY).next_power_of_two();
    let slots: Box<[UnsafeCell<Record>]> = (0..cap)
        .map(|_| UnsafeCell::new(Record::new(Kind::Lost)))
        .collect();
    let shared = Arc::new(Shared {
        slots,
        mask: cap - 1,
        head: Padded(AtomicUsize::new(0)),
        tail: Padded(AtomicUsize::new(0)),
        pending_lost: AtomicU64::new(0),
        lost_total: AtomicU64::new(0),
        written_total: AtomicU64::new(0),
        producer_alive: AtomicBool::new(true),
        thread,
    });
    (
        Producer {
            shared: Arc::clone(&shared),
            tail: Cell::new(0),
            cached_head: Cell::new(0),
        },
        Reader { shared },
    )
}

impl Producer {
    /// Appends `record` (with its `thread` field set to this ring's thread).
    /// Returns false when the ring was full and the record was dropped and
    /// counted.
    #[inline]
    pub fn push(&self, record: &Record) -> bool {
        let s = &*self.shared;
        let cap = s.mask + 1;
        let tail = self.tail.get();
        let need = if s.pending_lost.load(Ordering::Relaxed) > 0 {
            2
        } else {
            1
        };
        if cap - tail.wrapping_sub(self.cached_head.get()) < need {
            let head = s.head.0.load(Ordering::Acquire);
            self.cached_head.set(head);
            if cap - tail.wrapping_sub(head) < need {
                s.pending_lost.fetch_add(1, Ordering::Relaxed);
                // Only the producer writes `lost_total`: a plain store, no
                // locked read-modify-write.
                let lost = s.lost_total.load(Ordering::Relaxed);
                s.lost_total.store(lost + 1, Ordering::Relaxed);
                return false;
            }
        }
        let mut t = tail;
        if need == 2 {
            let lost = s.pending_lost.swap(0, Ordering::Relaxed);
            if lost > 0 {
                // Timestamp the marker with the record that follows the gap.
                self.write(t, &Record::lost(lost, s.thread, record.tsc));
                t = t.wrapping_add(1);
            }
        }
        self.write(t, record);
        t = t.wrapping_add(1);
        s.tail.0.store(t, Ordering::Release);
        self.tail.set(t);
        // Only the producer writes `written_total` (see `lost_total`).
        let written = s.written_total.load(Ordering::Relaxed);
        s.written_total.store(written + 1, Ordering::Relaxed);
        true
    }

    /// Copies `record` into slot `pos` and stamps this ring's thread id.
    #[inline(always)]
    fn write(&self, pos: usize, record: &Record) {
        let slot = &self.shared.slots[pos & self.shared.mask];
        // SAFETY: `push` checked that `pos` lies in `tail..head + capacity`
        // with `head` loaded (Acquire) from the reader, so the reader has
        // released this slot and will not read it before the Release store
        // of a `tail` past `pos`; this Producer is the only writer (module
        // docs). The slot pointer is valid and aligned (it is a live
        // `UnsafeCell<Record>` in the boxed slice).
        unsafe {
            let p = slot.get();
            p.write(*record);
            (*p).thread = self.shared.thread;
        }
    }

    /// The thread id stamped into this ring's records.
    pub fn thread(&self) -> u32 {
        self.shared.thread
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        self.shared.producer_alive.store(false, Ordering::Release);
    }
}

impl Reader {
    /// Moves every published record into `out`, in push order, followed by a
    /// [`Kind::Lost`] marker if records were dropped since the last one was
    /// reported. Returns how many records (markers included) were appended.
    pub fn drain_into(&mut self, out: &mut Vec<Record>) -> usize {
        let s = &*self.shared;
        let head = s.head.0.load(Ordering::Relaxed);
        let tail = s.tail.0.load(Ordering::Acquire);
        let n = tail.wrapping_sub(head);
        out.reserve(n + 1);
        let mut pos = head;
        while pos != tail {
            let slot = &s.slots[pos & s.mask];
            // SAFETY: `pos` is in `head..tail`; `tail` was loaded with
            // Acquire after the producer's Release store that published these
            // slots, and the producer does not write them again until we
            // store a `head` past them (below). Pointer valid and aligned.
            out.push(unsafe { slot.get().read() });
            pos = pos.wrapping_add(1);
        }
        s.head.0.store(tail, Ordering::Release);
        let lost = s.pending_lost.swap(0, Ordering::Relaxed);
        if lost > 0 {
            out.push(Record::lost(lost, s.thread, crate::now_tsc()));
            return n + 1;
        }
        n
    }

    /// Records currently waiting in the ring.
    pub fn len(&self) -> usize {
        let s = &*self.shared;
        s.tail
            .0
            .load(Ordering::Acquire)
            .wrapping_sub(s.head.0.load(Ordering::Relaxed))
    }

    /// True when no record is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Slots in the ring (a power of two).
    pub fn capacity(&self) -> usize {
        self.shared.mask + 1
    }

    /// Records dropped because the ring was full, since creation.
    pub fn lost_total(&self) -> u64 {
        self.shared.lost_total.load(Ordering::Relaxed)
    }

    /// Records accepted, since creation (lost-records markers excluded).
    pub fn written_total(&self) -> u64 {
        self.shared.written_total.load(Ordering::Relaxed)
    }

    /// The ring's thread id.
    pub fn thread(&self) -> u32 {
        self.shared.thread
    }

    /// True once the producer has been dropped and everything, including the
    /// lost count, has been drained: the ring can be discarded.
    pub fn is_finished(&self) -> bool {
        !self.shared.producer_alive.load(Ordering::Acquire)
            && self.is_empty()
            && self.shared.pending_lost.load(Ordering::Relaxed) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Outcome, Space};

    fn rec(i: u64) -> Record {
        let mut r = Record::new(Kind::PortCheck)
            .range(Space::IoPort, i, i)
            .outcome(Outcome::Allow);
        r.tsc = i + 1;
        r
    }

    #[test]
    fn capacity_rounds_up_to_power_of_two() {
        assert_eq!(channel(0, 1).1.capacity(), 2);
        assert_eq!(channel(5, 1).1.capacity(), 8);
        assert_eq!(channel(64, 1).1.capacity(), 64);
    }

    #[test]
    fn records_come_out_in_order_with_thread_stamped() {
        let (p, mut r) = channel(16, 9);
        for i in 0..10 {
            assert!(p.push(&rec(i)));
        }
        let mut out = Vec::new();
        assert_eq!(r.drain_into(&mut out), 10);
        let firsts: Vec<u64> = out.iter().map(|r| r.first).collect();
        assert_eq!(firsts, (0..10).collect::<Vec<_>>());
        assert!(out.iter().all(|r| r.thread == 9));
        assert!(r.is_empty());
    }

    #[test]
    fn overflow_counts_exactly_and_reader_reports_marker() {
        let (p, mut r) = channel(4, 3);
        let accepted = (0..10).filter(|i| p.push(&rec(*i))).count();
        assert_eq!(accepted, 4);
        assert_eq!(r.lost_total(), 6);
        let mut out = Vec::new();
        r.drain_into(&mut out);
        assert_eq!(out.len(), 5);
        assert_eq!(out[4].kind, Kind::Lost);
        assert_eq!(out[4].extra, 6);
        assert_eq!(out[4].thread, 3);
        // Reported once: a further drain has nothing.
        out.clear();
        assert_eq!(r.drain_into(&mut out), 0);
    }

    #[test]
    fn producer_writes_marker_before_next_record_after_a_gap() {
        let (p, mut r) = channel(4, 1);
        for i in 0..4 {
            assert!(p.push(&rec(i)));
        }
        for i in 4..7 {
            assert!(!p.push(&rec(i)));
        }
        // Give the slots back the way a drain does before it takes the lost
        // count, so the producer is the one to report the gap.
        let s = &*r.shared;
        s.head
            .0
            .store(s.tail.0.load(Ordering::Acquire), Ordering::Release);
        assert!(p.push(&rec(7)));
        let mut out = Vec::new();
        r.drain_into(&mut out);
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].kind, out[0].extra), (Kind::Lost, 3));
        assert_eq!(out[0].tsc, rec(7).tsc);
        assert_eq!(out[1].first, 7);
        assert_eq!(r.lost_total(), 3);
    }

    #[test]
    fn marker_needs_two_free_slots() {
        let (p, mut r) = channel(2, 1);
        assert!(p.push(&rec(0)));
        assert!(p.push(&rec(1)));
        assert!(!p.push(&rec(2)));
        // One slot free: not enough for marker + record, so it is dropped too.
        let s = &*r.shared;
        s.head.0.store(1, Ordering::Release);
        assert!(!p.push(&rec(3)));
        let mut out = Vec::new();
        r.drain_into(&mut out);
        let kinds: Vec<(Kind, u64)> = out.iter().map(|r| (r.kind, r.extra)).collect();
        assert_eq!(kinds, vec![(Kind::PortCheck, 0), (Kind::Lost, 2)]);
        assert_eq!(out[0].first, 1);
    }

    #[test]
    fn finished_after_producer_drop_and_drain() {
        let (p, mut r) = channel(4, 1);
        p.push(&rec(1));
        drop(p);
        assert!(!r.is_finished());
        let mut out = Vec::new();
        r.drain_into(&mut out);
        assert!(r.is_finished());
    }
}
