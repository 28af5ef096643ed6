//! The host's own resource map: what the kernel says is where, and who holds it.
//!
//! Read from the live host (`/proc/iomem`, `/proc/ioports`, `/proc/interrupts`,
//! `/sys/bus/pci/devices/*/{resource,irq,driver,iommu_group}`, and
//! `/proc/cpuinfo` for the physical address width) or from a snapshot
//! directory with the same relative paths ([`capture()`] writes one).
//!
//! INTERFACE CONTRACT (shared by the host side and the judge; keep the names):
//! the types below and the methods on [`HostMap`].
//!
//! # Using it
//!
//! 1. Read a map: [`HostMap::read_live`] or [`HostMap::read_dir`].
//! 2. Report [`HostMap::gaps`]: what could not be checked, and why.
//! 3. Hand the judge the owners the host already has:
//!    [`HostMap::hv_reservations`] (the hypervisor), [`HostMap::dom0_claims`]
//!    (dom0's drivers), [`HostMap::ram_frames`], [`HostMap::max_frame`].
//! 4. Resolve a guest's PCI functions: [`HostMap::function_resources`]
//!    (pages, ports, line, driver, IOMMU group), [`HostMap::iommu_groups`],
//!    [`HostMap::shared_bar_pages`] (XSA-461).
//! 5. Name what a finding is about: [`HostMap::name_of`].
//!
//! ```
//! use accountant::Space;
//! use ioacct_check::host::{HostMap, HvReserve};
//!
//! let map = HostMap::read_dir("tests/data/hosts/virtio-vm".as_ref())?;
//! assert!(map.gaps.is_empty());
//! // Xen takes the console UART at 0x3f8; the host map calls it `serial`,
//! // and dom0's 8250 driver holds it too.
//! let hv = map.hv_reservations(&HvReserve::default());
//! assert!(hv.iter().any(|c| c.space == Space::IoPort && c.first == 0x3f8 && c.name == "serial"));
//! assert!(map.dom0_claims().iter().any(|c| c.space == Space::IoPort && c.first == 0x3f8));
//! let (name, span) = map.name_of(Space::IoPort, 0x3f8).expect("shown");
//! assert_eq!(name, "serial");
//! assert!(span.expect("read from a file").to_string().ends_with("proc/ioports:13"));
//! # Ok::<(), ioacct_check::host::HostError>(())
//! ```
//!
//! # Errors and gaps
//!
//! A part that is **absent** is a [`Gap`] and the rest is used: a missing
//! file or `sys/bus/pci/devices` directory, an empty `/proc` file, a
//! `/proc/iomem` or `/proc/ioports` whose addresses are all 0 (read without
//! CAP_SYS_ADMIN: "shows zero addresses: read as root (CAP_SYS_ADMIN) or
//! capture as root"), a `/proc/cpuinfo` without `address sizes` (not x86),
//! a PCI function without `resource` or `irq`. Each gap says what could then
//! not be checked.
//!
//! A part that is **present but not the kernel's** is a [`HostError`]
//! (exit status 2), naming the file and, for line-oriented files, the line:
//! a file that cannot be read (permissions, I/O, a symlink loop), a
//! directory, FIFO or device node where a file is expected, a file over its
//! size cap ([`read::PROC_LIMIT`], [`read::ATTR_LIMIT`]), a line not in the
//! kernel's format (bad hex, start after end, odd indentation, nesting
//! beyond [`resources::MAX_DEPTH`], binary data, a last line without its
//! newline, i.e. a truncated file), a `sys/bus/pci/devices` with more than
//! [`sysfs::MAX_DEVICES`] entries or an entry not named by a PCI address.
//! The reasoning: a missing part leaves the check sound for the rest, while
//! a corrupt part means the snapshot is not what the user thinks it is.
//!
//! Reading costs O(bytes) time and memory, bounded by the caps; nothing is
//! written. Claims, RAM and names are documented in [`claims`]
//! (the rules are also in `accountant/cli/HOSTMAP.md`).

use std::fmt;
use std::path::{Path, PathBuf};

use accountant::Space;

use crate::pci::Bdf;
use crate::span::Span;

pub mod capture;
pub mod claims;
pub mod cpuinfo;
pub mod interrupts;
pub mod read;
pub mod resources;
pub mod sysfs;

pub use capture::{capture, capture_from, CaptureSummary};
pub(crate) use claims::assignable_name;
pub use claims::{FunctionResources, HvReserveError, SharedPage};

