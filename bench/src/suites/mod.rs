//! The measurement suites behind `results.json`: each function measures one
//! family of metrics and appends them (or a `NotMeasured` with the reason).

pub mod hv;

use crate::harness::{self, Calibrated, HwCounters, Measured, Plan, Reference};
use crate::linear::LinearAccessList;
use crate::peers::{bitmap_check, PortBitmaps, PortBus};
use accountant::{Accountant, BootOptions, DomId, Mode, Space, TrackerKind, UnitRange};
use reports::{Metric, MetricName, NotMeasured, Param};
use std::hint::black_box;
use std::time::{Duration, Instant};

pub mod hv_realism;

/// Everything a suite writes into.
#[derive(Default)]
pub struct Sink {
    /// Measured metrics.
    pub metrics: Vec<Metric>,
    /// Skipped measurements.
    pub not_measured: Vec<NotMeasured>,
}

impl Sink {
    /// Records a measurement that was not made, with why.
    pub fn skip(&mut self, name: MetricName, reason: impl Into<String>) {
        self.not_measured.push(NotMeasured {
            name: name.as_str().to_owned(),
            reason: reason.into(),
        });
    }
}

/// Shared state of one run: plan, counters, progress display.
pub struct Ctx {
    /// How long to measure.
    pub plan: Plan,
    /// Quick run (fewer parameter points).
    pub quick: bool,
    /// Hardware counters, when the machine has them.
    pub counters: Option<HwCounters>,
    /// Injected port-check slowdown, percent.
    pub inject: Option<f64>,
    /// Progress display.
    pub progress: crate::Progress,
    /// Where the hypervisor workloads' vCPU threads run.
    pub placement: ::hv::workloads::Setup,
    /// `--only`: the metric-name prefix selected, if any.
    pub only: Option<String>,
    /// The CPU(s) the measuring thread is pinned to, to return to after a
    /// suite moved it.
    pub placement_home: Option<::hv::affinity::CpuSet>,
}

/// `a` then `b` (`C` = `A + B`, checked when the constant is evaluated).
pub const fn concat<const A: usize, const B: usize, const C: usize>(
    a: [MetricName; A],
    b: [MetricName; B],
) -> [MetricName; C] {
    assert!(A + B == C, "concat: C must be A + B");
    let mut out = [MetricName::PortCheck; C];
    let mut i = 0;
    while i < A {
        out[i] = a[i];
        i += 1;
    }
    while i < C {
        out[i] = b[i - A];
        i += 1;
    }
    out
}

/// A metric's key (name and params, as `results.json` identifies it): what a
/// suite declares it emits.
pub fn key(name: MetricName, params: &[(&str, Param)]) -> String {
    Metric::new(name, params).key()
}

/// Grant counts of the port-check sweep.
pub fn grant_points(quick: bool) -> Vec<u64> {
    if quick {
        vec![1, 16, 256, 4096, 65_536]
    } else {
        (0..=8).map(|k| 4u64.pow(k)).collect()
    }
}

/// Page counts of the map and tracking sweeps.
pub fn page_points(quick: bool) -> Vec<u64> {
    if quick {
        vec![1, 64, 4096, 65_536, 262_144]
    } else {
        (0..=9).map(|k| 4u64.pow(k)).collect()
    }
}

/// Domains the port grants are spread over.
const PORT_DOMAINS: u16 = 16;

/// The ports granted in a sweep point of `n` grants (one port each, spread
/// evenly over the port space) and the domain holding each.
pub fn granted_ports(n: u64) -> Vec<(u16, u16)> {
    let n = n.clamp(1, 65_536);
    let stride = 65_536 / n;
    (0..n)
        .map(|i| {
            let port = u16::try_from(i * stride).unwrap_or(u16::MAX);
            (1 + (i % u64::from(PORT_DOMAINS)) as u16, port)
        })
        .collect()
}

