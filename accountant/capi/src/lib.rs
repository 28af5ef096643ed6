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

pub mod checker;
pub mod errno;
pub mod hooks;
pub mod trace;

use alloc::boxed::Box;
use core::ffi::{c_char, c_int, c_void};

use accountant::{
    Accountant, BootOptions, DomId, Error, Mode, Space, Teardown, TrackerKind, UnitRange, Violation,
};

pub use checker::{ioacct_checker_bind, ioacct_checker_release, ioacct_port_check};
pub use errno::{ioacct_errno, ioacct_strerror};
pub use hooks::{ioacct_hooks, ioacct_init};

use errno::ioacct_errno::*;

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

const MAGIC: u64 = 0x696f_6163_6374_2e61; // "ioacct.a"
const DEAD: u64 = 0x6465_6164_2e2e_2e61;

/// An accountant. Opaque: made by [`ioacct_boot`], freed by [`ioacct_free`].
pub struct ioacct {
    magic: u64,
    poisoned: bool,
    acct: Accountant,
    last: Option<Last>,
}

/// What [`ioacct_last_error`] describes.
enum Last {
    Acct(Error),
    Violation(Violation),
}

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

fn space_of(s: u32) -> Option<Space> {
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

fn tracker_of(t: u32) -> Option<TrackerKind> {
    match t {
        IOACCT_TRACKER_SLAB_EXTENT => Some(TrackerKind::SlabExtent),
        IOACCT_TRACKER_SLAB_PAGE => Some(TrackerKind::SlabPage),
        IOACCT_TRACKER_XMALLOC_PAGE => Some(TrackerKind::XmallocPage),
        _ => None,
    }
}

/// Why a call failed before or inside the accountant.
enum Fail {
    Acct(Error),
    Code(ioacct_errno),
    Violation(Violation),
}

impl From<Error> for Fail {
    fn from(e: Error) -> Fail {
        Fail::Acct(e)
    }
}

/// The boundary of every call on a handle: checks it, runs `f` inside the
/// panic boundary, records the error for `ioacct_last_error`, and returns
/// `f`'s value or the error's.
///
/// # Safety
///
/// `acct` is NULL or a pointer `ioacct_boot` returned and `ioacct_free` has
/// not freed, not used by another thread during the call.
unsafe fn with(acct: *mut ioacct, f: impl FnOnce(&mut ioacct) -> Result<c_int, Fail>) -> c_int {
    // SAFETY: per this function's contract.
    let Some(h) = (unsafe { acct.as_mut() }) else {
        return IOACCT_ERR_BAD_HANDLE as c_int;
    };
    if h.magic != MAGIC {
        return IOACCT_ERR_BAD_HANDLE as c_int;
    }
    if h.poisoned {
        return IOACCT_ERR_PANIC as c_int;
    }
    let hp: *mut ioacct = h;
    // SAFETY: `hp` is `h`, unique for the call; the boundary only needs the
    // pointer back when `f` panicked, when `f`'s borrow is gone.
    match hooks::boundary(|| f(unsafe { &mut *hp })) {
        Ok(Ok(v)) => v,
        Ok(Err(fail)) => {
            let (code, last) = match fail {
                Fail::Acct(e) => (errno::of(&e), Some(Last::Acct(e))),
                Fail::Code(c) => (c as c_int, None),
                Fail::Violation(v) => (IOACCT_ERR_INVARIANT as c_int, Some(Last::Violation(v))),
            };
            h.last = last;
            code
        }
        Err(()) => {
            h.poisoned = true;
            IOACCT_ERR_PANIC as c_int
        }
    }
}

fn dom(d: u64) -> Result<DomId, Fail> {
    Ok(DomId::new(d)?)
}

fn range(space: u32, first: u64, last: u64) -> Result<UnitRange, Fail> {
    let s = space_of(space).ok_or(Fail::Code(IOACCT_ERR_BAD_ARGUMENT))?;
    Ok(UnitRange::new(s, first, last)?)
}

/// Hands every item of `t` to `cb` in order.
///
/// # Safety
///
/// `cb` is NULL or callable with `ctx` as `ioacct_teardown_fn` says.
unsafe fn teardown(t: &Teardown, cb: ioacct_teardown_fn, ctx: *mut c_void) {
    let Some(cb) = cb else { return };
    for it in t {
        let item = ioacct_teardown_item {
            dom: it.dom.get(),
            space: space_value(it.space),
            first: it.first,
            last: it.last,
            count: it.count,
        };
        // SAFETY: the caller's callback, with its own context, and an item
        // that lives for the call.
        unsafe { cb(ctx, &item) };
    }
}

/// Boots an accountant from a Xen-style command line of `len` bytes (SPEC's
/// boot options: `io_default=`, `ram=`, `reserve_*=`, `dom0_*=`,
/// `dom0_ioports_disable=`, `quota_*=`; not NUL-terminated; `len` 0 for
/// none) and stores it in `*out`. `config` may be NULL (slab-extent
/// tracker, no page limit). Domain 0 exists from boot.
///
/// Returns `IOACCT_OK`; `IOACCT_ERR_NO_HOOKS` before `ioacct_init`;
/// `IOACCT_ERR_NULL` for a NULL `out` (or NULL `options` with `len` > 0);
/// `IOACCT_ERR_MALFORMED` for a bad line (not UTF-8, an unknown option or
/// value, a boot grant on a reserved unit); `IOACCT_ERR_BAD_ARGUMENT` for a
/// bad tracker. `*out` is written only on success.
///
/// Threading: no lock (the new handle is the caller's alone).
///
/// # Safety
///
/// `options` is NULL or valid for `len` bytes; `config` is NULL or readable;
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ioacct_boot(
    options: *const c_char,
    len: usize,
    config: *const ioacct_config,
    out: *mut *mut ioacct,
) -> c_int {
    if hooks::hooks().is_none() {
        return IOACCT_ERR_NO_HOOKS as c_int;
    }
    if out.is_null() || (options.is_null() && len > 0) {
        return IOACCT_ERR_NULL as c_int;
    }
    let text: &[u8] = if len == 0 {
        &[]
    } else {
        // SAFETY: the caller passes `len` readable bytes at `options`.
        unsafe { core::slice::from_raw_parts(options.cast::<u8>(), len) }
    };
    // SAFETY: the caller passes NULL or a readable config.
    let cfg = unsafe { config.as_ref() }
        .copied()
        .unwrap_or(ioacct_config {
            tracker: IOACCT_TRACKER_SLAB_EXTENT,
            page_limit: IOACCT_NO_PAGE_LIMIT,
        });
    let made = hooks::boundary(|| -> Result<Box<ioacct>, ioacct_errno> {
        let tracker = tracker_of(cfg.tracker).ok_or(IOACCT_ERR_BAD_ARGUMENT)?;
        let line = core::str::from_utf8(text).map_err(|_| IOACCT_ERR_MALFORMED)?;
        let opts = BootOptions::parse(line).map_err(|_| IOACCT_ERR_MALFORMED)?;
        let limit = (cfg.page_limit != IOACCT_NO_PAGE_LIMIT).then_some(cfg.page_limit);
        let acct = Accountant::boot_with_page_limit(&opts, tracker, limit)
            .map_err(|_| IOACCT_ERR_MALFORMED)?;
        Ok(Box::new(ioacct {
            magic: MAGIC,
            poisoned: false,
            acct,
            last: None,
        }))
    });
    match made {
        Ok(Ok(b)) => {
            // SAFETY: `out` is non-NULL and writable (checked above, and the
            // caller's contract).
            unsafe { *out = Box::into_raw(b) };
            IOACCT_OK as c_int
        }
        Ok(Err(e)) => e as c_int,
        Err(()) => IOACCT_ERR_PANIC as c_int,
    }
}

/// Frees an accountant (NULL: nothing). Checkers bound to it stay valid
/// until released: they keep the port table alive. Returns `IOACCT_OK`, or
/// `IOACCT_ERR_BAD_HANDLE` for a pointer that is not a live accountant (its
/// magic word is wrong), which is then left alone.
///
/// Threading: the embedder's lock, and no other call on `acct` after it.
///
/// # Safety
///
/// `acct` is NULL or a pointer `ioacct_boot` returned, not freed before.
#[no_mangle]
pub unsafe extern "C" fn ioacct_free(acct: *mut ioacct) -> c_int {
    // SAFETY: per the contract.
    let Some(h) = (unsafe { acct.as_mut() }) else {
        return IOACCT_OK as c_int;
    };
    if h.magic != MAGIC {
        return IOACCT_ERR_BAD_HANDLE as c_int;
    }
    h.magic = DEAD;
    // SAFETY: `acct` came from `Box::into_raw` in `ioacct_boot` and is freed
    // once (its magic word is now DEAD).
    let b = unsafe { Box::from_raw(acct) };
    match hooks::boundary(move || drop(b)) {
        Ok(()) => IOACCT_OK as c_int,
        Err(()) => IOACCT_ERR_PANIC as c_int,
    }
}

/// Writes the last failed call's details (`"conflict at 0xfeb00 held by
/// d1"`, starting with the SPEC code word; `"invariant …"` after
/// `ioacct_check`) into `buf` as `snprintf` does, and returns their full
/// length; 0 when there is none or `acct` is not a live handle.
///
/// Threading: the embedder's lock.
///
/// # Safety
///
/// `acct` as for every call; `buf` is NULL or valid for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn ioacct_last_error(
    acct: *const ioacct,
    buf: *mut c_char,
    len: usize,
) -> usize {
    // SAFETY: per the contract.
    let Some(h) = (unsafe { acct.as_ref() }) else {
        return 0;
    };
    if h.magic != MAGIC {
        return 0;
    }
    let args = |f: &mut dyn FnMut(core::fmt::Arguments<'_>) -> usize| match &h.last {
        None => f(format_args!("")),
        Some(Last::Acct(e)) => f(format_args!("{e}")),
        Some(Last::Violation(v)) => f(format_args!("invariant {v}")),
    };
    // SAFETY: the caller passes NULL or `len` writable bytes at `buf`.
    args(&mut |a| unsafe { errno::write_buf(buf, len, a) })
}

