//! The goals every run is held to: one typed definition for the report's
//! summary and the gate.
//!
//! Two kinds, kept apart:
//!
//! * a [`Kind::Target`] is reported as met or missed and never fails CI — an
//!   ambition, or a property of this host more than of the code (a ratio to
//!   a KVM floor);
//! * a [`Kind::Invariant`] is gated: a break fails CI. Only properties that
//!   hold within one run on any machine are invariants (a fixed instruction
//!   count whatever the grants, an allocation count).
//!
//! A new, ambitious target stays a target until the baseline meets it.
//! Every goal is computed from the results by its `eval` function against a
//! numeric limit; nothing here is a constant "met".
//!
//! **Verdicts from intervals** ([`Evaluation::status`]): a target measured
//! from samples carries the 95 % interval of its value
//! ([`Measured::interval`]: the metric's own bootstrap interval, or a
//! bootstrap over the samples of every metric it is computed from, with
//! guest-timed round trips resampled by rounds — [`ROUNDS`] consecutive
//! blocks — not by exits). It is *met* when the whole interval lies within
//! the limit, *missed* when the whole interval lies beyond it and
//! *inconclusive* when the interval straddles it: one median on the right
//! side of the limit is not evidence (a quick run once gave `pio-vs-tracked`
//! 1.43, the next two 0.97 and 1.04). A value with no spread (an exact count,
//! one wall-clock time) is judged as it is. Invariants stay exact: the gate
//! judges them on their value.

//!
//! Files: this one holds the types, the sample and interval helpers and
//! [`evaluate`]; `table.rs` the goals themselves ([`GOALS`], with the
//! instruction budgets' `budget!` block); `evaluators.rs` each goal's `eval`;
//! `capi.rs` the C API's two evaluators.

use crate::names::MetricName;
use crate::schema::{Metric, Results};
use crate::stats;

mod capi;
mod evaluators;
mod table;

pub use table::GOALS;

/// Whether a goal gates CI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Reported as met or missed; never fails CI.
    Target,
    /// Gated: a break fails CI.
    Invariant,
}

/// Which way a measured value must lie from the limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    /// `measured <= limit`.
    AtMost,
    /// `measured < limit`.
    Below,
    /// `measured >= limit`.
    AtLeast,
}

impl Bound {
    /// Whether `measured` satisfies the bound.
    pub fn holds(self, measured: f64, limit: f64) -> bool {
        match self {
            Bound::AtMost => measured <= limit,
            Bound::Below => measured < limit,
            Bound::AtLeast => measured >= limit,
        }
    }

    /// `≤`, `<`, `≥`.
    pub fn symbol(self) -> &'static str {
        match self {
            Bound::AtMost => "≤",
            Bound::Below => "<",
            Bound::AtLeast => "≥",
        }
    }
}

/// One goal.
#[derive(Clone, Copy, Debug)]
pub struct Goal {
    /// Stable identifier (`accounting-cost`, …).
    pub id: &'static str,
    /// Target or invariant.
    pub kind: Kind,
    /// The metric it is computed from.
    pub metric: MetricName,
    /// What is held to the limit, in words.
    pub what: &'static str,
    /// Why it matters, or where the limit comes from.
    pub why: &'static str,
    /// The direction.
    pub bound: Bound,
    /// The limit, in the unit of [`Evaluation::measured`].
    pub limit: f64,
    /// The unit of the measured value (`ns`, `ratio`, `×`, `allocations`, …).
    pub unit: &'static str,
    /// Computes the measured value and how it was obtained, or `None` when
    /// the results lack what it needs.
    pub eval: fn(&Results, f64) -> Option<Measured>,
}

/// What `eval` found.
#[derive(Clone, Debug, PartialEq)]
pub struct Measured {
    /// The value held to the limit.
    pub value: f64,
    /// The limit it was held to (usually [`Goal::limit`]; for per-size
    /// limits such as pages / 64, the computed one).
    pub limit: f64,
    /// How it was obtained, for people (`61.7 ns vs 3.1 ns at 65,536 grants`).
    pub detail: String,
    /// The 95 % interval of `value`, where it comes from samples (`None`:
    /// exact, or a single observation).
    pub interval: Option<[f64; 2]>,
}

/// A goal's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Within the limit (a target: its whole interval).
    Met,
    /// Beyond the limit (a target: its whole interval); for an invariant,
    /// broken.
    Missed,
    /// A target whose interval straddles the limit.
    Inconclusive,
    /// The results lack what the goal needs.
    NotMeasured,
}

/// Consecutive blocks ("rounds") a guest-timed series of port exits is cut
/// into for its interval: neighbouring exits of one guest loop share
/// disturbances, so the bootstrap resamples rounds.
pub const ROUNDS: usize = 20;

