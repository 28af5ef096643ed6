//! Criterion benchmarks of the accountant: the port check (radix against the
//! linear access list) over the grant count, map/unmap with each tracker,
//! grant/revoke, and the tracepoint cost against a relaxed-load baseline.
//! `cargo xtask bench` runs the same operations through `ioacct-bench`; these
//! are for interactive work (`cargo bench -p bench`).
use accountant::{Accountant, DomId, Mode, Space, TrackerKind, UnitRange};
use bench::suites::{granted_ports, port_setup};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};

fn port_check(c: &mut Criterion) {
    let mut g = c.benchmark_group("accountant.port_check");
    for n in [1u64, 16, 256, 4096, 65_536] {
        let ports = granted_ports(n);
        let (acct, list) = port_setup(&ports).expect("single-port grants on a default-deny boot");
        let checker = acct.port_checker();
        let len = ports.len();
        g.bench_with_input(BenchmarkId::new("radix", n), &n, |b, _| {
            let mut i = 0usize;
            b.iter(|| {
                let (d, p) = ports[i % len];
                i = i.wrapping_add(7919);
                black_box(checker.check(black_box(d), black_box(p), 1))
            })
        });
        g.bench_with_input(BenchmarkId::new("linear", n), &n, |b, _| {
            let mut i = 0usize;
            b.iter(|| {
                let (d, p) = ports[i % len];
                i = i.wrapping_add(7919);
                black_box(list.check(black_box(d), black_box(p), 1))
            })
        });
    }
    g.finish();
}

fn map_unmap(c: &mut Criterion) {
    let mut g = c.benchmark_group("accountant.map_unmap");
    g.sample_size(10);
    for kind in TrackerKind::ALL {
        for pages in [1u64, 4096, 65_536, 262_144] {
            let mut acct = Accountant::new(kind);
            let dom = DomId::new(1).expect("1 is a valid domain id");
            acct.create(dom).expect("fresh domain");
            let r = UnitRange::new(Space::IoMem, 0x10_0000, 0x10_0000 + pages - 1)
                .expect("range inside iomem");
            acct.grant(dom, r, Mode::Exclusive, false)
                .expect("unreserved range");
            g.bench_with_input(BenchmarkId::new(kind.name(), pages), &pages, |b, _| {
                b.iter(|| {
                    acct.map(dom, r).expect("granted range maps");
                    acct.unmap(dom, r).expect("mapped range unmaps");
                })
            });
        }
    }
    g.finish();
}

fn grant_revoke(c: &mut Criterion) {
    let mut g = c.benchmark_group("accountant.grant_revoke");
    for pages in [1u64, 65_536] {
        let mut acct = Accountant::new(TrackerKind::SlabExtent);
        let dom = DomId::new(1).expect("1 is a valid domain id");
        acct.create(dom).expect("fresh domain");
        let r = UnitRange::new(Space::IoMem, 0x10_0000, 0x10_0000 + pages - 1)
            .expect("range inside iomem");
        g.bench_with_input(BenchmarkId::from_parameter(pages), &pages, |b, _| {
            b.iter(|| {
                acct.grant(dom, r, Mode::Exclusive, false)
                    .expect("free range");
                acct.revoke(dom, r, false).expect("granted range");
            })
        });
    }
    g.finish();
}

static FLAG: AtomicBool = AtomicBool::new(false);

fn tracepoint(c: &mut Criterion) {
    let mut g = c.benchmark_group("tracepoints.overhead");
    g.bench_function("baseline-relaxed-load", |b| {
        b.iter(|| {
            if FLAG.load(Ordering::Relaxed) {
                black_box(1);
            }
        })
    });
    tracepoints::disable();
    g.bench_function("disabled", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i = i.wrapping_add(1);
            tracepoints::bench_support::traced_site(black_box(3), black_box(i & 0xffff))
        })
    });
    g.finish();
}

criterion_group!(benches, port_check, map_unmap, grant_revoke, tracepoint);
criterion_main!(benches);
