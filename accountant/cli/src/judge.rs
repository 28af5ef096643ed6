//! The one judge: host claims and guest requests become a boot line and a
//! trace, the trace runs through [`accountant::exec::execute`], and the
//! accountant's answers are mapped back to files and lines.
//!
//! **Architecture invariant: no second implementation of the rules.**
//! Whether a unit conflicts, is reserved, is RAM or is in use is never
//! decided here: it is the output line of the op that asked. This module
//! only keeps two tables to explain an answer — trace op → the request
//! that made it, and (holder, units) → the request or host claim that
//! granted them — so that `err conflict at 0x3f8 held by d1` becomes an
//! error at one file's line with a note at the other's.
//!
//! The trace, in order (each op's output recorded, `--emit-trace` writes it):
//!
//! 1. `boot ram=…`: the frames the host map calls RAM.
//! 2. `reserve SPACE R`: what the hypervisor keeps ([`HostMap::hv_reservations`]).
//!    Reservations are ops rather than `reserve_*=` boot options so that one
//!    that fails is a finding with its own place, not a failed boot.
//! 3. dom0's in-use resources ([`HostMap::dom0_claims`]): `map 0 iomem R`,
//!    `bind 0 irq N` (uses by default right, so a guest's grant answers
//!    `in-use`) and `grant 0 ioport R exclusive` (ports have no uses in the
//!    model, so dom0's driver holds them by grant: a guest's grant answers
//!    `conflict … held by d0`). A declared-shared unit is first granted
//!    `shared` to dom0. The configuration page of every function bound to a
//!    dom0 driver is mapped by dom0 the same way.
//! 4. per guest file, domain `1, 2, …`: `create D`, then one `grant` per
//!    requested range (`shared` where declared, else `exclusive`). A PCI
//!    function is its configuration page (below); when the host map has the
//!    function, its BARs' frames and ports and its interrupt line follow it,
//!    granted only when the function itself was.
//!
//! **PCI functions as units.** A function must be an accountant unit even
//! without a host map, so that two guests naming one function conflict. Its
//! unit is its ECAM configuration page — one 4 KiB page per function, frame
//! `CFG_WINDOW + (segment << 16 | bus << 8 | device << 3 | function)` —
//! placed in the top 2³² frames of the accountant's 40-bit frame space
//! (`0xff_0000_0000 ..= 0xff_ffff_ffff`, physical addresses from 2⁵² − 2⁴⁴).
//! No real device decodes there: it is beyond the physical address width of
//! every x86 host with fewer than 52 address bits, and the host map's
//! claims inside it are dropped. An `iomem=` request that reaches the window
//! is refused as beyond the address space ([`Rule::BeyondRange`]).
//!
//! **Finding every conflict of a range.** A grant is all-or-nothing: on a
//! refusal at unit `u`, the judge looks up the other owner's entry covering
//! `u`, records one refusal for `u ..= min(entry end, range end)`, and asks
//! again for the parts before and after. At most [`MAX_OPS_PER_REQUEST`]
//! ops are spent on one request.
//!
//! **Host properties.** Two rules are properties of the host rather than of
//! ownership, computed from the host map — the physical address width
//! (before the trace), and which BARs share a page or which functions share
//! an IOMMU group (when explaining an answer, and after the trace) — but
//! the owners they compare always come from the accountant's state
//! ([`Accountant::query`]).

use std::collections::HashMap;
use std::fmt;

use accountant::trace::parse_op;
use accountant::{execute, Accountant, BootOptions, DomId, Mode, Space, TrackerKind, MAX_DOMID};

use crate::finding::{Finding, Note, Resource};
use crate::guest::{Functions, Guest, Want};
use crate::host::assignable_name;
use crate::host::{Claim, HostMap, HvReserve};
use crate::pci::Bdf;
use crate::rules::Rule;
use crate::share::Shares;
use crate::span::Span;

/// First frame of the configuration-page window (see the module docs).
pub const CFG_WINDOW: u64 = 0xff_0000_0000;

/// Most ops spent on one request while splitting it around refusals.
pub const MAX_OPS_PER_REQUEST: usize = 1024;

