//! A total partition of one resource space into maximal segments of equal state.
//!
//! This is what makes the accountant's state range-based: granting all
//! 2^40 frames, or all 65,536 ports, is one segment, and every operation costs
//! time and memory proportional to the number of segments it touches, not the
//! number of units.
//!
//! Only the segments whose state differs from the map's initial state (in
//! the accountant: free, not RAM, not reserved) are stored; the gaps between
//! them are in the initial state. So a grant of a free range inside free
//! space is one insertion into the `BTreeMap`, its revoke one removal, and
//! an update of a range lying within one stored segment or one gap (the
//! common case) costs one descent of the tree plus the entries that change.
//!
//! A lookup remembers the piece it found when the range lay within one
//! stored segment or one gap, with the map's version (bumped by every
//! [`SegMap::update`]); the next lookup within that piece, while the version
//! is the same, skips the predecessor search (`range(..=last).next_back()`,
//! about 100 instructions even on a one-entry map): one `get` of the stored
//! segment by its start, or nothing at all for a gap. So the checks of a
//! map, unmap, bind or unbind of a range granted as a whole cost one `get`
//! after the first.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::cell::Cell;

/// Segments `start -> (last, state)` within `0..=max`, disjoint, none in
/// state `init`, and no two adjacent ones (`last + 1 == start`) in equal
/// states; every unit outside them is in state `init`. Each stored segment
/// and each gap between them is a maximal run of equal state.
#[derive(Clone, Debug)]
pub(crate) struct SegMap<S> {
    map: BTreeMap<u64, (u64, S)>,
    max: u64,
    init: S,
    /// Bumped by every [`SegMap::update`].
    version: u64,
    /// The piece the last single-piece lookup found (module docs).
    hit: Cell<Option<Hit>>,
}

/// A piece of a [`SegMap`] as of one version: all of `first..=last` lies
/// in the stored segment starting at `first` (`stored`) or in one gap.
#[derive(Clone, Copy, Debug)]
struct Hit {
    version: u64,
    first: u64,
    last: u64,
    stored: bool,
}

/// Equal when the same units are in equal states (the remembered lookup
/// is not part of the value).
impl<S: PartialEq> PartialEq for SegMap<S> {
    fn eq(&self, other: &Self) -> bool {
        self.map == other.map && self.max == other.max && self.init == other.init
    }
}

impl<S: Eq> Eq for SegMap<S> {}

impl<S: Clone + PartialEq> SegMap<S> {
    /// One segment `0..=max` in state `init` (nothing stored).
    pub(crate) fn new(max: u64, init: S) -> Self {
        SegMap {
            map: BTreeMap::new(),
            max,
            init,
            version: 0,
            hit: Cell::new(None),
        }
    }

    /// Calls `f(first, last, state)` for each segment overlapping
    /// `first..=last`, clipped to it, in ascending order.
    #[inline]
    pub(crate) fn for_each(&self, first: u64, last: u64, mut f: impl FnMut(u64, u64, &S)) {
        let _ = self.find_map(first, last, |s, e, st| {
            f(s, e, st);
            None::<()>
        });
    }

    /// Like [`SegMap::for_each`], stopping at the first `Some` the closure returns.
    ///
    /// One descent of the tree when the range lies within one stored
    /// segment or one gap; otherwise one more per walk.
    #[inline]
    pub(crate) fn find_map<T>(
        &self,
        first: u64,
        last: u64,
        mut f: impl FnMut(u64, u64, &S) -> Option<T>,
    ) -> Option<T> {
        if let Some(h) = self.hit.get() {
            if h.version == self.version && h.first <= first && last <= h.last {
                if !h.stored {
                    return f(first, last, &self.init);
                }
                if let Some((_, st)) = self.map.get(&h.first) {
                    return f(first, last, st);
                }
            }
        }
        let remember = |first, last, stored| {
            self.hit.set(Some(Hit {
                version: self.version,
                first,
                last,
                stored,
            }))
        };
        // The last stored segment starting at or before `last`.
        match self.map.range(..=last).next_back() {
            None => {
                remember(0, last, false);
                return f(first, last, &self.init);
            }
            Some((_, (e, _))) if *e < first => {
                remember(e + 1, last, false);
                return f(first, last, &self.init);
            }
            Some((&s, (e, st))) if s <= first && *e >= last => {
                remember(s, *e, true);
                return f(first, last, st);
            }
            Some(_) => {}
        }
        let mut at = first;
        if let Some((_, (e, st))) = self.map.range(..first).next_back() {
            if *e >= first {
                // `e < last`: the range goes past this segment.
                if let Some(t) = f(first, *e, st) {
                    return Some(t);
                }
                at = e + 1;
            }
        }
        for (&s, (e, st)) in self.map.range(at..=last) {
            if s > at {
                if let Some(t) = f(at, s - 1, &self.init) {
                    return Some(t);
                }
            }
            if let Some(t) = f(s, (*e).min(last), st) {
                return Some(t);
            }
            if *e >= last {
                return None;
            }
            at = e + 1;
        }
        f(at, last, &self.init)
    }

