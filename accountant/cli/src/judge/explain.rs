//! Findings and their explanation: which rule an accountant's refusal
//! is, the message naming the resource as the host does, and the note at
//! the other owner's file and line. The IOMMU group rule reads its owners
//! from the accountant's state.

use std::collections::HashMap;

use accountant::{DomId, Space};

use super::ask::Refusal;
use super::units::{bdf_of_frame, cfg_frame, resource_text};
use super::{Judge, Origin, Owner};
use crate::finding::{Finding, Note, Resource};
use crate::pci::Bdf;
use crate::rules::Rule;

impl Judge<'_> {
    pub(super) fn host_name(&self, space: Space, unit: u64) -> Option<String> {
        if space == Space::IoMem {
            if let Some(b) = bdf_of_frame(unit) {
                let res = self.input.host.and_then(|h| h.function_resources(&b))?;
                return Some(match res.driver {
                    Some(drv) => format!("{b} {drv}"),
                    None => b.to_string(),
                });
            }
        }
        self.input.host?.name_of(space, unit).map(|(n, _)| n)
    }

    pub(super) fn owner_text(&self, o: &Origin) -> String {
        match o.owner {
            Owner::Hv => "the hypervisor".to_string(),
            Owner::Ram => "RAM".to_string(),
            Owner::Dom0 => "dom0".to_string(),
            Owner::Guest(d) => self.input.guests.get(d - 1).map_or_else(
                || format!("domain {d}"),
                |g| format!("guest `{}`", g.label()),
            ),
        }
    }

    fn rule_for(
        &self,
        code: &str,
        space: Space,
        mine: &Origin,
        other: Option<&Origin>,
        unit: u64,
    ) -> Rule {
        let other_dev = other.and_then(|o| o.device);
        let two_devices = mine.device.is_some() && other_dev.is_some() && mine.device != other_dev;
        match code {
            "reserved" => Rule::HvReserved,
            "not-io-memory" => Rule::IomemRam,
            "out-of-range" | "bad-range" => Rule::BeyondRange,
            _ => match other.map(|o| o.owner) {
                Some(Owner::Hv) => Rule::HvReserved,
                Some(Owner::Ram) => Rule::IomemRam,
                Some(Owner::Dom0) | None => {
                    if space == Space::IoMem && two_devices && bdf_of_frame(unit).is_none() {
                        Rule::SharedBarPage
                    } else if space == Space::Irq
                        && (mine.intx || other.is_some_and(|o| o.intx))
                        && mine.device != other_dev
                    {
                        Rule::IrqShared
                    } else {
                        Rule::HostDriverBound
                    }
                }
                Some(Owner::Guest(_)) => match space {
                    Space::IoMem if bdf_of_frame(unit).is_some() => Rule::GuestPci,
                    Space::IoMem if two_devices => Rule::SharedBarPage,
                    Space::IoMem => Rule::GuestPage,
                    Space::IoPort => Rule::GuestPort,
                    Space::Irq if mine.intx || other.is_some_and(|o| o.intx) => Rule::IrqShared,
                    Space::Irq => Rule::GuestIrq,
                },
            },
        }
    }

    /// Turns a request's refusals into findings (one per rule and other owner).
    pub(super) fn report(&mut self, space: Space, mine: usize, refusals: Vec<Refusal>) {
        let mut merged: Vec<(Rule, Option<usize>, Refusal)> = Vec::new();
        for r in refusals {
            let rule = {
                let m = &self.origins[mine];
                let o = r.other.map(|i| &self.origins[i]);
                self.rule_for(&r.code, space, m, o, r.first)
            };
            match merged
                .iter_mut()
                .find(|(ru, o, _)| *ru == rule && *o == r.other)
            {
                Some((_, _, m)) => {
                    m.first = m.first.min(r.first);
                    m.last = m.last.max(r.last);
                }
                None => merged.push((rule, r.other, r)),
            }
        }
        for (rule, other, r) in merged {
            let mine_o = self.origins[mine].clone();
            let other_o = other.map(|i| self.origins[i].clone());
            let res = resource_text(space, r.first, r.last);
            let host_name = match &other_o {
                Some(o) if matches!(o.owner, Owner::Hv | Owner::Dom0 | Owner::Ram) => {
                    Some(o.what.clone())
                }
                _ => self.host_name(space, r.first),
            };
            let named = match &host_name {
                Some(n) => format!("{res} (the host's `{n}`)"),
                None => res.clone(),
            };
            let owner = other_o.as_ref().map(|o| self.owner_text(o));
            let message = match rule {
                Rule::GuestPage | Rule::GuestPort | Rule::GuestIrq | Rule::GuestPci => format!(
                    "{named} is also given to {}",
                    owner.as_deref().unwrap_or("another guest")
                ),
                Rule::IrqShared => format!(
                    "{named} is also held by {} without declared sharing",
                    owner.as_deref().unwrap_or("another domain")
                ),
                Rule::HvReserved => format!("{named} is kept by the hypervisor"),
                Rule::HostDriverBound => format!("{named} is in use by a driver bound in dom0"),
                Rule::IomemRam => format!("{named} is RAM, not I/O memory"),
                Rule::BeyondRange => format!("{res} is beyond its space"),
                Rule::SharedBarPage => format!(
                    "{named} holds BARs of two devices, {} and {}, given to different owners (XSA-461)",
                    mine_o.device.map(|b| b.to_string()).unwrap_or_default(),
                    other_o.as_ref().and_then(|o| o.device).map(|b| b.to_string()).unwrap_or_default()
                ),
                Rule::Dom0HoldsHv => format!("dom0's `{}` holds {res}, which the hypervisor takes at boot", mine_o.what),
                _ => named.clone(),
            };
            let mut notes = Vec::new();
            if let Some(o) = &other_o {
                let what = match o.owner {
                    Owner::Guest(_) => format!("{} granted here to {}", o.what, self.owner_text(o)),
                    Owner::Hv => format!("the hypervisor keeps `{}`", o.what),
                    Owner::Dom0 => format!("dom0's driver holds `{}`", o.what),
                    Owner::Ram => format!("the host map calls it `{}`", o.what),
                };
                notes.push(Note {
                    span: o.span.clone(),
                    message: what,
                });
            }
            let label = match rule {
                Rule::Dom0HoldsHv => format!("dom0's `{}`", mine_o.what),
                _ => format!("{} asks for {res}", mine_o.what),
            };
            self.findings.push(Finding {
                rule,
                message,
                primary: mine_o.span.clone(),
                label,
                notes,
                resource: Some(Resource {
                    space,
                    first: r.first,
                    last: r.last,
                    host_name,
                }),
                verdict: Some(format!("{} → {}", r.op, r.output)),
            });
        }
    }

    /// dom0's refusals: what the hypervisor takes is a warning; the rest
    /// (two dom0 claims on one unit, which the accountant allows) cannot occur.
    pub(super) fn dom0_refusals(&mut self, space: Space, o: usize, refused: Vec<Refusal>) {
        let (hv, _rest): (Vec<Refusal>, Vec<Refusal>) =
            refused.into_iter().partition(|r| r.code == "reserved");
        if hv.is_empty() {
            return;
        }
        let before = self.findings.len();
        self.report(space, o, hv);
        for f in &mut self.findings[before..] {
            f.rule = Rule::Dom0HoldsHv;
            let what = self.origins[o].what.clone();
            let res = f
                .resource
                .as_ref()
                .map(|r| resource_text(r.space, r.first, r.last))
                .unwrap_or_default();
            f.message = format!("dom0's `{what}` holds {res}, which the hypervisor takes at boot");
            f.label = format!("dom0's `{what}`");
        }
    }

    /// Functions of one IOMMU group with different owners, owners read from
    /// the accountant (holder of the configuration page, or dom0's use).
    pub(super) fn iommu_groups(&mut self) {
        let Some(devs) = self.input.host.and_then(|h| h.pci.as_ref()) else {
            return;
        };
        let mut groups: HashMap<u32, Vec<Bdf>> = HashMap::new();
        for d in devs {
            if let Some(g) = d.iommu_group {
                groups.entry(g).or_default().push(d.bdf);
            }
        }
        let mut ids: Vec<u32> = groups.keys().copied().collect();
        ids.sort_unstable();
        for g in ids {
            let members = &groups[&g];
            if members.len() < 2 {
                continue;
            }
            let owners: Vec<(Bdf, Option<Owner>)> = members
                .iter()
                .map(|b| {
                    let info = self.acct.query(Space::IoMem, cfg_frame(b)).ok();
                    let owner = info.and_then(|i| {
                        if let Some((d, _)) = i.holders.iter().find(|(d, _)| *d != DomId::DOM0) {
                            Some(Owner::Guest(d.get() as usize))
                        } else if !i.holders.is_empty()
                            || i.uses.iter().any(|(d, n)| *d == DomId::DOM0 && *n > 0)
                        {
                            Some(Owner::Dom0)
                        } else {
                            None
                        }
                    });
                    (*b, owner)
                })
                .collect();
            let mut distinct: Vec<Owner> = owners.iter().filter_map(|(_, o)| *o).collect();
            distinct.sort_by_key(|o| match o {
                Owner::Guest(d) => *d,
                _ => 0,
            });
            distinct.dedup();
            if distinct.len() < 2 {
                continue;
            }
            for (b, owner) in &owners {
                let Some(Owner::Guest(d)) = owner else {
                    continue;
                };
                let Some(mine) = self.lookup(Space::IoMem, Owner::Guest(*d), cfg_frame(b)) else {
                    continue;
                };
                let m = self.origins[mine.origin].clone();
                let mut notes = Vec::new();
                for (ob, oo) in &owners {
                    let Some(oo) = oo else { continue };
                    if *oo == Owner::Guest(*d) {
                        continue;
                    }
                    if let Some(e) = self.lookup(Space::IoMem, *oo, cfg_frame(ob)) {
                        let o = self.origins[e.origin].clone();
                        notes.push(Note {
                            span: o.span.clone(),
                            message: format!(
                                "{ob}, in the same group, belongs to {}",
                                self.owner_text(&o)
                            ),
                        });
                    }
                }
                self.findings.push(Finding {
                    rule: Rule::IommuGroupSplit,
                    message: format!("IOMMU group {g} is split: {b} goes to {}, other functions of the group to other owners", self.owner_text(&m)),
                    primary: m.span.clone(),
                    label: m.what.clone(),
                    notes,
                    resource: Some(Resource {
                        space: Space::IoMem,
                        first: cfg_frame(b),
                        last: cfg_frame(b),
                        host_name: self.host_name(Space::IoMem, cfg_frame(b)),
                    }),
                    verdict: None,
                });
            }
        }
    }
}
