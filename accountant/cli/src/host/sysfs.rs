//! `/sys/bus/pci/devices`: each PCI function's BARs, legacy line, bound
//! driver and IOMMU group.
//!
//! * `resource`: one line per resource, `0x%016llx 0x%016llx 0x%016llx`
//!   (start, end, flags). Lines 0–5 are the BARs, 6 the expansion ROM, then
//!   SR-IOV BARs and bridge windows. The flags tell I/O (`IORESOURCE_IO`,
//!   0x100) from memory (`IORESOURCE_MEM`, 0x200); an unset line is all
//!   zeros.
//! * `irq`: the legacy interrupt's Linux IRQ number in decimal; 0 is none.
//! * `driver`, `iommu_group`: symlinks whose last component is the name;
//!   in a snapshot a plain file holding the name is accepted too (that is
//!   what `ioacct capture` writes).
//!
//! A hostile tree is bounded: at most [`MAX_DEVICES`] entries, each
//! attribute read with [`ATTR_LIMIT`], at most
//! [`MAX_RESOURCE_LINES`] lines per `resource`; a symlink loop makes the
//! OS fail the open (`ELOOP`), which is a [`HostError::Read`].

use std::io;
use std::path::Path;
use std::sync::Arc;

use super::read::{escape, lines, read_capped, ATTR_LIMIT};
use super::{Bar, BarKind, HostError, PciDevice};
use crate::pci::Bdf;
use crate::span::Span;

/// Most entries accepted in `sys/bus/pci/devices`: 16,384. Large servers
/// show a few hundred functions, a few thousand with SR-IOV virtual
/// functions enabled (64 physical functions of 256 VFs is this limit). The
/// trade-off: a higher limit lets a hostile tree cost more directory reads
/// before it is refused; the reader's memory is O(entries) either way.
pub const MAX_DEVICES: usize = 16_384;

/// Most lines accepted in one `resource` file (the kernel writes 17 or fewer).
pub const MAX_RESOURCE_LINES: u32 = 64;

const IORESOURCE_IO: u64 = 0x100;
const IORESOURCE_MEM: u64 = 0x200;

/// Reads every function under `dir` (`…/sys/bus/pci/devices`), sorted by
/// address. `missing` collects attributes that were absent.
pub fn read_devices(
    dir: &Path,
    missing: &mut Vec<std::path::PathBuf>,
) -> Result<Vec<PciDevice>, HostError> {
    let rd = std::fs::read_dir(dir).map_err(|error| HostError::Read {
        path: dir.to_path_buf(),
        error,
    })?;
    // Count before reading any device, so a directory of a million entries
    // is refused after MAX_DEVICES + 1 directory reads and nothing else.
    let mut names = Vec::new();
    for entry in rd {
        if names.len() >= MAX_DEVICES {
            return Err(HostError::TooMany {
                path: dir.to_path_buf(),
                limit: MAX_DEVICES,
            });
        }
        let entry = entry.map_err(|error| HostError::Read {
            path: dir.to_path_buf(),
            error,
        })?;
        names.push(entry.file_name());
    }
    // Directory order is the filesystem's; read in name order so that
    // errors and gaps name the same entry on every run.
    names.sort();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let path = dir.join(&name);
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        let bdf = Bdf::parse(&name).map_err(|e| HostError::Invalid {
            path: path.clone(),
            why: format!("not a PCI function address: {e}"),
        })?;
        out.push(read_device(&path, bdf, missing)?);
    }
    out.sort_by_key(|d| d.bdf);
    Ok(out)
}

fn read_device(
    dir: &Path,
    bdf: Bdf,
    missing: &mut Vec<std::path::PathBuf>,
) -> Result<PciDevice, HostError> {
    let res_path = dir.join("resource");
    let bars = match read_capped(&res_path, ATTR_LIMIT)? {
        Some(data) => parse_resource(&res_path, &data)?,
        None => {
            missing.push(res_path.clone());
            Vec::new()
        }
    };
    let irq_path = dir.join("irq");
    let irq = match read_capped(&irq_path, ATTR_LIMIT)? {
        Some(data) => parse_irq(&irq_path, &data)?,
        None => {
            missing.push(irq_path);
            None
        }
    };
    let driver = link_name(&dir.join("driver"))?;
    let iommu_group = match link_name(&dir.join("iommu_group"))? {
        None => None,
        Some(g) => Some(g.parse::<u32>().map_err(|_| HostError::Invalid {
            path: dir.join("iommu_group"),
            why: format!("IOMMU group `{g}` is not a number"),
        })?),
    };
    Ok(PciDevice {
        bdf,
        bars,
        irq,
        driver,
        iommu_group,
        span: Span::new(Arc::new(res_path), 1, 0),
    })
}

/// The name a `driver` or `iommu_group` entry gives: a symlink's last
/// component, or a plain file's trimmed content. `None` when absent (no
/// driver bound, no IOMMU).
pub fn link_name(path: &Path) -> Result<Option<String>, HostError> {
    let read_err = |error: io::Error| HostError::Read {
        path: path.to_path_buf(),
        error,
    };
    // readlink first: on a live host both are symlinks, and a plain file
    // (a snapshot) answers EINVAL.
    let name = match std::fs::read_link(path) {
        Ok(target) => {
            let last = target.file_name().ok_or_else(|| HostError::Invalid {
                path: path.to_path_buf(),
                why: format!("symlink to `{}` names nothing", target.display()),
            })?;
            escape(last.as_encoded_bytes())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
            let Some(data) = read_capped(path, ATTR_LIMIT)? else {
                return Ok(None);
            };
            let ls = lines(path, &data)?;
            let first = ls.first().ok_or_else(|| HostError::Invalid {
                path: path.to_path_buf(),
                why: "empty: expected a name".into(),
            })?;
            escape(first.text.trim_ascii())
        }
        Err(e) => return Err(read_err(e)),
    };
    if name.is_empty() {
        return Err(HostError::Invalid {
            path: path.to_path_buf(),
            why: "empty name".into(),
        });
    }
    Ok(Some(name))
}