/// The configuration-page frame that stands for `b`.
pub fn cfg_frame(b: &Bdf) -> u64 {
    CFG_WINDOW
        + ((u64::from(b.seg) << 16)
            | (u64::from(b.bus) << 8)
            | (u64::from(b.dev) << 3)
            | u64::from(b.func))
}

/// The function a configuration-page frame stands for.
pub fn bdf_of_frame(frame: u64) -> Option<Bdf> {
    let i = frame.checked_sub(CFG_WINDOW)?;
    if i > 0xffff_ffff {
        return None;
    }
    // Each field is masked to its width: the casts cannot truncate.
    Bdf::new(
        (i >> 16) as u16,
        ((i >> 8) & 0xff) as u8,
        ((i >> 3) & 0x1f) as u8,
        (i & 7) as u8,
    )
    .ok()
}

/// What the judge is given.
#[derive(Clone, Copy, Debug)]
pub struct Input<'a> {
    /// One domain per file.
    pub guests: &'a [Guest],
    /// The host map; `None` compares the guests with each other alone.
    pub host: Option<&'a HostMap>,
    /// What the hypervisor keeps for itself.
    pub hv: &'a HvReserve,
    /// Declared sharing.
    pub shares: &'a Shares,
    /// Keep every op and its output in [`Outcome::trace`] (for
    /// `--emit-trace`); otherwise only the ops behind findings are kept
    /// (in each finding's verdict) and the ops are counted.
    pub keep_trace: bool,
}

/// One op of the trace, its output, and why it was asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceLine {
    /// The op, in the trace language of SPEC section 3.
    pub op: String,
    /// The accountant's output line.
    pub output: String,
    /// What asked for it (`a.cfg:3:11 ioports "3f8-3ff"`).
    pub why: String,
}

/// The judge's result.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// The findings, errors first, then in file order.
    pub findings: Vec<Finding>,
    /// The trace that was run (every op when [`Input::keep_trace`], else the boot line only).
    pub trace: Vec<TraceLine>,
    /// Ops run, the boot line included.
    pub ops: usize,
}

impl Outcome {
    /// The trace as a replayable text: one op per line with its output as
    /// a `#=>` comment, the reason as a comment line before it.
    pub fn trace_text(&self) -> String {
        let mut out = String::from("# ioacct check: the trace the judge ran (SPEC section 3)\n");
        let mut last_why = "";
        for l in &self.trace {
            if !l.why.is_empty() && l.why != last_why {
                out.push_str("# ");
                out.push_str(&l.why.replace('\n', " "));
                out.push('\n');
                last_why = &l.why;
            }
            out.push_str(&l.op);
            out.push_str("   #=> ");
            out.push_str(&l.output);
            out.push('\n');
        }
        out
    }
}

/// Why the judge could not run.
#[derive(Debug, PartialEq, Eq)]
pub enum JudgeError {
    /// More guest files than domain ids (`MAX_DOMID`).
    TooManyGuests(usize),
    /// The boot line built from the host map was refused.
    Boot(String),
}

impl fmt::Display for JudgeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JudgeError::TooManyGuests(n) => {
                write!(
                    f,
                    "{n} guest files: at most {MAX_DOMID} domains can be checked at once"
                )
            }
            JudgeError::Boot(e) => write!(f, "the host map's boot line was refused: {e}"),
        }
    }
}

impl std::error::Error for JudgeError {}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Owner {
    Hv,
    Ram,
    Dom0,
    Guest(usize),
}

/// Who asked for some units, and what they are to the asker.
#[derive(Clone, Debug)]
struct Origin {
    owner: Owner,
    span: Option<Span>,
    /// `ioports "3f8-3ff"`, `serial`, `BAR 0 of 0000:01:00.0`.
    what: String,
    /// The PCI function the units belong to.
    device: Option<Bdf>,
    /// The units are a function's interrupt line.
    intx: bool,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    first: u64,
    last: u64,
    origin: usize,
}

/// One refused piece: the accountant's code, the units it covers, the
/// other owner's origin, the op and its answer.
#[derive(Clone, Debug)]
struct Refusal {
    code: String,
    first: u64,
    last: u64,
    other: Option<usize>,
    op: String,
    output: String,
}

