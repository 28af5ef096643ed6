//! The measurement suites behind `results.json`: each function measures one
//! family of metrics and appends them (or a `NotMeasured` with the reason).

pub mod check;
pub mod hv;
mod ports;
mod ranges;
mod tracepoints;
mod tracking;

pub use ports::{
    count_port_checks, granted_ports, port_check, port_check_instructions,
    port_check_instructions_keys, port_check_keys, port_setup, PORT_CHECK_ROUNDS,
};
pub use ranges::{grant_revoke, grant_revoke_keys, map_unmap, RANGE_ROUNDS};
pub use tracepoints::{tracepoints, tracepoints_keys};
pub use tracking::{map_unmap_keys, tracking, tracking_keys};

use crate::harness::{HwCounters, Plan};
use reports::{Key, Metric, MetricName, NotMeasured, Param};

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
pub fn key(name: MetricName, params: &[(Key, Param)]) -> String {
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