/// Creates domain `dom` (`1..=32751`). Errors: `OUT_OF_RANGE`, `DOMAIN_EXISTS`.
///
/// Threading: the embedder's lock.
///
/// # Safety
///
/// `acct` is NULL or a live handle from `ioacct_boot`.
#[no_mangle]
pub unsafe extern "C" fn ioacct_domain_create(acct: *mut ioacct, dom: u64) -> c_int {
    // SAFETY: forwarded contract.
    unsafe {
        with(acct, |h| {
            h.acct.create(self::dom(dom)?)?;
            Ok(0)
        })
    }
}

/// Destroys domain `dom`: every mapping and binding it has is torn down
/// through `teardown` (called before this returns), its grants dropped, its
/// draining ended. Errors: `OUT_OF_RANGE`, `NO_SUCH_DOMAIN`, `NOT_PERMITTED`
/// (domain 0).
///
/// The embedder must have released (`ioacct_checker_release`) every checker
/// bound to `dom` first, after stopping the domain's vCPUs.
///
/// Threading: the embedder's lock.
///
/// # Safety
///
/// `acct` is NULL or a live handle; `teardown` is NULL or callable with `ctx`.
#[no_mangle]
pub unsafe extern "C" fn ioacct_domain_destroy(
    acct: *mut ioacct,
    dom: u64,
    teardown: ioacct_teardown_fn,
    ctx: *mut c_void,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe {
        with(acct, |h| {
            let t = h.acct.destroy(self::dom(dom)?)?;
            self::teardown(&t, teardown, ctx);
            Ok(0)
        })
    }
}

