//! Error codes: one negative errno value per meaning, and `ioacct_strerror`.
//!
//! The values are Linux's (and Xen's `public/errno.h`, which uses the same
//! numbers for these), written out here so that the header does not depend
//! on the embedder's `errno.h`. Every [`accountant::ErrorCode`] has its own
//! value; the others are the C boundary's own (a NULL argument, a bad
//! handle, a malformed boot or trace line, hooks missing or already set, a
//! caught panic, a failed invariant check).

use core::ffi::{c_char, c_int};
use core::fmt;

use accountant::{Error, ErrorCode};

/// Results of the library's calls: `IOACCT_OK` (0) or `IOACCT_PENDING` (1),
/// or a negative error, one meaning each.
#[allow(non_camel_case_types)]
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ioacct_errno {
    /// Done.
    IOACCT_OK = 0,
    /// A revoke (deny) left units draining: the domain still uses them; they
    /// are released when its last use ends.
    IOACCT_PENDING = 1,
    /// `not-permitted`: domain 0 cannot be destroyed (EPERM).
    IOACCT_ERR_NOT_PERMITTED = -1,
    /// `not-mapped`: unmap of a frame the domain does not map, or hvunmap at
    /// use count 0 (ENOENT).
    IOACCT_ERR_NOT_MAPPED = -2,
    /// `no-such-domain`: the domain does not exist (ESRCH).
    IOACCT_ERR_NO_SUCH_DOMAIN = -3,
    /// `not-io-memory`: the range touches a RAM frame (ENXIO).
    IOACCT_ERR_NOT_IO_MEMORY = -6,
    /// A NULL, foreign or destroyed handle (EBADF).
    IOACCT_ERR_BAD_HANDLE = -9,
    /// `draining`: another domain drains the unit, or (map, bind) the domain
    /// itself does (EAGAIN).
    IOACCT_ERR_DRAINING = -11,
    /// `no-memory`: the tracker's memory is exhausted; nothing changed (ENOMEM).
    IOACCT_ERR_NO_MEMORY = -12,
    /// `not-granted`: the domain does not hold the unit (EACCES).
    IOACCT_ERR_NOT_GRANTED = -13,
    /// A NULL pointer where one is required (EFAULT).
    IOACCT_ERR_NULL = -14,
    /// `conflict`: another domain holds the unit, or holds it in the other
    /// mode (EBUSY).
    IOACCT_ERR_CONFLICT = -16,
    /// `domain-exists`: create of an existing domain (EEXIST).
    IOACCT_ERR_DOMAIN_EXISTS = -17,
    /// The hooks are not installed yet (`ioacct_init`) (ENODEV).
    IOACCT_ERR_NO_HOOKS = -19,
    /// `bad-range`: start > end, or an access width other than 1, 2, 4 (EINVAL).
    IOACCT_ERR_BAD_RANGE = -22,
    /// An argument outside its enumeration (space, tracker, flags) (EDOM).
    IOACCT_ERR_BAD_ARGUMENT = -33,
    /// `out-of-range`: a number beyond its space or the domain ids (ERANGE).
    IOACCT_ERR_OUT_OF_RANGE = -34,
    /// `not-reserved`: unreserve, hvmap or hvunmap of an unreserved unit (ENODATA).
    IOACCT_ERR_NOT_RESERVED = -61,
    /// A malformed boot line or trace line, or a boot grant on a reserved
    /// unit (EILSEQ).
    IOACCT_ERR_MALFORMED = -84,
    /// `in-use`: used by the default I/O domain's default right, or by the
    /// hypervisor (EADDRINUSE).
    IOACCT_ERR_IN_USE = -98,
    /// `reserved`: the hypervisor reserved the unit (EADDRNOTAVAIL).
    IOACCT_ERR_RESERVED = -99,
    /// `not-bound`: unbind of a line the domain has not bound (ENOTCONN).
    IOACCT_ERR_NOT_BOUND = -107,
    /// `ioacct_init` with hooks other than those installed (EALREADY).
    IOACCT_ERR_ALREADY = -114,
    /// `ioacct_check` found an invariant broken (EUCLEAN).
    IOACCT_ERR_INVARIANT = -117,
    /// `quota`: a per-domain limit (frames mapped, tracking records) would be
    /// exceeded; nothing changed (EDQUOT).
    IOACCT_ERR_QUOTA = -122,
    /// A bug: a panic was caught at the boundary; the handle is unusable
    /// from then on (ENOTRECOVERABLE). Only builds without `freestanding`
    /// return it; the freestanding library calls the fatal hook instead.
    IOACCT_ERR_PANIC = -131,
}

use ioacct_errno::*;

