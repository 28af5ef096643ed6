//! A set of unit ranges (`BTreeMap<first, last>`, disjoint, non-adjacent):
//! the per-domain index of where a domain holds or drains units, so that
//! `destroy` and `check` visit only those ranges.

use alloc::collections::btree_map::Entry;
use alloc::collections::BTreeMap;

/// Disjoint, non-adjacent inclusive ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RangeSet(BTreeMap<u64, u64>);

impl RangeSet {
    /// Adds `first..=last`, merging with overlapping or adjacent ranges.
    pub(crate) fn insert(&mut self, first: u64, last: u64) {
        // One descent: the last range starting at or before `last + 1`. If
        // it ends before `first - 1`, nothing overlaps or touches the new
        // range (the common case); if it covers it, nothing changes.
        match self.0.range(..=last.saturating_add(1)).next_back() {
            Some((_, &e)) if e.saturating_add(1) < first => {
                self.0.insert(first, last);
                return;
            }
            None => {
                self.0.insert(first, last);
                return;
            }
            Some((&s, &e)) if s <= first && e >= last => return,
            Some(_) => {}
        }
        let (mut lo, mut hi) = (first, last);
        // A range starting at or before `first` that reaches it (or its predecessor).
        if let Some((&s, &e)) = self.0.range(..=first).next_back() {
            if e.saturating_add(1) >= first {
                lo = s;
                hi = hi.max(e);
                self.0.remove(&s);
            }
        }
        // Ranges starting inside `lo..=hi + 1`.
        loop {
            let next = self
                .0
                .range(lo..)
                .next()
                .filter(|(s, _)| **s <= hi.saturating_add(1))
                .map(|(s, e)| (*s, *e));
            match next {
                Some((s, e)) => {
                    hi = hi.max(e);
                    self.0.remove(&s);
                }
                None => break,
            }
        }
        self.0.insert(lo, hi);
    }

    /// Removes `first..=last`, splitting ranges that straddle it.
    pub(crate) fn remove(&mut self, first: u64, last: u64) {
        // A member removed whole (a revoke of what was granted): one descent.
        if let Entry::Occupied(o) = self.0.entry(first) {
            if *o.get() == last {
                o.remove();
                return;
            }
        }
        // The range starting at or before `first` (one descent), then those
        // starting inside, one at a time: no buffer.
        let mut from = first;
        if let Some((&s, &e)) = self.0.range(..=first).next_back() {
            if e >= first {
                self.cut(s, e, first, last);
            }
            if e >= last {
                return;
            }
            from = e.max(first);
        }
        while let Some((&s, &e)) = self.0.range(from..=last).next() {
            self.cut(s, e, first, last);
            if e >= last {
                return;
            }
            from = e;
        }
    }

    /// Replaces `s..=e` (a member overlapping `first..=last`) by its parts
    /// outside `first..=last`.
    fn cut(&mut self, s: u64, e: u64, first: u64, last: u64) {
        if s < first {
            self.0.insert(s, first - 1);
        } else {
            self.0.remove(&s);
        }
        if e > last {
            self.0.insert(last + 1, e);
        }
    }

    /// The ranges, ascending.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.0.iter().map(|(s, e)| (*s, *e))
    }

    /// Whether the set is empty.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn random_inserts_and_removes_agree_with_a_unit_array() {
        const N: u64 = 64;
        let mut set = RangeSet::default();
        let mut units = [false; N as usize];
        let mut rng = crate::testing::XorShift::new(0x9e37_79b9_7f4a_7c15);
        let mut next = |n: u64| rng.below(n);
        for step in 0..5_000 {
            let a = next(N);
            let b = (a + next(if step % 5 == 0 { N } else { 4 })).min(N - 1);
            let add = next(2) == 0;
            if add {
                set.insert(a, b);
            } else {
                set.remove(a, b);
            }
            units[a as usize..=b as usize].fill(add);
            let mut want = Vec::new();
            let mut i = 0;
            while i < N as usize {
                if units[i] {
                    let s = i;
                    while i + 1 < N as usize && units[i + 1] {
                        i += 1;
                    }
                    want.push((s as u64, i as u64));
                }
                i += 1;
            }
            assert_eq!(set.iter().collect::<Vec<_>>(), want, "step {step}");
        }
    }

    #[test]
    fn inserts_merge_and_removes_split() {
        let mut s = RangeSet::default();
        s.insert(10, 20);
        s.insert(30, 40);
        s.insert(21, 29);
        assert_eq!(s.iter().collect::<Vec<_>>(), [(10, 40)]);
        s.remove(15, 35);
        assert_eq!(s.iter().collect::<Vec<_>>(), [(10, 14), (36, 40)]);
        s.insert(0, 100);
        assert_eq!(s.iter().collect::<Vec<_>>(), [(0, 100)]);
        s.remove(0, 100);
        assert!(s.is_empty());
        s.insert(u64::MAX - 1, u64::MAX);
        s.insert(5, 5);
        s.remove(u64::MAX, u64::MAX);
        assert_eq!(
            s.iter().collect::<Vec<_>>(),
            [(5, 5), (u64::MAX - 1, u64::MAX - 1)]
        );
    }
}
