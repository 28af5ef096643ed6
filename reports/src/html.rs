//! The HTML report: results → one serializable [`Context`] → HTML.
//!
//! [`Context::build`] does all the interpretation (goals, chart data, the
//! exit table, the comparison); [`render`] only lays it out. The output is
//! one file: styles inline, charts inline SVG, no script, no network.

use crate::charts::{self, Axis, Series};
use crate::format::{self, n};
use crate::gate::{self, GateConfig, Verdict};
use crate::goals;
use crate::names::MetricName;
use crate::schema::{CounterStatus, Metric, NotMeasured, Param, Results, RunInfo};
use askama::Template;
use serde::Serialize;
use std::collections::BTreeMap;

/// Escapes text as the report's template does (HTML element content and
/// attribute values): for checking what a page shows.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One row of the goals summary.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct GoalRow {
    /// The goal's id (`reports::goals::GOALS`).
    pub id: String,
    /// What is measured.
    pub metric: String,
    /// `target` (reported) or `invariant (gated)`.
    pub kind: String,
    /// The goal it is held to (and where the goal comes from).
    pub goal: String,
    /// What this run measured.
    pub measured: String,
    /// The verdict.
    pub status: GoalStatus,
}

/// A goal's verdict as the summary shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GoalStatus {
    /// Within the goal (a target: its whole 95 % interval).
    Met,
    /// A target beyond its goal (its whole interval).
    Missed,
    /// An invariant that does not hold: fails the gate.
    Broken,
    /// A target whose interval straddles its goal.
    Inconclusive,
    /// The results lack what the goal needs.
    NotMeasured,
}

impl GoalStatus {
    /// The word shown.
    pub fn label(self) -> &'static str {
        match self {
            GoalStatus::Met => "met",
            GoalStatus::Missed => "MISSED",
            GoalStatus::Broken => "BROKEN",
            GoalStatus::Inconclusive => "inconclusive",
            GoalStatus::NotMeasured => "not measured",
        }
    }

    /// The style class of its cell.
    pub fn class(self) -> &'static str {
        match self {
            GoalStatus::NotMeasured => "nm",
            s => s.label(),
        }
    }
}

impl std::fmt::Display for GoalStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

impl Serialize for GoalStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.label())
    }
}

/// An inline chart.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Chart {
    /// Heading above the chart.
    pub title: String,
    /// The SVG document.
    pub svg: String,
    /// How to read it.
    pub caption: String,
    /// `(series, colour)`, laid out under the chart.
    pub legend: Vec<(String, String)>,
    /// x-axis ticks and labels (log axes).
    pub x_ticks: Vec<(f64, String)>,
    /// y-axis ticks and labels (log axes).
    pub y_ticks: Vec<(f64, String)>,
    /// The data's `(x0, x1, y0, y1)`, if drawn.
    pub data_range: Option<(f64, f64, f64, f64)>,
}

/// One line of the full metrics table.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct MetricRow {
    /// Name and parameters.
    pub key: String,
    /// Unit.
    pub unit: String,
    /// Headline value.
    pub value: f64,
    /// Percentiles.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Maximum.
    pub max: f64,
    /// Observations.
    pub count: u64,
    /// Cycles and instructions per operation, or empty.
    pub counters: String,
    /// Remark.
    pub note: String,
}

/// One port of the per-port exit table (as `perf kvm stat --event=ioport`).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ExitRow {
    /// Port and parameters other than the port.
    pub port: String,
    /// Exits seen.
    pub count: u64,
    /// Fastest exit, ns.
    pub min: f64,
    /// Median, ns.
    pub p50: f64,
    /// 90th percentile, ns.
    pub p90: f64,
    /// 99th percentile, ns.
    pub p99: f64,
    /// 99.9th percentile, ns.
    pub p999: f64,
    /// Slowest, ns.
    pub max: f64,
    /// Median before coordinated-omission correction, ns (`None` when the
    /// metric was not corrected).
    pub raw_p50: Option<f64>,
    /// 99th percentile before correction, ns (`None` when not corrected).
    pub raw_p99: Option<f64>,
    /// Which side timed it: `guest` (round trip) or `hypervisor` (handler).
    pub side: String,
    /// Mean and standard deviation of the kept samples, ns.
    pub mean_sd: Option<(f64, f64)>,
    /// Share of its side's total exit time (count × mean), percent.
    pub share: Option<f64>,
    /// p50 with accounting on minus the same row with it off, ns.
    pub on_minus_off: Option<f64>,
}

/// One row of the framebuffer-load table: a metric measured beside an idle
/// painter and beside a painting one, in the same run.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct LoadRow {
    /// Metric name and its params other than `load` and `mapped_by`.
    pub key: String,
    /// Unit of the two values.
    pub unit: String,
    /// p50 beside the idle painter (`load=none`).
    pub none: f64,
    /// p50 beside the painting painter (`load=fb-paint`).
    pub paint: f64,
    /// `paint − none`, in the unit.
    pub moved: f64,
}

