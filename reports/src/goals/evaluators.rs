//! The evaluators: each goal's `eval`, computing its measured value (and
//! the 95 % interval, where it has samples) from the results.

use super::fmt_ns;
use super::{
    estimate, interval_of, own_interval, rounds_of, typical, Measured, PORT_CHECK_ROUNDS,
    RADIX_FLATNESS_LIMIT,
};
use crate::names::{Key, MetricName};
use crate::schema::{Metric, Param, Results};
use crate::stats;

// The port-check goals compare points of one sweep taken in interleaved
// rounds ([`PORT_CHECK_ROUNDS`]); they are computed from the raw batch
// times (ns), which share the machine's state round by round, not from the
// normalised samples: each point's reference workload is calibrated for
// that point, and its per-unit time differs between points by up to 6 %
// (radix at 1 vs 4,096 grants in one quick run: raw ratio 1.059, normalised
// 1.117), which would move a ratio of two points by as much. The point
// estimate and its interval are both computed by [`estimate`] from the
// same samples.

pub(super) fn radix_points<'a>(r: &'a Results, imp: &str) -> Vec<&'a Metric> {
    let mut v: Vec<&Metric> = r
        .named(MetricName::PortCheck)
        .filter(|m| m.text(Key::Impl) == Some(imp))
        .collect();
    v.sort_by_key(|m| m.int(Key::Grants).unwrap_or(0));
    v
}

/// The radix check's p50 at the most grants over at the fewest.
pub(super) fn radix_flatness(r: &Results, _: f64) -> Option<Measured> {
    let v = radix_points(r, "radix");
    let (lo, hi) = (v.first()?, v.last()?);
    (lo.key() != hi.key() && lo.p50 > 0.0).then(|| Measured {
        value: hi.p50 / lo.p50,
        limit: RADIX_FLATNESS_LIMIT,
        detail: format!(
            "{} at {} grants vs {} at {}",
            fmt_ns(hi.p50),
            hi.int(Key::Grants).unwrap_or(0),
            fmt_ns(lo.p50),
            lo.int(Key::Grants).unwrap_or(0)
        ),
        interval: None,
    })
}

/// `imp`'s largest median over its smallest, over every grant count: the
/// point from the medians of the raw batch times, the interval from
/// resampling the sweep's rounds and recomputing the largest over the
/// smallest median (which grant counts they are may change between
/// replicates: the statistic is the flatness, not a fixed pair).
pub(super) fn flat(r: &Results, imp: &str, limit: f64) -> Option<Measured> {
    let v = radix_points(r, imp);
    if v.len() < 2 {
        return None;
    }
    let groups: Vec<&[f64]> = v.iter().map(|m| m.samples.as_slice()).collect();
    let medians: Vec<f64> = groups
        .iter()
        .map(|g| stats::median(g))
        .collect::<Option<_>>()?;
    let at = |i: usize| v.get(i).and_then(|m| m.int(Key::Grants)).unwrap_or(0);
    let (imax, max) = extreme(&medians, f64::total_cmp)?;
    let (imin, min) = extreme(&medians, |a, b| b.total_cmp(a))?;
    let (value, interval) = estimate(&groups, PORT_CHECK_ROUNDS, max_over_min)?;
    Some(Measured {
        value,
        limit,
        interval,
        detail: format!(
            "max {} ({} grants) / min {} ({} grants), medians of raw batch times, \
             interval over {PORT_CHECK_ROUNDS} paired rounds",
            fmt_ns(max),
            at(imax),
            fmt_ns(min),
            at(imin)
        ),
    })
}

/// The index and value of the greatest of `v` under `cmp`.
fn extreme(v: &[f64], cmp: impl Fn(&f64, &f64) -> std::cmp::Ordering) -> Option<(usize, f64)> {
    v.iter().copied().enumerate().max_by(|a, b| cmp(&a.1, &b.1))
}

/// The largest of `m` over the smallest (`None` unless the smallest is
/// positive).
fn max_over_min(m: &[f64]) -> Option<f64> {
    let hi = m.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let lo = m.iter().copied().fold(f64::INFINITY, f64::min);
    (lo > 0.0 && hi.is_finite()).then(|| hi / lo)
}

