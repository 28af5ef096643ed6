//! `xmalloc-page`: the original design — one record per mapped page, each a
//! separate [`Xmalloc`] allocation with its 16-byte header (a 40-byte record
//! takes a 64-byte block). See [`super::per_page`] for the index.

use core::ptr::NonNull;

use super::per_page::{PageRec, PerPage, RecordPool};
use super::{TrackerKind, TrackerStats};
use crate::mem::{PageSource, Xmalloc, PAGE_SIZE};

/// Records from an xmalloc heap.
#[derive(Debug)]
pub(crate) struct XmallocPool(Xmalloc);

impl RecordPool for XmallocPool {
    fn alloc(&mut self, r: PageRec) -> Option<NonNull<PageRec>> {
        self.0.alloc_value(r).ok()
    }

    unsafe fn free(&mut self, p: NonNull<PageRec>) {
        // SAFETY: `p` came from `alloc_value` on this heap and is not used
        // again (caller's contract).
        unsafe { self.0.free_value(p) }
    }

    fn could_fit(&self, n: u64) -> bool {
        let per_page =
            ((PAGE_SIZE - 16) / Xmalloc::block_size(core::mem::size_of::<PageRec>())) as u64;
        let free =
            self.0.stats().free_bytes / Xmalloc::block_size(core::mem::size_of::<PageRec>()) as u64;
        self.0
            .page_source()
            .can_supply(n.saturating_sub(free).div_ceil(per_page))
    }

    #[cfg(test)]
    fn check_pool(&self) -> Result<(), &'static str> {
        self.0.check().map_err(|e| e.0)
    }

    fn stats(&self) -> TrackerStats {
        let s = self.0.stats();
        TrackerStats {
            pages: s.pages,
            records: s.live,
            record_bytes: s.bytes,
            allocations: s.allocations,
        }
    }
}

/// The `xmalloc-page` tracker.
pub(crate) type XmallocPageTracker = PerPage<XmallocPool>;

/// A new `xmalloc-page` tracker over its own page source.
pub(crate) fn new(source: PageSource) -> XmallocPageTracker {
    PerPage::new(XmallocPool(Xmalloc::new(source)), TrackerKind::XmallocPage)
}
