//! The one judge: host claims and guest requests become a boot line and a
//! trace, the trace runs through [`accountant::ops::execute`], and the
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
//!
//! # Files
//!
//! * `units` — the units the judge asks about: the configuration-page
//!   window of PCI functions, and how a range is named in messages.
//! * `ask` — deciding via the accountant: runs each op through
//!   [`accountant::ops::execute`], parses its answer, splits a request
//!   around refusals and keeps the table of who was granted what.
//! * `collect` — collecting claims: the hypervisor's reservations, dom0's
//!   in-use resources and each guest's requests, in trace order.
//! * `explain` — findings and their explanation: which rule an answer is,
//!   the message, the note at the other owner, and the IOMMU group split.

use std::collections::HashMap;
use std::fmt;

use accountant::{Accountant, BootOptions, Space, TrackerKind, MAX_DOMID};

use crate::finding::Finding;
use crate::guest::Guest;
use crate::host::{HostMap, HvReserve};
use crate::pci::Bdf;
use crate::rules::Rule;
use crate::share::Shares;
use crate::span::Span;

mod ask;
mod collect;
mod explain;
mod units;

use units::range_text;
pub use units::{bdf_of_frame, cfg_frame, resource_text, CFG_WINDOW};

/// Most ops spent on one request while splitting it around refusals.
pub const MAX_OPS_PER_REQUEST: usize = 1024;
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
