//! `slab-extent` (the default): one slab record `{links, first, last}` (use
//! count in the links; 48 bytes, 84 to a page) per maximal run of frames
//! that a domain maps the same number of times, in a per-domain AVL tree
//! ordered by frame.
//!
//! Records are kept *canonical*: disjoint, each with a count of at least 1,
//! and no two adjacent records (`a.last + 1 == b.first`) with equal counts.
//! `map`/`unmap` split the records at the ends of the range, change the
//! counts inside, fill gaps (map) or drop records reaching 0 (unmap), then
//! merge equal neighbours from just before the range to just after it. So
//! mapping 262,144 contiguous frames once costs one record, and every
//! operation costs O(log r + records touched), never O(frames).
//!
//! A domain's tree stays in the index when `unmap` or `clear` empties it
//! (so that a domain mapping and unmapping the same frames, or whose
//! mappings a forced revoke tears down, does not re-insert its entry every
//! time, and the index estimate of [`Tracker::tracking_bytes`] keeps
//! counting it); [`Tracker::forget`], at the domain's destroy, removes it.
//!
//! # All or nothing
//!
//! `map` and `unmap` first walk the affected records without changing
//! anything: `Overflow` and `NotMapped` are found there, and the number of
//! new records is counted exactly (a gap is one record; a split at either
//! end is one). They then reserve that many slab slots
//! ([`crate::mem::Slab::reserve`]); if the page source refuses, nothing
//! changed. After the reservation every allocation succeeds.
//!
//! `unmap` is a teardown too: if the page source refuses the records its
//! splits need (at most two), it takes them beyond the page limit for that
//! one call, so that a domain can always finish unmapping and draining.
//!
//! # Fast paths
//!
//! Two shapes take one descent of the domain's tree and no reservation:
//!
//! * a map of a range that lies *apart* — no record within one frame of it
//!   (a BAR or page mapped for the first time): one new record, nothing
//!   split or merged, so only its allocation can fail, and a failed
//!   allocation changes nothing;
//! * an unmap of a *lone* record — exactly the range, mapped once: the
//!   record goes, nothing split or merged.
//!
//! Both need the spare record to exist (so that the reservation the general
//! path would make is empty); [`Tracker::map_counted`] and
//! [`Tracker::unmap_counted`] take them too, reporting the change of runs
//! they imply (0 → 1 and 1 → 0 within one frame of the range), and walk the
//! records from that same descent otherwise.
//!
//! `clear` cannot fail by contract, yet clearing strictly inside one record
//! leaves two pieces: one new record. The tracker therefore holds one
//! **spare record** at all times after the first successful `map`/`unmap`
//! (each reserves a slot for it): `clear` uses the spare, then refills it
//! (from a slot freed by the same clear if any, else from the slab). Only if
//! that refill fails (page source exhausted) *and* a second inner clear
//! follows before any successful `map`/`unmap` would the tracker lack a
//! record; it then lifts the page limit for that one allocation (a fault
//! injection limit is exceeded by at most one page, never the global
//! allocator's).

use alloc::collections::btree_map::Entry;
use alloc::collections::BTreeMap;
use core::ptr::NonNull;

use super::runs::{change_around, count_map, count_unmap, MapRefusal, RunChange};
use super::tree::{get, get_mut, Linked, Links, Tree};
use super::{index_estimate, Run, TrackError, Tracker, TrackerKind, TrackerStats};
use crate::mem::{PageSource, Slab, PAGE_SIZE};
use crate::types::DomId;

/// One maximal run of equal use count.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct ExtentRec {
    links: Links<ExtentRec>,
    first: u64,
    last: u64,
}

// SAFETY: `ExtentRec` is repr(C) with `Links<ExtentRec>` first.
unsafe impl Linked for ExtentRec {}

fn count(p: NonNull<ExtentRec>) -> u32 {
    get(p).links.count
}

/// The `slab-extent` tracker.
#[derive(Debug)]
pub(crate) struct SlabExtent {
    slab: Slab<ExtentRec>,
    doms: BTreeMap<DomId, Tree<ExtentRec>>,
    spare: Option<NonNull<ExtentRec>>,
}

// SAFETY: every record reachable from `doms` or `spare` was allocated from
// `slab`, which the tracker owns exclusively; no pointer to them leaves the
// tracker.
unsafe impl Send for SlabExtent {}

