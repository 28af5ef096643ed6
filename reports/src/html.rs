//! The HTML report: results → one serializable [`Context`] → HTML.
//!
//! [`Context::build`] does all the interpretation (goals, chart data, the
//! exit table, the comparison); [`render`] only lays it out. The output is
//! one file: styles inline, charts inline SVG, no script, no network.

use crate::charts::{self, Series, XLabels};
use crate::gate::{self, GateConfig, Verdict};
use crate::names::MetricName;
use crate::schema::{CounterStatus, Metric, NotMeasured, Param, Results, RunInfo};
use serde::Serialize;
use std::collections::BTreeMap;

/// Escapes text for HTML element content and attribute values.
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
    /// What is measured.
    pub metric: String,
    /// The goal it is held to (and where the goal comes from).
    pub goal: String,
    /// What this run measured.
    pub measured: String,
    /// `met`, `MISSED` or `not measured`.
    pub status: String,
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
    /// Verdict word.
    pub verdict: String,
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
    /// Goals summary.
    pub goals: Vec<GoalRow>,
    /// Charts in display order.
    pub charts: Vec<Chart>,
    /// Per-port exit table.
    pub exit_table: Vec<ExitRow>,
    /// All metrics.
    pub metrics: Vec<MetricRow>,
    /// Skipped measurements and why.
    pub not_measured: Vec<NotMeasured>,
    /// Comparison with the baseline, if one was given.
    pub comparison: Option<Vec<CompareRow>>,
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

/// Groups metrics of one name into series by the `by` parameter, x from the
/// numeric `x` parameter, y from `y(metric)`.
fn series_by(
    r: &Results,
    name: MetricName,
    by: &str,
    x: &str,
    y: impl Fn(&Metric) -> f64,
    suffix: &str,
) -> Vec<Series> {
    let mut groups: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for m in r.named(name) {
        let Some(xv) = pu(m, x) else { continue };
        let label = m
            .param(by)
            .map_or_else(|| name.as_str().to_owned(), |p| p.to_string());
        groups
            .entry(format!("{label}{suffix}"))
            .or_default()
            .push((xv as f64, y(m)));
    }
    groups
        .into_iter()
        .map(|(name, mut points)| {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            Series { name, points }
        })
        .collect()
}

fn fmt_ns(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2} ms", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.2} µs", v / 1e3)
    } else {
        format!("{v:.2} ns")
    }
}

/// The typical service time: the median before coordinated-omission
/// correction when the metric was corrected (the corrected median also
/// counts the accesses a stall delayed, which on a shared machine says more
/// about the neighbours than about the code).
fn typical(m: &Metric) -> f64 {
    m.uncorrected.map_or(m.p50, |u| u.p50)
}

fn goal(metric: &str, goal: &str, measured: Option<(String, bool)>) -> GoalRow {
    let (measured, status) = match measured {
        Some((m, ok)) => (m, if ok { "met" } else { "MISSED" }.to_owned()),
        None => ("–".to_owned(), "not measured".to_owned()),
    };
    GoalRow {
        metric: metric.to_owned(),
        goal: goal.to_owned(),
        measured,
        status,
    }
}

