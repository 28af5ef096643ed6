//! The page: the context laid out by the template `templates/report.html`,
//! with the styles and the cells as shown.

use super::{Chart, Context, ExitRow, LoadRow, MetricRow};
use crate::format::n;
use crate::schema::Results;
use askama::Template;

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
pub(super) struct Page<'c> {
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
