//! Prints p50/p99 of every hypervisor workload beside its bare-KVM
//! counterpart: `cargo run -p hv --release --example measure [--quick]`.
use hv::acct::Accounting;
use hv::workloads::{self, FB_SCALE_PAGES};

fn pct(v: &mut [u64], p: f64) -> u64 {
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v.get(i).copied().unwrap_or(0)
}

fn show(name: &str, r: Result<Vec<u64>, hv::hv::HvError>) {
    match r {
        Ok(mut v) => {
            let n = v.len();
            let (p50, p99) = (pct(&mut v, 0.5), pct(&mut v, 0.99));
            println!(
                "{name:44} n={n:6}  p50 {:>12.1} µs  p99 {:>12.1} µs",
                p50 as f64 / 1e3,
                p99 as f64 / 1e3
            );
        }
        Err(e) => println!("{name:44} failed: {e}"),
    }
}

fn main() {
    if !hv::host::require_kvm("measure") {
        return;
    }
    let quick = std::env::args().any(|a| a == "--quick");
    let h = hv::host::detect();
    println!(
        "host: {} — {} ({}), kernel {}",
        h.kind.name(),
        h.cpu_model,
        h.cpu_vendor,
        h.kernel
    );
    let n = if quick { 2_000 } else { 20_000 };
    show(
        "bare MMIO exit (CPL3 load, no slot)",
        workloads::bare_mmio_exit(n),
    );
    show(
        "bare exit (in al,0x300; no accountant)",
        workloads::bare_exit(n),
    );
    for tracked in [0, FB_SCALE_PAGES] {
        for acc in [Accounting::Off, Accounting::On] {
            show(
                &format!("hv.pio_exit accounting={} tracked={tracked}", acc.name()),
                workloads::pio_exit(acc, tracked, n),
            );
        }
    }
    let reps = if quick { 5 } else { 20 };
    for pages in [1u64, 16, 256, 4096, FB_SCALE_PAGES] {
        show(
            &format!("bare memslot add pages={pages}"),
            workloads::memslot_add(pages, reps),
        );
        show(
            &format!("hv.bind pages={pages}"),
            workloads::bind(pages, reps),
        );
    }
    let reps = if quick { 2 } else { 11 };
    for pages in [1u64, 256, FB_SCALE_PAGES] {
        show(
            &format!("bare memslot delete (touched) pages={pages}"),
            workloads::memslot_delete(pages, reps),
        );
        show(
            &format!("hv.revoke_force (touched) pages={pages}"),
            workloads::revoke_force(pages, reps),
        );
    }
}