fn goals(r: &Results) -> Vec<GoalRow> {
    let mut out = Vec::new();
    let radix: Vec<&Metric> = r
        .named(MetricName::PortCheck)
        .filter(|m| ps(m, "impl") == Some("radix"))
        .collect();
    let lo = radix.iter().min_by_key(|m| pu(m, "grants"));
    let hi = radix.iter().max_by_key(|m| pu(m, "grants"));
    out.push(goal(
        "accountant.port_check (radix)",
        &format!(
            "fixed number of loads whatever the grants (SPEC 4): p50 at most grants / at fewest ≤ {}",
            gate::RADIX_FLATNESS_LIMIT
        ),
        match (lo, hi) {
            (Some(l), Some(h)) if l.p50 > 0.0 => {
                let ratio = h.p50 / l.p50;
                Some((
                    format!(
                        "{} → {} ({} → {} grants): ×{ratio:.2}",
                        fmt_ns(l.p50),
                        fmt_ns(h.p50),
                        pu(l, "grants").unwrap_or(0),
                        pu(h, "grants").unwrap_or(0)
                    ),
                    ratio <= gate::RADIX_FLATNESS_LIMIT,
                ))
            }
            _ => None,
        },
    ));
    let max_grants = r
        .named(MetricName::PortCheck)
        .filter_map(|m| pu(m, "grants"))
        .max();
    let at = |imp: &str| {
        max_grants.and_then(|g| {
            r.find(
                MetricName::PortCheck,
                &[("impl", imp.into()), ("grants", g.into())],
            )
        })
    };
    out.push(goal(
        "accountant.port_check radix vs linear",
        "radix faster than the original linear access list at the largest grant count",
        match (at("radix"), at("linear")) {
            (Some(rx), Some(li)) if rx.p50 > 0.0 => Some((
                format!(
                    "{} vs {} at {} grants: ×{:.0} faster",
                    fmt_ns(rx.p50),
                    fmt_ns(li.p50),
                    max_grants.unwrap_or(0),
                    li.p50 / rx.p50
                ),
                rx.p50 < li.p50,
            )),
            _ => None,
        },
    ));
    let allocs = r.find(
        MetricName::TrackingAllocations,
        &[
            ("tracker", "slab-extent".into()),
            ("pages", 65_536u64.into()),
        ],
    );
    out.push(goal(
        "accountant.tracking_allocations (slab-extent, 65,536 pages = 256 MiB)",
        "mapping a 256 MiB framebuffer must not cost 65,536 allocations (SPEC 4)",
        allocs.map(|m| (format!("{:.0} allocations", m.value), m.value < 65_536.0)),
    ));
    let max_pages = r
        .named(MetricName::TrackingBytes)
        .filter_map(|m| pu(m, "pages"))
        .max();
    let bytes = |t: &str| {
        max_pages.and_then(|p| {
            r.find(
                MetricName::TrackingBytes,
                &[("tracker", t.into()), ("pages", p.into())],
            )
        })
    };
    out.push(goal(
        "accountant.tracking_bytes",
        "slab-extent uses less tracking memory than xmalloc-page for a contiguous mapping",
        match (bytes("slab-extent"), bytes("xmalloc-page")) {
            (Some(e), Some(x)) => Some((
                format!(
                    "{} vs {} bytes at {} pages",
                    e.value,
                    x.value,
                    max_pages.unwrap_or(0)
                ),
                e.value < x.value,
            )),
            _ => None,
        },
    ));
    let tp = |s: &str| r.find(MetricName::TracepointOverhead, &[("state", s.into())]);
    out.push(goal(
        "tracepoints.overhead (disabled)",
        "about one predictable branch: within 1 ns of a plain relaxed load (STYLE 8)",
        match (tp("disabled"), tp("baseline")) {
            (Some(d), Some(b)) => Some((
                format!("{} vs relaxed load {}", fmt_ns(d.p50), fmt_ns(b.p50)),
                d.p50 - b.p50 <= 1.0,
            )),
            _ => None,
        },
    ));
    out.push(goal(
        "tracepoints.overhead (enabled)",
        "recorded into a per-thread ring with a TSC timestamp: shown for scale",
        tp("enabled").map(|e| (fmt_ns(e.p50), true)),
    ));
    let pio = |acc: &str, pages: u64| {
        r.find(
            MetricName::PioExit,
            &[
                ("accounting", acc.into()),
                ("mmio_tracked_pages", pages.into()),
            ],
        )
    };
    out.push(goal(
        "hv.pio_exit accounting cost",
        "accounting on vs off, no MMIO tracked, uncorrected medians: the check is small next to the exit (≤ 10 %)",
        match (pio("on", 0), pio("off", 0)) {
            (Some(on), Some(off)) if typical(off) > 0.0 => Some((
                format!(
                    "{} vs {} ({:+.1} %)",
                    fmt_ns(typical(on)),
                    fmt_ns(typical(off)),
                    (typical(on) / typical(off) - 1.0) * 100.0
                ),
                typical(on) / typical(off) <= 1.10,
            )),
            _ => None,
        },
    ));
    let big = r
        .named(MetricName::PioExit)
        .filter_map(|m| pu(m, "mmio_tracked_pages"))
        .max()
        .filter(|p| *p > 0);
    out.push(goal(
        "hv.pio_exit vs tracked MMIO",
        "port exits do not slow down with the most framebuffer MMIO tracked, uncorrected medians (≤ 10 %)",
        match (big.and_then(|b| pio("on", b)), pio("on", 0)) {
            (Some(b), Some(z)) if typical(z) > 0.0 => Some((
                format!(
                    "{} with {} pages vs {} with none",
                    fmt_ns(typical(b)),
                    big.unwrap_or(0),
                    fmt_ns(typical(z))
                ),
                typical(b) / typical(z) <= 1.10,
            )),
            _ => None,
        },
    ));
    let bind_max = r
        .named(MetricName::Bind)
        .max_by_key(|m| pu(m, "pages").unwrap_or(0));
    out.push(goal(
        "hv.bind at framebuffer scale",
        "bind time of the largest mapping, shown with its growth (see chart)",
        bind_max.map(|m| {
            (
                format!(
                    "{} for {} pages",
                    fmt_ns(m.p50),
                    pu(m, "pages").unwrap_or(0)
                ),
                true,
            )
        }),
    ));
    out.push(goal(
        "cargo xtask bench --quick",
        "finishes in under 5 minutes on 2 cores (SPEC 5)",
        (r.run.quick && r.run.wall_secs > 0.0).then(|| {
            (
                format!("{:.0} s of measuring", r.run.wall_secs),
                r.run.wall_secs < 300.0,
            )
        }),
    ));
    out
}

