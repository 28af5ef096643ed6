//! The regression gate: compare a results file with a baseline.
//!
//! Trustworthy on a noisy shared machine because it never compares absolute
//! times taken at different moments (or on different machines):
//!
//! * **Deterministic measures** (`Metric::deterministic`: tracking bytes,
//!   allocation counts) are compared exactly: any growth beyond
//!   [`GateConfig::exact_tolerance`] is a regression.
//! * **Timings** are compared through their `norm_samples`: each sample is a
//!   batch of operations divided by an interleaved reference workload timed
//!   right after it, so frequency scaling and neighbours' load cancel. A
//!   regression needs both a one-sided Mann-Whitney p below
//!   [`GateConfig::alpha`] *and* a median ratio above 1 +
//!   [`GateConfig::min_effect`] (widened to [`GateConfig::noise_factor`]
//!   times the between-run noise the baseline measured for that metric):
//!   significance alone would flag a 0.5 % wobble given enough samples, and
//!   a shift within what A/A runs of one build show is not a regression.
//! * Timings without normalized samples (hypervisor exits, whose reference
//!   cannot be interleaved) are shown for information and never fail.
//! * **Within-run invariants** ([`invariants`]) are judged on the current
//!   results alone (the radix check stays flat in the grant count, the
//!   default tracker does not make one allocation per page).

use crate::goals;
use crate::schema::{Metric, Results};
use crate::stats;
use std::collections::BTreeMap;

/// Gate thresholds. Defaults: `alpha` 0.01, `min_effect` 0.10 (0.05 for
/// the headline metric `accountant.port_check`; 0.30 for timings above
/// 100 µs), `noise_factor` 3, `max_noise` 0.25, `exact_tolerance` 0.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GateConfig {
    /// Significance level of the one-sided test. Lower: fewer false alarms,
    /// more missed small regressions.
    pub alpha: f64,
    /// Minimum relative growth of the median normalized time that can fail
    /// the gate (0.10 = 10 %). Above the occasional 5–9 % run-to-run drift
    /// that A/A runs of one build showed for single metrics of the full
    /// suite on this shared machine.
    pub min_effect: f64,
    /// Metric-name prefix held to [`GateConfig::headline_min_effect`]
    /// instead: the port check, sampled four times as often as the rest and
    /// drifting under 2 % between A/A runs.
    pub headline: &'static str,
    /// Minimum effect for the headline metric (0.05): below the 10 %
    /// slowdown it must catch, above its run-to-run drift.
    pub headline_min_effect: f64,
    /// Multiple of a baseline metric's measured between-run noise
    /// ([`Metric::noise`]) that a timing must also exceed.
    pub noise_factor: f64,
    /// Largest between-run noise a timing may show in the baseline and still
    /// be judged; noisier ones (operations that fault in fresh memory from
    /// the OS, whose cost on a shared machine wanders by 40–100 % between
    /// runs of one build) are shown as information instead of being gated
    /// with a threshold so wide it means nothing.
    pub max_noise: f64,
    /// Relative growth allowed for deterministic measures (0 = none).
    pub exact_tolerance: f64,
    /// A timing whose baseline median is above this many nanoseconds is
    /// held to [`GateConfig::slow_min_effect`] at least: such operations
    /// (mapping 4,096+ pages with a per-page tracker: megabytes of fresh
    /// records) are dominated by page faults and the memory system, which
    /// the CPU-bound reference workload cannot normalise away; a cold clone
    /// showed them 15–17 % slower than a warm baseline with no code change.
    /// Their byte and allocation counts stay gated exactly.
    pub slow_sample_ns: f64,
    /// Minimum effect for those slow timings (0.30).
    pub slow_min_effect: f64,
    /// Let baseline metrics that the results lack pass (`--allow-missing`,
    /// e.g. on a host without `/dev/kvm`); by default they fail the gate.
    pub allow_missing: bool,
    /// Parameter values that mark a comparison implementation kept in the
    /// bench crate rather than product code (`impl=linear`, the original
    /// access list): shown for information, never gated. Their absolute
    /// speed moves with code layout when unrelated crates change (a 1.78×
    /// shift of the linear scan was seen after a change to `reports` alone);
    /// what matters about them is the within-run radix/linear ratio.
    pub reference_impls: &'static [(&'static str, &'static str)],
}

