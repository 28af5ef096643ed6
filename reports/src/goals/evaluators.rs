//! The evaluators: each goal's `eval`, computing its measured value (and
//! the 95 % interval, where it has samples) from the results.

use super::fmt_ns;
use super::{
    interval_of, judged_samples, own_interval, rounds_of, typical, Measured, RADIX_FLATNESS_LIMIT,
};
use crate::names::{Key, MetricName};
use crate::schema::{Metric, Param, Results};

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

/// `imp`'s largest p50 over its smallest, over every grant count.
pub(super) fn flat(r: &Results, imp: &str, limit: f64) -> Option<Measured> {
    let v = radix_points(r, imp);
    let max = v.iter().max_by(|a, b| a.p50.total_cmp(&b.p50))?;
    let min = v.iter().min_by(|a, b| a.p50.total_cmp(&b.p50))?;
    let groups: Vec<&[f64]> = v.iter().map(|m| judged_samples(m)).collect();
    (v.len() > 1 && min.p50 > 0.0).then(|| Measured {
        value: max.p50 / min.p50,
        limit,
        interval: interval_of(&groups, |m| {
            let hi = m.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let lo = m.iter().copied().fold(f64::INFINITY, f64::min);
            (lo > 0.0).then(|| hi / lo)
        }),
        detail: format!(
            "max {} ({} grants) / min {} ({} grants)",
            fmt_ns(max.p50),
            max.int(Key::Grants).unwrap_or(0),
            fmt_ns(min.p50),
            min.int(Key::Grants).unwrap_or(0)
        ),
    })
}

/// The largest of the ratios of consecutive pairs of medians
/// (`m[0] / m[1]`, `m[2] / m[3]`, …).
pub(super) fn worst_ratio(m: &[f64]) -> Option<f64> {
    m.chunks(2)
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
    let g = rx.last()?.int(Key::Grants)?;
    let l = li.iter().find(|m| m.int(Key::Grants) == Some(g))?;
    let x = rx.last()?;
    (x.p50 > 0.0).then(|| Measured {
        value: l.p50 / x.p50,
        limit,
        interval: interval_of(&[judged_samples(l), judged_samples(x)], RATIO),
        detail: format!(
            "linear {} vs radix {} at {g} grants",
            fmt_ns(l.p50),
            fmt_ns(x.p50)
        ),
    })
}

/// radix-bound over bitmap, the worst grant count.
pub(super) fn bound_vs_bitmap(r: &Results, limit: f64) -> Option<Measured> {
    let b = radix_points(r, "radix-bound");
    let m = radix_points(r, "bitmap");
    // Each grant count's (radix-bound, bitmap) samples, in turn.
    let pairs: Vec<&[f64]> = b
        .iter()
        .filter_map(|x| {
            let y = m
                .iter()
                .find(|y| y.int(Key::Grants) == x.int(Key::Grants))?;
            Some([judged_samples(x), judged_samples(y)])
        })
        .flatten()
        .collect();
    b.iter()
        .filter_map(|x| {
            let g = x.int(Key::Grants)?;
            let y = m.iter().find(|y| y.int(Key::Grants) == Some(g))?;
            (y.p50 > 0.0).then(|| (x.p50 / y.p50, g, x.p50, y.p50))
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(ratio, g, x, y)| Measured {
            value: ratio,
            limit,
            interval: interval_of(&pairs, worst_ratio),
            detail: format!("worst at {g} grants: {} vs bitmap {}", fmt_ns(x), fmt_ns(y)),
        })
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
    (b.p50 > 0.0).then(|| Measured {
        value: t.p50 / b.p50,
        limit,
        interval: interval_of(&[judged_samples(t), judged_samples(b)], RATIO),
        detail: format!("btree {} vs radix-bound {}", fmt_ns(t.p50), fmt_ns(b.p50)),
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

pub(super) fn check_scale(r: &Results, limit: f64) -> Option<Measured> {
    let m = check_at(r, 10_000)?;
    Some(Measured {
        value: m.p50,
        limit,
        interval: own_interval(m),
        detail: format!(
            "{} per whole check, median of {} rounds",
            fmt_ns(m.p50),
            m.count
        ),
    })
}

pub(super) fn check_linear(r: &Results, limit: f64) -> Option<Measured> {
    let (small, big) = (check_at(r, 2_500)?, check_at(r, 10_000)?);
    (small.p50 > 0.0).then(|| Measured {
        value: (big.p50 / 10_000.0) / (small.p50 / 2_500.0),
        limit,
        // Per-guest cost at 10,000 over that at 2,500: the medians' ratio / 4.
        interval: interval_of(&[judged_samples(big), judged_samples(small)], |m| {
            RATIO(m).map(|x| x / 4.0)
        }),
        detail: format!(
            "{} at 10,000 guests vs {} at 2,500",
            fmt_ns(big.p50),
            fmt_ns(small.p50)
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

pub(super) fn tracepoint_disabled(r: &Results, limit: f64) -> Option<Measured> {
    let (dm, bm) = (tp(r, "disabled")?, tp(r, "baseline")?);
    let (d, b) = (dm.p50, bm.p50);
    Some(Measured {
        value: d - b,
        limit,
        detail: format!("{} vs relaxed load {}", fmt_ns(d), fmt_ns(b)),
        // In ns: the raw samples, not the normalised ones.
        interval: interval_of(&[&dm.samples, &bm.samples], |m| Some(m[0] - m[1])),
    })
}

pub(super) fn tracepoint_enabled(r: &Results, limit: f64) -> Option<Measured> {
    let m = tp(r, "enabled")?;
    Some(Measured {
        value: m.p50,
        limit,
        detail: format!("{} per recorded event", fmt_ns(m.p50)),
        interval: m
            .ci95
            .or_else(|| interval_of(&[&m.samples], |x| x.first().copied())),
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