/// A new `slab-extent` tracker over its own page source.
pub(crate) fn new(source: PageSource) -> SlabExtent {
    SlabExtent {
        slab: Slab::new(source),
        doms: BTreeMap::new(),
        spare: None,
    }
}

/// A record from the reservation made by the caller.
fn take(slab: &mut Slab<ExtentRec>, first: u64, last: u64, count: u32) -> NonNull<ExtentRec> {
    slab.alloc(ExtentRec {
        links: Links::new(count),
        first,
        last,
    })
    .expect("the operation reserved a slot for every record it creates")
}

fn free(slab: &mut Slab<ExtentRec>, p: NonNull<ExtentRec>) {
    // SAFETY: every record the tracker handles came from its slab; callers
    // pass only records just unlinked from a tree (or never linked), which
    // nothing refers to any more.
    unsafe { slab.free(p) }
}

/// Reserves `n` new records plus the spare if it is missing; then makes
/// the spare. On `Err` nothing changed.
fn reserve(
    slab: &mut Slab<ExtentRec>,
    spare: &mut Option<NonNull<ExtentRec>>,
    n: u64,
) -> Result<(), TrackError> {
    let want = n + u64::from(spare.is_none());
    // Nothing to reserve (the common unmap): the slab holds no reservation
    // between operations, so there is none to set either.
    if want > 0 && slab.reserve(want).is_err() {
        slab.trim();
        return Err(TrackError::NoMemory);
    }
    if spare.is_none() {
        *spare = Some(take(slab, 0, 0, 0));
    }
    Ok(())
}

/// Splits `p` so that it ends at `at - 1` and a new record (same count)
/// covers `at..=old last`; returns the new record.
fn split(
    slab: &mut Slab<ExtentRec>,
    tree: &mut Tree<ExtentRec>,
    p: NonNull<ExtentRec>,
    at: u64,
) -> NonNull<ExtentRec> {
    let (last, c) = (get(p).last, count(p));
    let n = take(slab, at, last, c);
    get_mut(p).last = at - 1;
    tree.insert_before(Tree::next(p), n);
    n
}

/// Merges equal-count neighbours among the records of `tree` that touch
/// `lo..=hi`.
fn merge(slab: &mut Slab<ExtentRec>, tree: &mut Tree<ExtentRec>, lo: u64, hi: u64) {
    let mut cur = tree.lower_bound(|r| r.last >= lo);
    while let Some(p) = cur {
        if get(p).first > hi {
            break;
        }
        let Some(n) = Tree::next(p) else { break };
        if get(p).last.checked_add(1) == Some(get(n).first) && count(p) == count(n) {
            get_mut(p).last = get(n).last;
            tree.remove(n);
            free(slab, n);
        } else {
            cur = Some(n);
        }
    }
}

/// New records a `map` of `first..=last` needs in `tree` (a gap is one; a
/// split at either end is one), or the first frame whose count would
/// overflow. Changes nothing.
fn records_for_map(tree: &Tree<ExtentRec>, first: u64, last: u64) -> Result<u64, TrackError> {
    let mut new = 0u64;
    let mut pos = first;
    let mut cur = tree.lower_bound(|r| r.last >= first);
    if cur.is_some_and(|p| get(p).first < first) {
        new += 1;
    }
    while let Some(p) = cur {
        let r = get(p);
        if r.first > last {
            break;
        }
        if r.links.count == u32::MAX {
            return Err(TrackError::Overflow {
                frame: r.first.max(first),
            });
        }
        if r.first > pos {
            new += 1;
        }
        if r.last >= last {
            return Ok(new + u64::from(r.last > last));
        }
        pos = r.last + 1;
        cur = Tree::next(p);
    }
    Ok(new + 1)
}

impl SlabExtent {
    /// Sets the count of the record holding `frame` (tests: overflow).
    #[cfg(test)]
    pub(crate) fn force_count(&mut self, dom: DomId, frame: u64, count: u32) {
        if let Some(t) = self.doms.get(&dom) {
            if let Some(p) = t
                .lower_bound(|r| r.last >= frame)
                .filter(|p| get(*p).first <= frame)
            {
                get_mut(p).links.count = count;
            }
        }
    }