/// One number of the headline block.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Headline {
    /// What it answers.
    pub label: String,
    /// The number, with its unit.
    pub value: String,
    /// How it was obtained and what it is compared with.
    pub detail: String,
    /// The metric (key) it was computed from, or empty.
    pub metric: String,
    /// The value as a number, equal to that metric's p50 (or value).
    pub number: Option<f64>,
}

/// One line of the baseline comparison.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct CompareRow {
    /// Metric key or invariant.
    pub key: String,
    /// Baseline figure.
    pub baseline: String,
    /// Current figure.
    pub current: String,
    /// Ratio current / baseline.
    pub ratio: String,
    /// One-sided p-value.
    pub p: String,
    /// The gate's verdict.
    pub verdict: CompareVerdict,
}

/// The gate's verdict on a comparison row, as the report words it.
#[derive(Clone, Debug, PartialEq)]
pub struct CompareVerdict(pub Verdict);

impl CompareVerdict {
    /// The style class of its cell (regressions stand out).
    pub fn class(&self) -> &'static str {
        if self.0 == Verdict::Regression {
            "REGRESSION"
        } else {
            ""
        }
    }
}

impl std::fmt::Display for CompareVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Verdict::Regression => f.write_str("REGRESSION"),
            Verdict::Info(w) => write!(f, "info: {w}"),
            v => f.write_str(v.label()),
        }
    }
}

impl Serialize for CompareVerdict {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Everything the report shows, derived from results (and an optional
/// baseline) alone.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Context {
    /// Page title.
    pub title: String,
    /// Host description rows.
    pub host: Vec<(String, String)>,
    /// Hardware counter availability.
    pub counters: CounterStatus,
    /// Run information.
    pub run: RunInfo,
    /// The answer first: what accounting costs, per exit, bind and revoke.
    pub headline: Vec<Headline>,
    /// Goals summary.
    pub goals: Vec<GoalRow>,
    /// Charts in display order.
    pub charts: Vec<Chart>,
    /// Per-port exit table.
    pub exit_table: Vec<ExitRow>,
    /// How the framebuffer painter's load moves each loaded metric.
    pub load_table: Vec<LoadRow>,
    /// All metrics.
    pub metrics: Vec<MetricRow>,
    /// Skipped measurements and why.
    pub not_measured: Vec<NotMeasured>,
    /// Comparison with the baseline, if one was given.
    pub comparison: Option<Vec<CompareRow>>,
    /// The heading of the comparison section: "Comparison with baseline",
    /// or what an A/B run compared.
    pub comparison_title: String,
    /// One-line verdict of the comparison.
    pub comparison_summary: String,
    /// Method notes (coordinated omission, clocks, normalization).
    pub method: Vec<String>,
}

fn pu(m: &Metric, k: &str) -> Option<u64> {
    m.param(k).and_then(Param::as_u64)
}

fn ps<'a>(m: &'a Metric, k: &str) -> Option<&'a str> {
    m.param(k).and_then(Param::as_str)
}

fn goals(r: &Results) -> Vec<GoalRow> {
    goals::evaluate(r)
        .into_iter()
        .map(|e| {
            let g = &e.goal;
            let status = match (e.status(), g.kind) {
                (goals::Status::NotMeasured, _) => GoalStatus::NotMeasured,
                (goals::Status::Met, _) => GoalStatus::Met,
                (goals::Status::Inconclusive, _) => GoalStatus::Inconclusive,
                (goals::Status::Missed, goals::Kind::Target) => GoalStatus::Missed,
                (goals::Status::Missed, goals::Kind::Invariant) => GoalStatus::Broken,
            };
            let limit = e.measured.as_ref().map_or(g.limit, |m| m.limit);
            GoalRow {
                id: g.id.to_owned(),
                metric: g.metric.as_str().to_owned(),
                kind: match g.kind {
                    goals::Kind::Target => "target",
                    goals::Kind::Invariant => "invariant (gated)",
                }
                .to_owned(),
                goal: format!("{}: {} {limit} {}", g.what, g.bound.symbol(), g.unit),
                measured: e.measured.as_ref().map_or_else(
                    || "–".to_owned(),
                    |m| {
                        let f = |x: f64| {
                            if matches!(g.unit, "ratio" | "×" | "fraction") {
                                format!("{x:.3}")
                            } else {
                                n(x)
                            }
                        };
                        let interval = m.interval.map_or(String::new(), |[lo, hi]| {
                            format!(", 95 % interval {} … {}", f(lo), f(hi))
                        });
                        format!("{} {} ({}{interval})", f(m.value), g.unit, m.detail)
                    },
                ),
                status,
            }
        })
        .collect()
}

fn chart(title: &str, d: charts::Drawn, caption: &str) -> Chart {
    Chart {
        title: title.to_owned(),
        svg: d.svg,
        caption: caption.to_owned(),
        legend: d.legend,
        x_ticks: d.x_ticks,
        y_ticks: d.y_ticks,
        data_range: d.data_range,
    }
}

