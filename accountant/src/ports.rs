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
//! **Architecture invariant — directories are type-stable, leaves are
//! counted.** A directory (2 KiB per 256 ids, at most 128) is never freed
//! while the table lives. A leaf has a count of holders: the table's link
//! (while the domain exists, and while it waits in [`Retired`] after the
//! domain was destroyed) and one per [`BoundPortChecker`]. The last holder
//! to let go frees it; its count is released with `Release` and the free
//! follows an `Acquire` fence (as `Arc` does), so every check through a
//! holder happens before the free.
//!
//! **Memory is returned (SPEC "Port table").** Destroying a domain clears its
//! bits, unlinks its leaf from the table and retires the table's hold
//! ([`Retired`]). A reader of the generic [`PortChecker`] loads the leaf
//! pointer from the table without holding the leaf, so the retired holds
//! are released only when no [`PortChecker`] is left (`Arc::get_mut` on the
//! table, under the accountant's `&mut`: no check through the table can be
//! running and none can start). Then a destroyed domain's leaf is freed
//! once its vCPUs have dropped their bound checkers (the hypervisor joins
//! them before `destroy` returns): the table is bounded by live domains
//! (8 KiB each) plus 2 KiB per 256 ids. While a generic checker lives, a
//! retired leaf waits and is linked again if its id is created again
//! (when no bound checker holds it), so memory is bounded by ids, as
//! before: at most 32,752 × 8 KiB.
//!
//! **Ordering.** Writers clear with `fetch_and` and set with `fetch_or`
//! (`SeqCst`), readers load with `Acquire`. An accountant operation that takes
//! rights away clears every bit it removes before it returns, and clears
//! before it sets, so a check that happens after the operation returned
//! never allows the removed access.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::ptr::{self, NonNull};

use crate::sync::{fence, Arc, AtomicPtr, AtomicU64, AtomicUsize, Ordering};

/// Domain ids per directory, as a shift: 256 (2 under loom, whose models
/// keep every atomic few).
const DOM_SHIFT: u32 = if cfg!(loom) { 1 } else { 8 };
const DOMS_PER_DIR: usize = 1 << DOM_SHIFT;
/// Directories: enough for every domain id (32,768 >= MAX_DOMID + 1).
const DIRS: usize = if cfg!(loom) { 2 } else { 128 };

/// Words of a domain's leaf: 65,536 port bits (under loom, 256 ports).
const WORDS: usize = if cfg!(loom) { 4 } else { 65_536 / 64 };
/// Ports a leaf holds bits for.
const PORTS: u32 = (WORDS * 64) as u32;

/// One domain's ports: a bit per port (8 KiB), made when the domain first
/// gains one, and its count of holders (see the module docs).
struct DomPorts {
    words: [AtomicU64; WORDS],
    holders: AtomicUsize,
    /// Under loom: read at every check, written at the free, so the model
    /// reports a check that is not ordered before the free.
    #[cfg(loom)]
    life: loom::cell::UnsafeCell<()>,
    /// Under loom: release without the `Release`/`Acquire` pair (the
    /// weakened protocol the model must reject).
    #[cfg(loom)]
    weak: bool,
}

/// `1 << DOM_SHIFT` domains.
struct Dir {
    doms: [AtomicPtr<DomPorts>; DOMS_PER_DIR],
}

/// The shared table; see the module docs.
pub(crate) struct PortTable {
    dirs: [AtomicPtr<Dir>; DIRS],
    /// Under loom: leaves made by this table release weakly.
    #[cfg(loom)]
    weak: bool,
}

impl DomPorts {
    /// A leaf with no bit set and one hold (the table's link); `weak`
    /// matters only under loom.
    fn new(weak: bool) -> DomPorts {
        #[cfg(not(loom))]
        let _ = weak;
        DomPorts {
            words: core::array::from_fn(|_| AtomicU64::new(0)),
            holders: AtomicUsize::new(1),
            #[cfg(loom)]
            life: loom::cell::UnsafeCell::new(()),
            #[cfg(loom)]
            weak,
        }
    }
}

