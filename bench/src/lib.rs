//! bench: the measurements behind `cargo xtask bench`.
//!
//! * [`harness`]: batched timing with an interleaved reference workload
//!   (within-run ratios for the gate), HDR summaries, the hardware-counter
//!   probe and the injected-slowdown knob ([`harness::INJECT_ENV`]).
//! * [`linear`]: the original linear access-list port check, kept here only
//!   as the baseline the radix check is compared with.
//! * [`suites`]: one function per metric family of SPEC section 5.
//! * [`instructions`]: exact instruction counts of every accountant
//!   operation under callgrind.
//! * [`run`]: runs the suites with a progress display and returns
//!   [`reports::Results`]; the `ioacct-bench` binary writes them to
//!   `results.json`.
//!
//! Criterion benchmarks of the same operations are in `benches/` (for
//! interactive work: `cargo bench -p bench`).
#![deny(missing_docs)]

pub mod capi;
pub mod harness;
pub mod instructions;
pub mod linear;
pub mod peers;
pub mod suites;

use hv::affinity::{self, CpuSet};
use reports::{MetricName, Placement, Reference, Results, RunInfo, SCHEMA};
use std::io::{IsTerminal, Write};
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
    /// `--cpus`: the first CPU for the measuring (control) thread, the rest
    /// for vCPU threads (all on it when only one is given); `None`: the
    /// default placement ([`default_placement`]).
    pub cpus: Option<CpuSet>,
}

/// The measuring thread's CPU and the vCPU threads' CPUs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cpus {
    /// The measuring / control-plane thread.
    pub measure: CpuSet,
    /// Every vCPU thread.
    pub vcpus: CpuSet,
    /// How this was chosen.
    pub how: String,
}

/// Splits a `--cpus` list: first CPU measures, the rest run vCPUs.
pub fn split_cpus(list: &CpuSet) -> Cpus {
    let c = list.cpus();
    let rest = if c.len() > 1 {
        CpuSet::parse(
            &c[1..]
                .iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(","),
        )
        .unwrap_or_else(|_| CpuSet::one(c[0]))
    } else {
        CpuSet::one(c[0])
    };
    Cpus {
        measure: CpuSet::one(c[0]),
        vcpus: rest,
        how: format!("--cpus {list}"),
    }
}

/// The default placement for the CPUs this process may use: the measuring
/// thread on the first, vCPU threads on the others (on a 2-CPU host: CPU 0
/// and CPU 1). CPU 0 first because there a memslot delete's SRCU grace
/// periods cost about 4 µs, against about 60 µs from CPU 1 (a new VM's SRCU
/// callbacks run on CPU 0), and the control thread is the one that deletes.
pub fn default_placement(allowed: &CpuSet) -> Cpus {
    let mut p = split_cpus(allowed);
    p.how = if allowed.cpus().len() > 1 {
        format!(
            "default for CPUs {allowed}: measuring thread on the first, vCPU threads on the rest"
        )
    } else {
        format!("default: only CPU {allowed} is allowed, so every thread shares it")
    };
    p
}

/// A progress display on stderr: step, accurate total, elapsed time and an
/// estimate of the time left. On a terminal it is an `indicatif` bar; into
/// a file or pipe, one plain line per step.
pub struct Progress {
    total: usize,
    done: usize,
    start: Instant,
    bar: Option<indicatif::ProgressBar>,
    show: bool,
}

impl Progress {
    /// A display for `total` steps.
    pub fn new(total: usize) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = indicatif::ProgressBar::new(total as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "[{pos:>3}/{len:3} {elapsed_precise} ETA {eta}] {bar:30} {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            b
        });
        Progress {
            total,
            done: 0,
            start: Instant::now(),
            bar,
            show: true,
        }
    }

    /// A display that prints nothing.
    pub fn silent(total: usize) -> Progress {
        Progress {
            show: false,
            bar: None,
            ..Progress::new(total)
        }
    }

    /// Steps announced so far.
    pub fn done(&self) -> usize {
        self.done
    }

    /// Announces the next step.
    pub fn step(&mut self, what: &str) {
        self.done += 1;
        if !self.show {
            return;
        }
        if let Some(b) = &self.bar {
            b.set_position(self.done as u64 - 1);
            b.set_message(what.to_owned());
            return;
        }
        let el = self.start.elapsed();
        let eta = if self.done > 1 {
            let per = el.as_secs_f64() / (self.done - 1) as f64;
            format!(
                "ETA {:>4.0}s",
                per * (self.total.saturating_sub(self.done - 1)) as f64
            )
        } else {
            "ETA    ?".to_owned()
        };
        let mut e = std::io::stderr().lock();
        // A failed write to stderr only loses the display.
        let _ = writeln!(
            e,
            "[{:>3}/{:<3} {:>6.1}s {eta}] {what}",
            self.done,
            self.total,
            el.as_secs_f64()
        );
    }

    /// Ends the display.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// A suite of the registry ([`suites_for`]).
