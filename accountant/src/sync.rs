//! The atomics and `Arc` of the port table, behind one seam: `core`'s
//! normally, loom's under `--cfg loom` (the memory-ordering models, `cargo
//! xtask loom`), so the models run the port table's own code.

#[cfg(not(loom))]
pub(crate) use alloc::sync::Arc;
#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{fence, AtomicPtr, AtomicU64, AtomicUsize, Ordering};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::Arc;
