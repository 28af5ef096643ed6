//! The hypervisor: domains (KVM VMs), the platform, and the control plane
//! through which the accountant decides every grant, map, bind and access.
//!
//! Lock order (outer first): control plane (`cp`, the accountant) → the
//! domain table → a domain's slot table; the irq binding table is taken
//! either alone or before the domain table, never while the domain table is
//! held. vCPU threads take the control plane only for hypercalls, which are
//! outside their in-flight sections, so the control plane may wait for
//! in-flight port accesses ([`VcpuCtl::quiesce`]) while holding it.

use crate::acct::{errno_of, Accounting, Acct, DomChecker};
use crate::affinity::{self, CpuSet};
use crate::exit::{ExitEnv, MmioOutcome, StopReason};
use crate::guest::Program;
use crate::host::HostInfo;
use crate::hypercall::{self, Op, Rejected};
use crate::irqchip::{Delivery, IrqFds};
use crate::kvm_slots::KvmSlots;
use crate::layout;
use crate::mem::{MemError, PAGE_SIZE};
use crate::memslot::{Backings, SlotError, SlotTable};
use crate::platform::{self, DeviceCounters, Platform, PortEffect};
use crate::vcpu::{self, VcpuCtl};
use crate::vm::{GuestVm, VmError};
use accountant::{
    DomId, Error, Mode, Quotas, Revoked, Space, Teardown, TrackerKind, UnitInfo, UnitRange,
};
use kvm_ioctls::{Kvm, VcpuFd};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Hypervisor configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Accountant in charge (default) or Xen's behaviour.
    pub accounting: Accounting,
    /// Xen-style boot line (SPEC section 2). Default: [`platform::SEED_BOOT`].
    pub boot_line: String,
    /// MMIO tracker of the accountant.
    pub tracker: TrackerKind,
    /// Framebuffer BAR size in bytes (default 256 MiB; several GiB work:
    /// it is reserved lazily). The guest page tables must map it, which
    /// bounds it at `MAX_MAPPED_GIB - 4` GiB.
    pub fb_bytes: u64,
    /// Guest RAM per domain (default 4 MiB).
    pub ram_bytes: u64,
    /// Every domain's limits (frames mapped, tracking records); `None`: the
    /// boot line's `quota_frames=` / `quota_records=`, else
    /// [`Quotas::default`] (an 8 GiB BAR plus the platform's devices; 65,536
    /// runs). A map past one is refused with status 16 (`quota`) and
    /// counted in [`DomainStats::quota_refusals`]. With accounting off
    /// (Xen's behaviour) there are no quotas.
    pub quotas: Option<Quotas>,
    /// CPUs every vCPU thread is pinned to (default: none, the scheduler
    /// places them). The bench pins them away from its measuring thread.
    pub vcpu_cpus: Option<CpuSet>,
    /// Exits per vCPU the exit-handler probe holds between two reads (default
    /// 0: no probe). With a probe every checked port exit's handler time is
    /// recorded in TSC ticks, tracepoints on or off
    /// ([`Hypervisor::take_handler_ticks`]).
    pub handler_probe: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            accounting: Accounting::On,
            boot_line: platform::SEED_BOOT.to_string(),
            tracker: TrackerKind::SlabExtent,
            fb_bytes: platform::DEFAULT_FB_BYTES,
            ram_bytes: layout::DEFAULT_RAM,
            quotas: None,
            vcpu_cpus: None,
            handler_probe: 0,
        }
    }
}

/// A failed hypervisor operation; nothing changed unless stated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HvError {
    /// The accountant refused.
    Acct(Error),
    /// The boot line or configuration is bad.
    Boot(String),
    /// `/dev/kvm` is missing or unusable.
    NoKvm(i32),
    /// Building or changing a VM failed.
    Vm(VmError),
    /// Host memory could not be mapped.
    Mem(MemError),
    /// The domain has no VM.
    NoVm(DomId),
    /// The domain already has a VM.
    VmExists(DomId),
    /// The range is of the wrong space for the operation.
    WrongSpace(Space),
    /// The domain's slot table refused a map the accountant accepted; the
    /// accountant's change was undone.
    Slots(SlotError),
    /// KVM refused to delete the memslot of `frames` frames whose use had
    /// ended: the accountant's change stands, and since the domain could
    /// still reach those frames its vCPU was stopped.
    SlotStuck {
        /// The domain that was stopped.
        dom: DomId,
        /// Frames left reachable through the stuck memslot(s).
        frames: u64,
    },
}

impl HvError {
    /// The accountant's error code, if the accountant refused.
    pub fn acct_code(&self) -> Option<accountant::ErrorCode> {
        match self {
            HvError::Acct(e) => Some(e.code()),
            _ => None,
        }
    }
}

impl std::fmt::Display for HvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HvError::Acct(e) => write!(f, "{e}"),
            HvError::Boot(m) => write!(f, "boot: {m}"),
            HvError::NoKvm(e) => write!(f, "/dev/kvm unusable: errno {e}"),
            HvError::Vm(e) => write!(f, "vm: {e}"),
            HvError::Mem(e) => write!(f, "{e}"),
            HvError::NoVm(d) => write!(f, "{d} has no VM"),
            HvError::VmExists(d) => write!(f, "{d} already has a VM"),
            HvError::WrongSpace(s) => write!(f, "operation does not take {s}"),
            HvError::Slots(e) => write!(f, "slot table refused: {e:?}"),
            HvError::SlotStuck { dom, frames } => write!(
                f,
                "KVM kept a memslot over {frames} unmapped frame(s) of {dom}; its vCPU was stopped"
            ),
        }
    }
}

impl std::error::Error for HvError {}

impl From<Error> for HvError {
    fn from(e: Error) -> Self {
        HvError::Acct(e)
    }
}
impl From<VmError> for HvError {
    fn from(e: VmError) -> Self {
        HvError::Vm(e)
    }
}

/// Per-domain counters kept by the hypervisor.
#[derive(Debug, Default)]
struct Stats {
    denied_ports: AtomicU64,
    denied_mmio: AtomicU64,
    slow_mmio: AtomicU64,
    hypercalls: AtomicU64,
    hypercall_errors: AtomicU64,
    bad_hypercalls: AtomicU64,
    events: AtomicU64,
    stuck_frames: AtomicU64,
    quota_refusals: AtomicU64,
}

