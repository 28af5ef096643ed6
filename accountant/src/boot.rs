//! The Xen-style boot command line (SPEC "Boot options").
//!
//! `key=value` words separated by spaces; list values are comma-separated
//! ranges. Parsing checks syntax and ranges; [`crate::Accountant::boot`]
//! applies the options in the SPEC's order (RAM, `io_default` and
//! `dom0_ioports_disable`, reservations, then domain 0's grants) and fails
//! as a whole if any of them fails.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use crate::model::Quotas;
use crate::num::{Num, RawRange};
use crate::trace::quote;
use crate::{Error, Space, UnitRange};

/// Who may use unheld units by default right.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum IoDefault {
    /// Domain 0 is the default I/O domain (`io_default=dom0`, the default).
    #[default]
    Dom0,
    /// Default deny (`io_default=none`): only grants give access.
    None,
}

/// A parsed boot line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BootOptions {
    /// `io_default=`.
    pub io_default: IoDefault,
    /// `ram=`: frames that are RAM, not I/O memory.
    pub ram: Vec<UnitRange>,
    /// `reserve_ioports=`, `reserve_iomem=`, `reserve_irqs=`.
    pub reserve: Vec<UnitRange>,
    /// `dom0_ioports=`, `dom0_iomem=`, `dom0_irqs=`: exclusive grants to domain 0.
    pub dom0: Vec<UnitRange>,
    /// `dom0_ioports_disable=`: ports the default I/O domain may not use by default right.
    pub ioports_disable: Vec<UnitRange>,
    /// `quota_frames=`, `quota_records=`: every domain's limits.
    pub quotas: Quotas,
}

/// Why a boot line was refused. Nothing was booted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BootError {
    /// A word that is not `key=value`, or an unknown key.
    UnknownOption(String),
    /// A value that does not parse or is out of its space.
    BadValue {
        /// The option.
        option: String,
        /// The value as written.
        value: String,
    },
    /// Applying the options failed (a boot grant on a reserved unit, a reservation on RAM, ...).
    Apply {
        /// The option being applied.
        option: &'static str,
        /// What the accountant said.
        error: Error,
    },
}

impl fmt::Display for BootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootError::UnknownOption(o) => write!(f, "unknown boot option `{}`", quote(o)),
            BootError::BadValue { option, value } => {
                write!(f, "bad value `{}` for boot option `{option}`", quote(value))
            }
            BootError::Apply { option, error } => write!(f, "boot option `{option}`: {error}"),
        }
    }
}

fn list(option: &str, value: &str, space: Space) -> Result<Vec<UnitRange>, BootError> {
    let bad = || BootError::BadValue {
        option: option.to_string(),
        value: value.to_string(),
    };
    if value.is_empty() {
        return Err(bad());
    }
    value
        .split(',')
        .map(|item| {
            RawRange::parse(item)
                .ok_or_else(bad)?
                .check(space)
                .map_err(|_| bad())
        })
        .collect()
}

impl BootOptions {
    /// Parses the options of a boot line (the words after `boot`).
    pub fn parse(line: &str) -> Result<BootOptions, BootError> {
        let mut o = BootOptions::default();
        for word in line.split_whitespace() {
            let Some((key, value)) = word.split_once('=') else {
                return Err(BootError::UnknownOption(word.to_string()));
            };
            match key {
                "io_default" => {
                    o.io_default = match value {
                        "dom0" => IoDefault::Dom0,
                        "none" => IoDefault::None,
                        _ => {
                            return Err(BootError::BadValue {
                                option: key.to_string(),
                                value: value.to_string(),
                            })
                        }
                    }
                }
                "ram" => o.ram.extend(list(key, value, Space::IoMem)?),
                "reserve_ioports" => o.reserve.extend(list(key, value, Space::IoPort)?),
                "reserve_iomem" => o.reserve.extend(list(key, value, Space::IoMem)?),
                "reserve_irqs" => o.reserve.extend(list(key, value, Space::Irq)?),
                "dom0_ioports" => o.dom0.extend(list(key, value, Space::IoPort)?),
                "dom0_iomem" => o.dom0.extend(list(key, value, Space::IoMem)?),
                "dom0_irqs" => o.dom0.extend(list(key, value, Space::Irq)?),
                "quota_frames" | "quota_records" => {
                    let n = Num::parse(value).and_then(|n| n.get()).ok_or_else(|| {
                        BootError::BadValue {
                            option: key.to_string(),
                            value: value.to_string(),
                        }
                    })?;
                    if key == "quota_frames" {
                        o.quotas.frames = n;
                    } else {
                        o.quotas.records = n;
                    }
                }
                "dom0_ioports_disable" => {
                    o.ioports_disable.extend(list(key, value, Space::IoPort)?)
                }
                _ => return Err(BootError::UnknownOption(word.to_string())),
            }
        }
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_seed_line() {
        let o = BootOptions::parse(
            "ram=0x0-0x7ffff reserve_iomem=0xfec00,0xfee00 reserve_ioports=0x3f8-0x3ff reserve_irqs=2",
        )
        .expect("valid");
        assert_eq!(o.ram.len(), 1);
        assert_eq!(o.reserve.len(), 4);
        assert_eq!(o.io_default, IoDefault::Dom0);
        assert_eq!(o.quotas, Quotas::default());
        let q = BootOptions::parse("quota_frames=0x100 quota_records=3").expect("valid");
        assert_eq!((q.quotas.frames, q.quotas.records), (0x100, 3));
    }

    #[test]
    fn refuses_bad_words() {
        assert!(matches!(
            BootOptions::parse("frob=1"),
            Err(BootError::UnknownOption(_))
        ));
        assert!(matches!(
            BootOptions::parse("ram"),
            Err(BootError::UnknownOption(_))
        ));
        for bad in [
            "io_default=dom1",
            "ram=",
            "ram=0x10-0x5",
            "reserve_irqs=1024",
            "dom0_ioports=0x10000",
            "ram=1,,2",
            "reserve_iomem=0x10000000000",
            "quota_frames=",
            "quota_records=-1",
            "quota_frames=0x1_0",
            "quota_records=99999999999999999999",
        ] {
            assert!(
                matches!(BootOptions::parse(bad), Err(BootError::BadValue { .. })),
                "{bad}"
            );
        }
    }
}