    /// Applies `f` to the state of every unit in `first..=last` (`f` is
    /// called once per segment the range overlaps), then merges equal
    /// neighbours around the range.
    pub(crate) fn update(&mut self, first: u64, last: u64, mut f: impl FnMut(&mut S)) {
        self.version = self.version.wrapping_add(1);
        if !self.update_within_one(first, last, &mut f) {
            self.update_across(first, last, &mut f);
        }
    }

    /// [`SegMap::update`] of a range that lies within one stored segment or
    /// one gap (one unit, or a range granted or mapped as a whole): one
    /// descent finds the segment, its stored neighbours are the entries
    /// beside it, the new state is computed once, and the map changes only
    /// by the entries that differ (a grant in free space: one insertion; a
    /// revoke of a whole grant: one removal). `false` (and nothing changed)
    /// if the range spans several segments.
    fn update_within_one(&mut self, first: u64, last: u64, f: &mut impl FnMut(&mut S)) -> bool {
        let after = (last < self.max).then(|| last + 1);
        let mut it = self.map.range_mut(..=after.unwrap_or(last));
        // The stored segment starting right after the range, and the last
        // one starting at or before `last`.
        let (next, cur) = match it.next_back() {
            Some((&s, v)) if Some(s) == after => (Some(v), it.next_back()),
            other => (None, other),
        };
        match cur {
            Some((&s0, (e0, st))) if s0 == first && *e0 == last => {
                // The whole segment (a revoke of what was granted): its
                // state changes in place, with no copy to compare; it goes
                // when back in the initial state, or into a neighbour now
                // equal to it (an unchanged state equals neither).
                f(st);
                if *st == self.init {
                    self.map.remove(&first);
                    return true;
                }
                let merge_next = next.as_ref().is_some_and(|(_, n)| *n == *st);
                let prev = if first > 0 {
                    it.next_back()
                        .filter(|(_, (pe, pst))| *pe + 1 == first && *pst == *st)
                } else {
                    None
                };
                let end = match next {
                    Some((ne, _)) if merge_next => *ne,
                    _ => last,
                };
                match prev {
                    Some((_, p)) => {
                        p.0 = end;
                        self.map.remove(&first);
                    }
                    None => *e0 = end,
                }
                if merge_next {
                    self.map.remove(&(last + 1));
                }
                true
            }
            Some((&s0, (e0, st))) if s0 <= first && *e0 >= last => {
                let mut new = st.clone();
                f(&mut new);
                if new == *st {
                    return true;
                }
                let old_end = *e0;
                let new_is_init = new == self.init;
                // The range's new piece runs on into the next segment when
                // that is in the new state (then `old_end == last`).
                let merge_next = next.as_ref().is_some_and(|(_, n)| *n == new);
                let mid_end = match next {
                    Some((ne, _)) if merge_next => *ne,
                    _ => last,
                };
                // What of this segment lies after the range, in its old state.
                let right = if s0 < first {
                    // The segment keeps what lies before the range, in place.
                    *e0 = first - 1;
                    let right = (old_end > last).then(|| st.clone());
                    if !new_is_init {
                        if merge_next {
                            self.map.remove(&(last + 1));
                        }
                        self.map.insert(first, (mid_end, new));
                    }
                    right
                } else {
                    // The range starts this segment: its entry becomes the
                    // new piece, or goes (into the stored segment ending
                    // right before, when that is in the new state).
                    let prev = if first > 0 && !new_is_init {
                        it.next_back()
                            .filter(|(_, (pe, pst))| *pe + 1 == first && *pst == new)
                    } else {
                        None
                    };
                    let old = match prev {
                        Some((_, p)) => {
                            p.0 = mid_end;
                            self.map.remove(&s0).map(|(_, st)| st)
                        }
                        None if new_is_init => self.map.remove(&s0).map(|(_, st)| st),
                        None => {
                            *e0 = mid_end;
                            Some(core::mem::replace(st, new))
                        }
                    };
                    if merge_next {
                        self.map.remove(&(last + 1));
                    }
                    old.filter(|_| old_end > last)
                };
                if let Some(old) = right {
                    self.map.insert(last + 1, (old_end, old));
                }
                true
            }
            Some((_, (e0, _))) if *e0 >= first => false,
            cur => {
                let mut new = self.init.clone();
                f(&mut new);
                if new == self.init {
                    return true;
                }
                // Stored neighbours in the new state: the one ending right
                // before the range, the one starting right after it.
                let prev = cur.filter(|(_, (pe, pst))| *pe + 1 == first && *pst == new);
                let next = next.filter(|(_, n)| *n == new);
                match (prev, next) {
                    (Some((_, p)), Some(n)) => {
                        p.0 = n.0;
                        self.map.remove(&(last + 1));
                    }
                    (Some((_, p)), None) => p.0 = last,
                    (None, Some(n)) => {
                        let end = n.0;
                        self.map.remove(&(last + 1));
                        self.map.insert(first, (end, new));
                    }
                    (None, None) => {
                        self.map.insert(first, (last, new));
                    }
                }
                true
            }
        }
    }

