//! Host metadata: what machine a result was taken on.
//!
//! Everything is read from `/proc` and `/sys`; anything unreadable becomes
//! `"unknown"` rather than an error, because a result without a CPU model is
//! still a result.

use crate::schema::{CounterStatus, Host};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// Facts parsed from `/proc/cpuinfo` text (the first processor's block).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuInfo {
    /// `model name`.
    pub model: String,
    /// `vendor_id`.
    pub vendor: String,
    /// The `flags` words.
    pub flags: Vec<String>,
}

impl CpuInfo {
    /// Parses `/proc/cpuinfo` text; missing fields are empty.
    pub fn parse(text: &str) -> CpuInfo {
        let mut info = CpuInfo::default();
        for line in text.lines() {
            if line.trim().is_empty() && !info.model.is_empty() {
                break;
            }
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            let v = v.trim();
            match k.trim() {
                "model name" if info.model.is_empty() => info.model = v.to_owned(),
                "vendor_id" if info.vendor.is_empty() => info.vendor = v.to_owned(),
                "flags" if info.flags.is_empty() => {
                    info.flags = v.split_whitespace().map(str::to_owned).collect()
                }
                _ => {}
            }
        }
        info
    }

    /// Whether a flag is present.
    pub fn has(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }
}

/// Turbo state from intel_pstate's `no_turbo` or cpufreq's `boost`.
fn turbo() -> Option<String> {
    if let Some(v) = read_trim("/sys/devices/system/cpu/intel_pstate/no_turbo") {
        return Some(if v == "1" { "off" } else { "on" }.to_owned());
    }
    read_trim("/sys/devices/system/cpu/cpufreq/boost")
        .map(|v| if v == "1" { "on" } else { "off" }.to_owned())
}

fn read_trim(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// The commit of the git work tree at `dir`, if git is installed and it is one.
pub fn git_commit(dir: &Path) -> Option<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (!s.is_empty()).then_some(s)
}

/// Formats seconds since the Unix epoch as RFC 3339 UTC
/// (`2026-11-24T20:31:00Z`).
pub fn rfc3339_utc(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil-from-days (H. Hinnant), valid for all dates after 1970.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Collects the host description; `counters` comes from the harness's probe,
/// `virtualization` from the hypervisor's own detector (`hv::host::detect`,
/// the one place that decides it: this crate does not guess), and `tree` is
/// the source tree whose commit is recorded.
pub fn collect(counters: CounterStatus, virtualization: &str, tree: &Path) -> Host {
    let cpu = CpuInfo::parse(&std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let unknown = || "unknown".to_owned();
    Host {
        cpu_model: if cpu.model.is_empty() {
            unknown()
        } else {
            cpu.model.clone()
        },
        cpu_vendor: if cpu.vendor.is_empty() {
            unknown()
        } else {
            cpu.vendor.clone()
        },
        virtualization: virtualization.to_owned(),
        nested: cpu.has("hypervisor"),
        kernel: read_trim("/proc/sys/kernel/osrelease").unwrap_or_else(unknown),
        commit: git_commit(tree),
        date: rfc3339_utc(now),
        cpus: std::thread::available_parallelism()
            .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
            .unwrap_or(1),
        clocksource: read_trim("/sys/devices/system/clocksource/clocksource0/current_clocksource")
            .unwrap_or_else(unknown),
        invariant_tsc: cpu.has("constant_tsc") && cpu.has("nonstop_tsc"),
        governor: read_trim("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        turbo: turbo(),
        affinity: Default::default(),
        counters,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_first_processor_block() {
        let text = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R)\n\
                    flags\t\t: fpu vmx hypervisor\n\nprocessor\t: 1\nvendor_id\t: Other\n";
        let c = CpuInfo::parse(text);
        assert_eq!(c.vendor, "GenuineIntel");
        assert_eq!(c.model, "Intel(R) Xeon(R)");
        assert!(c.has("vmx") && c.has("hypervisor") && !c.has("svm"));
    }

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(1_795_552_259), "2026-11-24T20:30:59Z");
    }
}