    fn free(&mut self, p: NonNull<ExtentRec>) {
        free(&mut self.slab, p)
    }

    /// A new spare record from the slab (none if the page source refuses).
    fn refill_spare(&mut self) {
        self.spare = self
            .slab
            .alloc(ExtentRec {
                links: Links::new(0),
                first: 0,
                last: 0,
            })
            .ok();
    }

    fn tree(&mut self, dom: DomId) -> &mut Tree<ExtentRec> {
        self.doms.entry(dom).or_default()
    }

    fn prune(&mut self, dom: DomId) {
        if self.doms.get(&dom).is_some_and(|t| t.is_empty()) {
            self.doms.remove(&dom);
        }
    }

    /// Verifies the trees and that records are canonical (tests).
    #[cfg(test)]
    pub(crate) fn check(&self) -> Result<(), &'static str> {
        let mut total = u64::from(self.spare.is_some());
        for tree in self.doms.values() {
            tree.check()?;
            total += tree.len();
            let mut prev: Option<NonNull<ExtentRec>> = None;
            let mut cur = tree.first();
            while let Some(p) = cur {
                let r = get(p);
                if r.links.count == 0 || r.first > r.last {
                    return Err("empty record");
                }
                if let Some(q) = prev {
                    if get(q).last >= r.first {
                        return Err("records overlap or out of order");
                    }
                    if get(q).last + 1 == r.first && count(q) == r.links.count {
                        return Err("mergeable neighbours left apart");
                    }
                }
                prev = Some(p);
                cur = Tree::next(p);
            }
        }
        if total != self.slab.stats().objects_in_use {
            return Err("records leaked");
        }
        self.slab.cache().check().map_err(|e| e.0)
    }
}

/// The first record of `tree` reaching `first - 1`: where a walk of the
/// runs within one frame of `first..` starts, and the successor of a range
/// that lies apart.
fn near(tree: &Tree<ExtentRec>, first: u64) -> Option<NonNull<ExtentRec>> {
    tree.lower_bound(|r| r.last >= first.saturating_sub(1))
}

/// Whether a range ending at `last` whose [`near`] record is `near` lies
/// apart: no record within one frame of it.
fn apart(near: Option<NonNull<ExtentRec>>, last: u64) -> bool {
    near.is_none_or(|p| get(p).first > last.saturating_add(1))
}

/// The map of a range that lies apart (module docs, fast paths): one new
/// record before `succ`, nothing split or merged. Only its allocation can
/// fail, and a failed allocation changes nothing. Only while the spare
/// record exists, so that no reservation is needed.
fn map_apart(
    slab: &mut Slab<ExtentRec>,
    tree: &mut Tree<ExtentRec>,
    succ: Option<NonNull<ExtentRec>>,
    first: u64,
    last: u64,
) -> Result<(), TrackError> {
    let g = slab
        .alloc(ExtentRec {
            links: Links::new(1),
            first,
            last,
        })
        .map_err(|_| TrackError::NoMemory)?;
    tree.insert_before(succ, g);
    Ok(())
}

/// The record that is exactly `first..=last` mapped once, if `near` (the
/// [`near`] record of `first`) or its successor is one: its unmap removes
/// it, nothing split or merged (module docs, fast paths).
fn single(near: Option<NonNull<ExtentRec>>, first: u64, last: u64) -> Option<NonNull<ExtentRec>> {
    let p = near?;
    let p = if get(p).first < first {
        Tree::next(p)?
    } else {
        p
    };
    let r = get(p);
    (r.first == first && r.last == last && r.links.count == 1).then_some(p)
}

/// Calls `f` for each record from `cur` on that overlaps `first..=last`,
/// clipped to it (`cur`: the first record reaching `first`).
fn walk(mut cur: Option<NonNull<ExtentRec>>, first: u64, last: u64, f: &mut dyn FnMut(Run)) {
    while let Some(p) = cur {
        let r = get(p);
        if r.first > last {
            break;
        }
        f(Run {
            first: r.first.max(first),
            last: r.last.min(last),
            count: r.links.count,
        });
        cur = Tree::next(p);
    }
}

