//! `ioacct capture DIR`: a snapshot of the live host that [`HostMap::read_dir`]
//! reads back, so a host can be checked elsewhere.
//!
//! Layout (paths relative to `DIR`, the same as on the host):
//!
//! ```text
//! proc/iomem  proc/ioports  proc/interrupts  proc/cpuinfo
//! sys/bus/pci/devices/SSSS:BB:DD.F/resource
//! sys/bus/pci/devices/SSSS:BB:DD.F/irq
//! sys/bus/pci/devices/SSSS:BB:DD.F/driver       plain file: the driver's name
//! sys/bus/pci/devices/SSSS:BB:DD.F/iommu_group  plain file: the group number
//! ```
//!
//! Files are copied byte for byte, with the readers' size caps. The
//! `driver` and `iommu_group` symlinks become plain files holding the last
//! component of their target (the part the reader uses), so a snapshot
//! survives `tar`, `scp` and filesystems without symlinks. Parts the host
//! lacks are left out and listed in [`CaptureSummary::gaps`]; unprivileged
//! `/proc/iomem` is captured as it reads (zeros) and reported as a gap, so
//! the caller can tell the user to capture as root.

use std::path::{Path, PathBuf};

use super::read::{read_capped, ATTR_LIMIT, PROC_LIMIT};
use super::sysfs::{link_name, MAX_DEVICES};
use super::{paths, Gap, HostError, HostMap};
use crate::pci::Bdf;

/// What a capture wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureSummary {
    /// Files written.
    pub files: usize,
    /// PCI functions captured.
    pub devices: usize,
    /// What the snapshot lacks (the gaps [`HostMap::read_dir`] reports on it).
    pub gaps: Vec<Gap>,
}

/// Captures the live host (`/`) into `dir`, which must be absent or empty.
pub fn capture(dir: &Path) -> Result<CaptureSummary, HostError> {
    capture_from(Path::new("/"), dir)
}

/// Captures the host map under `root` (a live `/` or another snapshot) into
/// `dir`, which must be absent or empty. Nothing is written when `root`'s
/// map does not read (the same errors as [`HostMap::read_dir`]).
pub fn capture_from(root: &Path, dir: &Path) -> Result<CaptureSummary, HostError> {
    // Read first: a map that does not parse is not captured.
    HostMap::read_dir(root)?;
    if dir.exists() {
        let mut rd = std::fs::read_dir(dir).map_err(|error| HostError::Read {
            path: dir.to_path_buf(),
            error,
        })?;
        if rd.next().is_some() {
            return Err(HostError::Invalid {
                path: dir.to_path_buf(),
                why: "not empty: a capture goes into a new or empty directory".into(),
            });
        }
    }
    let mut files = 0;
    for rel in [
        paths::IOMEM,
        paths::IOPORTS,
        paths::INTERRUPTS,
        paths::CPUINFO,
    ] {
        if let Some(data) = read_capped(&root.join(rel), PROC_LIMIT)? {
            write(&dir.join(rel), &data)?;
            files += 1;
        }
    }
    let mut devices = 0;
    let src = root.join(paths::PCI_DEVICES);
    if src.exists() {
        let dst = dir.join(paths::PCI_DEVICES);
        mkdir(&dst)?;
        let rd = std::fs::read_dir(&src).map_err(|error| HostError::Read {
            path: src.clone(),
            error,
        })?;
        for (n, entry) in rd.enumerate() {
            if n >= MAX_DEVICES {
                return Err(HostError::TooMany {
                    path: src,
                    limit: MAX_DEVICES,
                });
            }
            let entry = entry.map_err(|error| HostError::Read {
                path: src.clone(),
                error,
            })?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') || Bdf::parse(&name).is_err() {
                continue;
            }
            let from = entry.path();
            let to = dst.join(&*name);
            mkdir(&to)?;
            devices += 1;
            for attr in ["resource", "irq"] {
                if let Some(data) = read_capped(&from.join(attr), ATTR_LIMIT)? {
                    write(&to.join(attr), &data)?;
                    files += 1;
                }
            }
            for link in ["driver", "iommu_group"] {
                if let Some(v) = link_name(&from.join(link))? {
                    write(&to.join(link), format!("{v}\n").as_bytes())?;
                    files += 1;
                }
            }
        }
    }
    let gaps = HostMap::read_dir(dir)?.gaps;
    Ok(CaptureSummary {
        files,
        devices,
        gaps,
    })
}

fn mkdir(p: &Path) -> Result<(), HostError> {
    std::fs::create_dir_all(p).map_err(|error| HostError::Write {
        path: p.to_path_buf(),
        error,
    })
}

fn write(p: &Path, data: &[u8]) -> Result<(), HostError> {
    if let Some(parent) = p.parent() {
        mkdir(parent)?;
    }
    std::fs::write(p, data).map_err(|error| HostError::Write {
        path: PathBuf::from(p),
        error,
    })
}
