//! The port access check: a radix tree of per-domain permission bits.
//!
//! A guest port access traps on every `in`/`out`, so the check must be cheap
//! and must not take the accountant's lock. The table is a derived cache of
//! the accountant's state: bit `(d, p)` is set exactly when domain `d` may
//! access port `p` (it holds `p` and does not drain it, or `p` is
//! default-accessible to it). The accountant rewrites the affected bits
//! before every operation that changes them returns.
//!
//! Shape (two radix levels for the domain id; the leaf is the domain's
//! 65,536 port bits):
//!
//! ```text
//! dirs[d >> 8] -> [d & 0xff] -> DomPorts.words[p >> 6] bit p & 63
//! ```
//!
//! A check is at most 2 pointer loads and 2 word loads (an access of width 2
//! or 4 may straddle two words), whatever the number of grants; it takes no
//! lock and allocates nothing. A missing node means "no bit set". A checker
//! bound to its domain ([`BoundPortChecker`]) skips the pointer loads: its
//! check is one word load, as cheap as a flat bitmap because it is one.
//!
//! Why the port levels end in one 8 KiB leaf per domain: with port levels
//! (the table had 256 leaves of 256 ports) a bound check is a dependent
//! pointer load and then the word, and measured side by side that cost
//! 1.26× a flat bitmap at one grant and 1.5× from 4,096 grants up; port
//! levels only save memory for a domain that holds few ports, and 8 KiB per
//! domain is what VT-x's own I/O bitmaps cost per VM. A domain that never
//! held a port, and has no bound checker, has no leaf.
//!
//! **Architecture invariant — type-stable nodes.** Nodes are allocated when a
//! domain first gains a bit in them and are never freed or reused for another
//! domain id while the table lives; destroying a domain clears its bits in
//! place. A reader that loaded a node pointer can therefore always
//! dereference it, and never sees another domain's bits. All nodes are freed
//! in `Drop`, which runs only when no [`PortChecker`] (an `Arc`) is left.
//!
//! **Memory is bounded, not returned.** A domain id that ever had a port
//! costs its 8 KiB `DomPorts` leaf ([`PortTable::node_bytes`] counts
//! nodes; the global allocator adds 16 bytes), plus a 2 KiB directory per
//! 256 ids. The bound is per id, not per domain created: re-creating a
//! destroyed id reuses its leaf, so cycling domains grows the table only up
//! to every id used — at most 32,752 ids × 8 KiB + 128 directories
//! ≈ 256 MiB, the true worst case, reached only if every id ever held a
//! port.
//!
//! **Ordering.** Writers clear with `fetch_and` and set with `fetch_or`
//! (`SeqCst`), readers load with `Acquire`. An accountant operation that takes
//! rights away clears every bit it removes before it returns, and clears
//! before it sets, so a check that happens after the operation returned
//! never allows the removed access.

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

const DIRS: usize = 128; // 128 * 256 = 32768 domain ids >= MAX_DOMID + 1

/// Words of a domain's leaf: 65,536 port bits.
const WORDS: usize = 65_536 / 64;

/// One domain's ports: a bit per port (8 KiB), made when the domain first
/// gains one.
struct DomPorts {
    words: [AtomicU64; WORDS],
}

/// 256 domains.
struct Dir {
    doms: [AtomicPtr<DomPorts>; 256],
}

/// The shared table; see the module docs.
pub(crate) struct PortTable {
    dirs: [AtomicPtr<Dir>; DIRS],
}

/// Allocates a node whose atomics are all zero/null, and leaks it as a raw pointer.
fn new_node<T: Default>() -> *mut T {
    Box::into_raw(Box::<T>::default())
}

impl Default for DomPorts {
    fn default() -> Self {
        DomPorts {
            words: [const { AtomicU64::new(0) }; WORDS],
        }
    }
}
impl Default for Dir {
    fn default() -> Self {
        Dir {
            doms: [const { AtomicPtr::new(ptr::null_mut()) }; 256],
        }
    }
}

