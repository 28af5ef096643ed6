//! Declared sharing: the operator's statement that a resource may have more
//! than one owner. Without it, two owners are a conflict, as in the
//! accountant.
//!
//! A declaration is `SPACE:RANGE` on the command line (`--share
//! ioport:0x3f8-0x3ff`, `--share irq:16`, `--share iomem:0xfe000-0xfe00f`,
//! `--share pci:0000:01:00.0`), or one per line in a policy file
//! (`--policy FILE`):
//!
//! ```text
//! # comment
//! share irq 16
//! share ioport 0x2f8-0x2ff
//! share iomem 0xfe000-0xfe00f     # frames (4 KiB page numbers)
//! share pci 0000:01:00.0          # the function, its BARs and its line
//! ```
//!
//! Numbers are decimal or `0x` hex, ranges inclusive, as in the accountant's
//! trace language. A shared unit is granted `shared` to every guest that
//! asks for it (and to dom0 where a dom0 driver holds it), so the
//! accountant lets the owners coexist.

use std::fmt;
use std::path::{Path, PathBuf};

use accountant::num::RawRange;
use accountant::Space;

use crate::guest::{read_capped, utf8, GuestError};
use crate::pci::Bdf;

/// Largest policy file read.
pub const MAX_POLICY_BYTES: u64 = 1 << 20;

/// The declared shared resources.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Shares {
    /// Unit ranges (inclusive) per space, as declared.
    pub ranges: Vec<(Space, u64, u64)>,
    /// PCI functions declared shared.
    pub pci: Vec<Bdf>,
}

/// A declaration that does not parse.
#[derive(Debug)]
pub enum ShareError {
    /// A `--share` value or policy line that is not `SPACE RANGE`.
    Bad {
        /// Where (`--share`, or `FILE:LINE`).
        at: String,
        /// What is wrong.
        why: String,
    },
    /// The policy file could not be read.
    File(GuestError),
}

