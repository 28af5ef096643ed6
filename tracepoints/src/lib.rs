//! Tracepoints for the I/O accountant and the hypervisor: near-free when
//! off, per-thread lock-free rings when on.
//!
//! # Shape
//!
//! * **Core (`no_std`)**: the 64-byte [`Record`], its enums ([`Kind`],
//!   [`Outcome`], [`Space`], [`Mode`]), the global enable flag
//!   ([`enable`]/[`disable`]/[`enabled`]), the [`tp!`] macro and [`emit_with`],
//!   and a registered sink function pointer ([`set_sink`]) that receives
//!   every emitted record. This is all the accountant's `no_std` build sees.
//! * **`std` feature**: per-thread single-producer rings ([`ring`]), the
//!   global [`Collector`] that registers itself as the sink and drains them,
//!   TSC calibration ([`Calibration`]), and three consumers: a `tracing`
//!   bridge ([`sinks::tracing`]), a Chrome trace / Perfetto JSON exporter
//!   ([`sinks::chrome`]) and per-kind latency histograms
//!   ([`sinks::histogram`]). Plus [`bench_support`] for the bench suite.
//! * **`compiled` feature** (default): without it [`tp!`] expands to dead
//!   code that is type-checked but generates nothing, [`enabled`] is the
//!   constant `false`, and [`start`] returns an unset [`Stamp`].
//!
//! Because Cargo unifies features, a `no_std` library records into the
//! rings as soon as the final binary enables `tracepoints/std` and calls
//! [`Collector::install`]: the site code is the same, only the sink behind
//! the function pointer differs. Dependency lines (the workspace entry has
//! `default-features = false`):
//!
//! ```toml
//! # accountant/Cargo.toml: no_std core only
//! tracepoints = { workspace = true, features = ["compiled"] }
//! # hv, bench, xtask: rings, collector, sinks
//! tracepoints = { workspace = true, features = ["std", "compiled"] }
//! ```
//!
//! Leaving `compiled` out of *every* dependent (e.g. behind a `tracepoints`
//! feature of the accountant that forwards to `tracepoints/compiled`) is how
//! a build drops the sites entirely.
//!
//! # Cost model
//!
//! * Off: one `Relaxed` load of a global `AtomicBool` and a branch predicted
//!   not-taken; the record-building closure is never called (the check is
//!   `#[inline(always)]`, the emit path `#[cold]` and `#[inline(never)]`).
//! * On: read the TSC, build the record, call the sink through the function
//!   pointer; the ring sink finds the thread's ring in a thread-local and
//!   copies 64 bytes into it with one `Release` store of the tail.
//! * Records emitted while on but with no sink installed are counted
//!   ([`dropped_without_sink`]); a full ring drops the newest record and
//!   counts it, and the loss shows up in the stream as a [`Kind::Lost`]
//!   record, like xentrace's lost-records record. Nothing is lost silently.
//!
//! # Using it at a site (what the accountant and `hv` do)
//!
//! ```
//! use tracepoints::{tp, Kind, Mode, Outcome, Record, Space};
//!
//! fn grant(domain: u16, first: u64, last: u64) -> Result<(), u8> {
//!     // Timed operation: take a stamp (one relaxed load when off) ...
//!     let t0 = tracepoints::start();
//!     let result: Result<(), u8> = Ok(()); // ... the real work ...
//!     // ... and emit once the result is known. The expression is only
//!     // evaluated when tracing is on.
//!     tp!(Record::new(Kind::Grant)
//!         .domain(domain)
//!         .range(Space::IoMem, first, last)
//!         .mode(Mode::Exclusive)
//!         .outcome(match result {
//!             Ok(()) => Outcome::Ok,
//!             Err(code) => Outcome::from_error_index(code).unwrap_or(Outcome::None),
//!         })
//!         .since(t0));
//!     result
//! }
//!
//! // An instant event (no duration): a port access check.
//! fn access(domain: u16, port: u16, width: u8, allowed: bool) {
//!     tp!(Record::new(Kind::PortCheck)
//!         .domain(domain)
//!         .range(Space::IoPort, port.into(), u64::from(port) + u64::from(width) - 1)
//!         .width(width)
//!         .outcome(if allowed { Outcome::Allow } else { Outcome::Deny }));
//! }
//! # grant(1, 0x100, 0x1ff).unwrap();
//! # access(1, 0x60, 1, true);
//! ```
//!
//! # Collecting and exporting (what `cargo xtask replay --trace` does)
//!
//! ```
//! # #[cfg(all(feature = "std", feature = "compiled"))] {
//! use tracepoints::{tp, Collector, Kind, Outcome, Record, Space};
//! use tracepoints::sinks::{chrome, histogram::LatencyHistograms};
//!
//! // 1. Install the ring sink (calibrates the TSC once) and switch on.
//! let collector = Collector::install();
//! tracepoints::enable();
//!
//! // 2. Run the workload; every thread gets its own ring on first emit.
//! let t0 = tracepoints::start();
//! tp!(Record::new(Kind::Map).domain(3).range(Space::IoMem, 0x1000, 0x10ff)
//!     .outcome(Outcome::Ok).since(t0));
//!
//! // 3. Switch off and drain every ring (lost-record markers included).
//! tracepoints::disable();
//! let records = collector.drain();
//! assert!(records.iter().any(|r| r.kind == Kind::Map && r.domain == 3));
//!
//! // 4. Consume: Chrome trace JSON for Perfetto, latency histograms,
//! //    and/or `tracing` events (see `sinks::tracing`).
//! let mut json = Vec::new();
//! chrome::export_chrome_json(&records, collector.calibration(), &mut json).unwrap();
//! let mut hists = LatencyHistograms::new();
//! hists.record_all(&records, collector.calibration());
//! let map = hists.summary(Kind::Map).unwrap();
//! assert!(map.count >= 1);
//! # }
//! ```
//!
//! For long runs with several threads (vCPUs), [`Collector::spawn_drainer`]
//! drains on a background thread and hands each batch to a closure.
//!
//! Ring size: [`set_ring_capacity`] (default [`DEFAULT_RING_CAPACITY`]
//! records = 4 MiB per thread) applies to rings created afterwards; a bigger
//! ring loses fewer records between drains at the price of memory.

