//! `accountant.map` / `accountant.unmap` and `accountant.grant` /
//! `accountant.revoke`: range operations timed in interleaved rounds.

use super::tracking::tracker_params;
use super::{key, page_points, Ctx, Sink};
use crate::harness::{self, Measured, Plan, Reference};
use accountant::{Accountant, DomId, Mode, Space, TrackerKind, UnitRange};
use reports::{Key, MetricName, Param};
use std::time::{Duration, Instant};

pub(super) const IOMEM_BASE: u64 = 0x10_0000;

fn mapped_accountant(kind: TrackerKind, frames: u64) -> Result<(Accountant, DomId), String> {
    let mut acct = Accountant::new(kind);
    let dom = DomId::new(1).map_err(|e| format!("domain: {e}"))?;
    acct.create(dom).map_err(|e| format!("create: {e}"))?;
    let r = UnitRange::new(Space::IoMem, IOMEM_BASE, IOMEM_BASE + frames - 1)
        .map_err(|e| format!("range: {e}"))?;
    acct.grant(dom, r, Mode::Exclusive, false)
        .map_err(|e| format!("grant {frames} frames: {e}"))?;
    Ok((acct, dom))
}

/// Rounds the range-operation samples (map/unmap, grant/revoke) are split
/// into; every round visits every configuration once and takes at least one
/// sample, so even a 30 ms operation keeps 12 samples: enough for the
/// gate's rank test to reach p < 0.01 on a real shift (5 against 5 cannot go
/// below 1/252).
pub const RANGE_ROUNDS: usize = 12;

/// Samples of one range operation and its inverse: per sample, `B`
/// operations on distinct ranges timed together, then the `B` inverse
/// operations timed together, then the reference.
struct RangeBench {
    ranges: Vec<UnitRange>,
    /// Injected slowdown of the forward operation, percent
    /// ([`harness::INJECT_OP_ENV`]).
    inject_fwd: Option<f64>,
    reference: Option<Reference>,
    warm: usize,
    fwd: Measured,
    back: Measured,
}

impl RangeBench {
    fn new(ranges: Vec<UnitRange>) -> RangeBench {
        let b = ranges.len() as u64;
        let m = Measured {
            batch_ops: b,
            ..Measured::default()
        };
        RangeBench {
            ranges,
            inject_fwd: None,
            reference: None,
            warm: 0,
            fwd: m.clone(),
            back: m,
        }
    }

    /// Takes up to `samples` samples (at least one), stopping once `budget`
    /// is spent. The first two samples ever taken only warm up and size the
    /// reference.
    fn sample(
        &mut self,
        samples: usize,
        budget: Duration,
        mut do_op: impl FnMut(UnitRange) -> Result<(), String>,
        mut undo: impl FnMut(UnitRange) -> Result<(), String>,
    ) -> Result<(), String> {
        let b = self.ranges.len() as f64;
        let start = Instant::now();
        let mut taken = 0;
        while taken < samples.max(1) {
            let t0 = Instant::now();
            for r in &self.ranges {
                do_op(*r)?;
            }
            let mut t1 = Instant::now();
            if let Some(pct) = self.inject_fwd {
                let until = t0 + (t1 - t0).mul_f64(1.0 + pct / 100.0);
                while Instant::now() < until {
                    std::hint::spin_loop();
                }
                t1 = Instant::now();
            }
            for r in &self.ranges {
                undo(*r)?;
            }
            let t2 = Instant::now();
            let refr = self
                .reference
                .get_or_insert_with(|| Reference::of_ns((t1 - t0).as_nanos() as f64));
            let rt = refr.unit_ns();
            if self.warm < 2 {
                self.warm += 1;
                continue;
            }
            let f = (t1 - t0).as_nanos() as f64;
            let u = (t2 - t1).as_nanos() as f64;
            let cpu = harness::cpu_now();
            self.fwd.ns_per_op.push(f / b);
            self.fwd.norm.push(f / b / rt);
            self.fwd.cpus.push(cpu);
            self.back.ns_per_op.push(u / b);
            self.back.norm.push(u / b / rt);
            self.back.cpus.push(cpu);
            taken += 1;
            if start.elapsed() > budget {
                break;
            }
        }
        Ok(())
    }
}

/// Runs `rounds` rounds over all configurations, each round taking its share
/// of the plan's samples and budget from every configuration (`step` runs one
/// configuration's share); a failing configuration is dropped with its
/// error.
fn in_rounds<T>(
    plan: &Plan,
    progress: &mut crate::Progress,
    what: &str,
    configs: &mut Vec<(T, RangeBench)>,
    failed: &mut Vec<(T, String)>,
    mut step: impl FnMut(&mut T, &mut RangeBench, usize, Duration) -> Result<(), String>,
) {
    let per_round = plan.samples.div_ceil(RANGE_ROUNDS);
    let budget = plan.budget / RANGE_ROUNDS as u32;
    for round in 0..RANGE_ROUNDS {
        progress.step(&format!("{what} round {}/{RANGE_ROUNDS}", round + 1));
        let mut i = 0;
        while i < configs.len() {
            let (cfg, bench) = &mut configs[i];
            match step(cfg, bench, per_round, budget) {
                Ok(()) => i += 1,
                Err(e) => {
                    let (cfg, _) = configs.remove(i);
                    failed.push((cfg, e));
                }
            }
        }
    }
}

fn spaced_ranges(count: u64, pages: u64) -> Result<Vec<UnitRange>, String> {
    (0..count)
        .map(|k| {
            let first = IOMEM_BASE + k * (pages + 1);
            UnitRange::new(Space::IoMem, first, first + pages - 1).map_err(|e| format!("{e}"))
        })
        .collect()
}

