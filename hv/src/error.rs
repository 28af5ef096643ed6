//! The hypervisor's one error type.

use crate::mem::MemError;
use crate::memslot::SlotError;
use crate::vm::VmError;
use accountant::{DomId, Error, Space};

/// A failed hypervisor operation; nothing changed unless stated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HvError {
    /// The accountant refused.
    Acct(Error),
    /// The accountant refused the boot line.
    Boot(accountant::BootError),
    /// The framebuffer ends past the guest-physical space the guest page
    /// tables map.
    FramebufferTooLarge {
        /// The configured framebuffer size.
        bytes: u64,
        /// GiB the page tables map at most ([`crate::layout::MAX_MAPPED_GIB`]).
        max_gib: u64,
    },
    /// The accountant gave no port check for a domain it had just created.
    NoPortCheck(DomId),
    /// The framebuffer painter domain stopped while it should be painting.
    PainterStopped(DomId),
    /// A measurement's guest did not end or answer as its workload needs:
    /// `what` it was, and how its vCPU stopped (`None`: still running, or
    /// stopped answering).
    GuestFailed {
        /// The guest's role in the workload.
        what: &'static str,
        /// How its vCPU stopped, if it did.
        stop: Option<crate::exit::StopReason>,
    },
    /// `bytes` of guest RAM at `gpa` (a guest's samples) could not be read.
    GuestRam {
        /// Where the read began.
        gpa: u64,
        /// How many bytes it wanted.
        bytes: u64,
    },
    /// A domain has no exit-handler probe ([`crate::Config::handler_probe`]).
    NoProbe(DomId),
    /// A vCPU thread of a bare VM panicked.
    VcpuPanicked,
    /// `/dev/kvm` is missing or unusable.
    NoKvm(i32),
    /// Building or changing a VM failed.
    Vm(VmError),
    /// Host memory could not be mapped.
    Mem(MemError),
    /// The domain has no VM.
    NoVm(DomId),
    /// The domain already has a VM.
    VmExists(DomId),
    /// The range is of the wrong space for the operation.
    WrongSpace(Space),
    /// The domain's slot table refused a map the accountant accepted; the
    /// accountant's change was undone.
    Slots(SlotError),
    /// KVM refused to delete the memslot of `frames` frames whose use had
    /// ended: the accountant's change stands, and since the domain could
    /// still reach those frames its vCPU was stopped.
    SlotStuck {
        /// The domain that was stopped.
        dom: DomId,
        /// Frames left reachable through the stuck memslot(s).
        frames: u64,
    },
    /// The operation is the accountant's alone, and accounting is off (an
    /// op a trace runs through [`crate::Hypervisor::on_accountant`]).
    NoAccountant,
}

impl HvError {
    /// The accountant's error code, if the accountant refused.
    pub fn acct_code(&self) -> Option<accountant::ErrorCode> {
        match self {
            HvError::Acct(e) => Some(e.code()),
            _ => None,
        }
    }
}

impl std::fmt::Display for HvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HvError::Acct(e) => write!(f, "{e}"),
            HvError::Boot(e) => write!(f, "boot: bad boot line: {e}"),
            HvError::FramebufferTooLarge { bytes, max_gib } => write!(
                f,
                "boot: framebuffer of {bytes:#x} bytes does not fit the {max_gib} GiB the guest page tables map"
            ),
            HvError::NoPortCheck(d) => write!(f, "no port check for {d}"),
            HvError::PainterStopped(d) => write!(f, "the framebuffer painter {d} stopped"),
            HvError::GuestFailed { what, stop } => match stop {
                Some(r) => write!(f, "{what} stopped: {r:?}"),
                None => write!(f, "{what} stopped answering"),
            },
            HvError::GuestRam { gpa, bytes } => {
                write!(f, "{bytes} bytes of guest RAM at {gpa:#x} unreadable")
            }
            HvError::NoProbe(d) => write!(f, "{d} has no exit-handler probe"),
            HvError::VcpuPanicked => write!(f, "a vCPU thread panicked"),
            HvError::NoKvm(e) => write!(f, "/dev/kvm unusable: errno {e}"),
            HvError::Vm(e) => write!(f, "vm: {e}"),
            HvError::Mem(e) => write!(f, "{e}"),
            HvError::NoVm(d) => write!(f, "{d} has no VM"),
            HvError::VmExists(d) => write!(f, "{d} already has a VM"),
            HvError::WrongSpace(s) => write!(f, "operation does not take {s}"),
            HvError::Slots(e) => write!(f, "slot table refused: {e:?}"),
            HvError::SlotStuck { dom, frames } => write!(
                f,
                "KVM kept a memslot over {frames} unmapped frame(s) of {dom}; its vCPU was stopped"
            ),
            HvError::NoAccountant => f.write_str("no accountant: accounting is off"),
        }
    }
}

impl std::error::Error for HvError {}

impl From<Error> for HvError {
    fn from(e: Error) -> Self {
        HvError::Acct(e)
    }
}

impl From<VmError> for HvError {
    fn from(e: VmError) -> Self {
        HvError::Vm(e)
    }
}

impl From<crate::guest::GuestError> for HvError {
    fn from(e: crate::guest::GuestError) -> Self {
        HvError::Vm(VmError::Guest(e))
    }
}
