//! An intrusive AVL tree: the per-domain ordered index of tracking records.
//!
//! The links (two children, parent, balance factor) live inside each record,
//! so the index costs no memory beyond the records themselves, all of which
//! come from the trackers' page sources. Parent links give in-order
//! successor and predecessor without a stack, so a range walk costs
//! O(log n + records walked). Height is at most 1.44·log2(n + 2).
//!
//! # Pointer discipline
//!
//! A `NonNull<N>` handed to any function here must point to a live record
//! that is linked in the tree being operated on (or, for
//! [`Tree::insert_before`], about to be), owned by the same tracker, which
//! is borrowed mutably (or shared, for read-only walks) for the whole call.
//! The trackers establish this: records come from their own slab or
//! xmalloc heap, are linked exactly once, and are unlinked before being
//! freed. The record types are `#[repr(C)]` with [`Links`] first, so a
//! record pointer is also a pointer to its links.

use core::ptr::NonNull;

/// The links of a record, and its use count (which fills what would
/// otherwise be padding after the balance factor).
#[repr(C)]
#[derive(Debug)]
pub(crate) struct Links<N> {
    child: [Option<NonNull<N>>; 2],
    parent: Option<NonNull<N>>,
    /// Height of the right subtree minus that of the left: -1, 0 or 1.
    bal: i8,
    /// The record's use count (not used by the tree).
    pub(crate) count: u32,
}

impl<N> Links<N> {
    /// Unlinked links carrying `count`.
    pub(crate) const fn new(count: u32) -> Links<N> {
        Links {
            child: [None, None],
            parent: None,
            bal: 0,
            count,
        }
    }
}

/// A record type that starts with its [`Links`].
///
/// # Safety
///
/// The implementing type is `#[repr(C)]` and its first field is a
/// `Links<Self>`.
pub(crate) unsafe trait Linked: Sized {}

fn lk<'a, N: Linked>(p: NonNull<N>) -> &'a mut Links<N> {
    // SAFETY: `N: Linked` puts `Links<N>` at offset 0 of a repr(C) record;
    // `p` is a live record of the caller's tree, borrowed through the tree
    // for the call (module docs, pointer discipline), and each use of the
    // returned reference ends before the next `lk` on the same record.
    unsafe { &mut *p.cast::<Links<N>>().as_ptr() }
}

/// The record behind `p`, read-only.
pub(crate) fn get<'a, N: Linked>(p: NonNull<N>) -> &'a N {
    // SAFETY: as for `lk`: `p` is a live record of a tree the caller
    // borrows for the duration of the use.
    unsafe { &*p.as_ptr() }
}

/// The record behind `p`, mutable (only for fields the tree does not
/// order by, or order-preserving changes).
pub(crate) fn get_mut<'a, N: Linked>(p: NonNull<N>) -> &'a mut N {
    // SAFETY: as for `lk`; the caller holds its tree mutably.
    unsafe { &mut *p.as_ptr() }
}

/// Pushes an unlinked record onto a singly linked chain of spare records
/// threaded through its parent link (used to pre-allocate records).
pub(crate) fn chain_push<N: Linked>(head: &mut Option<NonNull<N>>, p: NonNull<N>) {
    lk(p).parent = head.take();
    *head = Some(p);
}

/// Pops a record pushed by [`chain_push`].
pub(crate) fn chain_pop<N: Linked>(head: &mut Option<NonNull<N>>) -> Option<NonNull<N>> {
    let p = (*head)?;
    *head = lk(p).parent.take();
    Some(p)
}

const fn sgn(side: usize) -> i8 {
    if side == 0 {
        -1
    } else {
        1
    }
}

/// An ordered tree of records (see module docs).
#[derive(Debug)]
pub(crate) struct Tree<N> {
    root: Option<NonNull<N>>,
    len: u64,
}

impl<N> Default for Tree<N> {
    fn default() -> Self {
        Tree { root: None, len: 0 }
    }
}

