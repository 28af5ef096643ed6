//! Domains: a domain's VM, vCPUs and counters, and its
//! lifecycle (create, start, wait, stop, destroy) with the per-domain
//! readers of [`Hypervisor`].

use crate::acct::DomChecker;
use crate::affinity::{self, CpuSet};
use crate::dispatch::Env;
use crate::exit::StopReason;
use crate::guest::Program;
use crate::hypercall;
use crate::iomem::probe_slot;
use crate::kvm_slots::KvmSlots;
use crate::layout;
use crate::locks::{self, ControlPlane, Root, Token};
use crate::memslot::SlotTable;
use crate::vcpu::{self, VcpuCtl};
use crate::vm::{GuestVm, VmError};
use crate::{HvError, Hypervisor};
use accountant::{DomId, Error, Teardown};
use kvm_ioctls::VcpuFd;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A per-domain counter kept by the hypervisor (see [`DomainStats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stat {
    DeniedPorts,
    DeniedMmio,
    SlowMmio,
    Hypercalls,
    HypercallErrors,
    BadHypercalls,
    Events,
    StuckFrames,
    QuotaRefusals,
}

/// Per-domain counters, one per [`Stat`].
#[derive(Debug, Default)]
struct Stats([AtomicU64; Stat::QuotaRefusals as usize + 1]);

impl Stats {
    fn get(&self, s: Stat) -> u64 {
        self.0[s as usize].load(Ordering::Relaxed)
    }
}

/// The domain table: every domain with a VM, by id. Its lock is held only
/// inside these methods, which take no other lock; it changes only under
/// the control plane (create and destroy change the accountant and this
/// table together).
pub(crate) struct Domains {
    map: RwLock<BTreeMap<u16, Arc<Domain>>>,
}

impl Domains {
    /// No domain.
    pub(crate) fn new() -> Domains {
        Domains {
            map: RwLock::new(BTreeMap::new()),
        }
    }

    /// Domain `d`, if it has a VM.
    pub(crate) fn get(&self, d: DomId) -> Option<Arc<Domain>> {
        locks::read(&self.map).get(&d.get()).cloned()
    }

    /// Every domain with a VM, in id order.
    pub(crate) fn all(&self) -> Vec<Arc<Domain>> {
        locks::read(&self.map).values().cloned().collect()
    }

    fn insert(&self, _cp: &Token<ControlPlane>, dom: Arc<Domain>) {
        locks::write(&self.map).insert(dom.id.get(), dom);
    }

    fn remove(&self, _cp: &Token<ControlPlane>, d: DomId) {
        locks::write(&self.map).remove(&d.get());
    }
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

/// A domain: its VM, vCPUs and counters (its slot table is the control
/// plane's, [`crate::control::Plane`]).
pub(crate) struct Domain {
    id: DomId,
    /// The port check of this domain's vCPU exits.
    ports: DomChecker,
    /// Its vCPUs, by index (at least one).
    vcpus: Box<[Vcpu]>,
    /// Host CPUs its vCPU threads are pinned to, per vCPU index (a vCPU past
    /// the list takes its last entry; empty: [`crate::Config::vcpu_cpus`]);
    /// set before [`Hypervisor::start`].
    cpus: Mutex<Vec<CpuSet>>,
    stats: Stats,
    /// Its slot table's slot count (the table is the control plane's), told
    /// by the table through [`KvmSlots`] at every change, so that reading the
    /// counters takes no lock: a thread polling them must not contend with
    /// the control plane.
    io_slots: AtomicUsize,
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
pub(crate) struct Vcpu {
    ctl: VcpuCtl,
    fd: Mutex<Option<VcpuFd>>,
    thread: Mutex<Option<JoinHandle<StopReason>>>,
    outcome: Mutex<Option<StopReason>>,
}

impl Vcpu {
    /// Its control block.
    pub(crate) fn ctl(&self) -> &VcpuCtl {
        &self.ctl
    }

    fn new(index: u32, fd: VcpuFd) -> Vcpu {
        Vcpu {
            ctl: VcpuCtl::new(index),
            fd: Mutex::new(Some(fd)),
            thread: Mutex::new(None),
            outcome: Mutex::new(None),
        }
    }
}

impl Domain {
    /// Its id.
    pub(crate) fn id(&self) -> DomId {
        self.id
    }

    /// Its VM and RAM.
    pub(crate) fn gvm(&self) -> &GuestVm {
        &self.gvm
    }

    /// Whether its port check allows `size` bytes at `port`.
    pub(crate) fn port_allowed(&self, port: u16, size: u8) -> bool {
        self.ports.check(port, size)
    }

    /// Adds `n` to counter `s`.
    pub(crate) fn count(&self, s: Stat, n: u64) {
        self.stats.0[s as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// The KVM memslot back end of its slot table.
    pub(crate) fn kvm_slots(&self) -> KvmSlots<'_> {
        KvmSlots::new(&self.gvm.vm, self.id.get(), &self.io_slots)
    }

    /// Waits up to `us` microseconds for an event on its page (the `BLOCK`
    /// hypercall): 0 when one is pending, else `E_TIMEOUT`.
    pub(crate) fn block(&self, us: u64) -> u32 {
        let deadline = Instant::now() + Duration::from_micros(us);
        let mut g = locks::leaf(&self.wake);
        loop {
            if self.events_pending() {
                return 0;
            }
            let now = Instant::now();
            if self.stop_requested() || now >= deadline {
                return hypercall::E_TIMEOUT;
            }
            g = locks::wait_timeout(&self.cv, g, deadline - now).0;
        }
    }

    pub(crate) fn events_pending(&self) -> bool {
        (0..16).any(|i| {
            self.gvm
                .ram
                .load_u64_atomic(layout::EVTCHN_PAGE + 8 * i)
                .is_some_and(|w| w != 0)
        })
    }

    pub(crate) fn wake(&self) {
        let mut g = locks::leaf(&self.wake);
        *g = g.wrapping_add(1);
        self.cv.notify_all();
    }

    /// Stops every vCPU (kicking each out of the guest) and waits until
    /// every vCPU loop has returned. With no lock held (`root`): a vCPU may
    /// be waiting for the control plane in a hypercall.
    pub(crate) fn stop(&self, root: &mut Token<Root>) {
        let _ = root;
        // Every vCPU is asked first, so none runs on while another is waited for.
        for v in self.vcpus.iter() {
            v.ctl.request_stop();
        }
        for v in self.vcpus.iter() {
            if locks::leaf(&v.fd).take().is_some() {
                // Never started.
                v.ctl.mark_finished();
                continue;
            }
            v.ctl.stop_and_wait(|| self.wake());
        }
    }

    /// Asks every vCPU to stop at its next exit (without kicking).
    pub(crate) fn request_stop(&self) {
        for v in self.vcpus.iter() {
            v.ctl.request_stop();
        }
    }

    /// Whether the host asked the domain's vCPUs to stop.
    pub(crate) fn stop_requested(&self) -> bool {
        self.vcpus.iter().any(|v| v.ctl.stop_requested())
    }

    /// Whether every vCPU loop has returned.
    pub(crate) fn finished(&self) -> bool {
        self.vcpus.iter().all(|v| v.ctl.finished())
    }

    /// Waits until no vCPU of the domain is inside an exit that began
    /// before this call ([`VcpuCtl::quiesce`] on each).
    pub(crate) fn quiesce(&self) {
        for v in self.vcpus.iter() {
            v.ctl.quiesce();
        }
    }

    /// Joins every vCPU thread; the first stopped reason in vCPU order
    /// (vCPU 0's when it has one).
    pub(crate) fn join(&self) -> Option<StopReason> {
        let mut first = None;
        for v in self.vcpus.iter() {
            if let Some(h) = locks::leaf(&v.thread).take() {
                if let Ok(r) = h.join() {
                    *locks::leaf(&v.outcome) = Some(r);
                }
            }
            first = first.or(*locks::leaf(&v.outcome));
        }
        first
    }

    /// Its counters.
    pub(crate) fn snapshot(&self) -> DomainStats {
        let l = |s: Stat| self.stats.get(s);
        DomainStats {
            denied_ports: l(Stat::DeniedPorts),
            denied_mmio: l(Stat::DeniedMmio),
            slow_mmio: l(Stat::SlowMmio),
            hypercalls: l(Stat::Hypercalls),
            hypercall_errors: l(Stat::HypercallErrors),
            bad_hypercalls: l(Stat::BadHypercalls),
            events: l(Stat::Events),
            exits: self.vcpus.iter().map(|v| v.ctl.exits()).sum(),
            native_port_exits: self.vcpus.iter().map(|v| v.ctl.native_port_exits()).sum(),
            trapped_port_exits: self.vcpus.iter().map(|v| v.ctl.trapped_port_exits()).sum(),
            io_slots: self.io_slots.load(Ordering::Relaxed),
            stuck_frames: l(Stat::StuckFrames),
            quota_refusals: l(Stat::QuotaRefusals),
            vcpu_cpu: self.vcpus.first().and_then(|v| v.ctl.start_cpu()),
        }
    }
}

impl Hypervisor {
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
        self.create_domain_paused_smp(d, program, self.sh().cfg().ram_bytes, vcpus)?;
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
        let mut root = Token::root();
        let mut acct = self.sh().acct(&mut root);
        if d != DomId::DOM0 {
            acct.create(d)?;
        }
        if self.sh().domain(d).is_some() {
            // Only domain 0 can get here: the accountant knows every other
            // domain that has a VM.
            return Err(HvError::VmExists(d));
        }
        let built = GuestVm::new_smp(
            self.sh().kvm(),
            ram_bytes,
            self.sh().map_gib(),
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
                return Err(HvError::NoPortCheck(d));
            }
        };
        // The highest slot id stays free for the bench's bare-KVM floors
        // (`floor_memslot_add`).
        let slots = SlotTable::new(probe_slot(&gvm, self.sh().max_slots()));
        let dom = Arc::new(Domain {
            id: d,
            ports,
            cpus: Mutex::new(Vec::new()),
            vcpus: fds
                .into_iter()
                .zip(0u32..)
                .map(|(fd, i)| Vcpu::new(i, fd))
                .collect(),
            stats: Stats::default(),
            io_slots: AtomicUsize::new(0),
            wake: Mutex::new(0),
            cv: Condvar::new(),
            tsc_khz,
            gvm,
        });
        if self.sh().cfg().handler_probe > 0 {
            for v in dom.vcpus.iter() {
                v.ctl.enable_probe(self.sh().cfg().handler_probe);
            }
        }
        self.sh().irqs().add_domain(acct.token(), Arc::clone(&dom));
        acct.add_domain(Arc::clone(&dom), slots);
        self.sh().domains().insert(acct.token(), dom);
        Ok(())
    }

    /// Starts the vCPU thread of a domain created paused.
    pub fn start(&self, d: DomId) -> Result<(), HvError> {
        let dom = self.sh().domain(d).ok_or(HvError::NoVm(d))?;
        // Without the kick handler a running vCPU could not be stopped
        // promptly (kicking it would kill the process): refuse to start one.
        vcpu::install_kick_handler().map_err(|errno| {
            HvError::Vm(VmError::Kvm {
                what: "install the vCPU kick signal handler",
                errno,
            })
        })?;
        for (i, v) in dom.vcpus.iter().enumerate() {
            let Some(mut fd) = locks::leaf(&v.fd).take() else {
                continue;
            };
            let sh = Arc::clone(self.sh());
            let dom2 = Arc::clone(&dom);
            let cpus = {
                let each = locks::leaf(&dom.cpus);
                each.get(i).or(each.last()).cloned()
            }
            .or_else(|| self.sh().cfg().vcpu_cpus.clone());
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
                    let mut env = Env::new(&sh, &dom2, v);
                    let r = vcpu::run(&mut fd, &dom2.gvm.ram, &mut env, &v.ctl);
                    *locks::leaf(&v.outcome) = Some(r);
                    r
                })
                .map_err(|e| {
                    v.ctl.mark_finished();
                    HvError::Vm(VmError::Kvm {
                        what: "spawn vCPU thread",
                        errno: e.raw_os_error().unwrap_or(0),
                    })
                })?;
            *locks::leaf(&v.thread) = Some(h);
        }
        Ok(())
    }

    /// Pins the vCPU threads of domain `d` (created paused) to host CPUs
    /// `cpus` once started, whatever [`crate::Config::vcpu_cpus`] says.
    pub fn set_vcpu_cpus(&self, d: DomId, cpus: CpuSet) -> Result<(), HvError> {
        self.set_vcpu_cpus_each(d, vec![cpus])
    }

    /// Pins vCPU `i` of domain `d` (created paused) to `each[i]` once
    /// started; vCPUs past the list take its last entry, and an empty list
    /// leaves [`crate::Config::vcpu_cpus`] in force.
    pub fn set_vcpu_cpus_each(&self, d: DomId, each: Vec<CpuSet>) -> Result<(), HvError> {
        let dom = self.sh().domain(d).ok_or(HvError::NoVm(d))?;
        *locks::leaf(&dom.cpus) = each;
        Ok(())
    }

    /// Waits up to `timeout` for a domain's vCPU to stop; its reason, or
    /// `None` if it is still running.
    pub fn wait(&self, d: DomId, timeout: Duration) -> Option<StopReason> {
        let dom = self.sh().domain(d)?;
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
        let dom = self.sh().domain(d)?;
        dom.stop(&mut Token::root());
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
        let mut root = Token::root();
        self.sh().acct(&mut root).can_destroy(d)?;
        let dom = self.sh().domain(d);
        if let Some(dom) = &dom {
            dom.stop(&mut root);
        }
        let mut acct = self.sh().acct(&mut root);
        let td = acct.destroy(d)?;
        self.sh().apply_teardown(&mut acct, &td);
        self.sh().irqs().remove_domain(acct.token(), d.get());
        if let Some((dom, mut slots)) = acct.remove_domain(d) {
            slots.clear(&mut dom.kvm_slots());
        }
        if let Some(dom) = dom {
            dom.join();
            self.sh().domains().remove(acct.token(), d);
        }
        self.sh().quiesce_all();
        drop(acct);
        self.sh().isolate_pending(&mut root);
        Ok(td)
    }

    /// Exits handled by each of a domain's vCPUs, by index.
    pub fn vcpu_exits(&self, d: DomId) -> Option<Vec<u64>> {
        self.sh()
            .domain(d)
            .map(|x| x.vcpus.iter().map(|v| v.ctl.exits()).collect())
    }

    /// A domain's counters.
    pub fn stats(&self, d: DomId) -> Option<DomainStats> {
        self.sh().domain(d).map(|x| x.snapshot())
    }

    /// Reads a u64 of `d`'s guest RAM.
    pub fn read_guest_u64(&self, d: DomId, gpa: u64) -> Option<u64> {
        self.sh().domain(d)?.gvm.ram.read_u64(gpa)
    }

    /// Writes a u64 of `d`'s guest RAM (start-info words, control flags).
    pub fn write_guest_u64(&self, d: DomId, gpa: u64, v: u64) -> Option<()> {
        self.sh().domain(d)?.gvm.ram.write_u64(gpa, v)
    }

    /// Reads `n` consecutive u64s of guest RAM from `gpa` (sample buffers).
    pub fn read_guest_u64s(&self, d: DomId, gpa: u64, n: usize) -> Option<Vec<u64>> {
        let dom = self.sh().domain(d)?;
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
        self.sh().domain(d).map_or(0, |x| x.tsc_khz)
    }

    /// Exit-handler times (TSC ticks) recorded by `d`'s probe since the last
    /// call, and the number of exits that did not fit; `None` without a
    /// probe ([`crate::Config::handler_probe`]) or VM. Call while the guest is
    /// parked, not in the middle of exits.
    pub fn take_handler_ticks(&self, d: DomId) -> Option<(Vec<u64>, u64)> {
        let dom = self.sh().domain(d)?;
        // vCPU 0's probe: the measured loops run on a domain's first vCPU.
        dom.vcpus.first()?.ctl.probe().map(|p| p.take())
    }
}