impl Default for GateConfig {
    fn default() -> GateConfig {
        GateConfig {
            alpha: 0.01,
            min_effect: 0.10,
            headline: "accountant.port_check",
            headline_min_effect: 0.05,
            noise_factor: 3.0,
            max_noise: 0.25,
            exact_tolerance: 0.0,
            slow_sample_ns: 1e5,
            slow_min_effect: 0.30,
            reference_impls: &[("impl", "linear")],
            allow_missing: false,
        }
    }
}

/// What the gate concluded about one comparison.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// No change beyond noise.
    Same,
    /// Worse beyond noise: fails the gate.
    Regression,
    /// Better beyond noise.
    Improvement,
    /// Shown, not judged (why).
    Info(String),
    /// In the baseline, not in the results.
    Missing,
}

/// One line of the gate's summary.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    /// Metric key (name and parameters) or invariant name.
    pub key: String,
    /// Baseline value (median normalized ratio for timings, exact value for
    /// deterministic measures, limit for invariants).
    pub baseline: Option<f64>,
    /// Current value, same scale.
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

/// The whole comparison.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GateReport {
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

    /// A Markdown summary: verdict line, then a table of the findings
    /// (regressions first).
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let count =
            |v: fn(&Verdict) -> bool| self.findings.iter().filter(|f| v(&f.verdict)).count();
        let reg = self.regressions();
        let imp = count(|v| *v == Verdict::Improvement);
        let same = count(|v| *v == Verdict::Same);
        let info = count(|v| matches!(v, Verdict::Info(_)));
        let missing = count(|v| *v == Verdict::Missing);
        out.push_str(&format!(
            "## Benchmark gate: {}\n\n{reg} regression(s), {imp} improvement(s), {same} unchanged, \
             {info} informational, {missing} missing. Timings: one-sided Mann-Whitney on \
             within-run normalized samples, p < {}, minimum effect {:.0} % ({:.0} % for `{}`) \
             or {}× the baseline's between-run noise (column `needs`); deterministic measures \
             compared exactly.\n\n",
            if reg > 0 { "FAIL" } else { "pass" },
            self.alpha,
            self.min_effect * 100.0,
            self.headline_min_effect * 100.0,
            self.headline,
            self.noise_factor
        ));
        out.push_str("| verdict | metric | baseline | current | ratio | needs | p |\n");
        out.push_str("|---|---|---:|---:|---:|---:|---:|\n");
        let rank = |v: &Verdict| match v {
            Verdict::Regression => 0,
            Verdict::Improvement => 1,
            Verdict::Missing => 2,
            Verdict::Same => 3,
            Verdict::Info(_) => 4,
        };
        let mut sorted: Vec<&Finding> = self.findings.iter().collect();
        sorted.sort_by_key(|f| rank(&f.verdict));
        let num = |v: Option<f64>| v.map_or("–".to_owned(), |x| format!("{x:.4}"));
        for f in sorted {
            let verdict = match &f.verdict {
                Verdict::Same => "ok".to_owned(),
                Verdict::Regression => "**REGRESSION**".to_owned(),
                Verdict::Improvement => "improved".to_owned(),
                Verdict::Info(why) => format!("info ({why})"),
                Verdict::Missing => "missing".to_owned(),
            };
            out.push_str(&format!(
                "| {verdict} | `{}` | {} | {} | {} | {} | {} |\n",
                f.key,
                num(f.baseline),
                num(f.current),
                f.ratio.map_or("–".to_owned(), |r| format!("{r:.3}")),
                f.threshold
                    .map_or("–".to_owned(), |t| format!("±{:.0} %", t * 100.0)),
                f.p.map_or("–".to_owned(), |p| format!("{p:.2e}")),
            ));
        }
        out
    }
}