/// One series per metric matching `pred`, x from the numeric param `x`,
/// named by `label`.
fn series_where(
    r: &Results,
    name: MetricName,
    x: &str,
    pred: impl Fn(&Metric) -> bool,
    label: impl Fn(&Metric) -> String,
    y: impl Fn(&Metric) -> f64,
) -> Vec<Series> {
    let mut groups: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for m in r.named(name).filter(|m| pred(m)) {
        let Some(xv) = pu(m, x) else { continue };
        groups.entry(label(m)).or_default().push((xv as f64, y(m)));
    }
    groups
        .into_iter()
        .map(|(name, mut points)| {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            Series { name, points }
        })
        .collect()
}

fn charts(r: &Results, base: Option<&Results>) -> Vec<Chart> {
    let mut book = charts::ColorBook::default();
    let p50 = |m: &Metric| m.p50;
    let mut out = Vec::new();
    let impl_of = |m: &Metric| ps(m, "impl").unwrap_or("?").to_owned();
    let mut port = series_where(r, MetricName::PortCheck, "grants", |_| true, impl_of, p50);
    if let Some(b) = base {
        port.extend(series_where(
            b,
            MetricName::PortCheck,
            "grants",
            |m| ps(m, "impl") == Some("radix"),
            |m| format!("{} (baseline)", impl_of(m)),
            p50,
        ));
    }
    out.push(chart(
        "Port check against grants",
        charts::log_log(
            &mut book,
            "accountant.port_check: p50 per check",
            "grants",
            "time per check",
            Axis::Count,
            Axis::Ns,
            &port,
        ),
        "radix: the accountant's check through the domain id; radix-bound: the vCPU-held \
         checker of one domain; bitmap: a flat per-domain 8 KiB bitmap; btree: a BTreeMap \
         range lookup; linear: the original access list, scanned per check. Dashed: the \
         baseline's radix check. Log-log.",
    ));
    let mut bind = series_where(
        r,
        MetricName::Bind,
        "pages",
        |_| true,
        |_| "hv.bind".into(),
        p50,
    );
    bind.extend(series_where(
        r,
        MetricName::MemslotAdd,
        "pages",
        |_| true,
        |_| "hv.memslot_add (floor)".into(),
        p50,
    ));
    if let Some(b) = base {
        bind.extend(series_where(
            b,
            MetricName::Bind,
            "pages",
            |_| true,
            |_| "hv.bind (baseline)".into(),
            p50,
        ));
    }
    out.push(chart(
        "Bind against its KVM floor",
        charts::log_log(
            &mut book,
            "hv.bind vs bare memslot add (p50)",
            "pages (4 KiB)",
            "time per bind",
            Axis::Count,
            Axis::Ns,
            &bind,
        ),
        "hv.bind: Hypervisor::map of N framebuffer pages (accountant map + slot table + \
         memslot add); the floor: the bare memslot add of the same frames on the same VM, \
         measured in the same rounds.",
    ));
    let state = |m: &Metric| ps(m, "vcpu_state").unwrap_or("?").to_owned();
    let mut rev = series_where(
        r,
        MetricName::RevokeForce,
        "pages",
        |_| true,
        |m| format!("hv.revoke_force {}", state(m)),
        p50,
    );
    rev.extend(series_where(
        r,
        MetricName::MemslotDelete,
        "pages",
        |m| ps(m, "paired_with") == Some("revoke_force"),
        |m| format!("hv.memslot_delete {} (floor)", state(m)),
        p50,
    ));
    out.push(chart(
        "Forced revoke against its KVM floor",
        charts::log_log(
            &mut book,
            "hv.revoke_force vs bare memslot delete (p50)",
            "pages (4 KiB)",
            "time per revoke",
            Axis::Count,
            Axis::Ns,
            &rev,
        ),
        "A forced revoke of N mapped pages the guest touched just before, with its vCPU \
         parked in a blocking hypercall or running in guest mode, beside the bare memslot \
         delete of the same touched frames in the same state.",
    ));
    let mut ratios = Vec::new();
    for (name, label) in [
        (MetricName::BindOverFloor, "bind / memslot add"),
        (MetricName::UnmapOverFloor, "unmap / memslot delete"),
    ] {
        ratios.extend(series_where(
            r,
            name,
            "pages",
            |_| true,
            |_| label.into(),
            p50,
        ));
    }
    ratios.extend(series_where(
        r,
        MetricName::RevokeForceOverFloor,
        "pages",
        |_| true,
        |m| format!("forced revoke / memslot delete, {}", state(m)),
        p50,
    ));
    out.push(chart(
        "Hypervisor steps over their floors",
        charts::log_log(
            &mut book,
            "per-round ratio, median",
            "pages (4 KiB)",
            "step / floor",
            Axis::Count,
            Axis::Ratio,
            &ratios,
        ),
        "Each point is the median of the per-round ratios of a paired measurement; ×1 \
         would mean the hypervisor adds nothing to KVM's own step.",
    ));
    let tracker = |m: &Metric| ps(m, "tracker").unwrap_or("?").to_owned();
    out.push(chart(
        "Accountant map against size, per tracker",
        charts::log_log(
            &mut book,
            "accountant.map of N pages (p50)",
            "pages (4 KiB)",
            "time per map",
            Axis::Count,
            Axis::Ns,
            &series_where(r, MetricName::Map, "pages", |_| true, tracker, p50),
        ),
        "The accountant's map alone, with each MMIO tracker. Log-log: slope 1 is linear in \
         the size.",
    ));
    out.push(chart(
        "Tracker memory",
        charts::log_log(
            &mut book,
            "tracking bytes after mapping N contiguous pages",
            "pages (4 KiB)",
            "tracking memory",
            Axis::Count,
            Axis::Bytes,
            &series_where(
                r,
                MetricName::TrackingBytes,
                "pages",
                |_| true,
                tracker,
                |m| m.value,
            ),
        ),
        "xmalloc-page (record + allocator header per page) vs slab-page (slab record per \
         page) vs slab-extent (one record per run).",
    ));
    let mut tp: Vec<(String, f64)> = Vec::new();
    for state in ["baseline", "disabled", "enabled"] {
        if let Some(m) = r.find(MetricName::TracepointOverhead, &[("state", state.into())]) {
            let label = if state == "baseline" {
                "relaxed load (baseline)".to_owned()
            } else {
                format!("tracepoint {state}")
            };
            tp.push((label, m.p50));
        }
    }
    out.push(chart(
        "Tracepoint overhead",
        charts::bars(&mut book, "tracepoint cost per hit (p50)", Axis::Ns, &tp),
        "A disabled tracepoint against a plain relaxed atomic load (tracing's baseline); \
         enabled: the event is written to the per-thread ring.",
    ));
    // Percentile spectra: per-exit latencies, then micro-benchmark batch
    // means (one point per batch) for the radix check at every grant count.
    type Spectrum<'a> = (MetricName, Option<(&'a str, &'a str)>, Axis);
    let spectra: [Spectrum; 4] = [
        (MetricName::PioExit, None, Axis::Ns),
        (MetricName::ExitHandler, None, Axis::Ns),
        (MetricName::PortCheck, Some(("impl", "radix")), Axis::Ns),
        (MetricName::TracepointOverhead, None, Axis::Ns),
    ];
    for (name, filter, axis) in spectra {
        let series: Vec<Series> = r
            .named(name)
            .filter(|m| !m.spectrum.is_empty())
            .filter(|m| filter.is_none_or(|(k, v)| ps(m, k) == Some(v)))
            .map(|m| Series {
                name: m
                    .params
                    .iter()
                    .filter(|(k, _)| filter.is_none_or(|(fk, _)| fk != k.as_str()))
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" "),
                points: m
                    .spectrum
                    .iter()
                    .filter(|pv| pv[0] < 1.0)
                    .map(|pv| (1.0 / (1.0 - pv[0]), pv[1]))
                    .collect(),
            })
            .collect();
        if series.is_empty() {
            continue;
        }
        out.push(chart(
            &format!("Latency spectrum: {name}"),
            charts::log_log(
                &mut book,
                &format!("{name} percentile spectrum"),
                "percentile (log 1/(1-p))",
                "latency",
                Axis::Percentile,
                axis,
                &series,
            ),
            "Each point is a percentile from the HDR histogram, from the median (50 %) on; \
             the x axis stretches the tail (90 %, 99 %, 99.9 % equally spaced).",
        ));
    }
    out
}

