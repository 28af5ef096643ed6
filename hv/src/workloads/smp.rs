//! The port exit and the forced revoke with domains of several vCPUs
//! (`vcpus` param): every vCPU of the measured domain runs the same loop, so
//! exits and the revoke's quiesce see concurrent vCPUs.

use super::{d, fb_bytes_for, fb_range, ram_for_samples, stopped, to_ns, Setup, WAIT};
use crate::acct::Accounting;
use crate::layout;
use crate::platform::{DEVICE_A_DATA, FB_FRAME};
use crate::programs;
use crate::{Config, HvError, Hypervisor};
use accountant::Mode;
use std::time::{Duration, Instant};

/// `n` guest-timed `in al, 0x300` round trips (ns) of vCPU 0 of a domain
/// whose `vcpus` vCPUs all run the same timing loop at once, placed by
/// [`Setup::for_vcpus`].
pub fn pio_exit(
    accounting: Accounting,
    vcpus: u32,
    n: usize,
    setup: &Setup,
) -> Result<Vec<u64>, HvError> {
    let hv = Hypervisor::boot(Config {
        accounting,
        ..Config::default()
    })?;
    let prog = programs::port_loop(DEVICE_A_DATA, n as u64)?;
    // Each vCPU's data area holds its n samples.
    let ram = layout::DATA + (ram_for_samples(n) - layout::DATA) * u64::from(vcpus.max(1));
    hv.create_domain_paused_smp(d(1), &prog, ram, vcpus)?;
    hv.set_vcpu_cpus_each(d(1), setup.for_vcpus(vcpus))?;
    let ports = super::device_a_ports()?;
    hv.grant(d(1), ports, Mode::Exclusive, false)?;
    hv.start(d(1))?;
    stopped("pio_exit guest", hv.wait(d(1), WAIT))?;
    let (data, _) = layout::vcpu_data(0, vcpus, ram);
    let cycles = hv
        .read_guest_u64s(d(1), data, n)
        .ok_or(super::samples_unreadable(data, n))?;
    Ok(to_ns(&cycles, hv.tsc_khz(d(1))))
}

/// `reps` forced revokes (ns) of `pages` mapped pages that every one of a
/// domain's `vcpus` vCPUs painted and keeps running over, placed by
/// [`Setup::for_vcpus`].
pub fn revoke_force(
    pages: u64,
    vcpus: u32,
    reps: usize,
    setup: &Setup,
) -> Result<Vec<u64>, HvError> {
    let hv = Hypervisor::boot(Config {
        fb_bytes: fb_bytes_for(pages),
        ..Config::default()
    })?;
    let r = fb_range(pages)?;
    let mut out = Vec::with_capacity(reps);
    for i in 0..reps {
        let id = d(1 + (i % 1000) as u16);
        let painter = programs::fb_painter_linger(FB_FRAME, pages.max(1), 0x5a5a_0000 + i as u64)?;
        hv.create_domain_paused_smp(id, &painter, layout::DEFAULT_RAM, vcpus)?;
        hv.set_vcpu_cpus_each(id, setup.for_vcpus(vcpus))?;
        hv.grant(id, r, Mode::Exclusive, false)?;
        hv.map(id, r)?;
        hv.start(id)?;
        let end = Instant::now() + WAIT;
        while hv.read_guest_u64(id, programs::SI_PROGRESS) != Some(1) {
            if Instant::now() > end || hv.wait(id, Duration::ZERO).is_some() {
                return Err(HvError::GuestFailed {
                    what: "painter guest",
                    stop: hv.wait(id, Duration::ZERO),
                });
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        let t = Instant::now();
        hv.revoke(id, r, true)?;
        out.push(t.elapsed().as_nanos() as u64);
        hv.destroy_domain(id)?;
    }
    Ok(out)
}
