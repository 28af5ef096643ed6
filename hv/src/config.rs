//! The hypervisor's configuration.

use crate::acct::Accounting;
use crate::affinity::CpuSet;
use crate::layout;
use crate::platform;
use accountant::{Quotas, TrackerKind};

/// Hypervisor configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Accountant in charge (default) or Xen's behaviour.
    pub accounting: Accounting,
    /// Xen-style boot line (SPEC section 2). Default: [`platform::SEED_BOOT`].
    pub boot_line: String,
    /// MMIO tracker of the accountant.
    pub tracker: TrackerKind,
    /// Framebuffer BAR size in bytes (default 256 MiB; several GiB work:
    /// it is reserved lazily). The guest page tables must map it, which
    /// bounds it at `MAX_MAPPED_GIB - 4` GiB.
    pub fb_bytes: u64,
    /// Guest RAM per domain (default 4 MiB).
    pub ram_bytes: u64,
    /// Every domain's limits (frames mapped, tracking records); `None`: the
    /// boot line's `quota_frames=` / `quota_records=`, else
    /// [`Quotas::default`] (an 8 GiB BAR plus the platform's devices; 65,536
    /// runs). A map past one is refused with status 16 (`quota`) and
    /// counted in [`crate::DomainStats::quota_refusals`]. With accounting off
    /// (Xen's behaviour) there are no quotas.
    pub quotas: Option<Quotas>,
    /// CPUs every vCPU thread is pinned to (default: none, the scheduler
    /// places them). The bench pins them away from its measuring thread.
    pub vcpu_cpus: Option<CpuSet>,
    /// Exits per vCPU the exit-handler probe holds between two reads (default
    /// 0: no probe). With a probe every checked port exit's handler time is
    /// recorded in TSC ticks, tracepoints on or off
    /// ([`crate::Hypervisor::take_handler_ticks`]).
    pub handler_probe: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            accounting: Accounting::On,
            boot_line: platform::SEED_BOOT.to_string(),
            tracker: TrackerKind::SlabExtent,
            fb_bytes: platform::DEFAULT_FB_BYTES,
            ram_bytes: layout::DEFAULT_RAM,
            quotas: None,
            vcpu_cpus: None,
            handler_probe: 0,
        }
    }
}