/// Dereferences a node pointer loaded from the table.
///
/// # Safety
/// `p` must be null or a pointer stored into a [`PortTable`] that outlives `'a`.
unsafe fn node<'a, T>(p: *mut T) -> Option<&'a T> {
    // SAFETY: per the contract, non-null pointers in the table come from
    // `new_node` (Box::into_raw) and are freed only in `PortTable::drop`, which
    // cannot run while `'a` (a borrow of the table) is live.
    unsafe { p.as_ref() }
}

/// The permission word of `port` (below 65,536) in one domain's leaf.
#[inline(always)]
fn dom_word(dom: &DomPorts, port: u32) -> u64 {
    dom.words[(port >> 6) as usize % WORDS].load(Ordering::Acquire)
}

/// Whether every port in `port..port + width` is allowed in one domain's
/// node. `false` for a width other than 1, 2, 4 or a range past 0xffff.
#[inline(always)]
fn dom_check(dp: &DomPorts, port: u16, width: u8) -> bool {
    if !matches!(width, 1 | 2 | 4) {
        return false;
    }
    let first = u32::from(port);
    let last = first + u32::from(width) - 1;
    if last > 0xffff {
        return false;
    }
    let mask = |lo: u32, hi: u32| -> u64 {
        // bits lo..=hi of one word, lo <= hi < 64
        (u64::MAX >> (63 - (hi - lo))) << lo
    };
    if first >> 6 == last >> 6 {
        let m = mask(first & 63, last & 63);
        dom_word(dp, first) & m == m
    } else {
        let m1 = mask(first & 63, 63);
        let m2 = mask(0, last & 63);
        dom_word(dp, first) & m1 == m1 && dom_word(dp, last) & m2 == m2
    }
}

impl PortTable {
    pub(crate) fn new() -> Self {
        PortTable {
            dirs: [const { AtomicPtr::new(ptr::null_mut()) }; DIRS],
        }
    }

    fn dom(&self, dom: u16) -> Option<&DomPorts> {
        let dir = self
            .dirs
            .get(usize::from(dom >> 8))?
            .load(Ordering::Acquire);
        // SAFETY: pointers in `dirs` obey `node`'s contract (type-stable nodes).
        let dir = unsafe { node(dir) }?;
        let dp = dir.doms[usize::from(dom & 0xff)].load(Ordering::Acquire);
        // SAFETY: as above, for the per-domain node.
        unsafe { node(dp) }
    }

    fn word(&self, dom: &DomPorts, port: u32) -> u64 {
        dom_word(dom, port)
    }

    /// Whether every port in `port..port + width` is allowed for `dom`.
    /// `false` for a width other than 1, 2, 4 or a range past 0xffff.
    #[inline]
    pub(crate) fn check(&self, dom: u16, port: u16, width: u8) -> bool {
        match self.dom(dom) {
            Some(dp) => dom_check(dp, port, width),
            None => false,
        }
    }

    /// The node for `dom`, allocated if missing (single writer: the accountant).
    fn dom_mut(&self, dom: u16) -> Option<&DomPorts> {
        let slot = self.dirs.get(usize::from(dom >> 8))?;
        let mut dir = slot.load(Ordering::Acquire);
        if dir.is_null() {
            dir = new_node::<Dir>();
            slot.store(dir, Ordering::Release);
        }
        // SAFETY: `dir` was just stored into the table or loaded from it.
        let dir = unsafe { node(dir) }?;
        let slot = &dir.doms[usize::from(dom & 0xff)];
        let mut dp = slot.load(Ordering::Acquire);
        if dp.is_null() {
            dp = new_node::<DomPorts>();
            slot.store(dp, Ordering::Release);
        }
        // SAFETY: as above.
        unsafe { node(dp) }
    }

    /// The node of `dom`, allocated if missing, for a [`BoundPortChecker`]
    /// (single writer: the accountant). `None` only for an id past the table.
    fn bind(&self, dom: u16) -> Option<NonNull<DomPorts>> {
        self.dom_mut(dom).map(NonNull::from)
    }

