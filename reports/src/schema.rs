//! The `results.json` schema (SPEC section 5), version [`SCHEMA`].
//!
//! `{"schema": 1, "host": {...}, "metrics": [...]}`: every metric carries its
//! name, unit, parameters (every parameter is a dimension of the metric),
//! headline value, HDR percentiles and the raw samples the gate's statistical
//! test needs. Measurements that could not be made are listed in
//! `not_measured` with the reason, never filled with invented numbers.

use crate::names::{Key, MetricName};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The schema version this crate reads and writes.
pub const SCHEMA: u32 = 1;

/// One results file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Results {
    /// Always [`SCHEMA`].
    pub schema: u32,
    /// Where and when the numbers were taken.
    pub host: Host,
    /// How the run was made (quick or full, wall time, command line).
    #[serde(default)]
    pub run: RunInfo,
    /// The measurements.
    pub metrics: Vec<Metric>,
    /// Measurements the harness skipped, each with why.
    #[serde(default)]
    pub not_measured: Vec<NotMeasured>,
}

/// How a run was made.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// `--quick` was given.
    pub quick: bool,
    /// Wall-clock seconds the measuring took (not counting the build).
    pub wall_secs: f64,
    /// The harness arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment knobs that change results (e.g. the injected slowdown).
    #[serde(default)]
    pub knobs: BTreeMap<String, String>,
    /// The workload normalized samples are divided by.
    #[serde(default)]
    pub reference: Reference,
    /// Things a reader of these numbers must know (samples of one metric
    /// taken on several CPUs, a refused pin, a missing counter).
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// The reference workload behind `norm_samples`: a normalized sample is the
/// operation's time divided by the time of one reference unit measured
/// right after it, so it is "reference units per operation".
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Reference {
    /// Its name and version; normalized values from references of different
    /// names are not comparable.
    pub name: String,
    /// What one unit is.
    pub unit: String,
    /// Nanoseconds per unit at the start of this run (for scale only).
    pub ns_per_unit: f64,
}

/// Where the measuring thread and the vCPU threads ran.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    /// CPUs the measuring (control-plane) thread was pinned to, `taskset`
    /// style; empty if not pinned.
    pub measure: String,
    /// CPUs the vCPU threads were pinned to; empty if not pinned.
    pub vcpus: String,
    /// How the placement was chosen (`--cpus`, or the default and why).
    pub how: String,
    /// The pin was refused (errno), so the scheduler placed the thread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<i32>,
}

/// The machine a result was taken on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Host {
    /// `model name` from `/proc/cpuinfo`.
    pub cpu_model: String,
    /// `vendor_id` from `/proc/cpuinfo` (`GenuineIntel`, `AuthenticAMD`).
    pub cpu_vendor: String,
    /// `vt-x`, `amd-v`, `pvm` (software virtualization: `/sys/module/kvm_pvm`
    /// present and no vmx/svm flag) or `none`.
    pub virtualization: String,
    /// Whether this host is itself a guest (`hypervisor` cpuinfo flag); the
    /// KVM it offers is then nested or, with PVM, software.
    pub nested: bool,
    /// `uname -r` equivalent from `/proc/sys/kernel/osrelease`.
    pub kernel: String,
    /// `git rev-parse HEAD` of the measured tree, if git could tell.
    pub commit: Option<String>,
    /// When the run started, RFC 3339 UTC.
    pub date: String,
    /// Online CPUs.
    pub cpus: u32,
    /// The kernel clocksource behind `Instant` (e.g. `tsc`, `kvm-clock`).
    pub clocksource: String,
    /// Whether the timestamp counter is invariant (`constant_tsc` and
    /// `nonstop_tsc` flags).
    pub invariant_tsc: bool,
    /// CPU frequency governor of cpu0, if cpufreq is exposed.
    pub governor: Option<String>,
    /// Turbo / boost state (`on`, `off`), if the kernel exposes it.
    #[serde(default)]
    pub turbo: Option<String>,
    /// Thread placement of the run.
    #[serde(default)]
    pub affinity: Placement,
    /// Hardware performance counters: available or why not.
    pub counters: CounterStatus,
}

