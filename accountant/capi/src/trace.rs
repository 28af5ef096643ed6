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

use accountant::num::Num;
use accountant::ops::{parse_op, Keyword, Op, Target};
use accountant::{Error, Mode, Space};

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

/// The `IOACCT_OP_…` code of each op: the one per-op line of the C
/// replay's conversion (exhaustive, so a new op does not compile without
/// its code; `every_keyword_has_its_code` checks the header has it).
const fn code(kw: Keyword) -> u32 {
    match kw {
        Keyword::Boot => IOACCT_OP_BOOT,
        Keyword::Create => IOACCT_OP_CREATE,
        Keyword::Destroy => IOACCT_OP_DESTROY,
        Keyword::Reserve => IOACCT_OP_RESERVE,
        Keyword::Unreserve => IOACCT_OP_UNRESERVE,
        Keyword::HvMap => IOACCT_OP_HVMAP,
        Keyword::HvUnmap => IOACCT_OP_HVUNMAP,
        Keyword::Grant => IOACCT_OP_GRANT,
        Keyword::Revoke => IOACCT_OP_REVOKE,
        Keyword::Map => IOACCT_OP_MAP,
        Keyword::Unmap => IOACCT_OP_UNMAP,
        Keyword::Bind => IOACCT_OP_BIND,
        Keyword::Unbind => IOACCT_OP_UNBIND,
        Keyword::Access => IOACCT_OP_ACCESS,
        Keyword::Query => IOACCT_OP_QUERY,
        Keyword::Check => IOACCT_OP_CHECK,
    }
}

/// The level-1 error of an op with a number of more than 64 bits, in the
/// executor's order; `None` when every number fits (the C calls check the
/// rest).
fn precheck(op: &Op) -> Option<Error> {
    let o = op.operands();
    if o.any_too_large() {
        o.level1()
    } else {
        None
    }
}

/// `op` as the C replay gets it: numbers saturated, the target's space and
/// units, the flags.
fn fill(op: &Op) -> ioacct_op {
    let o = op.operands();
    let mut c = ioacct_op {
        kind: code(op.keyword()),
        space: 0,
        dom: o.dom.map_or(0, Num::saturated),
        first: 0,
        last: 0,
        width: 0,
        flags: 0,
        precheck: 0,
        boot_options: core::ptr::null(),
        boot_options_len: 0,
    };
    let (space, first, last) = match o.target {
        Target::Nothing => (None, 0, 0),
        Target::Range(s, r) => (Some(s), r.first.saturated(), r.last.saturated()),
        Target::Port { port, width } => {
            c.width = width.saturated();
            (Some(Space::IoPort), port.saturated(), port.saturated())
        }
        Target::Unit(s, u) => (Some(s), u.saturated(), u.saturated()),
    };
    c.space = space.map_or(0, space_value);
    (c.first, c.last) = (first, last);
    if o.mode == Some(Mode::Shared) {
        c.flags |= IOACCT_GRANT_SHARED;
    }
    if o.force {
        c.flags |= IOACCT_FORCE;
    }
    c
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every op has its own code, the header defines it under the op's
    /// word, and the conversion of the op's example line carries it.
    #[test]
    fn every_keyword_has_its_code() {
        let header = include_str!("../include/ioacct.h");
        let mut seen = Vec::new();
        for &kw in Keyword::ALL {
            let c = code(kw);
            assert!(!seen.contains(&c), "{}: code {c} twice", kw.word());
            seen.push(c);
            let define = alloc::format!("#define IOACCT_OP_{} {c}\n", kw.word().to_uppercase());
            assert!(header.contains(&define), "header lacks `{}`", define.trim());
            let op = parse_op(kw.example()).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(fill(&op).kind, c, "{}", kw.example());
        }
    }

    /// The conversion keeps every operand: the example lines, field by field.
    #[test]
    fn fill_carries_the_operands() {
        let f = |line: &str| fill(&parse_op(line).unwrap_or_else(|e| panic!("{e}")));
        let g = f("grant 3 iomem 0x10-0x1f shared force");
        assert_eq!(
            (g.dom, g.space, g.first, g.last, g.flags),
            (
                3,
                space_value(Space::IoMem),
                0x10,
                0x1f,
                IOACCT_GRANT_SHARED | IOACCT_FORCE
            )
        );
        let a = f("access 2 ioport 0x60 4");
        assert_eq!(
            (a.dom, a.space, a.first, a.last, a.width),
            (2, space_value(Space::IoPort), 0x60, 0x60, 4)
        );
        let q = f("query irq 9");
        assert_eq!(
            (q.dom, q.space, q.first, q.last),
            (0, space_value(Space::Irq), 9, 9)
        );
        let b = f("bind 1 irq 5-6");
        assert_eq!(
            (b.space, b.first, b.last, b.flags),
            (space_value(Space::Irq), 5, 6, 0)
        );
        let big = f("revoke 1 ioport 0x10000000000000000");
        assert_eq!((big.first, big.flags), (u64::MAX, 0));
    }
}