/// Bootstrap seed: the same results give the same intervals (the report is
/// a pure function of them).
const SEED: u64 = 0x0006_0a15;

/// A goal with its evaluation.
#[derive(Clone, Debug)]
pub struct Evaluation {
    /// The goal.
    pub goal: Goal,
    /// What this run measured (`None`: not measured).
    pub measured: Option<Measured>,
}

impl Evaluation {
    /// `Some(true)` met, `Some(false)` missed/broken, `None` not measured:
    /// the value alone against the limit (how the gate judges invariants).
    pub fn met(&self) -> Option<bool> {
        self.measured
            .as_ref()
            .map(|m| self.goal.bound.holds(m.value, m.limit))
    }

    /// The verdict (module docs): a target from its interval where it has
    /// one, an invariant (and a value without spread) from the value.
    pub fn status(&self) -> Status {
        let Some(m) = &self.measured else {
            return Status::NotMeasured;
        };
        let holds = |v: f64| self.goal.bound.holds(v, m.limit);
        match (self.goal.kind, m.interval) {
            (Kind::Target, Some([lo, hi])) => match (holds(lo), holds(hi)) {
                (true, true) => Status::Met,
                (false, false) => Status::Missed,
                _ => Status::Inconclusive,
            },
            _ if holds(m.value) => Status::Met,
            _ => Status::Missed,
        }
    }

    /// `measured / limit` (how far from the limit; > 1 misses an upper bound).
    pub fn ratio(&self) -> Option<f64> {
        self.measured
            .as_ref()
            .filter(|m| m.limit != 0.0)
            .map(|m| m.value / m.limit)
    }
}

/// The samples a metric's median is judged on: its within-run normalised
/// samples, else its raw ones.
fn judged_samples(m: &Metric) -> &[f64] {
    if m.norm_samples.is_empty() {
        &m.samples
    } else {
        &m.norm_samples
    }
}

/// The 95 % interval of `stat` over the medians of `groups` (a bootstrap,
/// [`stats::bootstrap_interval`]).
fn interval_of(groups: &[&[f64]], stat: impl Fn(&[f64]) -> Option<f64>) -> Option<[f64; 2]> {
    stats::bootstrap_interval(groups, stat, SEED)
}

/// A metric's own interval, else a bootstrap of its samples' median.
fn own_interval(m: &Metric) -> Option<[f64; 2]> {
    m.ci95
        .or_else(|| interval_of(&[judged_samples(m)], |x| x.first().copied()))
}

/// Per-round medians of a guest-timed series ([`ROUNDS`]).
fn rounds_of(m: &Metric) -> Vec<f64> {
    stats::block_medians(&m.samples, ROUNDS)
}

/// The typical service time: the median before coordinated-omission
/// correction when the metric was corrected.
pub fn typical(m: &Metric) -> f64 {
    m.uncorrected.map_or(m.p50, |u| u.p50)
}

pub use crate::format::ns as fmt_ns;

/// The radix check may not grow by more than this from the fewest to the
/// most grants (a fixed number of loads: what growth there is comes from
/// caches, as the leaves spread over more memory; a scan would grow by
/// orders of magnitude). Gated.
pub const RADIX_FLATNESS_LIMIT: f64 = 4.0;

