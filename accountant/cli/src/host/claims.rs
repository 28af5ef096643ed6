//! Who holds what on the host: the hypervisor's reservations, dom0's
//! drivers, RAM, and the facts about PCI functions the judge needs.
//!
//! Units are the accountant's: 4 KiB frames for [`Space::IoMem`], ports,
//! lines (GSIs). A byte range becomes the frames it touches (`start >> 12`
//! to `end >> 12`): a frame with any byte of a resource in it is that
//! resource's, because mapping the frame exposes that byte. Frames beyond
//! the accountant's 40-bit frame space are left out.
//!
//! # What dom0 holds ([`HostMap::dom0_claims`])
//!
//! dom0 holds a resource when a driver of its kernel is bound to it, other
//! than the drivers that hold a device *for* a guest (`pciback`,
//! `xen-pciback`, `vfio-pci`, `pci-stub`, and the regions and handlers they
//! register, `vfio…`, `xen-pciback…`):
//!
//! 1. **PCI functions**: a function whose sysfs `driver` is such a driver
//!    holds its BARs (lines 0–6 of `resource`: six BARs and the ROM; SR-IOV
//!    BARs and bridge windows are not the function's own registers) and its
//!    legacy line (`irq`, translated to a GSI through `/proc/interrupts`; a
//!    number that `/proc/interrupts` shows as an MSI is not a line). Without
//!    sysfs, a function entry in `/proc/iomem` or `/proc/ioports`
//!    (`0000:00:19.0`) holds its range when any of that function's entries
//!    has a driver's entry under it (`e1000e`); the claim is named
//!    `0000:00:19.0 e1000e`; when one of them is an assignable driver's
//!    (`vfio-pci`), that is the bound driver. Under a function held for a
//!    guest, an entry of another driver (a firmware framebuffer, `vesafb`,
//!    still mapping a GPU's BAR) is dom0's by rule 2.
//! 2. **Other `/proc` entries**: the outermost entry that is not
//!    *structural* is a claim (`serial`, `i8042`, `rtc0`, `ACPI PM1a_EVT_BLK`,
//!    `APEI ERST`), its children included. Structural, and so not dom0's
//!    use: bus windows (`PCI Bus …`, `PCI CardBus …`), `PCI MMCONFIG`/`PCI
//!    ECAM`, `Reserved`, `System RAM` and everything under it (kernel image,
//!    crash kernel), `RAM buffer`, ROMs (`System ROM`, `Video ROM`, `Adapter
//!    ROM`, `Video RAM area`), `ACPI Tables`, `ACPI Non-volatile Storage`,
//!    `Persistent Memory`, `Soft Reserved`, `Unknown E820 type`, firmware
//!    device nodes (`pnp 00:05`, ACPI ids such as `PNP0103:00`), and the
//!    hypervisor's own hardware as the kernel names it (`Local APIC`,
//!    `IOAPIC N`, `HPET N`, `dmarN`, `amd_iommu`, `pic1`, `pic2`, `timer0`,
//!    `timer1`, `PCI conf1`): Xen takes those at boot, dom0 sees them
//!    virtualised. A structural entry's children are examined in turn.
//! 3. **Interrupt lines**: a line (see [`interrupts`](super::interrupts))
//!    whose handlers include any but the assignable drivers' is held, named
//!    by its handlers (`ttyS0`, `ehci_hcd:usb1, PCIe PME`); the `timer`
//!    handler (the PIT's, on line 0 or, through the usual ISA override, on
//!    line 2) and the 8259's `cascade` are the platform's, not a driver's.
//!
//! Each unit appears in at most one claim: where entries overlap (two
//! drivers' registers in one frame), the entry that starts first keeps the
//! shared units.
//!
//! # What the hypervisor keeps ([`HostMap::hv_reservations`])
//!
//! From Xen's `dom0_setup_permissions` (`xen/arch/x86/dom0_build.c`) and
//! its console driver (`ns16550_endboot`, `xen/drivers/char/ns16550.c`):
//! the local APIC page, each IO-APIC page, the HPET page (Xen's timer; Xen
//! denies it outright when ACPI asks for page protection and maps it
//! read-only otherwise), the PIC (0x20–0x21, 0xa0–0xa1), the PIT
//! (0x40–0x43, 0x61, line 0, which Xen never grants: dom0's lines start
//! at 1, and the line the host shows the `timer` handler on), the ELCR (0x4d0–0x4d1), PCI configuration mechanism #1
//! (0xcf8–0xcff), and the console UART (its eight ports and, when
//! `/proc/interrupts` shows its `ttySn` handler, its line). Pages are the
//! ones the host map names `Local APIC`, `IOAPIC N`, `HPET N`; when the map
//! lacks them, the architectural addresses (0xfee00000, 0xfec00000,
//! 0xfed00000) are used and the claim's name says so.

