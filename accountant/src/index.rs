//! A set of unit ranges (`BTreeMap<first, last>`, disjoint, non-adjacent):
//! the per-domain index of where a domain holds or drains units, so that
//! `destroy` and `check` visit only those ranges.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

/// Disjoint, non-adjacent inclusive ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RangeSet(BTreeMap<u64, u64>);

impl RangeSet {
    /// Adds `first..=last`, merging with overlapping or adjacent ranges.
    pub(crate) fn insert(&mut self, first: u64, last: u64) {
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
        let mut hit: Vec<(u64, u64)> = Vec::new();
        if let Some((&s, &e)) = self.0.range(..first).next_back() {
            if e >= first {
                hit.push((s, e));
            }
        }
        hit.extend(self.0.range(first..=last).map(|(s, e)| (*s, *e)));
        for (s, e) in hit {
            self.0.remove(&s);
            if s < first {
                self.0.insert(s, first - 1);
            }
            if e > last {
                self.0.insert(last + 1, e);
            }
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