/// A snapshot of a domain's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DomainStats {
    /// Port accesses the accountant denied (reads gave all ones, writes dropped).
    pub denied_ports: u64,
    /// Accesses to guest-physical memory the domain does not map (denied).
    pub denied_mmio: u64,
    /// Accesses to mapped frames that had no memslot, served by the
    /// hypervisor from the backing.
    pub slow_mmio: u64,
    /// Hypercalls made.
    pub hypercalls: u64,
    /// Hypercalls that returned a non-zero status.
    pub hypercall_errors: u64,
    /// Malformed uses of the hypercall port.
    pub bad_hypercalls: u64,
    /// Interrupt events delivered to its event page.
    pub events: u64,
    /// Exits handled by its vCPU.
    pub exits: u64,
    /// Port exits (hypercalls included) that arrived as native `KVM_EXIT_IO`
    /// (VT-x, AMD-V).
    pub native_port_exits: u64,
    /// Port exits (hypercalls included) that arrived through PVM's #GP
    /// fallback; zero on VT-x and AMD-V.
    pub trapped_port_exits: u64,
    /// KVM memslots it uses for I/O memory.
    pub io_slots: usize,
    /// Frames whose use ended but whose memslot KVM refused to delete; each
    /// such refusal stopped the domain's vCPU.
    pub stuck_frames: u64,
    /// `MAP_IOMEM` calls refused because a quota would be exceeded.
    pub quota_refusals: u64,
    /// The CPU its vCPU thread started on (after pinning), if it started.
    pub vcpu_cpu: Option<u32>,
}

struct Domain {
    id: DomId,
    /// The port check of this domain's vCPU exits.
    ports: DomChecker,
    /// The irqfds of its bound lines (KVM irqchip), if the VM has one.
    irq: IrqFds,
    slots: Mutex<SlotTable>,
    /// Its vCPUs, by index (at least one).
    vcpus: Box<[Vcpu]>,
    /// Host CPUs its vCPU threads are pinned to (overrides
    /// [`Config::vcpu_cpus`]; set before [`Hypervisor::start`]).
    cpus: Mutex<Option<CpuSet>>,
    stats: Stats,
    wake: Mutex<u64>,
    cv: Condvar,
    tsc_khz: u32,
    /// The VM and its RAM (`GuestVm` drops the VM fd, and with it every
    /// memslot, before the RAM). Memslots also point into platform memory,
    /// which `Shared` drops only after its domain table.
    gvm: GuestVm,
}

/// One vCPU of a domain: its control block, its fd until its thread
/// starts, the thread, and why it stopped.
struct Vcpu {
    ctl: VcpuCtl,
    fd: Mutex<Option<VcpuFd>>,
    thread: Mutex<Option<JoinHandle<StopReason>>>,
    outcome: Mutex<Option<StopReason>>,
}

impl Vcpu {
    fn new(index: u32, fd: VcpuFd) -> Vcpu {
        Vcpu {
            ctl: VcpuCtl::new(index),
            fd: Mutex::new(Some(fd)),
            thread: Mutex::new(None),
            outcome: Mutex::new(None),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every structure behind these locks is updated in single steps that
    // keep it consistent, so a panic elsewhere does not make it unusable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Domain {
    fn events_pending(&self) -> bool {
        (0..16).any(|i| {
            self.gvm
                .ram
                .load_u64_atomic(layout::EVTCHN_PAGE + 8 * i)
                .is_some_and(|w| w != 0)
        })
    }

    fn wake(&self) {
        let mut g = lock(&self.wake);
        *g = g.wrapping_add(1);
        self.cv.notify_all();
    }

    /// Stops every vCPU (kicking each out of the guest) and waits until
    /// every vCPU loop has returned.
    fn stop(&self) {
        // Every vCPU is asked first, so none runs on while another is waited for.
        for v in self.vcpus.iter() {
            v.ctl.request_stop();
        }
        for v in self.vcpus.iter() {
            if lock(&v.fd).take().is_some() {
                // Never started.
                v.ctl.mark_finished();
                continue;
            }
            v.ctl.stop_and_wait(|| self.wake());
        }
    }

    /// Asks every vCPU to stop at its next exit (without kicking).
    fn request_stop(&self) {
        for v in self.vcpus.iter() {
            v.ctl.request_stop();
        }
    }

    /// Whether the host asked the domain's vCPUs to stop.
    fn stop_requested(&self) -> bool {
        self.vcpus.iter().any(|v| v.ctl.stop_requested())
    }

    /// Whether every vCPU loop has returned.
    fn finished(&self) -> bool {
        self.vcpus.iter().all(|v| v.ctl.finished())
    }

    /// Waits until no vCPU of the domain is inside an exit that began
    /// before this call ([`VcpuCtl::quiesce`] on each).
    fn quiesce(&self) {
        for v in self.vcpus.iter() {
            v.ctl.quiesce();
        }
    }

    /// Joins every vCPU thread; the first stopped reason in vCPU order
    /// (vCPU 0's when it has one).
    fn join(&self) -> Option<StopReason> {
        let mut first = None;
        for v in self.vcpus.iter() {
            if let Some(h) = lock(&v.thread).take() {
                if let Ok(r) = h.join() {
                    *lock(&v.outcome) = Some(r);
                }
            }
            first = first.or(*lock(&v.outcome));
        }
        first
    }

    fn snapshot(&self) -> DomainStats {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        DomainStats {
            denied_ports: l(&self.stats.denied_ports),
            denied_mmio: l(&self.stats.denied_mmio),
            slow_mmio: l(&self.stats.slow_mmio),
            hypercalls: l(&self.stats.hypercalls),
            hypercall_errors: l(&self.stats.hypercall_errors),
            bad_hypercalls: l(&self.stats.bad_hypercalls),
            events: l(&self.stats.events),
            exits: self.vcpus.iter().map(|v| v.ctl.exits()).sum(),
            native_port_exits: self.vcpus.iter().map(|v| v.ctl.native_port_exits()).sum(),
            trapped_port_exits: self.vcpus.iter().map(|v| v.ctl.trapped_port_exits()).sum(),
            io_slots: lock(&self.slots).slot_count(),
            stuck_frames: l(&self.stats.stuck_frames),
            quota_refusals: l(&self.stats.quota_refusals),
            vcpu_cpu: self.vcpus.first().and_then(|v| v.ctl.start_cpu()),
        }
    }
}

struct Shared {
    // Field order is drop order: domains (VMs, memslots into platform
    // memory) before the platform.
    domains: RwLock<BTreeMap<u16, Arc<Domain>>>,
    cp: Mutex<Acct>,
    irqs: Mutex<BTreeMap<u32, BTreeMap<u16, u32>>>,
    /// Domains told to stop because KVM kept a memslot they must no longer
    /// reach; the public entry points wait for them once the control plane
    /// is released (see [`Shared::unslot`]). Taken alone.
    isolate: Mutex<Vec<DomId>>,
    platform: Platform,
    kvm: Kvm,
    host: HostInfo,
    cfg: Config,
    map_gib: u64,
    max_slots: u32,
}

/// The hypervisor. Dropping it stops every vCPU and frees every VM.
pub struct Hypervisor {
    sh: Arc<Shared>,
}

impl std::fmt::Debug for Hypervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hypervisor")
            .field("accounting", &self.sh.cfg.accounting)
            .field("host", &self.sh.host.kind)
            .finish()
    }
}

