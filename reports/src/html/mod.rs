//! The HTML report: results → one serializable [`Context`] → HTML.
//!
//! [`Context::build`] does all the interpretation (goals, chart data, the
//! exit table, the comparison); [`render`] only lays it out. The output is
//! one file: styles inline, charts inline SVG, no script, no network.
//!
//! Files: this one holds the context and its rows and [`Context::build`];
//! a section's rows come from `summary.rs` (headline, goals), `figures.rs`
//! (charts) or `tables.rs` (exits, load, method); `page.rs` lays the context
//! out through `templates/report.html`.

use crate::format::{self};
use crate::gate::{self, GateConfig, Verdict};
use crate::schema::{CounterStatus, NotMeasured, Results, RunInfo};
use serde::Serialize;

mod figures;
mod page;
mod summary;
mod tables;

use figures::charts;
pub use page::{render, report};
use summary::{goal_rows, headline};
use tables::{exit_table, load_table, method};

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
            goals: goal_rows(results),
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