/// Grants `dom` the units `first..=last` of `space`: exclusive, or shared
/// with `IOACCT_GRANT_SHARED`; with `IOACCT_FORCE`, the default I/O domain's
/// default-right uses in the way are torn down through `teardown` instead of
/// failing `IN_USE`. Units `dom` holds already in that mode are left as they
/// are. Errors in SPEC order: `BAD_RANGE`/`OUT_OF_RANGE`, `NO_SUCH_DOMAIN`,
/// `NOT_IO_MEMORY`, `RESERVED`, `CONFLICT`, `DRAINING`, `IN_USE`; a failed
/// grant changed nothing.
///
/// Threading: the embedder's lock.
///
/// # Safety
///
/// `acct` is NULL or a live handle; `teardown` is NULL or callable with `ctx`.
#[no_mangle]
pub unsafe extern "C" fn ioacct_grant(
    acct: *mut ioacct,
    dom: u64,
    space: u32,
    first: u64,
    last: u64,
    flags: u32,
    teardown: ioacct_teardown_fn,
    ctx: *mut c_void,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe {
        with(acct, |h| {
            if flags & !(IOACCT_GRANT_SHARED | IOACCT_FORCE) != 0 {
                return Err(Fail::Code(IOACCT_ERR_BAD_ARGUMENT));
            }
            let d = self::dom(dom)?;
            let r = range(space, first, last)?;
            let mode = if flags & IOACCT_GRANT_SHARED != 0 {
                Mode::Shared
            } else {
                Mode::Exclusive
            };
            let t = h.acct.grant(d, r, mode, flags & IOACCT_FORCE != 0)?;
            self::teardown(&t, teardown, ctx);
            Ok(0)
        })
    }
}

