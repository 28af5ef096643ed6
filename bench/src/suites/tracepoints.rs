//! `tracepoints.overhead`: a relaxed load, a disabled and an enabled
//! tracepoint.

use super::{key, Ctx, Sink};
use crate::harness::{self, Measured, Reference};
use reports::{Key, MetricName, Param};
use std::time::Instant;

/// The `state` params of `tracepoints.overhead`, in the order measured.
const TRACEPOINT_STATES: [&str; 3] = ["baseline", "disabled", "enabled"];

/// The keys [`tracepoints`] emits.
pub fn tracepoints_keys(_quick: bool) -> Vec<String> {
    TRACEPOINT_STATES
        .iter()
        .map(|s| {
            key(
                MetricName::TracepointOverhead,
                &[(Key::State, Param::from(*s))],
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
        let params = [(Key::State, Param::from(state))];
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
