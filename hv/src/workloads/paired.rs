//! Paired measurements: each hypervisor step beside the bare KVM step it
//! contains, measured in the same round, on the same thread, against the
//! same VM, with its vCPU in the same state, in alternating order.
//!
//! | function | step | floor |
//! |---|---|---|
//! | [`bind`] | `Hypervisor::map` of N framebuffer pages | a memslot add of the same frames on the domain's own VM |
//! | [`unmap`] | `Hypervisor::unmap` of N pages the guest just touched | a memslot delete of the same touched frames |
//! | [`revoke_force`] | a forced revoke of N touched pages | a memslot delete of the same touched frames |
//! | [`accounting_cost`] | the exit handler with accounting on | the same handler with accounting off |
//!
//! Each takes `beside`: `None` runs the measured domain alone; `Some(load)`
//! adds a framebuffer painter domain ([`Painter`]) that maps 256 MiB beside
//! it (for the accounting cost: the tracked pages) and, under
//! [`Load::FbPaint`], streams writes over them while every round runs —
//! placed by [`Setup::beside_load`], the same under either load.
//!
//! The caller pins the calling (control) thread; vCPU threads are pinned by
//! [`Setup::vcpu_cpus`]. Every round records the CPU the control thread was
//! on (`sched_getcpu`), so a sample taken elsewhere shows.
//!
//! Why same VM and alternating order: a memslot delete waits for SRCU grace
//! periods whose cost depends on which CPU runs the VM's SRCU callbacks and
//! whether the vCPU is in guest mode; two loops over two VMs, or all floors
//! first, measure different conditions and their ratio is not the cost of
//! the hypervisor's own work.

use super::fb_load::{frames_after, Load, Painter, PAINT_PAGES};
use super::{d, fb_bytes_for, fb_range, WAIT};
use crate::acct::Accounting;
use crate::affinity::{current_cpu, CpuSet};
use crate::layout;
use crate::platform::{DEVICE_A_DATA, FB_FRAME};
use crate::programs::{self, Wait, Work, SI_ACK, SI_REQ};
use crate::{Config, HvError, Hypervisor};
use accountant::{DomId, Mode, UnitRange};
use std::time::{Duration, Instant};

/// Placement of the vCPU threads (the caller pins itself).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Setup {
    /// CPUs the vCPU threads are pinned to.
    pub vcpu_cpus: Option<CpuSet>,
    /// The control (measuring) thread's CPUs: where a load domain runs when
    /// `vcpu_cpus` has no CPU to spare.
    pub control_cpus: Option<CpuSet>,
}

impl Setup {
    /// Placement beside a load domain (the framebuffer painter): the
    /// measured domain's vCPU CPUs and the load's. What is measured keeps a
    /// CPU to itself: with two vCPU CPUs or more the load takes the last of
    /// them; with one, the load shares the CPU of whatever is not measured —
    /// the control thread's when a guest's vCPU is measured
    /// ([`Measured::Guest`]), the parked vCPU's when the control thread's
    /// step is ([`Measured::Control`]).
    pub fn beside_load(&self, measured: Measured) -> (Option<CpuSet>, Option<CpuSet>) {
        match (&self.vcpu_cpus, measured) {
            (Some(v), _) if v.cpus().len() >= 2 => {
                let (last, rest) = match v.cpus().split_last() {
                    Some((l, r)) => (Some(CpuSet::one(*l)), CpuSet::of(r)),
                    None => (None, None),
                };
                (rest, last)
            }
            (v, Measured::Guest) => (v.clone(), self.control_cpus.clone()),
            (v, Measured::Control) => (v.clone(), v.clone()),
        }
    }

    /// The CPUs of each vCPU of a domain of `vcpus` vCPUs: vCPU `i` on the
    /// `i`-th vCPU CPU, and those past them on the control thread's CPU (on
    /// a host with two CPUs, a 2-vCPU domain has vCPU 0, the measured one,
    /// on CPU 1 to itself and vCPU 1 beside the control thread on CPU 0).
    /// Empty when nothing is pinned.
    pub fn for_vcpus(&self, vcpus: u32) -> Vec<CpuSet> {
        let Some(v) = self.vcpu_cpus.as_ref() else {
            return Vec::new();
        };
        let spare = self.control_cpus.clone().unwrap_or_else(|| v.clone());
        (0..vcpus as usize)
            .map(|i| {
                v.cpus()
                    .get(i)
                    .map_or_else(|| spare.clone(), |c| CpuSet::one(*c))
            })
            .collect()
    }
}

