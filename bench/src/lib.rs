//! bench: the measurements behind `cargo xtask bench`.
//!
//! * [`harness`]: batched timing with an interleaved reference workload
//!   (within-run ratios for the gate), HDR summaries, the hardware-counter
//!   probe and the injected-slowdown knob ([`harness::INJECT_ENV`]).
//! * [`linear`]: the original linear access-list port check, kept here only
//!   as the baseline the radix check is compared with.
//! * [`suites`]: one function per metric family of SPEC section 5.
//! * [`run`]: runs the suites with a progress display and returns
//!   [`reports::Results`]; the `ioacct-bench` binary writes them to
//!   `results.json`.
//!
//! Criterion benchmarks of the same operations are in `benches/` (for
//! interactive work: `cargo bench -p bench`).
#![deny(missing_docs)]

pub mod harness;
pub mod linear;
pub mod peers;
pub mod suites;

use reports::{Results, RunInfo, SCHEMA};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

/// What to run.
#[derive(Clone, Debug, PartialEq)]
pub struct RunOptions {
    /// Fewer parameter points and samples (under five minutes on two cores).
    pub quick: bool,
    /// Only metric families whose name starts with this prefix.
    pub only: Option<String>,
    /// Source tree whose commit is recorded.
    pub tree: PathBuf,
    /// Show progress on stderr.
    pub progress: bool,
    /// The harness arguments, recorded in the results.
    pub args: Vec<String>,
}

/// A progress display on stderr: step number, total, elapsed time.
pub struct Progress {
    total: usize,
    done: usize,
    start: Instant,
    show: bool,
}

impl Progress {
    /// A display for about `total` steps.
    pub fn new(total: usize) -> Progress {
        Progress {
            total,
            done: 0,
            start: Instant::now(),
            show: true,
        }
    }

    /// A display that prints nothing.
    pub fn silent(total: usize) -> Progress {
        Progress {
            show: false,
            ..Progress::new(total)
        }
    }

    /// Announces the next step.
    pub fn step(&mut self, what: &str) {
        self.done += 1;
        if self.show {
            let mut e = std::io::stderr().lock();
            // A failed write to stderr only loses the display.
            let _ = writeln!(
                e,
                "[{:>3}/{:<3} {:>6.1}s] {what}",
                self.done,
                self.total.max(self.done),
                self.start.elapsed().as_secs_f64()
            );
        }
    }
}

/// A suite: the metric names it emits (prefixes; `--only` selects a suite
/// when one of them and the filter are prefixes of each other), its progress
/// steps, and the function that runs it.
type Suite = (
    &'static [&'static str],
    usize,
    fn(&mut suites::Ctx, &mut suites::Sink),
);

/// Runs the selected suites and returns the results.
pub fn run(opts: &RunOptions) -> Results {
    let start = Instant::now();
    let (counters, status) = harness::HwCounters::probe();
    let host = reports::host::collect(status, &opts.tree);
    let q = opts.quick;
    let g = suites::grant_points(q).len();
    let p = suites::page_points(q).len();
    let all: [Suite; 8] = [
        (
            &["accountant.port_check"],
            g + suites::PORT_CHECK_ROUNDS,
            suites::port_check,
        ),
        (
            &["accountant.map", "accountant.unmap"],
            suites::RANGE_ROUNDS,
            suites::map_unmap,
        ),
        (
            &[
                "accountant.tracking_bytes",
                "accountant.tracking_allocations",
            ],
            3 * p,
            suites::tracking,
        ),
        (
            &["accountant.grant", "accountant.revoke"],
            suites::RANGE_ROUNDS,
            suites::grant_revoke,
        ),
        (&["tracepoints.overhead"], 1, suites::tracepoints),
        (
            &["accountant.port_check_instructions"],
            2,
            suites::port_check_instructions,
        ),
        (
            &["hv."],
            1 + 2 * suites::TRACKED_PAGES.len() + if q { 8 } else { 15 },
            suites::hv,
        ),
        (
            &[
                "hv.bind_irq",
                "hv.unbind_irq",
                "hv.irqfd_assign",
                "hv.irqfd_deassign",
                "hv.pio_exit",
                "hv.revoke_force",
            ],
            // irq pairing, 2 SMP exits, 4 loaded exits per framebuffer size, 2 SMP revokes
            if q { 1 + 2 + 4 + 2 } else { 1 + 2 + 8 + 2 },
            suites::hv_realism::hv_realism,
        ),
    ];
    let selected: Vec<&Suite> = all
        .iter()
        .filter(|s| {
            opts.only
                .as_deref()
                .is_none_or(|o| s.0.iter().any(|e| e.starts_with(o) || o.starts_with(e)))
        })
        .collect();
    let steps = selected.iter().map(|s| s.1).sum();
    let inject = harness::injected_slowdown();
    let mut cx = suites::Ctx {
        plan: if q {
            harness::Plan::QUICK
        } else {
            harness::Plan::FULL
        },
        quick: q,
        counters,
        inject,
        progress: if opts.progress {
            Progress::new(steps)
        } else {
            Progress::silent(steps)
        },
    };
    let mut sink = suites::Sink::default();
    for s in selected {
        (s.2)(&mut cx, &mut sink);
    }
    let mut knobs = std::collections::BTreeMap::new();
    if let Some(p) = inject {
        knobs.insert(harness::INJECT_ENV.to_owned(), format!("{p}"));
    }
    Results {
        schema: SCHEMA,
        host,
        run: RunInfo {
            quick: q,
            wall_secs: harness::round4(start.elapsed().as_secs_f64()),
            args: opts.args.clone(),
            knobs,
        },
        metrics: sink.metrics,
        not_measured: sink.not_measured,
    }
}
