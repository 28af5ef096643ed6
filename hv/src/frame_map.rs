//! [`FrameMap`]: the ordered map, keyed by frame number, under the slot
//! table's map counts and slots (`memslot.rs`).
//!
//! A domain maps a handful of ranges, so each of its two maps holds a few
//! entries: a sorted inline array does their lookups, inserts and removes in
//! a fraction of a `BTreeMap`'s instructions (a bind's 1-page slot-table step
//! went from 419 to 319 instructions) and keeps them in the table's own
//! memory. Past [`SPILL`] entries it turns into a `BTreeMap`, so a domain with
//! many ranges keeps logarithmic operations; emptied, it is an array again.

use smallvec::SmallVec;
use std::collections::{btree_map, BTreeMap};
use std::ops::{Bound, RangeBounds};

/// Entries kept inline, without a heap allocation.
const INLINE: usize = 4;

/// Above this many entries the map is a `BTreeMap` (an array insert or
/// remove moves up to this many entries).
pub(crate) const SPILL: usize = 16;

/// An ordered map from frame numbers to `V`. See the module docs.
#[derive(Debug, Clone)]
pub(crate) enum FrameMap<V> {
    /// Sorted by key, at most [`SPILL`] entries.
    Small(SmallVec<[(u64, V); INLINE]>),
    /// More than [`SPILL`] entries (until emptied).
    Big(BTreeMap<u64, V>),
}

impl<V> Default for FrameMap<V> {
    fn default() -> Self {
        FrameMap::Small(SmallVec::new())
    }
}

impl<V> FrameMap<V> {
    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        match self {
            FrameMap::Small(v) => v.len(),
            FrameMap::Big(m) => m.len(),
        }
    }

    /// The value at `k`.
    #[inline]
    pub(crate) fn get(&self, k: &u64) -> Option<&V> {
        match self {
            FrameMap::Small(v) => v
                .binary_search_by_key(k, |e| e.0)
                .ok()
                .and_then(|i| v.get(i))
                .map(|e| &e.1),
            FrameMap::Big(m) => m.get(k),
        }
    }

    /// The value at `k`, to change.
    #[inline]
    pub(crate) fn get_mut(&mut self, k: &u64) -> Option<&mut V> {
        match self {
            FrameMap::Small(v) => match v.binary_search_by_key(k, |e| e.0) {
                Ok(i) => v.get_mut(i).map(|e| &mut e.1),
                Err(_) => None,
            },
            FrameMap::Big(m) => m.get_mut(k),
        }
    }

    /// Sets `k` to `val`; returns the value it replaced.
    #[inline]
    pub(crate) fn insert(&mut self, k: u64, val: V) -> Option<V> {
        match self {
            FrameMap::Small(v) => match v.binary_search_by_key(&k, |e| e.0) {
                Ok(i) => v.get_mut(i).map(|e| std::mem::replace(&mut e.1, val)),
                Err(i) if v.len() < SPILL => {
                    v.insert(i, (k, val));
                    None
                }
                Err(_) => {
                    let mut m: BTreeMap<u64, V> = std::mem::take(v).into_iter().collect();
                    m.insert(k, val);
                    *self = FrameMap::Big(m);
                    None
                }
            },
            FrameMap::Big(m) => m.insert(k, val),
        }
    }

    /// Inserts `first → val` unless an entry lies within one key of
    /// `first..=last`, where an entry `k → v` spans `k..=end(v)`; then `val`
    /// comes back. One search does the test and finds the place.
    #[inline]
    pub(crate) fn insert_apart(
        &mut self,
        first: u64,
        last: u64,
        val: V,
        end: impl Fn(&V) -> u64,
    ) -> Result<(), V> {
        let before = first.saturating_sub(1);
        let after = last.saturating_add(1);
        match self {
            FrameMap::Small(v) => {
                let p = v.partition_point(|e| e.0 < first);
                let left = p.checked_sub(1).and_then(|i| v.get(i));
                if left.is_some_and(|e| end(&e.1) >= before)
                    || v.get(p).is_some_and(|e| e.0 <= after)
                {
                    return Err(val);
                }
                if v.len() < SPILL {
                    v.insert(p, (first, val));
                } else {
                    self.insert(first, val);
                }
                Ok(())
            }
            FrameMap::Big(m) => {
                if m.range(..=after)
                    .next_back()
                    .is_some_and(|(_, v)| end(v) >= before)
                {
                    return Err(val);
                }
                m.insert(first, val);
                Ok(())
            }
        }
    }

    /// Removes `k`; returns its value.
    #[inline]
    pub(crate) fn remove(&mut self, k: &u64) -> Option<V> {
        match self {
            FrameMap::Small(v) => match v.binary_search_by_key(k, |e| e.0) {
                Ok(i) => Some(v.remove(i).1),
                Err(_) => None,
            },
            FrameMap::Big(m) => {
                let old = m.remove(k);
                if m.is_empty() {
                    *self = FrameMap::default();
                }
                old
            }
        }
    }

    /// Removes every entry.
    pub(crate) fn clear(&mut self) {
        *self = FrameMap::default();
    }

    /// Every entry, in key order.
    pub(crate) fn iter(&self) -> Iter<'_, V> {
        self.range(..)
    }

    /// The entries with keys in `r`, in key order (either way). An empty
    /// or inverted range has none.
    #[inline]
    pub(crate) fn range(&self, r: impl RangeBounds<u64>) -> Iter<'_, V> {
        let (lo, hi) = (r.start_bound().cloned(), r.end_bound().cloned());
        match self {
            FrameMap::Small(v) => {
                let from = match lo {
                    Bound::Included(a) => v.partition_point(|e| e.0 < a),
                    Bound::Excluded(a) => v.partition_point(|e| e.0 <= a),
                    Bound::Unbounded => 0,
                };
                let to = match hi {
                    Bound::Included(b) => v.partition_point(|e| e.0 <= b),
                    Bound::Excluded(b) => v.partition_point(|e| e.0 < b),
                    Bound::Unbounded => v.len(),
                };
                Iter::Small(v.get(from..to.max(from)).unwrap_or_default().iter())
            }
            FrameMap::Big(_) if empty(lo, hi) => Iter::Small([].iter()),
            FrameMap::Big(m) => Iter::Big(m.range((lo, hi))),
        }
    }
}

