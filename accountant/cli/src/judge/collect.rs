//! Collecting claims: the hypervisor's reservations, dom0's in-use
//! resources and each guest's requests become the trace's ops, in the
//! order the [judge's docs](super) give.

use accountant::{Mode, Space};

use super::ask::Kind;
use super::units::{cfg_frame, clip, resource_text, CFG_WINDOW};
use super::{Judge, Origin, Owner};
use crate::finding::{Finding, Resource};
use crate::guest::{Functions, Want};
use crate::host::assignable_name;
use crate::host::{Claim, HostMap};
use crate::pci::Bdf;
use crate::rules::Rule;

impl Judge<'_> {
    fn grant_pieces(
        &mut self,
        dom: u32,
        space: Space,
        first: u64,
        last: u64,
        force_shared: bool,
        origin: usize,
    ) -> bool {
        let pieces = if force_shared {
            vec![(first, last, true)]
        } else {
            self.input.shares.split(space, first, last)
        };
        let mut ok = true;
        for (a, b, shared) in pieces {
            let mode = if shared {
                Mode::Shared
            } else {
                Mode::Exclusive
            };
            let refused = self.apply(Kind::Grant(mode), dom, space, a, b, origin);
            ok &= refused.is_empty();
            self.report(space, origin, refused);
        }
        ok
    }

    pub(super) fn hv_and_dom0(&mut self, host: &HostMap) {
        for claim in host.hv_reservations(self.input.hv) {
            let Some((first, last)) = clip(&claim) else {
                continue;
            };
            let o = self.claim_origin(Owner::Hv, &claim);
            let refused = self.apply(Kind::Reserve, 0, claim.space, first, last, o);
            for r in refused {
                self.findings.push(Finding {
                    rule: Rule::HostGap,
                    message: format!(
                        "the hypervisor's `{}` ({}) could not be reserved: {}",
                        claim.name,
                        resource_text(claim.space, r.first, r.last),
                        r.output
                    ),
                    primary: claim.span.clone(),
                    label: format!("`{}`", claim.name),
                    notes: Vec::new(),
                    resource: None,
                    verdict: Some(format!("{} → {}", r.op, r.output)),
                });
            }
        }
        self.seal(Owner::Hv);
        for claim in host.dom0_claims() {
            let Some((first, last)) = clip(&claim) else {
                continue;
            };
            let o = self.claim_origin(Owner::Dom0, &claim);
            let space = claim.space;
            let shared_dev = claim
                .device
                .is_some_and(|b| self.input.shares.pci_shared(&b));
            let pieces = if shared_dev {
                vec![(first, last, true)]
            } else {
                self.input.shares.split(space, first, last)
            };
            for (a, b, shared) in pieces {
                let mut refused = Vec::new();
                if shared {
                    refused.extend(self.apply(Kind::Grant(Mode::Shared), 0, space, a, b, o));
                }
                match space {
                    Space::IoMem => refused.extend(self.apply(Kind::Map, 0, space, a, b, o)),
                    Space::Irq => refused.extend(self.apply(Kind::Bind, 0, space, a, b, o)),
                    Space::IoPort if !shared => {
                        refused.extend(self.apply(Kind::Grant(Mode::Exclusive), 0, space, a, b, o))
                    }
                    Space::IoPort => {}
                }
                self.dom0_refusals(space, o, refused);
            }
        }
        // Every function a dom0 driver holds (sysfs, or `/proc` entries named
        // by a function with a driver's entry under them): dom0 maps its
        // configuration page, so a guest asking for the function answers `in-use`.
        let mut functions: Vec<Bdf> = host.pci.iter().flatten().map(|d| d.bdf).collect();
        for tree in [&host.iomem, &host.ioports].into_iter().flatten() {
            functions.extend(tree.iter().filter_map(|r| Bdf::parse(&r.name).ok()));
        }
        functions.sort_unstable();
        functions.dedup();
        for b in functions {
            let Some(res) = host.function_resources(&b) else {
                continue;
            };
            let Some(driver) = res.driver.filter(|d| !assignable_name(d)) else {
                continue;
            };
            let frame = cfg_frame(&b);
            let o = self.origin(Origin {
                owner: Owner::Dom0,
                span: res.span.clone(),
                what: format!("{b} {driver}"),
                device: Some(b),
                intx: false,
            });
            if self.input.shares.pci_shared(&b) {
                let r = self.apply(Kind::Grant(Mode::Shared), 0, Space::IoMem, frame, frame, o);
                self.dom0_refusals(Space::IoMem, o, r);
            }
            let r = self.apply(Kind::Map, 0, Space::IoMem, frame, frame, o);
            self.dom0_refusals(Space::IoMem, o, r);
        }
        self.seal(Owner::Dom0);
    }

    fn claim_origin(&mut self, owner: Owner, c: &Claim) -> usize {
        self.origin(Origin {
            owner,
            span: c.span.clone(),
            what: c.name.clone(),
            device: c.device,
            intx: false,
        })
    }

    pub(super) fn guest(&mut self, gi: usize) {
        let guests = self.input.guests;
        let g = &guests[gi];
        let d = gi + 1;
        let Ok(dom) = u32::try_from(d) else { return };
        let why = if self.input.keep_trace {
            format!("{} domain `{}`", g.file.display(), g.label())
        } else {
            String::new()
        };
        self.run_op(&format!("create {dom}"), None, &why);
        let max_frame = self.input.host.and_then(|h| h.max_frame());
        for req in &g.requests {
            let mk = |what: String, device: Option<Bdf>, intx: bool| Origin {
                owner: Owner::Guest(d),
                span: Some(req.span.clone()),
                what,
                device,
                intx,
            };
            match &req.want {
                Want::IoMem { first, count } => {
                    let last = first.saturating_add(count.saturating_sub(1));
                    let o = self.origin(mk(format!("iomem \"{}\"", req.text), None, false));
                    let beyond = match max_frame {
                        Some(m) if last > m => Some(format!(
                            "beyond the host's {}-bit physical address width",
                            self.input.host.and_then(|h| h.phys_bits).unwrap_or(0)
                        )),
                        _ if last >= CFG_WINDOW => Some(format!("at or beyond frame {CFG_WINDOW:#x}, where this check keeps PCI functions' units (beyond a 51-bit physical address width)")),
                        _ => None,
                    };
                    if let Some(why) = beyond {
                        self.findings.push(Finding {
                            rule: Rule::BeyondRange,
                            message: format!(
                                "{} is {why}",
                                resource_text(Space::IoMem, *first, last)
                            ),
                            primary: Some(req.span.clone()),
                            label: format!("iomem \"{}\"", req.text),
                            notes: Vec::new(),
                            resource: Some(Resource {
                                space: Space::IoMem,
                                first: *first,
                                last,
                                host_name: None,
                            }),
                            verdict: None,
                        });
                        continue;
                    }
                    self.grant_pieces(dom, Space::IoMem, *first, last, false, o);
                }
                Want::IoPort { first, last } => {
                    let o = self.origin(mk(format!("ioports \"{}\"", req.text), None, false));
                    self.grant_pieces(dom, Space::IoPort, *first, *last, false, o);
                }
                Want::Irq(n) => {
                    let o = self.origin(mk(format!("irqs {}", req.text), None, false));
                    self.grant_pieces(dom, Space::Irq, *n, *n, false, o);
                }
                Want::Pci(fns) => {
                    let host = self.input.host;
                    let known = |b: &Bdf| host.and_then(|h| h.function_resources(b)).is_some();
                    // Whether the host map can tell which functions exist.
                    let mapped = host.is_some_and(|h| h.pci.is_some() || h.iomem.is_some());
                    let list: Vec<Bdf> = match fns {
                        Functions::One(b) => vec![*b],
                        Functions::All(b) => {
                            let all: Vec<Bdf> = (0..8)
                                .filter_map(|f| Bdf::new(b.seg, b.bus, b.dev, f).ok())
                                .collect();
                            if mapped {
                                all.into_iter().filter(|x| known(x)).collect()
                            } else {
                                all
                            }
                        }
                    };
                    let missing: Vec<String> = if list.is_empty() {
                        vec![req.text.clone()]
                    } else if mapped {
                        list.iter()
                            .filter(|b| !known(b))
                            .map(|b| b.to_string())
                            .collect()
                    } else {
                        Vec::new()
                    };
                    if !missing.is_empty() {
                        self.findings.push(Finding {
                            rule: Rule::NoSuchDevice,
                            message: format!("the host has no PCI function {}", missing.join(", ")),
                            primary: Some(req.span.clone()),
                            label: format!("pci \"{}\"", req.text),
                            notes: Vec::new(),
                            resource: None,
                            verdict: None,
                        });
                    }
                    for b in list {
                        self.pci_function(dom, &req.text, b, &mk);
                    }
                }
            }
        }
    }

    fn pci_function(
        &mut self,
        dom: u32,
        text: &str,
        b: Bdf,
        mk: &dyn Fn(String, Option<Bdf>, bool) -> Origin,
    ) {
        let shared = self.input.shares.pci_shared(&b);
        let frame = cfg_frame(&b);
        let o = self.origin(mk(format!("pci \"{text}\" (function {b})"), Some(b), false));
        if !self.grant_pieces(dom, Space::IoMem, frame, frame, shared, o) {
            // The function was not given: its resources do not follow it.
            return;
        }
        let Some(res) = self.input.host.and_then(|h| h.function_resources(&b)) else {
            return;
        };
        for (i, &(f, l)) in res.frames.iter().enumerate() {
            if l >= CFG_WINDOW {
                continue;
            }
            let o = self.origin(mk(
                format!("pci \"{text}\": memory BAR {} of {b}", i),
                Some(b),
                false,
            ));
            self.grant_pieces(dom, Space::IoMem, f, l, shared, o);
        }
        for (i, &(f, l)) in res.ports.iter().enumerate() {
            let o = self.origin(mk(
                format!("pci \"{text}\": I/O BAR {} of {b}", i),
                Some(b),
                false,
            ));
            self.grant_pieces(dom, Space::IoPort, f, l, shared, o);
        }
        if let Some(line) = res.line {
            let o = self.origin(mk(
                format!("pci \"{text}\": interrupt line {line} of {b}"),
                Some(b),
                true,
            ));
            self.grant_pieces(dom, Space::Irq, u64::from(line), u64::from(line), shared, o);
        }
    }
}
