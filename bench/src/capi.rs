//! libioacct's C API, called from the benchmarks beside the same calls in
//! Rust (`impl=radix-bound-capi` in `accountant.port_check`; `op=map-capi`
//! and `op=bind-capi` in `accountant.instructions`).
//!
//! **How the C call is made, and why it is honest.** The exported
//! `extern "C"` functions are called through function pointers passed
//! through [`std::hint::black_box`], so rustc can neither inline them nor
//! see through them: each check or map pays the call, the C boundary's
//! argument and handle checks and the return, as a C hypervisor calling into
//! `libioacct.a` does — where the Rust bound check is inlined into the
//! benchmark loop. The one difference from C is an indirect call where C's
//! would be direct; both are perfectly predicted in a loop. The library is
//! linked as the Rust crate (std build, not `freestanding`): the port check
//! is the same code in both builds; map and bind additionally run inside
//! `catch_unwind` here (the freestanding build calls them directly), so
//! their counts are an upper bound on the product's.

use std::ffi::{c_int, c_void};
use std::hint::black_box;

use ::ioacct::checker::ioacct_port_checker;
use ::ioacct::{ioacct as Handle, ioacct_hooks, IOACCT_IOMEM, IOACCT_IOPORT, IOACCT_IRQ};
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

/// The C port check's type.
pub type PortCheckFn = unsafe extern "C" fn(*const ioacct_port_checker, u16, u8) -> bool;
/// The C map's and bind's type (`acct, dom, first, last`).
pub type RangeFn = unsafe extern "C" fn(*mut Handle, u64, u64, u64) -> c_int;

/// `ioacct_port_check`, opaque to the optimizer.
pub fn port_check_fn() -> PortCheckFn {
    black_box(::ioacct::ioacct_port_check as PortCheckFn)
}
/// `ioacct_map`, opaque to the optimizer.
pub fn map_fn() -> RangeFn {
    black_box(::ioacct::ioacct_map as RangeFn)
}
/// `ioacct_bind`, opaque to the optimizer.
pub fn bind_fn() -> RangeFn {
    black_box(::ioacct::ioacct_bind as RangeFn)
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

    /// Grants `d` frames `first..=last`.
    pub fn grant_frames(&mut self, d: u16, first: u64, last: u64) -> Result<(), String> {
        self.grant(d, IOACCT_IOMEM, first, last)
    }

    /// Grants `d` one interrupt line.
    pub fn grant_irq(&mut self, d: u16, line: u64) -> Result<(), String> {
        self.grant(d, IOACCT_IRQ, line, line)
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
