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
pub struct ioacct_port_checker {
    magic: u64,
    inner: BoundPortChecker,
}

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
        crate::with_accountant(acct, |a| {
            let d = DomId::new(dom)?;
            if !a.exists(d) {
                return Err(Error::NoSuchDomain(d));
            }
            // `None` only for an id past the table, never for a DomId.
            let Some(inner) = a.bound_port_checker(d) else {
                return Err(Error::OutOfRange { value: dom });
            };
            let c = Box::new(ioacct_port_checker {
                magic: MAGIC,
                inner,
            });
            // SAFETY: `out` is non-NULL (checked above) and writable.
            *out = Box::into_raw(c);
            Ok(IOACCT_OK as c_int)
        })
    }
}

/// Whether the checker's domain may access `width` ports from `port` now:
/// true when every port is held by it (not draining) or default-accessible
/// to it. A width other than 1, 2, 4, a range past 0xffff, or a NULL or
/// released checker is denied. One or two atomic loads; no lock, no
/// allocation, cannot fail.
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
    // SAFETY: per the contract, NULL or a live checker.
    match unsafe { checker.as_ref() } {
        Some(c) if c.magic == MAGIC => {
            // No panic boundary: the check indexes a 1,024-word leaf with
            // `port >> 6` (a u16) and is otherwise arithmetic on u16/u8,
            // so it cannot panic for any argument.
            c.inner.check_untraced(port, width)
        }
        _ => false,
    }
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
    // SAFETY: per the contract.
    let Some(c) = (unsafe { checker.as_mut() }) else {
        return IOACCT_OK as c_int;
    };
    if c.magic != MAGIC {
        return IOACCT_ERR_BAD_HANDLE as c_int;
    }
    c.magic = DEAD;
    // SAFETY: made by `Box::into_raw` in `ioacct_checker_bind`, released once.
    let b = unsafe { Box::from_raw(checker) };
    match crate::hooks::boundary(move || drop(b)) {
        Ok(()) => IOACCT_OK as c_int,
        Err(()) => IOACCT_ERR_PANIC as c_int,
    }
}
