//! The per-page design shared by `xmalloc-page` and `slab-page`: one record
//! `{links, frame}` (the use count lives in the links) per mapped page, in a
//! per-domain AVL tree keyed by frame. The two differ only in where records
//! come from ([`RecordPool`]).
//!
//! Costs, by design: `map`/`unmap` of `n` pages touch `n` records — O(n log
//! r) for `r` records of the domain (each insertion walks from a neighbour
//! found by the ordered walk, not from scratch for the walk itself), and one
//! allocation per newly mapped page. A `clear` covering all of a domain's
//! records frees them in O(n) without rebalancing.

use alloc::collections::BTreeMap;
use core::ptr::NonNull;

use super::tree::{chain_pop, chain_push, get, get_mut, Linked, Links, Tree};
use super::{index_estimate, Run, RunSink, TrackError, Tracker, TrackerKind, TrackerStats};
use crate::types::DomId;

/// The most records one `map` may create: 2^22 (4 Mi pages, a 16 GiB BAR;
/// 160 MiB of slab records, 256 MiB of xmalloc ones). A larger request
/// fails at once with `NoMemory` instead of allocating until the host's
/// memory gives out: the per-page designs are measured up to framebuffer
/// scale, and a trace line mapping 2^32 frames must not take the host down.
const MAX_NEW_RECORDS: u64 = 1 << 22;

/// One mapped page.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct PageRec {
    links: Links<PageRec>,
    frame: u64,
}

// SAFETY: `PageRec` is repr(C) with `Links<PageRec>` first.
unsafe impl Linked for PageRec {}

impl PageRec {
    fn new(frame: u64) -> PageRec {
        PageRec {
            links: Links::new(1),
            frame,
        }
    }
}

/// Where records come from.
pub(crate) trait RecordPool {
    /// A new record, or `None` when the page source is exhausted.
    fn alloc(&mut self, r: PageRec) -> Option<NonNull<PageRec>>;
    /// Returns a record.
    ///
    /// # Safety
    ///
    /// `p` came from `alloc` on this pool, is unlinked, and is not used again.
    unsafe fn free(&mut self, p: NonNull<PageRec>);
    /// Whether `n` more records could fit under the page limit (a cheap
    /// pre-check so that a hopeless `map` fails before allocating).
    fn could_fit(&self, n: u64) -> bool;
    /// Allocator statistics.
    fn stats(&self) -> TrackerStats;
    /// Returns idle pages after an operation.
    fn trim(&mut self) {}
    /// Returns idle pages until at most `pages` remain (rollback).
    fn trim_to(&mut self, _pages: u64) {}
    /// Verifies the allocator's own bookkeeping (tests).
    #[cfg(test)]
    fn check_pool(&self) -> Result<(), &'static str>;
}

/// A per-page tracker over a record pool.
#[derive(Debug)]
pub(crate) struct PerPage<P> {
    pool: P,
    doms: BTreeMap<DomId, Tree<PageRec>>,
    kind: TrackerKind,
}

// SAFETY: every record reachable from `doms` was allocated from `pool`,
// which the tracker owns exclusively; no pointer to them leaves the
// tracker, so moving the whole to another thread moves all access with it.
unsafe impl<P: Send> Send for PerPage<P> {}

impl<P: RecordPool> PerPage<P> {
    pub(crate) fn new(pool: P, kind: TrackerKind) -> Self {
        PerPage {
            pool,
            doms: BTreeMap::new(),
            kind,
        }
    }

    #[cfg(test)]
    pub(crate) fn force_count(&mut self, dom: DomId, frame: u64, count: u32) {
        if let Some(t) = self.doms.get(&dom) {
            if let Some(p) = t
                .lower_bound(|r| r.frame >= frame)
                .filter(|p| get(*p).frame == frame)
            {
                get_mut(p).links.count = count;
            }
        }
    }

    fn walk(&self, dom: DomId, first: u64, last: u64, f: &mut dyn FnMut(Run)) {
        let Some(tree) = self.doms.get(&dom) else {
            return;
        };
        let mut sink = RunSink::new(f);
        let mut cur = tree.lower_bound(|r| r.frame >= first);
        while let Some(p) = cur {
            let r = get(p);
            if r.frame > last {
                break;
            }
            sink.push(r.frame, r.frame, r.links.count);
            cur = Tree::next(p);
        }
    }

    /// Verifies the trees and record invariants (tests).
    #[cfg(test)]
    pub(crate) fn check(&self) -> Result<(), &'static str> {
        let mut total = 0;
        for tree in self.doms.values() {
            if tree.is_empty() {
                return Err("empty domain tree kept");
            }
            tree.check()?;
            total += tree.len();
            let mut prev: Option<u64> = None;
            let mut cur = tree.first();
            while let Some(p) = cur {
                let r = get(p);
                if r.links.count == 0 || prev.is_some_and(|q| q >= r.frame) {
                    return Err("records out of order or at count 0");
                }
                prev = Some(r.frame);
                cur = Tree::next(p);
            }
        }
        if total != self.pool.stats().records {
            return Err("records leaked");
        }
        self.pool.check_pool()
    }
}