/// Takes `dom`'s grant of `first..=last` back. Units it does not use are
/// released at once. Units it still uses: without `IOACCT_FORCE` they drain
/// and the call returns `IOACCT_PENDING` (1); with it, the uses are torn
/// down through `teardown` before the call returns, and it returns
/// `IOACCT_OK`. Errors: `BAD_RANGE`/`OUT_OF_RANGE`, `NO_SUCH_DOMAIN`,
/// `NOT_IO_MEMORY`, `NOT_GRANTED` (some unit not held by `dom`).
///
/// Threading: the embedder's lock.
///
/// # Safety
///
/// `acct` is NULL or a live handle; `teardown` is NULL or callable with `ctx`.
#[no_mangle]
pub unsafe extern "C" fn ioacct_revoke(
    acct: *mut ioacct,
    dom: u64,
    space: u32,
    first: u64,
    last: u64,
    flags: u32,
    teardown: ioacct_teardown_fn,
    ctx: *mut c_void,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe {
        with(acct, |h| {
            if flags & !IOACCT_FORCE != 0 {
                return Err(Fail::Code(IOACCT_ERR_BAD_ARGUMENT));
            }
            let d = self::dom(dom)?;
            let r = range(space, first, last)?;
            let rv = h.acct.revoke(d, r, flags & IOACCT_FORCE != 0)?;
            self::teardown(&rv.teardown, teardown, ctx);
            Ok(if rv.pending {
                IOACCT_PENDING as c_int
            } else {
                IOACCT_OK as c_int
            })
        })
    }
}

/// A call on a range of the hypervisor's own (reserve, unreserve, hvmap,
/// hvunmap).
///
/// # Safety
///
/// `acct` is NULL or a live handle.
unsafe fn hv_op(
    acct: *mut ioacct,
    space: u32,
    first: u64,
    last: u64,
    op: fn(&mut Accountant, UnitRange) -> Result<(), Error>,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe {
        with(acct, |h| {
            op(&mut h.acct, range(space, first, last)?)?;
            Ok(0)
        })
    }
}

/// Reserves `first..=last` for the hypervisor (units reserved already are
/// left as they are). Errors: `NOT_IO_MEMORY`, `CONFLICT` (a domain holds
/// one), `DRAINING`, `IN_USE` (used by default right).
///
/// Threading: the embedder's lock.
///
/// # Safety
///
/// `acct` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn ioacct_reserve(
    acct: *mut ioacct,
    space: u32,
    first: u64,
    last: u64,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { hv_op(acct, space, first, last, Accountant::reserve) }
}

/// Lifts a reservation. Errors: `NOT_RESERVED`, `IN_USE` (hypervisor use
/// count above 0).
///
/// Threading: the embedder's lock.
///
/// # Safety
///
/// `acct` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn ioacct_unreserve(
    acct: *mut ioacct,
    space: u32,
    first: u64,
    last: u64,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { hv_op(acct, space, first, last, Accountant::unreserve) }
}

/// Counts one hypervisor use of each reserved unit. Errors: `NOT_RESERVED`.
///
/// Threading: the embedder's lock.
///
/// # Safety
///
/// `acct` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn ioacct_hvmap(
    acct: *mut ioacct,
    space: u32,
    first: u64,
    last: u64,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { hv_op(acct, space, first, last, Accountant::hvmap) }
}

