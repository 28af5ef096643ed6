//! The control plane: the shared state every vCPU thread and control call
//! reaches, [`Hypervisor`] itself, boot, and the accountant's grant, revoke
//! and reservation operations with the teardowns they return.
//!
//! The other concerns are `impl Hypervisor` / `impl Shared` blocks of their
//! own files: domains and their lifecycle (`domain.rs`), I/O memory
//! (`iomem.rs`), interrupt lines (`irq_routing.rs`), what a vCPU's exits and
//! hypercalls do (`dispatch.rs`).
//!
//! Lock order (outer first): control plane (`cp`, the accountant) → the
//! domain table → a domain's slot table; the irq binding table is taken
//! either alone or before the domain table, never while the domain table is
//! held. vCPU threads take the control plane only for hypercalls, which are
//! outside their in-flight sections, so the control plane may wait for
//! in-flight port accesses ([`crate::vcpu::VcpuCtl::quiesce`]) while holding it.

use crate::acct::{Accounting, Acct};
use crate::domain::Domain;
use crate::host::HostInfo;
use crate::irq_routing::IrqTable;
use crate::layout;
use crate::platform::{DeviceCounters, Platform};
use crate::{Config, HvError};
use accountant::{DomId, Error, Mode, Revoked, Space, Teardown, UnitInfo, UnitRange};
use kvm_ioctls::Kvm;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every structure behind these locks is updated in single steps that
    // keep it consistent, so a panic elsewhere does not make it unusable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the control calls and every vCPU thread share.
pub(crate) struct Shared {
    // Field order is drop order: domains (VMs, memslots into platform
    // memory) before the platform; the binding table holds domains too.
    pub(crate) domains: RwLock<BTreeMap<u16, Arc<Domain>>>,
    pub(crate) cp: Mutex<Acct>,
    /// Line bindings, their irqfds, and every domain with a VM. Taken
    /// alone or after the control plane; vCPU threads take it to raise.
    pub(crate) irqs: Mutex<IrqTable>,
    /// Domains told to stop because KVM kept a memslot they must no longer
    /// reach; the public entry points wait for them once the control plane
    /// is released (see [`Shared::unslot`]). Taken alone.
    pub(crate) isolate: Mutex<Vec<DomId>>,
    pub(crate) platform: Platform,
    pub(crate) kvm: Kvm,
    pub(crate) host: HostInfo,
    pub(crate) cfg: Config,
    pub(crate) map_gib: u64,
    pub(crate) max_slots: u32,
}

/// The hypervisor. Dropping it stops every vCPU and frees every VM.
pub struct Hypervisor {
    pub(crate) sh: Arc<Shared>,
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
    pub(crate) fn domain(&self, d: DomId) -> Option<Arc<Domain>> {
        self.domains
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&d.get())
            .cloned()
    }

    pub(crate) fn all_domains(&self) -> Vec<Arc<Domain>> {
        self.domains
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    pub(crate) fn quiesce_all(&self) {
        for d in self.all_domains() {
            d.quiesce();
        }
    }

    pub(crate) fn apply_teardown(&self, td: &Teardown) {
        for it in td {
            match it.space {
                Space::IoMem => {
                    if let Some(dom) = self.domain(it.dom) {
                        // A stuck slot is counted and isolated by `unslot`;
                        // the teardown itself stands.
                        let _stuck = self.unslot(&dom, it.first, it.last, it.count);
                    }
                }
                Space::Irq => self.unbind_lines(it.dom, it.first, it.last, it.count),
                Space::IoPort => {}
            }
        }
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
                irqs: Mutex::new(IrqTable::new()),
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

    /// Device A's per-domain counters.
    pub fn device_a_counters(&self) -> BTreeMap<u16, DeviceCounters> {
        self.sh.platform.device_a.counters()
    }
}

impl Drop for Hypervisor {
    fn drop(&mut self) {
        for d in self.sh.all_domains() {
            d.stop();
            d.join();
        }
    }
}