/// A parsed `err CODE at 0xU (held|used|drained) by dN` line.
struct Answer {
    code: String,
    unit: Option<u64>,
    dom: Option<u32>,
    hypervisor: bool,
}

fn answer(line: &str) -> Option<Answer> {
    let mut w = line.split_whitespace();
    if w.next() != Some("err") {
        return None;
    }
    let code = w.next().unwrap_or("").to_string();
    let rest: Vec<&str> = w.collect();
    let unit = rest
        .iter()
        .position(|&t| t == "at")
        .and_then(|i| rest.get(i + 1))
        .and_then(|t| t.strip_prefix("0x"))
        .and_then(|h| u64::from_str_radix(h, 16).ok());
    let by = rest
        .iter()
        .position(|&t| t == "by")
        .and_then(|i| rest.get(i + 1));
    let dom = by
        .and_then(|t| t.strip_prefix('d'))
        .and_then(|n| n.parse().ok());
    let hypervisor = by == Some(&"the");
    Some(Answer {
        code,
        unit,
        dom,
        hypervisor,
    })
}

#[derive(Clone, Copy)]
enum Kind {
    Reserve,
    Grant(Mode),
    Map,
    Bind,
}

fn range_text(first: u64, last: u64) -> String {
    if first == last {
        format!("{first:#x}")
    } else {
        format!("{first:#x}-{last:#x}")
    }
}

/// How a resource is named in messages.
pub fn resource_text(space: Space, first: u64, last: u64) -> String {
    match space {
        Space::IoPort => format!("ioport {}", range_text(first, last)),
        Space::Irq if first == last => format!("interrupt line {first}"),
        Space::Irq => format!("interrupt lines {first}-{last}"),
        Space::IoMem => match (bdf_of_frame(first), bdf_of_frame(last)) {
            (Some(a), Some(b)) if a == b => format!("PCI function {a}"),
            (Some(a), Some(b)) => format!("PCI functions {a} to {b}"),
            _ if first == last => format!("iomem page {first:#x} (address {:#x})", first << 12),
            _ => format!(
                "iomem pages {} (addresses {:#x}-{:#x})",
                range_text(first, last),
                first << 12,
                (last << 12) | 0xfff
            ),
        },
    }
}

struct Judge<'a> {
    input: Input<'a>,
    acct: Accountant,
    trace: Vec<TraceLine>,
    origins: Vec<Origin>,
    /// Entries per (space, holder): hypervisor, dom0, or a guest's domain id.
    table: HashMap<(Space, Owner), Vec<Entry>>,
    /// Owners whose table is final and sorted by `first`, with the running
    /// maximum of `last` for stabbing queries.
    sorted: HashMap<(Space, Owner), Vec<u64>>,
    findings: Vec<Finding>,
    ram: Vec<(u64, u64)>,
    ram_origin: HashMap<usize, usize>,
    ops: usize,
}

impl<'a> Judge<'a> {
    /// Runs one op; `origin` (or `text` without one) says why, for the kept trace.
    fn run_op(&mut self, op: &str, origin: Option<usize>, text: &str) -> String {
        let output = match parse_op(op) {
            Ok(parsed) => execute(&mut self.acct, &parsed),
            // The judge writes every op itself: a parse failure is a bug, reported as the op's answer.
            Err(e) => format!("err bad-op {e}"),
        };
        self.ops += 1;
        if self.input.keep_trace {
            self.trace.push(TraceLine {
                op: op.to_string(),
                output: output.clone(),
                why: origin.map_or_else(|| text.to_string(), |o| self.why_of(o)),
            });
        }
        output
    }

    fn origin(&mut self, o: Origin) -> usize {
        self.origins.push(o);
        self.origins.len() - 1
    }

    fn why_of(&self, origin: usize) -> String {
        let o = &self.origins[origin];
        match &o.span {
            Some(s) => format!("{s} {}", o.what),
            None => o.what.clone(),
        }
    }

