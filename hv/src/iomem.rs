//! I/O memory: maps and unmaps through the accountant and the domain's
//! slot table (KVM memslots, `kvm_slots.rs`), a stuck memslot's isolation,
//! MMIO exits to frames without a memslot, and the bare-KVM memslot floors
//! the bench pairs with.

use crate::acct::Accounting;
use crate::control::Shared;
use crate::domain::{Domain, Stat};
use crate::exit::MmioOutcome;
use crate::locks::{Root, Token};
use crate::mem::PAGE_SIZE;
use crate::memslot::{Backings, SlotError, SlotTable};
use crate::vm::{GuestVm, VmError};
use crate::{HvError, Hypervisor};
use accountant::{DomId, Error, Space, UnitRange};
use std::time::Instant;

impl Shared {
    /// A guest access to `gpa` that exited (no memslot there): served from
    /// the backing if `dom` maps the frame, else denied. Takes the control
    /// plane (the slot tables are there), which the access holds until it
    /// is done, so a revoke that returned has ended it.
    pub(crate) fn mmio(
        &self,
        root: &mut Token<Root>,
        dom: &Domain,
        gpa: u64,
        len: u8,
        write: Option<[u8; 8]>,
    ) -> MmioOutcome {
        let frame = gpa / PAGE_SIZE;
        let off = gpa % PAGE_SIZE;
        let n = len as u64;
        let cp = self.acct(root);
        let target = ((1..=8).contains(&n) && off + n <= PAGE_SIZE)
            .then(|| cp.slots(dom.id())?.resolve(frame, self.platform()))
            .flatten()
            .and_then(|_| self.platform().backing_mem(frame));
        let Some((mem, base)) = target else {
            dom.count(Stat::DeniedMmio, 1);
            return MmioOutcome::Denied;
        };
        dom.count(Stat::SlowMmio, 1);
        let mut b = [0u8; 8];
        let ok = match write {
            Some(data) => mem.write(base + off, &data[..len as usize]),
            None => mem.read(base + off, &mut b[..len as usize]),
        };
        drop(cp);
        match ok {
            Some(()) => MmioOutcome::Served(b),
            None => MmioOutcome::Denied,
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
    /// `slots` is `dom`'s, from the control plane held.
    pub(crate) fn unslot(
        &self,
        slots: &mut SlotTable,
        dom: &Domain,
        first: u64,
        last: u64,
        count: u32,
    ) -> u64 {
        let mut ops = dom.kvm_slots();
        let stuck = match slots.unmap(first, last, count, &mut ops) {
            Ok(stuck) => stuck,
            Err(_) => slots.force_unmap(first, last, &mut ops),
        };
        let frames: u64 = stuck.iter().map(|(a, b)| b - a + 1).sum();
        if frames > 0 {
            dom.count(Stat::StuckFrames, frames);
            dom.request_stop();
            dom.wake();
            self.queue_isolation(dom.id());
        }
        frames
    }

    /// Stops (and waits for) every domain `unslot` queued. Takes the root
    /// token, so it cannot be called with the control plane held; nor may
    /// it be called from a vCPU thread: a vCPU may be waiting for the
    /// control plane in a hypercall.
    pub(crate) fn isolate_pending(&self, root: &mut Token<Root>) {
        let pending = self.take_isolated();
        for d in pending {
            if let Some(dom) = self.domain(d) {
                dom.stop(root);
                dom.join();
            }
        }
    }

    /// Maps `r` into `d`. Every domain but 0 has its VM from creation on;
    /// domain 0 may map before it has one (the hypervisor's workloads make
    /// the accountant track frames that way): the accountant then records
    /// the use and there is no slot table to update (the frames stay
    /// unreachable until its VM maps them itself).
    pub(crate) fn map(
        &self,
        root: &mut Token<Root>,
        d: DomId,
        r: UnitRange,
    ) -> Result<(), HvError> {
        let mut cp = self.acct_for(root, r, Space::IoMem)?;
        let (acct, dom) = cp.with_slots(d);
        if dom.is_none() && d != DomId::DOM0 {
            // An unknown domain gets the accountant's answer. A known one
            // without a VM cannot occur (create and destroy change both
            // under the control plane); should it, it gets no use that no
            // slot table follows.
            acct.known(d)?;
            return Err(HvError::NoVm(d));
        }
        acct.map(d, r)?;
        if let Some((dom, slots)) = dom {
            let mapped = slots.map(r.first(), r.last(), self.platform(), &mut dom.kvm_slots());
            if let Err(e) = mapped {
                // Unreachable for a valid `UnitRange`; if it ever happens the
                // accountant must not keep a use the slot table lacks.
                acct.unmap(d, r)?;
                return Err(HvError::Slots(e));
            }
        }
        Ok(())
    }

    pub(crate) fn unmap(
        &self,
        root: &mut Token<Root>,
        d: DomId,
        r: UnitRange,
    ) -> Result<(), HvError> {
        let mut cp = self.acct_for(root, r, Space::IoMem)?;
        let (acct, dom) = cp.with_slots(d);
        if acct.accounting() == Accounting::Off {
            // Xen keeps no use counts: the hypervisor's own map decides.
            if let Some((_, slots)) = &dom {
                slots
                    .covered(r.first(), r.last(), 1)
                    .map_err(|unit| Error::NotMapped { unit })?;
            }
        }
        acct.unmap(d, r)?;
        if let Some((dom, slots)) = dom {
            let frames = self.unslot(slots, dom, r.first(), r.last(), 1);
            if frames > 0 {
                return Err(HvError::SlotStuck { dom: d, frames });
            }
        }
        Ok(())
    }
}

impl Hypervisor {
    /// Maps frames `r` into `d` (accountant `map`, then memslots).
    pub fn map(&self, d: DomId, r: UnitRange) -> Result<(), HvError> {
        self.sh().map(&mut Token::root(), d, r)
    }

    /// Unmaps frames `r` from `d`; their slots are gone when this returns,
    /// or, if KVM refused to delete one, `d`'s vCPU has stopped
    /// ([`HvError::SlotStuck`]).
    pub fn unmap(&self, d: DomId, r: UnitRange) -> Result<(), HvError> {
        let mut root = Token::root();
        let res = self.sh().unmap(&mut root, d, r);
        self.sh().isolate_pending(&mut root);
        res
    }

    /// The memslots `d` uses for I/O memory, as frame ranges.
    pub fn io_slots(&self, d: DomId) -> Vec<(u64, u64)> {
        self.sh()
            .acct(&mut Token::root())
            .slots(d)
            .map(|t| t.slot_ranges())
            .unwrap_or_default()
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
        let dom = self.sh().domain(d).ok_or(HvError::NoVm(d))?;
        let bk = self
            .sh()
            .platform()
            .backing(r.first())
            .filter(|b| b.region_last >= r.last())
            .ok_or(HvError::Slots(SlotError::BadRange))?;
        let id = probe_slot(dom.gvm(), self.sh().max_slots());
        let mut ops = dom.kvm_slots();
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
        let dom = self.sh().domain(d).ok_or(HvError::NoVm(d))?;
        let id = probe_slot(dom.gvm(), self.sh().max_slots());
        let mut ops = dom.kvm_slots();
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

/// The memslot id kept for [`Hypervisor::floor_memslot_add`]: the highest
/// one; the domain's slot table gets the ids below it.
pub(crate) fn probe_slot(gvm: &GuestVm, max_slots: u32) -> u32 {
    gvm.max_slots.min(max_slots).saturating_sub(1).max(1)
}
