//! The control plane: the shared state every vCPU thread and control call
//! reaches, [`Hypervisor`] itself, boot, and the accountant's grant, revoke
//! and reservation operations with the teardowns they return.
//!
//! The other concerns are `impl Hypervisor` / `impl Shared` blocks of their
//! own files: domains and their lifecycle (`domain.rs`), I/O memory
//! (`iomem.rs`), interrupt lines (`irq_routing.rs`), what a vCPU's exits and
//! hypercalls do (`dispatch.rs`). Each reaches the shared state through
//! [`Shared`]'s methods and the components it returns (the domain table,
//! the interrupt lines), never through their fields.
//!
//! Lock order (outer first, carried by the types of [`crate::locks`]):
//! control plane ([`Shared::acct`]: the accountant and each domain's slot
//! table, [`Plane`]) → the irq binding table; the domain table is locked
//! only inside its own methods, and changed only with the control plane's
//! token. vCPU threads take the control plane only for hypercalls and slow
//! MMIO exits, which are outside their in-flight sections, so the control
//! plane may wait for in-flight port accesses
//! ([`crate::vcpu::VcpuCtl::quiesce`]) while holding it.

use crate::acct::{Accounting, Acct};
use crate::domain::{Domain, Domains};
use crate::host::HostInfo;
use crate::irq_routing::Interrupts;
use crate::layout;
use crate::locks::{self, ControlPlane, Guard, Ordered, Root, Token};
use crate::memslot::SlotTable;
use crate::platform::{DeviceCounters, Platform};
use crate::{Config, HvError};
use accountant::{Accountant, DomId, Error, Mode, Revoked, Space, Teardown, UnitInfo, UnitRange};
use kvm_ioctls::Kvm;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The control plane held: the accountant with each domain's slot table,
/// and the token for the locks after it.
pub(crate) type Cp<'a> = Guard<'a, ControlPlane, Plane>;

/// What the control-plane lock guards: the accountant, and every domain's
/// slot table (its I/O memory uses as KVM memslots), which mirrors the
/// accountant's uses and so changes only with it. The slot tables sit here,
/// under the one lock, rather than behind a lock of each domain's: a map
/// or unmap is then one lock operation, not three, and reaches its domain
/// without the domain table's lock or a reference count. A vCPU reads its
/// table only on the slow MMIO path ([`Shared::mmio`]), outside any
/// in-flight section, like a hypercall. Derefs to the accountant.
pub(crate) struct Plane {
    acct: Acct,
    /// Each domain with a VM, with its slot table, by id.
    doms: BTreeMap<u16, (Arc<Domain>, SlotTable)>,
}

impl Plane {
    fn new(acct: Acct) -> Plane {
        Plane {
            acct,
            doms: BTreeMap::new(),
        }
    }

    /// The accountant, and `d`'s VM and slot table if it has a VM.
    pub(crate) fn with_slots(
        &mut self,
        d: DomId,
    ) -> (&mut Acct, Option<(&Domain, &mut SlotTable)>) {
        let m = self.doms.get_mut(&d.get()).map(|(dom, t)| (&**dom, t));
        (&mut self.acct, m)
    }

    /// `d`'s slot table, if it has a VM.
    pub(crate) fn slots(&self, d: DomId) -> Option<&SlotTable> {
        self.doms.get(&d.get()).map(|(_, t)| t)
    }

    /// Starts keeping the slot table of `dom` (just created).
    pub(crate) fn add_domain(&mut self, dom: Arc<Domain>, table: SlotTable) {
        self.doms.insert(dom.id().get(), (dom, table));
    }

    /// Stops keeping `d`'s slot table, and returns it with the domain.
    pub(crate) fn remove_domain(&mut self, d: DomId) -> Option<(Arc<Domain>, SlotTable)> {
        self.doms.remove(&d.get())
    }
}

impl std::ops::Deref for Plane {
    type Target = Acct;
    fn deref(&self) -> &Acct {
        &self.acct
    }
}

impl std::ops::DerefMut for Plane {
    fn deref_mut(&mut self) -> &mut Acct {
        &mut self.acct
    }
}