#![cfg_attr(not(feature = "std"), no_std)]
#![deny(missing_docs)]

mod record;

pub use record::{
    Kind, Mode, Outcome, Record, Space, Stamp, FLAG_FORCE, FLAG_PVM_TRAP, FLAG_TIMED, HYPERVISOR,
};

#[cfg(feature = "std")]
pub mod bench_support;
#[cfg(feature = "std")]
mod clock;
#[cfg(feature = "std")]
mod collector;
#[cfg(feature = "std")]
pub mod ring;
#[cfg(feature = "std")]
pub mod sinks;

#[cfg(feature = "std")]
pub use clock::{Calibration, CALIBRATION_WINDOW};
#[cfg(feature = "std")]
pub use collector::{
    set_ring_capacity, thread_name, Collector, CollectorStats, Drainer, DrainerPanicked,
    DEFAULT_RING_CAPACITY, MAX_RING_CAPACITY,
};

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// The global switch every site checks with one `Relaxed` load.
static ENABLED: AtomicBool = AtomicBool::new(false);

/// The registered sink: 0 when none, else a `fn(&Record)` cast to `usize`.
static SINK: AtomicUsize = AtomicUsize::new(0);

/// Records emitted while on with no sink registered.
static DROPPED_NO_SINK: AtomicU64 = AtomicU64::new(0);

/// Switches every tracepoint on. Sites that are already past their check
/// finish without emitting; later ones emit. Without the `compiled` feature
/// this sets the flag but nothing reads it.
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Switches every tracepoint off (the state at start-up).
pub fn disable() {
    ENABLED.store(false, Ordering::Relaxed);
}

/// True when tracepoints are on: the one check each site makes. A `Relaxed`
/// load, because a site seeing the change a little late is harmless.
#[inline(always)]
pub fn enabled() -> bool {
    #[cfg(feature = "compiled")]
    {
        ENABLED.load(Ordering::Relaxed)
    }
    #[cfg(not(feature = "compiled"))]
    {
        false
    }
}

/// Registers the function that receives every emitted record, replacing any
/// previous one. [`Collector::install`] registers the ring sink; a `no_std`
/// embedder may register its own.
pub fn set_sink(sink: fn(&Record)) {
    SINK.store(sink as usize, Ordering::Release);
}