/// Ends one hypervisor use of each unit. Errors: `NOT_RESERVED`, `NOT_MAPPED`.
///
/// Threading: the embedder's lock.
///
/// # Safety
///
/// `acct` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn ioacct_hvunmap(
    acct: *mut ioacct,
    space: u32,
    first: u64,
    last: u64,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { hv_op(acct, space, first, last, Accountant::hvunmap) }
}

/// A domain's use of a range (map, unmap, bind, unbind).
///
/// # Safety
///
/// `acct` is NULL or a live handle.
unsafe fn use_op(
    acct: *mut ioacct,
    dom: u64,
    space: u32,
    first: u64,
    last: u64,
    op: fn(&mut Accountant, DomId, UnitRange) -> Result<(), Error>,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe {
        with(acct, |h| {
            let d = self::dom(dom)?;
            op(&mut h.acct, d, range(space, first, last)?)?;
            Ok(0)
        })
    }
}

/// Counts one mapping by `dom` of every frame in `first_mfn..=last_mfn`;
/// call it before the embedder maps the frames into the guest. Errors:
/// `NO_SUCH_DOMAIN`, `NOT_IO_MEMORY`, `RESERVED`, `DRAINING`, `NOT_GRANTED`,
/// `QUOTA`, `NO_MEMORY`; a failed map changed nothing.
///
/// Threading: the embedder's lock.
///
/// # Safety
///
/// `acct` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn ioacct_map(
    acct: *mut ioacct,
    dom: u64,
    first_mfn: u64,
    last_mfn: u64,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe {
        use_op(
            acct,
            dom,
            IOACCT_IOMEM,
            first_mfn,
            last_mfn,
            Accountant::map,
        )
    }
}

/// Ends one mapping by `dom` of every frame; call it after the embedder
/// unmapped them. Errors: `NO_SUCH_DOMAIN`, `NOT_IO_MEMORY`, `NOT_MAPPED`.
/// Never fails for lack of memory.
///
/// Threading: the embedder's lock.
///
/// # Safety
///
/// `acct` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn ioacct_unmap(
    acct: *mut ioacct,
    dom: u64,
    first_mfn: u64,
    last_mfn: u64,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe {
        use_op(
            acct,
            dom,
            IOACCT_IOMEM,
            first_mfn,
            last_mfn,
            Accountant::unmap,
        )
    }
}

/// Counts one binding by `dom` of every line in `first..=last`. Errors:
/// `NO_SUCH_DOMAIN`, `RESERVED`, `DRAINING`, `NOT_GRANTED`, `QUOTA`,
/// `NO_MEMORY`.
///
/// Threading: the embedder's lock.
///
/// # Safety
///
/// `acct` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn ioacct_bind(acct: *mut ioacct, dom: u64, first: u64, last: u64) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { use_op(acct, dom, IOACCT_IRQ, first, last, Accountant::bind) }
}

/// Ends one binding by `dom` of every line. Errors: `NO_SUCH_DOMAIN`,
/// `NOT_BOUND`. Never fails for lack of memory.
///
/// Threading: the embedder's lock.
///
/// # Safety
///
/// `acct` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn ioacct_unbind(
    acct: *mut ioacct,
    dom: u64,
    first: u64,
    last: u64,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { use_op(acct, dom, IOACCT_IRQ, first, last, Accountant::unbind) }
}

/// One guest port access, checked under the lock with every argument
/// validated: 1 allowed, 0 denied (also for a range past 0xffff), or
/// `OUT_OF_RANGE` (port or domain), `BAD_RANGE` (a width other than 1, 2,
/// 4), `NO_SUCH_DOMAIN`. vCPU threads use `ioacct_port_check` instead.
///
/// Threading: the embedder's lock.
///
/// # Safety
///
/// `acct` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn ioacct_access(
    acct: *mut ioacct,
    dom: u64,
    port: u64,
    width: u64,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe {
        with(acct, |h| {
            let d = self::dom(dom)?;
            Ok(c_int::from(h.acct.access(d, port, width)?))
        })
    }
}

/// Xen's `*_permit_access`: an exclusive grant (`ioacct_grant` with no
/// flags, no teardown). Where Xen permits one range to two domains, use
/// `ioacct_grant` with `IOACCT_GRANT_SHARED` for both.
///
/// # Safety
///
/// `acct` is NULL or a live handle.
unsafe fn permit(acct: *mut ioacct, space: u32, dom: u64, first: u64, last: u64) -> c_int {
    // SAFETY: forwarded contract.
    unsafe {
        ioacct_grant(
            acct,
            dom,
            space,
            first,
            last,
            0,
            None,
            core::ptr::null_mut(),
        )
    }
}