pub struct Suite {
    /// The metric names it emits: `--only` selects a suite when one of them
    /// and the filter are prefixes of each other.
    pub emits: &'static [MetricName],
    /// The progress steps it announces in this run.
    pub steps: usize,
    /// Runs it.
    pub run: fn(&mut suites::Ctx, &mut suites::Sink),
    /// The keys (name and params) of every metric it emits on a host where
    /// everything can be measured, for a run with this `quick`: what the
    /// committed baseline must hold (`tests/declared.rs`), enumerable without
    /// running anything.
    pub keys: fn(&KeyScope) -> Vec<String>,
}

/// What a suite's metric keys depend on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyScope {
    /// A quick run.
    pub quick: bool,
    /// The CPUs the placement probe visits
    /// ([`suites::hv::probe_cpus`]: every CPU the run may use, at most four).
    pub probe_cpus: Vec<usize>,
}

impl Suite {
    /// Whether `--only` (`None`: no filter) selects this suite.
    pub fn selected(&self, only: Option<&str>) -> bool {
        only.is_none_or(|o| {
            self.emits
                .iter()
                .any(|e| e.as_str().starts_with(o) || o.starts_with(e.as_str()))
        })
    }
}

/// Every suite, in the order a run measures them, with its progress steps
/// for a `quick` run filtered by `only`.
pub fn suites_for(quick: bool, only: Option<&str>) -> [Suite; 9] {
    let q = quick;
    let g = suites::grant_points(q).len();
    let p = suites::page_points(q).len();
    [
        Suite {
            emits: &[MetricName::PortCheck],
            steps: g + suites::PORT_CHECK_ROUNDS,
            run: suites::port_check,
            keys: |s| suites::port_check_keys(s.quick),
        },
        Suite {
            emits: &[MetricName::Map, MetricName::Unmap],
            steps: suites::RANGE_ROUNDS,
            run: suites::map_unmap,
            keys: |s| suites::map_unmap_keys(s.quick),
        },
        Suite {
            emits: &[MetricName::TrackingBytes, MetricName::TrackingAllocations],
            steps: 3 * p,
            run: suites::tracking,
            keys: |s| suites::tracking_keys(s.quick),
        },
        Suite {
            emits: &[MetricName::Grant, MetricName::Revoke],
            steps: suites::RANGE_ROUNDS,
            run: suites::grant_revoke,
            keys: |s| suites::grant_revoke_keys(s.quick),
        },
        Suite {
            emits: &[MetricName::TracepointOverhead],
            steps: 1,
            run: suites::tracepoints,
            keys: |s| suites::tracepoints_keys(s.quick),
        },
        Suite {
            emits: &[MetricName::PortCheckInstructions],
            steps: 2,
            run: suites::port_check_instructions,
            keys: |s| suites::port_check_instructions_keys(s.quick),
        },
        Suite {
            emits: instructions::EMITS,
            steps: 1,
            run: instructions::accountant_instructions,
            keys: |s| instructions::keys(s.quick),
        },
        Suite {
            emits: suites::hv::EMITS,
            steps: suites::hv::steps_for(q, only),
            run: suites::hv::hv,
            keys: |s| suites::hv::keys(s.quick, &s.probe_cpus),
        },
        Suite {
            emits: suites::hv_realism::EMITS,
            steps: suites::hv_realism::steps_for(q, only),
            run: suites::hv_realism::hv_realism,
            keys: |s| suites::hv_realism::keys(s.quick),
        },
    ]
}

/// The keys of every metric a full (`only` = `None`) run emits in `scope`:
/// the union of the suites' declarations.
pub fn declared_keys(scope: &KeyScope) -> std::collections::BTreeSet<String> {
    suites_for(scope.quick, None)
        .iter()
        .flat_map(|s| (s.keys)(scope))
        .collect()
}

/// How the metrics a run emitted differ from what its suites declare: keys
/// emitted but not declared, and (in a run of every suite) keys declared
/// but neither emitted nor skipped with a reason (`not_measured` names their
/// metric). Empty when they agree.
pub fn undeclared(results: &Results, scope: &KeyScope, all_suites: bool) -> Vec<String> {
    let declared = declared_keys(scope);
    let emitted: std::collections::BTreeSet<String> =
        results.metrics.iter().map(|m| m.key()).collect();
    let mut out: Vec<String> = emitted
        .difference(&declared)
        .map(|k| format!("emitted but not declared by its suite: {k}"))
        .collect();
    if all_suites {
        let skipped: std::collections::BTreeSet<&str> = results
            .not_measured
            .iter()
            .map(|n| n.name.as_str())
            .collect();
        out.extend(
            declared
                .difference(&emitted)
                .filter(|k| !skipped.contains(k.split(' ').next().unwrap_or("")))
                .map(|k| format!("declared but neither emitted nor skipped: {k}")),
        );
    }
    out
}

