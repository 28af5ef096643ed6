//! A synthetic fleet for the `check.scale` benchmark row: many guest
//! configurations against a host map of many PCI functions, generated in
//! memory, so that the bench measures parsing and judging and not the disk.
//!
//! The host: `devices` functions on buses from 0x10 (one 16 KiB memory BAR
//! and a legacy line each), half bound to `e1000e` (dom0's), half to
//! `pciback`; `/proc/iomem` shows 3 GiB of `System RAM` and each BAR.
//! Guest `i` (an xl.cfg text): `ranges` entries — one port range
//! (`0x1000 + 4i`), one PCI function (host function `i` when it exists and
//! is `pciback`'s, else none), the rest `iomem` ranges of 16 pages, each
//! guest's disjoint from every other's. Every 100th guest repeats its
//! predecessor's first iomem range, so the judge also writes findings.

use std::path::PathBuf;
use std::sync::Arc;

use crate::guest::{self, Guest, GuestError};
use crate::host::{Bar, BarKind, HostMap, HvReserve, PciDevice, Resource};
use crate::judge::{self, Input, JudgeError, Outcome};
use crate::pci::Bdf;
use crate::share::Shares;
use crate::span::Span;

fn device_bdf(i: usize) -> Bdf {
    // 4,096 functions from bus 0x10: 256 per bus (32 devices × 8 functions).
    Bdf {
        seg: 0,
        bus: (0x10 + (i >> 8)) as u8,
        dev: ((i >> 3) & 0x1f) as u8,
        func: (i & 7) as u8,
    }
}

fn bar_base(i: usize) -> u64 {
    0x80_0000_0000 + (i as u64) * 0x4000
}

/// The host map of `devices` PCI functions (at most 61,440).
pub fn host(devices: usize) -> HostMap {
    let devices = devices.min(240 * 256);
    let file = Arc::new(PathBuf::from("synthetic/proc/iomem"));
    let mut iomem = vec![Resource {
        start: 0x10_0000,
        end: 0xbfff_ffff,
        name: "System RAM".to_string(),
        depth: 0,
        parent: None,
        span: Span::new(file.clone(), 1, 1),
    }];
    let mut pci = Vec::with_capacity(devices);
    for i in 0..devices {
        let bdf = device_bdf(i);
        let start = bar_base(i);
        let line = u32::try_from(i + 2).unwrap_or(u32::MAX);
        iomem.push(Resource {
            start,
            end: start + 0x3fff,
            name: bdf.to_string(),
            depth: 0,
            parent: None,
            span: Span::new(file.clone(), line, 1),
        });
        pci.push(PciDevice {
            bdf,
            bars: vec![Bar {
                index: 0,
                start,
                end: start + 0x3fff,
                kind: BarKind::Mem,
            }],
            irq: Some(16 + (i as u32 % 200)),
            driver: Some(if i % 2 == 0 { "e1000e" } else { "pciback" }.to_string()),
            iommu_group: None,
            span: Span::new(
                Arc::new(PathBuf::from(format!(
                    "synthetic/sys/bus/pci/devices/{bdf}/resource"
                ))),
                1,
                0,
            ),
        });
    }
    HostMap {
        iomem: Some(iomem),
        pci: Some(pci),
        phys_bits: Some(46),
        ..HostMap::default()
    }
}

/// The xl.cfg text of guest `i` of `guests`, with `ranges` entries.
pub fn guest_text(i: usize, ranges: usize, devices: usize) -> String {
    let mut iomem = Vec::with_capacity(ranges);
    let iomem_count = ranges.saturating_sub(2).max(1);
    let first_frame = |g: usize, k: usize| 0x1_0000_0000u64 + ((g * 64 + k) as u64) * 16;
    for k in 0..iomem_count {
        let g = if k == 0 && i % 100 == 99 { i - 1 } else { i };
        iomem.push(format!("\"{:x},10\"", first_frame(g, k)));
    }
    let pci = if i < devices && i % 2 == 1 {
        format!("pci = [ \"{}\" ]\n", device_bdf(i))
    } else {
        String::new()
    };
    format!(
        "name = \"guest{i}\"\nmemory = 512\niomem = [ {} ]\nioports = [ \"{:x}-{:x}\" ]\n{pci}",
        iomem.join(", "),
        0x1000 + 4 * i,
        0x1000 + 4 * i + 3
    )
}

/// Every guest's text.
pub fn guest_texts(guests: usize, ranges: usize, devices: usize) -> Vec<String> {
    (0..guests)
        .map(|i| guest_text(i, ranges, devices))
        .collect()
}

/// Why a scale run failed.
#[derive(Debug)]
pub enum ScaleError {
    /// A generated config did not parse.
    Guest(GuestError),
    /// The judge refused to run.
    Judge(JudgeError),
}

impl std::fmt::Display for ScaleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScaleError::Guest(e) => write!(f, "{e}"),
            ScaleError::Judge(e) => write!(f, "{e}"),
        }
    }
}

/// Parses the texts and judges them against `host`: what `ioacct check`
/// does after reading its files.
pub fn check(texts: &[String], host: &HostMap) -> Result<Outcome, ScaleError> {
    let guests: Vec<Guest> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| guest::parse(Arc::new(PathBuf::from(format!("guest{i}.cfg"))), t.clone()))
        .collect::<Result<_, _>>()
        .map_err(ScaleError::Guest)?;
    judge::check(Input {
        guests: &guests,
        host: Some(host),
        hv: &HvReserve::default(),
        shares: &Shares::default(),
        keep_trace: false,
    })
    .map_err(ScaleError::Judge)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Rule;

    #[test]
    fn a_small_fleet_has_exactly_its_planted_findings() {
        let host = host(64);
        let texts = guest_texts(300, 64, 64);
        let o = check(&texts, &host).unwrap_or_else(|e| panic!("{e}"));
        let mut pages: Vec<&str> = o
            .findings
            .iter()
            .filter(|f| f.rule == Rule::GuestPage)
            .filter_map(|f| f.primary.as_ref().and_then(|s| s.file.to_str()))
            .collect();
        pages.sort_unstable();
        assert_eq!(pages, ["guest199.cfg", "guest299.cfg", "guest99.cfg"]);
        assert_eq!(o.findings.len(), 3, "{:?}", o.findings);
        // A create and at least one grant per entry of every guest ran.
        assert!(o.ops > 300 * 64, "{} ops", o.ops);
    }
}
