//! Domains and grants: create and destroy, grant and revoke (each with its
//! teardown callback), the calls that change who holds what.

use core::ffi::{c_int, c_void};

use accountant::{Accountant, DomId, Error, Mode, Teardown, UnitRange};

use crate::errno::ioacct_errno::*;
use crate::handle::{self, range, with, Fail};
use crate::{ioacct, ioacct_teardown_fn, IOACCT_FORCE, IOACCT_GRANT_SHARED};

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
        with(acct, |a| {
            a.create(handle::dom(dom)?)?;
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
        with(acct, |a| {
            let t = a.destroy(handle::dom(dom)?)?;
            handle::teardown(&t, teardown, ctx);
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
    let mode = if flags & IOACCT_GRANT_SHARED != 0 {
        Mode::Shared
    } else {
        Mode::Exclusive
    };
    // SAFETY: forwarded contract.
    unsafe {
        change(
            acct,
            dom,
            space,
            (first, last),
            flags,
            IOACCT_GRANT_SHARED,
            (teardown, ctx),
            |a, d, r, force| Ok((a.grant(d, r, mode, force)?, IOACCT_OK as c_int)),
        )
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
        change(
            acct,
            dom,
            space,
            (first, last),
            flags,
            0,
            (teardown, ctx),
            |a, d, r, force| {
                let rv = a.revoke(d, r, force)?;
                let rc = if rv.pending {
                    IOACCT_PENDING
                } else {
                    IOACCT_OK
                };
                Ok((rv.teardown, rc as c_int))
            },
        )
    }
}

/// The boundary of a call that changes who holds what (grant, revoke):
/// checks `flags` (`IOACCT_FORCE` and `also` allowed), the domain and the
/// range, runs `f` with them and whether to force, and hands its teardown to
/// the callback before returning `f`'s code.
///
/// # Safety
///
/// `acct` is NULL or a live handle; the callback is NULL or callable with
/// its context.
#[allow(clippy::too_many_arguments)]
unsafe fn change(
    acct: *mut ioacct,
    dom: u64,
    space: u32,
    (first, last): (u64, u64),
    flags: u32,
    also: u32,
    (cb, ctx): (ioacct_teardown_fn, *mut c_void),
    f: impl FnOnce(&mut Accountant, DomId, UnitRange, bool) -> Result<(Teardown, c_int), Error>,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe {
        with(acct, |a| {
            if flags & !(IOACCT_FORCE | also) != 0 {
                return Err(Fail::Code(IOACCT_ERR_BAD_ARGUMENT));
            }
            let d = handle::dom(dom)?;
            let r = range(space, first, last)?;
            let (t, rc) = f(a, d, r, flags & IOACCT_FORCE != 0)?;
            handle::teardown(&t, cb, ctx);
            Ok(rc)
        })
    }
}