use std::collections::BTreeMap;

use accountant::Space;

use super::{BarKind, Claim, HostMap, HvReserve, IrqLine, PciDevice, Resource};
use crate::pci::Bdf;
use crate::span::Span;

/// Drivers that hold a function for a guest, as sysfs names them.
const ASSIGNABLE: [&str; 4] = ["pciback", "xen-pciback", "vfio-pci", "pci-stub"];

/// Whether a `/proc` entry or handler name is one an assignable driver
/// registers (`vfio-pci`, `vfio-intx(0000:01:00.0)`, `xen-pciback[…]`).
pub(crate) fn assignable_name(name: &str) -> bool {
    ASSIGNABLE.contains(&name)
        || name.starts_with("vfio")
        || name.starts_with("xen-pciback")
        || name.starts_with("pciback")
        || name.starts_with("pci-stub")
}

/// See the module doc, rule 2.
pub(super) fn structural(name: &str) -> bool {
    const EXACT: [&str; 25] = [
        "Reserved",
        "reserved",
        "System RAM",
        "System ROM",
        "Video ROM",
        "Adapter ROM",
        "Video RAM area",
        "ACPI Tables",
        "ACPI Non-volatile Storage",
        "RAM buffer",
        "Soft Reserved",
        "Unknown E820 type",
        "Persistent Memory",
        "Persistent Memory (legacy)",
        "Kernel code",
        "Kernel rodata",
        "Kernel data",
        "Kernel bss",
        "Crash kernel",
        "Local APIC",
        "PCI conf1",
        "pic1",
        "pic2",
        "timer0",
        "timer1",
    ];
    const PREFIX: [&str; 9] = [
        "PCI Bus ",
        "PCI CardBus ",
        "PCI ECAM",
        "PCI MMCONFIG",
        "pnp ",
        "IOAPIC ",
        "HPET ",
        "dmar",
        "amd_iommu",
    ];
    EXACT.contains(&name) || PREFIX.iter().any(|p| name.starts_with(p)) || acpi_id(name)
}

/// An ACPI device node's name: `PNP0103:00`, `INT344B:00`, `AMZNC10C:00`.
fn acpi_id(name: &str) -> bool {
    let Some((id, inst)) = name.split_once(':') else {
        return false;
    };
    let id = id.as_bytes();
    let vendor = id.len().saturating_sub(4);
    (vendor == 3 || vendor == 4)
        && id[..vendor]
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        && id[vendor..].iter().all(|c| c.is_ascii_hexdigit())
        && !inst.is_empty()
        && inst.len() <= 4
        && inst.bytes().all(|c| c.is_ascii_hexdigit())
}

/// The PCI function a `/proc` entry is named for (`0000:00:19.0`), if any.
fn entry_bdf(name: &str) -> Option<Bdf> {
    if name.len() == 12 {
        Bdf::parse(name).ok()
    } else {
        None
    }
}

/// Frames a byte range touches, clipped to the accountant's frame space.
fn frames(start: u64, end: u64) -> Option<(u64, u64)> {
    let max = Space::IoMem.max_unit();
    let (first, last) = (start >> 12, end >> 12);
    (first <= max).then(|| (first, last.min(max)))
}

/// Units of a `/proc` entry in `space`.
fn units(space: Space, r: &Resource) -> Option<(u64, u64)> {
    match space {
        Space::IoMem => frames(r.start, r.end),
        _ => (r.end <= space.max_unit()).then_some((r.start, r.end)),
    }
}

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

/// Why `--hv-reserve` did not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HvReserveError {
    /// An empty list or an empty item (`lapic,,pit`).
    Empty,
    /// An item that is not one of `lapic`, `ioapic`, `hpet`, `pic`, `pit`,
    /// `elcr`, `pci-conf`, `console[=PORT]`.
    Unknown(String),
    /// A console port that is not a number from 0 to 0xfff8.
    BadPort(String),
}

