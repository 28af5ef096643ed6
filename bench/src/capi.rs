//! libioacct's C API in the benchmarks, beside the same work in Rust.
//!
//! * `accountant.port_check impl=radix-bound-capi`: the checks are made from
//!   C code (`bench/c/port_loop.c`, compiled by the build script with the
//!   system compiler), which calls the exported `ioacct_port_check8`
//!   directly, as a C hypervisor's exit handler does, with a loop that does
//!   per check what the Rust rows' closure does (bounds checks, `black_box`
//!   through memory, the remainder by rustc's 32-bit division; see the C
//!   file). Rust calls that loop once per [`C_CHECKS_PER_CALL`] checks, and
//!   the row is reported per check. The
//!   function called is the library's code as this crate builds it (the std
//!   build, not `freestanding`): the check has no panic boundary in either
//!   build, so it is the same code the static library exports.
//! * `accountant.instructions op=map-capi`, `op=bind-capi`: counted from C
//!   through the freestanding static library by `target/capi/ioacct-count`
//!   (see [`crate::instructions`]).
//!
//! [`CAcct`] sets an accountant up through the C API (boot, domains,
//! grants, checkers) for the port-check row.

use std::ffi::{c_int, c_void};

use ::ioacct::checker::ioacct_port_checker;
use ::ioacct::{ioacct as Handle, ioacct_hooks, IOACCT_IOPORT};
use accountant::TrackerKind;

unsafe extern "C" fn alloc(_: *mut c_void, size: usize, align: usize) -> *mut c_void {
    match std::alloc::Layout::from_size_align(size, align) {
        // SAFETY: the library never asks for zero bytes (GlobalAlloc's rule).
        Ok(l) => unsafe { std::alloc::alloc(l) }.cast(),
        Err(_) => std::ptr::null_mut(),
    }
}

unsafe extern "C" fn free(_: *mut c_void, p: *mut c_void, size: usize, align: usize) {
    if let Ok(l) = std::alloc::Layout::from_size_align(size, align) {
        // SAFETY: `p` came from `alloc` above with this layout.
        unsafe { std::alloc::dealloc(p.cast(), l) }
    }
}

unsafe extern "C" fn fatal(_: *mut c_void, _: *const std::ffi::c_char, _: usize) {
    std::process::abort()
}

/// Checks per call of the C loop: enough that the Rust-to-C call around
/// the loop is a small share of each check (its cost is spread over these).
pub const C_CHECKS_PER_CALL: u64 = 64;

extern "C" {
    /// `bench/c/port_loop.c`: checks entries `start..start + n` (modulo
    /// `len`) of `order`, pairs of (domain, port), each with
    /// `checkers[domain]` (`ncheckers` of them); returns how many were
    /// allowed.
    fn ioacct_bench_port_checks(
        // `ioacct_port_checker *const *`: opaque here (its Rust layout is
        // not C's concern).
        checkers: *const *mut c_void,
        ncheckers: u64,
        order: *const [u16; 2],
        len: u64,
        start: u64,
        n: u64,
    ) -> u64;
}

/// Checks `order[(start + k) % order.len()]` for `k` in `0..n` from C with
/// the domain's checker; returns how many were allowed.
///
/// # Safety
///
/// Every domain `order` names indexes `checkers`, and its checker is live
/// (checked once where the order is made, not here: this is the timed path).
pub unsafe fn c_port_checks(
    checkers: &[*mut ioacct_port_checker],
    order: &[[u16; 2]],
    start: u64,
    n: u64,
) -> u64 {
    if order.is_empty() {
        return 0;
    }
    // SAFETY: every domain the order names indexes `checkers`, whose
    // checkers are live (the contract); `order` is `len` entries, `len` > 0.
    unsafe {
        ioacct_bench_port_checks(
            checkers.as_ptr().cast(),
            checkers.len() as u64,
            order.as_ptr(),
            order.len() as u64,
            start,
            n,
        )
    }
}

/// An accountant made through the C API, and the checkers bound in it;
/// freed on drop.
pub struct CAcct {
    /// The handle.
    pub acct: *mut Handle,
    /// Checkers by domain (NULL where none was bound).
    pub checkers: Vec<*mut ioacct_port_checker>,
}

fn ok(rc: c_int, what: &str) -> Result<(), String> {
    if rc >= 0 {
        Ok(())
    } else {
        Err(format!("{what}: C error {rc}"))
    }
}

