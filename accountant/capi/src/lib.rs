//! libioacct: the I/O resource accountant as a C library, for hypervisors
//! written in C (Xen, Jailhouse, ACRN, Bao). The header is
//! `include/ioacct.h`, generated from this crate by cbindgen.
//!
//! * **Freestanding.** Built by `cargo xtask capi` (feature `freestanding`,
//!   profile `capi-lib` with `panic = "abort"`), the library calls no libc
//!   function of its own: memory comes from the embedder's hooks
//!   ([`ioacct_init`]), a panic calls its fatal hook ([`hooks`]).
//! * **Xen's shape.** `ioacct_iomem_permit(acct, d, s, e)`, `_deny`,
//!   `_access_permitted`, and the same for I/O ports and IRQs: inclusive
//!   ranges, as `xen/include/xen/iocap.h`.
//! * **What Xen lacks.** Exclusive and shared grants, forced grants,
//!   reservations and the default I/O domain (boot options), map/unmap and
//!   bind/unbind counts, revoke that drains or forces with a teardown
//!   callback, domain create/destroy, query.
//! * **The lock-free port check.** [`checker`]: a checker bound to a domain
//!   for that domain's vCPUs, and a check that takes no lock.
//! * **Errors** are negative errno values, one meaning each ([`errno`]).
//! * [`trace`]: the trace-line parser the C replay (`c/replay.c`) uses, so
//!   that the trace language has one parser.
//!
//! **Threading contract** (repeated in the header): every call on an
//! `ioacct *` needs the embedder's lock around it (one writer at a time, as
//! Xen's `d->iomem_caps` rangeset lock or a domctl lock);
//! [`ioacct_port_check`] takes no lock and may run on any number of vCPU
//! threads at once, concurrently with any locked call; [`ioacct_init`] and
//! [`ioacct_strerror`] need no lock.
//!
//! **Boundary.** Every entry point checks its pointers (NULL → an error; a
//! handle whose magic word is wrong → `IOACCT_ERR_BAD_HANDLE`), checks every
//! number (an inverted range → `bad-range`, a number beyond its space →
//! `out-of-range`), and runs its body inside [`hooks::boundary`]: nothing
//! aborts, and no panic unwinds into C.
#![no_std]
#![deny(missing_docs)]
#![allow(non_camel_case_types)]

extern crate alloc;
#[cfg(not(feature = "freestanding"))]
extern crate std;

// In the order the header lists them: the start (hooks, boot and free),
// domains and grants, uses, Xen's shape, query, the checker, errors, the
// trace parser.
pub mod hooks;

mod handle;

mod grants;

mod uses;

mod iocap;

mod query;

pub mod checker;

pub mod errno;

pub mod trace;

use core::ffi::c_void;

use accountant::{Space, TrackerKind};

pub use checker::{
    ioacct_checker_bind, ioacct_checker_release, ioacct_port_check, ioacct_port_check16,
    ioacct_port_check32, ioacct_port_check8,
};
pub use errno::{ioacct_errno, ioacct_strerror};
pub use grants::{ioacct_domain_create, ioacct_domain_destroy, ioacct_grant, ioacct_revoke};
pub use handle::{ioacct, ioacct_boot, ioacct_check, ioacct_free, ioacct_last_error};
pub use hooks::{ioacct_hooks, ioacct_init};
pub use iocap::{
    ioacct_iomem_access_permitted, ioacct_iomem_deny, ioacct_iomem_permit,
    ioacct_ioports_access_permitted, ioacct_ioports_deny, ioacct_ioports_permit,
    ioacct_irqs_access_permitted, ioacct_irqs_deny, ioacct_irqs_permit,
};
pub use query::{ioacct_describe, ioacct_query};
pub use uses::{
    ioacct_access, ioacct_bind, ioacct_hvmap, ioacct_hvunmap, ioacct_map, ioacct_reserve,
    ioacct_unbind, ioacct_unmap, ioacct_unreserve,
};

/// Space of I/O ports, `0..=0xffff`.
pub const IOACCT_IOPORT: u32 = 0;
/// Space of 4 KiB I/O memory frames (MFNs), `0..=0xff_ffff_ffff`.
pub const IOACCT_IOMEM: u32 = 1;
/// Space of interrupt lines (GSIs), `0..=1023`.
pub const IOACCT_IRQ: u32 = 2;

