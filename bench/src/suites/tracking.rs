//! `accountant.tracking_bytes` / `accountant.tracking_allocations`: what a
//! tracker keeps for one contiguous mapping, exactly.

use super::ranges::IOMEM_BASE;
use super::{key, page_points, Ctx, Sink};
use accountant::{DomId, TrackerKind};
use reports::{Key, Metric, MetricName, Param};

/// The params of a tracker's metrics at `pages` pages.
pub(super) fn tracker_params(kind: TrackerKind, pages: u64) -> [(Key, Param); 2] {
    [
        (Key::Tracker, Param::from(kind.name())),
        (Key::Pages, Param::from(pages)),
    ]
}

/// The keys `names` take at every tracker and page point.
fn tracker_keys(quick: bool, names: [MetricName; 2]) -> Vec<String> {
    let mut v = Vec::new();
    for kind in TrackerKind::ALL {
        for pages in page_points(quick) {
            for name in names {
                v.push(key(name, &tracker_params(kind, pages)));
            }
        }
    }
    v
}

/// The keys [`map_unmap`] emits.
pub fn map_unmap_keys(quick: bool) -> Vec<String> {
    tracker_keys(quick, [MetricName::Map, MetricName::Unmap])
}

/// The keys [`tracking`] emits.
pub fn tracking_keys(quick: bool) -> Vec<String> {
    tracker_keys(
        quick,
        [MetricName::TrackingBytes, MetricName::TrackingAllocations],
    )
}

/// `accountant.tracking_bytes` and `accountant.tracking_allocations`: a
/// tracker's memory after one domain maps one contiguous run of `pages`
/// pages, and the allocations that one map made. Measured on the trackers
/// themselves (`accountant::track::new_tracker`, what the accountant keeps
/// for I/O memory), so the numbers are exact and reproducible.
pub fn tracking(cx: &mut Ctx, sink: &mut Sink) {
    for kind in TrackerKind::ALL {
        for pages in page_points(cx.quick) {
            cx.progress.step(&format!(
                "accountant.tracking_bytes tracker={} pages={pages}",
                kind.name()
            ));
            let result = (|| {
                let mut t = accountant::track::new_tracker(kind);
                let dom = DomId::new(1).map_err(|e| format!("{e}"))?;
                let before = t.stats();
                t.map(dom, IOMEM_BASE, IOMEM_BASE + pages - 1)
                    .map_err(|e| format!("map: {e:?}"))?;
                Ok::<_, String>((t.tracking_bytes(), t.stats(), before))
            })();
            let params = tracker_params(kind, pages);
            match result {
                Ok((bytes, after, before)) => {
                    let mut b = Metric::exact(MetricName::TrackingBytes, &params, bytes as f64);
                    b.note = Some(format!(
                        "{} live records, {} record bytes, {} pages from the page source",
                        after.records, after.record_bytes, after.pages
                    ));
                    sink.metrics.push(b);
                    sink.metrics.push(Metric::exact(
                        MetricName::TrackingAllocations,
                        &params,
                        after.allocations.saturating_sub(before.allocations) as f64,
                    ));
                }
                Err(e) => sink.skip(
                    MetricName::TrackingBytes,
                    format!("{} {pages}: {e}", kind.name()),
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::Plan;
    use crate::suites::{Ctx, Sink};

    #[test]
    fn tracking_metrics_are_exact_and_extent_is_small() {
        let mut cx = Ctx {
            plan: Plan::QUICK,
            quick: true,
            counters: None,
            inject: None,
            progress: crate::Progress::silent(1),
            placement: ::hv::workloads::Setup::default(),
            only: None,
            placement_home: None,
        };
        let mut sink = Sink::default();
        tracking(&mut cx, &mut sink);
        assert!(sink.not_measured.is_empty(), "{:?}", sink.not_measured);
        let allocs = |t: &str| {
            sink.metrics
                .iter()
                .find(|m| {
                    m.is(MetricName::TrackingAllocations)
                        && m.param(Key::Tracker) == Some(&Param::from(t))
                        && m.param(Key::Pages) == Some(&Param::from(65_536u64))
                })
                .map(|m| m.value)
        };
        assert_eq!(allocs("slab-page"), Some(65_536.0));
        assert!(allocs("slab-extent").is_some_and(|v| v < 64.0));
    }
}
