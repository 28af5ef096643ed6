//! Xen's `iocap.h` shape: permit, deny and access-permitted for I/O memory
//! frames, I/O ports and interrupt lines, inclusive `(s, e)` ranges.
//!
//! One helper per verb ([`permit`], [`deny`], [`permitted`]) serves the
//! three spaces; the nine exported functions only name the space. They are
//! written out rather than made by a macro because cbindgen (on stable Rust)
//! reads the source, not its macro expansion, and each needs its own line
//! in the header.

use core::ffi::c_int;

use crate::handle::{self, range, with};
use crate::{ioacct, ioacct_grant, ioacct_revoke, IOACCT_IOMEM, IOACCT_IOPORT, IOACCT_IRQ};

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
        with(acct, |a| {
            let d = handle::dom(dom)?;
            Ok(c_int::from(a.permitted(d, range(space, first, last)?)?))
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
