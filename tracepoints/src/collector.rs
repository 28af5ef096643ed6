//! The global ring registry, the ring sink, and the [`Collector`] that drains.

use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::clock::Calibration;
use crate::ring::{self, Producer, Reader};
use crate::Record;

/// Records per thread ring unless [`set_ring_capacity`] says otherwise:
/// 64 Ki records, 4 MiB per thread. At about 10 M events/s a thread fills it
/// in 6 ms, so drain at least that often under such load.
pub const DEFAULT_RING_CAPACITY: usize = 64 * 1024;

/// Largest ring [`set_ring_capacity`] accepts (16 Mi records, 1 GiB).
pub const MAX_RING_CAPACITY: usize = 16 * 1024 * 1024;

static RING_CAPACITY: AtomicUsize = AtomicUsize::new(DEFAULT_RING_CAPACITY);
static NEXT_THREAD: AtomicU32 = AtomicU32::new(1);
/// Records emitted by a thread whose thread-local ring was already gone
/// (emitted from a thread-local destructor during thread exit).
static LOST_NO_RING: AtomicU64 = AtomicU64::new(0);
/// Lost totals of rings already discarded, so totals never go backwards.
static LOST_RETIRED: AtomicU64 = AtomicU64::new(0);

/// Every ring ever registered and not yet retired; the mutex also makes
/// drains from several `Collector` handles take turns (one reader per ring).
static REGISTRY: Mutex<Vec<Reader>> = Mutex::new(Vec::new());

/// Names of threads that emitted, by ring thread id (kept after the ring is
/// retired so exports of old records still name their tracks).
static THREAD_NAMES: Mutex<BTreeMap<u32, String>> = Mutex::new(BTreeMap::new());

thread_local! {
    static LOCAL: OnceCell<Producer> = const { OnceCell::new() };
}

/// Sets the size of rings created from now on (threads that already have a
/// ring keep theirs). Rounded up to a power of two and clamped to
/// `2..=MAX_RING_CAPACITY`. Returns the capacity that will be used.
pub fn set_ring_capacity(records: usize) -> usize {
    let cap = records
        .clamp(ring::MIN_CAPACITY, MAX_RING_CAPACITY)
        .next_power_of_two();
    RING_CAPACITY.store(cap, Ordering::Relaxed);
    cap
}

fn registry() -> MutexGuard<'static, Vec<Reader>> {
    // A panic while holding the lock cannot leave the Vec inconsistent
    // (push/retain only), so a poisoned lock is still usable.
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

fn new_producer() -> Producer {
    let thread = NEXT_THREAD.fetch_add(1, Ordering::Relaxed);
    let (producer, reader) = ring::channel(RING_CAPACITY.load(Ordering::Relaxed), thread);
    if let Some(name) = std::thread::current().name() {
        THREAD_NAMES
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(thread, name.to_owned());
    }
    registry().push(reader);
    producer
}

/// The sink [`Collector::install`] registers: push into this thread's ring,
/// creating and registering the ring on the thread's first event.
fn ring_sink(record: &Record) {
    let pushed = LOCAL.try_with(|cell| {
        cell.get_or_init(new_producer).push(record);
    });
    if pushed.is_err() {
        LOST_NO_RING.fetch_add(1, Ordering::Relaxed);
    }
}

/// The id the current thread's records carry in [`Record::thread`] (creates
/// the thread's ring if it has none yet). `None` during thread teardown.
pub(crate) fn current_thread_id() -> Option<u32> {
    LOCAL
        .try_with(|cell| cell.get_or_init(new_producer).thread())
        .ok()
}

/// The OS thread name of ring thread `thread`, if the thread had one when
/// it first emitted (`main`, names given with `std::thread::Builder`).
/// The Chrome exporter uses it to name thread tracks.
pub fn thread_name(thread: u32) -> Option<String> {
    THREAD_NAMES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&thread)
        .cloned()
}

/// Counters for [`Collector::stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CollectorStats {
    /// Rings currently registered (live threads plus exited ones not yet
    /// drained).
    pub rings: usize,
    /// Records waiting in the rings right now.
    pub pending: usize,
    /// Records dropped because a ring was full, since start-up. Each is also
    /// reported by a [`crate::Kind::Lost`] record in the drained stream.
    pub lost_ring_full: u64,
    /// Records emitted during thread teardown, after the ring was gone.
    pub lost_no_ring: u64,
    /// Records emitted while on with no sink registered.
    pub lost_no_sink: u64,
}

/// Handle on the global set of per-thread rings. Cheap to copy; every handle
/// drains the same rings, one at a time.
#[derive(Clone, Copy, Debug)]
pub struct Collector {
    calibration: Calibration,
}

impl Collector {
    /// Registers the ring sink (replacing any other sink) and calibrates the
    /// clock once per process (about 20 ms the first time). Does not switch
    /// tracing on: call [`crate::enable`].
    pub fn install() -> Collector {
        let calibration = Calibration::global();
        crate::set_sink(ring_sink);
        Collector { calibration }
    }