/// Pass 1 of a map into an existing tree: validate, count and reserve the
/// new records; no change.
fn prepare_map(
    slab: &mut Slab<ExtentRec>,
    spare: &mut Option<NonNull<ExtentRec>>,
    tree: &Tree<ExtentRec>,
    first: u64,
    last: u64,
) -> Result<(), TrackError> {
    reserve(slab, spare, records_for_map(tree, first, last)?)
}

/// Pass 2 of a map, after its records were reserved: split, count, fill
/// the gaps, merge, end the reservation.
fn apply_map(slab: &mut Slab<ExtentRec>, tree: &mut Tree<ExtentRec>, first: u64, last: u64) {
    let mut cur = tree.lower_bound(|r| r.last >= first);
    if let Some(p) = cur {
        if get(p).first < first {
            cur = Some(split(slab, tree, p, first));
        }
    }
    let mut pos = first;
    loop {
        match cur {
            Some(p) if get(p).first <= last => {
                if get(p).first > pos {
                    let g = take(slab, pos, get(p).first - 1, 1);
                    tree.insert_before(Some(p), g);
                }
                if get(p).last > last {
                    split(slab, tree, p, last + 1);
                }
                get_mut(p).links.count += 1;
                if get(p).last == last {
                    break;
                }
                pos = get(p).last + 1;
                cur = Tree::next(p);
            }
            _ => {
                let g = take(slab, pos, last, 1);
                tree.insert_before(cur, g);
                break;
            }
        }
    }
    merge(slab, tree, first.saturating_sub(1), last.saturating_add(1));
    slab.trim();
}

/// An unmap from `tree`, both passes (module docs).
fn unmap_tree(
    slab: &mut Slab<ExtentRec>,
    spare: &mut Option<NonNull<ExtentRec>>,
    tree: &mut Tree<ExtentRec>,
    first: u64,
    last: u64,
) -> Result<(), TrackError> {
    // Pass 1: every frame must be covered; remember the end records.
    let head = tree.lower_bound(|r| r.last >= first);
    let mut cur = head;
    let mut pos = first;
    let tail = loop {
        match cur {
            Some(p) if get(p).first <= pos => {
                if get(p).last >= last {
                    break p;
                }
                pos = get(p).last + 1;
                cur = Tree::next(p);
            }
            _ => return Err(TrackError::NotMapped { frame: pos }),
        }
    };
    let head = head.expect("the coverage walk found a record at `first`");
    let new = u64::from(get(head).first < first) + u64::from(get(tail).last > last);
    if reserve(slab, spare, new).is_err() {
        // An unmap is a teardown and never fails for lack of memory
        // (SPEC level 10): at the page limit, the (at most two) records
        // its splits need, and the spare, are taken beyond the limit.
        let limit = slab.cache().page_source().limit();
        slab.set_page_limit(None);
        let r = reserve(slab, spare, new);
        slab.set_page_limit(limit);
        if r.is_err() {
            alloc::alloc::handle_alloc_error(core::alloc::Layout::new::<ExtentRec>());
        }
    }
    // Pass 2: split at both ends (allocations first), then decrement.
    let mut start = head;
    let mut tail = tail;
    if get(head).first < first {
        start = split(slab, tree, head, first);
        if head == tail {
            tail = start;
        }
    }
    if get(tail).last > last {
        split(slab, tree, tail, last + 1);
    }
    let mut cur = Some(start);
    let mut kept = false;
    while let Some(p) = cur {
        let end = get(p).last;
        cur = if end >= last { None } else { Tree::next(p) };
        get_mut(p).links.count -= 1;
        if count(p) == 0 {
            tree.remove(p);
            free(slab, p);
        } else {
            kept = true;
        }
    }
    // Only a record whose count changed and stayed above 0 can now equal
    // a neighbour (a removed one leaves a gap; a piece split off keeps
    // the count that made its record maximal): when every record in the
    // range went, nothing merges.
    if kept {
        merge(slab, tree, first.saturating_sub(1), last.saturating_add(1));
    }
    // An emptied tree stays until `clear` ends the domain's uses (its
    // destroy): a domain that maps and unmaps the same frames over and
    // over does not re-insert its index entry each time.
    slab.trim();
    Ok(())
}

