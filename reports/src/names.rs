//! Every metric the suite emits, and every key of its parameters, as a
//! type.
//!
//! Bench, report and gate name metrics through [`MetricName`] and their
//! parameters through [`Key`], never through string literals, so a misspelt metric fails to compile instead of
//! silently matching nothing. `results.json` stores [`MetricName::as_str`];
//! [`MetricName::parse`] reads it back (a name this build does not know stays
//! a plain string in [`crate::Metric::name`], so older and newer results files
//! still load).

use serde::Serialize;

/// What a metric's values are measured in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Unit {
    /// Nanoseconds.
    Ns,
    /// Bytes.
    Bytes,
    /// A count of allocations.
    Allocations,
    /// Instructions (callgrind `Ir`), exact.
    Instructions,
    /// A dimensionless within-run ratio of two paired measurements.
    Ratio,
}

impl Unit {
    /// The unit as written in `results.json`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Unit::Ns => "ns",
            Unit::Bytes => "bytes",
            Unit::Allocations => "allocations",
            Unit::Instructions => "instructions",
            Unit::Ratio => "ratio",
        }
    }
}

macro_rules! names {
    ($($(#[$doc:meta])* $v:ident = $s:literal, $unit:ident;)*) => {
        /// A metric name (see the module docs).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum MetricName {
            $($(#[$doc])* $v,)*
        }

        impl MetricName {
            /// Every name, in declaration order.
            pub const ALL: &'static [MetricName] = &[$(MetricName::$v,)*];

            /// The name as written in `results.json`.
            pub const fn as_str(self) -> &'static str {
                match self { $(MetricName::$v => $s,)* }
            }

            /// The unit this metric is measured in.
            pub const fn unit(self) -> Unit {
                match self { $(MetricName::$v => Unit::$unit,)* }
            }
        }
    };
}

names! {
    /// One port access check (`impl`: radix, radix-bound, bitmap, btree, linear; `grants`).
    PortCheck = "accountant.port_check", Ns;
    /// Instructions per radix port check under callgrind (`grants`).
    PortCheckInstructions = "accountant.port_check_instructions", Instructions;
    /// Instructions of one accountant operation under callgrind (`op`, `tracker`, `units`).
    Instructions = "accountant.instructions", Instructions;
    /// `map` of `pages` frames (`tracker`).
    Map = "accountant.map", Ns;
    /// `unmap` of `pages` frames (`tracker`).
    Unmap = "accountant.unmap", Ns;
    /// `grant` of `units` ports or frames.
    Grant = "accountant.grant", Ns;
    /// `revoke` of `units` ports or frames.
    Revoke = "accountant.revoke", Ns;
    /// Tracking memory for one contiguous mapping (`tracker`, `pages`).
    TrackingBytes = "accountant.tracking_bytes", Bytes;
    /// Tracking allocations for one contiguous mapping (`tracker`, `pages`).
    TrackingAllocations = "accountant.tracking_allocations", Allocations;
    /// One tracepoint site (`state`: baseline, disabled, enabled).
    TracepointOverhead = "tracepoints.overhead", Ns;
    /// Guest-timed round trip of a port exit in a bare VM (no accountant, no device).
    BareExit = "hv.bare_exit", Ns;
    /// Guest-timed round trip of `in al, 0x300` (`accounting`, `mmio_tracked_pages`, `load`).
    PioExit = "hv.pio_exit", Ns;
    /// Per-port exit rows (`port`), as `perf kvm stat` shows them.
    PortExit = "hv.port_exit", Ns;
    /// The hypervisor-side exit handler time of a port exit (`accounting`, `mmio_tracked_pages`).
    ExitHandler = "hv.exit_handler", Ns;
    /// Exit handler time with accounting on minus off, paired per round (`mmio_tracked_pages`, `load`).
    AccountingCost = "hv.accounting_cost", Ns;
    /// `Hypervisor::map` of `pages` frames (accountant map + memslot add).
    Bind = "hv.bind", Ns;
    /// A bare `KVM_SET_USER_MEMORY_REGION` add of `pages` frames, paired with `hv.bind`.
    MemslotAdd = "hv.memslot_add", Ns;
    /// `hv.bind` / `hv.memslot_add`, per round (`pages`).
    BindOverFloor = "hv.bind_over_floor", Ratio;
    /// `Hypervisor::unmap` of `pages` frames a guest touched.
    HvUnmap = "hv.unmap", Ns;
    /// `hv.unmap` / `hv.memslot_delete`, per round (`pages`).
    UnmapOverFloor = "hv.unmap_over_floor", Ratio;
    /// A forced revoke of `pages` mapped, touched frames (`vcpu_state`).
    RevokeForce = "hv.revoke_force", Ns;
    /// A bare memslot delete of `pages` touched frames (`vcpu_state`, `paired_with`).
    MemslotDelete = "hv.memslot_delete", Ns;
    /// `hv.revoke_force` / `hv.memslot_delete`, per round (`pages`, `vcpu_state`).
    RevokeForceOverFloor = "hv.revoke_force_over_floor", Ratio;
    /// Binding an interrupt line (irqfd assign through the accountant).
    BindIrq = "hv.bind_irq", Ns;
    /// Unbinding an interrupt line (irqfd deassign through the accountant).
    UnbindIrq = "hv.unbind_irq", Ns;
    /// A bare `KVM_IRQFD` assign, paired with `hv.bind_irq`.
    IrqfdAssign = "hv.irqfd_assign", Ns;
    /// A bare `KVM_IRQFD` deassign, paired with `hv.unbind_irq`.
    IrqfdDeassign = "hv.irqfd_deassign", Ns;
    /// `hv.bind_irq` / `hv.irqfd_assign`, per round.
    BindIrqOverFloor = "hv.bind_irq_over_floor", Ratio;
    /// `hv.bind_irq` − `hv.irqfd_assign`, per round.
    BindIrqDelta = "hv.bind_irq_delta", Ns;
    /// One whole `ioacct check` (parse + judge) of `guests` configs of `ranges` entries against `devices` functions.
    CheckScale = "check.scale", Ns;
}

impl MetricName {
    /// The name that `results.json` spells `s`, if this build knows it.
    pub fn parse(s: &str) -> Option<MetricName> {
        MetricName::ALL.iter().copied().find(|n| n.as_str() == s)
    }

    /// The family: the part before the first dot (`accountant`, `hv`, …).
    pub fn family(self) -> &'static str {
        let s = self.as_str();
        s.split_once('.').map_or(s, |(f, _)| f)
    }
}

impl std::fmt::Display for MetricName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for MetricName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

macro_rules! keys {
    ($($(#[$doc:meta])* $v:ident = $s:literal;)*) => {
        /// A metric parameter's key (see the module docs): what bench emits
        /// and reports and gate query, so a misspelt key fails to compile.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Key {
            $($(#[$doc])* $v,)*
        }

        impl Key {
            /// Every key, in declaration order.
            pub const ALL: &'static [Key] = &[$(Key::$v,)*];

            /// The key as written in `results.json`.
            pub const fn as_str(self) -> &'static str {
                match self { $(Key::$v => $s,)* }
            }
        }
    };
}

keys! {
    /// Accounting `on` or `off` (hv exits).
    Accounting = "accounting";
    /// The CPU the control thread ran on (placement rows).
    ControlCpu = "control_cpu";
    /// How an interrupt line delivers (`irqfd`, …).
    Delivery = "delivery";
    /// PCI functions in the host map (`check.scale`).
    Devices = "devices";
    /// Domains in the accountant when counted (`accountant.instructions`).
    Domains = "domains";
    /// Port grants held by the domain (port checks).
    Grants = "grants";
    /// Guest configurations judged (`check.scale`).
    Guests = "guests";
    /// The port table implementation (`radix`, `radix-bound`, `bitmap`, `btree`, `linear`, …).
    Impl = "impl";
    /// What else ran meanwhile (`none`, `fb-paint`, …).
    Load = "load";
    /// Who mapped the frames (`painter`, …).
    MappedBy = "mapped_by";
    /// MMIO pages tracked while the exit ran.
    MmioTrackedPages = "mmio_tracked_pages";
    /// The accountant operation counted (`map`, `grant`, …).
    Op = "op";
    /// Frames mapped, unmapped or revoked.
    Pages = "pages";
    /// The measurement this floor row is paired with.
    PairedWith = "paired_with";
    /// The port of a per-port exit row.
    Port = "port";
    /// Ranges per guest configuration (`check.scale`).
    Ranges = "ranges";
    /// Where an exit row was timed (`guest`, `handler`).
    Side = "side";
    /// Ports or frames (`accountant.grant`, `accountant.revoke`).
    Space = "space";
    /// A tracepoint site's state (`baseline`, `disabled`, `enabled`).
    State = "state";
    /// The frame tracker (`slab-extent`, `xmalloc`, …).
    Tracker = "tracker";
    /// Units per operation (`accountant.instructions`).
    Units = "units";
    /// What the vCPUs did meanwhile (`parked`, `running`).
    VcpuState = "vcpu_state";
    /// vCPUs of the guest.
    Vcpus = "vcpus";
}

impl Key {
    /// The key that `results.json` spells `s`, if this build knows it.
    pub fn parse(s: &str) -> Option<Key> {
        Key::ALL.iter().copied().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_distinct_and_round_trip() {
        for (i, a) in MetricName::ALL.iter().enumerate() {
            assert_eq!(MetricName::parse(a.as_str()), Some(*a));
            for b in &MetricName::ALL[i + 1..] {
                assert_ne!(a.as_str(), b.as_str());
            }
        }
        assert_eq!(MetricName::parse("hv.pio_exits"), None);
        assert_eq!(MetricName::BindOverFloor.unit(), Unit::Ratio);
        assert_eq!(MetricName::AccountingCost.family(), "hv");
    }

    #[test]
    fn keys_are_distinct_and_round_trip() {
        for (i, a) in Key::ALL.iter().enumerate() {
            assert_eq!(Key::parse(a.as_str()), Some(*a));
            for b in &Key::ALL[i + 1..] {
                assert_ne!(a.as_str(), b.as_str());
            }
        }
        assert_eq!(Key::parse("page"), None);
        assert_eq!(Key::MmioTrackedPages.as_str(), "mmio_tracked_pages");
    }
}