/// The largest of the ratios of consecutive pairs of medians
/// (`m[0] / m[1]`, `m[2] / m[3]`, …).
pub(super) fn worst_ratio(m: &[f64]) -> Option<f64> {
    m.chunks_exact(2)
        .map(|p| p[0] / p[1])
        .fold(None, |w: Option<f64>, r| Some(w.map_or(r, |w| w.max(r))))
        .filter(|_| m.iter().skip(1).step_by(2).all(|y| *y > 0.0))
}

/// The first median over the second.
const RATIO: fn(&[f64]) -> Option<f64> = |m| (m[1] > 0.0).then(|| m[0] / m[1]);

pub(super) fn radix_flat_tight(r: &Results, limit: f64) -> Option<Measured> {
    flat(r, "radix", limit)
}

pub(super) fn radix_vs_linear(r: &Results, limit: f64) -> Option<Measured> {
    let rx = radix_points(r, "radix");
    let li = radix_points(r, "linear");
    let x = rx.last()?;
    let g = x.int(Key::Grants)?;
    let l = li.iter().find(|m| m.int(Key::Grants) == Some(g))?;
    let groups = [l.samples.as_slice(), x.samples.as_slice()];
    let (value, interval) = estimate(&groups, PORT_CHECK_ROUNDS, RATIO)?;
    Some(Measured {
        value,
        limit,
        interval,
        detail: format!(
            "linear {} vs radix {} at {g} grants (medians; interval over paired rounds)",
            fmt_ns(stats::median(&l.samples)?),
            fmt_ns(stats::median(&x.samples)?)
        ),
    })
}

/// The worst ratio of `num`'s median over `den`'s at the same grant count,
/// over every grant count both measured: the point is that statistic of
/// the raw medians, the interval the same statistic recomputed on
/// resampled rounds (the worst count may change between replicates).
pub(super) fn worst_pair(r: &Results, num: &str, den: &str) -> Option<WorstPair> {
    let n = radix_points(r, num);
    let d = radix_points(r, den);
    // Each grant count's (num, den) samples, in turn.
    let mut counts = Vec::new();
    let mut groups: Vec<&[f64]> = Vec::new();
    for x in &n {
        let Some(g) = x.int(Key::Grants) else {
            continue;
        };
        if let Some(y) = d.iter().find(|y| y.int(Key::Grants) == Some(g)) {
            counts.push(g);
            groups.push(&x.samples);
            groups.push(&y.samples);
        }
    }
    let medians: Vec<f64> = groups
        .iter()
        .map(|g| stats::median(g))
        .collect::<Option<_>>()?;
    let ratios: Vec<f64> = medians
        .chunks_exact(2)
        .map(|p| if p[1] > 0.0 { p[0] / p[1] } else { f64::NAN })
        .collect();
    let (i, _) = extreme(&ratios, f64::total_cmp)?;
    let (value, interval) = estimate(&groups, PORT_CHECK_ROUNDS, worst_ratio)?;
    Some(WorstPair {
        value,
        interval,
        grants: *counts.get(i)?,
        num: *medians.get(2 * i)?,
        den: *medians.get(2 * i + 1)?,
    })
}

/// What [`worst_pair`] found.
pub(super) struct WorstPair {
    /// The worst ratio of medians.
    pub(super) value: f64,
    /// Its 95 % interval over resampled rounds.
    pub(super) interval: Option<[f64; 2]>,
    /// The grant count of the point's worst ratio.
    pub(super) grants: u64,
    /// The numerator's median there (ns).
    pub(super) num: f64,
    /// The denominator's median there (ns).
    pub(super) den: f64,
}

impl WorstPair {
    /// The goal's measurement; `sides(num, den)` names the two formatted
    /// medians (`C 2.4 ns vs Rust 1.9 ns`).
    pub(super) fn measured(
        self,
        limit: f64,
        sides: impl FnOnce(String, String) -> String,
    ) -> Measured {
        Measured {
            value: self.value,
            limit,
            interval: self.interval,
            detail: format!(
                "worst at {} grants: {} (medians; interval of the worst ratio over paired rounds)",
                self.grants,
                sides(fmt_ns(self.num), fmt_ns(self.den))
            ),
        }
    }
}

/// radix-bound over bitmap, the worst grant count ([`worst_pair`]).
pub(super) fn bound_vs_bitmap(r: &Results, limit: f64) -> Option<Measured> {
    worst_pair(r, "radix-bound", "bitmap")
        .map(|w| w.measured(limit, |x, y| format!("{x} vs bitmap {y}")))
}