/// What the control calls and every vCPU thread share.
pub(crate) struct Shared {
    // Field order is drop order: domains (VMs, memslots into platform
    // memory) before the platform; the binding table holds domains too.
    domains: Domains,
    cp: Ordered<ControlPlane, Plane>,
    /// Line bindings, their irqfds, and every domain with a VM. Taken
    /// alone or after the control plane; vCPU threads take it to raise.
    irqs: Interrupts,
    /// Domains told to stop because KVM kept a memslot they must no longer
    /// reach; the public entry points wait for them once the control plane
    /// is released (see [`Shared::unslot`]). A leaf lock.
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

impl Shared {
    /// Takes the control plane.
    pub(crate) fn acct<'a>(&'a self, root: &'a mut Token<Root>) -> Cp<'a> {
        self.cp.lock(root)
    }

    /// Takes the control plane for an operation on `r`, which must be of
    /// `space` ([`HvError::WrongSpace`] otherwise, nothing taken).
    pub(crate) fn acct_for<'a>(
        &'a self,
        root: &'a mut Token<Root>,
        r: UnitRange,
        space: Space,
    ) -> Result<Cp<'a>, HvError> {
        if r.space() != space {
            return Err(HvError::WrongSpace(r.space()));
        }
        Ok(self.acct(root))
    }

    /// The domain table.
    pub(crate) fn domains(&self) -> &Domains {
        &self.domains
    }

    /// The interrupt lines.
    pub(crate) fn irqs(&self) -> &Interrupts {
        &self.irqs
    }

    /// The platform's devices and memory.
    pub(crate) fn platform(&self) -> &Platform {
        &self.platform
    }

    /// The configuration booted with.
    pub(crate) fn cfg(&self) -> &Config {
        &self.cfg
    }

    /// Memslots KVM offers per VM.
    pub(crate) fn max_slots(&self) -> u32 {
        self.max_slots
    }

    /// The KVM system handle.
    pub(crate) fn kvm(&self) -> &Kvm {
        &self.kvm
    }

    /// GiB of guest-physical space each guest's page tables map.
    pub(crate) fn map_gib(&self) -> u64 {
        self.map_gib
    }

    /// Queues `d` for [`Shared::isolate_pending`].
    pub(crate) fn queue_isolation(&self, d: DomId) {
        locks::leaf(&self.isolate).push(d);
    }

    /// Takes every domain queued for isolation.
    pub(crate) fn take_isolated(&self) -> Vec<DomId> {
        std::mem::take(&mut *locks::leaf(&self.isolate))
    }

    pub(crate) fn domain(&self, d: DomId) -> Option<Arc<crate::domain::Domain>> {
        self.domains.get(d)
    }

    /// After an operation on `space` that may have cleared port rights (a
    /// grant or revoke of I/O ports): waits for every port access checked
    /// against the old rights. I/O memory and interrupt operations clear no
    /// port bit, so they have nothing to wait for.
    pub(crate) fn quiesce_ports(&self, space: Space) {
        if space == Space::IoPort {
            self.quiesce_all();
        }
    }

    pub(crate) fn quiesce_all(&self) {
        for d in self.domains.all() {
            d.quiesce();
        }
    }

    pub(crate) fn apply_teardown(&self, cp: &mut Cp<'_>, td: &Teardown) {
        for it in td {
            match it.space {
                Space::IoMem => {
                    if let (_, Some((dom, slots))) = cp.with_slots(it.dom) {
                        // A stuck slot is counted and isolated by `unslot`;
                        // the teardown itself stands.
                        let _stuck = self.unslot(slots, dom, it.first, it.last, it.count);
                    }
                }
                Space::Irq => {
                    self.irqs
                        .unbind_lines(cp.token(), it.dom, it.first, it.last, it.count)
                }
                Space::IoPort => {}
            }
        }
    }
}

impl Hypervisor {
    /// The shared state.
    pub(crate) fn sh(&self) -> &Arc<Shared> {
        &self.sh
    }

