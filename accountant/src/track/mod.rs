//! MMIO use tracking: who maps which I/O memory frame, how many times.
//!
//! Three interchangeable trackers implement [`Tracker`] so that their costs can
//! be compared (SPEC section 4):
//!
//! * `xmalloc-page` — one record per mapped page from a general-purpose
//!   allocator with a per-allocation header (Xen's xmalloc);
//! * `slab-page` — one record per mapped page from the slab;
//! * `slab-extent` — one slab record per contiguous run of equal use count,
//!   split and merged as ranges change (the default).
//!
//! All draw their memory from one [`crate::mem::PageSource`], so
//! [`Tracker::tracking_bytes`] is measured the same way for each.
//! The accountant also keeps interrupt-line bindings in a tracker (a
//! binding is a use of a line).

use alloc::boxed::Box;

use crate::mem::PageSource;
use crate::types::DomId;

pub use runs::{count_map, count_unmap, runs_around, MapRefusal, RunChange};

mod per_page;
mod runs;
mod slab_extent;
mod slab_page;
mod tree;
mod xmalloc_page;

#[cfg(test)]
mod tests;

/// A new tracker of `kind` over its own unlimited page source.
pub fn new_tracker(kind: TrackerKind) -> Box<dyn Tracker + Send> {
    new_tracker_with_limit(kind, None)
}

/// A new tracker of `kind` whose page source hands out at most `page_limit`
/// live pages (`None`: no limit) — fault injection: once the limit is
/// reached, `map`/`unmap` needing memory fail with [`TrackError::NoMemory`]
/// and change nothing.
pub fn new_tracker_with_limit(
    kind: TrackerKind,
    page_limit: Option<u64>,
) -> Box<dyn Tracker + Send> {
    let source = match page_limit {
        Some(n) => PageSource::with_limit(n),
        None => PageSource::new(),
    };
    match kind {
        TrackerKind::XmallocPage => Box::new(xmalloc_page::new(source)),
        TrackerKind::SlabPage => Box::new(slab_page::new(source)),
        TrackerKind::SlabExtent => Box::new(slab_extent::new(source)),
    }
}

/// Estimated bytes of the `BTreeMap` from domain to tree root, the only
/// tracking state outside the page source: a B-tree leaf holds up to 11
/// entries of (domain id, root, length) and is at least half full, so this
/// counts one leaf of `16 + 11 × (2 + 16)` bytes per 5 domains. An
/// estimate, documented as such; zero with no domain.
pub(crate) fn index_estimate(domains: usize) -> u64 {
    const LEAF: u64 = 16 + 11 * (2 + 16);
    (domains as u64).div_ceil(5) * LEAF
}

/// Coalesces adjacent runs of equal count before handing them on; flushes
/// the last one when dropped.
pub(crate) struct RunSink<'a> {
    f: &'a mut dyn FnMut(Run),
    cur: Option<Run>,
}

impl<'a> RunSink<'a> {
    pub(crate) fn new(f: &'a mut dyn FnMut(Run)) -> Self {
        RunSink { f, cur: None }
    }

    pub(crate) fn push(&mut self, first: u64, last: u64, count: u32) {
        if let Some(r) = &mut self.cur {
            if r.count == count && r.last.checked_add(1) == Some(first) {
                r.last = last;
                return;
            }
            (self.f)(*r);
        }
        self.cur = Some(Run { first, last, count });
    }
}

impl Drop for RunSink<'_> {
    fn drop(&mut self) {
        if let Some(r) = self.cur.take() {
            (self.f)(r);
        }
    }
}

/// Which tracker implementation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum TrackerKind {
    /// One xmalloc record per page.
    XmallocPage,
    /// One slab record per page.
    SlabPage,
    /// One slab record per contiguous run (default).
    #[default]
    SlabExtent,
}

impl TrackerKind {
    /// All kinds, in comparison order.
    pub const ALL: [TrackerKind; 3] = [
        TrackerKind::XmallocPage,
        TrackerKind::SlabPage,
        TrackerKind::SlabExtent,
    ];

    /// The name used on the command line (`--tracker`) and in results.
    pub const fn name(self) -> &'static str {
        match self {
            TrackerKind::XmallocPage => "xmalloc-page",
            TrackerKind::SlabPage => "slab-page",
            TrackerKind::SlabExtent => "slab-extent",
        }
    }

    /// Parses a name.
    pub fn from_name(s: &str) -> Option<TrackerKind> {
        TrackerKind::ALL.into_iter().find(|k| k.name() == s)
    }
}