fn charts(r: &Results) -> Vec<Chart> {
    let mut out = Vec::new();
    let p50 = |m: &Metric| m.p50;
    out.push(Chart {
        title: "Port check against grants".into(),
        svg: charts::log_log(
            "accountant.port_check: p50 ns per check",
            "grants",
            "ns per check",
            XLabels::Count,
            &series_by(r, MetricName::PortCheck, "impl", "grants", p50, ""),
        ),
        caption: "Radix tree (fixed number of loads) against the original linear access list \
                  scanned per check; log-log."
            .into(),
    });
    let mut bind = series_by(r, MetricName::Bind, "tracker", "pages", p50, " (hv.bind)");
    bind.extend(series_by(
        r,
        MetricName::Map,
        "tracker",
        "pages",
        p50,
        " (accountant.map)",
    ));
    out.push(Chart {
        title: "Bind / map time against mapping size".into(),
        svg: charts::log_log(
            "time to bind or map N pages (p50)",
            "pages (4 KiB)",
            "ns",
            XLabels::Count,
            &bind,
        ),
        caption: "hv.bind: guest-visible bind of N framebuffer pages through the hypervisor; \
                  accountant.map: the accountant's map of N pages with each tracker. Log-log: \
                  slope 1 is linear in the size."
            .into(),
    });
    out.push(Chart {
        title: "Tracker memory".into(),
        svg: charts::log_log(
            "tracking bytes after mapping N contiguous pages",
            "pages",
            "bytes",
            XLabels::Count,
            &series_by(
                r,
                MetricName::TrackingBytes,
                "tracker",
                "pages",
                |m| m.value,
                "",
            ),
        ),
        caption: "xmalloc-page (record + allocator header per page) vs slab-page (slab record \
                  per page) vs slab-extent (one record per run)."
            .into(),
    });
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
    out.push(Chart {
        title: "Tracepoint overhead".into(),
        svg: charts::bars("tracepoint cost per hit (p50)", "ns", &tp),
        caption: "A disabled tracepoint against a plain relaxed atomic load (tracing's \
                  baseline); enabled: the event is written to the per-thread ring."
            .into(),
    });
    // Percentile spectra for every metric that carries one.
    // Per-exit latencies first; micro-benchmark spectra are of batch means
    // (one point per batch), shown for the radix check and tracepoints only.
    let spectra: [(MetricName, Option<(&str, &str)>); 4] = [
        (MetricName::PioExit, None),
        (MetricName::PortExit, None),
        (MetricName::PortCheck, Some(("impl", "radix"))),
        (MetricName::TracepointOverhead, None),
    ];
    for (name, filter) in spectra {
        let series: Vec<Series> = r
            .named(name)
            .filter(|m| !m.spectrum.is_empty())
            .filter(|m| filter.is_none_or(|(k, v)| ps(m, k) == Some(v)))
            .take(8)
            .map(|m| Series {
                name: m
                    .params
                    .iter()
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
        out.push(Chart {
            title: format!("Latency spectrum: {name}"),
            svg: charts::log_log(
                &format!("{name} percentile spectrum"),
                "percentile (log 1/(1-p))",
                "ns",
                XLabels::Percentile,
                &series,
            ),
            caption: "Each point is a percentile from the HDR histogram; the x axis stretches \
                      the tail (90 %, 99 %, 99.9 % ... equally spaced)."
                .into(),
        });
    }
    out
}

fn exit_table(r: &Results) -> Vec<ExitRow> {
    r.named(MetricName::PortExit)
        .map(|m| ExitRow {
            port: m
                .params
                .iter()
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
        })
        .collect()
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
                let num = |v: Option<f64>| v.map_or("–".to_owned(), |x| format!("{x:.4}"));
                let rows = g
                    .findings
                    .iter()
                    .map(|f| CompareRow {
                        key: f.key.clone(),
                        baseline: num(f.baseline),
                        current: num(f.current),
                        ratio: f.ratio.map_or("–".into(), |r| format!("{r:.3}")),
                        p: f.p.map_or("–".into(), |p| format!("{p:.2e}")),
                        verdict: match &f.verdict {
                            Verdict::Same => "ok".into(),
                            Verdict::Regression => "REGRESSION".into(),
                            Verdict::Improvement => "improved".into(),
                            Verdict::Info(w) => format!("info: {w}"),
                            Verdict::Missing => "missing".into(),
                        },
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
        let method = vec![
            "Micro-benchmarks time batches of operations with the monotonic clock \
             (clock_gettime via the vDSO); each sample is one batch's time per operation, \
             and each batch is followed by a fixed reference workload whose time normalizes \
             it (norm_samples, in reference units): the gate judges these within-run ratios. \
             Port checks, maps, grants and revokes are sampled in 12 rounds interleaved across \
             all their configurations, so a passing disturbance on the shared machine touches \
             a slice of every metric instead of all of one."
                .to_owned(),
            "Port exits (hv.pio_exit) are timed by the guest (lfence; rdtsc around one `in`), \
             normalized for the gate by the median bare-KVM exit of the same run. The \
             hypervisor side of the same exits (hv.exit_handler, rows with side=hypervisor) \
             is the duration the VmExit tracepoint records around the exit handler, taken in \
             a separate, shorter pass with tracing on."
                .to_owned(),
            "Coordinated omission: micro-benchmark batches issue the next operation as soon \
             as the previous returns and record batch means, with no intended schedule, so \
             there is no omission to correct. Closed-loop guest port-access loops are \
             corrected with HdrHistogram's expected-interval correction (interval = the \
             uncorrected median), so a stall counts the accesses it delayed; uncorrected \
             percentiles are kept beside them."
                .to_owned(),
            format!(
                "Hardware counters: {}",
                if results.host.counters.detail.is_empty() {
                    "not probed".to_owned()
                } else {
                    results.host.counters.detail.clone()
                }
            ),
        ];
        Context {
            title: format!("ioacct benchmark report — {}", results.host.date),
            host,
            counters: results.host.counters.clone(),
            run: results.run.clone(),
            goals: goals(results),
            charts: charts(results),
            exit_table: exit_table(results),
            metrics,
            not_measured: results.not_measured.clone(),
            comparison,
            comparison_summary,
            method,
        }
    }
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em;max-width:1100px;color:#222}\
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:3px 8px;\
font-size:13px;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}\
th{background:#eee}.met{color:#176017;font-weight:bold}.MISSED,.REGRESSION{color:#b00;\
font-weight:bold}.nm{color:#777}figure{margin:1.5em 0}figcaption{font-size:13px;color:#444;\
max-width:720px}code{background:#f4f4f4}";

fn n(v: f64) -> String {
    if v == 0.0 || (v.abs() >= 0.01 && v.abs() < 1e7) {
        let s = format!("{v:.2}");
        s.strip_suffix(".00").map_or(s.clone(), str::to_owned)
    } else {
        format!("{v:.3e}")
    }
}

/// Lays out a context as one self-contained HTML document.
pub fn render(c: &Context) -> String {
    let mut h = String::new();
    let e = escape;
    h.push_str(&format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
         <style>{STYLE}</style></head><body>\n<h1>{}</h1>\n",
        e(&c.title),
        e(&c.title)
    ));
    h.push_str(&format!(
        "<p>Run: {}, {:.0} s of measuring{}.</p>\n",
        if c.run.quick { "quick" } else { "full" },
        c.run.wall_secs,
        if c.run.knobs.is_empty() {
            String::new()
        } else {
            format!(
                "; knobs: {}",
                e(&c.run
                    .knobs
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", "))
            )
        }
    ));
    h.push_str("<h2 id=\"summary\">Summary against goals</h2>\n<table><tr><th>metric</th><th>goal</th><th>measured</th><th>status</th></tr>\n");
    for g in &c.goals {
        let class = if g.status == "not measured" {
            "nm"
        } else {
            &g.status
        };
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td></tr>\n",
            e(&g.metric),
            e(&g.goal),
            e(&g.measured),
            e(class),
            e(&g.status)
        ));
    }
    h.push_str("</table>\n<h2 id=\"host\">Host</h2>\n<table>\n");
    for (k, v) in &c.host {
        h.push_str(&format!("<tr><th>{}</th><td>{}</td></tr>\n", e(k), e(v)));
    }
    h.push_str(&format!(
        "<tr><th>Hardware counters</th><td>{}{}</td></tr>\n</table>\n",
        if c.counters.available {
            "available"
        } else {
            "unavailable"
        },
        if c.counters.detail.is_empty() {
            String::new()
        } else {
            format!(": {}", e(&c.counters.detail))
        }
    ));
    h.push_str("<h2 id=\"charts\">Charts</h2>\n");
    for ch in &c.charts {
        h.push_str(&format!(
            "<figure><h3>{}</h3>{}<figcaption>{}</figcaption></figure>\n",
            e(&ch.title),
            ch.svg,
            e(&ch.caption)
        ));
    }
    h.push_str("<h2 id=\"exits\">Per-port exit table</h2>\n");
    if c.exit_table.is_empty() {
        h.push_str(
            "<p class=\"nm\">No per-port exits recorded in this run (see Not measured).</p>\n",
        );
    } else {
        h.push_str("<table><tr><th>port</th><th>count</th><th>min ns</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th><th>raw p50</th><th>raw p99</th></tr>\n");
        for x in &c.exit_table {
            h.push_str(&format!(
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>\n",
                e(&x.port), x.count, n(x.min), n(x.p50), n(x.p90), n(x.p99), n(x.p999), n(x.max), x.raw_p50.map_or("–".to_owned(), n), x.raw_p99.map_or("–".to_owned(), n)
            ));
        }
        h.push_str("</table>\n");
    }
    h.push_str(&format!(
        "<h2 id=\"comparison\">Comparison with baseline</h2>\n<p>{}</p>\n",
        e(&c.comparison_summary)
    ));
    if let Some(rows) = &c.comparison {
        h.push_str("<table><tr><th>verdict</th><th>metric</th><th>baseline</th><th>current</th><th>ratio</th><th>p</th></tr>\n");
        for r in rows {
            let class = if r.verdict == "REGRESSION" {
                "REGRESSION"
            } else {
                ""
            };
            h.push_str(&format!(
                "<tr><td class=\"{class}\">{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>\n",
                e(&r.verdict), e(&r.key), e(&r.baseline), e(&r.current), e(&r.ratio), e(&r.p)
            ));
        }
        h.push_str("</table>\n");
    }
    h.push_str("<h2 id=\"not-measured\">Not measured</h2>\n");
    if c.not_measured.is_empty() {
        h.push_str("<p>Everything in the plan was measured.</p>\n");
    } else {
        h.push_str("<ul>\n");
        for nm in &c.not_measured {
            h.push_str(&format!(
                "<li><code>{}</code>: {}</li>\n",
                e(&nm.name),
                e(&nm.reason)
            ));
        }
        h.push_str("</ul>\n");
    }
    h.push_str("<h2 id=\"method\">Method</h2>\n<ul>\n");
    for m in &c.method {
        h.push_str(&format!("<li>{}</li>\n", e(m)));
    }
    h.push_str("</ul>\n<h2 id=\"metrics\">All metrics</h2>\n<table><tr><th>metric</th><th>unit</th><th>value</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th><th>n</th><th>counters</th><th>note</th></tr>\n");
    for m in &c.metrics {
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td></tr>\n",
            e(&m.key), e(&m.unit), n(m.value), n(m.p50), n(m.p90), n(m.p99), n(m.p999), n(m.max), m.count, e(&m.counters), e(&m.note)
        ));
    }
    h.push_str("</table>\n</body></html>\n");
    h
}

/// The report for `results`, compared with `baseline` when given: a pure
/// function of its inputs.
pub fn report(results: &Results, baseline: Option<&Results>) -> String {
    render(&Context::build(results, baseline))
}
