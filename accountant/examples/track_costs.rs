//! Memory and rough time of one large contiguous mapping with each MMIO
//! tracker: `cargo run --release -p accountant --example track_costs`.
//!
//! A quick look for the report; the benchmarks proper are criterion's.

use std::time::Instant;

use accountant::track::new_tracker;
use accountant::{DomId, TrackerKind};

fn main() {
    let base = 0x10_0000u64;
    for pages in [65_536u64, 262_144] {
        for kind in TrackerKind::ALL {
            let mut t = new_tracker(kind);
            if let Err(e) = t.map(DomId::DOM0, base, base + pages - 1) {
                eprintln!("{}: map failed: {e:?}", kind.name());
                return;
            }
            let s = t.stats();
            println!(
                "{:>12} pages={pages:>7} tracking_bytes={:>9} pages_drawn={:>5} records={:>6} record_bytes={:>9} allocations={:>6}",
                kind.name(),
                t.tracking_bytes(),
                s.pages,
                s.records,
                s.record_bytes,
                s.allocations
            );
        }
    }
    let pages = 65_536u64;
    const ROUNDS: usize = 41;
    for kind in TrackerKind::ALL {
        let mut t = new_tracker(kind);
        let mut ns: Vec<u128> = Vec::with_capacity(ROUNDS);
        for _ in 0..ROUNDS {
            let t0 = Instant::now();
            let ok = t.map(DomId::DOM0, base, base + pages - 1).is_ok()
                && t.unmap(DomId::DOM0, base, base + pages - 1).is_ok();
            ns.push(t0.elapsed().as_nanos());
            if !ok {
                eprintln!("{}: map/unmap failed", kind.name());
                return;
            }
        }
        ns.sort_unstable();
        let pct = |p: usize| ns[(ns.len() - 1) * p / 100];
        println!(
            "{:>12} map+unmap of {pages} pages: p10={:>10} ns  p50={:>10} ns  p90={:>10} ns  ({ROUNDS} rounds)",
            kind.name(),
            pct(10),
            pct(50),
            pct(90)
        );
    }
}