/// Every value, for `ioacct_strerror` and the tests.
pub(crate) const ALL: [ioacct_errno; 26] = [
    IOACCT_OK,
    IOACCT_PENDING,
    IOACCT_ERR_NOT_PERMITTED,
    IOACCT_ERR_NOT_MAPPED,
    IOACCT_ERR_NO_SUCH_DOMAIN,
    IOACCT_ERR_NOT_IO_MEMORY,
    IOACCT_ERR_BAD_HANDLE,
    IOACCT_ERR_DRAINING,
    IOACCT_ERR_NO_MEMORY,
    IOACCT_ERR_NOT_GRANTED,
    IOACCT_ERR_NULL,
    IOACCT_ERR_CONFLICT,
    IOACCT_ERR_DOMAIN_EXISTS,
    IOACCT_ERR_NO_HOOKS,
    IOACCT_ERR_BAD_RANGE,
    IOACCT_ERR_BAD_ARGUMENT,
    IOACCT_ERR_OUT_OF_RANGE,
    IOACCT_ERR_NOT_RESERVED,
    IOACCT_ERR_MALFORMED,
    IOACCT_ERR_IN_USE,
    IOACCT_ERR_RESERVED,
    IOACCT_ERR_NOT_BOUND,
    IOACCT_ERR_ALREADY,
    IOACCT_ERR_INVARIANT,
    IOACCT_ERR_QUOTA,
    IOACCT_ERR_PANIC,
];

/// The value of an accountant error code.
pub(crate) const fn of_code(c: ErrorCode) -> ioacct_errno {
    match c {
        ErrorCode::BadRange => IOACCT_ERR_BAD_RANGE,
        ErrorCode::OutOfRange => IOACCT_ERR_OUT_OF_RANGE,
        ErrorCode::NoSuchDomain => IOACCT_ERR_NO_SUCH_DOMAIN,
        ErrorCode::DomainExists => IOACCT_ERR_DOMAIN_EXISTS,
        ErrorCode::NotPermitted => IOACCT_ERR_NOT_PERMITTED,
        ErrorCode::NotIoMemory => IOACCT_ERR_NOT_IO_MEMORY,
        ErrorCode::Reserved => IOACCT_ERR_RESERVED,
        ErrorCode::NotReserved => IOACCT_ERR_NOT_RESERVED,
        ErrorCode::Conflict => IOACCT_ERR_CONFLICT,
        ErrorCode::Draining => IOACCT_ERR_DRAINING,
        ErrorCode::InUse => IOACCT_ERR_IN_USE,
        ErrorCode::NotGranted => IOACCT_ERR_NOT_GRANTED,
        ErrorCode::NotMapped => IOACCT_ERR_NOT_MAPPED,
        ErrorCode::NotBound => IOACCT_ERR_NOT_BOUND,
        ErrorCode::Quota => IOACCT_ERR_QUOTA,
        ErrorCode::NoMemory => IOACCT_ERR_NO_MEMORY,
    }
}

/// The C value of an accountant error.
pub(crate) fn of(e: &Error) -> c_int {
    of_code(e.code()) as c_int
}

/// A short, NUL-terminated, static description of `code`: for an
/// accountant error, its SPEC code word first (`"conflict: held by another
/// domain"`); `"unknown error"` for any other value. Never NULL.
///
/// Threading: any thread, no lock.
#[no_mangle]
pub extern "C" fn ioacct_strerror(code: c_int) -> *const c_char {
    let s: &'static core::ffi::CStr = match ALL.iter().find(|e| **e as c_int == code) {
        None => c"unknown error",
        Some(e) => match e {
            IOACCT_OK => c"ok",
            IOACCT_PENDING => c"pending: units drain until their last use ends",
            IOACCT_ERR_NOT_PERMITTED => c"not-permitted: domain 0 cannot be destroyed",
            IOACCT_ERR_NOT_MAPPED => c"not-mapped: no such mapping",
            IOACCT_ERR_NO_SUCH_DOMAIN => c"no-such-domain: the domain does not exist",
            IOACCT_ERR_NOT_IO_MEMORY => c"not-io-memory: the range touches RAM",
            IOACCT_ERR_BAD_HANDLE => c"bad handle: NULL, foreign or destroyed",
            IOACCT_ERR_DRAINING => c"draining: a revoked use has not ended yet",
            IOACCT_ERR_NO_MEMORY => c"no-memory: the tracker's memory is exhausted",
            IOACCT_ERR_NOT_GRANTED => c"not-granted: the domain does not hold it",
            IOACCT_ERR_NULL => c"NULL pointer argument",
            IOACCT_ERR_CONFLICT => c"conflict: held by another domain or in the other mode",
            IOACCT_ERR_DOMAIN_EXISTS => c"domain-exists: the domain exists already",
            IOACCT_ERR_NO_HOOKS => c"hooks not installed: call ioacct_init first",
            IOACCT_ERR_BAD_RANGE => c"bad-range: start > end, or a width other than 1, 2, 4",
            IOACCT_ERR_BAD_ARGUMENT => c"bad argument: not a space, tracker or flag",
            IOACCT_ERR_OUT_OF_RANGE => c"out-of-range: beyond the space or the domain ids",
            IOACCT_ERR_NOT_RESERVED => c"not-reserved: the hypervisor does not reserve it",
            IOACCT_ERR_MALFORMED => c"malformed boot or trace line",
            IOACCT_ERR_IN_USE => c"in-use: used by default right or by the hypervisor",
            IOACCT_ERR_RESERVED => c"reserved: the hypervisor's own",
            IOACCT_ERR_NOT_BOUND => c"not-bound: no such binding",
            IOACCT_ERR_ALREADY => c"other hooks are installed already",
            IOACCT_ERR_INVARIANT => c"invariant broken",
            IOACCT_ERR_QUOTA => c"quota: a per-domain limit would be exceeded",
            IOACCT_ERR_PANIC => c"internal error: the handle is unusable",
        },
    };
    s.as_ptr()
}

