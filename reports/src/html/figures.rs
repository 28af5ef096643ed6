//! The report's charts: which metrics each one draws, and how.

use super::Chart;
use crate::charts::{self, Axis, Series};
use crate::names::{Key, MetricName};
use crate::schema::{Metric, Results};
use std::collections::BTreeMap;

pub(super) fn chart(title: &str, d: charts::Drawn, caption: &str) -> Chart {
    Chart {
        title: title.to_owned(),
        svg: d.svg,
        caption: caption.to_owned(),
        legend: d.legend,
        x_ticks: d.x_ticks,
        y_ticks: d.y_ticks,
        data_range: d.data_range,
    }
}

/// One series per metric matching `pred`, x from the numeric param `x`,
/// named by `label`.
fn series_where(
    r: &Results,
    name: MetricName,
    x: Key,
    pred: impl Fn(&Metric) -> bool,
    label: impl Fn(&Metric) -> String,
    y: impl Fn(&Metric) -> f64,
) -> Vec<Series> {
    let mut groups: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for m in r.named(name).filter(|m| pred(m)) {
        let Some(xv) = m.int(x) else { continue };
        groups.entry(label(m)).or_default().push((xv as f64, y(m)));
    }
    groups
        .into_iter()
        .map(|(name, mut points)| {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            Series { name, points }
        })
        .collect()
}