/// Whether hardware counters (cycles, instructions) could be opened.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CounterStatus {
    /// Both the cycles and instructions counters opened and counted.
    pub available: bool,
    /// The OS error number when opening failed (e.g. 2 = ENOENT: the
    /// (virtual) PMU has no such event).
    pub errno: Option<i32>,
    /// Human-readable explanation, including the fallback clocks used.
    pub detail: String,
}

/// A parameter value: a number or a word.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Param {
    /// A count (grants, pages, port numbers).
    Int(u64),
    /// A name (`radix`, `slab-extent`, `on`).
    Str(String),
}

impl Param {
    /// The numeric value, if this is a number.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Param::Int(v) => Some(*v),
            Param::Str(_) => None,
        }
    }

    /// The word, if this is a word.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Param::Int(_) => None,
            Param::Str(s) => Some(s),
        }
    }
}

impl fmt::Display for Param {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Param::Int(v) => write!(f, "{v}"),
            Param::Str(s) => f.write_str(s),
        }
    }
}

impl From<u64> for Param {
    fn from(v: u64) -> Param {
        Param::Int(v)
    }
}

impl From<&str> for Param {
    fn from(v: &str) -> Param {
        Param::Str(v.to_owned())
    }
}

/// One measured quantity at one point of its parameter space.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// Dotted name, e.g. `accountant.port_check`.
    pub name: String,
    /// `ns`, `bytes`, `count`, `ratio`.
    pub unit: String,
    /// The dimensions (`impl`, `grants`, `tracker`, `pages`, ...).
    pub params: BTreeMap<String, Param>,
    /// Headline value: the median for timings, the exact value for
    /// deterministic measures.
    pub value: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest sample.
    pub max: f64,
    /// Smallest sample.
    #[serde(default)]
    pub min: f64,
    /// Number of observations behind the percentiles (operations for
    /// per-operation timings recorded one by one, batches otherwise).
    #[serde(default)]
    pub count: u64,
    /// Whether this is exact and reproducible (byte and allocation counts);
    /// the gate compares such values without statistics.
    #[serde(default)]
    pub deterministic: bool,
    /// Raw samples in `unit` (per batch for micro-benchmarks; a bounded
    /// evenly strided subset for long latency records).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<f64>,
    /// Each sample divided by an interleaved reference workload timed right
    /// after it in the same run: a within-run ratio that cancels frequency
    /// and load changes; what the gate tests. For range operations (up to
    /// tens of milliseconds) the divisor is the median of the reference's
    /// timed chunks (`bench::harness::Reference`), so one preemption of the
    /// reference does not move the sample.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub norm_samples: Vec<f64>,
    /// Percentile spectrum `[p, value]` from the HDR histogram (p in 0..1),
    /// for plotting on a 1/(1-p) axis.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spectrum: Vec<[f64; 2]>,
    /// Percentiles before coordinated-omission correction, where the main
    /// ones are corrected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uncorrected: Option<Percentiles>,
    /// Between-run noise of this metric: the largest relative deviation of
    /// a run's median normalized sample from the median over several A/A
    /// runs of the same build (set in baselines by `cargo xtask gate
    /// --make-baseline`). The gate widens its minimum effect to cover it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise: Option<f64>,
    /// CPU cycles per operation from a hardware counter, when available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cycles_per_op: Option<f64>,
    /// Retired instructions per operation, when available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions_per_op: Option<f64>,
    /// Free-form remark shown in the report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The CPU each entry of `samples` was taken on (`sched_getcpu` of the
    /// thread that took it); empty where not recorded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u32>,
    /// A 95 % bootstrap confidence interval of the headline value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci95: Option<[f64; 2]>,
}

/// A percentile summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}

/// A measurement the harness did not make.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NotMeasured {
    /// The metric name it would have had.
    pub name: String,
    /// Why not (missing device, missing component, errno).
    pub reason: String,
}

impl Metric {
    /// A metric with a name, unit and parameters and nothing measured yet.
    pub fn new(name: MetricName, params: &[(Key, Param)]) -> Metric {
        Metric {
            name: name.as_str().to_owned(),
            unit: name.unit().as_str().to_owned(),
            params: params
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                .collect(),
            ..Metric::default()
        }
    }

