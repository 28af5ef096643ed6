//! The atomics of the vCPU in-flight section ([`crate::inflight`]) and the
//! mutex of an ordered lock ([`crate::locks::Ordered`], the interrupt
//! table's), behind one seam: `std`'s normally, loom's under `--cfg loom`
//! (the memory-ordering models, `cargo xtask loom`), so the models run the
//! product's own code.

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU64, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};

/// One turn of a wait loop: a spin hint, and every 64th turn a yield (the
/// thread waited on may be preempted). Under loom, always a yield, which is
/// how a model learns that the thread waits for another.
#[inline]
pub(crate) fn spin_wait(turn: u32) {
    #[cfg(loom)]
    {
        let _ = turn;
        loom::thread::yield_now();
    }
    #[cfg(not(loom))]
    {
        if turn.is_multiple_of(64) {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}