/// One line of `/proc/iomem` or `/proc/ioports`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resource {
    /// First byte (iomem) or port (ioports).
    pub start: u64,
    /// Last byte or port, inclusive.
    pub end: u64,
    /// The kernel's name, control bytes escaped (`\x07`) for display.
    pub name: String,
    /// Nesting level: two spaces of indentation per level.
    pub depth: u32,
    /// Index of the enclosing entry in the same list.
    pub parent: Option<usize>,
    /// Where it was read.
    pub span: Span,
}

/// One interrupt line of `/proc/interrupts`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IrqLine {
    /// The line (GSI) number.
    pub irq: u32,
    /// The chip and trigger columns, as written (`IO-APIC   2-edge`).
    pub chip: String,
    /// The handlers' names (`timer`, `ata_piix, 0000:00:1f.2`).
    pub actions: Vec<String>,
    /// The hardware IRQ number of the chip column (`IO-APIC   4-edge`: 4),
    /// when the kernel printed one.
    pub hwirq: Option<u64>,
    /// The line (GSI) this row is, when it is one: IO-APIC, 8259 and Xen
    /// IO-APIC pirq rows; `None` for MSI and event-channel rows. See
    /// [`interrupts`] for the rule.
    pub gsi: Option<u32>,
    /// Where it was read.
    pub span: Span,
}

/// Whether a BAR decodes memory or ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarKind {
    /// A memory BAR: `start`/`end` are byte addresses.
    Mem,
    /// An I/O BAR: `start`/`end` are ports.
    Io,
}

/// One base address register of a PCI function, from sysfs `resource`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bar {
    /// Line index in `resource` (0–5 BARs, 6 the expansion ROM, 7+ bridge windows).
    pub index: u8,
    /// First byte or port.
    pub start: u64,
    /// Last byte or port, inclusive.
    pub end: u64,
    /// Memory or I/O.
    pub kind: BarKind,
}

/// A PCI function under `/sys/bus/pci/devices`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PciDevice {
    /// Its address.
    pub bdf: Bdf,
    /// Its decoded BARs (unset ones left out).
    pub bars: Vec<Bar>,
    /// Its legacy interrupt line (`irq`), where it has one (0 means none).
    pub irq: Option<u32>,
    /// The bound driver's name (`driver` link's last component).
    pub driver: Option<String>,
    /// Its IOMMU group (`iommu_group` link's last component).
    pub iommu_group: Option<u32>,
    /// The device's `resource` file.
    pub span: Span,
}

impl PciDevice {
    /// True when the bound driver is one that holds a device for a guest
    /// (`pciback`, `xen-pciback`, `vfio-pci`, `pci-stub`) or none is bound:
    /// dom0 is not using it.
    pub fn assignable(&self) -> bool {
        match self.driver.as_deref() {
            None => true,
            Some(d) => matches!(d, "pciback" | "xen-pciback" | "vfio-pci" | "pci-stub"),
        }
    }
}

/// Something the check could not read or use, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gap {
    /// The file or directory.
    pub path: PathBuf,
    /// What follows for the check ("port conflicts with dom0's drivers not checked").
    pub why: String,
}

/// One resource range held by the hypervisor or by dom0, in accountant units
/// (frames for [`Space::IoMem`], ports, lines), with the host's own name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// The space.
    pub space: Space,
    /// First unit.
    pub first: u64,
    /// Last unit, inclusive.
    pub last: u64,
    /// The host's name for it: `0000:00:19.0 e1000e`, `serial`, `Local APIC`.
    pub name: String,
    /// The PCI function it belongs to, if any.
    pub device: Option<Bdf>,
    /// Where the host map says so, if it was read from a file.
    pub span: Option<Span>,
}

/// What the hypervisor keeps for itself (Xen's defaults; each can be turned
/// off or changed by the command line's `--hv-reserve`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HvReserve {
    /// Local APIC page(s), as the host map names them.
    pub lapic: bool,
    /// IO-APIC pages.
    pub ioapic: bool,
    /// HPET pages.
    pub hpet: bool,
    /// The legacy PIC (0x20-0x21, 0xa0-0xa1).
    pub pic: bool,
    /// The PIT (0x40-0x43).
    pub pit: bool,
    /// ELCR (0x4d0-0x4d1).
    pub elcr: bool,
    /// PCI configuration mechanism #1 (0xcf8-0xcff).
    pub pci_conf: bool,
    /// The console UART's base port (Xen's `com1`, 0x3f8 by default); `None`: no console.
    pub console: Option<u16>,
}