/// [`Tracker::map_counted`] into an existing tree when the range does not
/// lie apart (or the spare is missing): the runs walked from `near` (the
/// [`near`] record of `first`), then both passes of the map. Out of line,
/// so that the fast path stays small.
#[inline(never)]
fn map_counted_near(
    slab: &mut Slab<ExtentRec>,
    spare: &mut Option<NonNull<ExtentRec>>,
    tree: &mut Tree<ExtentRec>,
    near: Option<NonNull<ExtentRec>>,
    first: u64,
    last: u64,
    room: u64,
) -> Result<RunChange, MapRefusal> {
    let change = change_around(
        first,
        last,
        |c| c.saturating_add(1),
        |lo, hi, g| walk(near, lo, hi, g),
    );
    if change.added() > room {
        return Err(MapRefusal::Runs(change));
    }
    prepare_map(slab, spare, tree, first, last)?;
    apply_map(slab, tree, first, last);
    Ok(change)
}

/// [`Tracker::unmap_counted`] of anything but a lone record: the runs
/// walked from `near`, then the unmap. Out of line, as [`map_counted_near`].
#[inline(never)]
fn unmap_counted_near(
    slab: &mut Slab<ExtentRec>,
    spare: &mut Option<NonNull<ExtentRec>>,
    tree: &mut Tree<ExtentRec>,
    near: Option<NonNull<ExtentRec>>,
    first: u64,
    last: u64,
) -> Result<RunChange, TrackError> {
    let change = change_around(
        first,
        last,
        |c| c.saturating_sub(1),
        |lo, hi, g| walk(near, lo, hi, g),
    );
    unmap_tree(slab, spare, tree, first, last)?;
    Ok(change)
}

impl Tracker for SlabExtent {
    fn map(&mut self, dom: DomId, first: u64, last: u64) -> Result<(), TrackError> {
        if first > last {
            return Ok(());
        }
        let SlabExtent { slab, doms, spare } = self;
        // Pass 1: validate, count and reserve new records; no change
        // (a new domain's tree is added only once its record is reserved).
        let tree = match doms.entry(dom) {
            Entry::Occupied(o) => {
                let tree = o.into_mut();
                if spare.is_some() {
                    let succ = near(tree, first);
                    if apart(succ, last) {
                        return map_apart(slab, tree, succ, first, last);
                    }
                }
                prepare_map(slab, spare, tree, first, last)?;
                tree
            }
            Entry::Vacant(v) => {
                reserve(slab, spare, 1)?;
                v.insert(Tree::default())
            }
        };
        // Pass 2: apply.
        apply_map(slab, tree, first, last);
        Ok(())
    }

    fn map_counted(
        &mut self,
        dom: DomId,
        first: u64,
        last: u64,
        room: u64,
    ) -> Result<RunChange, MapRefusal> {
        let SlabExtent { slab, doms, spare } = self;
        let Some(tree) = doms.get_mut(&dom).filter(|_| first <= last) else {
            // A domain's first map (or an empty range).
            return count_map(self, dom, first, last, room);
        };
        // One descent finds where the runs around the range start.
        let succ = near(tree, first);
        if spare.is_none() || !apart(succ, last) {
            return map_counted_near(slab, spare, tree, succ, first, last, room);
        }
        let change = RunChange {
            before: 0,
            after: 1,
        };
        if change.added() > room {
            return Err(MapRefusal::Runs(change));
        }
        map_apart(slab, tree, succ, first, last)?;
        Ok(change)
    }

    fn unmap(&mut self, dom: DomId, first: u64, last: u64) -> Result<(), TrackError> {
        if first > last {
            return Ok(());
        }
        let SlabExtent { slab, doms, spare } = self;
        let Some(tree) = doms.get_mut(&dom) else {
            return Err(TrackError::NotMapped { frame: first });
        };
        if spare.is_some() {
            if let Some(p) = single(near(tree, first), first, last) {
                tree.remove(p);
                free(slab, p);
                return Ok(());
            }
        }
        unmap_tree(slab, spare, tree, first, last)
    }

    fn unmap_counted(
        &mut self,
        dom: DomId,
        first: u64,
        last: u64,
    ) -> Result<RunChange, TrackError> {
        let SlabExtent { slab, doms, spare } = self;
        let Some(tree) = doms.get_mut(&dom).filter(|_| first <= last) else {
            return count_unmap(self, dom, first, last);
        };
        let succ = near(tree, first);
        match spare.and_then(|_| single(succ, first, last)) {
            // The only record within one frame of the range: its run goes.
            Some(p) if succ == Some(p) && apart(Tree::next(p), last) => {
                tree.remove(p);
                free(slab, p);
                Ok(RunChange {
                    before: 1,
                    after: 0,
                })
            }
            _ => unmap_counted_near(slab, spare, tree, succ, first, last),
        }
    }

