//! The page source: 4 KiB pages from the global allocator, counted.

use alloc::alloc::{alloc, dealloc, Layout};
use core::ptr::NonNull;

/// Size (and alignment) of a page.
pub const PAGE_SIZE: usize = 4096;

/// The page source is exhausted (its limit is reached or the global
/// allocator failed). Whoever asked changed nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfPages;

/// Page counts of a [`PageSource`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageStats {
    /// Pages handed out and not yet returned.
    pub live: u64,
    /// Highest `live` ever seen.
    pub peak: u64,
    /// Pages handed out since creation (returned ones included).
    pub total: u64,
    /// Requests refused (limit reached or global allocator failure).
    pub failures: u64,
}

/// Hands out 4096-byte, 4096-aligned pages and counts them.
///
/// An optional limit on live pages makes allocation fail cleanly once
/// reached, which is how the trackers' all-or-nothing behaviour is tested
/// (fault injection). The source does not remember which pages it handed
/// out: owners return every page before dropping it (the slab and xmalloc
/// do so in their `Drop`); a page not returned is leaked, never freed twice.
#[derive(Debug, Default)]
pub struct PageSource {
    stats: PageStats,
    limit: Option<u64>,
}

// The layout of one page; size and alignment are a non-zero power of two.
const PAGE_LAYOUT: Layout = match Layout::from_size_align(PAGE_SIZE, PAGE_SIZE) {
    Ok(l) => l,
    Err(_) => panic!("4096/4096 is a valid layout"),
};

impl PageSource {
    /// A source without limit.
    pub const fn new() -> PageSource {
        PageSource {
            stats: PageStats {
                live: 0,
                peak: 0,
                total: 0,
                failures: 0,
            },
            limit: None,
        }
    }

    /// A source that refuses to have more than `limit` pages live at once.
    pub const fn with_limit(limit: u64) -> PageSource {
        let mut s = PageSource::new();
        s.limit = Some(limit);
        s
    }

    /// Changes the limit on live pages (`None`: unlimited). Lowering it
    /// below the live count frees nothing; it only refuses new pages.
    pub fn set_limit(&mut self, limit: Option<u64>) {
        self.limit = limit;
    }

    /// The limit on live pages, if any.
    pub fn limit(&self) -> Option<u64> {
        self.limit
    }

    /// Whether `n` more pages could be handed out under the limit (the
    /// global allocator may still fail).
    pub fn can_supply(&self, n: u64) -> bool {
        match self.limit {
            Some(l) => self.stats.live.saturating_add(n) <= l,
            None => true,
        }
    }

    /// One page (contents unspecified), or `OutOfPages` (nothing changed
    /// but the failure count).
    pub fn alloc_page(&mut self) -> Result<NonNull<u8>, OutOfPages> {
        if !self.can_supply(1) {
            self.stats.failures += 1;
            return Err(OutOfPages);
        }
        // SAFETY: PAGE_LAYOUT has non-zero size.
        let p = unsafe { alloc(PAGE_LAYOUT) };
        match NonNull::new(p) {
            Some(p) => {
                self.stats.live += 1;
                self.stats.total += 1;
                self.stats.peak = self.stats.peak.max(self.stats.live);
                Ok(p)
            }
            None => {
                self.stats.failures += 1;
                Err(OutOfPages)
            }
        }
    }

    /// Returns a page.
    ///
    /// # Safety
    ///
    /// `page` came from [`PageSource::alloc_page`] on this source, has not
    /// been returned since, and nothing uses it any more.
    pub unsafe fn free_page(&mut self, page: NonNull<u8>) {
        // SAFETY: by the caller's contract the page was allocated by
        // `alloc(PAGE_LAYOUT)` in `alloc_page` and is not freed yet.
        unsafe { dealloc(page.as_ptr(), PAGE_LAYOUT) };
        self.stats.live -= 1;
    }

    /// Pages live now.
    pub fn live(&self) -> u64 {
        self.stats.live
    }

    /// All counts.
    pub fn stats(&self) -> PageStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_aligned_counted_and_limited() {
        let mut s = PageSource::with_limit(2);
        let a = s.alloc_page().expect("first page under limit");
        let b = s.alloc_page().expect("second page under limit");
        assert_eq!(a.as_ptr() as usize % PAGE_SIZE, 0);
        assert_eq!(b.as_ptr() as usize % PAGE_SIZE, 0);
        assert_ne!(a, b);
        assert_eq!(s.alloc_page(), Err(OutOfPages));
        assert_eq!(
            s.stats(),
            PageStats {
                live: 2,
                peak: 2,
                total: 2,
                failures: 1
            }
        );
        // SAFETY: `a` came from this source and is unused.
        unsafe { s.free_page(a) };
        let c = s.alloc_page().expect("a page was returned");
        assert_eq!(s.stats().total, 3);
        assert_eq!(s.stats().peak, 2);
        // SAFETY: both came from this source and are unused.
        unsafe {
            s.free_page(b);
            s.free_page(c);
        }
        assert_eq!(s.live(), 0);
    }
}
