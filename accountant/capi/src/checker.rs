//! The lock-free port check for vCPU threads: a checker bound to one
//! domain.
//!
//! **Lifecycle**, which the embedder must follow:
//!
//! 1. `ioacct_checker_bind(acct, d, &c)` under the embedder's lock, after
//!    `d` was created (one checker per vCPU, or one shared by the domain's
//!    vCPUs: it is read-only);
//! 2. `ioacct_port_check(c, port, width)` on the vCPU's exit path, with no
//!    lock, concurrently with any locked call: once a revoke (deny, forced
//!    grant, destroy, reservation) has returned, no later check allows the
//!    access it took away;
//! 3. stop the domain's vCPUs, then `ioacct_checker_release(c)` (any
//!    thread, no lock), **before** `ioacct_domain_destroy(acct, d, …)`.
//!
//! Step 3's order is what lets the port table return a destroyed domain's
//! memory once every vCPU has passed a quiescent point: a checker that
//! outlived its domain would otherwise see the next domain of that id.
//! Today a checker released late still reads memory that is valid (the
//! table's nodes are type-stable and the checker keeps the table alive), so
//! a late release is a contract violation the library cannot detect, not a
//! use after free.

use alloc::boxed::Box;
use core::ffi::c_int;

use accountant::{BoundPortChecker, DomId, Error};

use crate::errno::ioacct_errno::*;
use crate::ioacct;

const MAGIC: u64 = 0x696f_6163_6374_2e63; // "ioacct.c"
const DEAD: u64 = 0x6465_6164_2e2e_2e63;

/// A port checker bound to one domain. Opaque: made by
/// [`ioacct_checker_bind`], freed by [`ioacct_checker_release`].
///
/// **Shape of the hot path.** The C handle is this one allocation: the
/// pointer to the domain's leaf first, the magic word beside it, aligned so
/// both sit in one cache line. A check loads the magic word and the leaf
/// pointer from that line, then the one (or two) words of port bits: one
/// dependent load more than the Rust bound check, whose caller holds the
/// leaf pointer itself.
#[repr(C, align(32))]
pub struct ioacct_port_checker {
    inner: BoundPortChecker,
    magic: u64,
}

crate::handle::handle!(ioacct_port_checker, MAGIC, DEAD);

/// Binds a checker to domain `dom`, which must exist, and stores it in
/// `*out`. Errors: `BAD_HANDLE`, `NULL`, `OUT_OF_RANGE`, `NO_SUCH_DOMAIN`.
///
/// Threading: the embedder's lock.
///
/// # Safety
///
/// `acct` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ioacct_checker_bind(
    acct: *mut ioacct,
    dom: u64,
    out: *mut *mut ioacct_port_checker,
) -> c_int {
    if out.is_null() && !acct.is_null() {
        return IOACCT_ERR_NULL as c_int;
    }
    // SAFETY: forwarded contract.
    unsafe {
        crate::handle::with_accountant(acct, |a| {
            let d = DomId::new(dom)?;
            if !a.exists(d) {
                return Err(Error::NoSuchDomain(d));
            }
            // `None` only for an id past the table, never for a DomId.
            let Some(inner) = a.bound_port_checker(d) else {
                return Err(Error::OutOfRange { value: dom });
            };
            let c = Box::new(ioacct_port_checker {
                inner,
                magic: MAGIC,
            });
            // SAFETY: `out` is non-NULL (checked above) and writable.
            *out = Box::into_raw(c);
            Ok(IOACCT_OK as c_int)
        })
    }
}

/// The live checker behind `checker`, or `None` for NULL or a pointer
/// whose magic word is wrong (released, or not a checker).
///
/// # Safety
///
/// `checker` is NULL or points to readable memory of a checker's size.
#[inline(always)]
unsafe fn live<'a>(checker: *const ioacct_port_checker) -> Option<&'a BoundPortChecker> {
    // SAFETY: per the contract.
    unsafe { crate::handle::live(checker) }.map(|c| &c.inner)
}

// No panic boundary on the checks: they index a 1,024-word leaf with
// `port >> 6` (a u16) and are otherwise arithmetic on u16/u8, so they
// cannot panic for any argument.

/// Whether the checker's domain may access `width` ports from `port` now:
/// true when every port is held by it (not draining) or default-accessible
/// to it. A width other than 1, 2, 4, a range past 0xffff, or a NULL or
/// released checker is denied. One or two atomic loads of port bits; no
/// lock, no allocation, cannot fail. Where the width is known at the call
/// site, `ioacct_port_check8`/`16`/`32` skip its validation.
///
/// Threading: no lock; any number of threads at once.
///
/// # Safety
///
/// `checker` is NULL or a pointer `ioacct_checker_bind` returned and
/// `ioacct_checker_release` has not released.
#[no_mangle]
pub unsafe extern "C" fn ioacct_port_check(
    checker: *const ioacct_port_checker,
    port: u16,
    width: u8,
) -> bool {
    // SAFETY: forwarded contract.
    unsafe { live(checker) }.is_some_and(|c| c.check_untraced(port, width))
}

/// `ioacct_port_check(checker, port, 1)`: a one-byte access (`inb`/`outb`).
///
/// Threading: no lock; any number of threads at once.
///
/// # Safety
///
/// As `ioacct_port_check`.
#[no_mangle]
pub unsafe extern "C" fn ioacct_port_check8(
    checker: *const ioacct_port_checker,
    port: u16,
) -> bool {
    // SAFETY: forwarded contract.
    unsafe { live(checker) }.is_some_and(|c| c.check_untraced(port, 1))
}

/// `ioacct_port_check(checker, port, 2)`: a two-byte access (`inw`/`outw`).
///
/// Threading: no lock; any number of threads at once.
///
/// # Safety
///
/// As `ioacct_port_check`.
#[no_mangle]
pub unsafe extern "C" fn ioacct_port_check16(
    checker: *const ioacct_port_checker,
    port: u16,
) -> bool {
    // SAFETY: forwarded contract.
    unsafe { live(checker) }.is_some_and(|c| c.check_untraced(port, 2))
}

/// `ioacct_port_check(checker, port, 4)`: a four-byte access (`inl`/`outl`).
///
/// Threading: no lock; any number of threads at once.
///
/// # Safety
///
/// As `ioacct_port_check`.
#[no_mangle]
pub unsafe extern "C" fn ioacct_port_check32(
    checker: *const ioacct_port_checker,
    port: u16,
) -> bool {
    // SAFETY: forwarded contract.
    unsafe { live(checker) }.is_some_and(|c| c.check_untraced(port, 4))
}

/// Releases a checker (NULL: nothing). Returns `IOACCT_OK`, or
/// `IOACCT_ERR_BAD_HANDLE` for a pointer that is not a live checker.
///
/// Threading: no lock, but no check may be running or start on `checker`.
///
/// # Safety
///
/// `checker` is NULL or a pointer `ioacct_checker_bind` returned, not
/// released before.
#[no_mangle]
pub unsafe extern "C" fn ioacct_checker_release(checker: *mut ioacct_port_checker) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { crate::handle::release(checker) }
}