/// Xen's `*_deny_access`: a revoke that drains (`IOACCT_PENDING` while the
/// domain still uses a unit). Unlike Xen, denying what was not granted is
/// `NOT_GRANTED`, and a mapping keeps the unit draining until it is
/// unmapped (Xen leaves it mapped and forgets it).
///
/// # Safety
///
/// `acct` is NULL or a live handle.
unsafe fn deny(acct: *mut ioacct, space: u32, dom: u64, first: u64, last: u64) -> c_int {
    // SAFETY: forwarded contract.
    unsafe {
        ioacct_revoke(
            acct,
            dom,
            space,
            first,
            last,
            0,
            None,
            core::ptr::null_mut(),
        )
    }
}

/// Xen's `*_access_permitted`: 1 when `dom` may use every unit (it holds it
/// and does not drain it, or it is the default I/O domain's by default
/// right), else 0; or an error (`BAD_RANGE`, `OUT_OF_RANGE`,
/// `NO_SUCH_DOMAIN`).
///
/// # Safety
///
/// `acct` is NULL or a live handle.
unsafe fn permitted(acct: *mut ioacct, space: u32, dom: u64, first: u64, last: u64) -> c_int {
    // SAFETY: forwarded contract.
    unsafe {
        with(acct, |h| {
            let d = self::dom(dom)?;
            Ok(c_int::from(
                h.acct.permitted(d, range(space, first, last)?)?,
            ))
        })
    }
}

/// Xen's `iomem_permit_access(d, s, e)`: an exclusive grant of frames `s..=e`.
///
/// Threading: the embedder's lock.
///
/// # Safety
///
/// `acct` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn ioacct_iomem_permit(acct: *mut ioacct, dom: u64, s: u64, e: u64) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { permit(acct, IOACCT_IOMEM, dom, s, e) }
}

/// Xen's `iomem_deny_access(d, s, e)`: revoke, draining what is mapped.
///
/// Threading: the embedder's lock.
///
/// # Safety
///
/// `acct` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn ioacct_iomem_deny(acct: *mut ioacct, dom: u64, s: u64, e: u64) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { deny(acct, IOACCT_IOMEM, dom, s, e) }
}

/// Xen's `iomem_access_permitted(d, s, e)`: 1 or 0, or an error.
///
/// Threading: the embedder's lock.
///
/// # Safety
///
/// `acct` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn ioacct_iomem_access_permitted(
    acct: *mut ioacct,
    dom: u64,
    s: u64,
    e: u64,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { permitted(acct, IOACCT_IOMEM, dom, s, e) }
}

/// Xen's `ioports_permit_access(d, s, e)`.
///
/// Threading: the embedder's lock.
///
/// # Safety
///
/// `acct` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn ioacct_ioports_permit(
    acct: *mut ioacct,
    dom: u64,
    s: u64,
    e: u64,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { permit(acct, IOACCT_IOPORT, dom, s, e) }
}

/// Xen's `ioports_deny_access(d, s, e)`.
///
/// Threading: the embedder's lock.
///
/// # Safety
///
/// `acct` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn ioacct_ioports_deny(acct: *mut ioacct, dom: u64, s: u64, e: u64) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { deny(acct, IOACCT_IOPORT, dom, s, e) }
}

/// Xen's `ioports_access_permitted(d, s, e)`.
///
/// Threading: the embedder's lock.
///
/// # Safety
///
/// `acct` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn ioacct_ioports_access_permitted(
    acct: *mut ioacct,
    dom: u64,
    s: u64,
    e: u64,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { permitted(acct, IOACCT_IOPORT, dom, s, e) }
}

/// Xen's `irqs_permit_access(d, s, e)` (and `irq_permit_access(d, i)` with
/// `s` = `e` = `i`).
///
/// Threading: the embedder's lock.
///
/// # Safety
///
/// `acct` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn ioacct_irqs_permit(acct: *mut ioacct, dom: u64, s: u64, e: u64) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { permit(acct, IOACCT_IRQ, dom, s, e) }
}