struct Env<'a> {
    sh: &'a Shared,
    dom: &'a Domain,
    vcpu: &'a Vcpu,
}

impl ExitEnv for Env<'_> {
    fn port_allowed(&self, port: u16, size: u8) -> bool {
        self.dom.ports.check(port, size)
    }
    fn quiesces(&self) -> bool {
        self.sh.cfg.accounting == Accounting::On
    }
    fn port_read(&mut self, port: u16, _size: u8) -> Option<u32> {
        self.sh.platform.port_read(self.dom.id.get(), port)
    }
    fn port_write(&mut self, port: u16, _size: u8, data: u32) {
        if let PortEffect::RaiseIrq(irq) =
            self.sh.platform.port_write(self.dom.id.get(), port, data)
        {
            self.sh.raise_irq(irq);
        }
    }
    fn port_denied(&mut self, _port: u16, _size: u8, _write: bool) {
        self.dom.stats.denied_ports.fetch_add(1, Ordering::Relaxed);
    }
    fn hypercall(&mut self) -> u32 {
        self.sh.hypercall(self.dom, self.vcpu.ctl.index())
    }
    fn bad_hypercall(&mut self) {
        self.dom
            .stats
            .bad_hypercalls
            .fetch_add(1, Ordering::Relaxed);
    }
    fn mmio_read(&mut self, gpa: u64, len: u8) -> MmioOutcome {
        self.sh.mmio(self.dom, gpa, len, None)
    }
    fn mmio_write(&mut self, gpa: u64, len: u8, data: [u8; 8]) -> MmioOutcome {
        self.sh.mmio(self.dom, gpa, len, Some(data))
    }
    fn stop_requested(&self) -> bool {
        self.vcpu.ctl.stop_requested()
    }
    fn domain(&self) -> u16 {
        self.dom.id.get()
    }
}