/// radix-bound, largest p50 over smallest.
pub(super) fn bound_flat(r: &Results, limit: f64) -> Option<Measured> {
    flat(r, "radix-bound", limit)
}

/// btree over radix-bound at 4,096 grants.
pub(super) fn btree_vs_bound(r: &Results, limit: f64) -> Option<Measured> {
    let at = |imp: &str| {
        r.find(
            MetricName::PortCheck,
            &[(Key::Impl, imp.into()), (Key::Grants, 4096u64.into())],
        )
    };
    let (b, t) = (at("radix-bound")?, at("btree")?);
    let groups = [t.samples.as_slice(), b.samples.as_slice()];
    let (value, interval) = estimate(&groups, PORT_CHECK_ROUNDS, RATIO)?;
    Some(Measured {
        value,
        limit,
        interval,
        detail: format!(
            "btree {} vs radix-bound {} (medians; interval over paired rounds)",
            fmt_ns(stats::median(&t.samples)?),
            fmt_ns(stats::median(&b.samples)?)
        ),
    })
}

pub(super) fn bind_irq_delta(r: &Results, limit: f64) -> Option<Measured> {
    let m = r.named(MetricName::BindIrqDelta).next()?;
    Some(Measured {
        value: m.p50,
        limit,
        interval: own_interval(m),
        detail: format!(
            "{} over a bare KVM_IRQFD assign (median of {} paired rounds)",
            fmt_ns(m.p50),
            m.count
        ),
    })
}

fn check_at(r: &Results, guests: u64) -> Option<&Metric> {
    r.named(MetricName::CheckScale)
        .find(|m| m.int(Key::Guests) == Some(guests))
}

/// Rounds a distribution-free 95 % interval of a median needs
/// ([`stats::median_interval`]): of 6 independent rounds the whole range
/// covers the median with 1 − 2/2⁶ ≈ 96.9 %; of the quick run's 3, only
/// 75 %. Below it a check goal reports no interval and its verdict rests on
/// the median alone, as the detail says.
const MIN_CHECK_ROUNDS: usize = 6;

pub(super) fn check_scale(r: &Results, limit: f64) -> Option<Measured> {
    let m = check_at(r, 10_000)?;
    // One sample per round, in ns: the point and the interval both from them.
    let value = stats::median(&m.samples)?;
    let interval = stats::median_interval(&m.samples);
    let lo = m.samples.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = m.samples.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let n = m.samples.len();
    let basis = if interval.is_some() {
        format!("median of {n} rounds; interval from their order statistics")
    } else {
        format!(
            "median of {n} rounds (range {} … {}); fewer than {MIN_CHECK_ROUNDS} rounds \
             cannot give a 95 % interval, so the verdict rests on the median",
            fmt_ns(lo),
            fmt_ns(hi)
        )
    };
    Some(Measured {
        value,
        limit,
        interval,
        detail: format!("{} per whole check, {basis}", fmt_ns(value)),
    })
}

pub(super) fn check_linear(r: &Results, limit: f64) -> Option<Measured> {
    let (small, big) = (check_at(r, 2_500)?, check_at(r, 10_000)?);
    // Per-guest cost at 10,000 over that at 2,500: the medians' ratio / 4.
    // The two sizes run in the same rounds, so the interval resamples rounds
    // (one sample each) jointly.
    let groups = [big.samples.as_slice(), small.samples.as_slice()];
    let rounds = big.samples.len().min(small.samples.len());
    let (value, interval) = estimate(&groups, rounds, |m| RATIO(m).map(|x| x / 4.0))?;
    let interval = interval.filter(|_| rounds >= MIN_CHECK_ROUNDS);
    let basis = if interval.is_some() {
        format!("medians of {rounds} interleaved rounds; interval over paired rounds")
    } else {
        format!(
            "medians of {rounds} interleaved rounds; fewer than {MIN_CHECK_ROUNDS} rounds \
             cannot give a 95 % interval, so the verdict rests on the medians"
        )
    };
    Some(Measured {
        value,
        limit,
        interval,
        detail: format!(
            "{} at 10,000 guests vs {} at 2,500, {basis}",
            fmt_ns(stats::median(&big.samples)?),
            fmt_ns(stats::median(&small.samples)?)
        ),
    })
}