impl std::fmt::Display for HvReserveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HvReserveError::Empty => f.write_str("an empty item: expected `none`, `default` or a comma list such as `lapic,ioapic,hpet,pic,pit,elcr,pci-conf,console=0x3f8`"),
            HvReserveError::Unknown(s) => write!(f, "`{s}` is not one of lapic, ioapic, hpet, pic, pit, elcr, pci-conf, console[=PORT]"),
            HvReserveError::BadPort(s) => write!(f, "console port `{s}` is not a number from 0 to 0xfff8 (hex with 0x, or decimal)"),
        }
    }
}

impl std::error::Error for HvReserveError {}

impl HvReserve {
    /// Nothing reserved.
    pub const NONE: HvReserve = HvReserve {
        lapic: false,
        ioapic: false,
        hpet: false,
        pic: false,
        pit: false,
        elcr: false,
        pci_conf: false,
        console: None,
    };

    /// Parses the command line's `--hv-reserve`: `none`, `default` (Xen's
    /// defaults, [`HvReserve::default`]), or a comma list of exactly what
    /// is reserved: `lapic`, `ioapic`, `hpet`, `pic`, `pit`, `elcr`,
    /// `pci-conf`, `console` (at 0x3f8) or `console=PORT` (`0x2f8`, `760`).
    pub fn parse(s: &str) -> Result<HvReserve, HvReserveError> {
        let s = s.trim();
        match s {
            "" => return Err(HvReserveError::Empty),
            "none" => return Ok(HvReserve::NONE),
            "default" => return Ok(HvReserve::default()),
            _ => {}
        }
        let mut r = HvReserve::NONE;
        for item in s.split(',').map(str::trim) {
            match item {
                "" => return Err(HvReserveError::Empty),
                "lapic" => r.lapic = true,
                "ioapic" => r.ioapic = true,
                "hpet" => r.hpet = true,
                "pic" => r.pic = true,
                "pit" => r.pit = true,
                "elcr" => r.elcr = true,
                "pci-conf" => r.pci_conf = true,
                "console" => r.console = Some(0x3f8),
                _ => {
                    let Some(port) = item.strip_prefix("console=") else {
                        return Err(HvReserveError::Unknown(item.to_string()));
                    };
                    let p = port.trim();
                    let v = match p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
                        Some(h) => u16::from_str_radix(h, 16),
                        None => p.parse::<u16>(),
                    }
                    .ok()
                    .filter(|&v| v <= 0xfff8)
                    .ok_or_else(|| HvReserveError::BadPort(port.to_string()))?;
                    r.console = Some(v);
                }
            }
        }
        Ok(r)
    }
}

/// Which of the standard UARTs `base` is (`ttyS0` at 0x3f8…), for finding
/// its line in `/proc/interrupts`.
fn standard_tty(base: u16) -> Option<&'static str> {
    match base {
        0x3f8 => Some("ttyS0"),
        0x2f8 => Some("ttyS1"),
        0x3e8 => Some("ttyS2"),
        0x2e8 => Some("ttyS3"),
        _ => None,
    }
}

