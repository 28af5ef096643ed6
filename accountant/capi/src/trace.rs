//! The trace-line parser for C programs (the C replay, `c/replay.c`): the
//! accountant's own parser ([`accountant::ops::parse_op`]) behind a C
//! struct, so that the trace language of SPEC section 3 has one parser. The
//! C program reads the lines, dispatches each op to the public C calls and
//! formats the output from their results.
//!
//! Numbers of any size parse. One that does not fit in 64 bits cannot be
//! passed to a C call, so for such an op the parser works out SPEC's level-1
//! error itself, in the order the executor checks (domain, then range or
//! port or unit), and returns it in `ioacct_op.precheck`; every other check
//! is the C calls' own.

use alloc::boxed::Box;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::ffi::{c_char, c_int};

use accountant::num::{Num, RawRange};
use accountant::ops::{parse_op, Op};
use accountant::{DomId, Error, Mode, Space};

use crate::errno::ioacct_errno::*;
use crate::{space_value, IOACCT_FORCE, IOACCT_GRANT_SHARED};

/// The longest trace line, in bytes without its newline (SPEC section 3).
pub const IOACCT_TRACE_MAX_LINE: usize = 4194304;

/// `boot OPTIONS…`: options in `boot_options`.
pub const IOACCT_OP_BOOT: u32 = 0;
/// `create D`.
pub const IOACCT_OP_CREATE: u32 = 1;
/// `destroy D`.
pub const IOACCT_OP_DESTROY: u32 = 2;
/// `reserve SPACE R`.
pub const IOACCT_OP_RESERVE: u32 = 3;
/// `unreserve SPACE R`.
pub const IOACCT_OP_UNRESERVE: u32 = 4;
/// `hvmap SPACE R`.
pub const IOACCT_OP_HVMAP: u32 = 5;
/// `hvunmap SPACE R`.
pub const IOACCT_OP_HVUNMAP: u32 = 6;
/// `grant D SPACE R MODE [force]`: `flags` has `IOACCT_GRANT_SHARED`, `IOACCT_FORCE`.
pub const IOACCT_OP_GRANT: u32 = 7;
/// `revoke D SPACE R [force]`: `flags` may have `IOACCT_FORCE`.
pub const IOACCT_OP_REVOKE: u32 = 8;
/// `map D iomem R`.
pub const IOACCT_OP_MAP: u32 = 9;
/// `unmap D iomem R`.
pub const IOACCT_OP_UNMAP: u32 = 10;
/// `bind D irq R`.
pub const IOACCT_OP_BIND: u32 = 11;
/// `unbind D irq R`.
pub const IOACCT_OP_UNBIND: u32 = 12;
/// `access D ioport P [W]`: port in `first`, width in `width`.
pub const IOACCT_OP_ACCESS: u32 = 13;
/// `query SPACE U`: unit in `first`.
pub const IOACCT_OP_QUERY: u32 = 14;
/// `check`.
pub const IOACCT_OP_CHECK: u32 = 15;

/// One parsed trace op. Numbers are saturated to `UINT64_MAX`; when one did
/// not fit, `precheck` holds the op's level-1 error (else 0).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ioacct_op {
    /// `IOACCT_OP_*`.
    pub kind: u32,
    /// `IOACCT_IOPORT`, `IOACCT_IOMEM` or `IOACCT_IRQ` (map/unmap: iomem;
    /// bind/unbind: irq; access: ioport).
    pub space: u32,
    /// Domain.
    pub dom: u64,
    /// First unit (port for access, unit for query).
    pub first: u64,
    /// Last unit (inclusive).
    pub last: u64,
    /// Access width.
    pub width: u64,
    /// `IOACCT_GRANT_SHARED`, `IOACCT_FORCE`.
    pub flags: u32,
    /// 0, or the error the op answers without a call (a number of more than
    /// 64 bits); its details are in `ioacct_trace_message`.
    pub precheck: c_int,
    /// For `boot`: the options, NUL-terminated, owned by the parser and valid
    /// until its next call; NULL otherwise.
    pub boot_options: *const c_char,
    /// Length of `boot_options` without the NUL.
    pub boot_options_len: usize,
}

const MAGIC: u64 = 0x696f_6163_6374_2e74; // "ioacct.t"
const DEAD: u64 = 0x6465_6164_2e2e_2e74;

/// A trace parser: counts lines (for the byte-order mark of the first) and
/// keeps the last message. Opaque: [`ioacct_trace_parser_new`],
/// [`ioacct_trace_parser_free`].
pub struct ioacct_trace_parser {
    magic: u64,
    lines: usize,
    message: Message,
    boot: Vec<u8>,
}

crate::handle::handle!(ioacct_trace_parser, MAGIC, DEAD);

enum Message {
    None,
    Malformed(String),
    Pre(Error),
}