/// Whether no key lies in `lo..hi` (`BTreeMap::range` panics on these).
fn empty(lo: Bound<u64>, hi: Bound<u64>) -> bool {
    match (lo, hi) {
        (Bound::Included(a), Bound::Included(b)) => a > b,
        (Bound::Included(a) | Bound::Excluded(a), Bound::Excluded(b))
        | (Bound::Excluded(a), Bound::Included(b)) => a >= b,
        _ => false,
    }
}

/// An iterator over a [`FrameMap`]'s entries.
pub(crate) enum Iter<'a, V> {
    Small(std::slice::Iter<'a, (u64, V)>),
    Big(btree_map::Range<'a, u64, V>),
}

impl<'a, V> Iterator for Iter<'a, V> {
    type Item = (&'a u64, &'a V);
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Small(it) => it.next().map(|e| (&e.0, &e.1)),
            Iter::Big(it) => it.next(),
        }
    }
}

impl<V> DoubleEndedIterator for Iter<'_, V> {
    fn next_back(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Small(it) => it.next_back().map(|e| (&e.0, &e.1)),
            Iter::Big(it) => it.next_back(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Bounds = (Bound<u64>, Bound<u64>);

    fn bound(kind: u64, x: u64) -> Bound<u64> {
        match kind {
            0 => Bound::Included(x),
            1 => Bound::Excluded(x),
            _ => Bound::Unbounded,
        }
    }

    #[test]
    fn agrees_with_a_btreemap_across_the_spill() {
        // Random inserts and removes over a small key space, the map's size
        // swinging across SPILL both ways; after every step each query must
        // answer as a BTreeMap does, every range in both directions.
        let mut rng = accountant::testing::XorShift::new(0x9e37_79b9_7f4a_7c15);
        let mut f: FrameMap<u32> = FrameMap::default();
        let mut m: BTreeMap<u64, u32> = BTreeMap::new();
        let mut spilled = 0;
        for step in 0..20_000u32 {
            let k = rng.below(48);
            // Phases of mostly inserts, then mostly removes.
            let grow = (step / 500) % 2 == 0;
            if rng.below(4) < if grow { 3 } else { 1 } {
                assert_eq!(f.insert(k, step), m.insert(k, step), "step {step}");
            } else {
                assert_eq!(f.remove(&k), m.remove(&k), "step {step}");
            }
            if matches!(f, FrameMap::Big(_)) {
                spilled += 1;
                assert!(f.len() > 0, "an emptied map is an array again");
            } else {
                assert!(f.len() <= SPILL, "step {step}: an array past SPILL");
            }
            assert_eq!(f.len(), m.len());
            let q = rng.below(50);
            assert_eq!(f.get(&q), m.get(&q));
            if let (Some(a), Some(b)) = (f.get_mut(&q), m.get_mut(&q)) {
                *a += 1;
                *b += 1;
            }
            let (a, b) = (rng.below(50), rng.below(50));
            let r: Bounds = (bound(rng.below(3), a), bound(rng.below(3), b));
            let want: Vec<(u64, u32)> = if empty(r.0, r.1) {
                Vec::new()
            } else {
                m.range(r).map(|(k, v)| (*k, *v)).collect()
            };
            let fwd: Vec<(u64, u32)> = f.range(r).map(|(k, v)| (*k, *v)).collect();
            let mut back: Vec<(u64, u32)> = f.range(r).rev().map(|(k, v)| (*k, *v)).collect();
            back.reverse();
            assert_eq!(fwd, want, "step {step} range {r:?}");
            assert_eq!(back, want, "step {step} range {r:?} reversed");
            assert_eq!(
                f.range(..=a).next_back().map(|(k, v)| (*k, *v)),
                m.range(..=a).next_back().map(|(k, v)| (*k, *v))
            );
        }
        assert!(spilled > 1000, "the test must exercise the BTreeMap form");
        let all: Vec<u64> = f.iter().map(|(k, _)| *k).collect();
        assert_eq!(all, m.keys().copied().collect::<Vec<_>>());
        f.clear();
        assert_eq!(f.len(), 0);
        assert!(matches!(f, FrameMap::Small(_)));
    }

    #[test]
    fn insert_apart_refuses_exactly_what_touches() {
        // Entries are extents `k..=end`; a range is apart when no extent
        // ends at or after `first - 1` among those starting by `last + 1`.
        let mut rng = accountant::testing::XorShift::new(0x0123_4567_89ab_cdef);
        let mut f: FrameMap<u64> = FrameMap::default();
        let mut m: BTreeMap<u64, u64> = BTreeMap::new();
        let (mut took, mut refused) = (0, 0);
        for step in 0..20_000u32 {
            if rng.below(3) == 0 && !m.is_empty() {
                let k = rng.below(200);
                assert_eq!(f.remove(&k), m.remove(&k));
                continue;
            }
            let first = rng.below(200);
            let last = first + rng.below(3);
            let touches = m
                .range(..=last.saturating_add(1))
                .next_back()
                .is_some_and(|(_, e)| *e >= first.saturating_sub(1));
            let got = f.insert_apart(first, last, last, |e| *e);
            assert_eq!(got.is_ok(), !touches, "step {step}: {first}..={last}");
            if touches {
                refused += 1;
            } else {
                took += 1;
                m.insert(first, last);
            }
            let all: Vec<(u64, u64)> = f.iter().map(|(k, v)| (*k, *v)).collect();
            assert_eq!(all, m.iter().map(|(k, v)| (*k, *v)).collect::<Vec<_>>());
        }
        assert!(took > 1000 && refused > 1000, "both outcomes exercised");
        assert!(m.len() > SPILL, "the BTreeMap form exercised too");
    }

    #[test]
    fn inverted_ranges_are_empty_in_both_forms() {
        let mut f: FrameMap<()> = FrameMap::default();
        for k in 0..=SPILL as u64 + 1 {
            f.insert(k, ());
            assert_eq!(f.range((Bound::Included(5), Bound::Included(4))).count(), 0);
            assert_eq!(f.range((Bound::Included(5), Bound::Excluded(5))).count(), 0);
            assert_eq!(f.range((Bound::Excluded(5), Bound::Excluded(5))).count(), 0);
            assert_eq!(f.range((Bound::Excluded(5), Bound::Included(5))).count(), 0);
        }
        assert!(matches!(f, FrameMap::Big(_)));
    }
}
