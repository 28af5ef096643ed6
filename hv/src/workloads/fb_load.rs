//! `hv.pio_exit` under a live framebuffer load (`load` = `none` |
//! `fb-paint`): a painter domain streams writes over a mapped framebuffer
//! (one word per page, pass after pass) while another domain's port loop is
//! measured. Placement is part of the measurement: where the host has two
//! CPUs or more, the measured vCPU gets the last CPU to itself and the
//! painter runs on CPU 0 (beside the control thread); both cases use the
//! same placement, and it is returned with the samples.

use super::{d, fb_bytes_for, fb_range, ram_for_samples, stopped, to_ns, WAIT};
use crate::acct::Accounting;
use crate::affinity::CpuSet;
use crate::hv::{Config, HvError, Hypervisor};
use crate::layout;
use crate::platform::{DEVICE_A_DATA, FB_FRAME};
use crate::programs;
use accountant::Mode;
use std::time::{Duration, Instant};

/// The load beside the measured port loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Load {
    /// Nothing else runs.
    None,
    /// A painter domain streams writes over the mapped framebuffer.
    FbPaint,
}

impl Load {
    /// The `load` param value.
    pub fn name(self) -> &'static str {
        match self {
            Load::None => "none",
            Load::FbPaint => "fb-paint",
        }
    }
}

/// Where the threads ran.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    /// CPU the measured vCPU was pinned to (`None`: one CPU, not pinned).
    pub measured_vcpu: Option<usize>,
    /// CPU the painter's vCPU was pinned to.
    pub painter_vcpu: Option<usize>,
    /// CPU of the control thread when the run ended.
    pub control: Option<u32>,
    /// Framebuffer pages the painter streams over (0 without load; they are
    /// mapped, and tracked, in both cases).
    pub painted_pages: u64,
    /// How long the painter ran beside the measured loop (ms), still
    /// running when the loop ended.
    pub painter_ms: u64,
}

/// `n` guest-timed `in al, 0x300` round trips (ns) with `load` beside them
/// over `fb_pages` framebuffer pages.
pub fn pio_exit(
    accounting: Accounting,
    load: Load,
    fb_pages: u64,
    n: usize,
) -> Result<(Vec<u64>, Placement), HvError> {
    let hv = Hypervisor::boot(Config {
        accounting,
        fb_bytes: fb_bytes_for(fb_pages),
        ..Config::default()
    })?;
    let cpus = std::thread::available_parallelism().map_or(1, |c| c.get());
    let (measured_cpu, painter_cpu) = if cpus >= 2 {
        (Some(cpus - 1), Some(0))
    } else {
        (None, None)
    };
    let mut placement = Placement {
        measured_vcpu: measured_cpu,
        painter_vcpu: painter_cpu.filter(|_| load == Load::FbPaint),
        painted_pages: if load == Load::FbPaint { fb_pages } else { 0 },
        ..Placement::default()
    };
    // The painter maps the framebuffer in both cases, so the accountant
    // tracks the same pages; it runs only under `fb-paint`.
    let painter = d(2);
    let fb = fb_range(fb_pages)?;
    // Passes without end: it paints until it is destroyed with the hypervisor.
    let prog = programs::fb_painter(FB_FRAME, fb_pages.max(1), 0x5a5a_5a5a, u64::MAX)?;
    hv.create_domain_paused(painter, &prog, layout::DEFAULT_RAM)?;
    hv.grant(painter, fb, Mode::Exclusive, false)?;
    hv.map(painter, fb)?;
    if let Some(c) = painter_cpu {
        hv.set_vcpu_cpus(painter, CpuSet::one(c))?;
    }
    if load == Load::FbPaint {
        hv.start(painter)?;
        // Let it fault the framebuffer in once before measuring.
        std::thread::sleep(Duration::from_millis(50));
    }
    let prog = programs::port_loop(DEVICE_A_DATA, n as u64)?;
    hv.create_domain_paused(d(1), &prog, ram_for_samples(n))?;
    let ports = super::device_a_ports()?;
    hv.grant(d(1), ports, Mode::Exclusive, false)?;
    if let Some(c) = measured_cpu {
        hv.set_vcpu_cpus(d(1), CpuSet::one(c))?;
    }
    let t = Instant::now();
    hv.start(d(1))?;
    stopped("pio_exit guest", hv.wait(d(1), WAIT))?;
    let elapsed = t.elapsed();
    if load == Load::FbPaint && hv.wait(painter, Duration::ZERO).is_some() {
        return Err(HvError::Boot(
            "the painter stopped during the measurement".into(),
        ));
    }
    placement.control = crate::affinity::current_cpu();
    if load == Load::FbPaint {
        placement.painter_ms = elapsed.as_millis() as u64;
    }
    let cycles = hv
        .read_guest_u64s(d(1), layout::DATA, n)
        .ok_or(HvError::NoVm(d(1)))?;
    Ok((to_ns(&cycles, hv.tsc_khz(d(1))), placement))
}
