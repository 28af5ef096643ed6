//! The per-domain trees of `slab-extent`: each domain's [`Tree`] in a
//! `Vec` of `(domain, tree)` pairs in no order, found through a `BTreeMap`
//! from domain to position, with the position last found remembered.
//!
//! A lookup first tries the remembered position: the pair there names its
//! domain, so a stale position (another domain's tree, or past the end)
//! is only a miss and needs no invalidation. A run of operations by one
//! domain (a hypervisor mapping the BARs of one guest) then finds its tree
//! with one comparison instead of a `BTreeMap` search (about 25
//! instructions with one domain, more with many); a miss costs the search
//! plus one store.
//!
//! Memory: the map's leaves hold a domain id and a 32-bit position (2 + 4
//! bytes an entry, where they held the 16-byte tree before), and the `Vec`
//! holds the pairs; [`DomTrees::index_bytes`] counts both.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::cell::Cell;

use super::tree::{Linked, Tree};
use crate::types::DomId;

/// The pairs the `Vec` first makes room for (it doubles from there). Two
/// keep a one-domain tracker's index under the `BTreeMap` of trees it
/// replaces (130 bytes, from 214); with four, the `Vec` took the C
/// library's size class of a forced revoke's teardown list, and that
/// list's first push took `malloc`'s slow path (+510 instructions).
const FIRST_CAPACITY: usize = 2;

/// Domain → [`Tree`] (module docs).
#[derive(Debug)]
pub(crate) struct DomTrees<N> {
    at: BTreeMap<DomId, u32>,
    trees: Vec<(DomId, Tree<N>)>,
    /// The position last found (a hint: checked against the pair's domain).
    last: Cell<usize>,
}

impl<N: Linked> DomTrees<N> {
    /// No domain.
    pub(crate) fn new() -> Self {
        DomTrees {
            at: BTreeMap::new(),
            trees: Vec::new(),
            last: Cell::new(0),
        }
    }

    /// `dom`'s position in `trees`, if it has a tree.
    #[inline]
    fn find(&self, dom: DomId) -> Option<usize> {
        let i = self.last.get();
        if self.trees.get(i).is_some_and(|(d, _)| *d == dom) {
            return Some(i);
        }
        let i = *self.at.get(&dom)? as usize;
        self.last.set(i);
        Some(i)
    }

    /// `dom`'s tree, if it has one.
    #[inline]
    pub(crate) fn get(&self, dom: DomId) -> Option<&Tree<N>> {
        let i = self.find(dom)?;
        self.trees.get(i).map(|(_, t)| t)
    }

    /// `dom`'s tree, mutable, if it has one.
    #[inline]
    pub(crate) fn get_mut(&mut self, dom: DomId) -> Option<&mut Tree<N>> {
        let i = self.last.get();
        if self.trees.get(i).is_some_and(|(d, _)| *d == dom) {
            // The hit returns on its own, so that its index is known in
            // bounds (one bounds test, not two).
            return self.trees.get_mut(i).map(|(_, t)| t);
        }
        let i = self.find(dom)?;
        self.trees.get_mut(i).map(|(_, t)| t)
    }

    /// `dom`'s tree, made empty if it had none.
    pub(crate) fn get_or_insert(&mut self, dom: DomId) -> &mut Tree<N> {
        let i = match self.find(dom) {
            Some(i) => i,
            None => {
                let i = self.trees.len();
                if self.trees.capacity() == 0 {
                    self.trees.reserve_exact(FIRST_CAPACITY);
                }
                self.trees.push((dom, Tree::default()));
                // At most one tree per domain id: far fewer than 2^32.
                self.at.insert(dom, i as u32);
                self.last.set(i);
                i
            }
        };
        // `i` is in bounds: found, or just pushed.
        &mut self.trees[i].1
    }

