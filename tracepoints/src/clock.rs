//! Clock calibration: converting [`crate::Record::tsc`] ticks to nanoseconds.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long [`Calibration::global`] spins to measure the TSC rate. Longer is
/// more precise (the error is about the `Instant` resolution divided by this)
/// but delays the first [`crate::Collector::install`].
pub const CALIBRATION_WINDOW: Duration = Duration::from_millis(20);

/// The process-wide origin of the fallback monotonic clock (non-x86_64).
#[allow(dead_code)] // used only where there is no TSC
fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// Nanoseconds since the first call, from `Instant`; the clock used instead
/// of the TSC on targets that have none. Starts at 1 so a stamp is never 0.
#[allow(dead_code)] // used only where there is no TSC
pub(crate) fn monotonic_ns() -> u64 {
    u64::try_from(origin().elapsed().as_nanos())
        .unwrap_or(u64::MAX)
        .saturating_add(1)
}

/// The measured rate of the record clock against `std::time::Instant`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Calibration {
    /// Nanoseconds per clock tick (about `1 / GHz` for a TSC, exactly 1.0 for
    /// the monotonic fallback).
    pub ns_per_tick: f64,
    /// A clock reading taken during calibration; exporters use the earliest
    /// record instead, this is only a reference point.
    pub tsc_at_calibration: u64,
}

impl Calibration {
    /// Measures the clock rate by spinning for `window` and comparing the
    /// clock's advance with `Instant`'s. Returns a 1:1 calibration when the
    /// clock did not advance (no TSC) so conversions never divide by zero.
    pub fn measure(window: Duration) -> Calibration {
        let i0 = Instant::now();
        let t0 = crate::now_tsc();
        while i0.elapsed() < window {
            std::hint::spin_loop();
        }
        let t1 = crate::now_tsc();
        let elapsed_ns = i0.elapsed().as_nanos() as f64;
        let ticks = t1.saturating_sub(t0);
        let ns_per_tick = if ticks == 0 || cfg!(not(target_arch = "x86_64")) {
            1.0
        } else {
            elapsed_ns / ticks as f64
        };
        Calibration {
            ns_per_tick,
            tsc_at_calibration: t1,
        }
    }

    /// The process-wide calibration, measured once over
    /// [`CALIBRATION_WINDOW`] on first use.
    pub fn global() -> Calibration {
        static GLOBAL: OnceLock<Calibration> = OnceLock::new();
        *GLOBAL.get_or_init(|| Calibration::measure(CALIBRATION_WINDOW))
    }

    /// Converts a tick count (a duration) to nanoseconds, rounded, saturating.
    pub fn ticks_to_ns(&self, ticks: u64) -> u64 {
        let ns = (ticks as f64 * self.ns_per_tick).round();
        if ns >= u64::MAX as f64 {
            u64::MAX
        } else {
            ns as u64
        }
    }

    /// Nanoseconds from `base` to `tsc` (0 if `tsc` is earlier).
    pub fn ns_since(&self, base: u64, tsc: u64) -> u64 {
        self.ticks_to_ns(tsc.saturating_sub(base))
    }

    /// The CPU's apparent clock rate in GHz (ticks per nanosecond).
    pub fn ghz(&self) -> f64 {
        1.0 / self.ns_per_tick
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_matches_instant_over_a_sleep() {
        let cal = Calibration::measure(Duration::from_millis(5));
        assert!(cal.ns_per_tick > 0.0);
        let t0 = crate::now_tsc();
        let i0 = Instant::now();
        std::thread::sleep(Duration::from_millis(30));
        let ticks = crate::now_tsc() - t0;
        let real = i0.elapsed().as_nanos() as f64;
        let conv = cal.ticks_to_ns(ticks) as f64;
        // Generous bound: a shared machine can stall either clock reading.
        assert!(
            (conv / real - 1.0).abs() < 0.2,
            "converted {conv} ns vs measured {real} ns"
        );
    }

    #[test]
    fn conversions_saturate_and_clamp() {
        let cal = Calibration {
            ns_per_tick: 2.0,
            tsc_at_calibration: 0,
        };
        assert_eq!(cal.ticks_to_ns(10), 20);
        assert_eq!(cal.ticks_to_ns(u64::MAX), u64::MAX);
        assert_eq!(cal.ns_since(100, 50), 0);
        assert_eq!(cal.ns_since(100, 150), 100);
    }
}
