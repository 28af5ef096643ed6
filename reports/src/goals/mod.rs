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
//! **The value and its interval are one statistic** (`estimate`): the
//! value is the statistic of the groups' medians, the interval the same
//! statistic recomputed on resampled data of the same samples — never a
//! median of normalised samples beside a value in ns, nor the interval of a
//! fixed pair beside a worst-over-counts value. Samples taken in interleaved
//! rounds are resampled by rounds, the same rounds for every group
//! ([`stats::bootstrap_rounds`]). Where too few rounds exist for a 95 %
//! interval (the quick run's 3 rounds of `check.scale`), the goal reports
//! none and says so, and its verdict rests on the value.

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

/// The 95 % interval of `stat` over the medians of `groups` (a bootstrap,
/// [`stats::bootstrap_interval`]).
fn interval_of(groups: &[&[f64]], stat: impl Fn(&[f64]) -> Option<f64>) -> Option<[f64; 2]> {
    stats::bootstrap_interval(groups, stat, SEED)
}

/// A metric's own interval (the bench's bootstrap of the median of the
/// same samples its `p50` is the median of), else a bootstrap of the median
/// of its raw samples — in the unit of `p50`, never the normalised ones.
fn own_interval(m: &Metric) -> Option<[f64; 2]> {
    m.ci95
        .or_else(|| interval_of(&[&m.samples], |x| x.first().copied()))
}

/// Rounds the bench's port-check sweep takes its samples in (the bench's
/// `PORT_CHECK_ROUNDS` is this constant): every (implementation, grant count) point gets an
/// equal run of consecutive batches per round, and round `i` of every point
/// is taken in the same pass.
pub const PORT_CHECK_ROUNDS: usize = 12;

