//! The port access check: with its tracepoint compiled in but off
//! (`PortChecker::check`) against the same check without it
//! (`check_untraced`), at 1 and 65,536 grants, in one run; and the check
//! bound to its domain (`BoundPortChecker`, what a vCPU thread holds).

use std::hint::black_box;

use accountant::{Accountant, DomId, Mode, Space, TrackerKind, UnitRange};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

/// An accountant where domain 1 holds `grants` single-port grants
/// (every port, each a grant of its own, when `grants` is 65,536).
fn with_grants(grants: u64) -> Accountant {
    let mut a = Accountant::new(TrackerKind::SlabExtent);
    let d = DomId::new(1).expect("valid");
    a.create(d).expect("fresh");
    let step = 0x1_0000 / grants;
    for i in 0..grants {
        let p = UnitRange::one(Space::IoPort, i * step).expect("in range");
        a.grant(d, p, Mode::Exclusive, false).expect("free");
    }
    a
}

fn port_check(c: &mut Criterion) {
    tracepoints::disable();
    let mut g = c.benchmark_group("port_check");
    for grants in [1u64, 65_536] {
        let a = with_grants(grants);
        let checker = a.port_checker();
        // Ports spread over the space so the loads touch different leaves.
        let ports: Vec<u16> = (0..256u32).map(|i| (i * 257) as u16).collect();
        g.bench_with_input(
            BenchmarkId::new("traced_off", grants),
            &ports,
            |b, ports| {
                let mut i = 0usize;
                b.iter(|| {
                    i = (i + 1) & 255;
                    black_box(checker.check(1, black_box(ports[i]), 1))
                })
            },
        );
        g.bench_with_input(BenchmarkId::new("untraced", grants), &ports, |b, ports| {
            let mut i = 0usize;
            b.iter(|| {
                i = (i + 1) & 255;
                black_box(checker.check_untraced(1, black_box(ports[i]), 1))
            })
        });
        let mut a = a;
        let bound = a
            .bound_port_checker(DomId::new(1).expect("valid"))
            .expect("in the table");
        g.bench_with_input(
            BenchmarkId::new("bound_untraced", grants),
            &ports,
            |b, ports| {
                let mut i = 0usize;
                b.iter(|| {
                    i = (i + 1) & 255;
                    black_box(bound.check_untraced(black_box(ports[i]), 1))
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, port_check);
criterion_main!(benches);