/// A run of frames `first..=last` that one domain maps `count` times each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// First frame.
    pub first: u64,
    /// Last frame (inclusive).
    pub last: u64,
    /// Use count of every frame in the run (at least 1).
    pub count: u32,
}

/// Tracking failed; the tracker is unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrackError {
    /// The page source could not supply a page.
    NoMemory,
    /// A frame in the range is not mapped by the domain (for `unmap`).
    NotMapped {
        /// The first such frame.
        frame: u64,
    },
    /// A use count would exceed `u32::MAX`.
    Overflow {
        /// The first such frame.
        frame: u64,
    },
}

/// Memory statistics of a tracker's allocator.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrackerStats {
    /// Pages currently drawn from the page source.
    pub pages: u64,
    /// Live records (allocations).
    pub records: u64,
    /// Bytes in live records including headers and rounding.
    pub record_bytes: u64,
    /// Total allocations made so far.
    pub allocations: u64,
}

/// Per-domain use counts of frames (or lines). All operations are
/// all-or-nothing: on `Err` the tracker is exactly as before.
///
/// `first..=last` arguments satisfy `first <= last <= 0xff_ffff_ffff`; the
/// accountant has checked them.
pub trait Tracker {
    /// Adds one use of every frame in `first..=last` for `dom`.
    fn map(&mut self, dom: DomId, first: u64, last: u64) -> Result<(), TrackError>;
    /// Removes one use of every frame in `first..=last` for `dom`;
    /// `NotMapped` (and no change) if any frame there has no use.
    fn unmap(&mut self, dom: DomId, first: u64, last: u64) -> Result<(), TrackError>;
    /// [`Tracker::map`], refused with [`MapRefusal::Runs`] (before any of
    /// `map`'s own errors, changing nothing) if it would add more than
    /// `room` runs to `dom`'s mappings; on success, the runs within one
    /// frame of the range before and after (see [`runs_around`]). The
    /// default walks the runs, then maps ([`count_map`]).
    fn map_counted(
        &mut self,
        dom: DomId,
        first: u64,
        last: u64,
        room: u64,
    ) -> Result<RunChange, MapRefusal> {
        count_map(self, dom, first, last, room)
    }
    /// [`Tracker::unmap`] with the runs within one frame of the range
    /// before and after. The default walks the runs, then unmaps
    /// ([`count_unmap`]).
    fn unmap_counted(
        &mut self,
        dom: DomId,
        first: u64,
        last: u64,
    ) -> Result<RunChange, TrackError> {
        count_unmap(self, dom, first, last)
    }
    /// Calls `f` for every run of frames `dom` maps within `first..=last`, in
    /// ascending order, clipped to the range, adjacent runs of equal count
    /// possibly reported separately.
    fn runs(&self, dom: DomId, first: u64, last: u64, f: &mut dyn FnMut(Run));
    /// Removes every use `dom` has within `first..=last`, calling `f` for each
    /// removed run (clipped to the range) before returning. Cannot fail, so
    /// that a teardown always completes: clearing the middle of an extent
    /// splits it in two, and `slab-extent` keeps one spare record for that,
    /// exceeding a page limit by at most one page if it must.
    fn clear(&mut self, dom: DomId, first: u64, last: u64, f: &mut dyn FnMut(Run));
    /// Drops what the tracker still keeps for `dom` once it has no use left
    /// (its destroy, after clearing everything): an index entry kept for
    /// reuse. Nothing if `dom` still uses frames.
    fn forget(&mut self, dom: DomId) {
        let _ = dom;
    }
    /// Whether `dom` maps any frame within `first..=last`.
    fn any(&self, dom: DomId, first: u64, last: u64) -> bool {
        let mut found = false;
        self.runs(dom, first, last, &mut |_| found = true);
        found
    }
    /// Bytes of tracking state: pages drawn from the page source plus any
    /// index kept outside them.
    fn tracking_bytes(&self) -> u64;
    /// Allocator statistics.
    fn stats(&self) -> TrackerStats;
    /// Which implementation this is.
    fn kind(&self) -> TrackerKind;
}
