//! Uses of units: the hypervisor's own (reserve, unreserve, hvmap, hvunmap),
//! a domain's (map, unmap, bind, unbind), and the locked port access.

use core::ffi::c_int;

use accountant::{Accountant, DomId, Error, UnitRange};

use crate::handle::{self, range, with};
use crate::{ioacct, IOACCT_IOMEM, IOACCT_IRQ};

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
        with(acct, |a| {
            op(a, range(space, first, last)?)?;
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
#[inline]
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
        with(acct, |a| {
            let d = handle::dom(dom)?;
            op(a, d, range(space, first, last)?)?;
            Ok(0)
        })
    }
}

/// [`use_op`] on I/O memory frames.
///
/// # Safety
///
/// `acct` is NULL or a live handle.
#[inline]
unsafe fn frames_op(
    acct: *mut ioacct,
    dom: u64,
    first: u64,
    last: u64,
    op: fn(&mut Accountant, DomId, UnitRange) -> Result<(), Error>,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { use_op(acct, dom, IOACCT_IOMEM, first, last, op) }
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
    unsafe { frames_op(acct, dom, first_mfn, last_mfn, Accountant::map) }
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
    unsafe { frames_op(acct, dom, first_mfn, last_mfn, Accountant::unmap) }
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
        with(acct, |a| {
            let d = handle::dom(dom)?;
            Ok(c_int::from(a.access(d, port, width)?))
        })
    }
}
