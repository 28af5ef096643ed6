//! A total partition of one resource space into maximal segments of equal state.
//!
//! This is what makes the accountant's state range-based: granting all
//! 2^40 frames, or all 65,536 ports, is one segment, and every operation costs
//! time and memory proportional to the number of segments it touches, not the
//! number of units.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

/// Segments `start -> (last, state)` covering `0..=max` with no gap and no
/// overlap; adjacent segments never have equal states after an update.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SegMap<S> {
    map: BTreeMap<u64, (u64, S)>,
    max: u64,
}

impl<S: Clone + PartialEq> SegMap<S> {
    /// One segment `0..=max` in state `init`.
    pub(crate) fn new(max: u64, init: S) -> Self {
        let mut map = BTreeMap::new();
        map.insert(0, (max, init));
        SegMap { map, max }
    }

    /// The start of the segment containing `unit` (`unit <= max`).
    fn start_of(&self, unit: u64) -> u64 {
        // The map always has a segment starting at 0, so the lookup finds one.
        self.map
            .range(..=unit)
            .next_back()
            .map(|(s, _)| *s)
            .unwrap_or(0)
    }

    /// Calls `f(first, last, state)` for each segment overlapping
    /// `first..=last`, clipped to it, in ascending order.
    pub(crate) fn for_each(&self, first: u64, last: u64, mut f: impl FnMut(u64, u64, &S)) {
        let _ = self.find_map(first, last, |s, e, st| {
            f(s, e, st);
            None::<()>
        });
    }

    /// Like [`SegMap::for_each`], stopping at the first `Some` the closure returns.
    ///
    /// One descent of the tree finds the segment holding `first`; a second
    /// only if the range goes past it.
    pub(crate) fn find_map<T>(
        &self,
        first: u64,
        last: u64,
        mut f: impl FnMut(u64, u64, &S) -> Option<T>,
    ) -> Option<T> {
        let (&s, (e, st)) = self.map.range(..=first).next_back()?;
        if let Some(t) = f(s.max(first), (*e).min(last), st) {
            return Some(t);
        }
        if *e >= last {
            return None;
        }
        self.map
            .range(e + 1..=last)
            .find_map(|(&s, (e, st))| f(s, (*e).min(last), st))
    }

    /// Ensures a segment boundary at `at` (a segment starts there).
    fn split(&mut self, at: u64) {
        if at == 0 || at > self.max {
            return;
        }
        let start = self.start_of(at);
        if start == at {
            return;
        }
        if let Some((end, st)) = self.map.get_mut(&start) {
            let old_end = *end;
            *end = at - 1;
            let st = st.clone();
            self.map.insert(at, (old_end, st));
        }
    }

    /// Applies `f` to the state of every unit in `first..=last`, then merges
    /// equal neighbours around the range.
    pub(crate) fn update(&mut self, first: u64, last: u64, mut f: impl FnMut(&mut S)) {
        if self.update_within_one(first, last, &mut f) {
            return;
        }
        self.split(first);
        if last < self.max {
            self.split(last + 1);
        }
        for (_, (_, st)) in self.map.range_mut(first..=last) {
            f(st);
        }
        self.merge_around(first, last);
    }

    /// [`SegMap::update`] of a range that lies within one segment (the
    /// common case: one unit, or a range granted or mapped as a whole),
    /// with no split-then-merge: the new state is computed once, and the
    /// map changes only by the pieces that differ. `false` (and nothing
    /// changed) if the range spans several segments.
    fn update_within_one(&mut self, first: u64, last: u64, f: &mut impl FnMut(&mut S)) -> bool {
        let Some((&s0, (e0, st))) = self.map.range_mut(..=first).next_back() else {
            return false;
        };
        let old_end = *e0;
        if old_end < last {
            return false;
        }
        let mut new = st.clone();
        f(&mut new);
        if new == *st {
            return true;
        }
        // What of the old segment lies after the range, in the old state.
        let mut right = None;
        if s0 < first {
            // The old segment keeps what lies before the range, in place.
            *e0 = first - 1;
            if old_end > last {
                right = Some(st.clone());
            }
        }
        // The neighbours the new piece may merge with: the segment before
        // when the piece starts a segment, the one after when it ends one.
        let prev = (s0 == first && first > 0)
            .then(|| self.map.range(..first).next_back())
            .flatten()
            .filter(|(_, (_, p))| *p == new)
            .map(|(&ps, _)| ps);
        let end = match (old_end == last && last < self.max)
            .then(|| self.map.get(&(last + 1)))
            .flatten()
        {
            Some((ne, n)) if *n == new => {
                let ne = *ne;
                self.map.remove(&(last + 1));
                ne
            }
            _ => last,
        };
        if s0 == first {
            // The old segment's entry becomes the new piece, or goes into
            // the one before.
            let old = match prev {
                Some(ps) => {
                    if let Some(seg) = self.map.get_mut(&ps) {
                        seg.0 = end;
                    }
                    self.map.remove(&s0).map(|(_, st)| st)
                }
                None => self
                    .map
                    .get_mut(&s0)
                    .map(|seg| core::mem::replace(seg, (end, new)).1),
            };
            if old_end > last {
                right = old;
            }
        } else {
            self.map.insert(first, (end, new));
        }
        if let Some(old) = right {
            self.map.insert(last + 1, (old_end, old));
        }
        true
    }

    /// Merges adjacent equal segments from the one before `first` to the one after `last`.
    fn merge_around(&mut self, first: u64, last: u64) {
        let from = if first == 0 {
            0
        } else {
            self.start_of(first - 1)
        };
        let to = if last >= self.max { self.max } else { last + 1 };
        let keys: Vec<u64> = self.map.range(from..=to).map(|(s, _)| *s).collect();
        let mut cur = match keys.first() {
            Some(k) => *k,
            None => return,
        };
        for &k in &keys[1..] {
            let equal = match (self.map.get(&cur), self.map.get(&k)) {
                (Some((_, a)), Some((_, b))) => a == b,
                _ => false,
            };
            if equal {
                if let Some((end, _)) = self.map.remove(&k) {
                    if let Some(c) = self.map.get_mut(&cur) {
                        c.0 = end;
                    }
                }
            } else {
                cur = k;
            }
        }
    }

    /// Number of segments (for tests and statistics).
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Checks the partition: starts at 0, contiguous, ends at `max`, no
    /// equal neighbours. Returns the first offending start.
    pub(crate) fn well_formed(&self) -> Result<(), u64> {
        let mut next = 0u64;
        let mut prev: Option<&S> = None;
        for (&s, (e, st)) in &self.map {
            if s != next || *e < s || *e > self.max {
                return Err(s);
            }
            if prev == Some(st) {
                return Err(s);
            }
            prev = Some(st);
            next = e.wrapping_add(1);
        }
        if next != self.max.wrapping_add(1) {
            return Err(next);
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
        // both paths of `update` (within one segment, across several) and
        // both walks must agree with it, and the map stay well formed.
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
            let (c, d) = (next(MAX + 1), next(MAX + 1));
            let (c, d) = (c.min(d), c.max(d));
            let mut seen = Vec::new();
            m.for_each(c, d, |s, e, st| seen.extend((s..=e).map(|_| *st)));
            assert_eq!(seen, units[c as usize..=d as usize], "step {step}");
        }
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
