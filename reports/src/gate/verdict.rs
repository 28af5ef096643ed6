//! What the gate concludes: a verdict per comparison ([`Verdict`],
//! [`Finding`]), the whole comparison ([`GateReport`]) and its outcome, and
//! how confirmation runs clear alarms.

use crate::names::MetricName;

/// What the gate concluded about one comparison.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// No change beyond noise.
    Same,
    /// Worse beyond noise: fails the gate.
    Regression,
    /// Better beyond noise.
    Improvement,
    /// An exact count moved by less than its tolerance: reported, passes.
    Changed,
    /// A timing alarm that did not reproduce in a confirmation run while
    /// its operation's instruction count stayed the same: code layout, not
    /// code.
    LayoutNoise,
    /// A timing alarm that did not reproduce in a confirmation run.
    NotReproduced,
    /// Shown, not judged (why).
    Info(String),
    /// In the baseline, not in the results.
    Missing,
    /// Measured by one side of an A/B run only (which): listed, not judged.
    OneSide(String),
}

impl Verdict {
    /// The short word for tables and JSON.
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Same => "ok",
            Verdict::Regression => "regression",
            Verdict::Improvement => "improvement",
            Verdict::Changed => "changed",
            Verdict::LayoutNoise => "layout noise",
            Verdict::NotReproduced => "not reproduced",
            Verdict::Info(_) => "info",
            Verdict::Missing => "missing",
            Verdict::OneSide(_) => "one side only",
        }
    }

    /// The reason attached to an informational or one-sided verdict.
    pub fn why(&self) -> Option<&str> {
        match self {
            Verdict::Info(w) | Verdict::OneSide(w) => Some(w),
            _ => None,
        }
    }

    /// Whether the row belongs in the short list above the full table
    /// (everything but `ok` and plain information).
    pub fn notable(&self) -> bool {
        !matches!(self, Verdict::Same | Verdict::Info(_))
    }
}

/// One line of the gate's summary.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    /// Metric key (name and parameters) or invariant name.
    pub key: String,
    /// Baseline (or side A) value: median normalized ratio for timings,
    /// exact value for deterministic measures, limit for invariants.
    pub baseline: Option<f64>,
    /// Current (or side B) value, same scale.
    pub current: Option<f64>,
    /// `current / baseline`.
    pub ratio: Option<f64>,
    /// One-sided p-value when a test was made.
    pub p: Option<f64>,
    /// The relative change that had to be exceeded (timings).
    pub threshold: Option<f64>,
    /// The conclusion.
    pub verdict: Verdict,
}

impl Finding {
    /// The metric name of the key (its first word).
    pub fn metric(&self) -> &str {
        self.key.split_whitespace().next().unwrap_or("")
    }
}

/// The final verdict of a gate run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing regressed.
    Pass,
    /// Alarms were raised and none reproduced in confirmation runs.
    PassAfterConfirmation,
    /// A regression (exit 1).
    Fail,
    /// The hosts differ: counts judged and clean, timings not judged (exit 3).
    HostMismatch,
}

impl Outcome {
    /// The words the Markdown and JSON use.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::PassAfterConfirmation => "pass after confirmation",
            Outcome::Fail => "FAIL",
            Outcome::HostMismatch => "timings not judged: host mismatch",
        }
    }

    /// The process exit status: 0 pass, 1 regression, 3 host mismatch.
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Pass | Outcome::PassAfterConfirmation => 0,
            Outcome::Fail => 1,
            Outcome::HostMismatch => 3,
        }
    }
}

/// What a gate run compared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Results against a committed baseline ([`compare`]).
    #[default]
    Baseline,
    /// Two revisions measured interleaved in one session ([`compare_ab`]).
    Ab,
}

impl Mode {
    /// The word the JSON uses: `baseline` or `a/b`.
    pub fn label(self) -> &'static str {
        match self {
            Mode::Baseline => "baseline",
            Mode::Ab => "a/b",
        }
    }

    /// The names of the two sides in tables.
    pub(super) fn sides(self) -> (&'static str, &'static str) {
        match self {
            Mode::Baseline => ("baseline", "current"),
            Mode::Ab => ("A", "B"),
        }
    }
}