    /// [`SegMap::update`] of a range over several segments: the stored
    /// segments overlapping the range or touching it are taken out whole,
    /// the pieces of that stretch (gaps included) rebuilt with `f` applied
    /// inside the range and equal neighbours merged, and the pieces not in
    /// the initial state put back.
    fn update_across(&mut self, first: u64, last: u64, f: &mut impl FnMut(&mut S)) {
        let lo = first.saturating_sub(1);
        let hi = if last < self.max { last + 1 } else { last };
        let mut old: Vec<(u64, u64, S)> = Vec::new();
        if let Some((&s, (e, st))) = self.map.range(..lo).next_back() {
            if *e >= lo {
                old.push((s, *e, st.clone()));
            }
        }
        old.extend(
            self.map
                .range(lo..=hi)
                .map(|(&s, (e, st))| (s, *e, st.clone())),
        );
        for (s, _, _) in &old {
            self.map.remove(s);
        }
        let from = old.first().map_or(first, |(s, _, _)| (*s).min(first));
        let to = old.last().map_or(last, |(_, e, _)| (*e).max(last));
        let mut out: Vec<(u64, u64, S)> = Vec::with_capacity(old.len() * 2 + 3);
        let mut push = |s: u64, e: u64, st: S| match out.last_mut() {
            Some(p) if p.1 + 1 == s && p.2 == st => p.1 = e,
            _ => out.push((s, e, st)),
        };
        // One piece of the old layout, cut at the range's ends.
        let mut piece = |s: u64, e: u64, st: &S| {
            if s < first {
                push(s, e.min(first - 1), st.clone());
            }
            if e >= first && s <= last {
                let mut new = st.clone();
                f(&mut new);
                push(s.max(first), e.min(last), new);
            }
            if e > last {
                push(s.max(last + 1), e, st.clone());
            }
        };
        let mut at = Some(from);
        for (s, e, st) in &old {
            if let Some(a) = at.filter(|a| a < s) {
                piece(a, s - 1, &self.init);
            }
            piece(*s, *e, st);
            at = e.checked_add(1);
        }
        if let Some(a) = at.filter(|a| *a <= to) {
            piece(a, to, &self.init);
        }
        for (s, e, st) in out {
            if st != self.init {
                self.map.insert(s, (e, st));
            }
        }
    }

    /// Number of segments, gaps included (for tests and statistics: a walk
    /// over the stored segments).
    pub(crate) fn len(&self) -> usize {
        let mut n = 0;
        let mut at = Some(0);
        for (&s, (e, _)) in &self.map {
            n += if at.is_some_and(|a| a < s) { 2 } else { 1 };
            at = e.checked_add(1);
        }
        n + usize::from(at.is_some_and(|a| a <= self.max))
    }