/// The Method section: how each kind of number was taken, with the
/// placement and reference facts of this run.
fn method(r: &Results) -> Vec<String> {
    let a = &r.host.affinity;
    let mut out = Vec::new();
    let probe: Vec<String> = r
        .named(MetricName::MemslotDelete)
        .filter(|m| ps(m, "paired_with") == Some("placement"))
        .map(|m| {
            format!(
                "{} from CPU {}",
                goals::fmt_ns(m.p50),
                pu(m, "control_cpu").unwrap_or(0)
            )
        })
        .collect();
    out.push(format!(
        "Placement: the measuring (control-plane) thread ran on CPU {}, every vCPU thread on \
         CPU {} ({}); every sample records the CPU it was taken on (sched_getcpu), and a \
         metric whose samples span CPUs is listed under warnings. Placement matters for KVM \
         itself: a memslot delete waits for SRCU grace periods, and on a small host a new \
         VM's SRCU callbacks run on CPU 0, so the same delete costs different amounts from \
         different CPUs{}. Measuring the bare step and the hypervisor step on different CPUs \
         (or letting the scheduler move the thread between them) distorts their ratio.",
        if a.measure.is_empty() {
            "(not pinned)"
        } else {
            &a.measure
        },
        if a.vcpus.is_empty() {
            "(not pinned)"
        } else {
            &a.vcpus
        },
        if a.how.is_empty() {
            "placement not recorded"
        } else {
            &a.how
        },
        if probe.is_empty() {
            String::new()
        } else {
            format!(
                " — measured in this run, a bare delete of one touched page: {}",
                probe.join(", ")
            )
        }
    ));
    out.push(
        "Floors are paired: every round measures the bare KVM step (memslot add or delete) \
         and the hypervisor step that contains it (hv.bind, hv.unmap, hv.revoke_force) back \
         to back, on the same pinned thread, against the same VM, with its vCPU in the same \
         state (parked in a blocking hypercall, or running in guest mode), the floor first in \
         even rounds; *_over_floor metrics are the per-round ratios, with a 95 % bootstrap \
         interval of their median."
            .to_owned(),
    );
    out.push(
        "Accounting cost (hv.accounting_cost): two hypervisors, accounting on and off (off is \
         Xen's behaviour: the domain's I/O-port rangeset under a read lock, no in-flight \
         section for revocation), each with a guest doing port reads on request; each round \
         asks both in alternating order and takes the median exit-handler time of each side \
         from the hypervisor's handler probe (two TSC reads around the handler, recorded \
         whatever the tracepoints do). Tracepoints stay off on both sides, so no tracepoint \
         cost is in the difference; the probe's own cost is on both sides and cancels."
            .to_owned(),
    );
    out.push(format!(
        "Micro-benchmarks time batches of operations with the monotonic clock \
         (clock_gettime via the vDSO); each sample is one batch's time per operation, \
         followed by the reference workload `{}` ({}; {} ns per unit on this run): a \
         normalized sample is the operation's time in reference units, and the gate judges \
         these within-run ratios. Port checks, maps, grants and revokes are sampled in 12 \
         rounds interleaved across all their configurations, so a passing disturbance on a \
         shared machine touches a slice of every metric instead of all of one.",
        r.run.reference.name, r.run.reference.unit, r.run.reference.ns_per_unit
    ));
    out.push(
        "Port exits (hv.pio_exit) are timed by the guest (lfence; rdtsc around one `in`), \
         normalized by the median bare-KVM exit of the same run. Coordinated omission: \
         closed-loop guest port-access loops are corrected with HdrHistogram's \
         expected-interval correction (interval = the uncorrected median); uncorrected \
         percentiles are kept beside them. Micro-benchmark batches have no intended \
         schedule, so there is no omission to correct."
            .to_owned(),
    );
    out.push(format!(
        "Hardware counters: {}",
        if r.host.counters.detail.is_empty() {
            "not probed".to_owned()
        } else {
            r.host.counters.detail.clone()
        }
    ));
    for w in &r.run.warnings {
        out.push(format!("Warning: {w}"));
    }
    out
}

