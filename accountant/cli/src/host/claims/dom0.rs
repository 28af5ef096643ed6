//! What dom0's bound drivers hold ([`HostMap::dom0_claims`], rules in the
//! [module doc](super)).

use accountant::Space;

use super::{assignable_name, device_name, disjoint, entry_bdf, frames, structural, units};
use crate::host::{BarKind, Claim, HostMap};

impl HostMap {
    /// What dom0's bound drivers hold (every driver but the assignable
    /// ones), each unit at most once (see the module doc).
    pub fn dom0_claims(&self) -> Vec<Claim> {
        let mut mem_io: Vec<Claim> = Vec::new();
        let mut lines: Vec<Claim> = Vec::new();
        let proc_drivers = self.proc_drivers();

        // 1. PCI functions with a bound driver, from sysfs.
        for d in self.pci.iter().flatten().filter(|d| !d.assignable()) {
            let name = device_name(d);
            for b in d.bars.iter().filter(|b| b.index <= 6) {
                let (space, units) = match b.kind {
                    BarKind::Mem => (Space::IoMem, frames(b.start, b.end)),
                    BarKind::Io => (Space::IoPort, Some((b.start, b.end))),
                };
                if let Some((first, last)) = units {
                    let mut span = d.span.clone();
                    span.line = u32::from(b.index) + 1;
                    mem_io.push(Claim {
                        space,
                        first,
                        last,
                        name: name.clone(),
                        device: Some(d.bdf),
                        span: Some(span),
                    });
                }
            }
        }

        // 3. Lines whose handlers are drivers'.
        for (g, r) in self.lines() {
            let held: Vec<&String> = r
                .actions
                .iter()
                .filter(|a| !assignable_name(a))
                .filter(|a| a.as_str() != "timer" && a.as_str() != "cascade")
                .collect();
            if !held.is_empty() {
                lines.push(Claim {
                    space: Space::Irq,
                    first: u64::from(g),
                    last: u64::from(g),
                    name: held
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    device: None,
                    span: Some(r.span.clone()),
                });
            }
        }
        for d in self.pci.iter().flatten().filter(|d| !d.assignable()) {
            if let Some(g) = d.irq.and_then(|i| self.line_of_irq(i)) {
                lines.push(Claim {
                    space: Space::Irq,
                    first: u64::from(g),
                    last: u64::from(g),
                    name: device_name(d),
                    device: Some(d.bdf),
                    span: Some(d.span.clone()),
                });
            }
        }

        // 1 (without sysfs) and 2: /proc entries.
        for (space, tree) in [(Space::IoMem, &self.iomem), (Space::IoPort, &self.ioports)] {
            let Some(tree) = tree.as_deref() else {
                continue;
            };
            // Skip the subtree under an entry already decided on.
            let mut skip_below: Option<u32> = None;
            for r in tree {
                if let Some(d) = skip_below {
                    if r.depth > d {
                        continue;
                    }
                    skip_below = None;
                }
                if let Some(bdf) = entry_bdf(&r.name) {
                    skip_below = Some(r.depth);
                    if let Some(d) = self.device(&bdf) {
                        // A bound function: its BARs are claimed from
                        // sysfs above. One held for a guest: what another
                        // driver still maps inside its BARs (a firmware
                        // framebuffer on a GPU) is dom0's, by the rule
                        // below for the entries under it.
                        if d.assignable() {
                            skip_below = None;
                        }
                        continue;
                    }
                    let Some(drv) = proc_drivers.get(&bdf) else {
                        continue;
                    };
                    if assignable_name(drv) {
                        // Held for a guest: other drivers' entries under
                        // it are examined by rule 2.
                        skip_below = None;
                        continue;
                    }
                    if let Some((first, last)) = units(space, r) {
                        mem_io.push(Claim {
                            space,
                            first,
                            last,
                            name: format!("{bdf} {drv}"),
                            device: Some(bdf),
                            span: Some(r.span.clone()),
                        });
                    }
                    continue;
                }
                if r.name == "System RAM" {
                    skip_below = Some(r.depth);
                    continue;
                }
                if structural(&r.name) {
                    continue;
                }
                skip_below = Some(r.depth);
                if assignable_name(&r.name) {
                    continue;
                }
                if let Some((first, last)) = units(space, r) {
                    let parent = r.parent.and_then(|p| tree.get(p));
                    mem_io.push(Claim {
                        space,
                        first,
                        last,
                        name: HostMap::display_name(tree, r),
                        device: parent.and_then(|p| entry_bdf(&p.name)),
                        span: Some(r.span.clone()),
                    });
                }
            }
        }
        mem_io.extend(lines);
        disjoint(mem_io)
    }
}