/// The whole comparison.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GateReport {
    /// Against a committed baseline, or two revisions side by side.
    pub mode: Mode,
    /// Metric comparisons and invariant checks, in results order.
    pub findings: Vec<Finding>,
    /// Thresholds used, for the summary.
    pub alpha: f64,
    /// Minimum effect used.
    pub min_effect: f64,
    /// Noise factor used.
    pub noise_factor: f64,
    /// Headline prefix used.
    pub headline: &'static str,
    /// Headline minimum effect used.
    pub headline_min_effect: f64,
    /// Whether a baseline metric missing from the results fails the gate.
    pub missing_fails: bool,
    /// How the two hosts differ (empty: same host, or A/B on one host).
    pub host_mismatch: Vec<String>,
    /// Whether timings are judged despite a host mismatch.
    pub cross_host: bool,
    /// Whether timings were left out on purpose (`--counts-only`): a host
    /// mismatch then changes nothing that was judged.
    pub counts_only: bool,
    /// Remarks printed once under the verdict (e.g. valgrind missing).
    pub notes: Vec<String>,
    /// Confirmation runs made (0: none).
    pub confirmations: usize,
}

impl GateReport {
    /// Whether any finding is a regression, or (unless allowed) a baseline
    /// metric the results no longer have: a metric that stopped being
    /// measured can hide a regression (a suite that skips a point because
    /// its correctness check failed, say).
    pub fn failed(&self) -> bool {
        self.findings.iter().any(|f| {
            f.verdict == Verdict::Regression
                || (self.missing_fails && f.verdict == Verdict::Missing)
        })
    }

    /// Number of regressions.
    pub fn regressions(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.verdict == Verdict::Regression)
            .count()
    }

    /// The final verdict.
    pub fn outcome(&self) -> Outcome {
        if self.failed() {
            Outcome::Fail
        } else if !self.host_mismatch.is_empty() && !self.cross_host && !self.counts_only {
            Outcome::HostMismatch
        } else if self
            .findings
            .iter()
            .any(|f| matches!(f.verdict, Verdict::LayoutNoise | Verdict::NotReproduced))
        {
            Outcome::PassAfterConfirmation
        } else {
            Outcome::Pass
        }
    }
}

impl GateReport {
    /// The instruction-count metric names and key prefix that count the
    /// operation a timing metric times: `accountant.X` → `accountant.instructions
    /// op=X`, the port check → `accountant.port_check_instructions`.
    fn count_prefix(timing: &str) -> Option<String> {
        let name = timing.split_whitespace().next()?;
        if name == MetricName::PortCheck.as_str() {
            return Some(format!("{} ", MetricName::PortCheckInstructions));
        }
        let op = name.strip_prefix("accountant.")?;
        Some(format!("{} op={op} ", MetricName::Instructions))
    }

    /// Whether the operation a timing metric times has instruction counts in
    /// this comparison and every one of them is unchanged.
    pub fn counts_unchanged(&self, timing_key: &str) -> bool {
        let Some(prefix) = GateReport::count_prefix(timing_key) else {
            return false;
        };
        let counts: Vec<&Finding> = self
            .findings
            .iter()
            .filter(|f| f.key.starts_with(&prefix))
            .collect();
        !counts.is_empty() && counts.iter().all(|f| f.verdict == Verdict::Same)
    }

    /// Marks the regression `key` as cleared by a confirmation run: layout
    /// noise when its operation's instruction counts are unchanged, else
    /// not reproduced.
    pub fn clear(&mut self, key: &str) {
        let layout = self.counts_unchanged(key);
        for f in self.findings.iter_mut().filter(|f| f.key == key) {
            if f.verdict == Verdict::Regression {
                f.verdict = if layout {
                    Verdict::LayoutNoise
                } else {
                    Verdict::NotReproduced
                };
            }
        }
    }

    /// Ends confirmation: clears every timing regression not in `failing`
    /// (the ones that reproduced every time) and notes the outcome; `what`
    /// says what was re-run (`of the alarmed families`, …).
    pub fn settle(&mut self, failing: &[String], what: &str) {
        for key in self.timing_regressions() {
            if !failing.contains(&key) {
                self.clear(&key);
            }
        }
        self.notes.push(format!(
            "Confirmation: {} re-run(s) {what}; {}.",
            self.confirmations,
            if failing.is_empty() {
                "no alarm reproduced".to_owned()
            } else {
                format!("reproduced every time: {}", failing.join(", "))
            }
        ));
    }

    /// Keys of the timing regressions a confirmation run may clear (counts
    /// and invariants are exact: a re-run cannot clear them).
    pub fn timing_regressions(&self) -> Vec<String> {
        self.findings
            .iter()
            .filter(|f| f.verdict == Verdict::Regression && f.p.is_some())
            .map(|f| f.key.clone())
            .collect()
    }
}