fn exit_table(r: &Results) -> Vec<ExitRow> {
    let source = |row: &Metric| {
        let side = ps(row, "side");
        let name = if side == Some("hypervisor") {
            MetricName::ExitHandler
        } else {
            MetricName::PioExit
        };
        let mut params = row.params.clone();
        params.remove("port");
        params.remove("side");
        r.named(name).find(move |m| m.params == params)
    };
    let mean_sd = |m: &Metric| {
        let n = m.samples.len() as f64;
        (n >= 2.0).then(|| {
            let mean = m.samples.iter().sum::<f64>() / n;
            let var = m.samples.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
            (mean, var.sqrt())
        })
    };
    let rows: Vec<&Metric> = r.named(MetricName::PortExit).collect();
    let mut out: Vec<ExitRow> = rows
        .iter()
        .map(|m| {
            let src = source(m);
            let off = (ps(m, "accounting") == Some("on"))
                .then(|| {
                    rows.iter().find(|o| {
                        ps(o, "accounting") == Some("off")
                            && o.params
                                .iter()
                                .all(|(k, v)| k == "accounting" || m.param(k) == Some(v))
                    })
                })
                .flatten();
            ExitRow {
                port: m
                    .params
                    .iter()
                    .filter(|(k, _)| k.as_str() != "side")
                    .map(|(k, v)| match (k.as_str(), v) {
                        ("port", Param::Int(p)) => format!("port={p:#06x}"),
                        _ => format!("{k}={v}"),
                    })
                    .collect::<Vec<_>>()
                    .join(" "),
                count: m.count,
                min: m.min,
                p50: m.p50,
                p90: m.p90,
                p99: m.p99,
                p999: m.p999,
                max: m.max,
                raw_p50: m.uncorrected.map(|u| u.p50),
                raw_p99: m.uncorrected.map(|u| u.p99),
                side: ps(m, "side").unwrap_or("guest").to_owned(),
                mean_sd: src.and_then(mean_sd),
                share: None,
                on_minus_off: off.map(|o| m.p50 - o.p50),
            }
        })
        .collect();
    for side in ["guest", "hypervisor"] {
        let total: f64 = out
            .iter()
            .filter(|x| x.side == side)
            .filter_map(|x| x.mean_sd.map(|(mean, _)| mean * x.count as f64))
            .sum();
        for x in out.iter_mut().filter(|x| x.side == side) {
            x.share = x
                .mean_sd
                .filter(|_| total > 0.0)
                .map(|(mean, _)| 100.0 * mean * x.count as f64 / total);
        }
    }
    out
}