    /// Sets (`allow`) or clears the bits of `first..=last` (ports) for `dom`.
    /// Clearing never allocates; setting allocates a missing leaf.
    pub(crate) fn write(&self, dom: u16, first: u16, last: u16, allow: bool) {
        let dp = if allow {
            self.dom_mut(dom)
        } else {
            self.dom(dom)
        };
        let Some(dp) = dp else { return };
        let (first, last) = (u32::from(first), u32::from(last));
        let mut p = first;
        while p <= last {
            let word_end = (p | 63).min(last);
            let m = (u64::MAX >> (63 - (word_end - p))) << (p & 63);
            let w = &dp.words[(p >> 6) as usize % WORDS];
            if allow {
                w.fetch_or(m, Ordering::SeqCst);
            } else {
                w.fetch_and(!m, Ordering::SeqCst);
            }
            p = word_end + 1;
        }
    }

    /// The first port in `first..=last` whose bit for `dom` is not `want`
    /// (for invariant checks; a word at a time).
    pub(crate) fn first_mismatch(
        &self,
        dom: u16,
        first: u16,
        last: u16,
        want: bool,
    ) -> Option<u16> {
        let dp = self.dom(dom);
        let (first, last) = (u32::from(first), u32::from(last));
        let mut p = first;
        while p <= last {
            let word_end = (p | 63).min(last);
            let m = (u64::MAX >> (63 - (word_end - p))) << (p & 63);
            let w = dp.map_or(0, |dp| self.word(dp, p));
            let bad = if want { !w & m } else { w & m };
            if bad != 0 {
                return Some(((p & !63) + bad.trailing_zeros()) as u16);
            }
            p = word_end + 1;
        }
        None
    }
}

impl PortTable {
    /// Bytes of nodes in the table (directories and per-domain leaves),
    /// without the allocator's overhead. A walk of the table: for
    /// measurement and tests, not for a hot path.
    pub(crate) fn node_bytes(&self) -> u64 {
        let size = |n: usize| n as u64;
        let mut total = 0;
        for d in &self.dirs {
            // SAFETY: null or a node of this table (never freed while it lives).
            let Some(dir) = (unsafe { node(d.load(Ordering::Acquire)) }) else {
                continue;
            };
            total += size(core::mem::size_of::<Dir>());
            for dp in &dir.doms {
                if !dp.load(Ordering::Acquire).is_null() {
                    total += size(core::mem::size_of::<DomPorts>());
                }
            }
        }
        total
    }
}

impl Drop for PortTable {
    fn drop(&mut self) {
        for d in &self.dirs {
            let dir = d.swap(ptr::null_mut(), Ordering::AcqRel);
            if dir.is_null() {
                continue;
            }
            // SAFETY: `&mut self` means no reader is left (readers hold an Arc);
            // every non-null pointer came from `Box::into_raw` in `new_node` and
            // is freed exactly once here, after being swapped out.
            let dir = unsafe { Box::from_raw(dir) };
            for dp in &dir.doms {
                let dp = dp.swap(ptr::null_mut(), Ordering::AcqRel);
                if dp.is_null() {
                    continue;
                }
                // SAFETY: as above.
                drop(unsafe { Box::from_raw(dp) });
            }
        }
    }
}

/// Emits the `PortCheck` tracepoint of one check and returns its answer
/// (one relaxed load when tracing is off).
#[inline(always)]
fn traced(dom: u16, port: u16, width: u8, allowed: bool) -> bool {
    tracepoints::tp!(tracepoints::Record::new(tracepoints::Kind::PortCheck)
        .domain(dom)
        .range(
            tracepoints::Space::IoPort,
            u64::from(port),
            u64::from(port) + u64::from(width.max(1)) - 1
        )
        .width(width)
        .outcome(if allowed {
            tracepoints::Outcome::Allow
        } else {
            tracepoints::Outcome::Deny
        }));
    allowed
}

