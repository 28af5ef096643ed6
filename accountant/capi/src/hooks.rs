//! The embedder's hooks (allocate, free, fatal error), the panic boundary,
//! and, in the freestanding build, the `#[global_allocator]` and
//! `#[panic_handler]` that forward to the hooks.
//!
//! **Why the hooks are process-wide.** A Rust program has one global
//! allocator, so the library cannot allocate one accountant from one heap
//! and the next from another: [`ioacct_init`] installs the hooks once, and a
//! second call with different hooks is refused (`IOACCT_ERR_ALREADY`).
//!
//! **States of the hook cell**: `EMPTY` → `WRITING` (one installer writes
//! the fields) → `READY` (read-only for the rest of the process). Readers
//! only look at the fields after an `Acquire` load of `READY`.
//!
//! **Panics.** In the freestanding build (`panic = "abort"`) a panic calls
//! the fatal hook with a message and, should the hook return, executes a
//! trapping instruction: nothing unwinds into C. Without `freestanding`
//! (tests, the Rust benches) [`boundary`] catches the panic and the entry
//! point returns `IOACCT_ERR_PANIC`.

use core::cell::UnsafeCell;
use core::ffi::{c_char, c_int, c_void};
use core::sync::atomic::{AtomicU8, Ordering};

use crate::errno::ioacct_errno;

/// Allocates `size` bytes aligned to `align` (a power of two, at most the
/// page size); returns NULL when out of memory. `ctx` is `ioacct_hooks.ctx`.
#[allow(non_camel_case_types)]
pub type ioacct_alloc_fn =
    Option<unsafe extern "C" fn(ctx: *mut c_void, size: usize, align: usize) -> *mut c_void>;

/// Frees what `ioacct_alloc_fn` returned, with the same `size` and `align`.
#[allow(non_camel_case_types)]
pub type ioacct_free_fn =
    Option<unsafe extern "C" fn(ctx: *mut c_void, ptr: *mut c_void, size: usize, align: usize)>;

/// Reports an unrecoverable error (a failed allocation the library cannot
/// refuse, or a bug): `msg` is `len` bytes, not NUL-terminated. It must not
/// return (Xen: `panic()`); if it does, the library traps.
#[allow(non_camel_case_types)]
pub type ioacct_fatal_fn =
    Option<unsafe extern "C" fn(ctx: *mut c_void, msg: *const c_char, len: usize)>;

/// What the embedder supplies once, before any other call that allocates:
/// its allocator and its fatal-error handler (Xen would pass wrappers of
/// `_xmalloc`, `xfree` and `panic`).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ioacct_hooks {
    /// Allocator.
    pub alloc: ioacct_alloc_fn,
    /// Deallocator.
    pub free: ioacct_free_fn,
    /// Fatal-error handler; it must not return.
    pub fatal: ioacct_fatal_fn,
    /// Passed as the first argument of every hook.
    pub ctx: *mut c_void,
}

impl ioacct_hooks {
    fn same(&self, o: &ioacct_hooks) -> bool {
        self.alloc.map(|f| f as usize) == o.alloc.map(|f| f as usize)
            && self.free.map(|f| f as usize) == o.free.map(|f| f as usize)
            && self.fatal.map(|f| f as usize) == o.fatal.map(|f| f as usize)
            && self.ctx == o.ctx
    }
}

const EMPTY: u8 = 0;
const WRITING: u8 = 1;
const READY: u8 = 2;

struct HookCell {
    state: AtomicU8,
    hooks: UnsafeCell<ioacct_hooks>,
}

// SAFETY: `hooks` is written once, by the thread that moved `state` from
// EMPTY to WRITING, and read only after an Acquire load of READY, which the
// writer stores with Release after its write (see `install`).
unsafe impl Sync for HookCell {}

static HOOKS: HookCell = HookCell {
    state: AtomicU8::new(EMPTY),
    hooks: UnsafeCell::new(ioacct_hooks {
        alloc: None,
        free: None,
        fatal: None,
        ctx: core::ptr::null_mut(),
    }),
};

/// The installed hooks, once [`ioacct_init`] has returned.
pub(crate) fn hooks() -> Option<ioacct_hooks> {
    if HOOKS.state.load(Ordering::Acquire) == READY {
        // SAFETY: READY was stored with Release after the only write (see the
        // `Sync` impl), and nothing writes after it.
        Some(unsafe { *HOOKS.hooks.get() })
    } else {
        None
    }
}

fn install(h: &ioacct_hooks) -> c_int {
    if h.alloc.is_none() || h.free.is_none() || h.fatal.is_none() {
        return ioacct_errno::IOACCT_ERR_NULL as c_int;
    }
    match HOOKS
        .state
        .compare_exchange(EMPTY, WRITING, Ordering::Acquire, Ordering::Acquire)
    {
        Ok(_) => {
            // SAFETY: the successful exchange makes this thread the only
            // writer, and readers wait for READY.
            unsafe { *HOOKS.hooks.get() = *h };
            HOOKS.state.store(READY, Ordering::Release);
            ioacct_errno::IOACCT_OK as c_int
        }
        Err(_) => {
            // Another installer is writing or has written: wait for READY.
            loop {
                if let Some(cur) = hooks() {
                    return if cur.same(h) {
                        ioacct_errno::IOACCT_OK as c_int
                    } else {
                        ioacct_errno::IOACCT_ERR_ALREADY as c_int
                    };
                }
                core::hint::spin_loop();
            }
        }
    }
}