    fn runs(&self, dom: DomId, first: u64, last: u64, f: &mut dyn FnMut(Run)) {
        if let Some(tree) = self.doms.get(&dom) {
            walk(tree.lower_bound(|r| r.last >= first), first, last, f);
        }
    }

    fn clear(&mut self, dom: DomId, first: u64, last: u64, f: &mut dyn FnMut(Run)) {
        if first > last {
            return;
        }
        let Some(tree) = self.doms.get_mut(&dom) else {
            return;
        };
        if tree.is_empty() {
            return;
        }
        let whole = tree.first().is_some_and(|p| get(p).first >= first)
            && tree.last().is_some_and(|p| get(p).last <= last);
        if whole {
            let mut cur = tree.first();
            while let Some(p) = cur {
                let r = get(p);
                f(Run {
                    first: r.first,
                    last: r.last,
                    count: r.links.count,
                });
                cur = Tree::next(p);
            }
            let slab = &mut self.slab;
            tree.drain(|p| {
                // SAFETY: the tree's records come from this slab; `drain`
                // has unlinked `p` and no longer touches it.
                unsafe { slab.free(p) }
            });
            self.slab.trim();
            return;
        }
        let Some(head) = tree.lower_bound(|r| r.last >= first) else {
            return;
        };
        if get(head).first > last {
            return;
        }
        let c = count(head);
        if get(head).first < first && get(head).last > last {
            // Strictly inside one record: the one case that needs a record.
            f(Run {
                first,
                last,
                count: c,
            });
            let n = match self.spare.take() {
                Some(n) => n,
                None => self.emergency_record(),
            };
            *get_mut(n) = ExtentRec {
                links: Links::new(c),
                first: last + 1,
                last: get(head).last,
            };
            get_mut(head).last = first - 1;
            let succ = Tree::next(head);
            self.tree(dom).insert_before(succ, n);
            self.refill_spare();
            return;
        }
        let mut cur = Some(head);
        if get(head).first < first {
            f(Run {
                first,
                last: get(head).last,
                count: c,
            });
            cur = Tree::next(head);
            get_mut(head).last = first - 1;
        }
        while let Some(p) = cur {
            let r = get(p);
            if r.first > last {
                break;
            }
            if r.last > last {
                f(Run {
                    first: r.first,
                    last,
                    count: r.links.count,
                });
                get_mut(p).first = last + 1;
                break;
            }
            f(Run {
                first: r.first,
                last: r.last,
                count: r.links.count,
            });
            cur = Tree::next(p);
            self.tree(dom).remove(p);
            self.free(p);
        }
        if self.spare.is_none() {
            self.refill_spare();
        }
        self.slab.trim();
    }

    fn tracking_bytes(&self) -> u64 {
        self.slab.stats().pages * PAGE_SIZE as u64 + index_estimate(self.doms.len())
    }

    fn stats(&self) -> TrackerStats {
        let s = self.slab.stats();
        TrackerStats {
            pages: s.pages,
            records: s.objects_in_use,
            record_bytes: s.bytes_in_use,
            allocations: s.allocations,
        }
    }

    fn forget(&mut self, dom: DomId) {
        self.prune(dom);
    }

    fn kind(&self) -> TrackerKind {
        TrackerKind::SlabExtent
    }
}

impl SlabExtent {
    /// The residual case of `clear` (module docs): a record beyond the page
    /// limit.
    fn emergency_record(&mut self) -> NonNull<ExtentRec> {
        let limit = self.slab.cache().page_source().limit();
        self.slab.set_page_limit(None);
        let r = self.slab.alloc(ExtentRec {
            links: Links::new(0),
            first: 0,
            last: 0,
        });
        self.slab.set_page_limit(limit);
        match r {
            Ok(p) => p,
            Err(_) => alloc::alloc::handle_alloc_error(core::alloc::Layout::new::<ExtentRec>()),
        }
    }
}
