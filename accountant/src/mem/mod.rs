//! Memory for tracking: the page source, the slab allocator and the xmalloc
//! baseline.
//!
//! Everything the MMIO trackers keep lives in 4 KiB pages drawn from a
//! [`PageSource`] that counts them, so the trackers' memory cost is measured
//! in one currency: pages × 4096.
//!
//! * [`PageSource`] — pages from the global allocator, counted, with an
//!   optional limit for fault injection;
//! * [`Slab`] / [`SlabCache`] — fixed-size object caches, O(1), no
//!   per-object header (layout in [`slab`]);
//! * [`Xmalloc`] — the general-purpose baseline with a 16-byte header per
//!   allocation (layout in [`xmalloc`]).

pub mod page;
pub mod slab;
pub mod xmalloc;

pub use page::{OutOfPages, PageSource, PageStats, PAGE_SIZE};
pub use slab::{Slab, SlabCache, SlabCorruption, SlabLayoutError, SlabStats, KEEP_EMPTY};
pub use xmalloc::{Xmalloc, XmallocCorruption, XmallocError, XmallocStats};
