//! Hypervisor workloads for `cargo xtask bench`: each runs real guests on
//! `/dev/kvm` and returns raw samples in nanoseconds, one per measured step.
//! Each hypervisor step has a bare-KVM counterpart measured the same way, so
//! the report can show the accounting's share beside KVM's own cost.
//!
//! | function | metric | what one sample is |
//! |---|---|---|
//! | [`pio_exit`] | `hv.pio_exit` | guest-timed (`lfence; rdtsc`) round trip of one `in al, 0x300`, accounting on or off, with N framebuffer pages tracked by the accountant |
//! | [`bare_exit`] | (baseline) | the same instruction in a bare VM whose exit handler only answers |
//! | [`bare_mmio_exit`] | (reference) | a CPL3 load from an unmapped address: the cheapest exit to user space (no #GP trap on PVM) |
//! | [`paired::bind`] | `hv.bind`, `hv.memslot_add`, `hv.bind_over_floor` | `Hypervisor::map` of N framebuffer pages, paired with a bare memslot add on the same VM |
//! | [`paired::unmap`] | `hv.unmap`, `hv.unmap_over_floor` | `Hypervisor::unmap` of N touched pages, paired with a bare memslot delete |
//! | [`paired::revoke_force`] | `hv.revoke_force`, `hv.revoke_force_over_floor` | forced revoke of N touched pages (vCPU parked or running), paired with a bare memslot delete |
//! | [`paired::accounting_cost`] | `hv.accounting_cost`, `hv.exit_handler` | exit-handler time with accounting on minus off, per round |
//!
//! On PVM a CPL3 `in` reaches the hypervisor through the #GP trap path
//! ([`crate::pvio`]); the bare baseline goes through the same path, so the
//! difference is the hypervisor's own work (accountant check, device model).
//! Every function takes the sample count; none of them asserts a speed.

pub mod paired;

pub use paired::Setup;

use crate::acct::Accounting;
use crate::exit::{Bare, StopReason};
use crate::layout;
use crate::mem::PAGE_SIZE;
use crate::platform::{DEVICE_A_DATA, DEVICE_A_PORTS, FB_FRAME};
use crate::programs;
use crate::vcpu::{self, VcpuCtl};
use crate::vm::GuestVm;
use crate::{Config, HvError, Hypervisor};
use accountant::{DomId, Mode, Space, UnitRange};
use kvm_ioctls::Kvm;
use std::time::{Duration, Instant};

pub mod fb_load;
pub mod inject;
pub mod irq;
pub mod smp;

/// Framebuffer scale: 256 MiB in pages.
pub const FB_SCALE_PAGES: u64 = 65_536;

const WAIT: Duration = Duration::from_secs(600);

fn d(n: u16) -> DomId {
    // Small literal ids are always valid.
    DomId::new(n as u64).expect("ids below MAX_DOMID are valid")
}

fn fb_range(pages: u64) -> Result<UnitRange, HvError> {
    Ok(UnitRange::new(
        Space::IoMem,
        FB_FRAME,
        FB_FRAME + pages.max(1) - 1,
    )?)
}

/// Device A's port range (what the port-loop guests are granted).
fn device_a_ports() -> Result<UnitRange, HvError> {
    Ok(UnitRange::new(
        Space::IoPort,
        DEVICE_A_PORTS.0 as u64,
        DEVICE_A_PORTS.1 as u64,
    )?)
}

fn fb_bytes_for(pages: u64) -> u64 {
    (pages.max(1) * PAGE_SIZE).max(crate::platform::DEFAULT_FB_BYTES)
}

fn ram_for_samples(n: usize) -> u64 {
    (layout::DATA + n as u64 * 8)
        .div_ceil(PAGE_SIZE)
        .saturating_mul(PAGE_SIZE)
        .max(layout::DEFAULT_RAM)
}

fn to_ns(cycles: &[u64], tsc_khz: u32) -> Vec<u64> {
    let khz = if tsc_khz == 0 {
        calibrate_tsc_khz()
    } else {
        tsc_khz as u64
    };
    cycles
        .iter()
        .map(|c| (*c as u128 * 1_000_000 / khz.max(1) as u128) as u64)
        .collect()
}

/// TSC kHz measured against the monotonic clock (when KVM will not say).
fn calibrate_tsc_khz() -> u64 {
    // SAFETY: `rdtsc` has no memory effects; x86_64 always has it.
    let t0 = unsafe { core::arch::x86_64::_rdtsc() };
    let s = Instant::now();
    std::thread::sleep(Duration::from_millis(20));
    // SAFETY: as above.
    let t1 = unsafe { core::arch::x86_64::_rdtsc() };
    let us = s.elapsed().as_micros().max(1) as u64;
    (t1.wrapping_sub(t0)) * 1000 / us
}

/// `n` samples at `gpa` could not be read.
fn samples_unreadable(gpa: u64, n: usize) -> HvError {
    HvError::GuestRam {
        gpa,
        bytes: (n as u64).saturating_mul(8),
    }
}