impl Default for HvReserve {
    fn default() -> Self {
        HvReserve {
            lapic: true,
            ioapic: true,
            hpet: true,
            pic: true,
            pit: true,
            elcr: true,
            pci_conf: true,
            console: Some(0x3f8),
        }
    }
}

/// A host map that could not be read at all: exit status 2, naming the file.
#[derive(Debug)]
pub enum HostError {
    /// The snapshot root is not a directory.
    NotADirectory(PathBuf),
    /// A file could not be read (a directory where a file was expected, I/O).
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        error: std::io::Error,
    },
    /// A line is not in the kernel's format.
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: u32,
        /// What is wrong.
        why: String,
    },
    /// A file larger than the reader accepts.
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit in bytes.
        limit: u64,
    },
    /// A file or directory of a capture could not be written.
    Write {
        /// The file or directory.
        path: PathBuf,
        /// What the OS said.
        error: std::io::Error,
    },
    /// A directory with more entries than the reader accepts.
    TooMany {
        /// The directory.
        path: PathBuf,
        /// The limit in entries.
        limit: usize,
    },
    /// An entry that is not what the kernel writes there, outside any
    /// line-oriented file (a sysfs entry not named by a PCI address, an
    /// IOMMU group that is not a number, a capture target that is not empty).
    Invalid {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostError::NotADirectory(p) => {
                write!(
                    f,
                    "{}: not a directory (a host snapshot is one)",
                    p.display()
                )
            }
            HostError::Read { path, error } => write!(f, "{}: {error}", path.display()),
            HostError::Write { path, error } => {
                write!(f, "{}: cannot write: {error}", path.display())
            }
            HostError::Parse { path, line, why } => {
                write!(f, "{}:{line}: {why}", path.display())
            }
            HostError::TooLarge { path, limit } => write!(
                f,
                "{}: larger than {limit} bytes: not the kernel's file",
                path.display()
            ),
            HostError::TooMany { path, limit } => write!(
                f,
                "{}: more than {limit} entries: not the kernel's directory",
                path.display()
            ),
            HostError::Invalid { path, why } => write!(f, "{}: {why}", path.display()),
        }
    }
}

impl std::error::Error for HostError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HostError::Read { error, .. } | HostError::Write { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// The snapshot-relative paths of the parts of a host map.
pub mod paths {
    /// `/proc/iomem`.
    pub const IOMEM: &str = "proc/iomem";
    /// `/proc/ioports`.
    pub const IOPORTS: &str = "proc/ioports";
    /// `/proc/interrupts`.
    pub const INTERRUPTS: &str = "proc/interrupts";
    /// `/proc/cpuinfo`.
    pub const CPUINFO: &str = "proc/cpuinfo";
    /// `/sys/bus/pci/devices`.
    pub const PCI_DEVICES: &str = "sys/bus/pci/devices";
}

/// The host's resource map.
#[derive(Clone, Debug, Default)]
pub struct HostMap {
    /// `proc/iomem`, byte addresses; `None` when missing or unusable (see `gaps`).
    pub iomem: Option<Vec<Resource>>,
    /// `proc/ioports`.
    pub ioports: Option<Vec<Resource>>,
    /// `proc/interrupts`, sorted by IRQ number (the kernel's order).
    pub interrupts: Option<Vec<IrqLine>>,
    /// `sys/bus/pci/devices`, sorted by address.
    pub pci: Option<Vec<PciDevice>>,
    /// Physical address width in bits (`/proc/cpuinfo` `address sizes`).
    pub phys_bits: Option<u8>,
    /// What could not be read or used.
    pub gaps: Vec<Gap>,
}

impl HostMap {
    /// Reads the live host (paths under `/`).
    pub fn read_live() -> Result<HostMap, HostError> {
        HostMap::read_dir(Path::new("/"))
    }