/// Grant flag: shared with other shared holders (default: exclusive).
pub const IOACCT_GRANT_SHARED: u32 = 1;
/// Grant or revoke flag: tear down the uses in the way (grant: the default
/// I/O domain's default-right uses; revoke: the domain's own) through the
/// teardown callback, instead of failing (`in-use`) or draining (`pending`).
pub const IOACCT_FORCE: u32 = 2;

/// MMIO tracker: one slab record per run of frames (the default).
pub const IOACCT_TRACKER_SLAB_EXTENT: u32 = 0;
/// MMIO tracker: one slab record per page.
pub const IOACCT_TRACKER_SLAB_PAGE: u32 = 1;
/// MMIO tracker: one xmalloc-style record per page (the original design).
pub const IOACCT_TRACKER_XMALLOC_PAGE: u32 = 2;

/// `ioacct_config.page_limit` for no limit.
pub const IOACCT_NO_PAGE_LIMIT: u64 = u64::MAX;

/// Boot settings beyond the command line; NULL for the defaults.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ioacct_config {
    /// `IOACCT_TRACKER_*`.
    pub tracker: u32,
    /// At most this many live 4 KiB pages of MMIO tracking memory (fault
    /// injection and a hard cap: operations that create state then fail with
    /// `IOACCT_ERR_NO_MEMORY`); `IOACCT_NO_PAGE_LIMIT` for none.
    pub page_limit: u64,
}

/// One use a teardown ended: `count` mappings (`IOACCT_IOMEM`) or bindings
/// (`IOACCT_IRQ`) by `dom` of every unit in `first..=last`. The embedder
/// must remove them (unmap from the guest's page tables and flush; stop
/// delivering the interrupt) before the callback returns.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ioacct_teardown_item {
    /// The domain whose use ended.
    pub dom: u16,
    /// `IOACCT_IOMEM` or `IOACCT_IRQ`.
    pub space: u32,
    /// First unit.
    pub first: u64,
    /// Last unit (inclusive).
    pub last: u64,
    /// Uses of each unit that ended.
    pub count: u32,
}

/// Called once per torn-down use, in order, before the call that tore it
/// down returns; `ctx` is the caller's. It must not call back into the
/// library with the same handle.
pub type ioacct_teardown_fn =
    Option<unsafe extern "C" fn(ctx: *mut c_void, item: *const ioacct_teardown_item)>;

/// What `ioacct_query` reports about one unit.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ioacct_unit_info {
    /// Reserved by the hypervisor.
    pub reserved: bool,
    /// The hypervisor's use count (hvmap minus hvunmap).
    pub hv_uses: u32,
    /// Grant holders.
    pub holders: u32,
    /// The exclusive holder, or -1.
    pub exclusive_holder: i32,
    /// Domains draining it.
    pub draining: u32,
    /// Domains using it (mapping or binding), and their uses in all.
    pub users: u32,
    /// Sum of the users' use counts.
    pub uses: u64,
    /// The default I/O domain may use it by default right.
    pub default_accessible: bool,
}

pub(crate) fn space_of(s: u32) -> Option<Space> {
    match s {
        IOACCT_IOPORT => Some(Space::IoPort),
        IOACCT_IOMEM => Some(Space::IoMem),
        IOACCT_IRQ => Some(Space::Irq),
        _ => None,
    }
}

pub(crate) fn space_value(s: Space) -> u32 {
    match s {
        Space::IoPort => IOACCT_IOPORT,
        Space::IoMem => IOACCT_IOMEM,
        Space::Irq => IOACCT_IRQ,
    }
}

pub(crate) fn tracker_of(t: u32) -> Option<TrackerKind> {
    match t {
        IOACCT_TRACKER_SLAB_EXTENT => Some(TrackerKind::SlabExtent),
        IOACCT_TRACKER_SLAB_PAGE => Some(TrackerKind::SlabPage),
        IOACCT_TRACKER_XMALLOC_PAGE => Some(TrackerKind::XmallocPage),
        _ => None,
    }
}