    /// The clock calibration to convert this collector's records.
    pub fn calibration(&self) -> &Calibration {
        &self.calibration
    }

    /// Drains every ring into `out`: ring by ring in registration order, each
    /// ring's records in emission order, followed by its lost-records marker
    /// if it dropped any. Rings of exited threads are discarded once empty.
    /// Returns the number of records appended.
    pub fn drain_into(&self, out: &mut Vec<Record>) -> usize {
        let mut rings = registry();
        let mut n = 0;
        for reader in rings.iter_mut() {
            n += reader.drain_into(out);
        }
        rings.retain(|r| {
            let done = r.is_finished();
            if done {
                LOST_RETIRED.fetch_add(r.lost_total(), Ordering::Relaxed);
            }
            !done
        });
        n
    }

    /// Drains every ring (see [`Collector::drain_into`]).
    pub fn drain(&self) -> Vec<Record> {
        let mut out = Vec::new();
        self.drain_into(&mut out);
        out
    }

    /// Drains every ring and orders the result by timestamp (stable, so
    /// records with equal stamps keep their per-thread order). Timed records
    /// sort by their start.
    pub fn drain_sorted(&self) -> Vec<Record> {
        let mut out = self.drain();
        out.sort_by_key(|r| r.tsc);
        out
    }

    /// Discards everything waiting in the rings (the lost counts too).
    pub fn clear(&self) {
        let mut scratch = Vec::new();
        self.drain_into(&mut scratch);
    }

    /// The id the calling thread's records carry in [`Record::thread`]
    /// (registers the thread's ring if needed). `None` during thread exit.
    pub fn current_thread(&self) -> Option<u32> {
        current_thread_id()
    }

    /// Starts a background thread that drains every ring each `interval`
    /// and hands each non-empty batch to `consume` (e.g. feeding
    /// [`crate::sinks::histogram::LatencyHistograms`] or appending to a
    /// file). Pick `interval` so a ring cannot fill in between: at
    /// [`DEFAULT_RING_CAPACITY`] and 10 M events/s per thread, under 6 ms.
    /// [`Drainer::stop`] ends it after one final drain. Fails only if the OS
    /// cannot create the thread.
    pub fn spawn_drainer<F>(&self, interval: Duration, mut consume: F) -> std::io::Result<Drainer>
    where
        F: FnMut(&[Record]) + Send + 'static,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let collector = *self;
        let handle = std::thread::Builder::new()
            .name("tracepoints-drainer".to_string())
            .spawn(move || {
                let mut batch = Vec::new();
                loop {
                    let last = flag.load(Ordering::Acquire);
                    batch.clear();
                    collector.drain_into(&mut batch);
                    if !batch.is_empty() {
                        consume(&batch);
                    }
                    if last {
                        break;
                    }
                    std::thread::park_timeout(interval);
                }
            })?;
        Ok(Drainer {
            stop,
            handle: Some(handle),
        })
    }

    /// Loss and occupancy counters.
    pub fn stats(&self) -> CollectorStats {
        let rings = registry();
        CollectorStats {
            rings: rings.len(),
            pending: rings.iter().map(Reader::len).sum(),
            lost_ring_full: LOST_RETIRED.load(Ordering::Relaxed)
                + rings.iter().map(Reader::lost_total).sum::<u64>(),
            lost_no_ring: LOST_NO_RING.load(Ordering::Relaxed),
            lost_no_sink: crate::dropped_without_sink(),
        }
    }
}

/// A background drain thread started by [`Collector::spawn_drainer`].
/// Dropping it stops it too (after the final drain), ignoring a panic of the
/// consumer; [`Drainer::stop`] reports one.
pub struct Drainer {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

/// The drainer's consumer panicked; records of its last batch may be lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DrainerPanicked;

impl fmt::Display for DrainerPanicked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the tracepoints drainer's consumer panicked")
    }
}

impl std::error::Error for DrainerPanicked {}

impl Drainer {
    /// Asks the thread to stop, waits for its final drain (everything
    /// emitted before this call is consumed) and joins it.
    pub fn stop(mut self) -> Result<(), DrainerPanicked> {
        self.finish()
    }

    fn finish(&mut self) -> Result<(), DrainerPanicked> {
        self.stop.store(true, Ordering::Release);
        match self.handle.take() {
            Some(h) => {
                h.thread().unpark();
                h.join().map_err(|_| DrainerPanicked)
            }
            None => Ok(()),
        }
    }
}

impl Drop for Drainer {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_capacity_is_clamped_and_rounded() {
        let before = RING_CAPACITY.load(Ordering::Relaxed);
        assert_eq!(set_ring_capacity(0), 2);
        assert_eq!(set_ring_capacity(1000), 1024);
        assert_eq!(set_ring_capacity(usize::MAX), MAX_RING_CAPACITY);
        RING_CAPACITY.store(before, Ordering::Relaxed);
    }
}