/// A reproducible shuffled order of up to 4096 of `ports` to check.
fn check_order(ports: &[(u16, u16)]) -> Vec<(u16, u16)> {
    let mut rng = reports::stats::SplitMix64::new(0x0010_acc7);
    let mut v: Vec<(u16, u16)> = if ports.len() <= 4096 {
        ports.to_vec()
    } else {
        (0..4096).map(|_| ports[rng.below(ports.len())]).collect()
    };
    for i in (1..v.len()).rev() {
        let j = rng.below(i + 1);
        v.swap(i, j);
    }
    v
}

/// The params of `accountant.port_check` for one implementation and grant count.
fn port_params(imp: &str, grants: u64) -> [(&'static str, Param); 2] {
    [("impl", Param::from(imp)), ("grants", Param::from(grants))]
}

/// The keys [`port_check`] emits.
pub fn port_check_keys(quick: bool) -> Vec<String> {
    grant_points(quick)
        .into_iter()
        .flat_map(|g| {
            PORT_IMPLS
                .iter()
                .map(move |imp| key(MetricName::PortCheck, &port_params(imp, g)))
        })
        .collect()
}

/// Builds an accountant (default deny) holding the grants, and the linear
/// list of the same grants in grant order.
pub fn port_setup(ports: &[(u16, u16)]) -> Result<(Accountant, LinearAccessList), String> {
    let opts = BootOptions::parse("io_default=none").map_err(|e| format!("boot: {e}"))?;
    let mut acct =
        Accountant::boot(&opts, TrackerKind::SlabExtent).map_err(|e| format!("boot: {e}"))?;
    for d in 1..=PORT_DOMAINS {
        let dom = DomId::new(u64::from(d)).map_err(|e| format!("domain {d}: {e}"))?;
        acct.create(dom).map_err(|e| format!("create {d}: {e}"))?;
    }
    let mut list = LinearAccessList::new();
    for &(d, p) in ports {
        let dom = DomId::new(u64::from(d)).map_err(|e| format!("domain {d}: {e}"))?;
        let r =
            UnitRange::one(Space::IoPort, u64::from(p)).map_err(|e| format!("port {p}: {e}"))?;
        acct.grant(dom, r, Mode::Exclusive, false)
            .map_err(|e| format!("grant port {p:#x} to {d}: {e}"))?;
        list.grant(d, p, p)
            .map_err(|e| format!("linear grant {p:#x}: {e:?}"))?;
    }
    Ok((acct, list))
}

/// Rounds the port-check samples are split into; every round visits every
/// (implementation, grant count) pair once.
pub const PORT_CHECK_ROUNDS: usize = 12;

/// One point of the port-check sweep: the same grants in every
/// implementation compared.
struct PortPoint {
    grants: u64,
    acct: Accountant,
    /// Checkers bound to domains `0..=PORT_DOMAINS`, indexed by domain (a
    /// vCPU holds its own domain's).
    bound: Vec<accountant::BoundPortChecker>,
    bitmaps: PortBitmaps,
    bus: PortBus,
    list: LinearAccessList,
    order: Vec<(u16, u16)>,
    /// The same grants made through libioacct's C API, with its checkers.
    capi: crate::capi::CAcct,
}

/// The implementations of `accountant.port_check`, by their `impl` param.
const PORT_IMPLS: [&str; 6] = [
    "radix",
    "radix-bound",
    "radix-bound-capi",
    "bitmap",
    "btree",
    "linear",
];

/// Binds `$op` to the check of implementation `$imp` on point `$p` (an
/// allowed access to the `i`-th port of the point's order) and evaluates
/// `$body`; one closure type per implementation, so each is inlined.
macro_rules! with_port_op {
    ($p:expr, $imp:expr, |$op:ident| $body:expr) => {{
        let p: &PortPoint = $p;
        let order = &p.order;
        let len = order.len() as u64;
        match $imp {
            "radix" => {
                let checker = p.acct.port_checker();
                let mut $op = |i: u64| {
                    let (d, port) = order[(i % len) as usize];
                    black_box(checker.check(black_box(d), black_box(port), 1));
                };
                $body
            }
            "radix-bound" => {
                let bound = &p.bound;
                let mut $op = |i: u64| {
                    let (d, port) = order[(i % len) as usize];
                    black_box(bound[usize::from(black_box(d))].check_untraced(black_box(port), 1));
                };
                $body
            }
            "radix-bound-capi" => {
                // The exported C function through an opaque pointer: a call
                // where the Rust bound check is inlined (see `crate::capi`).
                let check = crate::capi::port_check_fn();
                let checkers = &p.capi.checkers;
                let mut $op = |i: u64| {
                    let (d, port) = order[(i % len) as usize];
                    let c = checkers[usize::from(black_box(d))];
                    // SAFETY: `c` is a live checker of `p.capi`.
                    black_box(unsafe { check(c, black_box(port), 1) });
                };
                $body
            }
            "bitmap" => {
                let maps: Vec<_> = (0..=PORT_DOMAINS)
                    .filter_map(|d| p.bitmaps.domain(d))
                    .collect();
                let mut $op = |i: u64| {
                    let (d, port) = order[(i % len) as usize];
                    black_box(bitmap_check(
                        maps[usize::from(black_box(d))],
                        black_box(port),
                        1,
                    ));
                };
                $body
            }
            "btree" => {
                let mut $op = |i: u64| {
                    let (d, port) = order[(i % len) as usize];
                    black_box(p.bus.check(black_box(d), black_box(port), 1));
                };
                $body
            }
            _ => {
                let mut $op = |i: u64| {
                    let (d, port) = order[(i % len) as usize];
                    black_box(p.list.check(black_box(d), black_box(port), 1));
                };
                $body
            }
        }
    }};
}

/// Builds one sweep point of `n` grants, every implementation holding them;
/// `Err` if the setup fails or any implementation denies a granted access.
fn port_point(n: u64) -> Result<PortPoint, String> {
    let ports = granted_ports(n);
    let (mut acct, list) = port_setup(&ports)?;
    let mut bound = Vec::new();
    for d in 0..=PORT_DOMAINS {
        let dom = DomId::new(u64::from(d)).map_err(|e| format!("domain {d}: {e}"))?;
        bound.push(
            acct.bound_port_checker(dom)
                .ok_or_else(|| format!("domain {d}: no bound checker"))?,
        );
    }
    let mut bitmaps = PortBitmaps::new(PORT_DOMAINS + 1);
    let mut bus = PortBus::new();
    for &(d, p) in &ports {
        bitmaps.grant(d, p, p);
        bus.grant(d, p, p);
    }
    // The same boot line as `port_setup`'s.
    let mut capi =
        crate::capi::CAcct::new("io_default=none", TrackerKind::SlabExtent, PORT_DOMAINS)?;
    for &(d, p) in &ports {
        capi.grant_port(d, p)?;
    }
    capi.bind_checkers(PORT_DOMAINS)?;
    let order = check_order(&ports);
    let c = acct.port_checker();
    let check_c = crate::capi::port_check_fn();
    // All must allow every access, or the comparison is meaningless.
    let all_allow = order.iter().all(|&(d, p)| {
        c.check(d, p, 1)
            && bound[usize::from(d)].check(p, 1)
            // SAFETY: a live checker of `capi`.
            && unsafe { check_c(capi.checkers[usize::from(d)], p, 1) }
            && bitmaps.check(d, p, 1)
            && bus.check(d, p, 1)
            && list.check(d, p, 1)
    });
    if !all_allow {
        return Err("a granted port was denied; not timed".to_owned());
    }
    Ok(PortPoint {
        grants: n,
        acct,
        bound,
        bitmaps,
        bus,
        list,
        order,
        capi,
    })
}

/// `accountant.port_check`: the radix check (generic, and bound to the
/// vCPU's domain) against peer designs (a flat per-domain bitmap, a
/// `BTreeMap` bus, the linear list) at each grant count; each check is an
/// allowed access to a random granted port. Samples are taken in
/// [`PORT_CHECK_ROUNDS`] interleaved rounds over all points.
pub fn port_check(cx: &mut Ctx, sink: &mut Sink) {
    let mut points = Vec::new();
    for n in grant_points(cx.quick) {
        match port_point(n) {
            Ok(p) => points.push(p),
            Err(e) => sink.skip(MetricName::PortCheck, format!("{n} grants: {e}")),
        }
    }
    let mut slots: Vec<(&PortPoint, &'static str, Calibrated, Measured)> = Vec::new();
    for p in &points {
        cx.progress.step(&format!(
            "accountant.port_check grants={} (calibrating {})",
            p.grants,
            PORT_IMPLS.join(", ")
        ));
        for imp in PORT_IMPLS {
            let c = with_port_op!(p, imp, |op| Calibrated::new(&cx.plan, cx.inject, &mut op));
            slots.push((p, imp, c, c.empty()));
        }
    }
    // Four times the plan's samples: the gate's headline metric, and cheap;
    // spreading them over more time dilutes a passing disturbance.
    let per_round = (4 * cx.plan.samples).div_ceil(PORT_CHECK_ROUNDS);
    let budget = 4 * cx.plan.budget / PORT_CHECK_ROUNDS as u32;
    for round in 0..PORT_CHECK_ROUNDS {
        cx.progress.step(&format!(
            "accountant.port_check round {}/{PORT_CHECK_ROUNDS}",
            round + 1
        ));
        for (p, imp, c, m) in slots.iter_mut() {
            with_port_op!(p, *imp, |op| c.sample(per_round, budget, &mut op, m));
        }
    }
    for (p, imp, c, m) in &slots {
        let params = port_params(imp, p.grants);
        let Some(mut metric) = harness::timing_metric(MetricName::PortCheck, &params, m) else {
            continue;
        };
        if let Some(hw) = cx.counters.as_mut() {
            let n = c.batch_ops.max(1) * 20;
            if let Some((cyc, ins)) = with_port_op!(p, *imp, |op| hw.per_op(n, &mut op)) {
                metric.cycles_per_op = Some(harness::round4(cyc));
                metric.instructions_per_op = Some(harness::round4(ins));
            }
        }
        sink.metrics.push(metric);
    }
}

const IOMEM_BASE: u64 = 0x10_0000;

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

/// The params of a tracker's metrics at `pages` pages.
fn tracker_params(kind: TrackerKind, pages: u64) -> [(&'static str, Param); 2] {
    [
        ("tracker", Param::from(kind.name())),
        ("pages", Param::from(pages)),
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

/// Page counts of the grant / revoke sweep.
fn grant_revoke_points(quick: bool) -> &'static [u64] {
    if quick {
        &[1, 65_536]
    } else {
        &[1, 64, 4096, 65_536, 262_144]
    }
}

/// The params of `accountant.grant` / `accountant.revoke` at `pages` pages.
fn grant_params(pages: u64) -> [(&'static str, Param); 2] {
    [
        ("space", Param::from("iomem")),
        ("pages", Param::from(pages)),
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

/// The `state` params of `tracepoints.overhead`, in the order measured.
const TRACEPOINT_STATES: [&str; 3] = ["baseline", "disabled", "enabled"];

/// The keys [`tracepoints`] emits.
pub fn tracepoints_keys(_quick: bool) -> Vec<String> {
    TRACEPOINT_STATES
        .iter()
        .map(|s| {
            key(
                MetricName::TracepointOverhead,
                &[("state", Param::from(*s))],
            )
        })
        .collect()
}

/// `tracepoints.overhead`: a relaxed-load baseline, a disabled and an
/// enabled tracepoint (the tracepoints crate's own measuring loop), each
/// loop followed by the reference workload for normalization.
pub fn tracepoints(cx: &mut Ctx, sink: &mut Sink) {
    cx.progress.step("tracepoints.overhead");
    let iters = 20_000u64;
    let samples = (cx.plan.samples / 4).max(20);
    let mut base = Measured::default();
    let mut off = Measured::default();
    let mut on = Measured::default();
    for m in [&mut base, &mut off, &mut on] {
        m.batch_ops = iters;
    }
    let mut reference: Option<Reference> = None;
    let start = Instant::now();
    for i in 0..samples + 2 {
        let s = tracepoints::bench_support::measure_overhead(iters);
        let refr = reference.get_or_insert_with(|| Reference::of_ns(s.baseline_ns * iters as f64));
        let rt = refr.unit_ns();
        if i < 2 {
            continue;
        }
        for (m, v) in [
            (&mut base, s.baseline_ns),
            (&mut off, s.disabled_ns),
            (&mut on, s.enabled_ns),
        ] {
            m.ns_per_op.push(v);
            m.norm.push(v / rt);
            m.cpus.push(harness::cpu_now());
        }
        if start.elapsed() > cx.plan.budget * 2 && base.ns_per_op.len() >= 5 {
            break;
        }
    }
    for (state, m) in TRACEPOINT_STATES.into_iter().zip([&base, &off, &on]) {
        let params = [("state", Param::from(state))];
        if let Some(mut metric) = harness::timing_metric(MetricName::TracepointOverhead, &params, m)
        {
            metric.note = Some(match state {
                "baseline" => "relaxed load of a false flag and a branch".to_owned(),
                "disabled" => "tp! compiled in, tracing off".to_owned(),
                _ => "tracing on, record into the per-thread ring".to_owned(),
            });
            sink.metrics.push(metric);
        }
    }
}

/// Runs `checks` radix port checks of the granted ports of a `grants` sweep
/// point (the body that `ioacct-bench --count-port-checks` executes under
/// callgrind). Returns how many were allowed, so the loop is not dead code.
pub fn count_port_checks(grants: u64, checks: u64) -> Result<u64, String> {
    let ports = granted_ports(grants);
    let order = check_order(&ports);
    let (acct, _) = port_setup(&ports)?;
    let checker = acct.port_checker();
    let mut allowed = 0u64;
    for i in 0..checks {
        let (d, p) = order[(i as usize) % order.len()];
        allowed += u64::from(checker.check_untraced(black_box(d), black_box(p), 1));
    }
    Ok(allowed)
}

/// Instructions executed under callgrind by `ioacct-bench --count-port-checks
/// GRANTS N`, from valgrind's `Collected :` line.
fn callgrind_instructions(grants: u64, checks: u64) -> Result<u64, String> {
    let exe = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
    let out = std::process::Command::new("valgrind")
        .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
        .arg(&exe)
        .args([
            "--count-port-checks",
            &grants.to_string(),
            &checks.to_string(),
        ])
        .output()
        .map_err(|e| format!("valgrind: {e}"))?;
    if !out.status.success() {
        return Err(format!("valgrind exited with {}", out.status));
    }
    let text = String::from_utf8_lossy(&out.stderr);
    text.lines()
        .find_map(|l| {
            l.split_once("Collected :")
                .map(|(_, n)| n.trim().to_owned())
        })
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| "no `Collected :` line in valgrind's output".to_owned())
}

/// Port checks in the two callgrind runs; their difference divides out the
/// setup, which is identical in both.
const CALLGRIND_CHECKS: (u64, u64) = (1_000, 101_000);

/// Grant counts at which the radix check's instructions are counted.
const COUNTED_GRANTS: [u64; 2] = [1, 65_536];

/// The keys [`port_check_instructions`] emits.
pub fn port_check_instructions_keys(_quick: bool) -> Vec<String> {
    COUNTED_GRANTS
        .iter()
        .map(|g| key(MetricName::PortCheckInstructions, &port_params("radix", *g)))
        .collect()
}

/// `accountant.port_check_instructions`: instructions per radix port check,
/// counted by callgrind (deterministic for one binary: the gate compares it
/// exactly). Skipped, and said so, where valgrind is not installed.
pub fn port_check_instructions(cx: &mut Ctx, sink: &mut Sink) {
    const NAME: MetricName = MetricName::PortCheckInstructions;
    for grants in COUNTED_GRANTS {
        cx.progress
            .step(&format!("{NAME} grants={grants} (callgrind)"));
        let (lo, hi) = CALLGRIND_CHECKS;
        let counted = callgrind_instructions(grants, lo)
            .and_then(|a| Ok((a, callgrind_instructions(grants, hi)?)));
        match counted {
            Ok((a, b)) if b > a => {
                let per_check = (b - a) as f64 / (hi - lo) as f64;
                let params = port_params("radix", grants);
                let mut m = Metric::exact(NAME, &params, harness::round4(per_check));
                m.note = Some(format!(
                    "callgrind: (Ir with {hi} checks - Ir with {lo}) / {}",
                    hi - lo
                ));
                sink.metrics.push(m);
            }
            Ok((a, b)) => sink.skip(
                NAME,
                format!("instruction counts did not grow ({a} -> {b})"),
            ),
            Err(e) => {
                sink.skip(NAME, format!("grants={grants}: {e}"));
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn granted_ports_spread_and_distinct() {
        let p = granted_ports(65_536);
        assert_eq!(p.len(), 65_536);
        assert_eq!(p[65_535].1, 0xffff);
        let q = granted_ports(16);
        assert_eq!(q[1].1, 4096);
        assert!(q.iter().all(|&(d, _)| (1..=PORT_DOMAINS).contains(&d)));
    }

    #[test]
    fn radix_and_linear_agree_on_setup() {
        let ports = granted_ports(256);
        let (acct, list) = port_setup(&ports).expect("256 single-port grants succeed");
        let c = acct.port_checker();
        for &(d, p) in &ports {
            assert!(c.check(d, p, 1) && list.check(d, p, 1));
            let other = if d == PORT_DOMAINS { 1 } else { d + 1 };
            assert!(!c.check(other, p, 1) && !list.check(other, p, 1));
        }
        // An ungranted port (between strides) is denied by both.
        assert!(!c.check(1, 1, 1) && !list.check(1, 1, 1));
    }

    #[test]
    fn every_port_check_impl_allows_the_sweep() {
        for n in [1, 4096, 65_536] {
            let p = port_point(n).expect("every implementation allows every granted port");
            assert_eq!(p.bus.len() as u64, n);
            // A port granted to domain d is denied to the next domain in each.
            let (d, port) = p.order[0];
            let other = if d == PORT_DOMAINS { 1 } else { d + 1 };
            assert!(!p.bound[usize::from(other)].check(port, 1));
            assert!(!p.bitmaps.check(other, port, 1) && !p.bus.check(other, port, 1));
            for imp in PORT_IMPLS {
                let mut calls = 0u64;
                with_port_op!(&p, imp, |op| {
                    let f = &mut op;
                    for i in 0..8 {
                        f(i);
                        calls += 1;
                    }
                });
                assert_eq!(calls, 8, "{imp}");
            }
        }
    }

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
                        && m.param("tracker") == Some(&Param::from(t))
                        && m.param("pages") == Some(&Param::from(65_536u64))
                })
                .map(|m| m.value)
        };
        assert_eq!(allocs("slab-page"), Some(65_536.0));
        assert!(allocs("slab-extent").is_some_and(|v| v < 64.0));
    }
}