/// Every `mapped_by=painter` metric measured under both loads: its p50 beside
/// the idle painter and beside the painting one.
fn load_table(r: &Results) -> Vec<LoadRow> {
    let rest = |m: &Metric| {
        let mut p = m.params.clone();
        p.remove("load");
        p.remove("mapped_by");
        p
    };
    r.metrics
        .iter()
        .filter(|m| ps(m, "mapped_by") == Some("painter") && ps(m, "load") == Some("none"))
        .filter_map(|idle| {
            let key = rest(idle);
            let paint = r.metrics.iter().find(|m| {
                m.name == idle.name
                    && ps(m, "mapped_by") == Some("painter")
                    && ps(m, "load") == Some("fb-paint")
                    && rest(m) == key
            })?;
            let words: Vec<String> = key.iter().map(|(k, v)| format!("{k}={v}")).collect();
            Some(LoadRow {
                key: format!("{} {}", idle.name, words.join(" "))
                    .trim_end()
                    .to_owned(),
                unit: idle.unit.clone(),
                none: idle.p50,
                paint: paint.p50,
                moved: paint.p50 - idle.p50,
            })
        })
        .collect()
}

fn headline(r: &Results) -> Vec<Headline> {
    let ns = goals::fmt_ns;
    let mut out = Vec::new();
    let ci = |m: &Metric, unit: &str| {
        m.ci95.map_or("no interval recorded".to_owned(), |[a, b]| {
            format!("95 % CI {} … {}{unit}", n(a), n(b))
        })
    };
    if let Some(m) = r.find(
        MetricName::AccountingCost,
        &[("mmio_tracked_pages", 0u64.into()), ("load", "none".into())],
    ) {
        let off = r.find(
            MetricName::ExitHandler,
            &[
                ("accounting", "off".into()),
                ("mmio_tracked_pages", 0u64.into()),
            ],
        );
        out.push(Headline {
            label: "Accounting per port exit (hypervisor side)".into(),
            value: format!("{:+.1} ns", m.p50),
            detail: format!(
                "exit handler with accounting on minus off, median of {} paired rounds ({}){}",
                m.count,
                ci(m, " ns"),
                off.filter(|o| o.p50 > 0.0)
                    .map_or(String::new(), |o| format!(
                        "; {:+.1} % of the {} handler without accounting (Xen's rangeset check)",
                        100.0 * m.p50 / o.p50,
                        ns(o.p50)
                    ))
            ),
            metric: m.key(),
            number: Some(m.p50),
        });
    }
    let over = |name: MetricName,
                params: &[(&str, Param)],
                step: MetricName,
                floor: MetricName,
                label: &str,
                out: &mut Vec<Headline>| {
        let Some(m) = r.find(name, params) else {
            return;
        };
        let own: Vec<(&str, Param)> = params.to_vec();
        let st = r.find(step, &own);
        let fl = r.named(floor).find(|f| {
            own.iter().all(|(k, v)| f.param(k) == Some(v))
                && f.param("paired_with").is_none_or(|p| {
                    Some(p.to_string()) == step.as_str().strip_prefix("hv.").map(str::to_owned)
                })
        });
        let delta = match (st, fl) {
            (Some(s), Some(f)) => format!(
                "; {} against the bare {} (+{})",
                ns(s.p50),
                ns(f.p50),
                ns(s.p50 - f.p50)
            ),
            _ => String::new(),
        };
        out.push(Headline {
            label: label.to_owned(),
            value: format!("×{:.3} its KVM floor", m.p50),
            detail: format!("median of {} paired rounds ({}){delta}", m.count, ci(m, "")),
            metric: m.key(),
            number: Some(m.p50),
        });
    };
    over(
        MetricName::BindOverFloor,
        &[("pages", 1u64.into())],
        MetricName::Bind,
        MetricName::MemslotAdd,
        "Bind of 1 page of I/O memory",
        &mut out,
    );
    over(
        MetricName::BindOverFloor,
        &[("pages", 65_536u64.into())],
        MetricName::Bind,
        MetricName::MemslotAdd,
        "Bind of a 256 MiB framebuffer",
        &mut out,
    );
    if let Some(m) = r.named(MetricName::BindIrqDelta).next() {
        out.push(Headline {
            label: "Bind of an interrupt line".into(),
            value: format!("{:+.0} ns", m.p50),
            detail: format!(
                "over a bare KVM_IRQFD assign, median of {} paired rounds ({})",
                m.count,
                ci(m, " ns")
            ),
            metric: m.key(),
            number: Some(m.p50),
        });
    }
    for st in ["parked", "running"] {
        over(
            MetricName::RevokeForceOverFloor,
            &[("pages", 1u64.into()), ("vcpu_state", st.into())],
            MetricName::RevokeForce,
            MetricName::MemslotDelete,
            &format!("Forced revoke of 1 page, vCPU {st}"),
            &mut out,
        );
    }
    let at = |name: MetricName, t: &str| {
        r.find(name, &[("tracker", t.into()), ("pages", 65_536u64.into())])
    };
    if let (Some(eb), Some(ea)) = (
        at(MetricName::TrackingBytes, "slab-extent"),
        at(MetricName::TrackingAllocations, "slab-extent"),
    ) {
        let other = |t: &str| match (
            at(MetricName::TrackingBytes, t),
            at(MetricName::TrackingAllocations, t),
        ) {
            (Some(b), Some(a)) => format!(
                "{t} {} in {} allocations",
                format::axis::bytes(b.value),
                n(a.value)
            ),
            _ => format!("{t} not measured"),
        };
        out.push(Headline {
            label: "Tracking a 256 MiB framebuffer (65,536 pages)".into(),
            value: format!(
                "{} in {:.0} allocation(s)",
                format::axis::bytes(eb.value),
                ea.value
            ),
            detail: format!(
                "slab-extent (the default) against {} and {}",
                other("xmalloc-page"),
                other("slab-page")
            ),
            metric: eb.key(),
            number: Some(eb.value),
        });
    }
    let h = &r.host;
    out.push(Headline {
        label: "Measured on".into(),
        value: h.virtualization.clone(),
        detail: format!(
            "{} ({}), {} CPUs, kernel {}; measuring thread on CPU {}, vCPUs on CPU {}",
            h.cpu_model,
            h.cpu_vendor,
            h.cpus,
            h.kernel,
            if h.affinity.measure.is_empty() {
                "?"
            } else {
                &h.affinity.measure
            },
            if h.affinity.vcpus.is_empty() {
                "?"
            } else {
                &h.affinity.vcpus
            }
        ),
        metric: String::new(),
        number: None,
    });
    out
}

