//! The rules of `ioacct check`, each with a stable code (spec/CHECK.md).
//!
//! A rule names *why* a finding matters; the verdict behind every ownership
//! rule is the accountant's answer to a trace op (see [`crate::judge`]).

use serde::Serialize;

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Exit status 1.
    Error,
    /// Exit status 1 only with `--werror`.
    Warning,
}

/// A rule. The codes are stable: a code is never reused for another rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    /// Two guests are granted the same host I/O memory page.
    GuestPage,
    /// Two guests are granted the same host port.
    GuestPort,
    /// Two guests are granted the same interrupt line (`irqs=`).
    GuestIrq,
    /// Two guests are given the same PCI function.
    GuestPci,
    /// A PCI function's interrupt line is held by another domain (a guest
    /// or a dom0 driver) without declared sharing.
    IrqShared,
    /// A guest asks for what the hypervisor keeps for itself.
    HvReserved,
    /// A guest asks for a resource a bound host driver (dom0) holds.
    HostDriverBound,
    /// `iomem` the host map calls RAM.
    IomemRam,
    /// `iomem` beyond the physical address width, or a port or line beyond its space.
    BeyondRange,
    /// BARs of two different devices inside one 4 KiB page given to
    /// different owners (Xen's XSA-461 class).
    SharedBarPage,
    /// Functions of one IOMMU group split between owners.
    IommuGroupSplit,
    /// A dom0 driver holds something the hypervisor takes at boot.
    Dom0HoldsHv,
    /// Part of the host map is missing: what could not be checked.
    HostGap,
    /// A PCI function the host does not have.
    NoSuchDevice,
}

impl Rule {
    /// Every rule, in code order.
    pub const ALL: [Rule; 14] = [
        Rule::GuestPage,
        Rule::GuestPort,
        Rule::GuestIrq,
        Rule::GuestPci,
        Rule::IrqShared,
        Rule::HvReserved,
        Rule::HostDriverBound,
        Rule::IomemRam,
        Rule::BeyondRange,
        Rule::SharedBarPage,
        Rule::IommuGroupSplit,
        Rule::Dom0HoldsHv,
        Rule::HostGap,
        Rule::NoSuchDevice,
    ];

    /// The stable code.
    pub const fn code(self) -> &'static str {
        match self {
            Rule::GuestPage => "E0101",
            Rule::GuestPort => "E0102",
            Rule::GuestIrq => "E0103",
            Rule::GuestPci => "E0104",
            Rule::IrqShared => "E0105",
            Rule::HvReserved => "E0201",
            Rule::HostDriverBound => "E0301",
            Rule::IomemRam => "E0401",
            Rule::BeyondRange => "E0402",
            Rule::SharedBarPage => "E0501",
            Rule::IommuGroupSplit => "E0502",
            Rule::Dom0HoldsHv => "W0601",
            Rule::HostGap => "W0602",
            Rule::NoSuchDevice => "W0603",
        }
    }

    /// A short name (SARIF `name`, JSON `rule`).
    pub const fn name(self) -> &'static str {
        match self {
            Rule::GuestPage => "guest-page-conflict",
            Rule::GuestPort => "guest-port-conflict",
            Rule::GuestIrq => "guest-irq-conflict",
            Rule::GuestPci => "guest-pci-conflict",
            Rule::IrqShared => "irq-line-shared",
            Rule::HvReserved => "hypervisor-reserved",
            Rule::HostDriverBound => "host-driver-bound",
            Rule::IomemRam => "iomem-is-ram",
            Rule::BeyondRange => "beyond-address-space",
            Rule::SharedBarPage => "shared-bar-page",
            Rule::IommuGroupSplit => "iommu-group-split",
            Rule::Dom0HoldsHv => "dom0-holds-hypervisor-resource",
            Rule::HostGap => "host-map-incomplete",
            Rule::NoSuchDevice => "no-such-device",
        }
    }

    /// What the rule finds, in one sentence.
    pub const fn summary(self) -> &'static str {
        match self {
            Rule::GuestPage => "two guests are granted the same host I/O memory page without declared sharing",
            Rule::GuestPort => "two guests are granted the same host I/O port without declared sharing",
            Rule::GuestIrq => "two guests are granted the same interrupt line without declared sharing",
            Rule::GuestPci => "two guests are given the same PCI function",
            Rule::IrqShared => "a passed-through function's interrupt line is held by another domain without declared sharing",
            Rule::HvReserved => "a guest asks for a resource the hypervisor keeps for itself",
            Rule::HostDriverBound => "a guest asks for a resource that a driver bound in dom0 is using",
            Rule::IomemRam => "iomem names a page the host map calls RAM",
            Rule::BeyondRange => "iomem beyond the physical address width, or a port or line beyond its space",
            Rule::SharedBarPage => "BARs of two devices share one 4 KiB page and are given to different owners (XSA-461)",
            Rule::IommuGroupSplit => "functions of one IOMMU group are split between owners",
            Rule::Dom0HoldsHv => "a dom0 driver holds a resource the hypervisor takes at boot",
            Rule::HostGap => "part of the host map is missing: some rules were not checked",
            Rule::NoSuchDevice => "a PCI function the host does not have",
        }
    }

    /// Error or warning.
    pub const fn severity(self) -> Severity {
        match self {
            Rule::Dom0HoldsHv | Rule::HostGap | Rule::NoSuchDevice => Severity::Warning,
            _ => Severity::Error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_names_are_unique() {
        let mut codes: Vec<&str> = Rule::ALL.iter().map(|r| r.code()).collect();
        let mut names: Vec<&str> = Rule::ALL.iter().map(|r| r.name()).collect();
        codes.sort_unstable();
        codes.dedup();
        names.sort_unstable();
        names.dedup();
        assert_eq!(codes.len(), Rule::ALL.len());
        assert_eq!(names.len(), Rule::ALL.len());
        for r in Rule::ALL {
            let warn = r.code().starts_with('W');
            assert_eq!(warn, r.severity() == Severity::Warning, "{}", r.code());
        }
    }
}
