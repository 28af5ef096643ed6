//! libioacct's C entry points (`accountant/capi`), called as C would call
//! them: a boot line from the input, then a sequence of calls with
//! arbitrary integers and, now and then, a NULL handle or checker. Every
//! call returns `IOACCT_OK`, `IOACCT_PENDING` or a negative error, never
//! `IOACCT_ERR_PANIC` (a panic caught at the boundary), and
//! `ioacct_check` passes after each.
#![no_main]

use capi::*;
use core::ffi::{c_char, c_void};
use core::ptr;
use libfuzzer_sys::fuzz_target;

#[path = "bytes.rs"]
mod bytes;
use bytes::Bytes;
use std::alloc::Layout;

/// Calls per input: bounds the time of one run.
const MAX_CALLS: usize = 128;

unsafe extern "C" fn alloc(_: *mut c_void, size: usize, align: usize) -> *mut c_void {
    match Layout::from_size_align(size.max(1), align) {
        // SAFETY: a non-zero size and a valid layout.
        Ok(l) => unsafe { std::alloc::alloc(l).cast() },
        Err(_) => ptr::null_mut(),
    }
}

unsafe extern "C" fn free(_: *mut c_void, p: *mut c_void, size: usize, align: usize) {
    if let Ok(l) = Layout::from_size_align(size.max(1), align) {
        // SAFETY: `p` came from `alloc` with the same size and alignment.
        unsafe { std::alloc::dealloc(p.cast(), l) }
    }
}

unsafe extern "C" fn fatal(_: *mut c_void, msg: *const c_char, len: usize) {
    // SAFETY: the library passes `len` readable bytes.
    let m = unsafe { std::slice::from_raw_parts(msg.cast::<u8>(), len) };
    panic!("fatal hook: {}", String::from_utf8_lossy(m));
}

fn ok(rc: i32, what: &str) {
    assert!(
        (-130..=1).contains(&rc),
        "{what} returned {rc} (IOACCT_ERR_PANIC is -131)"
    );
}

fuzz_target!(|data: &[u8]| {
    let hooks = ioacct_hooks {
        alloc: Some(alloc),
        free: Some(free),
        fatal: Some(fatal),
        ctx: ptr::null_mut(),
    };
    // SAFETY: valid hooks; a second call with the same hooks is a no-op.
    let rc = unsafe { ioacct_init(&hooks) };
    assert_eq!(rc, 0, "ioacct_init");
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let (line, calls) = rest.split_at(usize::from(n).min(rest.len()));
    let mut acct = ptr::null_mut();
    // SAFETY: `line` is valid for its length; `out` is writable.
    let rc = unsafe { ioacct_boot(line.as_ptr().cast(), line.len(), ptr::null(), &mut acct) };
    ok(rc, "ioacct_boot");
    if rc != 0 {
        return;
    }
    let mut checkers = Vec::new();
    let mut b = Bytes(calls);
    for _ in 0..MAX_CALLS {
        if b.0.is_empty() {
            break;
        }
        let op = b.u8();
        // One call in 32 gets a NULL handle.
        let h = if op >> 3 == 31 { ptr::null_mut() } else { acct };
        let (d, s) = (b.num(), (b.u8() % 4) as u32);
        let (first, last, flags) = (b.num(), b.num(), u32::from(b.u8() % 4));
        let no_teardown = None;
        // SAFETY: `h` is NULL or the live handle; checkers are live until
        // released below; `out` pointers are writable.
        let rc = unsafe {
            match op % 14 {
                0 => ioacct_domain_create(h, d),
                1 => ioacct_domain_destroy(h, d, no_teardown, ptr::null_mut()),
                2 => ioacct_grant(h, d, s, first, last, flags, no_teardown, ptr::null_mut()),
                3 => ioacct_revoke(h, d, s, first, last, flags, no_teardown, ptr::null_mut()),
                4 => ioacct_map(h, d, first, last),
                5 => ioacct_unmap(h, d, first, last),
                6 => ioacct_bind(h, d, first, last),
                7 => ioacct_unbind(h, d, first, last),
                8 => ioacct_reserve(h, s, first, last),
                9 => ioacct_unreserve(h, s, first, last),
                10 => ioacct_access(h, d, first, last),
                11 => {
                    let mut c = ptr::null_mut();
                    let rc = ioacct_checker_bind(h, d, &mut c);
                    if rc == 0 && !c.is_null() {
                        checkers.push(c);
                    }
                    rc
                }
                12 => {
                    let c = checkers.last().copied().unwrap_or(ptr::null_mut());
                    let _ = ioacct_port_check(c, first as u16, last as u8);
                    0
                }
                _ => match checkers.pop() {
                    Some(c) => ioacct_checker_release(c),
                    None => ioacct_checker_release(ptr::null_mut()),
                },
            }
        };
        ok(rc, "a call");
        // SAFETY: the live handle.
        let rc = unsafe { ioacct_check(acct) };
        assert_eq!(rc, 0, "invariants broken after call {op}");
    }
    for c in checkers {
        // SAFETY: live checkers, each released once.
        ok(
            unsafe { ioacct_checker_release(c) },
            "ioacct_checker_release",
        );
    }
    // SAFETY: the live handle, freed once.
    ok(unsafe { ioacct_free(acct) }, "ioacct_free");
});