/// Makes a parser in `*out`. Errors: `NO_HOOKS`, `NULL`.
///
/// # Safety
///
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ioacct_trace_parser_new(out: *mut *mut ioacct_trace_parser) -> c_int {
    if crate::hooks::hooks().is_none() {
        return IOACCT_ERR_NO_HOOKS as c_int;
    }
    if out.is_null() {
        return IOACCT_ERR_NULL as c_int;
    }
    // SAFETY: `out` is non-NULL (checked above) and writable (the contract).
    unsafe {
        crate::handle::publish(out, || {
            Ok(Box::new(ioacct_trace_parser {
                magic: MAGIC,
                lines: 0,
                message: Message::None,
                boot: Vec::new(),
            }))
        })
    }
}

/// Frees a parser (NULL: nothing); `IOACCT_ERR_BAD_HANDLE` for a pointer
/// that is not a live parser.
///
/// # Safety
///
/// `p` is NULL or a live parser, not freed before.
#[no_mangle]
pub unsafe extern "C" fn ioacct_trace_parser_free(p: *mut ioacct_trace_parser) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { crate::handle::release(p) }
}

fn too_large(n: &Num) -> Option<Error> {
    n.get().is_none().then_some(Error::TooLarge)
}

fn dom_err(n: &Num) -> Option<Error> {
    match n.get() {
        None => Some(Error::TooLarge),
        Some(v) => DomId::new(v).err(),
    }
}

fn big(r: &RawRange) -> bool {
    r.first.get().is_none() || r.last.get().is_none()
}

/// The level-1 error of an op with a number of more than 64 bits, in the
/// executor's order; `None` when every number fits.
fn precheck(op: &Op) -> Option<Error> {
    let range = |d: Option<&Num>, s: Space, r: &RawRange| -> Option<Error> {
        let any_big = d.is_some_and(|d| d.get().is_none()) || big(r);
        if !any_big {
            return None;
        }
        d.and_then(dom_err).or_else(|| r.check(s).err())
    };
    match op {
        Op::Boot(_) | Op::Check => None,
        Op::Create(d) | Op::Destroy(d) => too_large(d),
        Op::Reserve(s, r) | Op::Unreserve(s, r) | Op::HvMap(s, r) | Op::HvUnmap(s, r) => {
            range(None, *s, r)
        }
        Op::Grant {
            dom,
            space,
            range: r,
            ..
        }
        | Op::Revoke {
            dom,
            space,
            range: r,
            ..
        } => range(Some(dom), *space, r),
        Op::Map(d, r) | Op::Unmap(d, r) => range(Some(d), Space::IoMem, r),
        Op::Bind(d, r) | Op::Unbind(d, r) => range(Some(d), Space::Irq, r),
        Op::Access { dom, port, .. } => {
            if dom.get().is_none() || port.get().is_none() {
                dom_err(dom).or_else(|| too_large(port))
            } else {
                None
            }
        }
        Op::Query(_, u) => too_large(u),
    }
}

fn fill(op: &Op) -> ioacct_op {
    let mut o = ioacct_op {
        kind: IOACCT_OP_CHECK,
        space: 0,
        dom: 0,
        first: 0,
        last: 0,
        width: 0,
        flags: 0,
        precheck: 0,
        boot_options: core::ptr::null(),
        boot_options_len: 0,
    };
    let range = |o: &mut ioacct_op, s: Space, r: &RawRange| {
        o.space = space_value(s);
        o.first = r.first.saturated();
        o.last = r.last.saturated();
    };
    match op {
        Op::Boot(_) => o.kind = IOACCT_OP_BOOT,
        Op::Create(d) | Op::Destroy(d) => {
            o.kind = if matches!(op, Op::Create(_)) {
                IOACCT_OP_CREATE
            } else {
                IOACCT_OP_DESTROY
            };
            o.dom = d.saturated();
        }
        Op::Reserve(s, r) | Op::Unreserve(s, r) | Op::HvMap(s, r) | Op::HvUnmap(s, r) => {
            o.kind = match op {
                Op::Reserve(..) => IOACCT_OP_RESERVE,
                Op::Unreserve(..) => IOACCT_OP_UNRESERVE,
                Op::HvMap(..) => IOACCT_OP_HVMAP,
                _ => IOACCT_OP_HVUNMAP,
            };
            range(&mut o, *s, r);
        }
        Op::Grant {
            dom,
            space,
            range: r,
            mode,
            force,
        } => {
            o.kind = IOACCT_OP_GRANT;
            o.dom = dom.saturated();
            range(&mut o, *space, r);
            if *mode == Mode::Shared {
                o.flags |= IOACCT_GRANT_SHARED;
            }
            if *force {
                o.flags |= IOACCT_FORCE;
            }
        }
        Op::Revoke {
            dom,
            space,
            range: r,
            force,
        } => {
            o.kind = IOACCT_OP_REVOKE;
            o.dom = dom.saturated();
            range(&mut o, *space, r);
            if *force {
                o.flags |= IOACCT_FORCE;
            }
        }
        Op::Map(d, r) | Op::Unmap(d, r) | Op::Bind(d, r) | Op::Unbind(d, r) => {
            let (kind, s) = match op {
                Op::Map(..) => (IOACCT_OP_MAP, Space::IoMem),
                Op::Unmap(..) => (IOACCT_OP_UNMAP, Space::IoMem),
                Op::Bind(..) => (IOACCT_OP_BIND, Space::Irq),
                _ => (IOACCT_OP_UNBIND, Space::Irq),
            };
            o.kind = kind;
            o.dom = d.saturated();
            range(&mut o, s, r);
        }
        Op::Access { dom, port, width } => {
            o.kind = IOACCT_OP_ACCESS;
            o.space = space_value(Space::IoPort);
            o.dom = dom.saturated();
            o.first = port.saturated();
            o.last = o.first;
            o.width = width.saturated();
        }
        Op::Query(s, u) => {
            o.kind = IOACCT_OP_QUERY;
            o.space = space_value(*s);
            o.first = u.saturated();
            o.last = o.first;
        }
        Op::Check => o.kind = IOACCT_OP_CHECK,
    }
    o
}

