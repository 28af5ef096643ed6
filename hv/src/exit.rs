//! vCPU exits as owned values, and the pure function that decides them.
//!
//! The vCPU loop ([`crate::vcpu`]) parses each raw KVM exit once into an
//! [`Exit`] (plain `Copy` data, no borrow of `kvm_run`), asks
//! [`handle_exit`] what to do, and carries out the returned [`Action`].
//! `handle_exit` sees the world only through the [`ExitEnv`] trait, so it is
//! unit-tested on made-up exits without a VM.
//!
//! Decisions (the contract of this module):
//! * [`DONE_PORT`](crate::layout::DONE_PORT) ends the program with its value;
//!   [`FAULT_PORT`](crate::layout::FAULT_PORT) stops the domain as faulted.
//! * A 4-byte `in` from [`HCALL_PORT`](crate::layout::HCALL_PORT) is a
//!   hypercall; its status is the value read. Any other access to the
//!   hypercall port is a malformed hypercall: reads give all ones, writes are
//!   dropped, and it is counted.
//! * Any other port access is checked by the accountant: allowed → the
//!   device (a port no device claims reads all ones); denied → reads all
//!   ones, writes dropped, counted.
//! * An MMIO exit is a guest access to guest-physical memory that has no
//!   memslot: the environment decides (a frame the domain maps but whose slot
//!   is being rebuilt is served from the backing; anything else is denied:
//!   all ones / dropped, counted).
//! * A triple fault (shutdown), `hlt`, or an entry failure stop the domain;
//!   an interrupted run resumes unless the domain is being stopped.

use crate::pvio::width_mask;

/// A vCPU exit, parsed once from `kvm_run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// `in` of `size` bytes (1, 2 or 4) from `port`.
    IoIn {
        /// The port.
        port: u16,
        /// Width in bytes.
        size: u8,
    },
    /// `out` of `size` bytes (1, 2 or 4) to `port`.
    IoOut {
        /// The port.
        port: u16,
        /// Width in bytes.
        size: u8,
        /// The value written (low `size` bytes).
        data: u32,
    },
    /// A read of `len` bytes (1..=8) at guest-physical `gpa` with no memslot.
    MmioRead {
        /// Guest-physical address.
        gpa: u64,
        /// Length in bytes.
        len: u8,
    },
    /// A write of `len` bytes (1..=8) at guest-physical `gpa` with no memslot.
    MmioWrite {
        /// Guest-physical address.
        gpa: u64,
        /// Length in bytes.
        len: u8,
        /// The bytes written (first `len` valid).
        data: [u8; 8],
    },
    /// Triple fault.
    Shutdown,
    /// `hlt` with no in-kernel irqchip.
    Hlt,
    /// `KVM_RUN` returned `EINTR` (a kick).
    Interrupted,
    /// VM entry failed with this hardware reason.
    FailEntry(u64),
    /// KVM internal error (emulation failure).
    InternalError,
    /// An exit this hypervisor does not handle (string I/O, debug, …): the
    /// raw `exit_reason`.
    Unsupported(u32),
}

/// Why a domain's vCPU stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The program wrote its exit code to the done port.
    Done(u32),
    /// The guest took exception `vector` (reported by its stub).
    Fault(u8),
    /// Triple fault.
    TripleFault,
    /// The guest executed `hlt`.
    Halted,
    /// The host stopped it (destroy, run-time budget).
    Killed,
    /// KVM could not run it (entry failure, internal error, unsupported exit;
    /// the raw reason).
    Error(u64),
}

/// What the vCPU loop does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Re-enter the guest.
    Resume,
    /// Complete the pending `in` with this value, then re-enter.
    ReplyIo(u32),
    /// Complete the pending MMIO read with these bytes, then re-enter.
    ReplyMmio([u8; 8]),
    /// Stop the vCPU.
    Stop(StopReason),
}

/// What a guest's MMIO exit resolved to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MmioOutcome {
    /// Served (for a read: these bytes).
    Served([u8; 8]),
    /// Denied: no mapping covers the address.
    Denied,
}

