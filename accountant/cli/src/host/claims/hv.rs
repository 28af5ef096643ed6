//! What the hypervisor keeps for itself on this host
//! ([`HostMap::hv_reservations`], rules in the [module doc](super)), and
//! the `--hv-reserve` option that says which of it to keep.

use accountant::Space;

use super::disjoint;
use crate::host::{Claim, HostMap, HvReserve, Resource};

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

impl HostMap {
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
                v.extend(found.into_iter().filter_map(Claim::iomem_entry));
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
                v.push(Claim::line(g, r));
            }
        }
        if let Some(tty) = policy.console.and_then(standard_tty) {
            if let Some((g, r)) = self
                .lines()
                .into_iter()
                .find(|(_, r)| r.actions.iter().any(|a| a == tty))
            {
                v.push(Claim::line(g, r));
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
}