    /// Boots: opens `/dev/kvm`, detects the host, boots the accountant from
    /// the boot line (and reserves the hypervisor's paravirtual ports
    /// [`layout::HV_PORTS`]), builds the platform.
    pub fn boot(cfg: Config) -> Result<Hypervisor, HvError> {
        let host = crate::host::detect();
        let kvm = Kvm::new().map_err(|e| HvError::NoKvm(e.errno()))?;
        let mut acct = Acct::boot(&cfg.boot_line, cfg.accounting, cfg.tracker)
            .map_err(|e| HvError::Boot(e.0))?;
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
            return Err(HvError::FramebufferTooLarge {
                bytes: cfg.fb_bytes,
                max_gib: layout::MAX_MAPPED_GIB,
            });
        }
        let max_slots = kvm.get_nr_memslots() as u32;
        Ok(Hypervisor {
            sh: Arc::new(Shared {
                domains: Domains::new(),
                cp: Ordered::new(Plane::new(acct)),
                irqs: Interrupts::new(),
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

    /// Grants `r` to `d`. A forced grant tears down the default I/O domain's
    /// uses (their memslots are gone when this returns); returns them.
    pub fn grant(
        &self,
        d: DomId,
        r: UnitRange,
        mode: Mode,
        force: bool,
    ) -> Result<Teardown, HvError> {
        let mut root = Token::root();
        let td = {
            let mut acct = self.sh.acct(&mut root);
            let td = acct.grant(d, r, mode, force)?;
            self.sh.apply_teardown(&mut acct, &td);
            self.sh.quiesce_ports(r.space());
            td
        };
        self.sh.isolate_pending(&mut root);
        Ok(td)
    }

    /// Revokes `r` from `d`. With `force`, `d`'s uses are torn down before
    /// this returns; without, used units drain (`pending`). Once this
    /// returns no port access checked against the old permission is still
    /// in flight.
    pub fn revoke(&self, d: DomId, r: UnitRange, force: bool) -> Result<Revoked, HvError> {
        let mut root = Token::root();
        let rv = {
            let mut acct = self.sh.acct(&mut root);
            let rv = acct.revoke(d, r, force)?;
            self.sh.apply_teardown(&mut acct, &rv.teardown);
            self.sh.quiesce_ports(r.space());
            rv
        };
        self.sh.isolate_pending(&mut root);
        Ok(rv)
    }

    /// Hypervisor reservation.
    pub fn reserve(&self, r: UnitRange) -> Result<(), HvError> {
        self.sh.acct(&mut Token::root()).reserve(r)?;
        self.sh.quiesce_all();
        Ok(())
    }

    /// Lifts a reservation.
    pub fn unreserve(&self, r: UnitRange) -> Result<(), HvError> {
        Ok(self.sh.acct(&mut Token::root()).unreserve(r)?)
    }

    /// The hypervisor's own use of reserved units.
    pub fn hvmap(&self, r: UnitRange) -> Result<(), HvError> {
        Ok(self.sh.acct(&mut Token::root()).hvmap(r)?)
    }

    /// Ends the hypervisor's own use.
    pub fn hvunmap(&self, r: UnitRange) -> Result<(), HvError> {
        Ok(self.sh.acct(&mut Token::root()).hvunmap(r)?)
    }

    /// One access check through the accountant (as a vCPU exit would make).
    pub fn access(&self, d: DomId, port: u64, width: u64) -> Result<bool, HvError> {
        Ok(self.sh.acct(&mut Token::root()).access(d, port, width)?)
    }

    /// The accountant's view of one unit (accounting on; `None` when off).
    pub fn query(&self, space: Space, unit: u64) -> Option<Result<UnitInfo, Error>> {
        self.sh.acct(&mut Token::root()).query(space, unit)
    }

    /// Runs `f` on the accountant under the control plane: an operation
    /// with no hypervisor side of its own (the default of every trace op
    /// [`crate::exec::TraceHv`] does not override). Accounting off:
    /// [`HvError::NoAccountant`].
    pub fn on_accountant<T>(
        &self,
        f: impl FnOnce(&mut Accountant) -> Result<T, Error>,
    ) -> Result<T, HvError> {
        match self.sh.acct(&mut Token::root()).with_accountant(f) {
            Some(r) => Ok(r?),
            None => Err(HvError::NoAccountant),
        }
    }

    /// Verifies the accountant's invariants.
    pub fn check_invariants(&self) -> Result<(), accountant::Violation> {
        self.sh.acct(&mut Token::root()).check_invariants()
    }

    /// Bytes the accountant spends tracking I/O memory.
    pub fn tracking_bytes(&self) -> u64 {
        self.sh.acct(&mut Token::root()).tracking_bytes()
    }

    /// Device A's per-domain counters.
    pub fn device_a_counters(&self) -> BTreeMap<u16, DeviceCounters> {
        self.sh.platform.device_a.counters()
    }
}

impl Drop for Hypervisor {
    fn drop(&mut self) {
        let mut root = Token::root();
        for d in self.sh.domains.all() {
            d.stop(&mut root);
            d.join();
        }
    }
}
