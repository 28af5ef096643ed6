//! `/proc/iomem` and `/proc/ioports`: the kernel's resource trees.
//!
//! The kernel (`kernel/resource.c`, `r_show`) writes one line per resource:
//! two spaces of indentation per nesting level, the first and last address
//! in hex zero-padded to a width (4 for ports, 8 for memory; wider values
//! are written whole), ` : `, and the name as the driver gave it (spaces,
//! and in principle any byte). `ffff-ffff` style one-unit entries are
//! legal. Read without `CAP_SYS_ADMIN`, every address is printed as 0; the
//! reader detects that ([`all_zero`]) so that the caller records a gap
//! instead of checking nonsense.

use std::path::Path;
use std::sync::Arc;

use super::read::{escape, lines};
use super::{HostError, Resource};
use crate::span::Span;

/// Deepest nesting accepted. The kernel's trees are a handful of levels
/// deep (bus, bridge, function, driver); a deeper file is not the kernel's.
pub const MAX_DEPTH: u32 = 32;

/// Parses a resource tree. `max` is the largest address the space allows
/// (`0xffff_ffff_ffff_ffff` for memory, `0xffff_ffff` for ports).
pub fn parse(path: &Path, data: &[u8], max: u64) -> Result<Vec<Resource>, HostError> {
    let file = Arc::new(path.to_path_buf());
    let err = |line: u32, why: String| HostError::Parse {
        path: path.to_path_buf(),
        line,
        why,
    };
    let mut out: Vec<Resource> = Vec::new();
    // The last entry seen at each depth: the parent of the next deeper one.
    let mut open: Vec<usize> = Vec::new();
    for line in lines(path, data)? {
        let text = line.text;
        if text.is_empty() {
            return Err(err(line.no, "an empty line".into()));
        }
        let indent = text.iter().take_while(|&&b| b == b' ').count();
        if indent % 2 != 0 {
            return Err(err(
                line.no,
                format!("{indent} spaces of indentation: the kernel writes two per level"),
            ));
        }
        let depth = u32::try_from(indent / 2).unwrap_or(u32::MAX);
        if depth > MAX_DEPTH {
            return Err(err(
                line.no,
                format!("nested {depth} levels deep (at most {MAX_DEPTH} accepted)"),
            ));
        }
        let depth_us = indent / 2;
        if depth_us > open.len() {
            return Err(err(
                line.no,
                format!(
                    "nested {depth} levels deep under an entry at level {}",
                    open.len().saturating_sub(1)
                ),
            ));
        }
        let body = &text[indent..];
        let sep = find(body, b" : ").ok_or_else(|| {
            err(
                line.no,
                "not `START-END : NAME` (no ` : ` separator)".into(),
            )
        })?;
        let range = &body[..sep];
        let name = &body[sep + 3..];
        let dash = range
            .iter()
            .position(|&b| b == b'-')
            .ok_or_else(|| err(line.no, "not `START-END` (no `-`)".into()))?;
        let start = hex(&range[..dash]).map_err(|why| err(line.no, format!("start: {why}")))?;
        let end = hex(&range[dash + 1..]).map_err(|why| err(line.no, format!("end: {why}")))?;
        if start > end {
            return Err(err(line.no, format!("start {start:#x} after end {end:#x}")));
        }
        if end > max {
            return Err(err(
                line.no,
                format!("end {end:#x} beyond the space's last address {max:#x}"),
            ));
        }
        open.truncate(depth_us);
        let parent = open.last().copied();
        let idx = out.len();
        out.push(Resource {
            start,
            end,
            name: escape(name),
            depth,
            parent,
            span: Span::new(file.clone(), line.no, 0),
        });
        open.push(idx);
    }
    Ok(out)
}

/// True when the file is what an unprivileged reader sees: more than one
/// entry, every address 0.
pub fn all_zero(entries: &[Resource]) -> bool {
    entries.len() > 1 && entries.iter().all(|r| r.start == 0 && r.end == 0)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn hex(digits: &[u8]) -> Result<u64, String> {
    if digits.is_empty() {
        return Err("no hex digits".into());
    }
    if digits.len() > 16 {
        return Err(format!("{} hex digits (at most 16)", digits.len()));
    }
    let mut v: u64 = 0;
    for &b in digits {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => return Err(format!("`{}` is not hex", escape(digits))),
        };
        v = (v << 4) | u64::from(d);
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Vec<Resource>, HostError> {
        parse(Path::new("proc/ioports"), s.as_bytes(), 0xffff_ffff)
    }

    #[test]
    fn nests_by_two_spaces() {
        let r = p("0000-0cf7 : PCI Bus 0000:00\n  03f8-03ff : serial\n0cf8-0cff : PCI conf1\n  ffff-ffff : pnp 00:05\n    ffff-ffff : pnp 00:05\n")
            .expect("parses");
        assert_eq!(r.len(), 5);
        assert_eq!(
            (r[1].start, r[1].end, r[1].depth, r[1].parent),
            (0x3f8, 0x3ff, 1, Some(0))
        );
        assert_eq!(r[1].name, "serial");
        assert_eq!(r[2].parent, None);
        assert_eq!(
            (r[4].start, r[4].end, r[4].parent),
            (0xffff, 0xffff, Some(3))
        );
        assert_eq!(r[4].span.line, 5);
    }

    #[test]
    fn wide_memory_addresses_and_names_with_spaces() {
        let r = parse(
            Path::new("proc/iomem"),
            b"4000000000-7fffffffff : PCI Bus 0000:00\n  4000000000-400007ffff : 0000:00:01.0\n    4000000000-400007ffff : virtio-pci-modern\nfee00000-fee00fff : Local APIC\n",
            u64::MAX,
        )
        .expect("parses");
        assert_eq!(r[0].end, 0x7f_ffff_ffff);
        assert_eq!(r[2].parent, Some(1));
        assert_eq!(r[3].name, "Local APIC");
    }

    #[test]
    fn refuses_what_the_kernel_does_not_write() {
        for (text, line) in [
            ("0000-0cf7 : a\n   0020-0021 : odd indent\n", 2),
            ("0000-0cf7 : a\n    0020-0021 : skips a level\n", 2),
            ("0000-0cf7 PCI Bus\n", 1),
            ("00g0-0cf7 : x\n", 1),
            ("0cf7-0000 : backwards\n", 1),
            ("0000-0001 : a\n\n", 2),
            ("0000-00000000000000001 : too wide\n", 1),
            ("0000-0cf7 : ok\n0cf8-0c", 2),
        ] {
            match p(text) {
                Err(HostError::Parse { line: l, .. }) => assert_eq!(l, line, "{text:?}"),
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn zero_addresses_are_detected() {
        let r = p("0000-0000 : PCI Bus 0000:00\n  0000-0000 : dma1\n").expect("parses");
        assert!(all_zero(&r));
        let r = p("0000-0cf7 : PCI Bus 0000:00\n  0000-001f : dma1\n").expect("parses");
        assert!(!all_zero(&r));
    }

    #[test]
    fn depth_is_capped() {
        let mut s = String::new();
        for d in 0..40 {
            s.push_str(&" ".repeat(d * 2));
            s.push_str("0000-0001 : x\n");
        }
        assert!(matches!(p(&s), Err(HostError::Parse { line: 34, .. })));
    }
}