impl fmt::Display for ShareError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShareError::Bad { at, why } => write!(f, "{at}: {why}"),
            ShareError::File(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ShareError {}

impl Shares {
    /// Adds one declaration: `space` and `what` (`ioport`, `0x3f8-0x3ff`).
    pub fn declare(&mut self, space: &str, what: &str, at: &str) -> Result<(), ShareError> {
        let bad = |why: String| ShareError::Bad {
            at: at.to_string(),
            why,
        };
        if space == "pci" {
            let b = Bdf::parse(what).map_err(|e| bad(format!("`{what}`: {e}")))?;
            self.pci.push(b);
            return Ok(());
        }
        let sp = Space::from_name(space).ok_or_else(|| {
            bad(format!(
                "unknown space `{space}` (ioport, iomem, irq or pci)"
            ))
        })?;
        let r = RawRange::parse(what)
            .ok_or_else(|| bad(format!("`{what}` is not a range A-B or a unit")))?
            .check(sp)
            .map_err(|e| bad(format!("`{what}`: {e}")))?;
        self.ranges.push((sp, r.first(), r.last()));
        Ok(())
    }

    /// Adds a command-line declaration `SPACE:RANGE`.
    pub fn declare_arg(&mut self, arg: &str) -> Result<(), ShareError> {
        let (space, what) = arg.split_once(':').ok_or_else(|| ShareError::Bad {
            at: "--share".to_string(),
            why: format!("`{arg}`: expected SPACE:RANGE (ioport:0x3f8-0x3ff, irq:16, pci:01:00.0)"),
        })?;
        self.declare(space, what, "--share")
    }

    /// Reads a policy file.
    pub fn read_policy(&mut self, path: &Path) -> Result<(), ShareError> {
        let bytes = read_capped(path, MAX_POLICY_BYTES).map_err(ShareError::File)?;
        let text = utf8(path, bytes).map_err(ShareError::File)?;
        self.parse_policy(path.to_path_buf(), &text)
    }

    /// Parses a policy text (see the module docs).
    pub fn parse_policy(&mut self, path: PathBuf, text: &str) -> Result<(), ShareError> {
        for (i, line) in text.lines().enumerate() {
            let at = format!("{}:{}", path.display(), i + 1);
            let code = line.split('#').next().unwrap_or("").trim();
            if code.is_empty() {
                continue;
            }
            let words: Vec<&str> = code.split_whitespace().collect();
            match words.as_slice() {
                ["share", space, what] => self.declare(space, what, &at)?,
                _ => {
                    return Err(ShareError::Bad {
                        at,
                        why: "expected `share SPACE RANGE`".to_string(),
                    })
                }
            }
        }
        Ok(())
    }

    /// Splits `first..=last` of `space` into pieces that are wholly shared or
    /// wholly not: `(first, last, shared)` in order.
    pub fn split(&self, space: Space, first: u64, last: u64) -> Vec<(u64, u64, bool)> {
        let mut cuts: Vec<(u64, u64)> = self
            .ranges
            .iter()
            .filter(|(s, a, b)| *s == space && *a <= last && *b >= first)
            .map(|&(_, a, b)| (a.max(first), b.min(last)))
            .collect();
        if cuts.is_empty() {
            return vec![(first, last, false)];
        }
        cuts.sort_unstable();
        let mut out = Vec::new();
        let mut at = first;
        let mut done = false;
        for (a, b) in cuts {
            if done || b < at {
                continue;
            }
            let a = a.max(at);
            if a > at {
                out.push((at, a - 1, false));
            }
            out.push((a, b, true));
            match b.checked_add(1) {
                Some(n) if b < last => at = n,
                _ => done = true,
            }
        }
        if !done {
            out.push((at, last, false));
        }
        // Merge neighbours of one kind (overlapping declarations).
        let mut merged: Vec<(u64, u64, bool)> = Vec::with_capacity(out.len());
        for p in out {
            match merged.last_mut() {
                Some(m) if m.2 == p.2 && m.1.checked_add(1) == Some(p.0) => m.1 = p.1,
                _ => merged.push(p),
            }
        }
        merged
    }

    /// Whether `bdf` is declared shared.
    pub fn pci_shared(&self, bdf: &Bdf) -> bool {
        self.pci.contains(bdf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_declared_edges() {
        let mut s = Shares::default();
        s.declare_arg("ioport:0x3f8-0x3fb").expect("valid");
        s.declare_arg("ioport:0x3fa-0x3fc").expect("valid");
        assert_eq!(
            s.split(Space::IoPort, 0x3f0, 0x3ff),
            vec![
                (0x3f0, 0x3f7, false),
                (0x3f8, 0x3fc, true),
                (0x3fd, 0x3ff, false)
            ]
        );
        assert_eq!(
            s.split(Space::IoPort, 0x3f8, 0x3f9),
            vec![(0x3f8, 0x3f9, true)]
        );
        assert_eq!(s.split(Space::Irq, 1, 2), vec![(1, 2, false)]);
        s.declare_arg("ioport:0xffff").expect("valid");
        assert_eq!(
            s.split(Space::IoPort, 0xfff0, 0xffff),
            vec![(0xfff0, 0xfffe, false), (0xffff, 0xffff, true)]
        );
    }

    #[test]
    fn policy_lines_and_bad_ones() {
        let mut s = Shares::default();
        s.parse_policy(
            "p".into(),
            "# shared\nshare irq 16\n\nshare pci 01:00.0 # nic\nshare iomem 0xfe000-0xfe00f\n",
        )
        .expect("valid");
        assert_eq!(s.ranges.len(), 2);
        assert!(s.pci_shared(&Bdf::parse("0000:01:00.0").expect("bdf")));
        for bad in [
            "share irq",
            "share irq 2000",
            "share disk 1",
            "allow irq 1",
            "share pci 1:2",
        ] {
            assert!(
                matches!(
                    Shares::default().parse_policy("p".into(), bad),
                    Err(ShareError::Bad { .. })
                ),
                "{bad}"
            );
        }
        assert!(Shares::default().declare_arg("irq16").is_err());
    }
}