    /// Removes `dom`'s tree if it is empty (the last pair takes its place).
    pub(crate) fn remove_if_empty(&mut self, dom: DomId) {
        let Some(i) = self.find(dom) else { return };
        if !self.trees.get(i).is_some_and(|(_, t)| t.is_empty()) {
            return;
        }
        self.at.remove(&dom);
        self.trees.swap_remove(i);
        if let Some((moved, _)) = self.trees.get(i) {
            if let Some(p) = self.at.get_mut(moved) {
                *p = i as u32;
            }
        }
    }

    /// Whether no domain has a tree.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.trees.is_empty()
    }

    /// Domains with a tree.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.trees.len()
    }

    /// Every tree, in no order.
    #[cfg(test)]
    pub(crate) fn trees(&self) -> impl Iterator<Item = &Tree<N>> {
        self.trees.iter().map(|(_, t)| t)
    }

    /// Estimated bytes outside the trees' records: the `Vec`'s capacity of
    /// pairs, and the map's leaves (a B-tree leaf holds up to 11 entries
    /// of domain id and position and is at least half full: one leaf of
    /// `16 + 11 × (2 + 4)` bytes per 5 domains). Zero with no domain ever.
    pub(crate) fn index_bytes(&self) -> u64 {
        const LEAF: u64 = 16 + 11 * (2 + 4);
        let pairs = self.trees.capacity() * core::mem::size_of::<(DomId, Tree<N>)>();
        pairs as u64 + (self.at.len() as u64).div_ceil(5) * LEAF
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::track::slab_extent::ExtentRec;
    use proptest::prelude::*;

    fn d(n: u16) -> DomId {
        DomId::new(u64::from(n)).expect("ids in range")
    }

    proptest! {
        /// Against a `BTreeMap` of a tree's length per domain: lookups
        /// through a remembered position, stale or not, find the right tree.
        #[test]
        fn matches_a_btreemap(ops in proptest::collection::vec((0u8..4, 0u16..12), 1..300)) {
            let mut t: DomTrees<ExtentRec> = DomTrees::new();
            let mut m: BTreeMap<u16, bool> = BTreeMap::new();
            for (k, id) in ops {
                match k {
                    // A tree made (or found); it stays empty.
                    0 => {
                        prop_assert!(t.get_or_insert(d(id)).is_empty());
                        m.entry(id).or_insert(true);
                    }
                    // Removed when empty (every tree here is).
                    1 => {
                        t.remove_if_empty(d(id));
                        m.remove(&id);
                    }
                    2 => prop_assert_eq!(t.get_mut(d(id)).is_some(), m.contains_key(&id)),
                    _ => prop_assert_eq!(t.get(d(id)).is_some(), m.contains_key(&id)),
                }
                // Whatever the remembered position, a find lands on the
                // pair of the domain asked for.
                let found = t.find(d(id)).and_then(|i| t.trees.get(i)).map(|(x, _)| *x);
                prop_assert_eq!(found, m.contains_key(&id).then(|| d(id)));
                // Whatever the remembered position, a find lands on the
                // pair of the domain asked for.
                let found = t.find(d(id)).and_then(|i| t.trees.get(i)).map(|(x, _)| *x);
                prop_assert_eq!(found, m.contains_key(&id).then(|| d(id)));
                prop_assert_eq!(t.len(), m.len());
                for (dom, i) in &t.at {
                    prop_assert_eq!(t.trees.get(*i as usize).map(|(x, _)| *x), Some(*dom), "position of {:?}", dom);
                }
            }
        }
    }

    #[test]
    fn a_stale_position_is_a_miss() {
        let mut t: DomTrees<ExtentRec> = DomTrees::new();
        t.get_or_insert(d(1));
        t.get_or_insert(d(2));
        assert!(t.get(d(2)).is_some(), "remembers position 1");
        t.remove_if_empty(d(1));
        // d(2) moved to position 0; position 1 is past the end.
        assert!(t.get(d(2)).is_some());
        assert!(t.get(d(1)).is_none());
        assert_eq!(t.len(), 1);
        assert!(t.index_bytes() > 0);
    }
}