/// A lock-free handle on the accountant's port permissions, for vCPU threads.
///
/// Having one lets any thread ask "may domain `d` access these ports now?"
/// without taking the accountant's lock. Cloning shares the same table.
#[derive(Clone)]
pub struct PortChecker {
    pub(crate) table: Arc<PortTable>,
}

impl PortChecker {
    /// Whether `dom` may access `width` ports from `port` (width 1, 2 or 4;
    /// any other width, or a range past 0xffff, is denied). Lock-free, no
    /// allocation, a fixed number of loads.
    ///
    /// Emits a `PortCheck` tracepoint (one relaxed load when tracing is off).
    #[inline]
    pub fn check(&self, dom: u16, port: u16, width: u8) -> bool {
        let allowed = self.table.check(dom, port, width);
        traced(dom, port, width, allowed)
    }

    /// The same check without the tracepoint: for measuring what the
    /// tracepoint costs, and for callers that trace the access themselves.
    #[inline]
    pub fn check_untraced(&self, dom: u16, port: u16, width: u8) -> bool {
        self.table.check(dom, port, width)
    }
}

/// A port check bound to one domain, for the vCPU threads of that domain.
///
/// It holds the domain's node of the radix tree, loaded once when it was
/// made: nodes are type-stable (never freed or reused for another domain id
/// while the table lives, and the checker keeps the table alive), so the
/// pointer stays valid for the checker's life and a check is one word load
/// (two for an access straddling a word).
///
/// The concurrency guarantee is [`PortChecker`]'s: bits are cleared in place
/// before an operation that takes rights away returns, so after a revoke
/// returns no later check allows the revoked access. A domain id that is
/// destroyed and created again reuses its node, so a checker bound to the
/// old domain sees the new one's rights: the hypervisor stops a domain's
/// vCPUs before it destroys the domain.
pub struct BoundPortChecker {
    node: NonNull<DomPorts>,
    dom: u16,
    // Keeps the nodes alive: `PortTable::drop` frees them.
    _table: Arc<PortTable>,
}

// SAFETY: `node` points into the table `_table` keeps alive; the node holds
// only atomics, so shared access from any thread is sound, and nothing about
// it is tied to the thread that made the checker.
unsafe impl Send for BoundPortChecker {}
// SAFETY: as above; `check` only performs atomic loads through `node`.
unsafe impl Sync for BoundPortChecker {}

impl BoundPortChecker {
    /// Binds to `dom`'s node, allocating it if the domain has none yet.
    /// `None` only for an id past the table (never for a `DomId`).
    pub(crate) fn new(table: &Arc<PortTable>, dom: u16) -> Option<Self> {
        let node = table.bind(dom)?;
        Some(BoundPortChecker {
            node,
            dom,
            _table: Arc::clone(table),
        })
    }

    /// The domain this checker is bound to.
    pub fn domain(&self) -> u16 {
        self.dom
    }

    /// Whether the bound domain may access `width` ports from `port` (width
    /// 1, 2 or 4; any other width, or a range past 0xffff, is denied).
    /// Lock-free, no allocation. Emits a `PortCheck` tracepoint.
    #[inline]
    pub fn check(&self, port: u16, width: u8) -> bool {
        let allowed = self.check_untraced(port, width);
        traced(self.dom, port, width, allowed)
    }

    /// The same check without the tracepoint.
    #[inline]
    pub fn check_untraced(&self, port: u16, width: u8) -> bool {
        // SAFETY: `node` came from the table `_table` keeps alive, and nodes
        // are freed only in `PortTable::drop` (type-stable nodes).
        let dp = unsafe { self.node.as_ref() };
        dom_check(dp, port, width)
    }
}

impl Clone for BoundPortChecker {
    fn clone(&self) -> Self {
        BoundPortChecker {
            node: self.node,
            dom: self.dom,
            _table: Arc::clone(&self._table),
        }
    }
}

