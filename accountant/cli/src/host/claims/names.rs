//! Lookups on the host map: the frames it calls RAM, its interrupt lines,
//! the physical address width, and the host's own name for a unit.

use accountant::Space;

use super::{device_name, entry_bdf, frames, merged};
use crate::host::{BarKind, HostMap, IrqLine, Resource};
use crate::span::Span;

impl HostMap {
    fn tree(&self, space: Space) -> Option<&[Resource]> {
        match space {
            Space::IoMem => self.iomem.as_deref(),
            Space::IoPort => self.ioports.as_deref(),
            Space::Irq => None,
        }
    }

    /// Entries of `/proc/iomem` whose name starts with `prefix` (`IOAPIC `).
    pub(in crate::host) fn named_entries(&self, prefix: &str) -> Vec<&Resource> {
        self.iomem
            .iter()
            .flatten()
            .filter(|r| r.name.starts_with(prefix))
            .collect()
    }

    /// Interrupt rows that are lines, with their GSI.
    pub fn lines(&self) -> Vec<(u32, &IrqLine)> {
        self.interrupts
            .iter()
            .flatten()
            .filter_map(|r| Some((r.gsi?, r)))
            .collect()
    }

    /// The line a Linux IRQ number (sysfs `irq`) is: its row's GSI; `None`
    /// when the row is an MSI. Without `/proc/interrupts`, or when no row
    /// shows it, the number itself.
    pub fn line_of_irq(&self, irq: u32) -> Option<u32> {
        match self.interrupts.as_ref() {
            None => Some(irq),
            Some(rows) => match rows.binary_search_by_key(&irq, |r| r.irq) {
                Ok(i) => rows.get(i).and_then(|r| r.gsi),
                Err(_) => Some(irq),
            },
        }
    }

    /// The largest frame the physical address width allows, when known.
    pub fn max_frame(&self) -> Option<u64> {
        let bits = self.phys_bits?;
        Some(((1u128 << bits) / 4096 - 1).min(u128::from(u64::MAX)) as u64)
    }

    /// Frame ranges (4 KiB, inclusive) that the host map calls RAM: every
    /// `System RAM` entry, a frame counted when any byte of it is RAM;
    /// sorted and merged.
    pub fn ram_frames(&self) -> Vec<(u64, u64)> {
        let v: Vec<(u64, u64)> = self
            .iomem
            .iter()
            .flatten()
            .filter(|r| r.name == "System RAM")
            .filter_map(|r| frames(r.start, r.end))
            .collect();
        merged(v)
    }

    /// The deepest entry of `tree` overlapping `[lo, hi]`.
    pub(super) fn deepest(tree: &[Resource], lo: u64, hi: u64) -> Option<&Resource> {
        let mut best: Option<&Resource> = None;
        for r in tree {
            if r.start <= hi && lo <= r.end && best.is_none_or(|b| r.depth > b.depth) {
                best = Some(r);
            }
        }
        best
    }

    /// An entry's display name: a driver's entry under a function's is
    /// `0000:00:19.0 e1000e`.
    pub(super) fn display_name(tree: &[Resource], r: &Resource) -> String {
        match r.parent.and_then(|p| tree.get(p)) {
            Some(p) if entry_bdf(&p.name).is_some() => format!("{} {}", p.name, r.name),
            _ => r.name.clone(),
        }
    }

    /// The host's own name for a unit: the deepest map entry covering it
    /// (a frame, a port), or the handlers of a line (`ttyS0`); from sysfs
    /// (`0000:00:19.0 e1000e`) when `/proc` does not show it. A linear scan
    /// of the map: meant for diagnostics, not for every unit.
    pub fn name_of(&self, space: Space, unit: u64) -> Option<(String, Option<Span>)> {
        let (lo, hi) = match space {
            Space::IoMem => (unit.checked_mul(4096)?, unit.checked_mul(4096)? | 0xfff),
            Space::IoPort => (unit, unit),
            Space::Irq => {
                let line = u32::try_from(unit).ok()?;
                if let Some((_, r)) = self.lines().into_iter().find(|(g, _)| *g == line) {
                    let name = if r.actions.is_empty() {
                        r.chip.clone()
                    } else {
                        r.actions.join(", ")
                    };
                    return Some((name, Some(r.span.clone())));
                }
                let d = self
                    .pci
                    .iter()
                    .flatten()
                    .find(|d| d.irq.and_then(|i| self.line_of_irq(i)) == Some(line))?;
                return Some((device_name(d), Some(d.span.clone())));
            }
        };
        if let Some(tree) = self.tree(space) {
            if let Some(r) = HostMap::deepest(tree, lo, hi) {
                return Some((HostMap::display_name(tree, r), Some(r.span.clone())));
            }
        }
        let want = if space == Space::IoMem {
            BarKind::Mem
        } else {
            BarKind::Io
        };
        self.pci.iter().flatten().find_map(|d| {
            d.bars
                .iter()
                .find(|b| b.kind == want && b.start <= hi && lo <= b.end)
                .map(|b| {
                    let mut span = d.span.clone();
                    span.line = u32::from(b.index) + 1;
                    (device_name(d), Some(span))
                })
        })
    }
}