/// The world as the exit handler sees it: the accountant's port check, the
/// devices, the hypercall interface, and the domain's I/O memory map.
pub trait ExitEnv {
    /// The accountant's verdict on a port access of `size` bytes.
    fn port_allowed(&self, port: u16, size: u8) -> bool;
    /// Reads from the device claiming `port`; `None` when no device does.
    fn port_read(&mut self, port: u16, size: u8) -> Option<u32>;
    /// Writes to the device claiming `port` (no device: dropped).
    fn port_write(&mut self, port: u16, size: u8, data: u32);
    /// Records a denied port access.
    fn port_denied(&mut self, port: u16, size: u8, write: bool);
    /// Performs the hypercall described by the domain's hypercall block and
    /// returns its status.
    fn hypercall(&mut self) -> u32;
    /// Records a malformed use of the hypercall port.
    fn bad_hypercall(&mut self);
    /// Resolves an MMIO read (counts a denial itself).
    fn mmio_read(&mut self, gpa: u64, len: u8) -> MmioOutcome;
    /// Resolves an MMIO write (counts a denial itself).
    fn mmio_write(&mut self, gpa: u64, len: u8, data: [u8; 8]) -> MmioOutcome;
    /// Whether the host asked this vCPU to stop.
    fn stop_requested(&self) -> bool;
    /// The domain this vCPU belongs to (for tracepoints).
    fn domain(&self) -> u16 {
        0
    }
    /// Whether checked port accesses run inside the vCPU's in-flight
    /// section, so that a revocation can wait them out
    /// ([`crate::vcpu::VcpuCtl::quiesce`]). Part of what accounting costs:
    /// without accounting (Xen's behaviour) a revocation promises nothing
    /// about accesses already checked, and there is no section.
    fn quiesces(&self) -> bool {
        true
    }
}

/// The bare exit environment: every port allowed, a port read answered by
/// its `read` function (given the port and size), nothing else done and
/// every MMIO access denied. What an exit costs with no accountant and no
/// device model (the bench's floor), and a stand-in exit environment for
/// tests of the vCPU loop.
pub struct Bare<R: FnMut(u16, u8) -> Option<u32>> {
    read: R,
}

impl<R: FnMut(u16, u8) -> Option<u32>> Bare<R> {
    /// Port reads answered by `read`.
    pub fn new(read: R) -> Self {
        Bare { read }
    }
}

impl<R: FnMut(u16, u8) -> Option<u32>> ExitEnv for Bare<R> {
    fn port_allowed(&self, _: u16, _: u8) -> bool {
        true
    }
    fn port_read(&mut self, port: u16, size: u8) -> Option<u32> {
        (self.read)(port, size)
    }
    fn port_write(&mut self, _: u16, _: u8, _: u32) {}
    fn port_denied(&mut self, _: u16, _: u8, _: bool) {}
    fn hypercall(&mut self) -> u32 {
        0
    }
    fn bad_hypercall(&mut self) {}
    fn mmio_read(&mut self, _: u64, _: u8) -> MmioOutcome {
        MmioOutcome::Denied
    }
    fn mmio_write(&mut self, _: u64, _: u8, _: [u8; 8]) -> MmioOutcome {
        MmioOutcome::Denied
    }
    fn stop_requested(&self) -> bool {
        false
    }
}

impl Exit {
    /// The KVM exit reason this exit came from (`KVM_EXIT_*`), for traces.
    pub fn reason(&self) -> u32 {
        use kvm_bindings as k;
        match self {
            Exit::IoIn { .. } | Exit::IoOut { .. } => k::KVM_EXIT_IO,
            Exit::MmioRead { .. } | Exit::MmioWrite { .. } => k::KVM_EXIT_MMIO,
            Exit::Shutdown => k::KVM_EXIT_SHUTDOWN,
            Exit::Hlt => k::KVM_EXIT_HLT,
            Exit::Interrupted => k::KVM_EXIT_INTR,
            Exit::FailEntry(_) => k::KVM_EXIT_FAIL_ENTRY,
            Exit::InternalError => k::KVM_EXIT_INTERNAL_ERROR,
            Exit::Unsupported(r) => *r,
        }
    }
}