#[cfg(loom)]
impl Drop for DomPorts {
    fn drop(&mut self) {
        self.life.with_mut(|_| ());
    }
}

impl Default for Dir {
    fn default() -> Self {
        Dir {
            doms: core::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
        }
    }
}

/// One hold on a leaf (see the module docs): the table's link, a retired
/// leaf's, or a bound checker's. Dropping it lets go.
pub(crate) struct LeafHold(NonNull<DomPorts>);

// SAFETY: a hold is a counted share of a leaf that holds only atomics; it
// may be used and let go from any thread.
unsafe impl Send for LeafHold {}
// SAFETY: as above; through `&LeafHold` only atomic loads happen.
unsafe impl Sync for LeafHold {}

impl LeafHold {
    /// Takes over the table's hold on the leaf at `p`.
    ///
    /// # Safety
    /// `p` came from `Box::into_raw` in [`PortTable::dom_mut`] and the
    /// caller owns one hold on it that it hands over.
    unsafe fn adopt(p: NonNull<DomPorts>) -> LeafHold {
        LeafHold(p)
    }

    fn leaf(&self) -> &DomPorts {
        // SAFETY: a hold keeps the leaf alive: it is freed only when its
        // last hold is let go (`Drop`), and this one is not yet.
        unsafe { self.0.as_ref() }
    }

    /// One more hold on the same leaf.
    fn share(&self) -> LeafHold {
        // Relaxed, as `Arc::clone`: the new hold comes from an existing
        // one, which keeps the leaf alive meanwhile.
        self.leaf().holders.fetch_add(1, Ordering::Relaxed);
        LeafHold(self.0)
    }

    /// Whether this is the leaf's only hold (for reusing a retired leaf:
    /// no bound checker has it).
    fn is_only(&self) -> bool {
        self.leaf().holders.load(Ordering::Acquire) == 1
    }
}

impl Drop for LeafHold {
    fn drop(&mut self) {
        let leaf = self.leaf();
        #[cfg(loom)]
        let weak = leaf.weak;
        #[cfg(not(loom))]
        let weak = false;
        let order = if weak {
            Ordering::Relaxed
        } else {
            Ordering::Release
        };
        // `Release` orders this holder's checks before the decrement; the
        // last holder's `Acquire` fence orders every holder's checks before
        // the free (the `Arc` protocol).
        if leaf.holders.fetch_sub(1, order) != 1 {
            return;
        }
        if !weak {
            fence(Ordering::Acquire);
        }
        // SAFETY: the count reached zero: this was the last hold, no other
        // can be made (a new one comes only from an existing one), and the
        // pointer came from `Box::into_raw` (`adopt`'s contract).
        drop(unsafe { Box::from_raw(self.0.as_ptr()) });
    }
}

/// Dereferences a directory pointer loaded from the table.
///
/// # Safety
/// `p` must be null or a directory pointer stored into a [`PortTable`] that
/// outlives `'a`.
unsafe fn dir<'a>(p: *mut Dir) -> Option<&'a Dir> {
    // SAFETY: per the contract, non-null pointers in `dirs` come from
    // `Box::into_raw` and are freed only in `PortTable::drop`, which cannot
    // run while `'a` (a borrow of the table) is live.
    unsafe { p.as_ref() }
}

/// Dereferences a leaf pointer loaded from the table.
///
/// # Safety
/// `p` must be null or a leaf pointer loaded from a [`PortTable`] that
/// outlives `'a`, by a reader during whose borrow the table's hold cannot
/// be let go: the accountant (single writer) or a [`PortChecker`], whose
/// `Arc` on the table keeps retired holds alive (see the module docs).
unsafe fn leaf<'a>(p: *mut DomPorts) -> Option<&'a DomPorts> {
    // SAFETY: per the contract, the leaf is linked or retired, and its
    // table hold is not let go while `'a` lasts.
    unsafe { p.as_ref() }
}

