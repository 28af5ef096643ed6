//! The accountant's handle and the boundary every call on it crosses:
//! the magic word that tells a live handle from a freed or foreign one, the
//! poisoned flag, argument validation into the accountant's checked types,
//! the panic boundary and the error recorded for `ioacct_last_error`; and
//! the life of every handle C holds ([`Handle`], [`release`]).

use alloc::boxed::Box;
use core::ffi::{c_char, c_int, c_void};

use accountant::{Accountant, BootOptions, DomId, Error, Teardown, UnitRange, Violation};

use crate::errno::{self, ioacct_errno, ioacct_errno::*};
use crate::hooks;
use crate::{
    ioacct_config, ioacct_teardown_fn, ioacct_teardown_item, space_of, space_value, tracker_of,
    IOACCT_NO_PAGE_LIMIT, IOACCT_TRACKER_SLAB_EXTENT,
};

/// A handle C holds: a box made by one constructor and freed by its
/// `_free`/`_release`, whose first field read is a magic word. A live
/// handle holds [`Handle::LIVE`]; the free writes [`Handle::DEAD`] before it
/// returns the memory, so a second free or a call on a freed handle is
/// detected as long as the embedder's allocator has not reused the block.
pub(crate) trait Handle {
    /// The magic word of a live handle.
    const LIVE: u64;
    /// The magic word a freed handle is left with.
    const DEAD: u64;
    /// The handle's magic word.
    fn magic(&self) -> u64;
    /// Overwrites the handle's magic word.
    fn set_magic(&mut self, word: u64);
}

/// Implements [`Handle`] for a struct with a `magic: u64` field, given its
/// live and dead words.
macro_rules! handle {
    ($t:ty, $live:expr, $dead:expr) => {
        impl $crate::handle::Handle for $t {
            const LIVE: u64 = $live;
            const DEAD: u64 = $dead;
            fn magic(&self) -> u64 {
                self.magic
            }
            fn set_magic(&mut self, word: u64) {
                self.magic = word;
            }
        }
    };
}
pub(crate) use handle;

/// The live handle behind `p`: `None` for NULL or a pointer whose magic
/// word is not [`Handle::LIVE`] (freed, or not a `T`).
///
/// # Safety
///
/// `p` is NULL or points to memory readable for a `T`, not written by
/// another thread while the reference lives.
#[inline(always)]
pub(crate) unsafe fn live<'a, T: Handle>(p: *const T) -> Option<&'a T> {
    // SAFETY: per the contract.
    unsafe { p.as_ref() }.filter(|h| h.magic() == T::LIVE)
}

/// [`live`] for a call that changes the handle.
///
/// # Safety
///
/// `p` is NULL or points to memory readable and writable for a `T`, used by
/// no other thread while the reference lives.
#[inline(always)]
pub(crate) unsafe fn live_mut<'a, T: Handle>(p: *mut T) -> Option<&'a mut T> {
    // SAFETY: per the contract.
    unsafe { p.as_mut() }.filter(|h| h.magic() == T::LIVE)
}

/// Frees a handle C holds: NULL is nothing (`IOACCT_OK`); a pointer whose
/// magic word is not [`Handle::LIVE`] is left alone
/// (`IOACCT_ERR_BAD_HANDLE`); otherwise the word becomes [`Handle::DEAD`]
/// and the box is dropped inside the panic boundary.
///
/// # Safety
///
/// `p` is NULL or a pointer `Box::into_raw` made for a `T`, not freed before.
pub(crate) unsafe fn release<T: Handle>(p: *mut T) -> c_int {
    // SAFETY: per the contract, NULL or a readable `T`.
    let Some(h) = (unsafe { p.as_mut() }) else {
        return IOACCT_OK as c_int;
    };
    if h.magic() != T::LIVE {
        return IOACCT_ERR_BAD_HANDLE as c_int;
    }
    h.set_magic(T::DEAD);
    // SAFETY: `p` came from `Box::into_raw` and is freed once (its magic
    // word is now DEAD, so a second release stops above).
    let b = unsafe { Box::from_raw(p) };
    match hooks::boundary(move || drop(b)) {
        Ok(()) => IOACCT_OK as c_int,
        Err(()) => IOACCT_ERR_PANIC as c_int,
    }
}

