//! Bounded reading: every host-map file is read through here, with a size
//! cap, as bytes, and split into numbered lines.
//!
//! `/proc` and sysfs files report a length of 0, so the cap is enforced
//! while reading (`Read::take(limit + 1)`), not from metadata: a regular
//! file costs at most `limit + 1` bytes whatever it claims. Only regular
//! files are opened: a FIFO (which could block forever), a device node (a
//! hostile snapshot's symlink to `/dev/zero`, or to a device whose `open`
//! does something) and a directory are [`HostError::Read`], decided by
//! `stat` before any `open`; the open itself is non-blocking and checked
//! again with `fstat`, so a file swapped for a FIFO in between is refused
//! too. The reading itself is `bounded.rs`'s, shared with the guest
//! configurations.

use std::io;
use std::path::Path;

use super::HostError;
use crate::bounded::{read_regular, BoundedError};

/// Cap for a `/proc` file: 16 MiB. A real `/proc/iomem` is under 100 KiB; a
/// `/proc/interrupts` of a 512-CPU host is about 6 MiB. A larger file is not
/// the kernel's and is refused ([`HostError::TooLarge`]).
pub const PROC_LIMIT: u64 = 16 << 20;

/// Cap for one sysfs attribute (`resource`, `irq`, a plain-file `driver`):
/// 64 KiB. A `resource` file has 17 lines of 57 bytes.
pub const ATTR_LIMIT: u64 = 64 << 10;

/// Reads `path` whole, refusing more than `limit` bytes. `Ok(None)` when the
/// file does not exist (a gap for the caller to record).
pub fn read_capped(path: &Path, limit: u64) -> Result<Option<Vec<u8>>, HostError> {
    let read_err = |error: io::Error| HostError::Read {
        path: path.to_path_buf(),
        error,
    };
    match read_regular(path, limit) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(BoundedError::Missing(_)) => Ok(None),
        Err(BoundedError::Io(e)) => Err(read_err(e)),
        Err(BoundedError::NotAFile { dir: true }) => Err(read_err(io::Error::new(
            io::ErrorKind::IsADirectory,
            "a directory where a file was expected",
        ))),
        Err(BoundedError::NotAFile { dir: false }) => Err(read_err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file (a FIFO or device node is not opened)",
        ))),
        Err(BoundedError::TooLarge) => Err(HostError::TooLarge {
            path: path.to_path_buf(),
            limit,
        }),
    }
}

/// One line of a file, without its `\n`, with its 1-based number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Line<'a> {
    /// 1-based line number.
    pub no: u32,
    /// The bytes, without the newline.
    pub text: &'a [u8],
}

/// Splits `data` into lines. The kernel ends every line with `\n`: a last
/// line without one means the file was cut short, and that is an error
/// naming the line. A NUL byte anywhere is binary data, not the kernel's
/// text, and is an error naming its line.
pub fn lines<'a>(path: &Path, data: &'a [u8]) -> Result<Vec<Line<'a>>, HostError> {
    let mut out = Vec::new();
    let mut rest = data;
    let mut no: u32 = 0;
    while !rest.is_empty() {
        no = no.saturating_add(1);
        let (text, next, complete) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..], true),
            None => (rest, &rest[rest.len()..], false),
        };
        if text.contains(&0) {
            return Err(HostError::Parse {
                path: path.to_path_buf(),
                line: no,
                why: "binary data (a NUL byte) where the kernel writes text".into(),
            });
        }
        if !complete {
            return Err(HostError::Parse {
                path: path.to_path_buf(),
                line: no,
                why: "the file ends inside this line (truncated?)".into(),
            });
        }
        out.push(Line { no, text });
        rest = next;
    }
    Ok(out)
}

/// A name for display: valid UTF-8 kept, control bytes and invalid UTF-8
/// escaped as `\xNN` (the kernel prints resource names raw, and a driver may
/// put anything in one).
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("\\x{b:02x}"));
                }
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_control_bytes_and_invalid_utf8() {
        assert_eq!(escape(b"PCI Bus 0000:00"), "PCI Bus 0000:00");
        assert_eq!(escape(b"a\x07b"), "a\\x07b");
        assert_eq!(escape(b"x\xffy"), "x\\xffy");
        assert_eq!(escape("d\u{e9}j\u{e0}".as_bytes()), "d\u{e9}j\u{e0}");
        assert_eq!(escape(b"tab\there"), "tab\\x09here");
    }

    #[test]
    fn lines_are_numbered_and_must_end() {
        let p = Path::new("f");
        let ls = lines(p, b"a\nb\n").expect("two lines");
        assert_eq!(ls.len(), 2);
        assert_eq!(ls[1], Line { no: 2, text: b"b" });
        assert!(matches!(
            lines(p, b"a\nb"),
            Err(HostError::Parse { line: 2, .. })
        ));
        assert!(matches!(
            lines(p, b"a\n\x00\x01\n"),
            Err(HostError::Parse { line: 2, .. })
        ));
        assert_eq!(lines(p, b"").expect("empty").len(), 0);
    }
}
