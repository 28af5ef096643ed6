//! What the accountant says about one unit: `ioacct_query` as a struct,
//! `ioacct_describe` as SPEC's text.

use core::ffi::{c_char, c_int};

use accountant::Mode;

use crate::errno::{self, ioacct_errno::*};
use crate::handle::{range, with, Fail};
use crate::{ioacct, ioacct_unit_info};

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
        with(acct, |a| {
            let r = range(space, unit, unit)?;
            let info = a.query(r.space(), unit)?;
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
        with(acct, |a| {
            let r = range(space, unit, unit)?;
            let info = a.query(r.space(), unit)?;
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
