//! A vCPU's in-flight section: how the control plane waits out the port
//! accesses checked against permissions it has just taken away.
//!
//! The vCPU thread brackets the check and the device access it allows with
//! [`InFlight::enter`] and [`InFlight::leave`]; the control plane, after an
//! accountant operation took rights away (the permission bits are cleared
//! before it returns), calls [`InFlight::quiesce`]. The guarantee: once
//! `quiesce` returns, no section that began before it is still running, and
//! a section that begins after it sees the cleared bits.
//!
//! **Protocol (store buffering, Dekker).** A sequence counter, odd while
//! inside. The vCPU writes `seq` then reads the permission word; the control
//! plane writes the permission word then reads `seq`. A `SeqCst` fence on
//! each side, between its write and its read, forbids both reads seeing the
//! old values: either the control plane sees the section (odd `seq`) and
//! waits for `seq` to move, or the section's check sees the revocation.
//! Without either fence both can read old values (the store buffer), and a
//! stale allow is delivered after `quiesce` returned.
//!
//! **Proof.** `cargo xtask loom` runs this file's model against the
//! accountant's real port table, with both fences (it must pass) and with
//! either fence removed (it must fail).

use crate::sync::{fence, spin_wait, AtomicU64, Ordering};

/// One vCPU's in-flight section (a sequence counter, odd while inside).
#[derive(Debug, Default)]
pub struct InFlight {
    seq: AtomicU64,
}

impl InFlight {
    /// Opens the section: call before the port check. Only the vCPU's own
    /// thread enters and leaves.
    #[inline]
    pub fn enter(&self) {
        self.seq.fetch_add(1, Ordering::SeqCst);
        // Orders the write of `seq` before the check's load of the
        // permission word (see the module docs).
        fence(Ordering::SeqCst);
    }

    /// The section without its fence: what the model must reject.
    #[cfg(all(test, loom))]
    fn enter_without_fence(&self) {
        self.seq.fetch_add(1, Ordering::SeqCst);
    }

    /// Closes the section: call after the allowed access is carried out.
    #[inline]
    pub fn leave(&self) {
        self.seq.fetch_add(1, Ordering::SeqCst);
    }

    /// Whether a section is open (for closing one a panic left open: the
    /// vCPU thread only).
    pub fn is_open(&self) -> bool {
        self.seq.load(Ordering::SeqCst) % 2 == 1
    }

    /// Waits until the section open when this was called, if any, has been
    /// left. Call after the permission bits were cleared.
    pub fn quiesce(&self) {
        // Orders the caller's preceding permission update before this read
        // of `seq` (see the module docs).
        fence(Ordering::SeqCst);
        self.wait_out();
    }

    /// `quiesce` without its fence: what the model must reject.
    #[cfg(all(test, loom))]
    fn quiesce_without_fence(&self) {
        self.wait_out();
    }

    /// Waits for an open section to be left.
    fn wait_out(&self) {
        let s = self.seq.load(Ordering::SeqCst);
        if s % 2 == 1 {
            let mut turn = 0u32;
            while self.seq.load(Ordering::SeqCst) == s {
                turn = turn.wrapping_add(1);
                spin_wait(turn);
            }
        }
    }
}

#[cfg(all(test, loom))]
mod loom_model {
    //! A vCPU checks a port with the accountant's bound checker inside its
    //! section and, if allowed, touches the device; the control plane
    //! revokes the port, quiesces, and hands the device on (a write). loom
    //! reports a causality violation if a stale allow's access is not
    //! ordered before the hand-over.
    use super::InFlight;
    use accountant::{Accountant, DomId, Mode, Space, TrackerKind, UnitRange};
    use loom::cell::UnsafeCell;
    use loom::sync::Arc;

    const PORT: u64 = 0x10;

    /// Which fence the run leaves out, if any.
    #[derive(Clone, Copy, PartialEq)]
    enum Weakened {
        Nothing,
        VcpuFence,
        QuiesceFence,
    }

    fn run(weak: Weakened) {
        loom::model(move || {
            let mut acct = Accountant::new(TrackerKind::SlabExtent);
            let d = DomId::new(1).expect("a valid id");
            let port = UnitRange::one(Space::IoPort, PORT).expect("a port");
            acct.create(d).expect("fresh");
            acct.grant(d, port, Mode::Exclusive, false).expect("free");
            let checker = acct.bound_port_checker(d).expect("in the table");
            let section = Arc::new(InFlight::default());
            let device = Arc::new(UnsafeCell::new(0u32));
            let vcpu = {
                let (section, device) = (Arc::clone(&section), Arc::clone(&device));
                loom::thread::spawn(move || {
                    if weak == Weakened::VcpuFence {
                        section.enter_without_fence();
                    } else {
                        section.enter();
                    }
                    if checker.check_untraced(PORT as u16, 1) {
                        // SAFETY: loom's cell checks this read against the
                        // control plane's write; nothing else touches it.
                        device.with(|v| unsafe { assert_eq!(*v, 0) });
                    }
                    section.leave();
                })
            };
            acct.revoke(d, port, true).expect("granted");
            if weak == Weakened::QuiesceFence {
                section.quiesce_without_fence();
            } else {
                section.quiesce();
            }
            // The device now belongs to someone else.
            // SAFETY: as above: loom checks this write against the read.
            device.with_mut(|v| unsafe { *v = 1 });
            vcpu.join().expect("the vCPU thread");
        });
    }

    #[test]
    fn quiesce_waits_out_every_stale_allow() {
        run(Weakened::Nothing);
    }

    #[test]
    #[should_panic(expected = "Causality violation")]
    fn without_the_vcpu_fence_a_stale_allow_outlives_quiesce() {
        run(Weakened::VcpuFence);
    }

    #[test]
    #[should_panic(expected = "Causality violation")]
    fn without_the_quiesce_fence_a_stale_allow_outlives_quiesce() {
        run(Weakened::QuiesceFence);
    }
}