impl<N: Linked> Tree<N> {
    /// Records in the tree.
    #[cfg(test)]
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.root.is_none()
    }

    fn extreme(mut p: NonNull<N>, side: usize) -> NonNull<N> {
        while let Some(c) = lk(p).child[side] {
            p = c;
        }
        p
    }

    /// The smallest record.
    pub(crate) fn first(&self) -> Option<NonNull<N>> {
        self.root.map(|r| Self::extreme(r, 0))
    }

    /// The largest record.
    pub(crate) fn last(&self) -> Option<NonNull<N>> {
        self.root.map(|r| Self::extreme(r, 1))
    }

    fn step(p: NonNull<N>, side: usize) -> Option<NonNull<N>> {
        if let Some(c) = lk(p).child[side] {
            return Some(Self::extreme(c, 1 - side));
        }
        let mut n = p;
        while let Some(q) = lk(n).parent {
            if lk(q).child[1 - side] == Some(n) {
                return Some(q);
            }
            n = q;
        }
        None
    }

    /// The in-order successor.
    pub(crate) fn next(p: NonNull<N>) -> Option<NonNull<N>> {
        Self::step(p, 1)
    }

    /// The in-order predecessor.
    #[cfg(test)]
    pub(crate) fn prev(p: NonNull<N>) -> Option<NonNull<N>> {
        Self::step(p, 0)
    }

    /// The first record for which `pred` holds, `pred` being false for a
    /// prefix of the records and true for the rest. O(log n).
    pub(crate) fn lower_bound(&self, pred: impl Fn(&N) -> bool) -> Option<NonNull<N>> {
        let mut cur = self.root;
        let mut found = None;
        while let Some(p) = cur {
            if pred(get(p)) {
                found = Some(p);
                cur = lk(p).child[0];
            } else {
                cur = lk(p).child[1];
            }
        }
        found
    }

    fn side(parent: NonNull<N>, child: NonNull<N>) -> usize {
        usize::from(lk(parent).child[0] != Some(child))
    }

    fn replace_child(
        &mut self,
        parent: Option<NonNull<N>>,
        old: NonNull<N>,
        new: Option<NonNull<N>>,
    ) {
        match parent {
            None => self.root = new,
            Some(p) => {
                let s = Self::side(p, old);
                lk(p).child[s] = new;
            }
        }
    }

    fn set_parent(c: Option<NonNull<N>>, p: Option<NonNull<N>>) {
        if let Some(c) = c {
            lk(c).parent = p;
        }
    }

    /// Lifts `x`'s child on `side` above `x`; returns it. Balances are the
    /// caller's business.
    fn rotate(&mut self, x: NonNull<N>, side: usize) -> NonNull<N> {
        let z =
            lk(x).child[side].expect("rotations are only made towards an existing taller child");
        let t = lk(z).child[1 - side];
        lk(x).child[side] = t;
        Self::set_parent(t, Some(x));
        let xp = lk(x).parent;
        self.replace_child(xp, x, Some(z));
        lk(z).parent = xp;
        lk(z).child[1 - side] = Some(x);
        lk(x).parent = Some(z);
        z
    }

    /// Double rotation of `x` whose `side` child leans the other way;
    /// returns the new subtree root with balances fixed.
    fn rotate_double(&mut self, x: NonNull<N>, side: usize) -> NonNull<N> {
        let z =
            lk(x).child[side].expect("double rotations are made towards an existing taller child");
        let y = lk(z).child[1 - side]
            .expect("the taller child leans inwards, so its inner child exists");
        let yb = lk(y).bal;
        self.rotate(z, 1 - side);
        self.rotate(x, side);
        let s = sgn(side);
        let (xb, zb) = if yb == 0 {
            (0, 0)
        } else if yb == s {
            (-s, 0)
        } else {
            (0, s)
        };
        lk(x).bal = xb;
        lk(z).bal = zb;
        lk(y).bal = 0;
        y
    }

    fn fix_insert(&mut self, mut n: NonNull<N>) {
        while let Some(p) = lk(n).parent {
            let side = Self::side(p, n);
            let s = sgn(side);
            let pb = lk(p).bal;
            if pb == -s {
                lk(p).bal = 0;
                return;
            }
            if pb == 0 {
                lk(p).bal = s;
                n = p;
                continue;
            }
            if lk(n).bal == s {
                let z = self.rotate(p, side);
                lk(p).bal = 0;
                lk(z).bal = 0;
            } else {
                self.rotate_double(p, side);
            }
            return;
        }
    }

    /// Links `node` immediately before `succ` in order (`None`: as the
    /// largest record). The caller keeps the order: `node` sorts after
    /// `succ`'s predecessor and before `succ`. O(log n).
    pub(crate) fn insert_before(&mut self, succ: Option<NonNull<N>>, node: NonNull<N>) {
        {
            let l = lk(node);
            l.child = [None, None];
            l.bal = 0;
        }
        let at = match succ {
            None => self.root.map(|r| (Self::extreme(r, 1), 1)),
            Some(x) => Some(match lk(x).child[0] {
                None => (x, 0),
                Some(c) => (Self::extreme(c, 1), 1),
            }),
        };
        match at {
            None => {
                lk(node).parent = None;
                self.root = Some(node);
            }
            Some((p, side)) => {
                lk(node).parent = Some(p);
                lk(p).child[side] = Some(node);
            }
        }
        self.len += 1;
        self.fix_insert(node);
    }

    /// Height of `parent`'s `side` subtree just dropped by one: retrace.
    fn fix_remove(&mut self, mut at: Option<(NonNull<N>, usize)>) {
        while let Some((x, side)) = at {
            let s = sgn(side);
            let xb = lk(x).bal;
            let top = if xb == s {
                lk(x).bal = 0;
                x
            } else if xb == 0 {
                lk(x).bal = -s;
                return;
            } else {
                let o = 1 - side;
                let z = lk(x).child[o].expect("the heavier side of a node is non-empty");
                let zb = lk(z).bal;
                if zb == 0 {
                    let z = self.rotate(x, o);
                    lk(x).bal = sgn(o);
                    lk(z).bal = -sgn(o);
                    return;
                } else if zb == sgn(o) {
                    let z = self.rotate(x, o);
                    lk(x).bal = 0;
                    lk(z).bal = 0;
                    z
                } else {
                    self.rotate_double(x, o)
                }
            };
            at = lk(top).parent.map(|p| (p, Self::side(p, top)));
        }
    }

    /// Unlinks `n` (which stays allocated; the caller frees it). O(log n).
    pub(crate) fn remove(&mut self, n: NonNull<N>) {
        let (left, right, parent) = {
            let l = lk(n);
            (l.child[0], l.child[1], l.parent)
        };
        match (left, right) {
            (Some(a), Some(b)) => {
                let s = Self::extreme(b, 0);
                let fix = if s == b {
                    (s, 1)
                } else {
                    let sp = lk(s)
                        .parent
                        .expect("a successor below the right child has a parent");
                    let sr = lk(s).child[1];
                    lk(sp).child[0] = sr;
                    Self::set_parent(sr, Some(sp));
                    lk(s).child[1] = Some(b);
                    lk(b).parent = Some(s);
                    (sp, 0)
                };
                lk(s).child[0] = Some(a);
                lk(a).parent = Some(s);
                lk(s).bal = lk(n).bal;
                self.replace_child(parent, n, Some(s));
                lk(s).parent = parent;
                self.len -= 1;
                self.fix_remove(Some(fix));
            }
            (c, None) | (None, c) => {
                let at = parent.map(|p| (p, Self::side(p, n)));
                self.replace_child(parent, n, c);
                Self::set_parent(c, parent);
                self.len -= 1;
                self.fix_remove(at);
            }
        }
    }

    /// Unlinks every record, children before parents, handing each to
    /// `free` after the tree stops touching it. O(n).
    pub(crate) fn drain(&mut self, mut free: impl FnMut(NonNull<N>)) {
        let mut cur = self.root.take();
        self.len = 0;
        while let Some(n) = cur {
            let l = lk(n);
            if let Some(c) = l.child[0].take() {
                cur = Some(c);
            } else if let Some(c) = l.child[1].take() {
                cur = Some(c);
            } else {
                cur = l.parent;
                free(n);
            }
        }
    }

    /// Verifies parent links, balance factors and the record count, and
    /// returns the height. `O(n)` (tests).
    #[cfg(test)]
    pub(crate) fn check(&self) -> Result<u32, &'static str> {
        fn walk<N: Linked>(
            p: Option<NonNull<N>>,
            parent: Option<NonNull<N>>,
            n: &mut u64,
        ) -> Result<u32, &'static str> {
            let Some(p) = p else { return Ok(0) };
            *n += 1;
            let l = lk(p);
            if l.parent != parent {
                return Err("parent link wrong");
            }
            let (c0, c1) = (l.child[0], l.child[1]);
            let bal = l.bal;
            let hl = walk(c0, Some(p), n)?;
            let hr = walk(c1, Some(p), n)?;
            if i64::from(hr) - i64::from(hl) != i64::from(bal) {
                return Err("balance factor wrong");
            }
            Ok(1 + hl.max(hr))
        }
        let mut n = 0;
        let h = walk(self.root, None, &mut n)?;
        if n != self.len {
            return Err("record count wrong");
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::boxed::Box;
    use std::collections::BTreeMap;
    use std::vec::Vec;

    #[repr(C)]
    struct T {
        links: Links<T>,
        key: u64,
    }
    // SAFETY: repr(C), links first.
    unsafe impl Linked for T {}

    fn inorder(t: &Tree<T>) -> Vec<u64> {
        let mut v = Vec::new();
        let mut c = t.first();
        while let Some(p) = c {
            v.push(get(p).key);
            c = Tree::next(p);
        }
        let mut back = Vec::new();
        let mut c = t.last();
        while let Some(p) = c {
            back.push(get(p).key);
            c = Tree::prev(p);
        }
        back.reverse();
        assert_eq!(v, back, "successor and predecessor walks disagree");
        v
    }

    proptest! {
        #[test]
        fn avl_matches_btreemap(ops in proptest::collection::vec((any::<bool>(), 0u64..200), 1..600)) {
            let mut t: Tree<T> = Tree::default();
            let mut model: BTreeMap<u64, NonNull<T>> = BTreeMap::new();
            for (ins, key) in ops {
                if ins && !model.contains_key(&key) {
                    let n = NonNull::from(Box::leak(Box::new(T { links: Links::new(0), key })));
                    let succ = t.lower_bound(|r| r.key >= key);
                    t.insert_before(succ, n);
                    model.insert(key, n);
                } else if let Some(n) = model.remove(&key) {
                    t.remove(n);
                    // SAFETY: leaked above, unlinked now.
                    drop(unsafe { Box::from_raw(n.as_ptr()) });
                }
                let h = t.check().map_err(TestCaseError::fail)?;
                let n = model.len() as f64;
                prop_assert!(f64::from(h) <= 1.45 * (n + 2.0).log2(), "height {} for {} nodes", h, n);
                prop_assert_eq!(inorder(&t), model.keys().copied().collect::<Vec<_>>());
            }
            let mut freed = 0;
            // SAFETY: every node was leaked from a Box above; drain unlinks.
            t.drain(|p| { freed += 1; drop(unsafe { Box::from_raw(p.as_ptr()) }) });
            prop_assert_eq!(freed, model.len());
            prop_assert!(t.is_empty());
        }
    }
}