impl Context {
    /// Interprets `results` (and `baseline`, compared by the gate's rules).
    pub fn build(results: &Results, baseline: Option<&Results>) -> Context {
        let h = &results.host;
        let host = vec![
            ("CPU".into(), format!("{} ({})", h.cpu_model, h.cpu_vendor)),
            (
                "Virtualization".into(),
                format!(
                    "{}{}",
                    h.virtualization,
                    if h.nested {
                        ", host is itself a guest (nested / software)"
                    } else {
                        ", bare metal"
                    }
                ),
            ),
            ("Kernel".into(), h.kernel.clone()),
            (
                "Commit".into(),
                h.commit
                    .clone()
                    .unwrap_or_else(|| "unknown (no git)".into()),
            ),
            ("Date".into(), h.date.clone()),
            ("CPUs".into(), h.cpus.to_string()),
            (
                "Clocks".into(),
                format!(
                    "clocksource {}, invariant TSC: {}, governor: {}",
                    h.clocksource,
                    if h.invariant_tsc { "yes" } else { "no" },
                    h.governor.as_deref().unwrap_or("not exposed")
                ),
            ),
        ];
        let metrics = results
            .metrics
            .iter()
            .map(|m| MetricRow {
                key: m.key(),
                unit: m.unit.clone(),
                value: m.value,
                p50: m.p50,
                p90: m.p90,
                p99: m.p99,
                p999: m.p999,
                max: m.max,
                count: m.count,
                counters: match (m.cycles_per_op, m.instructions_per_op) {
                    (Some(c), Some(i)) => format!("{c:.1} cyc, {i:.1} ins"),
                    (Some(c), None) => format!("{c:.1} cyc"),
                    _ => String::new(),
                },
                note: m.note.clone().unwrap_or_default(),
            })
            .collect();
        let (comparison, comparison_summary) = match baseline {
            None => (None, "No baseline given.".to_owned()),
            Some(b) => {
                let g = gate::compare(b, results, &GateConfig::default(), None);
                let rows = g
                    .findings
                    .iter()
                    .map(|f| CompareRow {
                        key: f.key.clone(),
                        baseline: format::judged(f.baseline),
                        current: format::judged(f.current),
                        ratio: format::ratio(f.ratio),
                        p: format::p_sci(f.p),
                        verdict: CompareVerdict(f.verdict.clone()),
                    })
                    .collect();
                let summary = format!(
                    "Baseline from {} (commit {}): {} regression(s) beyond noise \
                     (one-sided Mann-Whitney p < {}, minimum effect {:.0} %, {:.0} % for {}, \
                     or {}× the baseline's between-run noise).",
                    b.host.date,
                    b.host.commit.as_deref().unwrap_or("unknown"),
                    g.regressions(),
                    g.alpha,
                    g.min_effect * 100.0,
                    g.headline_min_effect * 100.0,
                    g.headline,
                    g.noise_factor
                );
                (Some(rows), summary)
            }
        };
        let method = method(results);
        Context {
            title: format!("ioacct benchmark report — {}", results.host.date),
            host,
            counters: results.host.counters.clone(),
            run: results.run.clone(),
            headline: headline(results),
            goals: goals(results),
            charts: charts(results, baseline),
            exit_table: exit_table(results),
            load_table: load_table(results),
            metrics,
            not_measured: results.not_measured.clone(),
            comparison,
            comparison_title: "Comparison with baseline".to_owned(),
            comparison_summary,
            method,
        }
    }
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em;max-width:1100px;color:#222}\
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:3px 8px;\
font-size:13px;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}\
th{background:#eee}.met{color:#176017;font-weight:bold}.MISSED,.BROKEN,.REGRESSION{color:#b00;\
font-weight:bold}.nm{color:#777}.inconclusive{color:#a60;font-weight:bold}figure{margin:1.5em 0}figcaption{font-size:13px;color:#444;\
max-width:720px}code{background:#f4f4f4}.headline{background:#f6f8fb;border:1px solid #cdd;\
padding:0.5em 1em}.headline td.big{font-size:20px;font-weight:bold;white-space:nowrap}\
.toc ol{columns:2}.tocchart{display:inline-block;margin-right:1em;font-size:13px}\
.legend{font-size:13px;max-width:720px}.key{display:inline-block;margin-right:1.2em}\
.sw{display:inline-block;width:14px;height:4px;margin-right:4px;vertical-align:middle}";