/// One map/unmap configuration.
struct MapConfig {
    kind: TrackerKind,
    pages: u64,
    acct: Accountant,
    dom: DomId,
}

/// `accountant.map` / `accountant.unmap`: map and unmap of `pages` pages with
/// each tracker (batches of distinct ranges with a one-page gap, so runs do
/// not merge across ranges), in [`RANGE_ROUNDS`] interleaved rounds.
pub fn map_unmap(cx: &mut Ctx, sink: &mut Sink) {
    let mut configs = Vec::new();
    for kind in TrackerKind::ALL {
        for pages in page_points(cx.quick) {
            let count = (262_144 / pages).clamp(1, 64);
            let setup = spaced_ranges(count, pages).and_then(|ranges| {
                let (acct, dom) = mapped_accountant(kind, count * (pages + 1))?;
                Ok((ranges, acct, dom))
            });
            match setup {
                Ok((ranges, acct, dom)) => configs.push((
                    MapConfig {
                        kind,
                        pages,
                        acct,
                        dom,
                    },
                    RangeBench {
                        inject_fwd: harness::injected_op_slowdown("map"),
                        ..RangeBench::new(ranges)
                    },
                )),
                Err(e) => sink.skip(MetricName::Map, format!("{} {pages}: {e}", kind.name())),
            }
        }
    }
    let mut failed = Vec::new();
    in_rounds(
        &cx.plan,
        &mut cx.progress,
        "accountant.map/unmap",
        &mut configs,
        &mut failed,
        |c, bench, n, budget| {
            let acct = std::cell::RefCell::new(&mut c.acct);
            let dom = c.dom;
            bench.sample(
                n,
                budget,
                |r| {
                    acct.borrow_mut()
                        .map(dom, r)
                        .map_err(|e| format!("map: {e}"))
                },
                |r| {
                    acct.borrow_mut()
                        .unmap(dom, r)
                        .map_err(|e| format!("unmap: {e}"))
                },
            )
        },
    );
    for (c, e) in failed {
        sink.skip(
            MetricName::Map,
            format!("{} {}: {e}", c.kind.name(), c.pages),
        );
    }
    for (c, bench) in &configs {
        let params = tracker_params(c.kind, c.pages);
        sink.metrics
            .extend(harness::timing_metric(MetricName::Map, &params, &bench.fwd));
        sink.metrics.extend(harness::timing_metric(
            MetricName::Unmap,
            &params,
            &bench.back,
        ));
    }
}

/// Page counts of the grant / revoke sweep.
fn grant_revoke_points(quick: bool) -> &'static [u64] {
    if quick {
        &[1, 65_536]
    } else {
        &[1, 64, 4096, 65_536, 262_144]
    }
}

/// The params of `accountant.grant` / `accountant.revoke` at `pages` pages.
fn grant_params(pages: u64) -> [(Key, Param); 2] {
    [
        (Key::Space, Param::from("iomem")),
        (Key::Pages, Param::from(pages)),
    ]
}

/// The keys [`grant_revoke`] emits.
pub fn grant_revoke_keys(quick: bool) -> Vec<String> {
    grant_revoke_points(quick)
        .iter()
        .flat_map(|&pages| {
            [MetricName::Grant, MetricName::Revoke].map(|n| key(n, &grant_params(pages)))
        })
        .collect()
}

/// `accountant.grant` / `accountant.revoke`: exclusive grant and plain revoke
/// of unused I/O memory ranges of `pages` pages, in [`RANGE_ROUNDS`]
/// interleaved rounds.
pub fn grant_revoke(cx: &mut Ctx, sink: &mut Sink) {
    let points = grant_revoke_points(cx.quick);
    let mut configs = Vec::new();
    for &pages in points {
        let count = (262_144 / pages).clamp(1, 64);
        let setup = (|| {
            let ranges = spaced_ranges(count, pages)?;
            let mut acct = Accountant::new(TrackerKind::SlabExtent);
            let dom = DomId::new(1).map_err(|e| format!("{e}"))?;
            acct.create(dom).map_err(|e| format!("{e}"))?;
            Ok::<_, String>((ranges, acct, dom))
        })();
        match setup {
            Ok((ranges, acct, dom)) => configs.push((
                (pages, acct, dom),
                RangeBench {
                    inject_fwd: harness::injected_op_slowdown("grant"),
                    ..RangeBench::new(ranges)
                },
            )),
            Err(e) => sink.skip(MetricName::Grant, format!("{pages} pages: {e}")),
        }
    }
    let mut failed = Vec::new();
    in_rounds(
        &cx.plan,
        &mut cx.progress,
        "accountant.grant/revoke",
        &mut configs,
        &mut failed,
        |(_, acct, dom), bench, n, budget| {
            let acct = std::cell::RefCell::new(acct);
            let dom = *dom;
            bench.sample(
                n,
                budget,
                |r| {
                    acct.borrow_mut()
                        .grant(dom, r, Mode::Exclusive, false)
                        .map(drop)
                        .map_err(|e| format!("grant: {e}"))
                },
                |r| {
                    acct.borrow_mut()
                        .revoke(dom, r, false)
                        .map(drop)
                        .map_err(|e| format!("revoke: {e}"))
                },
            )
        },
    );
    for ((pages, _, _), e) in failed {
        sink.skip(MetricName::Grant, format!("{pages} pages: {e}"));
    }
    for ((pages, _, _), bench) in &configs {
        let params = grant_params(*pages);
        sink.metrics.extend(harness::timing_metric(
            MetricName::Grant,
            &params,
            &bench.fwd,
        ));
        sink.metrics.extend(harness::timing_metric(
            MetricName::Revoke,
            &params,
            &bench.back,
        ));
    }
}