/// Compares one metric with its baseline counterpart.
pub fn compare_metric(base: &Metric, cur: &Metric, cfg: &GateConfig) -> Finding {
    let key = cur.key();
    if base.deterministic && cur.deterministic {
        let ratio = if base.value == 0.0 {
            if cur.value == 0.0 {
                1.0
            } else {
                f64::INFINITY
            }
        } else {
            cur.value / base.value
        };
        let verdict = if ratio > 1.0 + cfg.exact_tolerance {
            Verdict::Regression
        } else if ratio < 1.0 {
            Verdict::Improvement
        } else {
            Verdict::Same
        };
        return Finding {
            key,
            baseline: Some(base.value),
            current: Some(cur.value),
            ratio: Some(ratio),
            p: None,
            threshold: None,
            verdict,
        };
    }
    if cfg
        .reference_impls
        .iter()
        .any(|(k, v)| cur.param(k).and_then(|p| p.as_str()) == Some(*v))
    {
        return info(key, base, cur, "comparison implementation, not gated");
    }
    if let Some(noise) = base.noise.filter(|n| *n > cfg.max_noise) {
        return info(
            key,
            base,
            cur,
            &format!(
                "A/A noise {:.0} % > {:.0} %, not judged",
                noise * 100.0,
                cfg.max_noise * 100.0
            ),
        );
    }
    if base.norm_samples.len() >= 5 && cur.norm_samples.len() >= 5 {
        let (Some(mb), Some(mc)) = (
            stats::median(&base.norm_samples),
            stats::median(&cur.norm_samples),
        ) else {
            return info(key, base, cur, "samples hold NaN");
        };
        let ratio = mc / mb;
        let floor = if cur.name.starts_with(cfg.headline) {
            cfg.headline_min_effect
        } else if base.value > cfg.slow_sample_ns {
            cfg.min_effect.max(cfg.slow_min_effect)
        } else {
            cfg.min_effect
        };
        let effect = floor.max(cfg.noise_factor * base.noise.unwrap_or(0.0));
        let up = stats::mann_whitney_greater(&base.norm_samples, &cur.norm_samples);
        let down = stats::mann_whitney_greater(&cur.norm_samples, &base.norm_samples);
        let (verdict, p) = match (up, down) {
            (Some(u), _) if u.p_greater < cfg.alpha && ratio > 1.0 + effect => {
                (Verdict::Regression, Some(u.p_greater))
            }
            (_, Some(d)) if d.p_greater < cfg.alpha && ratio < 1.0 / (1.0 + effect) => {
                (Verdict::Improvement, Some(d.p_greater))
            }
            (Some(u), _) => (Verdict::Same, Some(u.p_greater)),
            (None, _) => (Verdict::Same, None),
        };
        return Finding {
            key,
            baseline: Some(mb),
            current: Some(mc),
            ratio: ratio.is_finite().then_some(ratio),
            p,
            threshold: Some(effect),
            verdict,
        };
    }
    info(key, base, cur, "absolute time, not judged")
}

fn info(key: String, base: &Metric, cur: &Metric, why: &str) -> Finding {
    Finding {
        key,
        baseline: Some(base.value),
        current: Some(cur.value),
        ratio: (base.value != 0.0).then(|| cur.value / base.value),
        p: None,
        threshold: None,
        verdict: Verdict::Info(why.to_owned()),
    }
}

/// Compares `current` with `baseline`, keeping only metrics whose name starts
/// with `only` when given (the A/A demonstration gates the port check alone),
/// and adds the within-run invariants of `current`.
pub fn compare(
    baseline: &Results,
    current: &Results,
    cfg: &GateConfig,
    only: Option<&str>,
) -> GateReport {
    let selected = |m: &&Metric| only.is_none_or(|p| m.name.starts_with(p));
    let base: BTreeMap<String, &Metric> = baseline
        .metrics
        .iter()
        .filter(selected)
        .map(|m| (m.key(), m))
        .collect();
    let mut findings = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for cur in current.metrics.iter().filter(selected) {
        let key = cur.key();
        if let Some(b) = base.get(&key) {
            findings.push(compare_metric(b, cur, cfg));
            seen.insert(key);
        }
    }
    for (key, b) in &base {
        if !seen.contains(key) {
            findings.push(Finding {
                key: key.clone(),
                baseline: Some(b.value),
                current: None,
                ratio: None,
                p: None,
                threshold: None,
                verdict: Verdict::Missing,
            });
        }
    }
    if only.is_none() {
        findings.extend(invariants(current));
    }
    GateReport {
        findings,
        alpha: cfg.alpha,
        min_effect: cfg.min_effect,
        noise_factor: cfg.noise_factor,
        headline: cfg.headline,
        headline_min_effect: cfg.headline_min_effect,
        missing_fails: !cfg.allow_missing,
    }
}

pub use crate::goals::RADIX_FLATNESS_LIMIT;

