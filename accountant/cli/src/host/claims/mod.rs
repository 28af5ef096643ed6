//! Who holds what on the host: the hypervisor's reservations, dom0's
//! drivers, RAM, and the facts about PCI functions the judge needs.
//!
//! Units are the accountant's: 4 KiB frames for [`Space::IoMem`], ports,
//! lines (GSIs). A byte range becomes the frames it touches (`start >> 12`
//! to `end >> 12`): a frame with any byte of a resource in it is that
//! resource's, because mapping the frame exposes that byte. Frames beyond
//! the accountant's 40-bit frame space are left out.
//!
//! Each source of claims has a file of its own:
//!
//! * `dom0` — what dom0's bound drivers hold ([`HostMap::dom0_claims`]).
//! * `hv` — what the hypervisor keeps ([`HostMap::hv_reservations`]) and
//!   the `--hv-reserve` option that adjusts it ([`HvReserve::parse`]).
//! * `functions` — PCI functions: their resources from sysfs or `/proc`
//!   ([`HostMap::function_resources`]), BARs of two functions in one page,
//!   IOMMU groups, the ECAM windows.
//! * `names` — lookups on the map: RAM frames, interrupt lines, the
//!   address width, and the host's own name for a unit ([`HostMap::name_of`]).
//!
//! This file holds what they share: the naming rules (assignable drivers,
//! structural entries) and the conversions from byte ranges to units.
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
//!
//! [`HostMap::dom0_claims`]: super::HostMap::dom0_claims
//! [`HostMap::hv_reservations`]: super::HostMap::hv_reservations
//! [`HvReserve::parse`]: super::HvReserve::parse
//! [`HostMap::function_resources`]: super::HostMap::function_resources
//! [`HostMap::name_of`]: super::HostMap::name_of

use accountant::Space;

use super::{Claim, IrqLine, PciDevice, Resource};
use crate::pci::Bdf;

mod dom0;
mod functions;
mod hv;
mod names;

pub use functions::{FunctionResources, SharedPage};
pub use hv::HvReserveError;

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

impl Claim {
    /// A `/proc/iomem` entry's frames, claimed under the entry's own name.
    fn iomem_entry(r: &Resource) -> Option<Claim> {
        let (first, last) = frames(r.start, r.end)?;
        Some(Claim {
            space: Space::IoMem,
            first,
            last,
            name: r.name.clone(),
            device: None,
            span: Some(r.span.clone()),
        })
    }

    /// Line `gsi`, claimed under the names of all its handlers.
    fn line(gsi: u32, r: &IrqLine) -> Claim {
        Claim {
            space: Space::Irq,
            first: u64::from(gsi),
            last: u64::from(gsi),
            name: r.actions.join(", "),
            device: None,
            span: Some(r.span.clone()),
        }
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