/// Decides what to do with one exit. Pure apart from what `env` does.
pub fn handle_exit(env: &mut impl ExitEnv, exit: Exit) -> Action {
    use crate::layout::{DONE_PORT, FAULT_PORT, HCALL_PORT};
    match exit {
        Exit::IoOut {
            port: DONE_PORT,
            data,
            ..
        } => Action::Stop(StopReason::Done(data)),
        Exit::IoOut {
            port: FAULT_PORT,
            data,
            ..
        } => Action::Stop(StopReason::Fault(data as u8)),
        Exit::IoIn {
            port: HCALL_PORT,
            size: 4,
        } => Action::ReplyIo(env.hypercall()),
        Exit::IoIn {
            port: HCALL_PORT,
            size,
        } => {
            env.bad_hypercall();
            Action::ReplyIo(width_mask(size))
        }
        Exit::IoOut {
            port: HCALL_PORT, ..
        } => {
            env.bad_hypercall();
            Action::Resume
        }
        Exit::IoIn { port, size } => {
            if env.port_allowed(port, size) {
                let v = env.port_read(port, size).unwrap_or(u32::MAX);
                Action::ReplyIo(v & width_mask(size))
            } else {
                env.port_denied(port, size, false);
                Action::ReplyIo(width_mask(size))
            }
        }
        Exit::IoOut { port, size, data } => {
            if env.port_allowed(port, size) {
                env.port_write(port, size, data & width_mask(size));
            } else {
                env.port_denied(port, size, true);
            }
            Action::Resume
        }
        Exit::MmioRead { gpa, len } => match env.mmio_read(gpa, len) {
            MmioOutcome::Served(b) => Action::ReplyMmio(b),
            MmioOutcome::Denied => Action::ReplyMmio([0xff; 8]),
        },
        Exit::MmioWrite { gpa, len, data } => {
            let _ = env.mmio_write(gpa, len, data);
            Action::Resume
        }
        Exit::Shutdown => Action::Stop(StopReason::TripleFault),
        Exit::Hlt => Action::Stop(StopReason::Halted),
        Exit::Interrupted => {
            if env.stop_requested() {
                Action::Stop(StopReason::Killed)
            } else {
                Action::Resume
            }
        }
        Exit::FailEntry(r) => Action::Stop(StopReason::Error(r)),
        Exit::InternalError => Action::Stop(StopReason::Error(u64::from(
            kvm_bindings::KVM_EXIT_INTERNAL_ERROR,
        ))),
        Exit::Unsupported(r) => Action::Stop(StopReason::Error(r as u64)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{DONE_PORT, FAULT_PORT, HCALL_PORT};

    /// A made-up platform: ports 0x300-0x307 allowed, device at 0x300 only,
    /// one mapped MMIO address.
    #[derive(Default)]
    struct Fake {
        writes: Vec<(u16, u8, u32)>,
        denied: Vec<(u16, u8, bool)>,
        hcalls: u32,
        bad: u32,
        mmio_denied: u32,
        stop: bool,
    }

    impl ExitEnv for Fake {
        fn port_allowed(&self, port: u16, size: u8) -> bool {
            port >= 0x300 && port as u32 + size as u32 - 1 <= 0x307
        }
        fn port_read(&mut self, port: u16, _size: u8) -> Option<u32> {
            (port == 0x300).then_some(0x1234_5678)
        }
        fn port_write(&mut self, port: u16, size: u8, data: u32) {
            self.writes.push((port, size, data));
        }
        fn port_denied(&mut self, port: u16, size: u8, write: bool) {
            self.denied.push((port, size, write));
        }
        fn hypercall(&mut self) -> u32 {
            self.hcalls += 1;
            7
        }
        fn bad_hypercall(&mut self) {
            self.bad += 1;
        }
        fn mmio_read(&mut self, gpa: u64, _len: u8) -> MmioOutcome {
            if gpa == 0x1000 {
                MmioOutcome::Served([1; 8])
            } else {
                self.mmio_denied += 1;
                MmioOutcome::Denied
            }
        }
        fn mmio_write(&mut self, gpa: u64, len: u8, data: [u8; 8]) -> MmioOutcome {
            self.mmio_read(gpa, len);
            let _ = data;
            MmioOutcome::Denied
        }
        fn stop_requested(&self) -> bool {
            self.stop
        }
    }

    /// The action for a port read of `size` bytes at `port`.
    fn io_in(f: &mut Fake, port: u16, size: u8) -> Action {
        handle_exit(f, Exit::IoIn { port, size })
    }

    /// The action for a port write of `data` (`size` bytes) at `port`.
    fn io_out(f: &mut Fake, port: u16, size: u8, data: u32) -> Action {
        handle_exit(f, Exit::IoOut { port, size, data })
    }

    #[test]
    fn allowed_port_reaches_the_device_masked_to_width() {
        let mut f = Fake::default();
        let a = io_in(&mut f, 0x300, 2);
        assert_eq!(a, Action::ReplyIo(0x5678));
        let a = io_out(&mut f, 0x301, 1, 0x1ff);
        assert_eq!(a, Action::Resume);
        assert_eq!(f.writes, vec![(0x301, 1, 0xff)]);
        assert!(f.denied.is_empty());
    }

    #[test]
    fn unclaimed_allowed_port_reads_all_ones() {
        let mut f = Fake::default();
        assert_eq!(io_in(&mut f, 0x304, 4), Action::ReplyIo(0xffff_ffff));
    }

    #[test]
    fn denied_port_reads_ones_drops_writes_and_counts() {
        let mut f = Fake::default();
        assert_eq!(io_in(&mut f, 0x3f8, 1), Action::ReplyIo(0xff));
        // Straddles the end of the allowed range.
        assert_eq!(io_out(&mut f, 0x306, 4, 1), Action::Resume);
        assert!(f.writes.is_empty());
        assert_eq!(f.denied, vec![(0x3f8, 1, false), (0x306, 4, true)]);
    }

    #[test]
    fn hypercall_port_only_takes_four_byte_reads() {
        let mut f = Fake::default();
        assert_eq!(io_in(&mut f, HCALL_PORT, 4), Action::ReplyIo(7));
        assert_eq!(io_in(&mut f, HCALL_PORT, 1), Action::ReplyIo(0xff));
        assert_eq!(io_out(&mut f, HCALL_PORT, 4, 9), Action::Resume);
        assert_eq!((f.hcalls, f.bad), (1, 2));
        assert!(f.writes.is_empty());
    }

    #[test]
    fn done_fault_and_errors_stop() {
        let mut f = Fake::default();
        assert_eq!(
            io_out(&mut f, DONE_PORT, 4, 3),
            Action::Stop(StopReason::Done(3))
        );
        assert_eq!(
            io_out(&mut f, FAULT_PORT, 4, 6),
            Action::Stop(StopReason::Fault(6))
        );
        assert_eq!(
            handle_exit(&mut f, Exit::Shutdown),
            Action::Stop(StopReason::TripleFault)
        );
        assert_eq!(
            handle_exit(&mut f, Exit::Hlt),
            Action::Stop(StopReason::Halted)
        );
        assert_eq!(
            handle_exit(&mut f, Exit::FailEntry(5)),
            Action::Stop(StopReason::Error(5))
        );
        assert_eq!(
            handle_exit(&mut f, Exit::Unsupported(4)),
            Action::Stop(StopReason::Error(4))
        );
    }

    #[test]
    fn interrupted_resumes_unless_stopping() {
        let mut f = Fake::default();
        assert_eq!(handle_exit(&mut f, Exit::Interrupted), Action::Resume);
        f.stop = true;
        assert_eq!(
            handle_exit(&mut f, Exit::Interrupted),
            Action::Stop(StopReason::Killed)
        );
    }

    #[test]
    fn unmapped_mmio_reads_ones_and_counts() {
        let mut f = Fake::default();
        assert_eq!(
            handle_exit(
                &mut f,
                Exit::MmioRead {
                    gpa: 0x1000,
                    len: 8
                }
            ),
            Action::ReplyMmio([1; 8])
        );
        assert_eq!(
            handle_exit(
                &mut f,
                Exit::MmioRead {
                    gpa: 0xfeb0_0000,
                    len: 4
                }
            ),
            Action::ReplyMmio([0xff; 8])
        );
        assert_eq!(
            handle_exit(
                &mut f,
                Exit::MmioWrite {
                    gpa: 0xfeb0_0000,
                    len: 4,
                    data: [0; 8]
                }
            ),
            Action::Resume
        );
        assert_eq!(f.mmio_denied, 2);
    }
}