impl<P: RecordPool> Tracker for PerPage<P> {
    fn map(&mut self, dom: DomId, first: u64, last: u64) -> Result<(), TrackError> {
        if first > last {
            return Ok(());
        }
        // Validate and count, changing nothing.
        let mut existing = 0u64;
        if let Some(tree) = self.doms.get(&dom) {
            let mut cur = tree.lower_bound(|r| r.frame >= first);
            while let Some(p) = cur {
                let r = get(p);
                if r.frame > last {
                    break;
                }
                if r.links.count == u32::MAX {
                    return Err(TrackError::Overflow { frame: r.frame });
                }
                existing += 1;
                cur = Tree::next(p);
            }
        }
        let need = (last - first).saturating_add(1) - existing;
        if need > MAX_NEW_RECORDS || !self.pool.could_fit(need) {
            return Err(TrackError::NoMemory);
        }
        // Allocate every new record up front (chained through their unused
        // links), so that running out changes nothing.
        let pages_before = self.pool.stats().pages;
        let mut chain: Option<NonNull<PageRec>> = None;
        for _ in 0..need {
            match self.pool.alloc(PageRec::new(0)) {
                Some(p) => chain_push(&mut chain, p),
                None => {
                    while let Some(p) = chain_pop(&mut chain) {
                        // SAFETY: `p` was allocated from this pool above and
                        // never linked.
                        unsafe { self.pool.free(p) };
                    }
                    self.pool.trim_to(pages_before);
                    return Err(TrackError::NoMemory);
                }
            }
        }
        let tree = self.doms.entry(dom).or_default();
        let mut cur = tree.lower_bound(|r| r.frame >= first);
        let mut frame = first;
        loop {
            match cur {
                Some(p) if get(p).frame == frame => {
                    get_mut(p).links.count += 1;
                    cur = Tree::next(p);
                }
                _ => {
                    let n =
                        chain_pop(&mut chain).expect("one record was allocated per unmapped frame");
                    get_mut(n).frame = frame;
                    tree.insert_before(cur, n);
                }
            }
            if frame == last {
                break;
            }
            frame += 1;
        }
        self.pool.trim();
        Ok(())
    }

    fn unmap(&mut self, dom: DomId, first: u64, last: u64) -> Result<(), TrackError> {
        if first > last {
            return Ok(());
        }
        let Some(tree) = self.doms.get_mut(&dom) else {
            return Err(TrackError::NotMapped { frame: first });
        };
        let start = tree.lower_bound(|r| r.frame >= first);
        let mut cur = start;
        let mut frame = first;
        loop {
            match cur {
                Some(p) if get(p).frame == frame => cur = Tree::next(p),
                _ => return Err(TrackError::NotMapped { frame }),
            }
            if frame == last {
                break;
            }
            frame += 1;
        }
        let mut cur = start;
        while let Some(p) = cur {
            if get(p).frame > last {
                break;
            }
            cur = Tree::next(p);
            let r = get_mut(p);
            r.links.count -= 1;
            if r.links.count == 0 {
                tree.remove(p);
                // SAFETY: `p` came from this pool and was just unlinked.
                unsafe { self.pool.free(p) };
            }
        }
        if tree.is_empty() {
            self.doms.remove(&dom);
        }
        self.pool.trim();
        Ok(())
    }

    fn runs(&self, dom: DomId, first: u64, last: u64, f: &mut dyn FnMut(Run)) {
        self.walk(dom, first, last, f);
    }

    fn clear(&mut self, dom: DomId, first: u64, last: u64, f: &mut dyn FnMut(Run)) {
        if first > last {
            return;
        }
        let Some(tree) = self.doms.get_mut(&dom) else {
            return;
        };
        let whole = tree.first().is_some_and(|p| get(p).frame >= first)
            && tree.last().is_some_and(|p| get(p).frame <= last);
        {
            let mut sink = RunSink::new(f);
            if whole {
                let mut cur = tree.first();
                while let Some(p) = cur {
                    let r = get(p);
                    sink.push(r.frame, r.frame, r.links.count);
                    cur = Tree::next(p);
                }
                let pool = &mut self.pool;
                tree.drain(|p| {
                    // SAFETY: records of this tree come from this pool;
                    // `drain` has unlinked `p` and no longer touches it.
                    unsafe { pool.free(p) }
                });
            } else {
                let mut cur = tree.lower_bound(|r| r.frame >= first);
                while let Some(p) = cur {
                    let r = get(p);
                    if r.frame > last {
                        break;
                    }
                    sink.push(r.frame, r.frame, r.links.count);
                    cur = Tree::next(p);
                    tree.remove(p);
                    // SAFETY: from this pool, just unlinked.
                    unsafe { self.pool.free(p) };
                }
            }
        }
        if tree.is_empty() {
            self.doms.remove(&dom);
        }
        self.pool.trim();
    }

    fn tracking_bytes(&self) -> u64 {
        self.pool.stats().pages * crate::mem::PAGE_SIZE as u64 + index_estimate(self.doms.len())
    }

    fn stats(&self) -> TrackerStats {
        self.pool.stats()
    }

    fn kind(&self) -> TrackerKind {
        self.kind
    }
}
