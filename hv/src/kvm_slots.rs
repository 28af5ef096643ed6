//! The KVM memslot back end of the slot table: memslot adds and deletes on
//! one VM, each traced (`MemslotAdd`, `MemslotDelete`).

use crate::mem::PAGE_SIZE;
use crate::memslot::SlotOps;
use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::VmFd;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Memslot changes on one VM (of domain `.1`, for tracepoints); the slot
/// table's count goes to `.2`, the domain's lock-free copy.
pub(crate) struct KvmSlots<'a>(&'a VmFd, u16, &'a AtomicUsize);

impl<'a> KvmSlots<'a> {
    /// Memslot changes on `vm`, the VM of domain `dom`, whose slot count
    /// readers find in `count`.
    pub(crate) fn new(vm: &'a VmFd, dom: u16, count: &'a AtomicUsize) -> KvmSlots<'a> {
        KvmSlots(vm, dom, count)
    }
}

fn slot_record(
    kind: tracepoints::Kind,
    dom: u16,
    id: u32,
    first: u64,
    last: u64,
    r: &Result<(), i32>,
) -> tracepoints::Record {
    tracepoints::Record::new(kind)
        .domain(dom)
        .range(tracepoints::Space::GuestMem, first, last)
        .extra(id as u64)
        .value(r.err().map_or(0, |e| e as u64))
}

impl SlotOps for KvmSlots<'_> {
    fn add(&mut self, id: u32, first: u64, last: u64, host: u64) -> Result<(), i32> {
        let t0 = tracepoints::start();
        let r = self.add_raw(id, first, last, host);
        tracepoints::tp!(
            slot_record(tracepoints::Kind::MemslotAdd, self.1, id, first, last, &r).since(t0)
        );
        r
    }

    fn del(&mut self, id: u32, first: u64, last: u64) -> Result<(), i32> {
        let t0 = tracepoints::start();
        let r = self.del_raw(id, first);
        tracepoints::tp!(slot_record(
            tracepoints::Kind::MemslotDelete,
            self.1,
            id,
            first,
            last,
            &r
        )
        .since(t0));
        r
    }

    fn slots_now(&mut self, n: usize) {
        self.2.store(n, Ordering::Relaxed);
    }
}

impl KvmSlots<'_> {
    pub(crate) fn add_raw(&mut self, id: u32, first: u64, last: u64, host: u64) -> Result<(), i32> {
        let region = kvm_userspace_memory_region {
            slot: id,
            flags: 0,
            guest_phys_addr: first * PAGE_SIZE,
            memory_size: (last - first + 1) * PAGE_SIZE,
            userspace_addr: host,
        };
        // SAFETY: `host` comes from `Platform`'s `Backings` impl: it is
        // inside a platform `HostMem` region with at least `last - first + 1`
        // pages from it (the slot table never crosses `region_last`). The
        // platform outlives every VM (`Shared` drops its domain table, and
        // with it every VmFd, before the platform).
        unsafe { self.0.set_user_memory_region(region) }.map_err(|e| e.errno())
    }

    pub(crate) fn del_raw(&mut self, id: u32, first: u64) -> Result<(), i32> {
        let region = kvm_userspace_memory_region {
            slot: id,
            flags: 0,
            guest_phys_addr: first * PAGE_SIZE,
            memory_size: 0,
            userspace_addr: 0,
        };
        // SAFETY: a zero-size region deletes the slot; no host memory is
        // handed to KVM.
        unsafe { self.0.set_user_memory_region(region) }.map_err(|e| e.errno())
    }
}
