//! Runs of a domain's mappings around a range, before and after a change:
//! what the accountant's records quota counts (SPEC section 2, level 10).
//!
//! A *run* is a maximal stretch of frames that one domain maps the same
//! non-zero number of times. A map or unmap of `a..=b` changes runs only
//! within `a - 1..=b + 1`, so the change is counted there: one walk of the
//! tracker's runs over that window, counted as they come (no buffer).
//! [`count_map`] and [`count_unmap`] pair that walk with the change itself;
//! they are the default [`Tracker::map_counted`] and
//! [`Tracker::unmap_counted`], which a tracker may answer in one descent
//! instead (`slab-extent`: a range with nothing of the domain's within one
//! frame of it).

use super::{Run, TrackError, Tracker};
use crate::types::{DomId, Space};

/// How many runs of one domain's mappings lie within one frame of a range,
/// before and after a change of it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunChange {
    /// Runs within the window before the change.
    pub before: u64,
    /// Runs within the window after it.
    pub after: u64,
}

impl RunChange {
    /// Runs the change adds (0 if it removes or keeps them).
    pub fn added(self) -> u64 {
        self.after.saturating_sub(self.before)
    }
}

/// Why a [`Tracker::map_counted`] changed nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapRefusal {
    /// The map would add more runs than the room it was given.
    Runs(RunChange),
    /// The tracker's own error.
    Track(TrackError),
}

impl From<TrackError> for MapRefusal {
    fn from(e: TrackError) -> MapRefusal {
        MapRefusal::Track(e)
    }
}

/// Counts maximal runs of equal non-zero count in a stream of ascending,
/// disjoint segments `(first, last, count)`, without storing them.
#[derive(Default)]
struct RunCount {
    n: u64,
    prev: Option<(u64, u32)>,
}

impl RunCount {
    fn push(&mut self, s: u64, e: u64, c: u32) {
        let joins = self
            .prev
            .is_some_and(|(pe, pc)| pc == c && pe.checked_add(1) == Some(s));
        if c != 0 && !joins {
            self.n += 1;
        }
        self.prev = Some((e, c));
    }
}

/// Runs of `dom`'s uses in `t` within one frame of `a..=b` (`a <= b`),
/// before and after `f` is applied to the counts of `a..=b`.
#[inline]
pub fn runs_around<T: Tracker + ?Sized>(
    t: &T,
    dom: DomId,
    a: u64,
    b: u64,
    f: impl Fn(u32) -> u32,
) -> RunChange {
    change_around(a, b, f, |lo, hi, g| t.runs(dom, lo, hi, g))
}

/// [`runs_around`] over any walk: `walk(lo, hi, g)` calls `g` for the
/// domain's runs within `lo..=hi` in ascending order, clipped to it (as
/// [`Tracker::runs`] does).
pub(crate) fn change_around(
    a: u64,
    b: u64,
    f: impl Fn(u32) -> u32,
    walk: impl FnOnce(u64, u64, &mut dyn FnMut(Run)),
) -> RunChange {
    let (lo, hi) = (
        a.saturating_sub(1),
        b.saturating_add(1).min(Space::IoMem.max_unit()),
    );
    let (mut before, mut after) = (RunCount::default(), RunCount::default());
    let mut seg = |s: u64, e: u64, c: u32| {
        before.push(s, e, c);
        if s < a {
            after.push(s, e.min(a - 1), c);
        }
        if e >= a && s <= b {
            after.push(s.max(a), e.min(b), f(c));
        }
        if e > b {
            after.push(s.max(b + 1), e, c);
        }
    };
    let mut next = lo;
    walk(lo, hi, &mut |run| {
        if run.first > next {
            seg(next, run.first - 1, 0);
        }
        seg(run.first, run.last, run.count);
        next = run.last + 1;
    });
    if next <= hi {
        seg(next, hi, 0);
    }
    RunChange {
        before: before.n,
        after: after.n,
    }
}

/// [`Tracker::map`] of `first..=last` for `dom`, refused (before any of
/// the tracker's own errors, changing nothing) if it would add more than
/// `room` runs: a walk of the runs around the range, then the map.
pub fn count_map<T: Tracker + ?Sized>(
    t: &mut T,
    dom: DomId,
    first: u64,
    last: u64,
    room: u64,
) -> Result<RunChange, MapRefusal> {
    let change = runs_around(t, dom, first, last, |c| c.saturating_add(1));
    if change.added() > room {
        return Err(MapRefusal::Runs(change));
    }
    t.map(dom, first, last)?;
    Ok(change)
}

/// [`Tracker::unmap`] of `first..=last` for `dom` with the runs it changes:
/// a walk of the runs around the range, then the unmap.
pub fn count_unmap<T: Tracker + ?Sized>(
    t: &mut T,
    dom: DomId,
    first: u64,
    last: u64,
) -> Result<RunChange, TrackError> {
    let change = runs_around(t, dom, first, last, |c| c.saturating_sub(1));
    t.unmap(dom, first, last)?;
    Ok(change)
}