/// Parses a `resource` file into the set BARs (unset lines left out).
pub fn parse_resource(path: &Path, data: &[u8]) -> Result<Vec<Bar>, HostError> {
    let err = |line: u32, why: String| HostError::Parse {
        path: path.to_path_buf(),
        line,
        why,
    };
    let mut out = Vec::new();
    for line in lines(path, data)? {
        if line.no > MAX_RESOURCE_LINES {
            return Err(err(
                line.no,
                format!("more than {MAX_RESOURCE_LINES} lines: not a sysfs `resource` file"),
            ));
        }
        let text = String::from_utf8_lossy(line.text);
        let f: Vec<&str> = text.split_ascii_whitespace().collect();
        let [s, e, fl] = f.as_slice() else {
            return Err(err(
                line.no,
                format!("{} fields: expected `0xSTART 0xEND 0xFLAGS`", f.len()),
            ));
        };
        let num = |t: &str| -> Result<u64, HostError> {
            let h = t.strip_prefix("0x").ok_or_else(|| {
                err(
                    line.no,
                    format!("`{}` is not 0x-prefixed hex", escape(t.as_bytes())),
                )
            })?;
            if h.is_empty() || h.len() > 16 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(err(
                    line.no,
                    format!("`{}` is not 64-bit hex", escape(t.as_bytes())),
                ));
            }
            u64::from_str_radix(h, 16).map_err(|_| err(line.no, format!("`{t}` is not hex")))
        };
        let (start, end, flags) = (num(s)?, num(e)?, num(fl)?);
        if start == 0 && end == 0 {
            continue;
        }
        if start > end {
            return Err(err(line.no, format!("start {start:#x} after end {end:#x}")));
        }
        let kind = if flags & IORESOURCE_IO != 0 {
            BarKind::Io
        } else if flags & IORESOURCE_MEM != 0 {
            BarKind::Mem
        } else {
            continue;
        };
        if kind == BarKind::Io && end > 0xffff {
            return Err(err(
                line.no,
                format!("I/O resource ends at {end:#x}, beyond port 0xffff"),
            ));
        }
        let index = u8::try_from(line.no - 1).unwrap_or(u8::MAX);
        out.push(Bar {
            index,
            start,
            end,
            kind,
        });
    }
    Ok(out)
}

/// Parses `irq`: a decimal number; 0 (no legacy interrupt) is `None`.
pub fn parse_irq(path: &Path, data: &[u8]) -> Result<Option<u32>, HostError> {
    let ls = lines(path, data)?;
    let first = ls.first().ok_or_else(|| HostError::Parse {
        path: path.to_path_buf(),
        line: 1,
        why: "empty: expected an IRQ number".into(),
    })?;
    let t = String::from_utf8_lossy(first.text);
    let n: u32 = t.trim().parse().map_err(|_| HostError::Parse {
        path: path.to_path_buf(),
        line: 1,
        why: format!("`{}` is not an IRQ number", escape(t.trim().as_bytes())),
    })?;
    Ok((n != 0).then_some(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_lines_by_flags() {
        let r = parse_resource(
            Path::new("resource"),
            b"0x00000000e1500000 0x00000000e151ffff 0x0000000000040200\n\
0x0000000000000000 0x0000000000000000 0x0000000000000000\n\
0x0000000000004040 0x000000000000405f 0x0000000000040101\n\
0x0000000000000000 0x0000000000000000 0x0000000000000000\n",
        )
        .expect("parses");
        assert_eq!(
            r,
            [
                Bar {
                    index: 0,
                    start: 0xe150_0000,
                    end: 0xe151_ffff,
                    kind: BarKind::Mem
                },
                Bar {
                    index: 2,
                    start: 0x4040,
                    end: 0x405f,
                    kind: BarKind::Io
                },
            ]
        );
    }

    #[test]
    fn resource_refuses_junk() {
        for (text, line) in [
            (&b"0x0 0x1\n"[..], 1),
            (b"0x10 0x1 0x200\n", 1),
            (b"0x0 0x0 0x0\n10 20 0x200\n", 2),
            (b"0x0 0x0 0x0\n0x10000 0x1ffff 0x100\n", 2),
            (b"0x0 0x0 0x0\n0x0000000000000000", 2),
        ] {
            match parse_resource(Path::new("resource"), text) {
                Err(HostError::Parse { line: l, .. }) => assert_eq!(l, line),
                other => panic!("{text:?}: {other:?}"),
            }
        }
        let long = "0x0 0x0 0x0\n".repeat(65);
        assert!(matches!(
            parse_resource(Path::new("resource"), long.as_bytes()),
            Err(HostError::Parse { line: 65, .. })
        ));
    }

    #[test]
    fn irq_values() {
        assert_eq!(parse_irq(Path::new("irq"), b"0\n").expect("0"), None);
        assert_eq!(parse_irq(Path::new("irq"), b"16\n").expect("16"), Some(16));
        assert!(parse_irq(Path::new("irq"), b"x\n").is_err());
    }
}