impl CAcct {
    /// Boots an accountant from `opts` with MMIO `tracker` and domains
    /// `1..=doms`.
    pub fn new(opts: &str, tracker: TrackerKind, doms: u16) -> Result<CAcct, String> {
        let hooks = ioacct_hooks {
            alloc: Some(alloc),
            free: Some(free),
            fatal: Some(fatal),
            ctx: std::ptr::null_mut(),
        };
        // SAFETY: `hooks` is readable; its functions live for the process.
        ok(unsafe { ::ioacct::ioacct_init(&hooks) }, "ioacct_init")?;
        let mut acct = std::ptr::null_mut();
        let config = ::ioacct::ioacct_config {
            tracker: match tracker {
                TrackerKind::SlabExtent => ::ioacct::IOACCT_TRACKER_SLAB_EXTENT,
                TrackerKind::SlabPage => ::ioacct::IOACCT_TRACKER_SLAB_PAGE,
                TrackerKind::XmallocPage => ::ioacct::IOACCT_TRACKER_XMALLOC_PAGE,
            },
            page_limit: ::ioacct::IOACCT_NO_PAGE_LIMIT,
        };
        // SAFETY: `opts` is `len` readable bytes, `config` readable, `acct` writable.
        let rc =
            unsafe { ::ioacct::ioacct_boot(opts.as_ptr().cast(), opts.len(), &config, &mut acct) };
        ok(rc, "ioacct_boot")?;
        let c = CAcct {
            acct,
            checkers: Vec::new(),
        };
        for d in 1..=doms {
            // SAFETY: a live handle.
            let rc = unsafe { ::ioacct::ioacct_domain_create(c.acct, u64::from(d)) };
            ok(rc, "create")?;
        }
        Ok(c)
    }

    fn grant(&mut self, d: u16, space: u32, first: u64, last: u64) -> Result<(), String> {
        // SAFETY: a live handle; no teardown callback (none can happen on a fresh grant).
        let rc = unsafe {
            ::ioacct::ioacct_grant(
                self.acct,
                u64::from(d),
                space,
                first,
                last,
                0,
                None,
                std::ptr::null_mut(),
            )
        };
        ok(rc, "grant")
    }

    /// Grants `d` one port.
    pub fn grant_port(&mut self, d: u16, port: u16) -> Result<(), String> {
        self.grant(d, IOACCT_IOPORT, u64::from(port), u64::from(port))
    }

    /// Binds a checker to each of domains `0..=doms`.
    pub fn bind_checkers(&mut self, doms: u16) -> Result<(), String> {
        for d in 0..=doms {
            let mut c = std::ptr::null_mut();
            // SAFETY: a live handle, `c` writable.
            let rc = unsafe { ::ioacct::ioacct_checker_bind(self.acct, u64::from(d), &mut c) };
            ok(rc, "checker_bind")?;
            self.checkers.push(c);
        }
        Ok(())
    }
}

impl Drop for CAcct {
    fn drop(&mut self) {
        for c in self.checkers.drain(..) {
            // SAFETY: bound by `bind_checkers`, released once.
            unsafe { ::ioacct::ioacct_checker_release(c) };
        }
        // SAFETY: made by `ioacct_boot`, freed once.
        unsafe { ::ioacct::ioacct_free(self.acct) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_c_loop_counts_what_the_checks_allow() -> Result<(), String> {
        let mut a = CAcct::new("io_default=none", TrackerKind::SlabExtent, 2)?;
        a.grant_port(1, 0x300)?;
        a.grant_port(2, 0x301)?;
        a.bind_checkers(2)?;
        // Allowed, allowed, denied (another domain's), denied (d0 holds nothing).
        let order = [[1, 0x300], [2, 0x301], [1, 0x301], [0, 0x300]];
        // SAFETY: every domain of the order (0..=2) has a live checker.
        let n = |start, n| unsafe { c_port_checks(&a.checkers, &order, start, n) };
        assert_eq!(n(0, 4), 2);
        assert_eq!(n(2, 2), 0);
        assert_eq!(n(1, 8), 4, "wraps around the order");
        assert_eq!(n(0, 0), 0);
        // SAFETY: as above; an empty order checks nothing.
        assert_eq!(unsafe { c_port_checks(&a.checkers, &[], 0, 5) }, 0);
        Ok(())
    }
}