pub(super) fn instructions_equal(r: &Results, limit: f64) -> Option<Measured> {
    let mut v: Vec<&Metric> = r.named(MetricName::PortCheckInstructions).collect();
    v.sort_by_key(|m| m.int(Key::Grants).unwrap_or(0));
    let (lo, hi) = (v.first()?, v.last()?);
    (lo.key() != hi.key() && lo.value > 0.0).then(|| Measured {
        value: (hi.value / lo.value - 1.0).abs(),
        limit,
        detail: format!(
            "{} instructions at {} grants vs {} at {}",
            hi.value,
            hi.int(Key::Grants).unwrap_or(0),
            lo.value,
            lo.int(Key::Grants).unwrap_or(0)
        ),
        interval: None,
    })
}

pub(super) fn extent_allocations(r: &Results, _: f64) -> Option<Measured> {
    let m = r
        .named(MetricName::TrackingAllocations)
        .filter(|m| m.text(Key::Tracker) == Some("slab-extent"))
        .filter(|m| m.int(Key::Pages).is_some_and(|p| p >= 65_536))
        .max_by_key(|m| m.int(Key::Pages))?;
    let pages = m.int(Key::Pages)?;
    Some(Measured {
        value: m.value,
        limit: pages as f64 / 64.0,
        detail: format!("{:.0} allocations for {pages} contiguous pages", m.value),
        interval: None,
    })
}

pub(super) fn extent_vs_xmalloc_bytes(r: &Results, limit: f64) -> Option<Measured> {
    let max = r
        .named(MetricName::TrackingBytes)
        .filter_map(|m| m.int(Key::Pages))
        .max()?;
    let at = |t: &str| {
        r.find(
            MetricName::TrackingBytes,
            &[(Key::Tracker, t.into()), (Key::Pages, max.into())],
        )
    };
    let (e, x) = (at("slab-extent")?, at("xmalloc-page")?);
    (x.value > 0.0).then(|| Measured {
        value: e.value / x.value,
        limit,
        detail: format!(
            "slab-extent {:.0} B vs xmalloc-page {:.0} B at {max} pages",
            e.value, x.value
        ),
        interval: None,
    })
}

fn tp<'r>(r: &'r Results, state: &str) -> Option<&'r Metric> {
    r.find(
        MetricName::TracepointOverhead,
        &[(Key::State, state.into())],
    )
}

/// Each tracepoint sample times the relaxed load, the disabled and the
/// enabled tracepoint back to back: sample `i` of every state is one round.
fn tp_rounds(ms: &[&Metric]) -> usize {
    ms.iter().map(|m| m.samples.len()).min().unwrap_or(0)
}

pub(super) fn tracepoint_disabled(r: &Results, limit: f64) -> Option<Measured> {
    let (dm, bm) = (tp(r, "disabled")?, tp(r, "baseline")?);
    // In ns: the raw samples, not the normalised ones.
    let groups = [dm.samples.as_slice(), bm.samples.as_slice()];
    let (value, interval) = estimate(&groups, tp_rounds(&[dm, bm]), |m| Some(m[0] - m[1]))?;
    Some(Measured {
        value,
        limit,
        detail: format!(
            "{} vs relaxed load {} (medians; interval over paired samples)",
            fmt_ns(stats::median(&dm.samples)?),
            fmt_ns(stats::median(&bm.samples)?)
        ),
        interval,
    })
}

pub(super) fn tracepoint_enabled(r: &Results, limit: f64) -> Option<Measured> {
    let m = tp(r, "enabled")?;
    let (value, interval) = estimate(&[&m.samples], tp_rounds(&[m]), |x| x.first().copied())?;
    Some(Measured {
        value,
        limit,
        detail: format!("{} per recorded event (median)", fmt_ns(value)),
        interval,
    })
}

pub(super) fn accounting_cost(r: &Results, limit: f64) -> Option<Measured> {
    let m = r.find(
        MetricName::AccountingCost,
        &[
            (Key::MmioTrackedPages, 0u64.into()),
            (Key::Load, "none".into()),
        ],
    )?;
    Some(Measured {
        value: m.p50,
        limit,
        interval: own_interval(m),
        detail: format!(
            "{} per exit (median over {} paired rounds)",
            fmt_ns(m.p50),
            m.count
        ),
    })
}

