//! A domain-0 guest that maps fresh I/O memory frames in a loop until the
//! hypervisor refuses: it gets the `quota` status (16), host memory grows by
//! a bounded amount, and other domains keep working.
mod common;
use accountant::Quotas;
use common::*;
use hv::exit::StopReason;
use hv::guest::Program;
use hv::hypercall::op;
use hv::layout::{DONE_PORT, HCALL_BLOCK, HCALL_PORT};
use hv::programs::{self, SI_PROGRESS, SI_STATUS};
use iced_x86::code_asm::*;
use std::time::Duration;

/// First frame the loop maps: far above RAM and every platform device,
/// default-accessible to domain 0, unbacked.
const FIRST: u64 = 0x10_0000_0000;

/// `MAP_IOMEM` of one frame at `FIRST`, `FIRST + 2`, `FIRST + 4`, … (a gap
/// between each, so every call adds a run) until a status is non-zero;
/// the count of successful calls goes to `SI_PROGRESS`, the status to
/// `SI_STATUS`.
fn map_fresh_frames() -> Program {
    Program::assemble([0; 4], |a| {
        let mut top = a.create_label();
        let mut end = a.create_label();
        a.mov(rbx, FIRST)?;
        a.xor(r13, r13)?;
        a.set_label(&mut top)?;
        a.mov(qword_ptr(HCALL_BLOCK + 8), rbx)?;
        a.mov(rax, op::MAP_IOMEM)?;
        a.mov(qword_ptr(HCALL_BLOCK), rax)?;
        a.mov(rax, 1u64)?;
        a.mov(qword_ptr(HCALL_BLOCK + 16), rax)?;
        a.mov(qword_ptr(HCALL_BLOCK + 24), 0)?;
        a.mov(edx, HCALL_PORT as u32)?;
        a.in_(eax, dx)?;
        a.test(eax, eax)?;
        a.jnz(end)?;
        a.inc(r13)?;
        a.mov(qword_ptr(SI_PROGRESS), r13)?;
        a.add(rbx, 2)?;
        a.jmp(top)?;
        a.set_label(&mut end)?;
        a.mov(qword_ptr(SI_STATUS), rax)?;
        a.mov(edx, DONE_PORT as u32)?;
        a.xor(eax, eax)?;
        a.out(dx, eax)
    })
    .expect("the program assembles")
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("procfs");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in kB");
    kb * 1024
}

#[test]
fn dom0_mapping_fresh_frames_gets_the_quota_status() {
    let Some(hv) = boot(small()) else { return };
    let before = rss_bytes();
    hv.create_domain(d(0), &map_fresh_frames()).unwrap();
    assert_eq!(
        hv.wait(d(0), Duration::from_secs(600)),
        Some(StopReason::Done(0))
    );
    let grown = rss_bytes().saturating_sub(before);
    let made = hv.read_guest_u64(d(0), SI_PROGRESS).unwrap();
    let status = hv.read_guest_u64(d(0), SI_STATUS).unwrap();
    eprintln!(
        "{made} maps before status {status}; host RSS grew {} KiB",
        grown >> 10
    );
    assert_eq!(status, 16, "the quota status");
    // Each call made one more run of the domain's mappings: the records
    // quota stopped it (a frame quota could not: one frame per call).
    assert_eq!(made, Quotas::DEFAULT_RECORDS);
    assert!(grown < 64 << 20, "host RSS grew {grown} bytes");
    let s = hv.stats(d(0)).unwrap();
    assert_eq!(s.quota_refusals, 1, "{s:?}");
    // Other domains keep working: a driver domain gets device A and drives it.
    domain(&hv, d(1), &programs::driver(20).unwrap())
        .device_a()
        .start();
    assert_eq!(
        hv.wait(d(1), Duration::from_secs(20)),
        Some(StopReason::Done(0))
    );
    assert_eq!(
        hv.read_guest_u64(d(1), SI_STATUS),
        Some(0),
        "d1 mapped its page"
    );
    assert!(hv.device_a_counters()[&1].port_writes >= 20);
    hv.check_invariants().unwrap();
}

#[test]
fn configured_quotas_apply_to_every_domain() {
    let Some(hv) = boot(hv::Config {
        quotas: Some(Quotas {
            frames: 1 << 20,
            records: 100,
        }),
        ..small()
    }) else {
        return;
    };
    hv.create_domain(d(0), &map_fresh_frames()).unwrap();
    assert_eq!(
        hv.wait(d(0), Duration::from_secs(60)),
        Some(StopReason::Done(0))
    );
    assert_eq!(hv.read_guest_u64(d(0), SI_PROGRESS), Some(100));
    assert_eq!(hv.read_guest_u64(d(0), SI_STATUS), Some(16));
}