/// Removes the registered sink; records emitted afterwards are counted in
/// [`dropped_without_sink`].
pub fn clear_sink() {
    SINK.store(0, Ordering::Release);
}

/// True when a sink is registered.
pub fn sink_installed() -> bool {
    SINK.load(Ordering::Acquire) != 0
}

/// How many records were emitted while tracing was on but no sink was
/// registered (so they went nowhere).
pub fn dropped_without_sink() -> u64 {
    DROPPED_NO_SINK.load(Ordering::Relaxed)
}

/// Current clock value in the units of [`Record::tsc`]: the TSC on x86_64,
/// else nanoseconds of a monotonic clock (`std`), else 0.
#[inline(always)]
pub fn now_tsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: RDTSC is available on every x86_64 CPU and only reads the
        // time-stamp counter; it touches no memory.
        #[allow(unused_unsafe)]
        unsafe {
            core::arch::x86_64::_rdtsc()
        }
    }
    #[cfg(all(not(target_arch = "x86_64"), feature = "std"))]
    {
        clock::monotonic_ns()
    }
    #[cfg(all(not(target_arch = "x86_64"), not(feature = "std")))]
    {
        0
    }
}

/// Starts timing an operation: the current clock when tracing is on, an
/// unset [`Stamp`] otherwise (so the off cost is the one flag load). Pass the
/// stamp to [`Record::since`] when emitting the operation's event.
#[inline(always)]
pub fn start() -> Stamp {
    if enabled() {
        Stamp(now_tsc())
    } else {
        Stamp(0)
    }
}

/// Emits the record built by `build` if tracing is on; `build` is not called
/// otherwise. This is what [`tp!`] expands to.
#[inline(always)]
pub fn emit_with<F: FnOnce() -> Record>(build: F) {
    if enabled() {
        emit_cold(build);
    }
}

/// The slow path: build, stamp, dispatch. Generic so the closure is inlined
/// into it, and kept out of line so the site stays a load and a branch.
#[cold]
#[inline(never)]
fn emit_cold<F: FnOnce() -> Record>(build: F) {
    emit(build());
}

/// Stamps `record` (timestamp, or duration for a timed record) and hands it
/// to the registered sink. Sites use [`tp!`]/[`emit_with`], which skip all of
/// this when off; calling `emit` directly always dispatches.
#[inline(never)]
pub fn emit(mut record: Record) {
    let now = now_tsc();
    if record.is_timed() {
        record.duration = now.saturating_sub(record.tsc);
    } else {
        record.tsc = now;
    }
    dispatch(&record);
}

fn dispatch(record: &Record) {
    let raw = SINK.load(Ordering::Acquire);
    if raw == 0 {
        DROPPED_NO_SINK.fetch_add(1, Ordering::Relaxed);
        return;
    }
    // SAFETY: SINK only ever holds 0 (handled above) or a value stored by
    // `set_sink` from a `fn(&Record)`, and function pointers and `usize` have
    // the same size on every supported target; so `raw` is a valid pointer to
    // a function with exactly this signature.
    let sink: fn(&Record) = unsafe { core::mem::transmute::<usize, fn(&Record)>(raw) };
    sink(record);
}

/// A tracepoint: `tp!(record_expression)`.
///
/// When tracing is off the expression is not evaluated (it is wrapped in a
/// closure); the site costs one relaxed load and a branch. Without the
/// `compiled` feature the expression is still type-checked but no code is
/// generated.
///
/// ```
/// use tracepoints::{tp, Kind, Outcome, Record, Space};
/// tp!(Record::new(Kind::Unmap).domain(2).range(Space::IoMem, 5, 5).outcome(Outcome::NotMapped));
/// ```
#[cfg(feature = "compiled")]
#[macro_export]
macro_rules! tp {
    ($record:expr $(,)?) => {
        $crate::emit_with(|| $record)
    };
}

/// A tracepoint (this build has the `compiled` feature off: it expands to a
/// closure that is never called, so the arguments stay type-checked and
/// "used" but nothing is generated).
#[cfg(not(feature = "compiled"))]
#[macro_export]
macro_rules! tp {
    ($record:expr $(,)?) => {{
        let _ = || $record;
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_is_unset_when_off() {
        // Unit tests here never enable tracing, so the flag stays off.
        assert!(!start().is_set());
    }
}