/// Installs the embedder's hooks; call it once before any other call of the
/// library (calls that need memory before it fail with `IOACCT_ERR_NO_HOOKS`).
/// Returns `IOACCT_OK`, also when the same hooks are installed again;
/// `IOACCT_ERR_ALREADY` if different hooks are installed already;
/// `IOACCT_ERR_NULL` for a NULL `hooks` or a NULL hook in it.
///
/// Threading: any thread, any time; it takes no lock.
///
/// # Safety
///
/// `hooks` is NULL or points to a readable `ioacct_hooks` whose functions
/// stay callable, with `ctx`, for the life of the process.
#[no_mangle]
pub unsafe extern "C" fn ioacct_init(hooks: *const ioacct_hooks) -> c_int {
    // SAFETY: the caller passes NULL or a readable `ioacct_hooks`.
    match unsafe { hooks.as_ref() } {
        None => ioacct_errno::IOACCT_ERR_NULL as c_int,
        Some(h) => install(h),
    }
}

/// Runs one entry point's body: in the freestanding build a panic is fatal
/// already (the panic handler), so this is a plain call; otherwise a panic
/// is caught and becomes `Err(())`.
#[cfg(feature = "freestanding")]
pub(crate) fn boundary<T>(f: impl FnOnce() -> T) -> Result<T, ()> {
    Ok(f())
}

/// See the freestanding version.
#[cfg(not(feature = "freestanding"))]
pub(crate) fn boundary<T>(f: impl FnOnce() -> T) -> Result<T, ()> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|_| ())
}

/// Calls the fatal hook with `msg`, then traps if it returns.
#[cfg(all(feature = "freestanding", not(test)))]
fn fatal(msg: &[u8]) -> ! {
    if let Some(h) = hooks() {
        if let Some(f) = h.fatal {
            // SAFETY: the embedder promised (ioacct_init) that its hooks stay
            // callable with `ctx`; `msg` is valid for `len` bytes.
            unsafe { f(h.ctx, msg.as_ptr().cast(), msg.len()) };
        }
    }
    trap()
}

#[cfg(all(feature = "freestanding", not(test)))]
fn trap() -> ! {
    loop {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `ud2` raises #UD; it touches no memory.
        unsafe {
            core::arch::asm!("ud2", options(nomem, nostack))
        };
        #[cfg(target_arch = "aarch64")]
        // SAFETY: `brk` raises a debug exception; it touches no memory.
        unsafe {
            core::arch::asm!("brk #0x1", options(nomem, nostack))
        };
        core::hint::spin_loop();
    }
}

/// A message formatted into a fixed buffer, cut at its end: the panic
/// handler must not allocate.
#[cfg(all(feature = "freestanding", not(test)))]
struct Fixed {
    buf: [u8; 256],
    len: usize,
}

#[cfg(all(feature = "freestanding", not(test)))]
impl core::fmt::Write for Fixed {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let room = self.buf.len() - self.len;
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

#[cfg(all(feature = "freestanding", not(test)))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    use core::fmt::Write;
    let mut m = Fixed {
        buf: [0; 256],
        len: 0,
    };
    let _ = write!(m, "libioacct: {info}");
    let len = m.len;
    fatal(&m.buf[..len])
}

/// The global allocator of the freestanding build: the embedder's hooks.
#[cfg(feature = "freestanding")]
struct HookAlloc;

#[cfg(feature = "freestanding")]
// SAFETY: every block comes from the embedder's allocator with the layout's
// size and alignment, and goes back to its `free` with the same layout;
// before the hooks are installed, `alloc` returns NULL (an allocation
// failure), never an invalid pointer.
unsafe impl core::alloc::GlobalAlloc for HookAlloc {
    unsafe fn alloc(&self, layout: core::alloc::Layout) -> *mut u8 {
        match hooks().and_then(|h| h.alloc.map(|f| (f, h.ctx))) {
            // SAFETY: the embedder's allocator, called as ioacct_hooks documents.
            Some((f, ctx)) => unsafe { f(ctx, layout.size(), layout.align()) }.cast(),
            None => core::ptr::null_mut(),
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: core::alloc::Layout) {
        if let Some((f, ctx)) = hooks().and_then(|h| h.free.map(|f| (f, h.ctx))) {
            // SAFETY: `ptr` came from `alloc` above with this layout.
            unsafe { f(ctx, ptr.cast(), layout.size(), layout.align()) }
        }
    }
}

#[cfg(feature = "freestanding")]
#[global_allocator]
static ALLOC: HookAlloc = HookAlloc;

// The sysroot's `alloc` is precompiled with `panic = "unwind"`, so a few of
// its functions (`String::from_utf8_lossy`, `format`) carry cleanup landing
// pads that name `_Unwind_Resume` and the personality routine. With
// `panic = "abort"` nothing ever unwinds, so these are unreachable; they are
// defined here (and made local by `cargo xtask capi`'s partial link) so that
// the library asks the embedder for no unwinder.

/// Unreachable: nothing unwinds in the freestanding build.
#[cfg(all(feature = "freestanding", not(test)))]
#[no_mangle]
extern "C" fn _Unwind_Resume() -> ! {
    fatal(b"libioacct: _Unwind_Resume called, but nothing unwinds (panic = abort)")
}

/// Unreachable: nothing unwinds in the freestanding build.
#[cfg(all(feature = "freestanding", not(test)))]
#[no_mangle]
extern "C" fn rust_eh_personality() -> ! {
    fatal(b"libioacct: rust_eh_personality called, but nothing unwinds (panic = abort)")
}
