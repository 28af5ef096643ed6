//! In-process latency histograms per event kind, from timed records.
//!
//! Feed drained records with [`LatencyHistograms::record_all`]; read
//! percentiles with [`LatencyHistograms::summary`]. Only timed records (built
//! with [`crate::Record::since`]) carry a duration; instants are counted in
//! [`LatencySummary::untimed`] so a kind with no durations is visible rather
//! than silently empty. Histograms keep 3 significant digits and resize
//! automatically, so any duration up to `u64::MAX` ns is recorded exactly to
//! that precision.

use hdrhistogram::Histogram;

use crate::clock::Calibration;
use crate::{Kind, Record};

/// Percentiles of one kind's durations, in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LatencySummary {
    /// Timed records of this kind.
    pub count: u64,
    /// Untimed records of this kind (instants; no duration to record).
    pub untimed: u64,
    /// Shortest duration.
    pub min: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Longest duration.
    pub max: u64,
    /// Arithmetic mean.
    pub mean: f64,
}

struct PerKind {
    hist: Histogram<u64>,
    untimed: u64,
}

/// One HDR histogram of durations (ns) per [`Kind`].
pub struct LatencyHistograms {
    kinds: Vec<Option<PerKind>>,
}

impl Default for LatencyHistograms {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyHistograms {
    /// Empty histograms.
    pub fn new() -> LatencyHistograms {
        LatencyHistograms {
            kinds: (0..Kind::COUNT).map(|_| None).collect(),
        }
    }

    fn slot(&mut self, kind: Kind) -> Option<&mut PerKind> {
        let entry = self.kinds.get_mut(kind.index())?;
        if entry.is_none() {
            let hist = Histogram::<u64>::new(3)
                .expect("hdrhistogram accepts 0..=5 significant figures; 3 is constant");
            *entry = Some(PerKind { hist, untimed: 0 });
        }
        entry.as_mut()
    }

    /// Adds one record: its duration (converted with `cal`) if timed,
    /// otherwise one to the kind's untimed count. Lost-records markers are
    /// ignored.
    pub fn record(&mut self, r: &Record, cal: &Calibration) {
        if r.kind == Kind::Lost {
            return;
        }
        let timed = r.is_timed();
        let ns = cal.ticks_to_ns(r.duration);
        if let Some(k) = self.slot(r.kind) {
            if timed {
                k.hist.saturating_record(ns);
            } else {
                k.untimed += 1;
            }
        }
    }

    /// Adds every record of the slice.
    pub fn record_all(&mut self, records: &[Record], cal: &Calibration) {
        for r in records {
            self.record(r, cal);
        }
    }

    /// Percentiles for `kind`, or `None` if no record of that kind was seen.
    /// All percentile fields are 0 when only untimed records were seen.
    pub fn summary(&self, kind: Kind) -> Option<LatencySummary> {
        let k = self.kinds.get(kind.index())?.as_ref()?;
        let h = &k.hist;
        Some(LatencySummary {
            count: h.len(),
            untimed: k.untimed,
            min: if h.is_empty() { 0 } else { h.min() },
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
        })
    }

    /// Summaries of every kind seen, in [`Kind::ALL`] order.
    pub fn summaries(&self) -> Vec<(Kind, LatencySummary)> {
        Kind::ALL
            .iter()
            .filter_map(|k| self.summary(*k).map(|s| (*k, s)))
            .collect()
    }

    /// The raw histogram of `kind`, for merging or serialising.
    pub fn histogram(&self, kind: Kind) -> Option<&Histogram<u64>> {
        Some(&self.kinds.get(kind.index())?.as_ref()?.hist)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Stamp;

    #[test]
    fn percentiles_per_kind_from_timed_records() {
        let cal = Calibration {
            ns_per_tick: 1.0,
            tsc_at_calibration: 0,
        };
        let mut h = LatencyHistograms::new();
        for d in 1..=1000u64 {
            let mut r = Record::new(Kind::Map).since(Stamp(1));
            r.duration = d;
            h.record(&r, &cal);
        }
        h.record(&Record::new(Kind::Map), &cal);
        h.record(&Record::lost(5, 1, 1), &cal);
        let s = h.summary(Kind::Map).expect("map records were recorded");
        assert_eq!(s.count, 1000);
        assert_eq!(s.untimed, 1);
        assert_eq!(s.min, 1);
        assert_eq!(s.max, 1000);
        assert!((499..=501).contains(&s.p50), "p50 {}", s.p50);
        assert!((899..=901).contains(&s.p90), "p90 {}", s.p90);
        assert!((989..=991).contains(&s.p99), "p99 {}", s.p99);
        assert!(h.summary(Kind::Bind).is_none());
        assert!(h.summary(Kind::Lost).is_none());
        assert_eq!(h.summaries().len(), 1);
    }
}