fn stopped(what: &'static str, r: Option<StopReason>) -> Result<(), HvError> {
    match r {
        Some(StopReason::Done(0)) => Ok(()),
        stop => Err(HvError::GuestFailed { what, stop }),
    }
}

/// `n` PIO exit round trips (ns) of `in al, 0x300` from a domain holding
/// device A's ports, with `accounting` on or off and `tracked_pages`
/// framebuffer pages mapped by domain 0 (so the accountant tracks them).
pub fn pio_exit(
    accounting: Accounting,
    tracked_pages: u64,
    n: usize,
    setup: &Setup,
) -> Result<Vec<u64>, HvError> {
    let hv = Hypervisor::boot(Config {
        accounting,
        fb_bytes: fb_bytes_for(tracked_pages),
        vcpu_cpus: setup.vcpu_cpus.clone(),
        ..Config::default()
    })?;
    if tracked_pages > 0 {
        hv.map(d(0), fb_range(tracked_pages)?)?;
    }
    let prog = programs::port_loop(DEVICE_A_DATA, n as u64)?;
    hv.create_domain_paused(d(1), &prog, ram_for_samples(n))?;
    let ports = device_a_ports()?;
    hv.grant(d(1), ports, Mode::Exclusive, false)?;
    hv.start(d(1))?;
    stopped("pio_exit guest", hv.wait(d(1), WAIT))?;
    let cycles = hv
        .read_guest_u64s(d(1), layout::DATA, n)
        .ok_or(samples_unreadable(layout::DATA, n))?;
    Ok(to_ns(&cycles, hv.tsc_khz(d(1))))
}

fn kvm() -> Result<Kvm, HvError> {
    Kvm::new().map_err(|e| HvError::NoKvm(e.errno()))
}

/// Runs a bare VM's vCPU to completion on a thread placed like the
/// hypervisor's vCPU threads.
fn run_bare(vm: &GuestVm, vcpu: &mut kvm_ioctls::VcpuFd, setup: &Setup) -> Result<(), HvError> {
    let r = std::thread::scope(|s| {
        s.spawn(|| {
            if let Some(cpus) = &setup.vcpu_cpus {
                let _ = crate::affinity::pin_current(cpus);
            }
            let ctl = VcpuCtl::default();
            // Every port read answered with a constant: the bare cost of an exit.
            vcpu::run(vcpu, &vm.ram, &mut Bare::new(|_, _| Some(0)), &ctl)
        })
        .join()
    })
    .map_err(|_| HvError::VcpuPanicked)?;
    stopped("bare guest", Some(r))
}

/// `n` bare exit round trips (ns): the guest of [`pio_exit`] in a VM with no
/// accountant and no device model.
pub fn bare_exit(n: usize, setup: &Setup) -> Result<Vec<u64>, HvError> {
    bare_samples(&programs::port_loop(DEVICE_A_DATA, n as u64)?, n, setup)
}

/// `n` bare MMIO exit round trips (ns): a CPL3 load from an address with
/// no memslot, answered by a handler that does nothing else. On PVM this is
/// the cheapest way for CPL3 code to reach user space (no #GP trap), the
/// reference that shows what the port trap path adds.
pub fn bare_mmio_exit(n: usize, setup: &Setup) -> Result<Vec<u64>, HvError> {
    bare_samples(&programs::mmio_loop(0xfed0_0000, n as u64)?, n, setup)
}

/// Runs a timing loop `prog` of `n` samples in a bare VM and returns them
/// in ns (the guest stores TSC deltas at [`layout::DATA`]).
fn bare_samples(
    prog: &crate::guest::Program,
    n: usize,
    setup: &Setup,
) -> Result<Vec<u64>, HvError> {
    let kvm = kvm()?;
    let (vm, mut vcpu) = GuestVm::new(&kvm, ram_for_samples(n), 4, 1, prog)?;
    let khz = vcpu.get_tsc_khz().unwrap_or(0);
    run_bare(&vm, &mut vcpu, setup)?;
    let mut buf = vec![0u8; n * 8];
    vm.ram
        .read(layout::DATA, &mut buf)
        .ok_or(samples_unreadable(layout::DATA, n))?;
    let cycles: Vec<u64> = buf
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
        .collect();
    Ok(to_ns(&cycles, khz))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guest_that_did_not_finish_cleanly_is_its_own_error() {
        assert_eq!(stopped("g", Some(StopReason::Done(0))), Ok(()));
        for stop in [Some(StopReason::Killed), Some(StopReason::Done(1)), None] {
            assert_eq!(
                stopped("g", stop),
                Err(HvError::GuestFailed { what: "g", stop })
            );
        }
        assert_eq!(
            samples_unreadable(0x1000, 3),
            HvError::GuestRam {
                gpa: 0x1000,
                bytes: 24
            }
        );
    }

    #[test]
    fn ns_conversion_uses_the_tsc_rate() {
        assert_eq!(to_ns(&[3_000, 30], 3_000_000), vec![1_000, 10]);
        assert_eq!(ram_for_samples(10), layout::DEFAULT_RAM);
        assert_eq!(ram_for_samples(1 << 20), layout::DATA + (8 << 20));
    }
}