/// Sorted, with overlapping or touching ranges joined: two sub-page BARs
/// of one function in one frame are that frame once.
fn merged(mut v: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    v.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(v.len());
    for (a, b) in v {
        match out.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// Keeps each unit in at most one claim: sorts by space and first unit
/// (stable, so the order pushed breaks ties) and trims overlaps.
fn disjoint(mut v: Vec<Claim>) -> Vec<Claim> {
    v.sort_by_key(|c| (c.space as u8, c.first));
    let mut out: Vec<Claim> = Vec::with_capacity(v.len());
    for mut c in v {
        if let Some(prev) = out.last() {
            if prev.space == c.space && c.first <= prev.last {
                if c.last <= prev.last {
                    continue;
                }
                c.first = prev.last + 1;
            }
        }
        out.push(c);
    }
    out
}

impl HostMap {
    fn tree(&self, space: Space) -> Option<&[Resource]> {
        match space {
            Space::IoMem => self.iomem.as_deref(),
            Space::IoPort => self.ioports.as_deref(),
            Space::Irq => None,
        }
    }

    /// Entries of `/proc/iomem` whose name starts with `prefix` (`IOAPIC `).
    pub(super) fn named_entries(&self, prefix: &str) -> Vec<&Resource> {
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

    /// The `PCI MMCONFIG`/`PCI ECAM` windows (PCI configuration space by
    /// memory), as frame claims with the host's names.
    pub fn ecam_windows(&self) -> Vec<Claim> {
        self.iomem
            .iter()
            .flatten()
            .filter(|r| r.name.starts_with("PCI MMCONFIG") || r.name.starts_with("PCI ECAM"))
            .filter_map(|r| {
                let (first, last) = frames(r.start, r.end)?;
                Some(Claim {
                    space: Space::IoMem,
                    first,
                    last,
                    name: r.name.clone(),
                    device: None,
                    span: Some(r.span.clone()),
                })
            })
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
    fn proc_drivers(&self) -> BTreeMap<Bdf, String> {
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

    /// The deepest entry of `tree` overlapping `[lo, hi]`.
    fn deepest(tree: &[Resource], lo: u64, hi: u64) -> Option<&Resource> {
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
    fn display_name(tree: &[Resource], r: &Resource) -> String {
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

    /// What the hypervisor keeps for itself on this host, with the host's
    /// names (see the module doc).
    pub fn hv_reservations(&self, policy: &HvReserve) -> Vec<Claim> {
        let mut v = Vec::new();
        let pages =
            |v: &mut Vec<Claim>, on: bool, prefix: &str, exact: bool, arch: u64, label: &str| {
                if !on {
                    return;
                }
                let found: Vec<&Resource> = self
                    .iomem
                    .iter()
                    .flatten()
                    .filter(|r| {
                        if exact {
                            r.name == prefix
                        } else {
                            r.name.starts_with(prefix)
                        }
                    })
                    .collect();
                if found.is_empty() {
                    v.push(Claim {
                        space: Space::IoMem,
                        first: arch >> 12,
                        last: arch >> 12,
                        name: format!(
                        "{label} (architectural address {arch:#x}; the host map does not show it)"
                    ),
                        device: None,
                        span: None,
                    });
                }
                for r in found {
                    if let Some((first, last)) = frames(r.start, r.end) {
                        v.push(Claim {
                            space: Space::IoMem,
                            first,
                            last,
                            name: r.name.clone(),
                            device: None,
                            span: Some(r.span.clone()),
                        });
                    }
                }
            };
        pages(
            &mut v,
            policy.lapic,
            "Local APIC",
            true,
            0xfee0_0000,
            "Local APIC",
        );
        pages(
            &mut v,
            policy.ioapic,
            "IOAPIC ",
            false,
            0xfec0_0000,
            "IOAPIC 0",
        );
        pages(&mut v, policy.hpet, "HPET ", false, 0xfed0_0000, "HPET 0");

        let mut ports = |on: bool, first: u64, last: u64, label: &str| {
            if on {
                v.push(self.port_claim(first, last, label));
            }
        };
        ports(policy.pic, 0x20, 0x21, "PIC (master)");
        ports(policy.pic, 0xa0, 0xa1, "PIC (slave)");
        ports(policy.pit, 0x40, 0x43, "PIT");
        ports(policy.pit, 0x61, 0x61, "PIT channel 2 / speaker control");
        ports(policy.elcr, 0x4d0, 0x4d1, "ELCR");
        ports(policy.pci_conf, 0xcf8, 0xcff, "PCI conf1");
        if let Some(base) = policy.console {
            let base = u64::from(base);
            ports(true, base, base + 7, "console UART");
        }
        if policy.pit {
            // Xen grants dom0 lines from 1: line 0 is its own; the PIT's
            // line is where the host shows the `timer` handler (GSI 2
            // through the ISA override on most hosts).
            let timer = self
                .lines()
                .into_iter()
                .find(|(_, r)| r.actions.iter().any(|a| a == "timer"));
            if timer.is_none_or(|(g, _)| g != 0) {
                v.push(Claim {
                    space: Space::Irq,
                    first: 0,
                    last: 0,
                    name: "line 0 (the hypervisor grants dom0 lines from 1)".into(),
                    device: None,
                    span: None,
                });
            }
            if let Some((g, r)) = timer {
                v.push(Claim {
                    space: Space::Irq,
                    first: u64::from(g),
                    last: u64::from(g),
                    name: r.actions.join(", "),
                    device: None,
                    span: Some(r.span.clone()),
                });
            }
        }
        if let Some(tty) = policy.console.and_then(standard_tty) {
            if let Some((g, r)) = self
                .lines()
                .into_iter()
                .find(|(_, r)| r.actions.iter().any(|a| a == tty))
            {
                v.push(Claim {
                    space: Space::Irq,
                    first: u64::from(g),
                    last: u64::from(g),
                    name: r.actions.join(", "),
                    device: None,
                    span: Some(r.span.clone()),
                });
            }
        }
        disjoint(v)
    }

    /// A port-range claim named as the host map names it (the deepest
    /// non-structural-window entry covering it), else `label`.
    fn port_claim(&self, first: u64, last: u64, label: &str) -> Claim {
        let named = self.ioports.as_deref().and_then(|t| {
            HostMap::deepest(t, first, last)
                .filter(|r| !(r.name.starts_with("PCI Bus ") || r.name.starts_with("pnp ")))
                .filter(|r| r.start <= first && last <= r.end)
        });
        Claim {
            space: Space::IoPort,
            first,
            last,
            name: named.map_or_else(|| label.to_string(), |r| r.name.clone()),
            device: None,
            span: named.map(|r| r.span.clone()),
        }
    }

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

/// `0000:00:19.0 e1000e`, or the address alone when no driver is bound.
fn device_name(d: &PciDevice) -> String {
    match &d.driver {
        Some(drv) => format!("{} {drv}", d.bdf),
        None => d.bdf.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hv_reserve_parses() {
        assert_eq!(HvReserve::parse("none"), Ok(HvReserve::NONE));
        assert_eq!(HvReserve::parse("default"), Ok(HvReserve::default()));
        let r = HvReserve::parse("lapic, pit,console=0x2f8").expect("parses");
        assert!(r.lapic && r.pit && !r.ioapic && !r.pic && !r.pci_conf);
        assert_eq!(r.console, Some(0x2f8));
        assert_eq!(
            HvReserve::parse("console=760").expect("decimal").console,
            Some(760)
        );
        assert_eq!(
            HvReserve::parse("console").expect("bare").console,
            Some(0x3f8)
        );
        assert_eq!(
            HvReserve::parse("lapic,apic"),
            Err(HvReserveError::Unknown("apic".into()))
        );
        assert_eq!(HvReserve::parse("lapic,,pit"), Err(HvReserveError::Empty));
        assert_eq!(HvReserve::parse(""), Err(HvReserveError::Empty));
        assert_eq!(
            HvReserve::parse("console=0xfffa"),
            Err(HvReserveError::BadPort("0xfffa".into()))
        );
        assert_eq!(
            HvReserve::parse("console=com1"),
            Err(HvReserveError::BadPort("com1".into()))
        );
    }

    #[test]
    fn structural_names() {
        for n in [
            "PCI Bus 0000:00",
            "Reserved",
            "pnp 00:05",
            "PNP0103:00",
            "IOAPIC 0",
            "HPET 0",
            "PCI MMCONFIG 0000 [bus 00-3f]",
            "pic1",
            "AMZNC10C:00",
        ] {
            assert!(structural(n), "{n}");
        }
        for n in [
            "serial",
            "e1000e",
            "i8042",
            "APEI ERST",
            "INT344B:00 INT344B:00",
            "keyboard",
        ] {
            assert!(!structural(n), "{n}");
        }
    }

    #[test]
    fn overlapping_claims_become_disjoint() {
        let c = |first, last, name: &str| Claim {
            space: Space::IoMem,
            first,
            last,
            name: name.into(),
            device: None,
            span: None,
        };
        let v = disjoint(vec![
            c(5, 9, "b"),
            c(0, 5, "a"),
            c(6, 7, "inner"),
            c(20, 20, "d"),
        ]);
        let got: Vec<(u64, u64, &str)> = v
            .iter()
            .map(|c| (c.first, c.last, c.name.as_str()))
            .collect();
        assert_eq!(got, [(0, 5, "a"), (6, 9, "b"), (20, 20, "d")]);
    }
}