/// Parses the next line of a trace (`len` bytes without its newline; call
/// it for every line, blank ones included, so that the parser knows the
/// first). Returns 1 with `*op` filled, 0 for a blank or comment-only line,
/// or `IOACCT_ERR_MALFORMED` with the reason in `ioacct_trace_message`.
/// Invalid UTF-8 is replaced, a byte-order mark on the first line skipped,
/// as the Rust replay does. Also `BAD_HANDLE`, `NULL`.
///
/// # Safety
///
/// `p` is NULL or a live parser; `line` is valid for `len` bytes (may be
/// NULL when `len` is 0); `op` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ioacct_trace_parse(
    p: *mut ioacct_trace_parser,
    line: *const u8,
    len: usize,
    op: *mut ioacct_op,
) -> c_int {
    // SAFETY: per the contract.
    let Some(h) = (unsafe { crate::handle::live_mut(p) }) else {
        return IOACCT_ERR_BAD_HANDLE as c_int;
    };
    if op.is_null() || (line.is_null() && len > 0) {
        return IOACCT_ERR_NULL as c_int;
    }
    let bytes: &[u8] = if len == 0 {
        &[]
    } else {
        // SAFETY: `line` is valid for `len` bytes.
        unsafe { core::slice::from_raw_parts(line, len) }
    };
    let hp: *mut ioacct_trace_parser = h;
    let r = crate::hooks::boundary(|| {
        // SAFETY: `hp` is `h`, unique for the call.
        let h = unsafe { &mut *hp };
        h.lines += 1;
        let bytes = match (h.lines, bytes.strip_prefix(b"\xef\xbb\xbf")) {
            (1, Some(rest)) => rest,
            _ => bytes,
        };
        let text = String::from_utf8_lossy(bytes);
        let code = text.split('#').next().unwrap_or("").trim();
        if code.is_empty() {
            h.message = Message::None;
            return Ok(None);
        }
        match parse_op(code) {
            Err(msg) => {
                h.message = Message::Malformed(msg);
                Err(())
            }
            Ok(parsed) => {
                let mut o = fill(&parsed);
                h.message = Message::None;
                if let Some(e) = precheck(&parsed) {
                    o.precheck = crate::errno::of(&e);
                    h.message = Message::Pre(e);
                }
                if let Op::Boot(_) = parsed {
                    let opts = code.trim_start().strip_prefix("boot").unwrap_or("").trim();
                    h.boot.clear();
                    h.boot.extend_from_slice(opts.as_bytes());
                    h.boot.push(0);
                    o.boot_options = h.boot.as_ptr().cast();
                    o.boot_options_len = opts.len();
                }
                Ok(Some(o))
            }
        }
    });
    match r {
        Ok(Ok(Some(o))) => {
            // SAFETY: `op` is non-NULL and writable.
            unsafe { *op = o };
            1
        }
        Ok(Ok(None)) => 0,
        Ok(Err(())) => IOACCT_ERR_MALFORMED as c_int,
        Err(()) => {
            h.message = Message::Malformed("internal error".to_string());
            IOACCT_ERR_PANIC as c_int
        }
    }
}

/// Writes the last line's message (why it is malformed, or the details of
/// its `precheck` error, which start with the SPEC code word) into `buf` as
/// `snprintf` does; returns its full length (0: none).
///
/// # Safety
///
/// `p` is NULL or a live parser; `buf` is NULL or valid for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn ioacct_trace_message(
    p: *const ioacct_trace_parser,
    buf: *mut c_char,
    len: usize,
) -> usize {
    // SAFETY: per the contract.
    let Some(h) = (unsafe { crate::handle::live(p) }) else {
        return 0;
    };
    // SAFETY: `buf` is NULL or valid for `len` bytes.
    unsafe {
        match &h.message {
            Message::None => crate::errno::write_buf(buf, len, format_args!("")),
            Message::Malformed(m) => crate::errno::write_buf(buf, len, format_args!("{m}")),
            Message::Pre(e) => crate::errno::write_buf(buf, len, format_args!("{e}")),
        }
    }
}
