//! Tracepoint cost per site, judged within one run against a plain relaxed
//! load (as tracing's `benches/baseline.rs`):
//!
//! * `baseline`: relaxed load of a private flag + a never-taken branch;
//! * `disabled`: the same site as a real `tp!`, tracing off;
//! * `enabled`: tracing on, record written to the thread's ring (drained
//!   outside the timed part every `BATCH` events).
//!
//! `cargo bench -p tracepoints --bench overhead -- --quick`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use tracepoints::bench_support::{baseline_site, traced_site, BATCH};
use tracepoints::Collector;

fn overhead(c: &mut Criterion) {
    let collector = Collector::install();
    let mut g = c.benchmark_group("tracepoints.overhead");

    tracepoints::disable();
    let mut port = 0u64;
    g.bench_function("baseline", |b| {
        b.iter(|| {
            port = port.wrapping_add(1);
            baseline_site(black_box(3), black_box(port));
        })
    });
    g.bench_function("disabled", |b| {
        b.iter(|| {
            port = port.wrapping_add(1);
            traced_site(black_box(3), black_box(port));
        })
    });

    tracepoints::enable();
    collector.clear();
    g.bench_function("enabled", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut done = 0;
            while done < iters {
                let n = BATCH.min(iters - done);
                let t = Instant::now();
                for _ in 0..n {
                    port = port.wrapping_add(1);
                    traced_site(black_box(3), black_box(port));
                }
                total += t.elapsed();
                done += n;
                collector.clear();
            }
            total
        })
    });
    tracepoints::disable();
    let lost = collector.stats().lost_ring_full;
    assert_eq!(lost, 0, "the enabled bench must measure writes, not drops");
    g.finish();
}

criterion_group!(benches, overhead);
criterion_main!(benches);
