//! `hv.pio_exit` under a live framebuffer load (`load` = `none` |
//! `fb-paint`): a painter domain streams writes over a mapped framebuffer
//! (one word per page, pass after pass) while another domain's port loop is
//! measured. [`Painter`] is the same load beside the paired binds, revokes
//! and the accounting cost ([`super::paired`]).
//!
//! Placement is part of the measurement ([`Setup::beside_load`]): what is
//! measured keeps its CPU to itself and the painter takes a spare one, or,
//! on a host with two CPUs, shares the CPU of what is not measured (here the
//! control thread's: the port loop's vCPU is measured). Both loads use the
//! same placement, and it is returned with the samples.

use super::{d, fb_bytes_for, fb_range, ram_for_samples, stopped, to_ns, Setup, WAIT};
use crate::acct::Accounting;
use crate::affinity::CpuSet;
use crate::layout;
use crate::platform::DEVICE_A_DATA;
use crate::programs;
use crate::{Config, HvError, Hypervisor};
use accountant::{DomId, Mode, Space, UnitRange};
use std::time::{Duration, Instant};

/// Framebuffer pages the painter streams over beside the paired binds and
/// revokes: 256 MiB, the framebuffer scale.
pub const PAINT_PAGES: u64 = super::FB_SCALE_PAGES;

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
    /// CPUs the measured vCPU was pinned to (`None`: not pinned).
    pub measured_vcpu: Option<CpuSet>,
    /// CPUs the painter's vCPU was pinned to (`None`: not pinned, or no
    /// painter ran).
    pub painter_vcpu: Option<CpuSet>,
    /// CPU of the control thread when the run ended.
    pub control: Option<u32>,
    /// Framebuffer pages the painter streams over (0 without load; they are
    /// mapped, and tracked, in both cases).
    pub painted_pages: u64,
    /// How long the painter ran beside the measured loop (ms), still
    /// running when the loop ended.
    pub painter_ms: u64,
}

/// A painter domain beside a measured one: granted its frames exclusively
/// and mapping them under either load, so the accountant tracks the same
/// pages; under `fb-paint` it streams one write per page over them, pass
/// after pass, until the hypervisor goes.
pub(crate) struct Painter {
    dom: DomId,
    load: Load,
    frames: UnitRange,
    started: Option<Instant>,
}

impl Painter {
    /// Adds the painter `dom` over `frames` to `hv`, its vCPU pinned to
    /// `cpus`, and under `fb-paint` starts it and lets it fault the frames
    /// in once.
    pub(crate) fn add(
        hv: &Hypervisor,
        dom: DomId,
        frames: UnitRange,
        load: Load,
        cpus: Option<CpuSet>,
    ) -> Result<Painter, HvError> {
        let prog = programs::fb_painter(frames.first(), frames.len(), 0x5a5a_5a5a, u64::MAX)?;
        hv.create_domain_paused(dom, &prog, layout::DEFAULT_RAM)?;
        hv.grant(dom, frames, Mode::Exclusive, false)?;
        hv.map(dom, frames)?;
        if let Some(c) = cpus {
            hv.set_vcpu_cpus(dom, c)?;
        }
        let mut p = Painter {
            dom,
            load,
            frames,
            started: None,
        };
        if load == Load::FbPaint {
            hv.start(dom)?;
            p.started = Some(Instant::now());
            // One pass over 256 MiB takes tens of milliseconds.
            std::thread::sleep(Duration::from_millis(50));
            p.check(hv)?;
        }
        Ok(p)
    }

    /// An error if the painter should be painting and has stopped.
    pub(crate) fn check(&self, hv: &Hypervisor) -> Result<(), HvError> {
        if self.started.is_some() && hv.wait(self.dom, Duration::ZERO).is_some() {
            return Err(HvError::PainterStopped(self.dom));
        }
        Ok(())
    }

    /// Pages it streams over (0 without load).
    pub(crate) fn painted_pages(&self) -> u64 {
        match self.load {
            Load::FbPaint => self.frames.len(),
            Load::None => 0,
        }
    }

    /// Milliseconds it has painted so far.
    pub(crate) fn ms(&self) -> u64 {
        self.started.map_or(0, |t| t.elapsed().as_millis() as u64)
    }

    /// The CPU its vCPU thread started on, while it runs.
    pub(crate) fn vcpu_cpu(&self, hv: &Hypervisor) -> Option<u32> {
        self.started?;
        hv.stats(self.dom).and_then(|s| s.vcpu_cpu)
    }
}

/// The painter's frames beside `pages` measured framebuffer pages: the next
/// [`PAINT_PAGES`] frames after them, so the two never overlap.
pub(crate) fn frames_after(measured: UnitRange) -> Result<UnitRange, HvError> {
    let first = measured.last() + 1;
    Ok(UnitRange::new(
        Space::IoMem,
        first,
        first + PAINT_PAGES - 1,
    )?)
}

/// `n` guest-timed `in al, 0x300` round trips (ns) with `load` beside them
/// over `fb_pages` framebuffer pages, placed by `setup`.
pub fn pio_exit(
    accounting: Accounting,
    load: Load,
    fb_pages: u64,
    n: usize,
    setup: &Setup,
) -> Result<(Vec<u64>, Placement), HvError> {
    let hv = Hypervisor::boot(Config {
        accounting,
        fb_bytes: fb_bytes_for(fb_pages),
        ..Config::default()
    })?;
    let (measured_cpus, painter_cpus) = setup.beside_load(super::paired::Measured::Guest);
    // The painter maps the framebuffer in both cases, so the accountant
    // tracks the same pages; it runs only under `fb-paint`.
    let painter = Painter::add(&hv, d(2), fb_range(fb_pages)?, load, painter_cpus.clone())?;
    let prog = programs::port_loop(DEVICE_A_DATA, n as u64)?;
    hv.create_domain_paused(d(1), &prog, ram_for_samples(n))?;
    let ports = super::device_a_ports()?;
    hv.grant(d(1), ports, Mode::Exclusive, false)?;
    if let Some(c) = &measured_cpus {
        hv.set_vcpu_cpus(d(1), c.clone())?;
    }
    hv.start(d(1))?;
    stopped("pio_exit guest", hv.wait(d(1), WAIT))?;
    painter.check(&hv)?;
    let placement = Placement {
        measured_vcpu: measured_cpus,
        painter_vcpu: painter_cpus.filter(|_| load == Load::FbPaint),
        control: crate::affinity::current_cpu(),
        painted_pages: painter.painted_pages(),
        painter_ms: painter.ms(),
    };
    let cycles = hv
        .read_guest_u64s(d(1), layout::DATA, n)
        .ok_or(super::samples_unreadable(layout::DATA, n))?;
    Ok((to_ns(&cycles, hv.tsc_khz(d(1))), placement))
}