/// Evaluates every goal on `r`.
pub fn evaluate(r: &Results) -> Vec<Evaluation> {
    GOALS
        .iter()
        .map(|g| Evaluation {
            goal: *g,
            measured: (g.eval)(r, g.limit),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::Key;
    use crate::schema::Host;
    use crate::schema::Param;

    fn results(metrics: Vec<Metric>) -> Results {
        Results {
            schema: crate::SCHEMA,
            host: Host::default(),
            run: Default::default(),
            metrics,
            not_measured: vec![],
        }
    }

    fn cost(v: f64) -> Metric {
        let mut m = Metric::new(
            MetricName::AccountingCost,
            &[
                (Key::MmioTrackedPages, 0u64.into()),
                (Key::Load, "none".into()),
            ],
        );
        m.value = v;
        m.p50 = v;
        m.samples = vec![v; 5];
        m
    }

    fn goal(id: &str) -> Goal {
        *GOALS.iter().find(|g| g.id == id).expect("goal exists")
    }

    fn met(id: &str, r: &Results) -> Option<bool> {
        let g = goal(id);
        Evaluation {
            goal: g,
            measured: (g.eval)(r, g.limit),
        }
        .met()
    }

    fn check(imp: &str, grants: u64, p50: f64) -> Metric {
        let mut m = Metric::new(
            MetricName::PortCheck,
            &[(Key::Impl, imp.into()), (Key::Grants, grants.into())],
        );
        m.value = p50;
        m.p50 = p50;
        m
    }

    fn count(op: &str, tracker: &str, units: u64, n: f64) -> Metric {
        Metric::exact(
            MetricName::Instructions,
            &[
                (Key::Op, op.into()),
                (Key::Tracker, tracker.into()),
                (Key::Units, units.into()),
            ],
            n,
        )
    }

    #[test]
    fn the_capi_goals_take_the_worst_pair() {
        let r = results(vec![
            check("radix-bound", 1, 2.0),
            check("radix-bound-capi", 1, 2.8),
            check("radix-bound", 4096, 2.0),
            check("radix-bound-capi", 4096, 3.2),
        ]);
        let g = goal("capi-port-check");
        let m = (g.eval)(&r, g.limit).expect("measured");
        assert!((m.value - 1.6).abs() < 1e-9, "{m:?}");
        assert_eq!(met("capi-port-check", &r), Some(false));
        let r = results(vec![
            count("map", "slab-extent", 1, 1000.0),
            count("map-capi", "slab-extent", 1, 1040.0),
            count("bind", "slab-extent", 1, 500.0),
            count("bind-capi", "slab-extent", 1, 520.0),
            count("map-capi", "slab-page", 1, 9999.0),
        ]);
        let g = goal("capi-map-bind-instructions");
        let m = (g.eval)(&r, g.limit).expect("measured");
        assert!(
            (m.value - 1.04).abs() < 1e-9,
            "unpaired rows are ignored: {m:?}"
        );
        assert_eq!(met("capi-map-bind-instructions", &r), Some(true));
        assert_eq!(met("capi-map-bind-instructions", &results(vec![])), None);
    }

    #[test]
    fn ids_are_unique_and_limits_finite() {
        for (i, a) in GOALS.iter().enumerate() {
            assert!(a.limit.is_finite(), "{}", a.id);
            assert!(GOALS[i + 1..].iter().all(|b| b.id != a.id), "{}", a.id);
        }
    }

    #[test]
    fn the_accounting_cost_goal_follows_the_value() {
        assert_eq!(
            met("accounting-cost", &results(vec![cost(54.0)])),
            Some(false)
        );
        assert_eq!(
            met("accounting-cost", &results(vec![cost(540.0)])),
            Some(false)
        );
        assert_eq!(
            met("accounting-cost", &results(vec![cost(5.4)])),
            Some(true)
        );
        assert_eq!(met("accounting-cost", &results(vec![])), None);
    }

    #[test]
    fn allocation_invariant_scales_with_pages() {
        let alloc = |pages: u64, v: f64| {
            Metric::exact(
                MetricName::TrackingAllocations,
                &[
                    (Key::Tracker, "slab-extent".into()),
                    (Key::Pages, pages.into()),
                ],
                v,
            )
        };
        let r = results(vec![alloc(262_144, 4096.0)]);
        assert_eq!(met("extent-allocations", &r), Some(true));
        let r = results(vec![alloc(262_144, 4097.0)]);
        assert_eq!(met("extent-allocations", &r), Some(false));
        assert_eq!(goal("extent-allocations").kind, Kind::Invariant);
        assert_eq!(goal("accounting-cost").kind, Kind::Target);
    }

    #[test]
    fn budgets_judge_the_plain_one_unit_count() {
        let count = |op: &str, tracker: &str, units: u64, domains: Option<u64>, v: f64| {
            let mut p: Vec<(Key, Param)> = vec![
                (Key::Op, op.into()),
                (Key::Tracker, tracker.into()),
                (Key::Units, units.into()),
            ];
            if let Some(d) = domains {
                p.push((Key::Domains, d.into()));
            }
            Metric::exact(MetricName::Instructions, &p, v)
        };
        let limit = goal("budget-map").limit;
        // Other trackers, sizes and crowds do not count.
        let others = || {
            vec![
                count("map", "slab-page", 1, None, 1e6),
                count("map", "slab-extent", 4096, None, 1e6),
                count("map", "slab-extent", 1, Some(65), 1e6),
            ]
        };
        let mut v = others();
        v.push(count("map", "slab-extent", 1, None, limit));
        assert_eq!(met("budget-map", &results(v)), Some(true));
        let mut v = others();
        v.push(count("map", "slab-extent", 1, None, limit + 1.0));
        assert_eq!(met("budget-map", &results(v)), Some(false));
        assert_eq!(met("budget-map", &results(others())), None);
        assert_eq!(goal("budget-map").kind, Kind::Invariant);
        // The access check's count beside a crowd must equal its count alone.
        let access = |crowd: f64| {
            results(vec![
                count("access", "slab-extent", 1, None, 60.0),
                count("access", "slab-extent", 1, Some(65), crowd),
            ])
        };
        assert_eq!(met("access-crowd", &access(60.0)), Some(true));
        assert_eq!(met("access-crowd", &access(61.0)), Some(false));
        assert_eq!(goal("access-crowd").kind, Kind::Invariant);
    }
}