    /// Checks the representation: stored segments ascending, disjoint,
    /// within `0..=max`, none in the initial state, no two adjacent in
    /// equal states. Returns the first offending start.
    pub(crate) fn well_formed(&self) -> Result<(), u64> {
        let mut next = Some(0u64);
        let mut prev: Option<&S> = None;
        for (&s, (e, st)) in &self.map {
            if next.is_none_or(|n| s < n) || *e < s || *e > self.max || *st == self.init {
                return Err(s);
            }
            if next == Some(s) && prev == Some(st) {
                return Err(s);
            }
            prev = Some(st);
            next = e.checked_add(1);
        }
        Ok(())
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_splits_and_merges_back() {
        let mut m = SegMap::new(99, 0u8);
        m.update(10, 19, |s| *s = 1);
        assert_eq!(m.len(), 3);
        m.update(20, 29, |s| *s = 1);
        assert_eq!(m.len(), 3, "equal neighbours merge");
        let mut seen = Vec::new();
        m.for_each(0, 99, |a, b, s| seen.push((a, b, *s)));
        assert_eq!(seen, [(0, 9, 0), (10, 29, 1), (30, 99, 0)]);
        m.update(10, 29, |s| *s = 0);
        assert_eq!(m.len(), 1);
        assert_eq!(m.well_formed(), Ok(()));
    }

    #[test]
    fn updates_agree_with_a_unit_array() {
        // Random updates over a small space against one state per unit:
        // both paths of `update` (within one segment, across several),
        // both walks and the remembered lookups must agree with it, and the
        // map stay well formed.
        const MAX: u64 = 63;
        let mut m = SegMap::new(MAX, 0u8);
        let mut units = [0u8; MAX as usize + 1];
        let mut rng = crate::testing::XorShift::new(0x2545_f491_4f6c_dd1d);
        let mut next = |n: u64| rng.below(n);
        for step in 0..5_000 {
            let a = next(MAX + 1);
            let b = (a + next(if step % 4 == 0 { 64 } else { 3 })).min(MAX);
            let v = next(3) as u8;
            let add = step % 3 == 0;
            m.update(a, b, |s| *s = if add { s.wrapping_add(v) % 3 } else { v });
            for u in &mut units[a as usize..=b as usize] {
                *u = if add { u.wrapping_add(v) % 3 } else { v };
            }
            assert_eq!(m.well_formed(), Ok(()), "step {step}");
            let runs = 1 + units.windows(2).filter(|w| w[0] != w[1]).count();
            assert_eq!(m.len(), runs, "step {step}: maximal segments");
            // Several lookups per version: the later ones may take the
            // remembered piece of an earlier one, never one of before the
            // update.
            for _ in 0..3 {
                let c = next(MAX + 1);
                let d = (c + next(if step % 2 == 0 { 4 } else { 64 })).min(MAX);
                let mut seen = Vec::new();
                m.for_each(c, d, |s, e, st| seen.extend((s..=e).map(|_| *st)));
                assert_eq!(seen, units[c as usize..=d as usize], "step {step}");
            }
        }
    }

    #[test]
    fn only_segments_out_of_the_initial_state_are_stored() {
        let mut m = SegMap::new(99, 0u8);
        m.update(10, 19, |s| *s = 1);
        assert_eq!((m.map.len(), m.len()), (1, 3), "one insertion");
        m.update(20, 29, |s| *s = 1);
        assert_eq!((m.map.len(), m.len()), (1, 3), "grown in place");
        m.update(31, 39, |s| *s = 1);
        m.update(30, 30, |s| *s = 1);
        assert_eq!(m.map.get(&10), Some(&(39, 1)), "both neighbours merged");
        m.update(15, 16, |s| *s = 0);
        assert_eq!(m.map.len(), 2, "a hole splits it");
        m.update(10, 14, |s| *s = 0);
        m.update(17, 39, |s| *s = 0);
        assert_eq!(
            (m.map.len(), m.len()),
            (0, 1),
            "all back in the initial state"
        );
        assert_eq!(m.well_formed(), Ok(()));
    }

    #[test]
    fn edges_of_the_space() {
        let mut m = SegMap::new(u64::from(u16::MAX), 0u8);
        m.update(0, 0, |s| *s = 1);
        m.update(0xffff, 0xffff, |s| *s = 2);
        let mut seen = Vec::new();
        m.for_each(0, 0xffff, |a, b, s| seen.push((a, b, *s)));
        assert_eq!(seen, [(0, 0, 1), (1, 0xfffe, 0), (0xffff, 0xffff, 2)]);
        assert_eq!(
            m.find_map(5, 0xffff, |a, _, s| (*s == 2).then_some(a)),
            Some(0xffff)
        );
        assert_eq!(m.well_formed(), Ok(()));
    }
}