/// Hands a new handle to C: `make` runs inside the panic boundary, and
/// `*out` is written only when it succeeded.
///
/// # Safety
///
/// `out` is non-NULL and writable.
pub(crate) unsafe fn publish<T>(
    out: *mut *mut T,
    make: impl FnOnce() -> Result<Box<T>, ioacct_errno>,
) -> c_int {
    match hooks::boundary(make) {
        Ok(Ok(b)) => {
            // SAFETY: per the contract.
            unsafe { *out = Box::into_raw(b) };
            IOACCT_OK as c_int
        }
        Ok(Err(e)) => e as c_int,
        Err(()) => IOACCT_ERR_PANIC as c_int,
    }
}

const MAGIC: u64 = 0x696f_6163_6374_2e61; // "ioacct.a"
const DEAD: u64 = 0x6465_6164_2e2e_2e61;

/// An accountant. Opaque: made by [`ioacct_boot`], freed by [`ioacct_free`].
pub struct ioacct {
    magic: u64,
    poisoned: bool,
    acct: Accountant,
    last: Option<Last>,
}

handle!(ioacct, MAGIC, DEAD);

/// What [`ioacct_last_error`] describes.
pub(crate) enum Last {
    Acct(Error),
    Violation(Violation),
}

/// Why a call failed before or inside the accountant.
pub(crate) enum Fail {
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
#[inline]
pub(crate) unsafe fn with(
    acct: *mut ioacct,
    f: impl FnOnce(&mut Accountant) -> Result<c_int, Fail>,
) -> c_int {
    // SAFETY: per this function's contract.
    let Some(h) = (unsafe { live_mut(acct) }) else {
        return IOACCT_ERR_BAD_HANDLE as c_int;
    };
    if h.poisoned {
        return IOACCT_ERR_PANIC as c_int;
    }
    let hp: *mut ioacct = h;
    // SAFETY: `hp` is `h`, unique for the call; the boundary only needs the
    // pointer back when `f` panicked, when `f`'s borrow is gone.
    match hooks::boundary(|| f(unsafe { &mut (*hp).acct })) {
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

#[inline]
pub(crate) fn dom(d: u64) -> Result<DomId, Fail> {
    Ok(DomId::new(d)?)
}

#[inline]
pub(crate) fn range(space: u32, first: u64, last: u64) -> Result<UnitRange, Fail> {
    let s = space_of(space).ok_or(Fail::Code(IOACCT_ERR_BAD_ARGUMENT))?;
    Ok(UnitRange::new(s, first, last)?)
}

/// Hands every item of `t` to `cb` in order.
///
/// # Safety
///
/// `cb` is NULL or callable with `ctx` as `ioacct_teardown_fn` says.
pub(crate) unsafe fn teardown(t: &Teardown, cb: ioacct_teardown_fn, ctx: *mut c_void) {
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
    // SAFETY: `out` is non-NULL (checked above) and writable (the contract).
    unsafe {
        publish(out, || {
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
        })
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
    // SAFETY: forwarded contract.
    unsafe { release(acct) }
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
    let Some(h) = (unsafe { live(acct) }) else {
        return 0;
    };
    let args = |f: &mut dyn FnMut(core::fmt::Arguments<'_>) -> usize| match &h.last {
        None => f(format_args!("")),
        Some(Last::Acct(e)) => f(format_args!("{e}")),
        Some(Last::Violation(v)) => f(format_args!("invariant {v}")),
    };
    // SAFETY: the caller passes NULL or `len` writable bytes at `buf`.
    args(&mut |a| unsafe { errno::write_buf(buf, len, a) })
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
        with(acct, |a| {
            a.check_invariants().map_err(Fail::Violation)?;
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
    unsafe { with(acct, |a| Ok(f(a)?)) }
}