    /// The entry of `owner` in `space` covering `unit`.
    fn lookup(&mut self, space: Space, owner: Owner, unit: u64) -> Option<Entry> {
        if owner == Owner::Ram {
            let i = self
                .ram
                .partition_point(|&(a, _)| a <= unit)
                .checked_sub(1)?;
            let (a, b) = self.ram[i];
            if unit > b {
                return None;
            }
            let origin = match self.ram_origin.get(&i) {
                Some(&o) => o,
                None => {
                    // The map's own RAM entry covering the frame, else its deepest name.
                    let addr = unit.saturating_mul(4096);
                    let ram_entry = self.input.host.and_then(|h| {
                        h.iomem.iter().flatten().find(|r| {
                            r.name == "System RAM" && r.start <= addr | 0xfff && addr <= r.end
                        })
                    });
                    let (name, span) = match ram_entry {
                        Some(r) => (r.name.clone(), Some(r.span.clone())),
                        None => self
                            .input
                            .host
                            .and_then(|h| h.name_of(Space::IoMem, unit))
                            .unwrap_or_else(|| ("System RAM".to_string(), None)),
                    };
                    let o = self.origin(Origin {
                        owner: Owner::Ram,
                        span,
                        what: name,
                        device: None,
                        intx: false,
                    });
                    self.ram_origin.insert(i, o);
                    o
                }
            };
            return Some(Entry {
                first: a,
                last: b,
                origin,
            });
        }
        let entries = self.table.get(&(space, owner))?;
        if let Some(maxes) = self.sorted.get(&(space, owner)) {
            let mut i = entries.partition_point(|e| e.first <= unit);
            while i > 0 {
                i -= 1;
                if maxes[i] < unit {
                    return None;
                }
                if entries[i].last >= unit {
                    return Some(entries[i]);
                }
            }
            return None;
        }
        entries
            .iter()
            .rev()
            .find(|e| e.first <= unit && unit <= e.last)
            .copied()
    }

    /// Sorts `owner`'s entries for stabbing queries (after they stop changing).
    fn seal(&mut self, owner: Owner) {
        for space in Space::ALL {
            if let Some(v) = self.table.get_mut(&(space, owner)) {
                v.sort_by_key(|e| e.first);
                let mut m = 0;
                let maxes = v
                    .iter()
                    .map(|e| {
                        m = m.max(e.last);
                        m
                    })
                    .collect();
                self.sorted.insert((space, owner), maxes);
            }
        }
    }

    fn holder(&self, dom: u32, kind: Kind) -> Owner {
        match kind {
            Kind::Reserve => Owner::Hv,
            _ if dom == 0 => Owner::Dom0,
            _ => Owner::Guest(dom as usize),
        }
    }

    /// Applies one op kind to `first..=last`, splitting around refusals.
    fn apply(
        &mut self,
        kind: Kind,
        dom: u32,
        space: Space,
        first: u64,
        last: u64,
        origin: usize,
    ) -> Vec<Refusal> {
        let holder = self.holder(dom, kind);
        let mut refused = Vec::new();
        let mut work = vec![(first, last)];
        let mut ops = 0;
        while let Some((lo, hi)) = work.pop() {
            ops += 1;
            if ops > MAX_OPS_PER_REQUEST {
                break;
            }
            let r = range_text(lo, hi);
            let op = match kind {
                Kind::Reserve => format!("reserve {space} {r}"),
                Kind::Grant(m) => format!("grant {dom} {space} {r} {}", m.name()),
                Kind::Map => format!("map {dom} iomem {r}"),
                Kind::Bind => format!("bind {dom} irq {r}"),
            };
            let out = self.run_op(&op, Some(origin), "");
            let Some(a) = answer(&out) else {
                self.table.entry((space, holder)).or_default().push(Entry {
                    first: lo,
                    last: hi,
                    origin,
                });
                continue;
            };
            let Some(u) = a.unit.filter(|u| (lo..=hi).contains(u)) else {
                // No unit to split at (out-of-range, bad-range): the whole piece is refused.
                refused.push(Refusal {
                    code: a.code,
                    first: lo,
                    last: hi,
                    other: None,
                    op,
                    output: out,
                });
                continue;
            };
            let other_owner = match (a.code.as_str(), a.dom) {
                ("reserved", _) => Some(Owner::Hv),
                ("not-io-memory", _) => Some(Owner::Ram),
                (_, Some(0)) => Some(Owner::Dom0),
                (_, Some(d)) => Some(Owner::Guest(d as usize)),
                (_, None) if a.hypervisor => Some(Owner::Hv),
                _ => None,
            };
            let other = other_owner.and_then(|o| self.lookup(space, o, u));
            let end = other.map_or(u, |e| e.last.min(hi));
            refused.push(Refusal {
                code: a.code,
                first: u,
                last: end,
                other: other.map(|e| e.origin),
                op,
                output: out,
            });
            if let Some(after) = end.checked_add(1).filter(|&n| n <= hi) {
                work.push((after, hi));
            }
            if u > lo {
                work.push((lo, u - 1));
            }
        }
        refused
    }