/// The permission word of `port` (below [`PORTS`]) in one domain's leaf.
#[inline(always)]
fn dom_word(dom: &DomPorts, port: u32) -> u64 {
    #[cfg(loom)]
    dom.life.with(|_| ());
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
            dirs: core::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
            #[cfg(loom)]
            weak: false,
        }
    }

    /// A table whose leaves let go without the `Release`/`Acquire` pair:
    /// the weakened protocol, for the model that must reject it.
    #[cfg(all(test, loom))]
    pub(crate) fn new_weakened() -> Self {
        PortTable {
            dirs: core::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
            weak: true,
        }
    }

    /// Whether this table's leaves let go weakly (only ever under loom).
    fn weakened(&self) -> bool {
        #[cfg(loom)]
        return self.weak;
        #[cfg(not(loom))]
        false
    }

    /// The slot of `dom`'s leaf, if its directory exists.
    fn slot(&self, dom: u16) -> Option<&AtomicPtr<DomPorts>> {
        let d = self
            .dirs
            .get(usize::from(dom >> DOM_SHIFT))?
            .load(Ordering::Acquire);
        // SAFETY: pointers in `dirs` obey `dir`'s contract.
        let d = unsafe { dir(d) }?;
        d.doms.get(usize::from(dom) & (DOMS_PER_DIR - 1))
    }

    fn dom(&self, dom: u16) -> Option<&DomPorts> {
        let dp = self.slot(dom)?.load(Ordering::Acquire);
        // SAFETY: `&self` is the accountant's or a `PortChecker`'s borrow
        // (`leaf`'s contract).
        unsafe { leaf(dp) }
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

    /// The slot of `dom`'s leaf, its directory made if missing (single
    /// writer: the accountant). `None` for an id past the table.
    fn slot_mut(&self, dom: u16) -> Option<&AtomicPtr<DomPorts>> {
        let slot = self.dirs.get(usize::from(dom >> DOM_SHIFT))?;
        let mut d = slot.load(Ordering::Acquire);
        if d.is_null() {
            d = Box::into_raw(Box::<Dir>::default());
            slot.store(d, Ordering::Release);
        }
        // SAFETY: `d` was just stored into the table or loaded from it.
        let d = unsafe { dir(d) }?;
        d.doms.get(usize::from(dom) & (DOMS_PER_DIR - 1))
    }

    /// The node for `dom`, allocated if missing (single writer: the accountant).
    fn dom_mut(&self, dom: u16) -> Option<&DomPorts> {
        let slot = self.slot_mut(dom)?;
        let mut dp = slot.load(Ordering::Acquire);
        if dp.is_null() {
            dp = Box::into_raw(Box::new(DomPorts::new(self.weakened())));
            // The new leaf's one hold is the table's link.
            slot.store(dp, Ordering::Release);
        }
        // SAFETY: as in `dom`, for the writer.
        unsafe { leaf(dp) }
    }

    /// A hold on `dom`'s leaf, made if missing, for a [`BoundPortChecker`]
    /// (single writer: the accountant). `None` only for an id past the table.
    fn bind(&self, dom: u16) -> Option<LeafHold> {
        let dp = NonNull::from(self.dom_mut(dom)?);
        // SAFETY: borrowed, not adopted: `ManuallyDrop` keeps the table's
        // own hold, and `share` makes the checker's.
        let table = core::mem::ManuallyDrop::new(unsafe { LeafHold::adopt(dp) });
        Some(table.share())
    }

    /// Unlinks `dom`'s leaf and returns the table's hold on it (single
    /// writer: the accountant, at destroy, after clearing its bits).
    fn unlink(&self, dom: u16) -> Option<LeafHold> {
        let dp = self.slot(dom)?.swap(ptr::null_mut(), Ordering::SeqCst);
        // SAFETY: a non-null leaf pointer in a slot carries the table's
        // hold, which the swap took out of the table and hands over.
        NonNull::new(dp).map(|p| unsafe { LeafHold::adopt(p) })
    }

    /// Links a retired leaf again for `dom` (whose slot is empty: single
    /// writer, at create). Its bits are all clear since its domain was
    /// destroyed.
    /// `Err` gives the hold back if the slot is taken (a checker bound
    /// before the create made a leaf) or the id is past the table.
    fn relink(&self, dom: u16, hold: LeafHold) -> Result<(), LeafHold> {
        let Some(slot) = self.slot_mut(dom) else {
            return Err(hold);
        };
        if !slot.load(Ordering::Acquire).is_null() {
            return Err(hold);
        }
        let p = core::mem::ManuallyDrop::new(hold);
        slot.store(p.0.as_ptr(), Ordering::Release);
        Ok(())
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
        let (first, last) = (u32::from(first), u32::from(last).min(PORTS - 1));
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
    /// Bytes of nodes linked in the table (directories and per-domain
    /// leaves), without the allocator's overhead. A walk of the table: for
    /// measurement and tests, not for a hot path.
    pub(crate) fn node_bytes(&self) -> u64 {
        let size = |n: usize| n as u64;
        let mut total = 0;
        for d in &self.dirs {
            // SAFETY: null or a directory of this table.
            let Some(d) = (unsafe { dir(d.load(Ordering::Acquire)) }) else {
                continue;
            };
            total += size(core::mem::size_of::<Dir>());
            for dp in &d.doms {
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
            let d = d.swap(ptr::null_mut(), Ordering::AcqRel);
            if d.is_null() {
                continue;
            }
            // SAFETY: `&mut self` means no reader is left (readers hold an Arc);
            // every non-null pointer came from `Box::into_raw` in `slot_mut`
            // and is freed exactly once here, after being swapped out.
            let d = unsafe { Box::from_raw(d) };
            for dp in &d.doms {
                let dp = dp.swap(ptr::null_mut(), Ordering::AcqRel);
                // SAFETY: a linked leaf carries the table's hold, taken out
                // by the swap; bound checkers keep theirs.
                drop(NonNull::new(dp).map(|p| unsafe { LeafHold::adopt(p) }));
            }
        }
    }
}

/// The table's holds on destroyed domains' leaves, unlinked but not yet let
/// go: a [`PortChecker`] may still be reading them (see the module docs).
/// Owned by the accountant, beside its `Arc` on the table.
#[derive(Default)]
pub(crate) struct Retired {
    leaves: Vec<(u16, LeafHold)>,
}

impl Retired {
    /// Unlinks `dom`'s leaf (its bits already cleared) and keeps the
    /// table's hold until [`Retired::reclaim`].
    pub(crate) fn retire(&mut self, table: &PortTable, dom: u16) {
        if let Some(h) = table.unlink(dom) {
            self.leaves.push((dom, h));
        }
    }

    /// Lets go of every retired hold if no [`PortChecker`] shares `table`
    /// (then no check through the table runs, and none can start while the
    /// caller's `&mut` lasts). Leaves that bound checkers still hold are
    /// freed by the last of them. Whether it let go.
    pub(crate) fn reclaim(&mut self, table: &mut Arc<PortTable>) -> bool {
        if self.leaves.is_empty() {
            return true;
        }
        // `get_mut` loads the count with `Acquire`: every check through a
        // dropped `PortChecker` happened before.
        if Arc::get_mut(table).is_none() {
            return false;
        }
        self.leaves.clear();
        true
    }

    /// At `create dom`: a retired leaf of `dom` that no bound checker holds
    /// is linked again rather than a new one made (a `PortChecker` may
    /// still read it, so it cannot be freed). Call after [`Retired::reclaim`].
    pub(crate) fn reuse(&mut self, table: &PortTable, dom: u16) {
        if let Some(i) = self
            .leaves
            .iter()
            .position(|(d, h)| *d == dom && h.is_only())
        {
            let (_, h) = self.leaves.swap_remove(i);
            if let Err(h) = table.relink(dom, h) {
                self.leaves.push((dom, h));
            }
        }
    }

    /// Bytes of the retired leaves.
    pub(crate) fn bytes(&self) -> u64 {
        (self.leaves.len() * core::mem::size_of::<DomPorts>()) as u64
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
/// It holds the domain's leaf of the table (its 65,536 port bits): a check
/// is one word load (two for an access straddling a word), with no pointer
/// to follow and no lock.
///
/// The concurrency guarantee is [`PortChecker`]'s: bits are cleared in place
/// before an operation that takes rights away returns, so after a revoke
/// returns no later check allows the revoked access.
///
/// **Lifetime (the protocol between destroy, holders and the free).** The
/// checker is one of its leaf's holders. Destroying the domain clears the
/// leaf's bits (so every later check denies) and unlinks the leaf; the leaf
/// is freed when its last holder lets go, so a checker never reads freed
/// memory, and dropping it is what returns a destroyed domain's 8 KiB: drop
/// a domain's checkers when its vCPUs stop. A checker kept past its
/// domain's destroy denies everything forever, even if the id is created
/// again (the new domain gets a leaf of its own).
pub struct BoundPortChecker {
    leaf: LeafHold,
    dom: u16,
}

impl BoundPortChecker {
    /// Binds to `dom`'s leaf, allocating it if the domain has none yet.
    /// `None` only for an id past the table (never for a `DomId`).
    pub(crate) fn new(table: &PortTable, dom: u16) -> Option<Self> {
        Some(BoundPortChecker {
            leaf: table.bind(dom)?,
            dom,
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
        dom_check(self.leaf.leaf(), port, width)
    }
}

impl Clone for BoundPortChecker {
    fn clone(&self) -> Self {
        BoundPortChecker {
            leaf: self.leaf.share(),
            dom: self.dom,
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
        // 8 KiB of bits and the count of holders.
        let leaf = 8192 + 8;
        assert_eq!(t.node_bytes(), dir + leaf);
        t.write(1, 0, 0xffff, true);
        t.write(2, 0, 0, true);
        assert_eq!(t.node_bytes(), dir + 2 * leaf);
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

#[cfg(all(test, loom))]
mod loom_model {
    //! The bound check against a concurrent revoke and destroy, and the
    //! free of a destroyed domain's leaf, explored by loom. The leaf's
    //! `life` cell makes loom report any check not ordered before the free.
    use super::*;
    use loom::sync::atomic::AtomicBool;

    const PORT: u16 = 0x42;

    /// A vCPU checks with its bound checker (and, if `generic`, another
    /// thread with the generic one) while the control plane revokes the
    /// port, destroys the domain and reclaims.
    fn run(table: fn() -> PortTable, generic: bool) {
        loom::model(move || {
            let mut t = Arc::new(table());
            t.write(1, PORT, PORT, true);
            let bound = BoundPortChecker::new(&t, 1).expect("in the table");
            let revoked = Arc::new(AtomicBool::new(false));
            let vcpu = {
                let revoked = Arc::clone(&revoked);
                loom::thread::spawn(move || {
                    let after = revoked.load(Ordering::Acquire);
                    let allowed = bound.check_untraced(PORT, 1);
                    assert!(!(after && allowed), "allowed after revoke returned");
                    // The vCPU stops: its checker goes.
                    drop(bound);
                })
            };
            let other = generic.then(|| {
                let c = PortChecker {
                    table: Arc::clone(&t),
                };
                let revoked = Arc::clone(&revoked);
                loom::thread::spawn(move || {
                    let after = revoked.load(Ordering::Acquire);
                    let allowed = c.check_untraced(1, PORT, 1);
                    assert!(!(after && allowed), "allowed after revoke returned");
                })
            });
            // revoke, then destroy: bits cleared, leaf unlinked and retired.
            t.write(1, PORT, PORT, false);
            revoked.store(true, Ordering::Release);
            let mut retired = Retired::default();
            retired.retire(&t, 1);
            while !retired.reclaim(&mut t) {
                loom::thread::yield_now();
            }
            vcpu.join().expect("vCPU");
            if let Some(o) = other {
                o.join().expect("generic checker");
            }
            assert_eq!(t.node_bytes(), core::mem::size_of::<Dir>() as u64);
        });
    }

    #[test]
    fn a_revoked_port_stays_denied_and_a_destroyed_leaf_is_freed_after_its_checks() {
        run(PortTable::new, false);
    }

    #[test]
    fn a_generic_checker_delays_the_free_until_it_is_gone() {
        run(PortTable::new, true);
    }

    #[test]
    #[should_panic(expected = "Causality violation")]
    fn a_relaxed_release_frees_a_leaf_under_a_check() {
        run(PortTable::new_weakened, false);
    }
}