    /// Reads a snapshot directory (or `/`): the same relative paths. What is
    /// missing, empty or unprivileged becomes a [`Gap`]; what is present but
    /// not the kernel's is a [`HostError`] (see the module doc).
    pub fn read_dir(root: &Path) -> Result<HostMap, HostError> {
        if !root.is_dir() {
            return Err(HostError::NotADirectory(root.to_path_buf()));
        }
        let mut map = HostMap::default();
        map.iomem = map.read_tree(root, paths::IOMEM, u64::MAX, "memory")?;
        map.ioports = map.read_tree(root, paths::IOPORTS, 0xffff_ffff, "port")?;

        let path = root.join(paths::INTERRUPTS);
        map.interrupts = match read::read_capped(&path, read::PROC_LIMIT)? {
            None => {
                map.gap(path, "missing: interrupt-line conflicts with dom0's drivers and the console's line not checked");
                None
            }
            Some(d) if d.is_empty() => {
                map.gap(path, "empty: interrupt-line conflicts with dom0's drivers and the console's line not checked");
                None
            }
            Some(d) => Some(interrupts::parse(&path, &d)?),
        };

        let path = root.join(paths::CPUINFO);
        map.phys_bits = match read::read_capped(&path, read::PROC_LIMIT)? {
            None => {
                map.gap(
                    path,
                    "missing: iomem beyond the physical address width not checked",
                );
                None
            }
            Some(d) => {
                let bits = cpuinfo::phys_bits(&path, &d)?;
                if bits.is_none() {
                    map.gap(path, "no `address sizes` line: iomem beyond the physical address width not checked");
                }
                bits
            }
        };

        let path = root.join(paths::PCI_DEVICES);
        map.pci = match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                map.gap(path, "missing: drivers bound to PCI functions, IOMMU groups and BARs from sysfs not checked (BARs are taken from /proc/iomem and /proc/ioports where they show them)");
                None
            }
            _ => {
                let mut missing = Vec::new();
                let devs = sysfs::read_devices(&path, &mut missing)?;
                // One gap per attribute, not per function: a snapshot
                // without `irq` files would otherwise list thousands.
                for (attr, what) in [("resource", "BARs"), ("irq", "legacy interrupt lines")] {
                    let lacking: Vec<&PathBuf> = missing
                        .iter()
                        .filter(|m| m.file_name().is_some_and(|f| f == attr))
                        .collect();
                    if let Some(first) = lacking.first() {
                        let why = if lacking.len() == 1 {
                            format!("missing: that function's {what} not checked")
                        } else {
                            format!(
                                "missing, and for {} more functions: their {what} not checked",
                                lacking.len() - 1
                            )
                        };
                        map.gap(first.to_path_buf(), &why);
                    }
                }
                Some(devs)
            }
        };

        let ioapics = map.named_entries("IOAPIC ").len();
        if let Some(rows) = map.interrupts.as_mut() {
            interrupts::assign_gsis(rows, ioapics);
        }
        Ok(map)
    }

    fn gap(&mut self, path: PathBuf, why: &str) {
        self.gaps.push(Gap {
            path,
            why: why.to_string(),
        });
    }

    fn read_tree(
        &mut self,
        root: &Path,
        rel: &str,
        max: u64,
        what: &str,
    ) -> Result<Option<Vec<Resource>>, HostError> {
        let path = root.join(rel);
        let Some(data) = read::read_capped(&path, read::PROC_LIMIT)? else {
            self.gap(
                path,
                &format!("missing: {what} conflicts with the host map (dom0's drivers, the hypervisor's devices{}) not checked", if what == "memory" { ", RAM" } else { "" }),
            );
            return Ok(None);
        };
        if data.is_empty() {
            self.gap(
                path,
                &format!("empty: {what} conflicts with the host map not checked"),
            );
            return Ok(None);
        }
        let entries = resources::parse(&path, &data, max)?;
        if resources::all_zero(&entries) {
            self.gap(
                path,
                &format!("shows zero addresses: read as root (CAP_SYS_ADMIN) or capture as root; {what} conflicts with the host map not checked"),
            );
            return Ok(None);
        }
        Ok(Some(entries))
    }

    /// The PCI function at `bdf`, if sysfs was read and has it.
    /// O(log n) on a map [`read_dir`](HostMap::read_dir) made (`pci` sorted
    /// by address); a map built by hand in another order is searched
    /// linearly when the binary search misses.
    pub fn device(&self, bdf: &Bdf) -> Option<&PciDevice> {
        let pci = self.pci.as_ref()?;
        match pci.binary_search_by_key(bdf, |d| d.bdf) {
            Ok(i) => pci.get(i),
            Err(_) => pci.iter().find(|d| d.bdf == *bdf),
        }
    }
}
