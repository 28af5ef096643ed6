//! The report's top: the headline figures and the summary against goals.

use super::{GoalRow, GoalStatus, Headline};
use crate::format::{self, n};
use crate::goals;
use crate::names::{Key, MetricName};
use crate::schema::{Metric, Param, Results};

pub(super) fn goal_rows(r: &Results) -> Vec<GoalRow> {
    goals::evaluate(r)
        .into_iter()
        .map(|e| {
            let g = &e.goal;
            let status = match (e.status(), g.kind) {
                (goals::Status::NotMeasured, _) => GoalStatus::NotMeasured,
                (goals::Status::Met, _) => GoalStatus::Met,
                (goals::Status::Inconclusive, _) => GoalStatus::Inconclusive,
                (goals::Status::Missed, goals::Kind::Target) => GoalStatus::Missed,
                (goals::Status::Missed, goals::Kind::Invariant) => GoalStatus::Broken,
            };
            let limit = e.measured.as_ref().map_or(g.limit, |m| m.limit);
            GoalRow {
                id: g.id.to_owned(),
                metric: g.metric.as_str().to_owned(),
                kind: match g.kind {
                    goals::Kind::Target => "target",
                    goals::Kind::Invariant => "invariant (gated)",
                }
                .to_owned(),
                goal: format!("{}: {} {limit} {}", g.what, g.bound.symbol(), g.unit),
                measured: e.measured.as_ref().map_or_else(
                    || "–".to_owned(),
                    |m| {
                        let f = |x: f64| {
                            if matches!(g.unit, "ratio" | "×" | "fraction") {
                                format!("{x:.3}")
                            } else {
                                n(x)
                            }
                        };
                        let interval = m.interval.map_or(String::new(), |[lo, hi]| {
                            format!(", 95 % interval {} … {}", f(lo), f(hi))
                        });
                        format!("{} {} ({}{interval})", f(m.value), g.unit, m.detail)
                    },
                ),
                status,
            }
        })
        .collect()
}

pub(super) fn headline(r: &Results) -> Vec<Headline> {
    let ns = goals::fmt_ns;
    let mut out = Vec::new();
    let ci = |m: &Metric, unit: &str| {
        m.ci95.map_or("no interval recorded".to_owned(), |[a, b]| {
            format!("95 % CI {} … {}{unit}", n(a), n(b))
        })
    };
    if let Some(m) = r.find(
        MetricName::AccountingCost,
        &[
            (Key::MmioTrackedPages, 0u64.into()),
            (Key::Load, "none".into()),
        ],
    ) {
        let off = r.find(
            MetricName::ExitHandler,
            &[
                (Key::Accounting, "off".into()),
                (Key::MmioTrackedPages, 0u64.into()),
            ],
        );
        out.push(Headline {
            label: "Accounting per port exit (hypervisor side)".into(),
            value: format!("{:+.1} ns", m.p50),
            detail: format!(
                "exit handler with accounting on minus off, median of {} paired rounds ({}){}",
                m.count,
                ci(m, " ns"),
                off.filter(|o| o.p50 > 0.0)
                    .map_or(String::new(), |o| format!(
                        "; {:+.1} % of the {} handler without accounting (Xen's rangeset check)",
                        100.0 * m.p50 / o.p50,
                        ns(o.p50)
                    ))
            ),
            metric: m.key(),
            number: Some(m.p50),
        });
    }
    let over = |name: MetricName,
                params: &[(Key, Param)],
                step: MetricName,
                floor: MetricName,
                label: &str,
                out: &mut Vec<Headline>| {
        let Some(m) = r.find(name, params) else {
            return;
        };
        let own: Vec<(Key, Param)> = params.to_vec();
        let st = r.find(step, &own);
        let fl = r.named(floor).find(|f| {
            own.iter().all(|(k, v)| f.param(*k) == Some(v))
                && f.param(Key::PairedWith).is_none_or(|p| {
                    Some(p.to_string()) == step.as_str().strip_prefix("hv.").map(str::to_owned)
                })
        });
        let delta = match (st, fl) {
            (Some(s), Some(f)) => format!(
                "; {} against the bare {} (+{})",
                ns(s.p50),
                ns(f.p50),
                ns(s.p50 - f.p50)
            ),
            _ => String::new(),
        };
        out.push(Headline {
            label: label.to_owned(),
            value: format!("×{:.3} its KVM floor", m.p50),
            detail: format!("median of {} paired rounds ({}){delta}", m.count, ci(m, "")),
            metric: m.key(),
            number: Some(m.p50),
        });
    };
    over(
        MetricName::BindOverFloor,
        &[(Key::Pages, 1u64.into())],
        MetricName::Bind,
        MetricName::MemslotAdd,
        "Bind of 1 page of I/O memory",
        &mut out,
    );
    over(
        MetricName::BindOverFloor,
        &[(Key::Pages, 65_536u64.into())],
        MetricName::Bind,
        MetricName::MemslotAdd,
        "Bind of a 256 MiB framebuffer",
        &mut out,
    );
    if let Some(m) = r.named(MetricName::BindIrqDelta).next() {
        out.push(Headline {
            label: "Bind of an interrupt line".into(),
            value: format!("{:+.0} ns", m.p50),
            detail: format!(
                "over a bare KVM_IRQFD assign, median of {} paired rounds ({})",
                m.count,
                ci(m, " ns")
            ),
            metric: m.key(),
            number: Some(m.p50),
        });
    }
    for st in ["parked", "running"] {
        over(
            MetricName::RevokeForceOverFloor,
            &[(Key::Pages, 1u64.into()), (Key::VcpuState, st.into())],
            MetricName::RevokeForce,
            MetricName::MemslotDelete,
            &format!("Forced revoke of 1 page, vCPU {st}"),
            &mut out,
        );
    }
    let at = |name: MetricName, t: &str| {
        r.find(
            name,
            &[(Key::Tracker, t.into()), (Key::Pages, 65_536u64.into())],
        )
    };
    if let (Some(eb), Some(ea)) = (
        at(MetricName::TrackingBytes, "slab-extent"),
        at(MetricName::TrackingAllocations, "slab-extent"),
    ) {
        let other = |t: &str| match (
            at(MetricName::TrackingBytes, t),
            at(MetricName::TrackingAllocations, t),
        ) {
            (Some(b), Some(a)) => format!(
                "{t} {} in {} allocations",
                format::axis::bytes(b.value),
                n(a.value)
            ),
            _ => format!("{t} not measured"),
        };
        out.push(Headline {
            label: "Tracking a 256 MiB framebuffer (65,536 pages)".into(),
            value: format!(
                "{} in {:.0} allocation(s)",
                format::axis::bytes(eb.value),
                ea.value
            ),
            detail: format!(
                "slab-extent (the default) against {} and {}",
                other("xmalloc-page"),
                other("slab-page")
            ),
            metric: eb.key(),
            number: Some(eb.value),
        });
    }
    let h = &r.host;
    out.push(Headline {
        label: "Measured on".into(),
        value: h.virtualization.clone(),
        detail: format!(
            "{} ({}), {} CPUs, kernel {}; measuring thread on CPU {}, vCPUs on CPU {}",
            h.cpu_model,
            h.cpu_vendor,
            h.cpus,
            h.kernel,
            if h.affinity.measure.is_empty() {
                "?"
            } else {
                &h.affinity.measure
            },
            if h.affinity.vcpus.is_empty() {
                "?"
            } else {
                &h.affinity.vcpus
            }
        ),
        metric: String::new(),
        number: None,
    });
    out
}