/// A statistic of several metrics' medians and its 95 % interval, **from
/// the same samples, computed the same way**: the point is `stat` of the
/// medians of `groups`; the interval resamples their `rounds` rounds,
/// the same rounds in every group ([`stats::bootstrap_rounds`]), and
/// recomputes `stat` of the medians. `None` when a group is empty or `stat`
/// fails on the medians; the interval alone is `None` when there are too
/// few rounds.
fn estimate(
    groups: &[&[f64]],
    rounds: usize,
    stat: impl Fn(&[f64]) -> Option<f64>,
) -> Option<(f64, Option<[f64; 2]>)> {
    let medians: Option<Vec<f64>> = groups.iter().map(|g| stats::median(g)).collect();
    let point = stat(&medians?)?;
    Some((point, stats::bootstrap_rounds(groups, rounds, &stat, SEED)))
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
        swept(imp, grants, p50, 1.0)
    }

    /// The machine's load in each of the sweep's rounds: round `i` of every
    /// point is taken in the same pass, so it scales all points alike.
    const LOAD: [f64; PORT_CHECK_ROUNDS] =
        [1.0, 1.4, 0.9, 2.2, 1.1, 1.0, 1.6, 0.95, 1.3, 1.05, 3.0, 1.2];

    /// A port-check point of the sweep: 5 batches per round of `base` ns
    /// times the round's load (with a small spread within the round), and
    /// normalised samples distorted by a per-point calibration `skew`, as a
    /// reference sized for that point distorts them.
    fn swept(imp: &str, grants: u64, base: f64, skew: f64) -> Metric {
        let mut m = Metric::new(
            MetricName::PortCheck,
            &[(Key::Impl, imp.into()), (Key::Grants, grants.into())],
        );
        m.samples = LOAD
            .iter()
            .flat_map(|l| (0..5).map(move |i| base * l * (1.0 + 0.002 * f64::from(i))))
            .collect();
        m.norm_samples = m.samples.iter().map(|x| x * skew).collect();
        m.p50 = stats::median(&m.samples).unwrap_or(0.0) * 1.01;
        m.value = m.p50;
        m
    }

    /// Evaluates goal `id` on `r`.
    fn measure(id: &str, r: &Results) -> Measured {
        let g = goal(id);
        (g.eval)(r, g.limit).expect("measured")
    }

    /// `m` is exactly `v` with the degenerate interval `[v, v]`.
    fn exact_with_interval(m: &Measured, v: f64) {
        let close = |x: f64| (x - v).abs() < 1e-9 * v.abs().max(1.0);
        let [lo, hi] = m.interval.expect("an interval");
        assert!(close(m.value) && close(lo) && close(hi), "{v}: {m:?}");
    }

    /// The medians of every round of the sweep scale alike, so a statistic
    /// of ratios of points is the same in every replicate of a paired
    /// bootstrap: its interval is exactly the point. An unpaired bootstrap,
    /// or one of the normalised samples, would give another answer.
    #[test]
    fn flatness_is_bootstrapped_whole_over_paired_rounds() {
        let r = results(vec![
            swept("radix", 1, 2.0, 0.90),
            swept("radix", 256, 1.9, 1.00),
            swept("radix", 4096, 2.2, 0.95),
            swept("radix", 65_536, 2.1, 1.0),
        ]);
        // Largest median 2.2 × the load's median over smallest 1.9 ×.
        let m = measure("radix-flat-tight", &r);
        exact_with_interval(&m, 2.2 / 1.9);
        assert!(
            m.detail.contains("(4096 grants)") && m.detail.contains("(256 grants)"),
            "{m:?}"
        );
        let r = results(vec![
            swept("radix-bound", 1, 1.8, 1.1),
            swept("radix-bound", 16, 1.75, 0.9),
            swept("radix-bound", 4096, 2.1, 1.0),
        ]);
        exact_with_interval(&measure("bound-flat", &r), 2.1 / 1.75);
        // A point without samples: not measured rather than a guess.
        let mut bare = swept("radix-bound", 65_536, 1.8, 1.0);
        bare.samples.clear();
        let r = results(vec![swept("radix-bound", 1, 1.8, 1.0), bare]);
        assert_eq!(met("bound-flat", &r), None);
    }

    #[test]
    fn worst_ratios_name_their_grant_count_and_bootstrap_the_worst() {
        let r = results(vec![
            swept("radix-bound", 1, 1.8, 1.0),
            swept("bitmap", 1, 1.8, 0.9),
            swept("radix-bound", 256, 1.9, 1.0),
            swept("bitmap", 256, 1.75, 1.1),
            swept("radix-bound", 4096, 2.0, 1.0),
            swept("bitmap", 4096, 1.95, 1.0),
        ]);
        let m = measure("bound-vs-bitmap", &r);
        exact_with_interval(&m, 1.9 / 1.75);
        assert!(m.detail.starts_with("worst at 256 grants"), "{m:?}");
        let r = results(vec![
            swept("radix-bound-capi", 1, 2.4, 1.0),
            swept("radix-bound", 1, 1.9, 0.9),
            swept("radix-bound-capi", 16, 2.3, 1.0),
            swept("radix-bound", 16, 1.8, 1.0),
        ]);
        let m = measure("capi-port-check", &r);
        exact_with_interval(&m, 2.3 / 1.8);
        assert!(m.detail.starts_with("worst at 16 grants"), "{m:?}");
    }

    #[test]
    fn single_ratios_of_the_sweep_come_from_the_same_rounds() {
        let r = results(vec![
            swept("radix", 65_536, 3.0, 0.9),
            swept("linear", 65_536, 18_000.0, 1.05),
            swept("radix-bound", 4096, 2.0, 0.95),
            swept("btree", 4096, 76.0, 1.0),
        ]);
        exact_with_interval(&measure("radix-vs-linear", &r), 6000.0);
        exact_with_interval(&measure("btree-vs-bound", &r), 38.0);
    }

    /// The whole check's time per round (one sample per round, in ns).
    fn check_rounds(guests: u64, v: &[f64]) -> Metric {
        let mut m = Metric::new(
            MetricName::CheckScale,
            &[
                (Key::Guests, guests.into()),
                (Key::Ranges, 64u64.into()),
                (Key::Devices, 4096u64.into()),
            ],
        );
        m.samples = v.to_vec();
        // Normalised samples in reference units: another scale entirely.
        m.norm_samples = v.iter().map(|x| x / 1.14).collect();
        m.p50 = stats::median(v).unwrap_or(0.0);
        m.value = m.p50;
        m.count = v.len() as u64;
        m
    }

    #[test]
    fn a_whole_check_interval_is_of_its_rounds_in_ns_or_none() {
        let limit = goal("check-scale").limit;
        // Three rounds cannot give a 95 % interval: the median decides.
        let three = [0.9 * limit, 1.2 * limit, 0.95 * limit];
        let r = results(vec![check_rounds(10_000, &three)]);
        let e = evaluate(&r)
            .into_iter()
            .find(|e| e.goal.id == "check-scale")
            .expect("goal");
        let m = e.measured.clone().expect("measured");
        assert_eq!(m.value, 0.95 * limit);
        assert_eq!(m.interval, None);
        assert!(m.detail.contains("verdict rests on the median"), "{m:?}");
        assert_eq!(e.status(), Status::Met);
        // Seven rounds: the whole range (coverage 1 − 2/2⁷ ≈ 98 %), in ns.
        let seven: Vec<f64> = [0.9, 1.2, 0.95, 0.97, 0.92, 1.05, 0.99]
            .iter()
            .map(|x| x * limit)
            .collect();
        let r = results(vec![check_rounds(10_000, &seven)]);
        let e = evaluate(&r)
            .into_iter()
            .find(|e| e.goal.id == "check-scale")
            .expect("goal");
        let m = e.measured.clone().expect("measured");
        assert_eq!(m.value, 0.97 * limit);
        assert_eq!(m.interval, Some([0.9 * limit, 1.2 * limit]));
        assert_eq!(e.status(), Status::Inconclusive);
    }

    #[test]
    fn check_linearity_pairs_its_rounds() {
        // Each round's load hits both sizes; the per-guest ratio is 1.1.
        let load = [1.0, 1.3, 0.9, 1.7, 1.1, 1.0, 1.2];
        let small: Vec<f64> = load.iter().map(|l| 2.0e8 * l).collect();
        let big: Vec<f64> = small.iter().map(|x| x * 4.0 * 1.1).collect();
        let r = results(vec![
            check_rounds(2_500, &small),
            check_rounds(10_000, &big),
        ]);
        exact_with_interval(&measure("check-linear", &r), 1.1);
        let r = results(vec![
            check_rounds(2_500, &small[..3]),
            check_rounds(10_000, &big[..3]),
        ]);
        let m = measure("check-linear", &r);
        assert!(
            (m.value - 1.1).abs() < 1e-9 && m.interval.is_none(),
            "{m:?}"
        );
    }

    fn tracepoint(state: &str, v: &[f64]) -> Metric {
        let mut m = Metric::new(
            MetricName::TracepointOverhead,
            &[(Key::State, state.into())],
        );
        m.samples = v.to_vec();
        m.norm_samples = v.iter().map(|x| x / 1.1).collect();
        m.p50 = stats::median(v).unwrap_or(0.0) + 0.01;
        m.value = m.p50;
        m
    }

    #[test]
    fn tracepoint_costs_are_medians_of_their_paired_samples() {
        // Sample i of every state is timed back to back: a disabled
        // tracepoint 0.12 ns over the load in every sample.
        let base: Vec<f64> = (0..20).map(|i| 0.44 + 0.01 * f64::from(i % 7)).collect();
        let off: Vec<f64> = base.iter().map(|x| x + 0.12).collect();
        let on: Vec<f64> = (0..20).map(|i| 14.0 + 0.1 * f64::from(i)).collect();
        let r = results(vec![
            tracepoint("baseline", &base),
            tracepoint("disabled", &off),
            tracepoint("enabled", &on),
        ]);
        exact_with_interval(&measure("tracepoint-disabled", &r), 0.12);
        // The enabled one: the median of its samples (not the stored p50),
        // inside an interval no wider than the samples' range.
        let m = measure("tracepoint-enabled", &r);
        assert!((m.value - 14.95).abs() < 1e-9, "{m:?}");
        let [lo, hi] = m.interval.expect("interval");
        assert!(
            14.0 <= lo && lo < m.value && m.value < hi && hi <= 15.9,
            "{m:?}"
        );
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
