//! The report's tables: the per-exit table, the framebuffer-load table and
//! the method notes.

use super::{ExitRow, LoadRow};
use crate::goals;
use crate::names::{Key, MetricName};
use crate::schema::{Metric, Param, Results};

/// The Method section: how each kind of number was taken, with the
/// placement and reference facts of this run.
pub(super) fn method(r: &Results) -> Vec<String> {
    let a = &r.host.affinity;
    let mut out = Vec::new();
    let probe: Vec<String> = r
        .named(MetricName::MemslotDelete)
        .filter(|m| m.text(Key::PairedWith) == Some("placement"))
        .map(|m| {
            format!(
                "{} from CPU {}",
                goals::fmt_ns(m.p50),
                m.int(Key::ControlCpu).unwrap_or(0)
            )
        })
        .collect();
    out.push(format!(
        "Placement: the measuring (control-plane) thread ran on CPU {}, every vCPU thread on \
         CPU {} ({}); every sample records the CPU it was taken on (sched_getcpu), and a \
         metric whose samples span CPUs is listed under warnings. Placement matters for KVM \
         itself: a memslot delete waits for SRCU grace periods, and on a small host a new \
         VM's SRCU callbacks run on CPU 0, so the same delete costs different amounts from \
         different CPUs{}. Measuring the bare step and the hypervisor step on different CPUs \
         (or letting the scheduler move the thread between them) distorts their ratio.",
        if a.measure.is_empty() {
            "(not pinned)"
        } else {
            &a.measure
        },
        if a.vcpus.is_empty() {
            "(not pinned)"
        } else {
            &a.vcpus
        },
        if a.how.is_empty() {
            "placement not recorded"
        } else {
            &a.how
        },
        if probe.is_empty() {
            String::new()
        } else {
            format!(
                " — measured in this run, a bare delete of one touched page: {}",
                probe.join(", ")
            )
        }
    ));
    out.push(
        "Floors are paired: every round measures the bare KVM step (memslot add or delete) \
         and the hypervisor step that contains it (hv.bind, hv.unmap, hv.revoke_force) back \
         to back, on the same pinned thread, against the same VM, with its vCPU in the same \
         state (parked in a blocking hypercall, or running in guest mode), the floor first in \
         even rounds; *_over_floor metrics are the per-round ratios, with a 95 % bootstrap \
         interval of their median."
            .to_owned(),
    );
    out.push(
        "Accounting cost (hv.accounting_cost): two hypervisors, accounting on and off (off is \
         Xen's behaviour: the domain's I/O-port rangeset under a read lock, no in-flight \
         section for revocation), each with a guest doing port reads on request; each round \
         asks both in alternating order and takes the median exit-handler time of each side \
         from the hypervisor's handler probe (two TSC reads around the handler, recorded \
         whatever the tracepoints do). Tracepoints stay off on both sides, so no tracepoint \
         cost is in the difference; the probe's own cost is on both sides and cancels."
            .to_owned(),
    );
    out.push(format!(
        "Micro-benchmarks time batches of operations with the monotonic clock \
         (clock_gettime via the vDSO); each sample is one batch's time per operation, \
         followed by the reference workload `{}` ({}; {} ns per unit on this run): a \
         normalized sample is the operation's time in reference units, and the gate judges \
         these within-run ratios. Port checks, maps, grants and revokes are sampled in 12 \
         rounds interleaved across all their configurations, so a passing disturbance on a \
         shared machine touches a slice of every metric instead of all of one.",
        r.run.reference.name, r.run.reference.unit, r.run.reference.ns_per_unit
    ));
    out.push(
        "Port exits (hv.pio_exit) are timed by the guest (lfence; rdtsc around one `in`), \
         normalized by the median bare-KVM exit of the same run. Coordinated omission: \
         closed-loop guest port-access loops are corrected with HdrHistogram's \
         expected-interval correction (interval = the uncorrected median); uncorrected \
         percentiles are kept beside them. Micro-benchmark batches have no intended \
         schedule, so there is no omission to correct."
            .to_owned(),
    );
    out.push(format!(
        "Hardware counters: {}",
        if r.host.counters.detail.is_empty() {
            "not probed".to_owned()
        } else {
            r.host.counters.detail.clone()
        }
    ));
    for w in &r.run.warnings {
        out.push(format!("Warning: {w}"));
    }
    out
}

