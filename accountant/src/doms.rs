//! Per-domain state by domain id, in a two-level table: a directory of
//! [`BLOCKS`] entries, each `None` or a block of [`BLOCK`] slots. Looking a
//! domain up is two loads and two tests whatever the number of domains (a
//! `BTreeMap` search cost about 40 instructions with two domains, on every
//! map and unmap).
//!
//! Memory: the directory (4 KiB) plus one block per 64 consecutive ids of
//! which at least one exists; a block goes when its last domain is removed.

use alloc::boxed::Box;
use alloc::vec::Vec;

use crate::types::{DomId, MAX_DOMID};

/// Slots per block.
const BLOCK: usize = 64;

/// Directory entries: enough blocks for every id `0..=MAX_DOMID`.
const BLOCKS: usize = (MAX_DOMID as usize + 1).div_ceil(BLOCK);

/// One block of slots and how many of them are occupied.
#[derive(Clone, Debug)]
struct Block<T> {
    slots: [Option<T>; BLOCK],
    used: usize,
}

/// A map from domain id to `T` (see the module docs).
#[derive(Clone, Debug)]
pub(crate) struct DomTable<T> {
    dir: Vec<Option<Box<Block<T>>>>,
}

fn split(d: DomId) -> (usize, usize) {
    let i = usize::from(d.get());
    (i / BLOCK, i % BLOCK)
}

impl<T> DomTable<T> {
    /// An empty table.
    pub(crate) fn new() -> Self {
        let mut dir = Vec::new();
        dir.resize_with(BLOCKS, || None);
        DomTable { dir }
    }

    /// `d`'s state, if it has one.
    #[inline]
    pub(crate) fn get(&self, d: DomId) -> Option<&T> {
        let (b, s) = split(d);
        self.dir.get(b)?.as_ref()?.slots.get(s)?.as_ref()
    }

    /// `d`'s state, mutable, if it has one.
    #[inline]
    pub(crate) fn get_mut(&mut self, d: DomId) -> Option<&mut T> {
        let (b, s) = split(d);
        self.dir.get_mut(b)?.as_mut()?.slots.get_mut(s)?.as_mut()
    }

    /// Sets `d`'s state, returning the one it replaces.
    pub(crate) fn insert(&mut self, d: DomId, v: T) -> Option<T> {
        let (b, s) = split(d);
        let entry = self.dir.get_mut(b)?;
        let block = entry.get_or_insert_with(|| {
            Box::new(Block {
                slots: core::array::from_fn(|_| None),
                used: 0,
            })
        });
        let slot = block.slots.get_mut(s)?;
        let old = slot.replace(v);
        if old.is_none() {
            block.used += 1;
        }
        old
    }

    /// Removes `d`'s state and returns it; frees its block if it was the
    /// block's last.
    pub(crate) fn remove(&mut self, d: DomId) -> Option<T> {
        let (b, s) = split(d);
        let entry = self.dir.get_mut(b)?;
        let block = entry.as_mut()?;
        let old = block.slots.get_mut(s)?.take()?;
        block.used -= 1;
        if block.used == 0 {
            *entry = None;
        }
        Some(old)
    }

    /// Blocks allocated (tests).
    #[cfg(test)]
    fn blocks(&self) -> usize {
        self.dir.iter().flatten().count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn d(n: u16) -> DomId {
        DomId::new(u64::from(n)).expect("ids in range")
    }

    #[test]
    fn every_id_has_a_slot() {
        let mut t = DomTable::new();
        for id in [0, 1, 63, 64, MAX_DOMID - 1, MAX_DOMID] {
            assert_eq!(t.insert(d(id), id), None);
            assert_eq!(t.get(d(id)), Some(&id));
        }
        // 0, 1 and 63 share the first block; the last two ids the last.
        assert_eq!(t.blocks(), 3);
        assert_eq!(t.insert(d(MAX_DOMID), 7), Some(MAX_DOMID));
        assert_eq!(t.remove(d(MAX_DOMID)), Some(7));
        assert_eq!(t.remove(d(MAX_DOMID)), None);
        assert_eq!(t.get(d(MAX_DOMID)), None);
        // Its block still holds MAX_DOMID - 1.
        assert_eq!(t.blocks(), 3);
        assert_eq!(t.remove(d(MAX_DOMID - 1)), Some(MAX_DOMID - 1));
        assert_eq!(t.blocks(), 2, "an emptied block is freed");
    }

    proptest! {
        #[test]
        fn matches_a_btreemap(ops in proptest::collection::vec((0u8..3, 0u16..200, any::<u32>()), 1..300)) {
            let mut t = DomTable::new();
            let mut m = BTreeMap::new();
            for (k, id, v) in ops {
                match k {
                    0 => prop_assert_eq!(t.insert(d(id), v), m.insert(id, v)),
                    1 => prop_assert_eq!(t.remove(d(id)), m.remove(&id)),
                    _ => {
                        if let Some(x) = t.get_mut(d(id)) {
                            *x = x.wrapping_add(v);
                        }
                        if let Some(x) = m.get_mut(&id) {
                            *x = x.wrapping_add(v);
                        }
                    }
                }
                prop_assert_eq!(t.get(d(id)), m.get(&id));
            }
            for id in 0..200 {
                prop_assert_eq!(t.get(d(id)), m.get(&id));
            }
            // A block exists exactly where an id of it is present.
            let want = m.keys().map(|id| usize::from(*id) / BLOCK).collect::<std::collections::BTreeSet<_>>().len();
            prop_assert_eq!(t.blocks(), want);
        }
    }
}