    fn host_name(&self, space: Space, unit: u64) -> Option<String> {
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

    fn owner_text(&self, o: &Origin) -> String {
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
    fn report(&mut self, space: Space, mine: usize, refusals: Vec<Refusal>) {
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

    fn hv_and_dom0(&mut self, host: &HostMap) {
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

    /// dom0's refusals: what the hypervisor takes is a warning; the rest
    /// (two dom0 claims on one unit, which the accountant allows) cannot occur.
    fn dom0_refusals(&mut self, space: Space, o: usize, refused: Vec<Refusal>) {
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

    fn claim_origin(&mut self, owner: Owner, c: &Claim) -> usize {
        self.origin(Origin {
            owner,
            span: c.span.clone(),
            what: c.name.clone(),
            device: c.device,
            intx: false,
        })
    }

    fn guest(&mut self, gi: usize) {
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

    /// Functions of one IOMMU group with different owners, owners read from
    /// the accountant (holder of the configuration page, or dom0's use).
    fn iommu_groups(&mut self) {
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

/// A claim's units with the configuration-page window cut off.
fn clip(c: &Claim) -> Option<(u64, u64)> {
    if c.first > c.last {
        return None;
    }
    if c.space == Space::IoMem {
        if c.first >= CFG_WINDOW {
            return None;
        }
        return Some((c.first, c.last.min(CFG_WINDOW - 1)));
    }
    Some((c.first, c.last.min(c.space.max_unit())))
}

/// Runs the check: builds the trace, runs it, maps the answers back.
pub fn check(input: Input<'_>) -> Result<Outcome, JudgeError> {
    if input.guests.len() > MAX_DOMID as usize {
        return Err(JudgeError::TooManyGuests(input.guests.len()));
    }
    let mut ram: Vec<(u64, u64)> = input
        .host
        .map(|h| h.ram_frames())
        .unwrap_or_default()
        .into_iter()
        .filter(|&(a, b)| a <= b && a < CFG_WINDOW)
        .map(|(a, b)| (a, b.min(CFG_WINDOW - 1)))
        .collect();
    ram.sort_unstable();
    let boot = if ram.is_empty() {
        "boot".to_string()
    } else {
        let list: Vec<String> = ram.iter().map(|&(a, b)| range_text(a, b)).collect();
        format!("boot ram={}", list.join(","))
    };
    let opts = BootOptions::parse(boot.strip_prefix("boot").unwrap_or("").trim())
        .map_err(|e| JudgeError::Boot(e.to_string()))?;
    let acct = Accountant::boot(&opts, TrackerKind::default())
        .map_err(|e| JudgeError::Boot(e.to_string()))?;
    let mut j = Judge {
        input,
        acct,
        trace: vec![TraceLine {
            op: boot,
            output: "ok".to_string(),
            why: "the host map's RAM".to_string(),
        }],
        origins: Vec::new(),
        table: HashMap::new(),
        sorted: HashMap::new(),
        findings: Vec::new(),
        ram,
        ram_origin: HashMap::new(),
        ops: 1,
    };
    if let Some(host) = input.host {
        for gap in &host.gaps {
            j.findings.push(Finding {
                rule: Rule::HostGap,
                message: format!("{}: {}", gap.path.display(), gap.why),
                primary: None,
                label: String::new(),
                notes: Vec::new(),
                resource: None,
                verdict: None,
            });
        }
        j.hv_and_dom0(host);
    }
    for gi in 0..input.guests.len() {
        j.guest(gi);
    }
    j.iommu_groups();
    let mut findings = j.findings;
    findings.sort_by(|a, b| {
        (a.rule.severity(), &a.primary, a.rule).cmp(&(b.rule.severity(), &b.primary, b.rule))
    });
    Ok(Outcome {
        findings,
        trace: j.trace,
        ops: j.ops,
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::Arc;

    use super::*;
    use crate::guest;
    use crate::host::{Bar, BarKind, PciDevice};

    fn cfg(name: &str, text: &str) -> Guest {
        guest::parse(Arc::new(PathBuf::from(name)), text.to_string())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn dev(bdf: &str, mem: (u64, u64), irq: u32, driver: Option<&str>, group: u32) -> PciDevice {
        let bdf = Bdf::parse(bdf).unwrap_or_else(|e| panic!("{e}"));
        PciDevice {
            bdf,
            bars: vec![Bar {
                index: 0,
                start: mem.0,
                end: mem.1,
                kind: BarKind::Mem,
            }],
            irq: Some(irq),
            driver: driver.map(str::to_string),
            iommu_group: Some(group),
            span: Span::new(Arc::new(PathBuf::from(format!("sys/{bdf}/resource"))), 1, 0),
        }
    }

    fn run(guests: &[Guest], host: Option<&HostMap>, shares: &Shares) -> Outcome {
        check(Input {
            guests,
            host,
            hv: &HvReserve::NONE,
            shares,
            keep_trace: true,
        })
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn codes(o: &Outcome) -> Vec<&'static str> {
        o.findings.iter().map(|f| f.rule.code()).collect()
    }

    #[test]
    fn the_config_page_window_holds_every_function() {
        for b in ["0000:00:00.0", "ffff:ff:1f.7", "0001:02:03.4"] {
            let b = Bdf::parse(b).unwrap_or_else(|e| panic!("{e}"));
            let f = cfg_frame(&b);
            assert!(f >= CFG_WINDOW && f <= Space::IoMem.max_unit());
            assert_eq!(bdf_of_frame(f), Some(b));
        }
        assert_eq!(bdf_of_frame(CFG_WINDOW - 1), None);
    }

    #[test]
    fn guest_conflicts_without_a_host_map() {
        let a = cfg(
            "a.cfg",
            "iomem = ['fe000,10']\nioports = ['300-307']\nirqs = [7]\npci = ['01:00.0']\n",
        );
        let b = cfg("b.cfg", "iomem = ['fe008,1', 'fe020,1']\nioports = ['306-30f']\nirqs = [7]\npci = ['0000:01:00.0']\n");
        let o = run(&[a, b], None, &Shares::default());
        assert_eq!(codes(&o), ["E0101", "E0102", "E0103", "E0104"]);
        for f in &o.findings {
            let p = f.primary.as_ref().map(|s| s.file.display().to_string());
            assert_eq!(p.as_deref(), Some("b.cfg"));
            assert_eq!(
                f.notes[0]
                    .span
                    .as_ref()
                    .map(|s| s.file.display().to_string())
                    .as_deref(),
                Some("a.cfg")
            );
        }
        let port = &o.findings[1];
        let r = port.resource.as_ref().map(|r| (r.first, r.last));
        assert_eq!(r, Some((0x306, 0x307)), "only the overlap is reported");
        // The non-overlapping part of b's ports was granted: the accountant holds it.
        assert!(o
            .trace
            .iter()
            .any(|l| l.op == "grant 2 ioport 0x308-0x30f exclusive" && l.output == "ok"));
    }

    #[test]
    fn declared_sharing_lets_owners_coexist() {
        let a = cfg(
            "a.cfg",
            "ioports = ['300-307']\nirqs = [7]\npci = ['01:00.0']\n",
        );
        let b = cfg(
            "b.cfg",
            "ioports = ['300-307']\nirqs = [7]\npci = ['01:00.0']\n",
        );
        let mut s = Shares::default();
        for d in ["ioport:0x300-0x307", "irq:7", "pci:01:00.0"] {
            s.declare_arg(d).unwrap_or_else(|e| panic!("{e}"));
        }
        let o = run(&[a.clone(), b.clone()], None, &s);
        assert!(o.findings.is_empty(), "{:?}", o.findings);
        // Declaring only part of it leaves the rest a conflict.
        let mut part = Shares::default();
        part.declare_arg("ioport:0x300-0x303")
            .unwrap_or_else(|e| panic!("{e}"));
        let o = run(&[a, b], None, &part);
        let port = o
            .findings
            .iter()
            .find(|f| f.rule == Rule::GuestPort)
            .map(|f| f.resource.clone());
        assert_eq!(
            port.flatten().map(|r| (r.first, r.last)),
            Some((0x304, 0x307))
        );
    }

    #[test]
    fn remaps_and_emulated_devices_are_not_resources() {
        let a = cfg("a.cfg", "serial = 'pty'\niomem = ['fe000,1@1000']\n");
        let b = cfg("b.cfg", "serial = 'pty'\niomem = ['fe100,1@1000']\n");
        assert!(run(&[a, b], None, &Shares::default()).findings.is_empty());
    }

    fn host_with_devices() -> HostMap {
        HostMap {
            pci: Some(vec![
                // A and B: BARs in one 4 KiB page, both held for guests.
                dev(
                    "01:00.0",
                    (0xfe00_0000, 0xfe00_07ff),
                    16,
                    Some("pciback"),
                    5,
                ),
                dev(
                    "02:00.0",
                    (0xfe00_0800, 0xfe00_0fff),
                    17,
                    Some("pciback"),
                    6,
                ),
                // C: in A's IOMMU group, still bound to a dom0 driver.
                dev("01:00.1", (0xfe10_0000, 0xfe10_0fff), 18, Some("e1000e"), 5),
            ]),
            ..HostMap::default()
        }
    }

    #[test]
    fn xsa_461_and_iommu_group_split_come_from_the_accountant() {
        let host = host_with_devices();
        let a = cfg("a.cfg", "pci = ['01:00.0']\n");
        let b = cfg("b.cfg", "pci = ['02:00.0']\n");
        let o = run(&[a, b], Some(&host), &Shares::default());
        let got = codes(&o);
        assert!(got.contains(&"E0501"), "{got:?}");
        assert!(got.contains(&"E0502"), "{got:?}");
        let split = o.findings.iter().find(|f| f.rule == Rule::IommuGroupSplit);
        let note = split
            .map(|f| f.notes[0].message.clone())
            .unwrap_or_default();
        assert!(
            note.contains("0000:01:00.1") && note.contains("dom0"),
            "{note}"
        );
        // One guest alone: no shared page with another owner, and the group is still split.
        let a = cfg("a.cfg", "pci = ['01:00.0']\n");
        let o = run(&[a], Some(&host), &Shares::default());
        assert_eq!(codes(&o), ["E0502"]);
    }

    #[test]
    fn a_bound_driver_answers_in_use() {
        let host = host_with_devices();
        let a = cfg("a.cfg", "pci = ['01:00.1']\niomem = ['fe100,1']\n");
        let o = run(&[a], Some(&host), &Shares::default());
        assert_eq!(codes(&o), ["E0301", "E0301"]);
        assert!(o.findings.iter().all(|f| f
            .verdict
            .as_deref()
            .is_some_and(|v| v.contains("err in-use"))));
        let name = o.findings[0]
            .resource
            .as_ref()
            .and_then(|r| r.host_name.clone());
        assert_eq!(name.as_deref(), Some("0000:01:00.1 e1000e"));
    }

    #[test]
    fn the_same_answers_on_replay() {
        let host = host_with_devices();
        let a = cfg("a.cfg", "pci = ['01:00.0']\nioports = ['300-307']\n");
        let b = cfg("b.cfg", "pci = ['02:00.0', '01:00.1']\nioports = ['304']\n");
        let o = run(&[a, b], Some(&host), &Shares::default());
        let mut replay = accountant::trace::Replay::new(TrackerKind::default());
        let mut n = 0;
        for line in o.trace_text().lines() {
            let want = line.split_once("#=> ").map(|(_, w)| w.to_string());
            match replay.feed(line) {
                Ok(Some(got)) => {
                    assert_eq!(Some(got), want, "{line}");
                    n += 1;
                }
                Ok(None) => {}
                Err(e) => panic!("{line}: {e}"),
            }
        }
        assert_eq!(n, o.trace.len());
    }
}
