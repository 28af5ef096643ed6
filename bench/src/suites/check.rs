//! `check.scale`: `ioacct check` parsing and judging a fleet of guest
//! configurations against a host map, generated in memory
//! (`ioacct_check::scale`). Two fleet sizes run interleaved, round by
//! round, so that the ratio of their times shows whether the cost is
//! linear in the input under the same machine load.

use std::time::Instant;

use ioacct_check::scale;
use reports::{Key, MetricName, Param};

use super::{Ctx, Sink};
use crate::harness::{self, Measured, Reference};

/// The metrics this suite emits.
pub const EMITS: &[MetricName] = &[MetricName::CheckScale];

/// Host PCI functions of the synthetic host map.
pub const DEVICES: usize = 4096;
/// Entries (ranges) per guest configuration.
pub const RANGES: usize = 64;
/// Fleet sizes, interleaved: the 10,000 guests and a quarter of it.
pub const GUESTS: [usize; 2] = [2_500, 10_000];

/// Rounds (each runs every fleet size once).
pub fn rounds(quick: bool) -> usize {
    if quick {
        3
    } else {
        7
    }
}

/// The keys of the metrics this suite emits (the same in quick and full runs).
pub fn keys() -> Vec<String> {
    GUESTS
        .iter()
        .map(|&g| super::key(MetricName::CheckScale, &params(g)))
        .collect()
}

fn params(guests: usize) -> [(Key, Param); 3] {
    [
        (Key::Guests, Param::from(guests as u64)),
        (Key::Ranges, Param::from(RANGES as u64)),
        (Key::Devices, Param::from(DEVICES as u64)),
    ]
}

/// Progress steps.
pub fn steps(quick: bool) -> usize {
    rounds(quick)
}

/// The calling thread's CPU time (user + system) in seconds, from
/// `/proc/thread-self/stat` (clock ticks, 100 per second on Linux): a sample's
/// CPU time beside its wall time shows how much of the wall time was other
/// processes' on a loaded machine. `None` where the file is not there.
fn thread_cpu_s() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields after the command name (which may contain spaces) in parentheses.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after `)`.
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// Runs the suite.
pub fn check_scale(cx: &mut Ctx, sink: &mut Sink) {
    let host = scale::host(DEVICES);
    let fleets: Vec<(usize, Vec<String>)> = GUESTS
        .iter()
        .map(|&g| (g, scale::guest_texts(g, RANGES, DEVICES)))
        .collect();
    let mut measured: Vec<Measured> = fleets
        .iter()
        .map(|_| Measured {
            batch_ops: 1,
            ..Measured::default()
        })
        .collect();
    let reference = Reference::of_ns(1_000_000.0);
    let mut findings = vec![0usize; fleets.len()];
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); fleets.len()];
    for round in 0..rounds(cx.quick) {
        cx.progress.step(&format!(
            "check.scale round {}/{}",
            round + 1,
            rounds(cx.quick)
        ));
        // Alternate which size goes first, so neither always runs on a warmer cache.
        let order: Vec<usize> = if round % 2 == 0 {
            vec![0, 1]
        } else {
            vec![1, 0]
        };
        for i in order {
            let (_, texts) = &fleets[i];
            let c0 = thread_cpu_s();
            let t = Instant::now();
            let outcome = scale::check(texts, &host);
            let ns = t.elapsed().as_nanos() as f64;
            if let (Some(a), Some(b)) = (c0, thread_cpu_s()) {
                cpu[i].push(b - a);
            }
            match outcome {
                Ok(o) => {
                    findings[i] = o.findings.len();
                    drop(o);
                }
                Err(e) => {
                    sink.skip(
                        MetricName::CheckScale,
                        format!("{} guests: {e}", fleets[i].0),
                    );
                    return;
                }
            }
            let m = &mut measured[i];
            m.ns_per_op.push(ns);
            m.norm.push(ns / reference.unit_ns());
            m.cpus.push(harness::cpu_now());
        }
    }
    for (i, (guests, _)) in fleets.iter().enumerate() {
        if let Some(mut metric) =
            harness::timing_metric(MetricName::CheckScale, &params(*guests), &measured[i])
        {
            let mut c = cpu[i].clone();
            c.sort_by(f64::total_cmp);
            let cpu_note = c.get(c.len() / 2).map_or(String::new(), |m| {
                format!("; median thread CPU time {m:.2} s (wall time includes other processes' share of the CPU)")
            });
            metric.note = Some(format!(
                "one whole check (parse {guests} xl.cfg texts of {RANGES} entries + judge against \
                 {DEVICES} functions) per sample; {} findings; sizes interleaved per round{cpu_note}",
                findings[i]
            ));
            sink.metrics.push(metric);
        }
    }
}