/// The invariants of [`crate::goals::GOALS`] (properties that hold within
/// one run, whatever the machine), judged on `r`: a broken one is a
/// regression. Goals whose metrics are absent are not listed.
pub fn invariants(r: &Results) -> Vec<Finding> {
    goals::evaluate(r)
        .into_iter()
        .filter(|e| e.goal.kind == goals::Kind::Invariant)
        .filter_map(|e| {
            let m = e.measured.clone()?;
            Some(Finding {
                key: format!(
                    "invariant {}: {} {} {} ({})",
                    e.goal.id,
                    e.goal.what,
                    e.goal.bound.symbol(),
                    m.limit,
                    m.detail
                ),
                baseline: Some(m.limit),
                current: Some(m.value),
                ratio: e.ratio(),
                p: None,
                threshold: None,
                verdict: if e.met() == Some(true) {
                    Verdict::Same
                } else {
                    Verdict::Regression
                },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Host, RunInfo, SCHEMA};
    use crate::{MetricName, Param};

    fn results(metrics: Vec<Metric>) -> Results {
        Results {
            schema: SCHEMA,
            host: Host::default(),
            run: RunInfo::default(),
            metrics,
            not_measured: vec![],
        }
    }

    fn timing(scale: f64, seed: u64) -> Metric {
        let mut rng = stats::SplitMix64::new(seed);
        let mut m = Metric::new(
            MetricName::PortCheck,
            &[("impl", "radix".into()), ("grants", 16u64.into())],
        );
        m.norm_samples = (0..200)
            .map(|_| scale * (1.0 + (rng.next_u64() % 1000) as f64 / 20_000.0))
            .collect();
        m.value = stats::median(&m.norm_samples).unwrap_or(0.0);
        m.p50 = m.value;
        m
    }

    #[test]
    fn identical_distributions_pass() {
        let b = results(vec![timing(1.0, 1)]);
        let c = results(vec![timing(1.0, 2)]);
        let g = compare(&b, &c, &GateConfig::default(), None);
        assert!(!g.failed(), "{}", g.markdown());
        assert_eq!(g.findings[0].verdict, Verdict::Same);
    }

    #[test]
    fn ten_percent_slowdown_fails() {
        let b = results(vec![timing(1.0, 1)]);
        let c = results(vec![timing(1.10, 2)]);
        let g = compare(&b, &c, &GateConfig::default(), None);
        assert!(g.failed());
        assert_eq!(g.findings[0].verdict, Verdict::Regression);
        assert!(g.markdown().contains("REGRESSION"));
    }

    #[test]
    fn other_metrics_need_the_wider_effect() {
        let rename = |mut m: Metric| {
            m.name = MetricName::Revoke.as_str().into();
            m
        };
        let b = results(vec![rename(timing(1.0, 1))]);
        let c = results(vec![rename(timing(1.07, 2))]);
        assert!(!compare(&b, &c, &GateConfig::default(), None).failed());
        let c = results(vec![rename(timing(1.15, 2))]);
        assert!(compare(&b, &c, &GateConfig::default(), None).failed());
    }

    #[test]
    fn small_significant_shift_is_below_min_effect() {
        let b = results(vec![timing(1.0, 1)]);
        let c = results(vec![timing(1.02, 2)]);
        let g = compare(&b, &c, &GateConfig::default(), None);
        assert!(!g.failed(), "{}", g.markdown());
    }

    #[test]
    fn baseline_noise_widens_the_threshold() {
        let mut base = timing(1.0, 1);
        base.noise = Some(0.1);
        let b = results(vec![base]);
        let c = results(vec![timing(1.25, 2)]);
        assert!(!compare(&b, &c, &GateConfig::default(), None).failed());
        let c = results(vec![timing(1.5, 2)]);
        assert!(compare(&b, &c, &GateConfig::default(), None).failed());
        let mut wild = timing(1.0, 1);
        wild.noise = Some(0.6);
        let b = results(vec![wild]);
        let c = results(vec![timing(3.0, 2)]);
        let g = compare(&b, &c, &GateConfig::default(), None);
        assert!(!g.failed());
        assert!(matches!(g.findings[0].verdict, Verdict::Info(_)));
    }

    #[test]
    fn instruction_count_must_not_grow_with_grants() {
        let count = |grants: u64, v: f64| {
            Metric::exact(
                MetricName::PortCheckInstructions,
                &[("impl", "radix".into()), ("grants", grants.into())],
                v,
            )
        };
        let flat = results(vec![count(1, 56.0), count(65_536, 56.0)]);
        assert!(invariants(&flat).iter().all(|f| f.verdict == Verdict::Same));
        let grows = results(vec![count(1, 56.0), count(65_536, 70.0)]);
        assert!(invariants(&grows)
            .iter()
            .any(|f| f.verdict == Verdict::Regression));
    }

    #[test]
    fn comparison_implementations_are_not_gated() {
        let linear = |scale: f64, seed: u64| {
            let mut m = timing(scale, seed);
            m.params.insert("impl".into(), "linear".into());
            m
        };
        let g = compare(
            &results(vec![linear(1.0, 1)]),
            &results(vec![linear(1.8, 2)]),
            &GateConfig::default(),
            None,
        );
        assert!(!g.failed());
        assert!(matches!(g.findings[0].verdict, Verdict::Info(_)));
    }

    #[test]
    fn millisecond_timings_need_a_wider_effect() {
        let slow = |scale: f64, seed: u64| {
            let mut m = timing(scale, seed);
            m.name = MetricName::Unmap.as_str().into();
            m.value = 2e5 * scale; // ns: a 200 µs operation
            m
        };
        let b = results(vec![slow(1.0, 1)]);
        assert!(!compare(
            &b,
            &results(vec![slow(1.2, 2)]),
            &GateConfig::default(),
            None
        )
        .failed());
        assert!(compare(
            &b,
            &results(vec![slow(1.4, 2)]),
            &GateConfig::default(),
            None
        )
        .failed());
        let fast = |scale: f64, seed: u64| {
            let mut m = timing(scale, seed);
            m.name = MetricName::Unmap.as_str().into();
            m
        };
        let b = results(vec![fast(1.0, 1)]);
        assert!(compare(
            &b,
            &results(vec![fast(1.2, 2)]),
            &GateConfig::default(),
            None
        )
        .failed());
    }

    #[test]
    fn speedup_is_improvement() {
        let b = results(vec![timing(1.0, 1)]);
        let c = results(vec![timing(0.8, 2)]);
        let g = compare(&b, &c, &GateConfig::default(), None);
        assert_eq!(g.findings[0].verdict, Verdict::Improvement);
        assert!(!g.failed());
    }

    #[test]
    fn deterministic_growth_fails_exactly() {
        let p = [
            ("tracker", Param::from("slab-extent")),
            ("pages", 1u64.into()),
        ];
        let b = results(vec![Metric::exact(MetricName::TrackingBytes, &p, 4096.0)]);
        let same = results(vec![Metric::exact(MetricName::TrackingBytes, &p, 4096.0)]);
        let more = results(vec![Metric::exact(MetricName::TrackingBytes, &p, 8192.0)]);
        assert!(!compare(&b, &same, &GateConfig::default(), None).failed());
        assert!(compare(&b, &more, &GateConfig::default(), None).failed());
    }

    #[test]
    fn missing_fails_unless_allowed_and_absolute_does_not() {
        let mut abs = Metric::new(MetricName::PioExit, &[("accounting", "on".into())]);
        abs.value = 100.0;
        let mut abs2 = abs.clone();
        abs2.value = 500.0;
        let b = results(vec![abs, timing(1.0, 1)]);
        let c = results(vec![abs2]);
        let g = compare(&b, &c, &GateConfig::default(), None);
        assert!(g.failed(), "a metric that vanished fails: {}", g.markdown());
        let allow = GateConfig {
            allow_missing: true,
            ..GateConfig::default()
        };
        let g = compare(&b, &c, &allow, None);
        assert!(!g.failed(), "{}", g.markdown());
        assert!(g.findings.iter().any(|f| f.verdict == Verdict::Missing));
        assert!(g
            .findings
            .iter()
            .any(|f| matches!(f.verdict, Verdict::Info(_))));
    }

    #[test]
    fn only_filters_metrics() {
        let p = [
            ("tracker", Param::from("slab-extent")),
            ("pages", 1u64.into()),
        ];
        let b = results(vec![Metric::exact(MetricName::TrackingBytes, &p, 1.0)]);
        let c = results(vec![Metric::exact(MetricName::TrackingBytes, &p, 2.0)]);
        let g = compare(
            &b,
            &c,
            &GateConfig::default(),
            Some("accountant.port_check"),
        );
        assert!(g.findings.is_empty());
    }

    #[test]
    fn radix_flatness_invariant() {
        let mk = |grants: u64, p50: f64| {
            let mut m = Metric::new(
                MetricName::PortCheck,
                &[("impl", "radix".into()), ("grants", grants.into())],
            );
            m.p50 = p50;
            m
        };
        let flat = results(vec![mk(1, 5.0), mk(65_536, 7.0)]);
        assert!(invariants(&flat).iter().all(|f| f.verdict == Verdict::Same));
        let steep = results(vec![mk(1, 5.0), mk(65_536, 500.0)]);
        assert!(invariants(&steep)
            .iter()
            .any(|f| f.verdict == Verdict::Regression));
    }
}