pub(super) fn charts(r: &Results, base: Option<&Results>) -> Vec<Chart> {
    let mut book = charts::ColorBook::default();
    let p50 = |m: &Metric| m.p50;
    let mut out = Vec::new();
    let impl_of = |m: &Metric| m.text(Key::Impl).unwrap_or("?").to_owned();
    let mut port = series_where(
        r,
        MetricName::PortCheck,
        Key::Grants,
        |_| true,
        impl_of,
        p50,
    );
    if let Some(b) = base {
        port.extend(series_where(
            b,
            MetricName::PortCheck,
            Key::Grants,
            |m| m.text(Key::Impl) == Some("radix"),
            |m| format!("{} (baseline)", impl_of(m)),
            p50,
        ));
    }
    out.push(chart(
        "Port check against grants",
        charts::log_log(
            &mut book,
            "accountant.port_check: p50 per check",
            Key::Grants.as_str(),
            "time per check",
            Axis::Count,
            Axis::Ns,
            &port,
        ),
        "radix: the accountant's check through the domain id; radix-bound: the vCPU-held \
         checker of one domain; bitmap: a flat per-domain 8 KiB bitmap; btree: a BTreeMap \
         range lookup; linear: the original access list, scanned per check. Dashed: the \
         baseline's radix check. Log-log.",
    ));
    let mut bind = series_where(
        r,
        MetricName::Bind,
        Key::Pages,
        |_| true,
        |_| "hv.bind".into(),
        p50,
    );
    bind.extend(series_where(
        r,
        MetricName::MemslotAdd,
        Key::Pages,
        |_| true,
        |_| "hv.memslot_add (floor)".into(),
        p50,
    ));
    if let Some(b) = base {
        bind.extend(series_where(
            b,
            MetricName::Bind,
            Key::Pages,
            |_| true,
            |_| "hv.bind (baseline)".into(),
            p50,
        ));
    }
    out.push(chart(
        "Bind against its KVM floor",
        charts::log_log(
            &mut book,
            "hv.bind vs bare memslot add (p50)",
            "pages (4 KiB)",
            "time per bind",
            Axis::Count,
            Axis::Ns,
            &bind,
        ),
        "hv.bind: Hypervisor::map of N framebuffer pages (accountant map + slot table + \
         memslot add); the floor: the bare memslot add of the same frames on the same VM, \
         measured in the same rounds.",
    ));
    let state = |m: &Metric| m.text(Key::VcpuState).unwrap_or("?").to_owned();
    let mut rev = series_where(
        r,
        MetricName::RevokeForce,
        Key::Pages,
        |_| true,
        |m| format!("hv.revoke_force {}", state(m)),
        p50,
    );
    rev.extend(series_where(
        r,
        MetricName::MemslotDelete,
        Key::Pages,
        |m| m.text(Key::PairedWith) == Some("revoke_force"),
        |m| format!("hv.memslot_delete {} (floor)", state(m)),
        p50,
    ));
    out.push(chart(
        "Forced revoke against its KVM floor",
        charts::log_log(
            &mut book,
            "hv.revoke_force vs bare memslot delete (p50)",
            "pages (4 KiB)",
            "time per revoke",
            Axis::Count,
            Axis::Ns,
            &rev,
        ),
        "A forced revoke of N mapped pages the guest touched just before, with its vCPU \
         parked in a blocking hypercall or running in guest mode, beside the bare memslot \
         delete of the same touched frames in the same state.",
    ));
    let mut ratios = Vec::new();
    for (name, label) in [
        (MetricName::BindOverFloor, "bind / memslot add"),
        (MetricName::UnmapOverFloor, "unmap / memslot delete"),
    ] {
        ratios.extend(series_where(
            r,
            name,
            Key::Pages,
            |_| true,
            |_| label.into(),
            p50,
        ));
    }
    ratios.extend(series_where(
        r,
        MetricName::RevokeForceOverFloor,
        Key::Pages,
        |_| true,
        |m| format!("forced revoke / memslot delete, {}", state(m)),
        p50,
    ));
    out.push(chart(
        "Hypervisor steps over their floors",
        charts::log_log(
            &mut book,
            "per-round ratio, median",
            "pages (4 KiB)",
            "step / floor",
            Axis::Count,
            Axis::Ratio,
            &ratios,
        ),
        "Each point is the median of the per-round ratios of a paired measurement; ×1 \
         would mean the hypervisor adds nothing to KVM's own step.",
    ));
    let tracker = |m: &Metric| m.text(Key::Tracker).unwrap_or("?").to_owned();
    out.push(chart(
        "Accountant map against size, per tracker",
        charts::log_log(
            &mut book,
            "accountant.map of N pages (p50)",
            "pages (4 KiB)",
            "time per map",
            Axis::Count,
            Axis::Ns,
            &series_where(r, MetricName::Map, Key::Pages, |_| true, tracker, p50),
        ),
        "The accountant's map alone, with each MMIO tracker. Log-log: slope 1 is linear in \
         the size.",
    ));
    out.push(chart(
        "Tracker memory",
        charts::log_log(
            &mut book,
            "tracking bytes after mapping N contiguous pages",
            "pages (4 KiB)",
            "tracking memory",
            Axis::Count,
            Axis::Bytes,
            &series_where(
                r,
                MetricName::TrackingBytes,
                Key::Pages,
                |_| true,
                tracker,
                |m| m.value,
            ),
        ),
        "xmalloc-page (record + allocator header per page) vs slab-page (slab record per \
         page) vs slab-extent (one record per run).",
    ));
    let mut tp: Vec<(String, f64)> = Vec::new();
    for state in ["baseline", "disabled", "enabled"] {
        if let Some(m) = r.find(
            MetricName::TracepointOverhead,
            &[(Key::State, state.into())],
        ) {
            let label = if state == "baseline" {
                "relaxed load (baseline)".to_owned()
            } else {
                format!("tracepoint {state}")
            };
            tp.push((label, m.p50));
        }
    }
    out.push(chart(
        "Tracepoint overhead",
        charts::bars(&mut book, "tracepoint cost per hit (p50)", Axis::Ns, &tp),
        "A disabled tracepoint against a plain relaxed atomic load (tracing's baseline); \
         enabled: the event is written to the per-thread ring.",
    ));
    // Percentile spectra: per-exit latencies, then micro-benchmark batch
    // means (one point per batch) for the radix check at every grant count.
    type Spectrum<'a> = (MetricName, Option<(Key, &'a str)>, Axis);
    let spectra: [Spectrum; 4] = [
        (MetricName::PioExit, None, Axis::Ns),
        (MetricName::ExitHandler, None, Axis::Ns),
        (MetricName::PortCheck, Some((Key::Impl, "radix")), Axis::Ns),
        (MetricName::TracepointOverhead, None, Axis::Ns),
    ];
    for (name, filter, axis) in spectra {
        let series: Vec<Series> = r
            .named(name)
            .filter(|m| !m.spectrum.is_empty())
            .filter(|m| filter.is_none_or(|(k, v)| m.has(k, v)))
            .map(|m| Series {
                name: m
                    .params
                    .iter()
                    .filter(|(k, _)| filter.is_none_or(|(fk, _)| fk.as_str() != k.as_str()))
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
        out.push(chart(
            &format!("Latency spectrum: {name}"),
            charts::log_log(
                &mut book,
                &format!("{name} percentile spectrum"),
                "percentile (log 1/(1-p))",
                "latency",
                Axis::Percentile,
                axis,
                &series,
            ),
            "Each point is a percentile from the HDR histogram, from the median (50 %) on; \
             the x axis stretches the tail (90 %, 99 %, 99.9 % equally spaced).",
        ));
    }
    out
}