impl Shared {
    fn domain(&self, d: DomId) -> Option<Arc<Domain>> {
        self.domains
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&d.get())
            .cloned()
    }

    fn all_domains(&self) -> Vec<Arc<Domain>> {
        self.domains
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    fn quiesce_all(&self) {
        for d in self.all_domains() {
            d.quiesce();
        }
    }

    fn mmio(&self, dom: &Domain, gpa: u64, len: u8, write: Option<[u8; 8]>) -> MmioOutcome {
        let frame = gpa / PAGE_SIZE;
        let off = gpa % PAGE_SIZE;
        let n = len as u64;
        let slots = lock(&dom.slots);
        let target = ((1..=8).contains(&n) && off + n <= PAGE_SIZE)
            .then(|| slots.resolve(frame, &self.platform))
            .flatten()
            .and_then(|_| self.platform.backing_mem(frame));
        let Some((mem, base)) = target else {
            dom.stats.denied_mmio.fetch_add(1, Ordering::Relaxed);
            return MmioOutcome::Denied;
        };
        dom.stats.slow_mmio.fetch_add(1, Ordering::Relaxed);
        let mut b = [0u8; 8];
        let ok = match write {
            Some(data) => mem.write(base + off, &data[..len as usize]),
            None => mem.read(base + off, &mut b[..len as usize]),
        };
        drop(slots);
        match ok {
            Some(()) => MmioOutcome::Served(b),
            None => MmioOutcome::Denied,
        }
    }

    fn raise_irq(&self, irq: u32) -> usize {
        let irqs = lock(&self.irqs);
        let Some(binders) = irqs.get(&irq) else {
            return 0;
        };
        let word = layout::EVTCHN_PAGE + 8 * (irq as u64 / 64);
        let bit = 1u64 << (irq % 64);
        let mut n = 0;
        for d in binders.keys() {
            let Ok(id) = DomId::new(*d as u64) else {
                continue;
            };
            if let Some(dom) = self.domain(id) {
                if dom.gvm.ram.fetch_or_u64(word, bit).is_some() {
                    dom.stats.events.fetch_add(1, Ordering::Relaxed);
                    n += 1;
                }
                // With an irqchip, the pending bit is also an interrupt.
                dom.irq.raise(irq);
                dom.wake();
            }
        }
        n
    }

    fn block(&self, dom: &Domain, us: u64) -> u32 {
        let deadline = Instant::now() + Duration::from_micros(us);
        let mut g = lock(&dom.wake);
        loop {
            if dom.events_pending() {
                return 0;
            }
            let now = Instant::now();
            if dom.stop_requested() || now >= deadline {
                return hypercall::E_TIMEOUT;
            }
            g = dom
                .cv
                .wait_timeout(g, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    fn hypercall(&self, dom: &Domain, vcpu: u32) -> u32 {
        let t0 = tracepoints::start();
        dom.stats.hypercalls.fetch_add(1, Ordering::Relaxed);
        let block = layout::hcall_block(vcpu);
        let raw_op = dom.gvm.ram.read_u64(block).unwrap_or(0);
        let (status, failed) = match Op::read_vcpu(&dom.gvm.ram, vcpu) {
            Err(Rejected(s)) => (s, true),
            Ok(op) => {
                // DOM_ID returns a value, not a status: never a failure.
                let is_value = matches!(op, Op::DomId | Op::VcpuId);
                let r = match op {
                    Op::MapIomem(r) => self.map(dom.id, r).map(|_| 0),
                    Op::UnmapIomem(r) => self.unmap(dom.id, r).map(|_| 0),
                    Op::BindIrq(r) => self.bind(dom.id, r).map(|_| 0),
                    Op::UnbindIrq(r) => self.unbind(dom.id, r).map(|_| 0),
                    Op::Query(space, unit) => self.query_bits(dom.id, space, unit).map(|bits| {
                        dom.gvm
                            .ram
                            .write_u64(block + 32, bits)
                            .map_or(hypercall::E_FAULT, |_| 0)
                    }),
                    Op::Block(us) => Ok(self.block(dom, us)),
                    Op::DomId => Ok(dom.id.get() as u32),
                    Op::VcpuId => Ok(vcpu),
                };
                let s = match r {
                    Ok(s) => s,
                    Err(HvError::Acct(e)) => {
                        if e.code() == accountant::ErrorCode::Quota {
                            dom.stats.quota_refusals.fetch_add(1, Ordering::Relaxed);
                        }
                        errno_of(e.code())
                    }
                    Err(_) => hypercall::E_HV,
                };
                (s, !is_value && s != 0)
            }
        };
        if failed {
            dom.stats.hypercall_errors.fetch_add(1, Ordering::Relaxed);
        }
        tracepoints::tp!(tracepoints::Record::new(tracepoints::Kind::Hypercall)
            .domain(dom.id.get())
            .extra(raw_op)
            .value(status as u64)
            .since(t0));
        status
    }

    /// The QUERY answer for `d`. The accountant's refusal becomes the
    /// hypercall's status, except for a RAM frame (answered "nothing", as
    /// with accounting off).
    fn query_bits(&self, d: DomId, space: Space, unit: u64) -> Result<u64, HvError> {
        let acct = lock(&self.cp);
        Ok(match acct.query(space, unit) {
            Some(Ok(i)) => {
                let mut bits = 0;
                if let Some((_, m)) = i.holders.iter().find(|(h, _)| *h == d) {
                    bits |= hypercall::QUERY_HELD;
                    if *m == Mode::Exclusive {
                        bits |= hypercall::QUERY_EXCLUSIVE;
                    }
                }
                if i.reserved {
                    bits |= hypercall::QUERY_RESERVED;
                }
                if i.draining.contains(&d) {
                    bits |= hypercall::QUERY_DRAINING;
                }
                let uses = i.uses.iter().find(|(u, _)| *u == d).map_or(0, |(_, n)| *n);
                bits | ((uses as u64) << hypercall::QUERY_USES_SHIFT)
            }
            // A RAM frame is no I/O memory: nobody holds or uses it, the
            // answer accounting off gives too (its caps never cover RAM).
            Some(Err(e)) if e.code() == accountant::ErrorCode::NotIoMemory => 0,
            Some(Err(e)) => return Err(e.into()),
            None => match UnitRange::one(space, unit).map(|r| acct.caps_cover(d, r)) {
                Ok(Some(true)) => hypercall::QUERY_HELD,
                _ => 0,
            },
        })
    }

    fn apply_teardown(&self, td: &Teardown) {
        for it in td {
            match it.space {
                Space::IoMem => {
                    if let Some(dom) = self.domain(it.dom) {
                        // A stuck slot is counted and isolated by `unslot`;
                        // the teardown itself stands.
                        let _stuck = self.unslot(&dom, it.first, it.last, it.count);
                    }
                }
                Space::Irq => {
                    let mut irqs = lock(&self.irqs);
                    for irq in it.first..=it.last.min(Space::Irq.max_unit()) {
                        if let Some(b) = irqs.get_mut(&(irq as u32)) {
                            let gone = match b.get_mut(&it.dom.get()) {
                                Some(c) => {
                                    *c = c.saturating_sub(it.count);
                                    *c == 0
                                }
                                None => false,
                            };
                            if gone {
                                b.remove(&it.dom.get());
                                // Deassigned before the operation returns.
                                if let Some(dom) = self.domain(it.dom) {
                                    dom.irq.deassign(&dom.gvm.vm, irq as u32);
                                }
                            }
                        }
                    }
                }
                Space::IoPort => {}
            }
        }
    }

    /// Ends `count` mappings of `first..=last` in `dom`'s slot table
    /// (whatever the counts say, if they disagree). If KVM refuses to delete
    /// a slot the domain could still reach the frames, so isolation wins over
    /// liveness: the frames are counted, the vCPU is told to stop (it cannot
    /// re-enter the guest once its current exit is handled, so a vCPU calling
    /// this from its own hypercall is isolated on return) and queued for
    /// [`Shared::isolate_pending`], which waits for it. Returns the number of
    /// frames left reachable.
    fn unslot(&self, dom: &Domain, first: u64, last: u64, count: u32) -> u64 {
        let mut slots = lock(&dom.slots);
        let mut ops = KvmSlots(&dom.gvm.vm, dom.id.get());
        let stuck = match slots.unmap(first, last, count, &mut ops) {
            Ok(stuck) => stuck,
            Err(_) => slots.force_unmap(first, last, &mut ops),
        };
        drop(slots);
        let frames: u64 = stuck.iter().map(|(a, b)| b - a + 1).sum();
        if frames > 0 {
            dom.stats.stuck_frames.fetch_add(frames, Ordering::Relaxed);
            dom.request_stop();
            dom.wake();
            lock(&self.isolate).push(dom.id);
        }
        frames
    }

    /// Stops (and waits for) every domain `unslot` queued. Must not be
    /// called with the control plane held or from a vCPU thread: a vCPU may
    /// be waiting for the control plane in a hypercall.
    fn isolate_pending(&self) {
        let pending = std::mem::take(&mut *lock(&self.isolate));
        for d in pending {
            if let Some(dom) = self.domain(d) {
                dom.stop();
                dom.join();
            }
        }
    }

    /// Maps `r` into `d`. Every domain but 0 has its VM from creation on;
    /// domain 0 may map before it has one (the hypervisor's workloads make
    /// the accountant track frames that way): the accountant then records
    /// the use and there is no slot table to update (the frames stay
    /// unreachable until its VM maps them itself).
    fn map(&self, d: DomId, r: UnitRange) -> Result<(), HvError> {
        if r.space() != Space::IoMem {
            return Err(HvError::WrongSpace(r.space()));
        }
        let mut acct = lock(&self.cp);
        let dom = self.domain(d);
        if dom.is_none() && d != DomId::DOM0 {
            // An unknown domain gets the accountant's answer. A known one
            // without a VM cannot occur (create and destroy change both
            // under the control plane); should it, it gets no use that no
            // slot table follows.
            acct.known(d)?;
            return Err(HvError::NoVm(d));
        }
        acct.map(d, r)?;
        if let Some(dom) = dom {
            let mapped = lock(&dom.slots).map(
                r.first(),
                r.last(),
                &self.platform,
                &mut KvmSlots(&dom.gvm.vm, dom.id.get()),
            );
            if let Err(e) = mapped {
                // Unreachable for a valid `UnitRange`; if it ever happens the
                // accountant must not keep a use the slot table lacks.
                acct.unmap(d, r)?;
                return Err(HvError::Slots(e));
            }
        }
        Ok(())
    }

    fn unmap(&self, d: DomId, r: UnitRange) -> Result<(), HvError> {
        if r.space() != Space::IoMem {
            return Err(HvError::WrongSpace(r.space()));
        }
        let mut acct = lock(&self.cp);
        let dom = self.domain(d);
        if acct.accounting() == Accounting::Off {
            // Xen keeps no use counts: the hypervisor's own map decides.
            if let Some(dom) = &dom {
                lock(&dom.slots)
                    .covered(r.first(), r.last(), 1)
                    .map_err(|unit| Error::NotMapped { unit })?;
            }
        }
        acct.unmap(d, r)?;
        if let Some(dom) = dom {
            let frames = self.unslot(&dom, r.first(), r.last(), 1);
            if frames > 0 {
                return Err(HvError::SlotStuck { dom: d, frames });
            }
        }
        Ok(())
    }

    fn bind(&self, d: DomId, r: UnitRange) -> Result<(), HvError> {
        if r.space() != Space::Irq {
            return Err(HvError::WrongSpace(r.space()));
        }
        let mut acct = lock(&self.cp);
        acct.bind(d, r)?;
        let mut irqs = lock(&self.irqs);
        let dom = self.domain(d);
        for irq in r.first()..=r.last() {
            let c = irqs
                .entry(irq as u32)
                .or_default()
                .entry(d.get())
                .or_default();
            *c += 1;
            if *c > 1 {
                continue;
            }
            let Some(dom) = &dom else { continue };
            if let Err(errno) = dom.irq.assign(&dom.gvm.vm, irq as u32) {
                // Undo this bind entirely: the lines bound so far, the table,
                // the accountant.
                drop(irqs);
                let undo = accountant::TeardownItem {
                    dom: d,
                    space: Space::Irq,
                    first: r.first(),
                    last: irq,
                    count: 1,
                };
                self.apply_teardown(&vec![undo]);
                let _ = acct.unbind(d, r);
                return Err(HvError::Vm(VmError::Kvm {
                    what: "KVM_IRQFD assign",
                    errno,
                }));
            }
        }
        Ok(())
    }

    fn unbind(&self, d: DomId, r: UnitRange) -> Result<(), HvError> {
        if r.space() != Space::Irq {
            return Err(HvError::WrongSpace(r.space()));
        }
        let mut acct = lock(&self.cp);
        if acct.accounting() == Accounting::Off {
            let irqs = lock(&self.irqs);
            for irq in r.first()..=r.last() {
                if !irqs
                    .get(&(irq as u32))
                    .is_some_and(|b| b.contains_key(&d.get()))
                {
                    return Err(Error::NotBound { unit: irq }.into());
                }
            }
        }
        acct.unbind(d, r)?;
        self.apply_teardown(&vec![accountant::TeardownItem {
            dom: d,
            space: Space::Irq,
            first: r.first(),
            last: r.last(),
            count: 1,
        }]);
        Ok(())
    }
}

impl Hypervisor {
    /// Boots: opens `/dev/kvm`, detects the host, boots the accountant from
    /// the boot line (and reserves the hypervisor's paravirtual ports
    /// [`layout::HV_PORTS`]), builds the platform.
    pub fn boot(cfg: Config) -> Result<Hypervisor, HvError> {
        let host = crate::host::detect();
        let kvm = Kvm::new().map_err(|e| HvError::NoKvm(e.errno()))?;
        let mut acct = Acct::boot(&cfg.boot_line, cfg.accounting, cfg.tracker)
            .map_err(|e| HvError::Boot(e.to_string()))?;
        if let Some(q) = cfg.quotas {
            acct.set_quotas(q);
        }
        let hv_ports = UnitRange::new(
            Space::IoPort,
            layout::HV_PORTS.0 as u64,
            layout::HV_PORTS.1 as u64,
        )?;
        acct.reserve(hv_ports)?;
        let platform = Platform::new(cfg.fb_bytes).map_err(HvError::Mem)?;
        let map_gib = platform.top_gpa().div_ceil(1 << 30).max(4);
        if map_gib > layout::MAX_MAPPED_GIB {
            return Err(HvError::Boot(format!(
                "framebuffer of {:#x} bytes does not fit the guest page tables",
                cfg.fb_bytes
            )));
        }
        let max_slots = kvm.get_nr_memslots() as u32;
        Ok(Hypervisor {
            sh: Arc::new(Shared {
                domains: RwLock::new(BTreeMap::new()),
                cp: Mutex::new(acct),
                irqs: Mutex::new(BTreeMap::new()),
                isolate: Mutex::new(Vec::new()),
                platform,
                kvm,
                host,
                cfg,
                map_gib,
                max_slots,
            }),
        })
    }

    /// The host as detected at boot.
    pub fn host(&self) -> &HostInfo {
        &self.sh.host
    }

    /// Accounting on or off.
    pub fn accounting(&self) -> Accounting {
        self.sh.cfg.accounting
    }

    /// Memslots KVM offers per VM.
    pub fn max_memslots(&self) -> u32 {
        self.sh.max_slots
    }

    /// The platform (device counters, framebuffer backing, console).
    pub fn platform(&self) -> &Platform {
        &self.sh.platform
    }

    /// Creates domain `d` (in the accountant, unless it is domain 0) with a
    /// VM running `program`, started at once.
    pub fn create_domain(&self, d: DomId, program: &Program) -> Result<(), HvError> {
        self.create_domain_smp(d, program, 1)
    }

    /// Creates domain `d` with `vcpus` vCPUs (1..=[`layout::MAX_VCPUS`]),
    /// each on its own thread running `program` from its entry with its own
    /// stacks, hypercall block and data area (its index in `r9`, and from
    /// the `VCPU_ID` hypercall), started at once.
    pub fn create_domain_smp(
        &self,
        d: DomId,
        program: &Program,
        vcpus: u32,
    ) -> Result<(), HvError> {
        self.create_domain_paused_smp(d, program, self.sh.cfg.ram_bytes, vcpus)?;
        self.start(d)
    }

    /// Creates domain `d` with a VM of `ram_bytes` RAM loaded with `program`,
    /// without starting its vCPU (see [`Hypervisor::start`]).
    pub fn create_domain_paused(
        &self,
        d: DomId,
        program: &Program,
        ram_bytes: u64,
    ) -> Result<(), HvError> {
        self.create_domain_paused_smp(d, program, ram_bytes, 1)
    }

    /// [`Hypervisor::create_domain_paused`] with `vcpus` vCPUs.
    pub fn create_domain_paused_smp(
        &self,
        d: DomId,
        program: &Program,
        ram_bytes: u64,
        vcpus: u32,
    ) -> Result<(), HvError> {
        let mut acct = lock(&self.sh.cp);
        if d != DomId::DOM0 {
            acct.create(d)?;
        }
        if self.sh.domain(d).is_some() {
            // Only domain 0 can get here: the accountant knows every other
            // domain that has a VM.
            return Err(HvError::VmExists(d));
        }
        let built = GuestVm::new_smp(
            &self.sh.kvm,
            ram_bytes,
            self.sh.map_gib,
            d.get(),
            program,
            vcpus,
        );
        let (gvm, fds) = match built {
            Ok(x) => x,
            Err(e) => {
                if d != DomId::DOM0 {
                    let _ = acct.destroy(d);
                }
                return Err(e.into());
            }
        };
        let tsc_khz = fds.first().and_then(|v| v.get_tsc_khz().ok()).unwrap_or(0);
        let ports = match acct.dom_checker(d) {
            Some(c) => c,
            None => {
                if d != DomId::DOM0 {
                    let _ = acct.destroy(d);
                }
                return Err(HvError::Boot(format!("no port check for domain {d}")));
            }
        };
        let dom = Arc::new(Domain {
            id: d,
            ports,
            irq: IrqFds::new(gvm.irqchip),
            cpus: Mutex::new(None),
            // The highest slot id stays free for the bench's bare-KVM floors
            // (`floor_memslot_add`).
            slots: Mutex::new(SlotTable::new(probe_slot(&gvm, self.sh.max_slots))),
            vcpus: fds
                .into_iter()
                .zip(0u32..)
                .map(|(fd, i)| Vcpu::new(i, fd))
                .collect(),
            stats: Stats::default(),
            wake: Mutex::new(0),
            cv: Condvar::new(),
            tsc_khz,
            gvm,
        });
        if self.sh.cfg.handler_probe > 0 {
            for v in dom.vcpus.iter() {
                v.ctl.enable_probe(self.sh.cfg.handler_probe);
            }
        }
        self.sh
            .domains
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(d.get(), dom);
        Ok(())
    }

    /// Starts the vCPU thread of a domain created paused.
    pub fn start(&self, d: DomId) -> Result<(), HvError> {
        let dom = self.sh.domain(d).ok_or(HvError::NoVm(d))?;
        // Without the kick handler a running vCPU could not be stopped
        // promptly (kicking it would kill the process): refuse to start one.
        vcpu::install_kick_handler().map_err(|errno| {
            HvError::Vm(VmError::Kvm {
                what: "install the vCPU kick signal handler",
                errno,
            })
        })?;
        for (i, v) in dom.vcpus.iter().enumerate() {
            let Some(mut fd) = lock(&v.fd).take() else {
                continue;
            };
            let sh = Arc::clone(&self.sh);
            let dom2 = Arc::clone(&dom);
            let cpus = lock(&dom.cpus)
                .clone()
                .or_else(|| self.sh.cfg.vcpu_cpus.clone());
            let h = std::thread::Builder::new()
                .name(format!("vcpu-d{}.{i}", d.get()))
                .spawn(move || {
                    if let Some(cpus) = &cpus {
                        // Placement is a measurement condition, not a correctness
                        // one: a refused pin leaves the thread where it is, and
                        // the bench, which records every sample's CPU, says so.
                        let _ = affinity::pin_current(cpus);
                    }
                    let v = &dom2.vcpus[i];
                    let mut env = Env {
                        sh: &sh,
                        dom: &dom2,
                        vcpu: v,
                    };
                    let r = vcpu::run(&mut fd, &dom2.gvm.ram, &mut env, &v.ctl);
                    *lock(&v.outcome) = Some(r);
                    r
                })
                .map_err(|e| {
                    v.ctl.mark_finished();
                    HvError::Vm(VmError::Kvm {
                        what: "spawn vCPU thread",
                        errno: e.raw_os_error().unwrap_or(0),
                    })
                })?;
            *lock(&v.thread) = Some(h);
        }
        Ok(())
    }

    /// Pins the vCPU threads of domain `d` (created paused) to host CPUs
    /// `cpus` once started, whatever [`Config::vcpu_cpus`] says.
    pub fn set_vcpu_cpus(&self, d: DomId, cpus: CpuSet) -> Result<(), HvError> {
        let dom = self.sh.domain(d).ok_or(HvError::NoVm(d))?;
        *lock(&dom.cpus) = Some(cpus);
        Ok(())
    }

    /// Waits up to `timeout` for a domain's vCPU to stop; its reason, or
    /// `None` if it is still running.
    pub fn wait(&self, d: DomId, timeout: Duration) -> Option<StopReason> {
        let dom = self.sh.domain(d)?;
        let end = Instant::now() + timeout;
        while !dom.finished() {
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        dom.join()
    }

    /// Stops a domain's vCPU (kicking it out of the guest); its VM, memory
    /// and resources stay until it is destroyed.
    pub fn stop(&self, d: DomId) -> Option<StopReason> {
        let dom = self.sh.domain(d)?;
        dom.stop();
        dom.join()
    }

    /// Destroys domain `d`: the accountant ends every use, the vCPU is
    /// stopped, every memslot and interrupt binding removed, the VM freed —
    /// all before this returns. Domain 0 cannot be destroyed.
    pub fn destroy_domain(&self, d: DomId) -> Result<Teardown, HvError> {
        if d == DomId::DOM0 {
            return Err(Error::NotPermitted(d).into());
        }
        // Refuse (changing nothing) what the accountant would refuse, before
        // the vCPU is stopped. The vCPU is stopped without the control plane
        // held: a vCPU inside a hypercall may be waiting for it.
        lock(&self.sh.cp).can_destroy(d)?;
        let dom = self.sh.domain(d);
        if let Some(dom) = &dom {
            dom.stop();
        }
        let mut acct = lock(&self.sh.cp);
        let td = acct.destroy(d)?;
        self.sh.apply_teardown(&td);
        {
            let mut irqs = lock(&self.sh.irqs);
            for b in irqs.values_mut() {
                b.remove(&d.get());
            }
        }
        if let Some(dom) = &dom {
            dom.irq.deassign_all(&dom.gvm.vm);
        }
        if let Some(dom) = dom {
            lock(&dom.slots).clear(&mut KvmSlots(&dom.gvm.vm, dom.id.get()));
            dom.join();
            self.sh
                .domains
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&d.get());
        }
        self.sh.quiesce_all();
        drop(acct);
        self.sh.isolate_pending();
        Ok(td)
    }

    /// Grants `r` to `d`. A forced grant tears down the default I/O domain's
    /// uses (their memslots are gone when this returns); returns them.
    pub fn grant(
        &self,
        d: DomId,
        r: UnitRange,
        mode: Mode,
        force: bool,
    ) -> Result<Teardown, HvError> {
        let td = {
            let mut acct = lock(&self.sh.cp);
            let td = acct.grant(d, r, mode, force)?;
            self.sh.apply_teardown(&td);
            self.sh.quiesce_all();
            td
        };
        self.sh.isolate_pending();
        Ok(td)
    }

    /// Revokes `r` from `d`. With `force`, `d`'s uses are torn down before
    /// this returns; without, used units drain (`pending`). Once this
    /// returns no port access checked against the old permission is still
    /// in flight.
    pub fn revoke(&self, d: DomId, r: UnitRange, force: bool) -> Result<Revoked, HvError> {
        let rv = {
            let mut acct = lock(&self.sh.cp);
            let rv = acct.revoke(d, r, force)?;
            self.sh.apply_teardown(&rv.teardown);
            self.sh.quiesce_all();
            rv
        };
        self.sh.isolate_pending();
        Ok(rv)
    }

    /// Maps frames `r` into `d` (accountant `map`, then memslots).
    pub fn map(&self, d: DomId, r: UnitRange) -> Result<(), HvError> {
        self.sh.map(d, r)
    }

    /// Unmaps frames `r` from `d`; their slots are gone when this returns,
    /// or, if KVM refused to delete one, `d`'s vCPU has stopped
    /// ([`HvError::SlotStuck`]).
    pub fn unmap(&self, d: DomId, r: UnitRange) -> Result<(), HvError> {
        let res = self.sh.unmap(d, r);
        self.sh.isolate_pending();
        res
    }

    /// Binds line(s) `r` for `d`.
    pub fn bind(&self, d: DomId, r: UnitRange) -> Result<(), HvError> {
        self.sh.bind(d, r)
    }

    /// Unbinds line(s) `r` for `d`; no event reaches `d` from them afterwards.
    pub fn unbind(&self, d: DomId, r: UnitRange) -> Result<(), HvError> {
        self.sh.unbind(d, r)
    }

    /// Hypervisor reservation.
    pub fn reserve(&self, r: UnitRange) -> Result<(), HvError> {
        lock(&self.sh.cp).reserve(r)?;
        self.sh.quiesce_all();
        Ok(())
    }

    /// Lifts a reservation.
    pub fn unreserve(&self, r: UnitRange) -> Result<(), HvError> {
        Ok(lock(&self.sh.cp).unreserve(r)?)
    }

    /// The hypervisor's own use of reserved units.
    pub fn hvmap(&self, r: UnitRange) -> Result<(), HvError> {
        Ok(lock(&self.sh.cp).hvmap(r)?)
    }

    /// Ends the hypervisor's own use.
    pub fn hvunmap(&self, r: UnitRange) -> Result<(), HvError> {
        Ok(lock(&self.sh.cp).hvunmap(r)?)
    }

    /// One access check through the accountant (as a vCPU exit would make).
    pub fn access(&self, d: DomId, port: u64, width: u64) -> Result<bool, HvError> {
        Ok(lock(&self.sh.cp).access(d, port, width)?)
    }

    /// The accountant's view of one unit (accounting on; `None` when off).
    pub fn query(&self, space: Space, unit: u64) -> Option<Result<UnitInfo, Error>> {
        lock(&self.sh.cp).query(space, unit)
    }

    /// Verifies the accountant's invariants.
    pub fn check_invariants(&self) -> Result<(), accountant::Violation> {
        lock(&self.sh.cp).check_invariants()
    }

    /// Bytes the accountant spends tracking I/O memory.
    pub fn tracking_bytes(&self) -> u64 {
        lock(&self.sh.cp).tracking_bytes()
    }

    /// Raises interrupt line `irq`: sets its pending bit in the event page of
    /// every bound domain and wakes them. Returns how many got it.
    pub fn raise_irq(&self, irq: u32) -> usize {
        self.sh.raise_irq(irq)
    }

    /// Device A's per-domain counters.
    pub fn device_a_counters(&self) -> BTreeMap<u16, DeviceCounters> {
        self.sh.platform.device_a.counters()
    }

    /// How interrupts reach domain `d` (KVM irqchip or event page only).
    pub fn irq_delivery(&self, d: DomId) -> Option<Delivery> {
        self.sh.domain(d).map(|x| x.irq.delivery())
    }

    /// Interrupts domain `d`'s guest handler has taken (the guest's own
    /// count at [`layout::IRQ_COUNT`]; 0 without an irqchip).
    pub fn irqs_taken(&self, d: DomId) -> Option<u64> {
        self.read_guest_u64(d, layout::IRQ_COUNT)
    }

    /// Lines with an irqfd assigned on domain `d`'s VM.
    pub fn irqfd_lines(&self, d: DomId) -> Vec<u32> {
        self.sh.domain(d).map(|x| x.irq.lines()).unwrap_or_default()
    }

    /// Exits handled by each of a domain's vCPUs, by index.
    pub fn vcpu_exits(&self, d: DomId) -> Option<Vec<u64>> {
        self.sh
            .domain(d)
            .map(|x| x.vcpus.iter().map(|v| v.ctl.exits()).collect())
    }

    /// A domain's counters.
    pub fn stats(&self, d: DomId) -> Option<DomainStats> {
        self.sh.domain(d).map(|x| x.snapshot())
    }

    /// The memslots `d` uses for I/O memory, as frame ranges.
    pub fn io_slots(&self, d: DomId) -> Vec<(u64, u64)> {
        self.sh
            .domain(d)
            .map(|x| lock(&x.slots).slot_ranges())
            .unwrap_or_default()
    }

    /// Reads a u64 of `d`'s guest RAM.
    pub fn read_guest_u64(&self, d: DomId, gpa: u64) -> Option<u64> {
        self.sh.domain(d)?.gvm.ram.read_u64(gpa)
    }

    /// Writes a u64 of `d`'s guest RAM (start-info words, control flags).
    pub fn write_guest_u64(&self, d: DomId, gpa: u64, v: u64) -> Option<()> {
        self.sh.domain(d)?.gvm.ram.write_u64(gpa, v)
    }

    /// Reads `n` consecutive u64s of guest RAM from `gpa` (sample buffers).
    pub fn read_guest_u64s(&self, d: DomId, gpa: u64, n: usize) -> Option<Vec<u64>> {
        let dom = self.sh.domain(d)?;
        let mut buf = vec![0u8; n.checked_mul(8)?];
        dom.gvm.ram.read(gpa, &mut buf)?;
        Some(
            buf.chunks_exact(8)
                .map(|c| {
                    let mut w = [0u8; 8];
                    w.copy_from_slice(c);
                    u64::from_le_bytes(w)
                })
                .collect(),
        )
    }

    /// The guest TSC frequency of `d` in kHz (0 if KVM would not say).
    pub fn tsc_khz(&self, d: DomId) -> u32 {
        self.sh.domain(d).map_or(0, |x| x.tsc_khz)
    }

    /// Rings `d`'s doorbell: sets event bit [`DOORBELL_LINE`] on its event
    /// page and wakes it from `BLOCK`. Bench guests wait on it between
    /// measured steps. False if `d` has no VM.
    pub fn notify(&self, d: DomId) -> bool {
        let Some(dom) = self.sh.domain(d) else {
            return false;
        };
        let word = layout::EVTCHN_PAGE + 8 * (DOORBELL_LINE as u64 / 64);
        let _ = dom.gvm.ram.fetch_or_u64(word, 1u64 << (DOORBELL_LINE % 64));
        dom.wake();
        true
    }

    /// Exit-handler times (TSC ticks) recorded by `d`'s probe since the last
    /// call, and the number of exits that did not fit; `None` without a
    /// probe ([`Config::handler_probe`]) or VM. Call while the guest is
    /// parked, not in the middle of exits.
    pub fn take_handler_ticks(&self, d: DomId) -> Option<(Vec<u64>, u64)> {
        let dom = self.sh.domain(d)?;
        // vCPU 0's probe: the measured loops run on a domain's first vCPU.
        dom.vcpus.first()?.ctl.probe().map(|p| p.take())
    }

    /// The bare KVM step inside [`Hypervisor::map`], for the bench's paired
    /// floors: adds a memslot over `r`'s frames (which must be one platform
    /// region, not mapped by `d` now) on `d`'s own VM, with the slot id the
    /// slot table never uses, and returns the nanoseconds of that ioctl
    /// alone. Touches neither the accountant nor the slot table.
    pub fn floor_memslot_add(&self, d: DomId, r: UnitRange) -> Result<u64, HvError> {
        if r.space() != Space::IoMem {
            return Err(HvError::WrongSpace(r.space()));
        }
        let dom = self.sh.domain(d).ok_or(HvError::NoVm(d))?;
        let bk = self
            .sh
            .platform
            .backing(r.first())
            .filter(|b| b.region_last >= r.last())
            .ok_or(HvError::Slots(SlotError::BadRange))?;
        let id = probe_slot(&dom.gvm, self.sh.max_slots);
        let mut ops = KvmSlots(&dom.gvm.vm, d.get());
        let t = Instant::now();
        let res = ops.add_raw(id, r.first(), r.last(), bk.host);
        let ns = t.elapsed().as_nanos() as u64;
        res.map_err(|errno| {
            HvError::Vm(VmError::Kvm {
                what: "floor memslot add",
                errno,
            })
        })?;
        Ok(ns)
    }

    /// Deletes the memslot [`Hypervisor::floor_memslot_add`] added for `r`,
    /// and returns the nanoseconds of that ioctl alone.
    pub fn floor_memslot_delete(&self, d: DomId, r: UnitRange) -> Result<u64, HvError> {
        let dom = self.sh.domain(d).ok_or(HvError::NoVm(d))?;
        let id = probe_slot(&dom.gvm, self.sh.max_slots);
        let mut ops = KvmSlots(&dom.gvm.vm, d.get());
        let t = Instant::now();
        let res = ops.del_raw(id, r.first());
        let ns = t.elapsed().as_nanos() as u64;
        res.map_err(|errno| {
            HvError::Vm(VmError::Kvm {
                what: "floor memslot delete",
                errno,
            })
        })?;
        Ok(ns)
    }
}

/// The event line bench guests wait on ([`Hypervisor::notify`]); no device
/// uses it.
pub const DOORBELL_LINE: u32 = 1023;

/// The memslot id kept for [`Hypervisor::floor_memslot_add`]: the highest
/// one; the domain's slot table gets the ids below it.
fn probe_slot(gvm: &GuestVm, max_slots: u32) -> u32 {
    gvm.max_slots.min(max_slots).saturating_sub(1).max(1)
}

impl Drop for Hypervisor {
    fn drop(&mut self) {
        for d in self.sh.all_domains() {
            d.stop();
            d.join();
        }
    }
}

impl From<crate::guest::GuestError> for HvError {
    fn from(e: crate::guest::GuestError) -> Self {
        HvError::Vm(VmError::Guest(e))
    }
}
