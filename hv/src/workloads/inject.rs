//! The injected hypervisor slowdown, for showing that the gate catches a
//! slower hypervisor step: `IOACCT_INJECT_HV_SLOWDOWN=P` (percent, `0 < P <=
//! 1000`) makes every timed hypervisor step of the paired workloads
//! ([`super::paired`]: bind, unmap, forced revoke) take P % longer, by a busy
//! wait at the end of the timed section sized to that step's own measured
//! duration. Their bare KVM floors are untouched, so `hv.bind_over_floor`,
//! `hv.unmap_over_floor` and `hv.revoke_force_over_floor` grow by about P %.
//! The hypervisor itself is not touched; `hv.accounting_cost` (timed inside
//! the vCPU's exit handler) does not move.
//!
//! The variable is read once per process; a timed step loads the knob
//! before its clock starts, so unset it costs the timed section nothing.

use std::sync::OnceLock;
use std::time::Instant;

/// Environment variable of the injected hypervisor-step slowdown (percent).
pub const ENV: &str = "IOACCT_INJECT_HV_SLOWDOWN";

/// Parses an [`ENV`] value: a percentage in `0 < p <= 1000`.
pub fn parse(v: &str) -> Option<f64> {
    let p: f64 = v.trim().parse().ok()?;
    (p > 0.0 && p <= 1000.0).then_some(p)
}

/// The slowdown [`ENV`] asks for, in percent (`None` when unset or not
/// [`parse`]able), read on first use.
pub fn slowdown() -> Option<f64> {
    static PCT: OnceLock<Option<f64>> = OnceLock::new();
    *PCT.get_or_init(|| std::env::var(ENV).ok().as_deref().and_then(parse))
}

/// Called at the end of a timed step that began at `start`, with the knob's
/// [`slowdown`] read before the step: busy-waits until `pct` % more than
/// the time elapsed since `start` (at the call) has passed.
pub(crate) fn pad(start: Instant, pct: f64) {
    let took = start.elapsed();
    let until = took + took.mul_f64(pct / 100.0);
    while start.elapsed() < until {
        std::hint::spin_loop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn parse_takes_a_percentage_in_range() {
        assert_eq!(parse("10"), Some(10.0));
        assert_eq!(parse(" 60 "), Some(60.0));
        for bad in ["0", "-5", "1001", "1e9", "ten", "", "nan", "inf"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn pad_stretches_the_step_by_its_own_length() {
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(20) {
            std::hint::spin_loop();
        }
        pad(start, 50.0);
        // At least 1.5 × 20 ms; the upper bound only catches a runaway wait.
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(30), "{took:?}");
        assert!(took < Duration::from_secs(5), "{took:?}");
    }
}
