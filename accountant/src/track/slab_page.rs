//! `slab-page`: one record per mapped page, from a [`Slab`] (no header; a
//! 40-byte record takes a 40-byte slot, 101 to a page). See
//! [`super::per_page`] for the index.

use core::ptr::NonNull;

use super::per_page::{PageRec, PerPage, RecordPool};
use super::{TrackerKind, TrackerStats};
use crate::mem::{PageSource, Slab};

/// Records from a slab.
#[derive(Debug)]
pub(crate) struct SlabPool(Slab<PageRec>);

// SAFETY: the pool's records only link to records of the same pool, which
// the pool (inside its tracker) owns exclusively; they move together.
unsafe impl Send for SlabPool {}

impl RecordPool for SlabPool {
    fn alloc(&mut self, r: PageRec) -> Option<NonNull<PageRec>> {
        self.0.alloc(r).ok()
    }

    unsafe fn free(&mut self, p: NonNull<PageRec>) {
        // SAFETY: `p` came from `alloc` on this slab and is not used again
        // (caller's contract).
        unsafe { self.0.free(p) }
    }

    fn could_fit(&self, n: u64) -> bool {
        let s = self.0.stats();
        self.0.cache().page_source().can_supply(
            n.saturating_sub(self.0.cache().free_objects())
                .div_ceil(s.objects_per_slab),
        )
    }

    #[cfg(test)]
    fn check_pool(&self) -> Result<(), &'static str> {
        self.0.cache().check().map_err(|e| e.0)
    }

    fn stats(&self) -> TrackerStats {
        let s = self.0.stats();
        TrackerStats {
            pages: s.pages,
            records: s.objects_in_use,
            record_bytes: s.bytes_in_use,
            allocations: s.allocations,
        }
    }

    fn trim(&mut self) {
        self.0.trim();
    }

    fn trim_to(&mut self, pages: u64) {
        self.0.trim_to(pages);
    }
}

/// The `slab-page` tracker.
pub(crate) type SlabPageTracker = PerPage<SlabPool>;

/// A new `slab-page` tracker over its own page source.
pub(crate) fn new(source: PageSource) -> SlabPageTracker {
    PerPage::new(SlabPool(Slab::new(source)), TrackerKind::SlabPage)
}