/// Xen's `irqs_deny_access(d, s, e)` (and `irq_deny_access`).
///
/// Threading: the embedder's lock.
///
/// # Safety
///
/// `acct` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn ioacct_irqs_deny(acct: *mut ioacct, dom: u64, s: u64, e: u64) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { deny(acct, IOACCT_IRQ, dom, s, e) }
}

/// Xen's `irq_access_permitted(d, i)` over a range.
///
/// Threading: the embedder's lock.
///
/// # Safety
///
/// `acct` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn ioacct_irqs_access_permitted(
    acct: *mut ioacct,
    dom: u64,
    s: u64,
    e: u64,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { permitted(acct, IOACCT_IRQ, dom, s, e) }
}

/// The state of one unit in `*out`. Errors: `BAD_ARGUMENT`, `OUT_OF_RANGE`,
/// `NOT_IO_MEMORY`, `NULL`.
///
/// Threading: the embedder's lock.
///
/// # Safety
///
/// `acct` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ioacct_query(
    acct: *mut ioacct,
    space: u32,
    unit: u64,
    out: *mut ioacct_unit_info,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe {
        with(acct, |h| {
            let r = range(space, unit, unit)?;
            let info = h.acct.query(r.space(), unit)?;
            // The caller passes NULL or a writable struct (the outer block's contract).
            let Some(out) = out.as_mut() else {
                return Err(Fail::Code(IOACCT_ERR_NULL));
            };
            *out = ioacct_unit_info {
                reserved: info.reserved,
                hv_uses: info.hv_uses,
                holders: u32::try_from(info.holders.len()).unwrap_or(u32::MAX),
                exclusive_holder: info
                    .holders
                    .iter()
                    .find(|(_, m)| *m == Mode::Exclusive)
                    .map_or(-1, |(d, _)| i32::from(d.get())),
                draining: u32::try_from(info.draining.len()).unwrap_or(u32::MAX),
                users: u32::try_from(info.uses.len()).unwrap_or(u32::MAX),
                uses: info.uses.iter().map(|(_, n)| u64::from(*n)).sum(),
                default_accessible: info.default_accessible,
            };
            Ok(0)
        })
    }
}

/// The state of one unit as text (`"iomem 0xfeb00: held-by d1 exclusive
/// used-by d1 x1"`), written into `buf` as `snprintf` does; returns the full
/// length, or an error as `ioacct_query`.
///
/// Threading: the embedder's lock.
///
/// # Safety
///
/// `acct` is NULL or a live handle; `buf` is NULL or valid for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn ioacct_describe(
    acct: *mut ioacct,
    space: u32,
    unit: u64,
    buf: *mut c_char,
    len: usize,
) -> isize {
    let mut n = 0usize;
    // SAFETY: forwarded contract.
    let rc = unsafe {
        with(acct, |h| {
            let r = range(space, unit, unit)?;
            let info = h.acct.query(r.space(), unit)?;
            // The caller passes NULL or `len` writable bytes (the outer block's contract).
            n = errno::write_buf(buf, len, format_args!("{info}"));
            Ok(0)
        })
    };
    if rc < 0 {
        rc as isize
    } else {
        isize::try_from(n).unwrap_or(isize::MAX)
    }
}

/// Verifies every invariant of the accountant (SPEC section 2): `IOACCT_OK`,
/// or `IOACCT_ERR_INVARIANT` with the violation in `ioacct_last_error`. Time
/// proportional to the state, not the spaces.
///
/// Threading: the embedder's lock.
///
/// # Safety
///
/// `acct` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn ioacct_check(acct: *mut ioacct) -> c_int {
    // SAFETY: forwarded contract.
    unsafe {
        with(acct, |h| {
            h.acct.check_invariants().map_err(Fail::Violation)?;
            Ok(0)
        })
    }
}

/// The accountant inside a live handle, for the crate's checker module.
///
/// # Safety
///
/// `acct` is NULL or a live handle, not used by another thread during the call.
pub(crate) unsafe fn with_accountant(
    acct: *mut ioacct,
    f: impl FnOnce(&mut Accountant) -> Result<c_int, Error>,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { with(acct, |h| Ok(f(&mut h.acct)?)) }
}