pub(super) fn exit_table(r: &Results) -> Vec<ExitRow> {
    let source = |row: &Metric| {
        let side = row.text(Key::Side);
        let name = if side == Some("hypervisor") {
            MetricName::ExitHandler
        } else {
            MetricName::PioExit
        };
        let mut params = row.params.clone();
        params.remove(Key::Port.as_str());
        params.remove(Key::Side.as_str());
        r.named(name).find(move |m| m.params == params)
    };
    let mean_sd = |m: &Metric| {
        let n = m.samples.len() as f64;
        (n >= 2.0).then(|| {
            let mean = m.samples.iter().sum::<f64>() / n;
            let var = m.samples.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
            (mean, var.sqrt())
        })
    };
    let rows: Vec<&Metric> = r.named(MetricName::PortExit).collect();
    let mut out: Vec<ExitRow> = rows
        .iter()
        .map(|m| {
            let src = source(m);
            let off = (m.text(Key::Accounting) == Some("on"))
                .then(|| {
                    rows.iter().find(|o| {
                        o.text(Key::Accounting) == Some("off")
                            && o.params.iter().all(|(k, v)| {
                                k == Key::Accounting.as_str() || m.params.get(k) == Some(v)
                            })
                    })
                })
                .flatten();
            ExitRow {
                port: m
                    .params
                    .iter()
                    .filter(|(k, _)| k.as_str() != Key::Side.as_str())
                    .map(|(k, v)| match (Key::parse(k), v) {
                        (Some(Key::Port), Param::Int(p)) => format!("port={p:#06x}"),
                        _ => format!("{k}={v}"),
                    })
                    .collect::<Vec<_>>()
                    .join(" "),
                count: m.count,
                min: m.min,
                p50: m.p50,
                p90: m.p90,
                p99: m.p99,
                p999: m.p999,
                max: m.max,
                raw_p50: m.uncorrected.map(|u| u.p50),
                raw_p99: m.uncorrected.map(|u| u.p99),
                side: m.text(Key::Side).unwrap_or("guest").to_owned(),
                mean_sd: src.and_then(mean_sd),
                share: None,
                on_minus_off: off.map(|o| m.p50 - o.p50),
            }
        })
        .collect();
    for side in ["guest", "hypervisor"] {
        let total: f64 = out
            .iter()
            .filter(|x| x.side == side)
            .filter_map(|x| x.mean_sd.map(|(mean, _)| mean * x.count as f64))
            .sum();
        for x in out.iter_mut().filter(|x| x.side == side) {
            x.share = x
                .mean_sd
                .filter(|_| total > 0.0)
                .map(|(mean, _)| 100.0 * mean * x.count as f64 / total);
        }
    }
    out
}

/// Every `mapped_by=painter` metric measured under both loads: its p50 beside
/// the idle painter and beside the painting one.
pub(super) fn load_table(r: &Results) -> Vec<LoadRow> {
    let rest = |m: &Metric| {
        let mut p = m.params.clone();
        p.remove(Key::Load.as_str());
        p.remove(Key::MappedBy.as_str());
        p
    };
    r.metrics
        .iter()
        .filter(|m| m.text(Key::MappedBy) == Some("painter") && m.text(Key::Load) == Some("none"))
        .filter_map(|idle| {
            let key = rest(idle);
            let paint = r.metrics.iter().find(|m| {
                m.name == idle.name
                    && m.text(Key::MappedBy) == Some("painter")
                    && m.text(Key::Load) == Some("fb-paint")
                    && rest(m) == key
            })?;
            let words: Vec<String> = key.iter().map(|(k, v)| format!("{k}={v}")).collect();
            Some(LoadRow {
                key: format!("{} {}", idle.name, words.join(" "))
                    .trim_end()
                    .to_owned(),
                unit: idle.unit.clone(),
                none: idle.p50,
                paint: paint.p50,
                moved: paint.p50 - idle.p50,
            })
        })
        .collect()
}