    /// An exact, reproducible value (bytes, counts).
    pub fn exact(name: MetricName, params: &[(Key, Param)], value: f64) -> Metric {
        let mut m = Metric::new(name, params);
        m.deterministic = true;
        m.value = value;
        m.p50 = value;
        m.p90 = value;
        m.p99 = value;
        m.p999 = value;
        m.max = value;
        m.min = value;
        m.count = 1;
        m
    }

    /// Whether this is a `name` metric.
    pub fn is(&self, name: MetricName) -> bool {
        self.name == name.as_str()
    }

    /// The typed name, if this build knows it.
    pub fn metric_name(&self) -> Option<MetricName> {
        MetricName::parse(&self.name)
    }

    /// Name and parameters, `name k=v k=v` (the metric's identity).
    pub fn key(&self) -> String {
        let mut k = self.name.clone();
        for (name, v) in &self.params {
            k.push(' ');
            k.push_str(name);
            k.push('=');
            k.push_str(&v.to_string());
        }
        k
    }

    /// A parameter by key.
    pub fn param(&self, key: Key) -> Option<&Param> {
        self.params.get(key.as_str())
    }

    /// A numeric parameter (`pages`, `grants`, …); `None` when absent or a word.
    pub fn int(&self, key: Key) -> Option<u64> {
        self.param(key).and_then(Param::as_u64)
    }

    /// A word parameter (`impl`, `tracker`, …); `None` when absent or a number.
    pub fn text(&self, key: Key) -> Option<&str> {
        self.param(key).and_then(Param::as_str)
    }

    /// Whether the parameter `key` is the word `word`.
    pub fn has(&self, key: Key, word: &str) -> bool {
        self.text(key) == Some(word)
    }

    /// Sets the headline value (the median), the percentiles, the minimum
    /// and the count from a summary of `count` observations.
    pub fn set_summary(&mut self, p: Percentiles, min: f64, count: u64) {
        self.value = p.p50;
        self.p50 = p.p50;
        self.p90 = p.p90;
        self.p99 = p.p99;
        self.p999 = p.p999;
        self.max = p.max;
        self.min = min;
        self.count = count;
    }

    /// The percentile summary of this metric.
    pub fn percentiles(&self) -> Percentiles {
        Percentiles {
            p50: self.p50,
            p90: self.p90,
            p99: self.p99,
            p999: self.p999,
            max: self.max,
        }
    }
}

/// Reading a results file failed.
#[derive(Debug)]
pub enum LoadError {
    /// The file could not be read.
    Io(std::path::PathBuf, std::io::Error),
    /// The file is not valid results JSON.
    Parse(std::path::PathBuf, serde_json::Error),
    /// The schema version is not [`SCHEMA`].
    Schema(std::path::PathBuf, u32),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            LoadError::Parse(p, e) => write!(f, "{}: not a results file: {e}", p.display()),
            LoadError::Schema(p, v) => write!(
                f,
                "{}: schema {v}, this build reads schema {SCHEMA}",
                p.display()
            ),
        }
    }
}

impl std::error::Error for LoadError {}

impl Results {
    /// Parses results JSON, checking the schema version.
    pub fn from_json(path: &std::path::Path, text: &str) -> Result<Results, LoadError> {
        let r: Results =
            serde_json::from_str(text).map_err(|e| LoadError::Parse(path.to_owned(), e))?;
        if r.schema != SCHEMA {
            return Err(LoadError::Schema(path.to_owned(), r.schema));
        }
        Ok(r)
    }

    /// Reads and parses a results file.
    pub fn load(path: &std::path::Path) -> Result<Results, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|e| LoadError::Io(path.to_owned(), e))?;
        Results::from_json(path, &text)
    }

    /// The results as pretty JSON.
    pub fn to_json(&self) -> String {
        // Serializing plain data (strings, finite or non-finite floats, maps
        // with string keys) cannot fail: serde_json writes non-finite floats
        // as null.
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// Metrics with a given name.
    pub fn named(&self, name: MetricName) -> impl Iterator<Item = &Metric> + '_ {
        self.metrics.iter().filter(move |m| m.is(name))
    }

    /// The metric with this name whose parameters include all of `params`.
    pub fn find(&self, name: MetricName, params: &[(Key, Param)]) -> Option<&Metric> {
        self.metrics
            .iter()
            .find(|m| m.is(name) && params.iter().all(|(k, v)| m.param(*k) == Some(v)))
    }
}