/// What a step measures, for placing a load beside it
/// ([`Setup::beside_load`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Measured {
    /// A guest's vCPU thread (a guest-timed loop, the exit handler).
    Guest,
    /// The control thread's step (a bind, a revoke of a parked vCPU).
    Control,
}

/// The state of the domain's vCPU while a revoke runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VcpuState {
    /// Parked in a blocking hypercall (its thread is outside `KVM_RUN`).
    Parked,
    /// Running in guest mode (spinning, no exits).
    Running,
}

impl VcpuState {
    /// `parked` / `running`.
    pub fn name(self) -> &'static str {
        match self {
            VcpuState::Parked => "parked",
            VcpuState::Running => "running",
        }
    }
}

/// Per-round pairs: `floor[i]` and `step[i]` were measured back to back in
/// round `i` (floor first when `floor_first[i]`), on CPU `cpu[i]`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Paired {
    /// The bare KVM step, ns.
    pub floor: Vec<u64>,
    /// The hypervisor step, ns.
    pub step: Vec<u64>,
    /// The control thread's CPU in each round (`u32::MAX`: unknown).
    pub cpu: Vec<u32>,
    /// Whether the floor went first in that round.
    pub floor_first: Vec<bool>,
    /// The CPU the domain's vCPU thread started on.
    pub vcpu_cpu: Option<u32>,
    /// The CPU the painter's vCPU thread started on (a painting load only).
    pub painter_cpu: Option<u32>,
}

impl Paired {
    /// `step / floor` per round.
    pub fn ratios(&self) -> Vec<f64> {
        self.floor
            .iter()
            .zip(&self.step)
            .map(|(f, s)| *s as f64 / (*f).max(1) as f64)
            .collect()
    }

    fn push(&mut self, floor: u64, step: u64, floor_first: bool) {
        self.floor.push(floor);
        self.step.push(step);
        self.floor_first.push(floor_first);
        self.cpu.push(current_cpu().unwrap_or(u32::MAX));
    }
}

/// A booted hypervisor with domain 1 running an [`programs::on_request`]
/// guest, and the request counter.
struct Bench {
    hv: Hypervisor,
    dom: DomId,
    req: u64,
    painter: Option<Painter>,
}

/// What shares the hypervisor with the measured domain.
enum Beside {
    /// Domain 0 maps these frames (tracked, nobody writing them).
    Dom0(UnitRange),
    /// A painter domain over these frames with this load, placed for what
    /// is measured.
    Painter(Load, UnitRange, Measured),
}

impl Bench {
    /// Boots `cfg`, adds what is `beside` (a painter placed by `setup`),
    /// then domain 1, granted `grant`, on the measured vCPU CPUs.
    fn new(
        cfg: Config,
        work: Work,
        wait: Wait,
        grant: Option<UnitRange>,
        beside: Option<Beside>,
        setup: &Setup,
    ) -> Result<Bench, HvError> {
        let hv = Hypervisor::boot(cfg)?;
        let dom = d(1);
        let mut painter = None;
        let mut measured = None;
        match beside {
            Some(Beside::Dom0(frames)) => hv.map(d(0), frames)?,
            Some(Beside::Painter(load, frames, what)) => {
                let (m, load_cpus) = setup.beside_load(what);
                painter = Some(Painter::add(&hv, d(2), frames, load, load_cpus)?);
                measured = m;
            }
            None => {}
        }
        hv.create_domain_paused(dom, &programs::on_request(work, wait)?, layout::DEFAULT_RAM)?;
        if let Some(c) = measured {
            hv.set_vcpu_cpus(dom, c)?;
        }
        if let Some(r) = grant {
            hv.grant(dom, r, Mode::Exclusive, false)?;
        }
        hv.start(dom)?;
        let mut b = Bench {
            hv,
            dom,
            req: 0,
            painter,
        };
        b.request(wait)?;
        Ok(b)
    }

    /// Where the measured and the painting vCPUs started.
    fn placed(&self) -> Paired {
        Paired {
            vcpu_cpu: self.hv.stats(self.dom).and_then(|s| s.vcpu_cpu),
            painter_cpu: self.painter.as_ref().and_then(|p| p.vcpu_cpu(&self.hv)),
            ..Paired::default()
        }
    }

