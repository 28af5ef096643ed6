//! The tracepoint overhead measurement, callable without criterion.
//!
//! [`measure_overhead`] times three loops over the same port-check-shaped
//! site in one run (as the criterion bench `benches/overhead.rs` does):
//!
//! 1. **baseline**: a relaxed load of a private `AtomicBool` and a branch on
//!    it (never taken) — what the issue calls "a plain relaxed-load
//!    baseline";
//! 2. **disabled**: the same site as a real [`crate::tp!`] with tracing off;
//! 3. **enabled**: tracing on, records going into this thread's ring; the
//!    ring is drained between batches of [`BATCH`] events outside the timed
//!    part, so the measurement is the write path, never the full-ring drop
//!    path.
//!
//! The `disabled − baseline` difference is the "off" cost per site. Side
//! effects, stated because they are global: it calls
//! [`crate::Collector::install`] (the ring sink replaces any other sink),
//! switches tracing on for the enabled loop and restores the previous
//! on/off state afterwards, and drains — discards — whatever every ring
//! holds between batches. Run it in a bench binary, not while collecting a
//! trace.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::{tp, Collector, Kind, Outcome, Record, Space};

/// Events timed between two (untimed) drains in the enabled loop.
pub const BATCH: u64 = 1024;

static BASELINE_FLAG: AtomicBool = AtomicBool::new(false);

/// The baseline site: one relaxed load of a flag that is always false and a
/// branch over building the same record the traced site builds.
#[inline(always)]
pub fn baseline_site(domain: u16, port: u64) {
    if BASELINE_FLAG.load(Ordering::Relaxed) {
        black_box(port_check_record(domain, port));
    }
}

/// The traced site: a port-check tracepoint as the accountant has it.
#[inline(always)]
pub fn traced_site(domain: u16, port: u64) {
    tp!(port_check_record(domain, port));
}

#[inline(always)]
fn port_check_record(domain: u16, port: u64) -> Record {
    Record::new(Kind::PortCheck)
        .domain(domain)
        .range(Space::IoPort, port, port)
        .width(1)
        .outcome(Outcome::Allow)
}

/// Mean cost per site in nanoseconds, from one [`measure_overhead`] run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OverheadSample {
    /// Iterations of each loop.
    pub iters: u64,
    /// Relaxed load + branch, per iteration.
    pub baseline_ns: f64,
    /// Tracepoint compiled in, tracing off, per iteration.
    pub disabled_ns: f64,
    /// Tracepoint on, record written to the thread's ring, per iteration.
    pub enabled_ns: f64,
}

impl OverheadSample {
    /// Off cost above the baseline (may be slightly negative from noise).
    pub fn disabled_over_baseline_ns(&self) -> f64 {
        self.disabled_ns - self.baseline_ns
    }
}

/// Runs the three loops (`iters` iterations each, at least one batch) and
/// returns the mean ns per iteration of each. Every loop runs once untimed
/// first, so the ring's pages are faulted in and branch predictors trained
/// before the timed pass. See the module docs for the global side effects.
pub fn measure_overhead(iters: u64) -> OverheadSample {
    let iters = iters.max(BATCH);
    let was_on = crate::enabled();
    let collector = Collector::install();

    let mut timed = [Duration::ZERO; 3];
    for _pass in 0..2 {
        let t = Instant::now();
        for i in 0..iters {
            baseline_site(black_box(3), black_box(i & 0xffff));
        }
        timed[0] = t.elapsed();

        crate::disable();
        let t = Instant::now();
        for i in 0..iters {
            traced_site(black_box(3), black_box(i & 0xffff));
        }
        timed[1] = t.elapsed();

        crate::enable();
        collector.clear();
        timed[2] = Duration::ZERO;
        let mut done = 0;
        while done < iters {
            let n = BATCH.min(iters - done);
            let t = Instant::now();
            for i in done..done + n {
                traced_site(black_box(3), black_box(i & 0xffff));
            }
            timed[2] += t.elapsed();
            done += n;
            collector.clear();
        }
        crate::disable();
    }
    if was_on {
        crate::enable();
    }

    let per = |d: Duration| d.as_nanos() as f64 / iters as f64;
    OverheadSample {
        iters,
        baseline_ns: per(timed[0]),
        disabled_ns: per(timed[1]),
        enabled_ns: per(timed[2]),
    }
}