/// The CPUs the process could use when the run started, before it pinned
/// its measuring thread (what the placement probe visits).
pub static ALLOWED: std::sync::OnceLock<CpuSet> = std::sync::OnceLock::new();

/// Runs the selected suites and returns the results.
pub fn run(opts: &RunOptions) -> Results {
    let start = Instant::now();
    let mut warnings = Vec::new();
    let allowed = affinity::current_affinity().unwrap_or_else(|| CpuSet::one(0));
    let cpus = match &opts.cpus {
        Some(list) => split_cpus(list),
        None => default_placement(&allowed),
    };
    // Before pinning: the host's CPU count and the CPUs the process may use.
    let (counters, status) = harness::HwCounters::probe();
    if !status.available {
        warnings.push(format!("hardware counters unavailable: {}", status.detail));
    }
    let virt = hv::host::detect().kind.name();
    let mut host = reports::host::collect(status, virt, &opts.tree);
    let _ = ALLOWED.set(allowed.clone());
    let refused = affinity::pin_current(&cpus.measure).err();
    if let Some(errno) = refused {
        warnings.push(format!(
            "the measuring thread could not be pinned to CPU {} (errno {errno}): the scheduler \
             placed it, and samples may span CPUs",
            cpus.measure
        ));
    }
    if opts.progress {
        eprintln!(
            "ioacct-bench: measuring thread on CPU {}, vCPU threads on CPU {} ({})",
            cpus.measure, cpus.vcpus, cpus.how
        );
    }
    host.affinity = Placement {
        measure: cpus.measure.to_string(),
        vcpus: cpus.vcpus.to_string(),
        how: cpus.how.clone(),
        refused,
    };
    let ref_ns = harness::reference_ns_per_unit();
    // A unit is a dependent multiply, add and store-to-load round trip: well
    // over a cycle. Much less means the compiler folded it.
    if ref_ns < 0.3 {
        warnings.push(format!(
            "the reference workload took {ref_ns:.3} ns per unit, too little for its \
             dependent chain: normalized values are suspect"
        ));
    }
    let q = opts.quick;
    let all = suites_for(q, opts.only.as_deref());
    let selected: Vec<&Suite> = all
        .iter()
        .filter(|s| s.selected(opts.only.as_deref()))
        .collect();
    let steps = selected.iter().map(|s| s.steps).sum();
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
        placement: hv::workloads::Setup {
            vcpu_cpus: Some(cpus.vcpus.clone()),
            control_cpus: Some(cpus.measure.clone()),
        },
        only: opts.only.clone(),
        placement_home: Some(cpus.measure.clone()),
    };
    let mut sink = suites::Sink::default();
    for s in selected {
        (s.run)(&mut cx, &mut sink);
    }
    cx.progress.finish();
    if cx.progress.done() != steps {
        warnings.push(format!(
            "progress counted {} steps of {steps} declared",
            cx.progress.done()
        ));
    }
    for m in &sink.metrics {
        let mut seen: Vec<u32> = m.cpus.iter().copied().filter(|c| *c != u32::MAX).collect();
        seen.sort_unstable();
        seen.dedup();
        if seen.len() > 1 {
            warnings.push(format!("{}: samples taken on CPUs {seen:?}", m.key()));
        }
    }
    let mut knobs = std::collections::BTreeMap::new();
    if let Some(p) = inject {
        knobs.insert(harness::INJECT_ENV.to_owned(), format!("{p}"));
    }
    if let Ok(v) = std::env::var(harness::INJECT_OP_ENV) {
        knobs.insert(harness::INJECT_OP_ENV.to_owned(), v);
    }
    if let Some(p) = hv::workloads::inject::slowdown() {
        knobs.insert(hv::workloads::inject::ENV.to_owned(), format!("{p}"));
    }
    let mut results = Results {
        schema: SCHEMA,
        host,
        run: RunInfo {
            quick: q,
            wall_secs: harness::round4(start.elapsed().as_secs_f64()),
            args: opts.args.clone(),
            knobs,
            reference: Reference {
                name: harness::REFERENCE_NAME.to_owned(),
                unit: harness::REFERENCE_UNIT.to_owned(),
                ns_per_unit: harness::round4(ref_ns),
            },
            warnings,
        },
        metrics: sink.metrics,
        not_measured: sink.not_measured,
    };
    // A suite that emits what it does not declare (or the reverse) makes the
    // committed baseline's metric set, which tests/declared.rs holds to the
    // declarations, a wrong picture of the bench: say so in the results.
    let scope = KeyScope {
        quick: q,
        probe_cpus: suites::hv::probe_cpus(),
    };
    let drift = undeclared(&results, &scope, opts.only.is_none());
    results.run.warnings.extend(drift);
    results
}
