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
        let start = self.start_of(first);
        for (&s, (e, st)) in self.map.range(start..=last) {
            f(s.max(first), (*e).min(last), st);
        }
    }

    /// Like [`SegMap::for_each`], stopping at the first `Some` the closure returns.
    pub(crate) fn find_map<T>(
        &self,
        first: u64,
        last: u64,
        mut f: impl FnMut(u64, u64, &S) -> Option<T>,
    ) -> Option<T> {
        let start = self.start_of(first);
        self.map
            .range(start..=last)
            .find_map(|(&s, (e, st))| f(s.max(first), (*e).min(last), st))
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
        self.split(first);
        if last < self.max {
            self.split(last + 1);
        }
        for (_, (_, st)) in self.map.range_mut(first..=last) {
            f(st);
        }
        self.merge_around(first, last);
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