/// The anchor of a chart.
fn chart_id(title: &str) -> String {
    let mut id = String::from("chart-");
    for ch in title.chars() {
        if ch.is_ascii_alphanumeric() {
            id.push(ch.to_ascii_lowercase());
        } else if !id.ends_with('-') {
            id.push('-');
        }
    }
    id
}

/// The page template (`templates/report.html`): the context, laid out.
#[derive(Template)]
#[template(path = "report.html")]
struct Page<'c> {
    c: &'c Context,
    style: &'static str,
}

impl Page<'_> {
    /// Seconds of measuring, as shown.
    fn wall_secs(&self) -> String {
        format!("{:.0}", self.c.run.wall_secs)
    }

    /// The environment knobs of the run, `K=V, …`.
    fn knobs(&self) -> String {
        self.c
            .run
            .knobs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The sections, `(anchor, heading)`.
    fn contents(&self) -> [(&'static str, &str); 9] {
        [
            ("summary", "Summary against goals"),
            ("host", "Host"),
            ("charts", "Charts"),
            ("exits", "Per-exit table"),
            ("load", "Under framebuffer load"),
            ("comparison", &self.c.comparison_title),
            ("not-measured", "Not measured"),
            ("method", "Method"),
            ("metrics", "All metrics"),
        ]
    }
}

impl Chart {
    /// Its anchor in the page.
    pub fn anchor(&self) -> String {
        chart_id(&self.title)
    }
}

impl ExitRow {
    /// The numeric cells, as shown: exits, time %, mean ± sd, min, p50,
    /// p99, max, on − off, raw p50, raw p99.
    pub fn cells(&self) -> [String; 10] {
        let dash = || "–".to_owned();
        [
            n(self.count as f64),
            self.share.map_or_else(dash, |v| format!("{v:.1}")),
            self.mean_sd
                .map_or_else(dash, |(m, sd)| format!("{} ± {}", n(m), n(sd))),
            n(self.min),
            n(self.p50),
            n(self.p99),
            n(self.max),
            self.on_minus_off.map_or_else(dash, |d| format!("{d:+.1}")),
            self.raw_p50.map_or_else(dash, n),
            self.raw_p99.map_or_else(dash, n),
        ]
    }
}

impl LoadRow {
    /// The numeric cells, as shown: idle, painting, and how far the load
    /// moved it (× where both are positive).
    pub fn cells(&self) -> [String; 3] {
        let times = if self.none > 0.0 && self.paint > 0.0 {
            format!(" (×{:.2})", self.paint / self.none)
        } else {
            String::new()
        };
        [
            n(self.none),
            n(self.paint),
            format!(
                "{}{}{times}",
                if self.moved < 0.0 { "−" } else { "+" },
                n(self.moved.abs())
            ),
        ]
    }
}

impl MetricRow {
    /// The numeric cells, as shown: value, p50, p90, p99, p99.9, max, n.
    pub fn cells(&self) -> [String; 7] {
        [
            n(self.value),
            n(self.p50),
            n(self.p90),
            n(self.p99),
            n(self.p999),
            n(self.max),
            self.count.to_string(),
        ]
    }
}

/// Lays out a context as one self-contained HTML document (the template
/// escapes every value but the inline SVG charts).
pub fn render(c: &Context) -> String {
    Page { c, style: STYLE }
        .render()
        // Rendering writes into a String and formats plain values: it
        // cannot fail, and if it did the message says so.
        .unwrap_or_else(|e| format!("the report could not be rendered: {e}"))
}

/// The report for `results`, compared with `baseline` when given: a pure
/// function of its inputs.
pub fn report(results: &Results, baseline: Option<&Results>) -> String {
    render(&Context::build(results, baseline))
}
