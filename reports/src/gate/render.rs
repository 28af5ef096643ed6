//! The gate's verdict as Markdown (for a CI page) and JSON (README, gate
//! section).

use super::{Finding, GateReport, Mode, Verdict};
use crate::format;
use serde::Serialize;

/// A collapsed Markdown section: `summary` always shown, `body` (Markdown)
/// on demand (template `templates/details.md`; nothing escaped: both are
/// Markdown the caller wrote).
#[derive(askama::Template)]
#[template(path = "details.md", escape = "none")]
pub struct Details<'a> {
    /// The line shown while collapsed.
    pub summary: &'a str,
    /// What opens.
    pub body: &'a str,
}

impl GateReport {
    /// A Markdown summary: the final verdict first, then only the rows that
    /// are not "ok", then the full table in a collapsed `<details>`.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let count =
            |v: fn(&Verdict) -> bool| self.findings.iter().filter(|f| v(&f.verdict)).count();
        let reg = self.regressions();
        let imp = count(|v| *v == Verdict::Improvement);
        let same = count(|v| *v == Verdict::Same);
        let info = count(|v| matches!(v, Verdict::Info(_)));
        let missing = count(|v| matches!(v, Verdict::Missing | Verdict::OneSide(_)));
        let noise = count(|v| matches!(v, Verdict::LayoutNoise | Verdict::NotReproduced));
        let changed = count(|v| *v == Verdict::Changed);
        let what = if self.mode == Mode::Ab {
            "A/B"
        } else {
            "Benchmark gate"
        };
        out.push_str(&format!("## {what}: {}\n\n", self.outcome().label()));
        if !self.host_mismatch.is_empty() {
            out.push_str(&format!(
                "**Host mismatch** ({}): {}\n\n",
                self.host_mismatch.join("; "),
                if self.counts_only {
                    "timings not judged in any case (--counts-only)."
                } else if self.cross_host {
                    "timings judged anyway (--cross-host)."
                } else {
                    "only counts and invariants judged; timings not judged (exit 3; \
                     --cross-host to judge them anyway)."
                }
            ));
        }
        for n in &self.notes {
            out.push_str(&format!("{n}\n\n"));
        }
        out.push_str(&format!(
            "{reg} regression(s), {imp} improvement(s), {noise} alarm(s) cleared by \
             confirmation, {changed} count(s) changed within tolerance, {same} unchanged, \
             {info} informational, {missing} missing or one-sided. Timings: {} on within-run \
             samples, p < {}, minimum effect {:.0} % ({:.0} % for `{}`, per family for \
             `hv.*` ratios) or {}× the baseline's robust between-run noise (column `needs`); \
             counts compared exactly.\n\n",
            if self.mode == Mode::Ab {
                "permutation test of the median ratio within rounds"
            } else {
                "one-sided Mann-Whitney"
            },
            self.alpha,
            self.min_effect * 100.0,
            self.headline_min_effect * 100.0,
            self.headline,
            self.noise_factor
        ));
        let notable: Vec<&Finding> = self
            .findings
            .iter()
            .filter(|f| f.verdict.notable())
            .collect();
        if notable.is_empty() {
            out.push_str("Every judged metric is ok.\n\n");
        } else {
            out.push_str(&table(&notable, self.mode));
            out.push('\n');
        }
        let all: Vec<&Finding> = self.findings.iter().collect();
        let details = Details {
            summary: &format!("All {} findings", all.len()),
            body: &table(&all, self.mode),
        };
        out.push_str(&format!("{details}\n"));
        // Repeated last: a CI log is read from its tail, and the table above
        // can be longer than what the log keeps.
        out.push_str(&format!("\n**{what}: {}**", self.outcome().label()));
        let failing: Vec<String> = self
            .findings
            .iter()
            .filter(|f| matches!(f.verdict, Verdict::Regression | Verdict::Missing))
            .map(|f| match f.verdict {
                Verdict::Regression => {
                    format!("`{}` (regression ×{})", f.key, format::ratio(f.ratio))
                }
                _ => format!("`{}` ({})", f.key, f.verdict.label()),
            })
            .collect();
        if failing.is_empty() {
            out.push('\n');
        } else {
            out.push_str(&format!(" — {}\n", failing.join("; ")));
        }
        out
    }

    /// The findings as JSON (schema in the README's gate section).
    pub fn json(&self) -> String {
        #[derive(Serialize)]
        struct Row<'a> {
            key: &'a str,
            metric: &'a str,
            verdict: &'static str,
            why: Option<&'a str>,
            baseline: Option<f64>,
            current: Option<f64>,
            ratio: Option<f64>,
            p: Option<f64>,
            threshold: Option<f64>,
        }
        #[derive(Serialize)]
        struct Doc<'a> {
            schema: u32,
            mode: &'static str,
            verdict: &'static str,
            exit_code: u8,
            alpha: f64,
            host_mismatch: &'a [String],
            notes: &'a [String],
            confirmations: usize,
            findings: Vec<Row<'a>>,
        }
        let finite = |v: Option<f64>| v.filter(|x| x.is_finite());
        let doc = Doc {
            schema: 1,
            mode: self.mode.label(),
            verdict: self.outcome().label(),
            exit_code: self.outcome().exit_code(),
            alpha: self.alpha,
            host_mismatch: &self.host_mismatch,
            notes: &self.notes,
            confirmations: self.confirmations,
            findings: self
                .findings
                .iter()
                .map(|f| Row {
                    key: &f.key,
                    metric: f.metric(),
                    verdict: f.verdict.label(),
                    why: f.verdict.why(),
                    baseline: finite(f.baseline),
                    current: finite(f.current),
                    ratio: finite(f.ratio),
                    p: finite(f.p),
                    threshold: finite(f.threshold),
                })
                .collect(),
        };
        serde_json::to_string_pretty(&doc).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }
}

/// A Markdown table of `rows`, regressions first.
fn table(rows: &[&Finding], mode: Mode) -> String {
    let (a, b) = mode.sides();
    let mut out = format!("| verdict | metric | {a} | {b} | ratio | needs | p |\n");
    out.push_str("|---|---|---:|---:|---:|---:|---:|\n");
    let rank = |v: &Verdict| match v {
        Verdict::Regression => 0,
        Verdict::Missing => 1,
        Verdict::LayoutNoise | Verdict::NotReproduced => 2,
        Verdict::Improvement => 3,
        Verdict::Changed => 4,
        Verdict::OneSide(_) => 5,
        Verdict::Same => 6,
        Verdict::Info(_) => 7,
    };
    let mut sorted = rows.to_vec();
    sorted.sort_by_key(|f| rank(&f.verdict));
    for f in sorted {
        let verdict = match &f.verdict {
            Verdict::Regression => "**REGRESSION**".to_owned(),
            Verdict::Info(why) | Verdict::OneSide(why) => format!("{} ({why})", f.verdict.label()),
            v => v.label().to_owned(),
        };
        out.push_str(&format!(
            "| {verdict} | `{}` | {} | {} | {} | {} | {} |\n",
            f.key,
            format::judged(f.baseline),
            format::judged(f.current),
            format::ratio(f.ratio),
            format::effect(f.threshold),
            format::p_sci(f.p),
        ));
    }
    out
}