fn ratio_at(
    r: &Results,
    name: MetricName,
    params: &[(Key, Param)],
    limit: f64,
) -> Option<Measured> {
    let m = r.find(name, params)?;
    Some(Measured {
        value: m.p50,
        limit,
        detail: format!("×{:.3} (median of {} paired rounds)", m.p50, m.count),
        interval: own_interval(m),
    })
}

pub(super) fn bind_1(r: &Results, limit: f64) -> Option<Measured> {
    ratio_at(
        r,
        MetricName::BindOverFloor,
        &[(Key::Pages, 1u64.into())],
        limit,
    )
}

pub(super) fn bind_fb(r: &Results, limit: f64) -> Option<Measured> {
    ratio_at(
        r,
        MetricName::BindOverFloor,
        &[(Key::Pages, 65_536u64.into())],
        limit,
    )
}

pub(super) fn revoke_parked(r: &Results, limit: f64) -> Option<Measured> {
    ratio_at(
        r,
        MetricName::RevokeForceOverFloor,
        &[(Key::Pages, 1u64.into()), (Key::VcpuState, "parked".into())],
        limit,
    )
}

pub(super) fn revoke_running(r: &Results, limit: f64) -> Option<Measured> {
    ratio_at(
        r,
        MetricName::RevokeForceOverFloor,
        &[
            (Key::Pages, 1u64.into()),
            (Key::VcpuState, "running".into()),
        ],
        limit,
    )
}

pub(super) fn pio_tracked(r: &Results, limit: f64) -> Option<Measured> {
    let pio = |pages: u64| {
        r.find(
            MetricName::PioExit,
            &[
                (Key::Accounting, "on".into()),
                (Key::MmioTrackedPages, pages.into()),
            ],
        )
    };
    let big = r
        .named(MetricName::PioExit)
        .filter_map(|m| m.int(Key::MmioTrackedPages))
        .max()
        .filter(|p| *p > 0)?;
    let (b, z) = (pio(big)?, pio(0)?);
    (typical(z) > 0.0).then(|| Measured {
        value: typical(b) / typical(z),
        limit,
        // Per-round medians of the raw (uncorrected) round trips.
        interval: interval_of(&[&rounds_of(b), &rounds_of(z)], RATIO),
        detail: format!(
            "{} with {big} pages tracked vs {} with none",
            fmt_ns(typical(b)),
            fmt_ns(typical(z))
        ),
    })
}

pub(super) fn quick_wall(r: &Results, limit: f64) -> Option<Measured> {
    (r.run.quick && r.run.wall_secs > 0.0).then(|| Measured {
        value: r.run.wall_secs,
        limit,
        detail: format!("{:.0} s of measuring", r.run.wall_secs),
        interval: None,
    })
}

/// The exact instruction count of one warm call of accountant operation
/// `op` on the default tracker (slab-extent), one unit, with no crowd.
pub(super) fn op_instructions(r: &Results, op: &str, limit: f64) -> Option<Measured> {
    let m = r.named(MetricName::Instructions).find(|m| {
        m.text(Key::Op) == Some(op)
            && m.text(Key::Tracker) == Some("slab-extent")
            && m.int(Key::Units) == Some(1)
            && m.param(Key::Domains).is_none()
    })?;
    Some(Measured {
        value: m.value,
        limit,
        interval: None,
        detail: format!("{:.0} instructions (callgrind, one warm call)", m.value),
    })
}

/// How many more instructions one access check takes beside a crowd of
/// domains and grants than alone.
pub(super) fn access_crowd_delta(r: &Results, limit: f64) -> Option<Measured> {
    let access = |crowd: bool| {
        r.named(MetricName::Instructions).find(|m| {
            m.text(Key::Op) == Some("access")
                && m.text(Key::Tracker) == Some("slab-extent")
                && m.param(Key::Domains).is_some() == crowd
        })
    };
    let (alone, crowd) = (access(false)?, access(true)?);
    Some(Measured {
        value: (crowd.value - alone.value).abs(),
        limit,
        interval: None,
        detail: format!(
            "{:.0} instructions beside {} domains vs {:.0} alone",
            crowd.value,
            crowd.int(Key::Domains).unwrap_or(0),
            alone.value
        ),
    })
}