impl core::fmt::Debug for BoundPortChecker {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "BoundPortChecker({})", self.dom)
    }
}

impl core::fmt::Debug for PortChecker {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("PortChecker")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_round_trip_and_straddle() {
        let t = PortTable::new();
        assert!(!t.check(3, 0x60, 1));
        t.write(3, 0x3e, 0x41, true);
        assert!(t.check(3, 0x3e, 2));
        assert!(t.check(3, 0x3e, 4), "straddles a word boundary");
        assert!(!t.check(3, 0x3f, 4), "0x42 is not set");
        assert!(!t.check(4, 0x3e, 1), "other domain");
        t.write(3, 0x40, 0x40, false);
        assert!(!t.check(3, 0x3e, 4));
        assert!(t.check(3, 0x41, 1));
        t.write(32751, 0xfffc, 0xffff, true);
        assert!(t.check(32751, 0xfffc, 4));
        assert!(!t.check(32751, 0xfffe, 4), "past 0xffff");
        assert!(!t.check(32751, 0xfffc, 3), "bad width");
        t.write(5, 0, 0xffff, true);
        assert_eq!(t.first_mismatch(5, 0, 0xffff, true), None);
        assert_eq!(t.first_mismatch(6, 0, 0xffff, false), None);
        t.write(5, 0x100, 0x1ff, false);
        assert!(!t.check(5, 0xff, 2) && t.check(5, 0xfe, 2) && t.check(5, 0x200, 1));
        assert_eq!(t.first_mismatch(5, 0, 0xffff, true), Some(0x100));
        assert_eq!(t.first_mismatch(5, 0x180, 0x1ff, false), None);
        assert_eq!(t.first_mismatch(5, 0x180, 0x2ff, false), Some(0x200));
    }

    #[test]
    fn a_domain_costs_one_leaf_from_its_first_port() {
        let t = PortTable::new();
        t.write(1, 0x3f8, 0x3f8, false);
        assert_eq!(t.node_bytes(), 0, "clearing allocates nothing");
        t.write(1, 0x3f8, 0x3f8, true);
        let dir = core::mem::size_of::<Dir>() as u64;
        assert_eq!(t.node_bytes(), dir + 8192);
        t.write(1, 0, 0xffff, true);
        t.write(2, 0, 0, true);
        assert_eq!(t.node_bytes(), dir + 2 * 8192);
    }

    #[test]
    fn bound_checker_agrees_with_the_generic_check() {
        let t = Arc::new(PortTable::new());
        // Bound before the domain has any bit: the node is made at bind time,
        // and later grants land in it.
        let b = BoundPortChecker::new(&t, 7).expect("id in range");
        let other = BoundPortChecker::new(&t, 8).expect("id in range");
        assert!(!b.check_untraced(0x60, 1));
        t.write(7, 0x3e, 0x41, true);
        t.write(7, 0xfffc, 0xffff, true);
        t.write(8, 0x100, 0x1ff, true);
        for port in (0..=0xffffu32)
            .step_by(7)
            .chain(0x38..0x48)
            .chain(0xfff0..=0xffff)
        {
            let port = port as u16;
            for w in [0u8, 1, 2, 3, 4, 8] {
                assert_eq!(
                    b.check_untraced(port, w),
                    t.check(7, port, w),
                    "{port:#x}/{w}"
                );
                assert_eq!(other.check(port, w), t.check(8, port, w), "{port:#x}/{w}");
            }
        }
        assert!(b.check(0x3e, 4) && !b.check(0x3f, 4) && !b.check(0xfffe, 4));
        t.write(7, 0x40, 0x40, false);
        assert!(!b.check(0x3e, 4) && b.clone().check(0x41, 1));
        assert_eq!(b.domain(), 7);
        // The checker keeps the nodes alive after the table's last other owner.
        drop(t);
        assert!(b.check(0x41, 1) && other.check(0x1ff, 1));
        assert!(BoundPortChecker::new(&Arc::new(PortTable::new()), 32767).is_some());
    }
}