    /// An error if the painter stopped while it should have been painting.
    fn painter_ok(&self) -> Result<(), HvError> {
        self.painter.as_ref().map_or(Ok(()), |p| p.check(&self.hv))
    }

    /// Asks the guest for one more round of its work and waits until it is
    /// done and, for a parked guest, back in its blocking hypercall.
    fn request(&mut self, wait: Wait) -> Result<(), HvError> {
        let h0 = self.hv.stats(self.dom).map_or(0, |s| s.hypercalls);
        self.req += 1;
        self.hv
            .write_guest_u64(self.dom, SI_REQ, self.req)
            .ok_or(HvError::NoVm(self.dom))?;
        self.hv.notify(self.dom);
        let end = Instant::now() + WAIT;
        let mut spins = 0u32;
        loop {
            let acked = self.hv.read_guest_u64(self.dom, SI_ACK) == Some(self.req);
            let parked =
                wait == Wait::Running || self.hv.stats(self.dom).is_some_and(|s| s.hypercalls > h0);
            if acked && parked {
                break;
            }
            if Instant::now() > end || self.hv.wait(self.dom, Duration::ZERO).is_some() {
                return Err(HvError::GuestFailed {
                    what: "bench guest",
                    stop: self.hv.wait(self.dom, Duration::ZERO),
                });
            }
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(64) {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        if wait == Wait::Parked {
            // Counted at hypercall entry: give it the few microseconds to
            // reach its wait.
            std::thread::sleep(Duration::from_micros(50));
        }
        Ok(())
    }
}

/// A framebuffer of `pages` measured pages, and the painter's beyond them
/// when there is one.
fn fb_config(pages: u64, painter: bool, setup: &Setup) -> Config {
    let extra = if painter { PAINT_PAGES } else { 0 };
    Config {
        fb_bytes: fb_bytes_for(pages.max(1) + extra),
        vcpu_cpus: setup.vcpu_cpus.clone(),
        ..Config::default()
    }
}

/// A painter beside `frames` (over the frames after them) under `beside`'s
/// load, placed for `what` is measured.
fn painter_beside(
    beside: Option<Load>,
    frames: UnitRange,
    what: Measured,
) -> Result<Option<Beside>, HvError> {
    beside
        .map(|l| Ok(Beside::Painter(l, frames_after(frames)?, what)))
        .transpose()
}

/// The nanoseconds of `f`. The injection knob is read before the clock
/// starts: its load is the harness's, and the floors beside the step do not
/// pay it either.
fn timed<T>(f: impl FnOnce() -> Result<T, HvError>) -> Result<u64, HvError> {
    let knob = super::inject::slowdown();
    let t = Instant::now();
    f()?;
    if let Some(p) = knob {
        super::inject::pad(t, p);
    }
    Ok(t.elapsed().as_nanos() as u64)
}

/// `rounds` pairs of (memslot add, `Hypervisor::map`) of `pages`
/// framebuffer pages on one domain whose vCPU is parked; each is undone
/// (untimed) before the other runs.
pub fn bind(
    pages: u64,
    rounds: usize,
    beside: Option<Load>,
    setup: &Setup,
) -> Result<Paired, HvError> {
    let r = fb_range(pages)?;
    let work = Work::Paint {
        first_frame: FB_FRAME,
        pages: 1,
    };
    let cfg = fb_config(pages, beside.is_some(), setup);
    let b = Bench::new(
        cfg,
        work,
        Wait::Parked,
        Some(r),
        painter_beside(beside, r, Measured::Control)?,
        setup,
    )?;
    let mut out = b.placed();
    for i in 0..rounds {
        let floor_first = i % 2 == 0;
        let mut f = 0;
        let mut s = 0;
        for floor in [floor_first, !floor_first] {
            if floor {
                f = b.hv.floor_memslot_add(b.dom, r)?;
                b.hv.floor_memslot_delete(b.dom, r)?;
            } else {
                s = timed(|| b.hv.map(b.dom, r))?;
                b.hv.unmap(b.dom, r)?;
            }
        }
        out.push(f, s, floor_first);
    }
    b.painter_ok()?;
    Ok(out)
}

/// `rounds` pairs of (memslot delete, `Hypervisor::unmap`) of `pages`
/// framebuffer pages that the parked guest touched right before (one write
/// per page through the mapping being removed).
pub fn unmap(pages: u64, rounds: usize, setup: &Setup) -> Result<Paired, HvError> {
    deletes(pages, rounds, setup, VcpuState::Parked, None, false)
}

/// `rounds` pairs of (memslot delete, forced revoke) of `pages` framebuffer
/// pages the guest touched right before, with the guest's vCPU `state`
/// during the delete. The revoked grant is given back (untimed) each round.
pub fn revoke_force(
    pages: u64,
    rounds: usize,
    state: VcpuState,
    beside: Option<Load>,
    setup: &Setup,
) -> Result<Paired, HvError> {
    deletes(pages, rounds, setup, state, beside, true)
}

fn deletes(
    pages: u64,
    rounds: usize,
    setup: &Setup,
    state: VcpuState,
    beside: Option<Load>,
    revoke: bool,
) -> Result<Paired, HvError> {
    let r = fb_range(pages)?;
    let wait = match state {
        VcpuState::Parked => Wait::Parked,
        VcpuState::Running => Wait::Running,
    };
    let work = Work::Paint {
        first_frame: FB_FRAME,
        pages: pages.max(1),
    };
    let cfg = fb_config(pages, beside.is_some(), setup);
    // A running vCPU is part of what a revoke measures (it must be kicked
    // out of guest mode): the painter shares the control thread's CPU then.
    let what = match state {
        VcpuState::Parked => Measured::Control,
        VcpuState::Running => Measured::Guest,
    };
    let mut b = Bench::new(
        cfg,
        work,
        wait,
        Some(r),
        painter_beside(beside, r, what)?,
        setup,
    )?;
    let mut out = b.placed();
    for i in 0..rounds {
        let floor_first = i % 2 == 0;
        let mut f = 0;
        let mut s = 0;
        for floor in [floor_first, !floor_first] {
            if floor {
                b.hv.floor_memslot_add(b.dom, r)?;
                b.request(wait)?;
                f = b.hv.floor_memslot_delete(b.dom, r)?;
            } else {
                b.hv.map(b.dom, r)?;
                b.request(wait)?;
                if revoke {
                    s = timed(|| b.hv.revoke(b.dom, r, true))?;
                    b.hv.grant(b.dom, r, Mode::Exclusive, false)?;
                } else {
                    s = timed(|| b.hv.unmap(b.dom, r))?;
                }
            }
        }
        out.push(f, s, floor_first);
    }
    b.painter_ok()?;
    b.hv.destroy_domain(b.dom)?;
    Ok(out)
}

/// Per-round exit-handler medians with accounting on and off.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CostRounds {
    /// Median handler time per round with accounting on, ns.
    pub on: Vec<f64>,
    /// The same with accounting off, ns.
    pub off: Vec<f64>,
    /// The control thread's CPU in each round.
    pub cpu: Vec<u32>,
    /// Every handler time with accounting on, ns.
    pub all_on: Vec<u64>,
    /// Every handler time with accounting off, ns.
    pub all_off: Vec<u64>,
    /// The CPUs the two vCPU threads started on (on, off).
    pub vcpu_cpu: (Option<u32>, Option<u32>),
    /// The CPUs the two painters' vCPU threads started on (a painting load
    /// only).
    pub painter_cpu: (Option<u32>, Option<u32>),
    /// Exits the handler probe could not hold (should be 0).
    pub dropped: u64,
}

impl CostRounds {
    /// `on - off` per round, ns.
    pub fn deltas(&self) -> Vec<f64> {
        self.on.iter().zip(&self.off).map(|(a, b)| a - b).collect()
    }
}

/// The hypervisor-side cost of accounting per port exit: two hypervisors,
/// accounting on and off, each with `tracked_pages` framebuffer pages mapped
/// by domain 0 (or, `beside` a load, by the painter) and a domain-1 guest
/// that does `exits` reads of device A's port per request. Each round asks
/// both (alternating which goes first) and takes the median of the
/// exit-handler times the handler probe recorded — a probe independent of
/// the tracepoints, which stay in one state (off) on both sides, so no
/// tracepoint cost is in the difference. Under `fb-paint` both sides'
/// painters paint through every round, so each side is measured under the
/// same load.
pub fn accounting_cost(
    tracked_pages: u64,
    rounds: usize,
    exits: u64,
    beside: Option<Load>,
    setup: &Setup,
) -> Result<CostRounds, HvError> {
    let ports = super::device_a_ports()?;
    let work = Work::PortReads {
        port: DEVICE_A_DATA,
        count: exits,
    };
    let mk = |accounting| -> Result<Bench, HvError> {
        let cfg = Config {
            accounting,
            handler_probe: exits as usize + 64,
            ..fb_config(tracked_pages, false, setup)
        };
        let tracked = fb_range(tracked_pages)?;
        let with = match beside {
            Some(load) => Some(Beside::Painter(load, tracked, Measured::Guest)),
            None => (tracked_pages > 0).then_some(Beside::Dom0(tracked)),
        };
        Bench::new(cfg, work, Wait::Parked, Some(ports), with, setup)
    };
    let mut sides = [mk(Accounting::On)?, mk(Accounting::Off)?];
    let khz = [khz_of(&sides[0]), khz_of(&sides[1])];
    let (p0, p1) = (sides[0].placed(), sides[1].placed());
    let mut out = CostRounds {
        vcpu_cpu: (p0.vcpu_cpu, p1.vcpu_cpu),
        painter_cpu: (p0.painter_cpu, p1.painter_cpu),
        ..CostRounds::default()
    };
    // The warm-up request's exits are not part of any round.
    for b in &sides {
        let _ = b.hv.take_handler_ticks(b.dom);
    }
    for i in 0..rounds {
        let order = if i % 2 == 0 { [0, 1] } else { [1, 0] };
        let mut med = [0.0f64; 2];
        for s in order {
            let b = &mut sides[s];
            b.request(Wait::Parked)?;
            let (ticks, dropped) =
                b.hv.take_handler_ticks(b.dom)
                    .ok_or(HvError::NoProbe(b.dom))?;
            out.dropped += dropped;
            let ns: Vec<u64> = ticks.iter().map(|t| ticks_to_ns(*t, khz[s])).collect();
            med[s] = median(&ns);
            if s == 0 {
                out.all_on.extend(&ns);
            } else {
                out.all_off.extend(&ns);
            }
        }
        out.on.push(med[0]);
        out.off.push(med[1]);
        out.cpu.push(current_cpu().unwrap_or(u32::MAX));
    }
    for b in &sides {
        b.painter_ok()?;
    }
    Ok(out)
}

fn khz_of(b: &Bench) -> u64 {
    match b.hv.tsc_khz(b.dom) {
        0 => super::calibrate_tsc_khz(),
        k => u64::from(k),
    }
}

fn ticks_to_ns(t: u64, khz: u64) -> u64 {
    (t as u128 * 1_000_000 / khz.max(1) as u128) as u64
}

fn median(v: &[u64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_unstable();
    match s.len() {
        0 => 0.0,
        n if n % 2 == 1 => s[n / 2] as f64,
        n => (s[n / 2 - 1] + s[n / 2]) as f64 / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_beside_a_load_keeps_the_measured_cpus_apart() {
        let set = |s: &str| CpuSet::parse(s).ok();
        let two = Setup {
            vcpu_cpus: set("1"),
            control_cpus: set("0"),
        };
        assert_eq!(two.beside_load(Measured::Guest), (set("1"), set("0")));
        assert_eq!(two.beside_load(Measured::Control), (set("1"), set("1")));
        let each = |v: &[&str]| v.iter().filter_map(|s| set(s)).collect::<Vec<_>>();
        assert_eq!(two.for_vcpus(1), each(&["1"]));
        assert_eq!(two.for_vcpus(2), each(&["1", "0"]));
        let four = Setup {
            vcpu_cpus: set("1-3"),
            control_cpus: set("0"),
        };
        for m in [Measured::Guest, Measured::Control] {
            assert_eq!(four.beside_load(m), (set("1-2"), set("3")));
        }
        assert_eq!(four.for_vcpus(2), each(&["1", "2"]));
        assert_eq!(Setup::default().beside_load(Measured::Guest), (None, None));
        assert!(Setup::default().for_vcpus(2).is_empty());
    }

    #[test]
    fn ratios_and_deltas_are_per_round() {
        let p = Paired {
            floor: vec![100, 200, 0],
            step: vec![150, 200, 5],
            ..Paired::default()
        };
        assert_eq!(p.ratios(), vec![1.5, 1.0, 5.0]);
        let c = CostRounds {
            on: vec![10.0, 12.0],
            off: vec![7.0, 13.0],
            ..CostRounds::default()
        };
        assert_eq!(c.deltas(), vec![3.0, -1.0]);
        assert_eq!(median(&[5, 1, 3]), 3.0);
        assert_eq!(median(&[4, 1, 3, 2]), 2.5);
        assert_eq!(ticks_to_ns(3_000, 3_000_000), 1_000);
    }
}
