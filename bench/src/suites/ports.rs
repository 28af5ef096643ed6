//! `accountant.port_check` (every implementation at every grant count) and
//! `accountant.port_check_instructions` (the radix check under callgrind).

use super::{grant_points, key, Ctx, Sink};
use crate::harness::{self, Calibrated, Measured};
use crate::linear::LinearAccessList;
use crate::peers::{bitmap_check, PortBitmaps, PortBus};
use accountant::{Accountant, BootOptions, DomId, Mode, Space, TrackerKind, UnitRange};
use reports::{Key, Metric, MetricName, Param};
use std::hint::black_box;

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
fn port_params(imp: &str, grants: u64) -> [(Key, Param); 2] {
    [
        (Key::Impl, Param::from(imp)),
        (Key::Grants, Param::from(grants)),
    ]
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
/// (implementation, grant count) pair once. The report's goals resample
/// these rounds, so the number is theirs.
pub const PORT_CHECK_ROUNDS: usize = reports::goals::PORT_CHECK_ROUNDS;

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
    /// `order` as the C loop reads it: `[domain, port]` pairs.
    c_order: Vec<[u16; 2]>,
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
                // From C: one op is `C_CHECKS_PER_CALL` checks by the C
                // loop, each a direct call of `ioacct_port_check8` where the
                // Rust bound check is inlined (see `crate::capi`); the
                // samples are divided back to one check.
                let (checkers, c_order) = (&p.capi.checkers, &p.c_order);
                let n = crate::capi::C_CHECKS_PER_CALL;
                let mut $op = |i: u64| {
                    // SAFETY: `port_point` checked that every domain of the
                    // order has a live checker of `p.capi`.
                    black_box(unsafe {
                        crate::capi::c_port_checks(checkers, c_order, black_box(i) * n, n)
                    });
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
    let c_order: Vec<[u16; 2]> = order.iter().map(|&(d, p)| [d, p]).collect();
    if c_order
        .iter()
        .any(|e| usize::from(e[0]) >= capi.checkers.len())
    {
        return Err("a domain of the order has no C checker".to_owned());
    }
    // All must allow every access, or the comparison is meaningless.
    let all_allow = order.iter().all(|&(d, p)| {
        c.check(d, p, 1)
            && bound[usize::from(d)].check(p, 1)
            // SAFETY: a live checker of `capi`.
            && unsafe { ::ioacct::ioacct_port_check8(capi.checkers[usize::from(d)], p) }
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
        c_order,
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
    // The C row's op is a call of the C loop: back to one check.
    let per_call = crate::capi::C_CHECKS_PER_CALL as f64;
    for (_, imp, _, m) in slots.iter_mut() {
        if *imp == "radix-bound-capi" {
            m.ns_per_op.iter_mut().for_each(|v| *v /= per_call);
            m.norm.iter_mut().for_each(|v| *v /= per_call);
            m.batch_ops *= crate::capi::C_CHECKS_PER_CALL;
        }
    }
    for (p, imp, c, m) in &slots {
        let params = port_params(imp, p.grants);
        let Some(mut metric) = harness::timing_metric(MetricName::PortCheck, &params, m) else {
            continue;
        };
        if *imp == "radix-bound-capi" {
            metric.note = Some(format!(
                "from C: ioacct_port_check8 called directly by a C loop, {} checks per Rust call, per check",
                crate::capi::C_CHECKS_PER_CALL
            ));
        }
        if let Some(hw) = cx.counters.as_mut() {
            let n = c.batch_ops.max(1) * 20;
            if let Some((mut cyc, mut ins)) = with_port_op!(p, *imp, |op| hw.per_op(n, &mut op)) {
                if *imp == "radix-bound-capi" {
                    (cyc, ins) = (cyc / per_call, ins / per_call);
                }
                metric.cycles_per_op = Some(harness::round4(cyc));
                metric.instructions_per_op = Some(harness::round4(ins));
            }
        }
        sink.metrics.push(metric);
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
}