/// Writes what `args` formats into `buf` (at most `len - 1` bytes and a NUL,
/// cut where it must be), as `snprintf`: returns the full length without the
/// NUL. `buf` may be NULL when `len` is 0. Allocates nothing.
///
/// # Safety
///
/// `buf` is NULL or valid for `len` bytes of writes.
pub(crate) unsafe fn write_buf(buf: *mut c_char, len: usize, args: fmt::Arguments<'_>) -> usize {
    struct W<'a> {
        out: &'a mut [u8],
        at: usize,
        total: usize,
    }
    impl fmt::Write for W<'_> {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            let room = self.out.len().saturating_sub(1).saturating_sub(self.at);
            let n = s.len().min(room);
            self.out[self.at..self.at + n].copy_from_slice(&s.as_bytes()[..n]);
            self.at += n;
            self.total += s.len();
            Ok(())
        }
    }
    let out: &mut [u8] = if buf.is_null() || len == 0 {
        &mut []
    } else {
        // SAFETY: the caller passes `len` writable bytes at `buf`.
        unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), len) }
    };
    let mut w = W {
        out,
        at: 0,
        total: 0,
    };
    let _ = fmt::write(&mut w, args);
    if let Some(nul) = w.out.get_mut(w.at) {
        *nul = 0;
    }
    w.total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_is_distinct_and_described() {
        for (i, a) in ALL.iter().enumerate() {
            for b in &ALL[i + 1..] {
                assert!(
                    a == b || *a as i32 != *b as i32,
                    "{a:?} and {b:?} share a value"
                );
            }
            // SAFETY: ioacct_strerror returns a static NUL-terminated string.
            let s = unsafe { core::ffi::CStr::from_ptr(ioacct_strerror(*a as c_int)) };
            assert_ne!(s.to_bytes(), b"unknown error", "{a:?}");
        }
        // SAFETY: as above.
        let s = unsafe { core::ffi::CStr::from_ptr(ioacct_strerror(-4242)) };
        assert_eq!(s.to_bytes(), b"unknown error");
    }

    #[test]
    fn every_accountant_code_has_its_own_value_and_word() {
        let codes = [
            ErrorCode::BadRange,
            ErrorCode::OutOfRange,
            ErrorCode::NoSuchDomain,
            ErrorCode::DomainExists,
            ErrorCode::NotPermitted,
            ErrorCode::NotIoMemory,
            ErrorCode::Reserved,
            ErrorCode::NotReserved,
            ErrorCode::Conflict,
            ErrorCode::Draining,
            ErrorCode::InUse,
            ErrorCode::NotGranted,
            ErrorCode::NotMapped,
            ErrorCode::NotBound,
            ErrorCode::Quota,
            ErrorCode::NoMemory,
        ];
        for (i, a) in codes.iter().enumerate() {
            for b in &codes[i + 1..] {
                assert_ne!(of_code(*a), of_code(*b), "{a:?} {b:?}");
            }
            // SAFETY: a static NUL-terminated string.
            let s = unsafe { core::ffi::CStr::from_ptr(ioacct_strerror(of_code(*a) as c_int)) };
            let s = s.to_str().expect("ascii");
            assert!(
                s.starts_with(a.name()),
                "{s} does not start with {}",
                a.name()
            );
        }
    }

    #[test]
    fn write_buf_cuts_and_counts_like_snprintf() {
        let mut b = [0x55u8; 6];
        // SAFETY: `b` is 6 writable bytes.
        let n = unsafe {
            write_buf(
                b.as_mut_ptr().cast(),
                b.len(),
                format_args!("{}", "conflict"),
            )
        };
        assert_eq!(n, 8);
        assert_eq!(&b, b"confl\0");
        // SAFETY: NULL with length 0 writes nothing.
        let n = unsafe { write_buf(core::ptr::null_mut(), 0, format_args!("abc")) };
        assert_eq!(n, 3);
    }
}
