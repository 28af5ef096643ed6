//! What the host map says about PCI functions: each function's resources
//! (from sysfs, or from `/proc` without it), memory BARs of two functions
//! in one page, IOMMU groups, and the ECAM windows.

use std::collections::BTreeMap;

use accountant::Space;

use super::{assignable_name, entry_bdf, frames, merged, units};
use crate::host::{BarKind, Claim, HostMap};
use crate::pci::Bdf;
use crate::span::Span;

/// A PCI function's resources, from sysfs or, without it, from `/proc`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionResources {
    /// The function.
    pub bdf: Bdf,
    /// Frame ranges of its memory BARs and ROM (inclusive), sorted and
    /// joined where they touch.
    pub frames: Vec<(u64, u64)>,
    /// Port ranges of its I/O BARs (inclusive), sorted and joined.
    pub ports: Vec<(u64, u64)>,
    /// Its legacy line (GSI), when sysfs gives one that is a line.
    pub line: Option<u32>,
    /// The bound driver, from sysfs or from a driver's `/proc` entry.
    pub driver: Option<String>,
    /// Its IOMMU group, from sysfs.
    pub iommu_group: Option<u32>,
    /// Where the host map shows it (sysfs `resource`, or its first `/proc` entry).
    pub span: Option<Span>,
}

/// A frame holding memory BARs of more than one PCI function: giving the
/// functions to different owners gives each the other's registers (Xen's
/// XSA-461 class).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedPage {
    /// The frame.
    pub frame: u64,
    /// The functions with a BAR in it, sorted.
    pub devices: Vec<Bdf>,
}

impl HostMap {
    /// The `PCI MMCONFIG`/`PCI ECAM` windows (PCI configuration space by
    /// memory), as frame claims with the host's names.
    pub fn ecam_windows(&self) -> Vec<Claim> {
        self.iomem
            .iter()
            .flatten()
            .filter(|r| r.name.starts_with("PCI MMCONFIG") || r.name.starts_with("PCI ECAM"))
            .filter_map(Claim::iomem_entry)
            .collect()
    }

    /// IOMMU groups and their functions (sysfs), by group number.
    pub fn iommu_groups(&self) -> BTreeMap<u32, Vec<Bdf>> {
        let mut m: BTreeMap<u32, Vec<Bdf>> = BTreeMap::new();
        for d in self.pci.iter().flatten() {
            if let Some(g) = d.iommu_group {
                m.entry(g).or_default().push(d.bdf);
            }
        }
        m
    }

    /// The resources of the PCI function `bdf`: from sysfs when it was read
    /// (and has the function), else from its `/proc` entries. `None` when
    /// the host map does not show the function at all.
    pub fn function_resources(&self, bdf: &Bdf) -> Option<FunctionResources> {
        if let Some(d) = self.device(bdf) {
            let mut fr = FunctionResources {
                bdf: *bdf,
                frames: Vec::new(),
                ports: Vec::new(),
                line: d.irq.and_then(|i| self.line_of_irq(i)),
                driver: d.driver.clone(),
                iommu_group: d.iommu_group,
                span: Some(d.span.clone()),
            };
            for b in d.bars.iter().filter(|b| b.index <= 6) {
                match b.kind {
                    BarKind::Mem => fr.frames.extend(frames(b.start, b.end)),
                    BarKind::Io => fr.ports.push((b.start, b.end)),
                }
            }
            fr.frames = merged(fr.frames);
            fr.ports = merged(fr.ports);
            return Some(fr);
        }
        let key = bdf.to_string();
        let mut fr = FunctionResources {
            bdf: *bdf,
            frames: Vec::new(),
            ports: Vec::new(),
            line: None,
            driver: self.proc_driver(bdf),
            iommu_group: None,
            span: None,
        };
        for (space, tree) in [(Space::IoMem, &self.iomem), (Space::IoPort, &self.ioports)] {
            for r in tree.iter().flatten().filter(|r| r.name == key) {
                fr.span.get_or_insert_with(|| r.span.clone());
                if let Some(u) = units(space, r) {
                    match space {
                        Space::IoMem => fr.frames.push(u),
                        _ => fr.ports.push(u),
                    }
                }
            }
        }
        fr.frames = merged(fr.frames);
        fr.ports = merged(fr.ports);
        fr.span.is_some().then_some(fr)
    }

    /// The driver `/proc` shows for a function: the name of the first entry
    /// under one of its entries. O(entries).
    fn proc_driver(&self, bdf: &Bdf) -> Option<String> {
        self.proc_drivers().remove(bdf)
    }

    /// [`proc_driver`](HostMap::proc_driver) for every function at once, in
    /// one pass over both trees. An assignable driver's entry (`vfio-pci`)
    /// wins over another's: that is the bound driver, and the other (a
    /// firmware framebuffer, `vesafb`) is a leftover mapping of one BAR.
    pub(super) fn proc_drivers(&self) -> BTreeMap<Bdf, String> {
        let mut m: BTreeMap<Bdf, String> = BTreeMap::new();
        for tree in [&self.iomem, &self.ioports].into_iter().flatten() {
            for r in tree {
                let parent = r.parent.and_then(|p| tree.get(p));
                if let Some(bdf) = parent.and_then(|p| entry_bdf(&p.name)) {
                    let e = m.entry(bdf).or_insert_with(|| r.name.clone());
                    if assignable_name(&r.name) && !assignable_name(e) {
                        *e = r.name.clone();
                    }
                }
            }
        }
        m
    }

    /// Frames holding memory BARs of two or more different functions.
    /// Only a BAR's first and last frame can be shared (BARs of a page or
    /// more are aligned to their size), so this costs O(n log n) in BARs.
    pub fn shared_bar_pages(&self) -> Vec<SharedPage> {
        let mut v: Vec<(u64, Bdf)> = Vec::new();
        let mut seen: std::collections::BTreeSet<Bdf> = std::collections::BTreeSet::new();
        for d in self.pci.iter().flatten() {
            seen.insert(d.bdf);
            for b in d
                .bars
                .iter()
                .filter(|b| b.index <= 6 && b.kind == BarKind::Mem)
            {
                if let Some((f, l)) = frames(b.start, b.end) {
                    v.push((f, d.bdf));
                    v.push((l, d.bdf));
                }
            }
        }
        // Functions sysfs does not show: their /proc/iomem entries.
        for r in self.iomem.iter().flatten() {
            if let Some(bdf) = entry_bdf(&r.name) {
                if !seen.contains(&bdf) {
                    if let Some((f, l)) = frames(r.start, r.end) {
                        v.push((f, bdf));
                        v.push((l, bdf));
                    }
                }
            }
        }
        v.sort_unstable();
        v.dedup();
        let mut out: Vec<SharedPage> = Vec::new();
        let mut i = 0;
        while i < v.len() {
            let frame = v[i].0;
            let mut j = i;
            while j < v.len() && v[j].0 == frame {
                j += 1;
            }
            if j - i > 1 {
                out.push(SharedPage {
                    frame,
                    devices: v[i..j].iter().map(|&(_, b)| b).collect(),
                });
            }
            i = j;
        }
        out
    }
}
