//! The slab allocator: fixed-size object caches carved from 4 KiB pages.
//!
//! # Layout
//!
//! A *slab* is exactly one page from the cache's [`PageSource`]. Its
//! bookkeeping lives **in the page**, at offset 0 ("on-slab", as Linux's SLAB
//! does for small objects), followed by the objects:
//!
//! ```text
//! 0         32 (rounded up to the object alignment)                 4096
//! +---------+-------+-------+-------+-- ... --+-------+-------------+
//! | header  | obj 0 | obj 1 | obj 2 |         | obj n-1 | (waste)   |
//! +---------+-------+-------+-------+-- ... --+-------+-------------+
//! header: list links (prev, next), free-list head, objects in use,
//!         bump index, which list the slab is on
//! ```
//!
//! There is **no per-object header**. A free object holds the address of the
//! next free object of its slab in its first 8 bytes (the free list is
//! threaded through the free objects), which is why objects are at least 8
//! bytes and 8-aligned. Objects never handed out yet are not on the free list:
//! the header's *bump index* says where they start, so a new slab is ready in
//! O(1) instead of threading all its objects first.
//!
//! Because pages are 4096-aligned, `free` finds an object's slab header by
//! masking the low 12 bits of its address: O(1), no lookup.
//!
//! The cache keeps three doubly linked lists of slabs: *partial* (some
//! objects free), *full* and *empty*. `alloc` takes from the first partial
//! slab, else an empty one, else a new page; `free` moves a slab full →
//! partial → empty as needed. Both are O(1).
//!
//! # Empty slabs
//!
//! An empty slab goes back to the page source at once, except that the cache
//! keeps up to [`KEEP_EMPTY`] (one) empty slab: without it, a workload that
//! allocates and frees one object at a slab boundary would draw and return a
//! page on every call (thrash). The price is at most one idle page per cache,
//! which [`SlabStats::pages`] (and hence every tracker's `tracking_bytes`)
//! includes. [`SlabCache::reserve`] may hold more empty slabs for a moment;
//! [`SlabCache::trim`] returns the excess.

use core::marker::PhantomData;
use core::mem::{align_of, size_of};
use core::ptr::NonNull;

use super::page::{OutOfPages, PageSource, PAGE_SIZE};

/// Empty slabs a cache keeps instead of returning them (see module docs).
pub const KEEP_EMPTY: u64 = 1;

const LIST_PARTIAL: u8 = 0;
const LIST_FULL: u8 = 1;
const LIST_EMPTY: u8 = 2;

/// The in-page header of a slab.
#[repr(C)]
struct SlabHeader {
    prev: Option<NonNull<SlabHeader>>,
    next: Option<NonNull<SlabHeader>>,
    /// First free object (its first word points to the next one).
    free: Option<NonNull<FreeObj>>,
    /// Objects handed out and not freed.
    in_use: u16,
    /// Objects `bump..capacity` have never been handed out.
    bump: u16,
    /// Which list the slab is on (`LIST_*`).
    list: u8,
}

/// What a free object holds.
#[repr(C)]
struct FreeObj {
    next: Option<NonNull<FreeObj>>,
}

/// Statistics of a slab cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlabStats {
    /// Pages drawn from the page source (one per slab).
    pub pages: u64,
    /// Slabs with every object in use.
    pub slabs_full: u64,
    /// Slabs with some objects in use.
    pub slabs_partial: u64,
    /// Slabs with no object in use (at most [`KEEP_EMPTY`] after `trim`).
    pub slabs_empty: u64,
    /// Objects handed out and not freed.
    pub objects_in_use: u64,
    /// `objects_in_use × object_size`: bytes in objects, without the slab
    /// headers and the tail of each page that fits no object.
    pub bytes_in_use: u64,
    /// Size of one object slot (the type's size rounded up to 8 and to its
    /// alignment).
    pub object_size: u64,
    /// Objects in one slab.
    pub objects_per_slab: u64,
    /// Allocations made so far.
    pub allocations: u64,
}

/// A slab cache whose inconsistency [`SlabCache::check`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlabCorruption(pub &'static str);

/// A cache of fixed-size objects (untyped; see [`Slab`] for the typed one).
#[derive(Debug)]
pub struct SlabCache {
    source: PageSource,
    obj_size: usize,
    first_off: usize,
    capacity: u16,
    lists: [Option<NonNull<SlabHeader>>; 3],
    counts: [u64; 3],
    in_use: u64,
    free_objects: u64,
    /// Allocations promised by `reserve` and not made yet: automatic trims
    /// keep at least this many free objects.
    reserved: u64,
    allocations: u64,
}

// SAFETY: the cache exclusively owns every page on its lists (drawn from
// its own page source); nothing in it refers to thread-local state. Objects
// it handed out are owned by the caller, whose type decides their `Send`.
unsafe impl Send for SlabCache {}

/// Why a cache cannot be made for a size and alignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlabLayoutError {
    /// The alignment is zero, not a power of two, or above 4096.
    BadAlign,
    /// Not even one object fits in a page next to the header.
    TooLarge,
}

const fn round_up(x: usize, a: usize) -> usize {
    (x + a - 1) & !(a - 1)
}

impl SlabCache {
    /// A cache of objects of `size` bytes aligned to `align`, drawing pages
    /// from `source`.
    pub fn new(
        source: PageSource,
        size: usize,
        align: usize,
    ) -> Result<SlabCache, SlabLayoutError> {
        if align == 0 || !align.is_power_of_two() || align > PAGE_SIZE {
            return Err(SlabLayoutError::BadAlign);
        }
        let align = align.max(align_of::<FreeObj>());
        let obj_size = round_up(size.max(size_of::<FreeObj>()), align);
        let first_off = round_up(size_of::<SlabHeader>(), align);
        if first_off >= PAGE_SIZE || obj_size > PAGE_SIZE - first_off {
            return Err(SlabLayoutError::TooLarge);
        }
        let capacity = (PAGE_SIZE - first_off) / obj_size;
        Ok(SlabCache {
            source,
            obj_size,
            first_off,
            capacity: capacity as u16,
            lists: [None; 3],
            counts: [0; 3],
            in_use: 0,
            free_objects: 0,
            reserved: 0,
            allocations: 0,
        })
    }

    /// Statistics.
    pub fn stats(&self) -> SlabStats {
        SlabStats {
            pages: self.counts.iter().sum(),
            slabs_full: self.counts[LIST_FULL as usize],
            slabs_partial: self.counts[LIST_PARTIAL as usize],
            slabs_empty: self.counts[LIST_EMPTY as usize],
            objects_in_use: self.in_use,
            bytes_in_use: self.in_use * self.obj_size as u64,
            object_size: self.obj_size as u64,
            objects_per_slab: u64::from(self.capacity),
            allocations: self.allocations,
        }
    }

    /// The page source (its counts include pages of this cache only).
    pub fn page_source(&self) -> &PageSource {
        &self.source
    }

    /// Changes the page source's limit (fault injection).
    pub fn set_page_limit(&mut self, limit: Option<u64>) {
        self.source.set_limit(limit);
    }

    /// Objects that can be allocated without drawing a page.
    pub fn free_objects(&self) -> u64 {
        self.free_objects
    }

    fn hdr<'a>(s: NonNull<SlabHeader>) -> &'a mut SlabHeader {
        // SAFETY: every `NonNull<SlabHeader>` this module handles is the start
        // of a page on one of this cache's lists (or just drawn and being put
        // on one), written by `new_slab`; the cache is borrowed mutably by
        // every caller, so no other reference to the header is live.
        unsafe { &mut *s.as_ptr() }
    }

    fn unlink(&mut self, s: NonNull<SlabHeader>) {
        let h = Self::hdr(s);
        let (prev, next, list) = (h.prev, h.next, h.list as usize);
        match prev {
            Some(p) => Self::hdr(p).next = next,
            None => self.lists[list] = next,
        }
        if let Some(n) = next {
            Self::hdr(n).prev = prev;
        }
        self.counts[list] -= 1;
    }

    fn push(&mut self, s: NonNull<SlabHeader>, list: u8) {
        let head = self.lists[list as usize];
        {
            let h = Self::hdr(s);
            h.prev = None;
            h.next = head;
            h.list = list;
        }
        if let Some(n) = head {
            Self::hdr(n).prev = Some(s);
        }
        self.lists[list as usize] = Some(s);
        self.counts[list as usize] += 1;
    }

    /// Draws a page and puts it on the empty list.
    fn new_slab(&mut self) -> Result<NonNull<SlabHeader>, OutOfPages> {
        let page = self.source.alloc_page()?;
        let s = page.cast::<SlabHeader>();
        // SAFETY: `page` is a fresh, exclusively owned, 4096-aligned page of
        // 4096 bytes; the header (32 bytes, align 8) fits at its start.
        unsafe {
            s.as_ptr().write(SlabHeader {
                prev: None,
                next: None,
                free: None,
                in_use: 0,
                bump: 0,
                list: LIST_EMPTY,
            })
        };
        self.push(s, LIST_EMPTY);
        self.free_objects += u64::from(self.capacity);
        Ok(s)
    }

    fn release(&mut self, s: NonNull<SlabHeader>) {
        self.unlink(s);
        self.free_objects -= u64::from(self.capacity);
        // SAFETY: `s` is an empty slab (no object in use) now off every list:
        // its page came from `self.source` in `new_slab` and nothing refers
        // to it any more.
        unsafe { self.source.free_page(s.cast::<u8>()) };
    }

    /// Makes sure the next `n` allocations need no new page, drawing pages
    /// now; frees in between do not give those pages back (until `trim`).
    /// On failure the pages drawn by this call are returned: the cache is as
    /// before.
    pub fn reserve(&mut self, n: u64) -> Result<(), OutOfPages> {
        let mut drawn = 0u64;
        while self.free_objects < n {
            match self.new_slab() {
                Ok(_) => drawn += 1,
                Err(e) => {
                    for _ in 0..drawn {
                        // The slabs drawn above are the newest pushes onto the
                        // empty list, so they are at its head.
                        if let Some(s) = self.lists[LIST_EMPTY as usize] {
                            self.release(s);
                        }
                    }
                    return Err(e);
                }
            }
        }
        self.reserved = n;
        Ok(())
    }

    /// Ends any reservation and returns empty slabs beyond [`KEEP_EMPTY`]
    /// to the page source.
    pub fn trim(&mut self) {
        self.reserved = 0;
        self.trim_unreserved();
    }

    /// Returns empty slabs until at most `pages` remain (or no empty slab
    /// is left): how an operation that failed midway gives back exactly the
    /// pages it drew.
    pub fn trim_to(&mut self, pages: u64) {
        self.reserved = 0;
        while self.counts.iter().sum::<u64>() > pages {
            match self.lists[LIST_EMPTY as usize] {
                Some(s) => self.release(s),
                None => break,
            }
        }
    }

    fn trim_unreserved(&mut self) {
        while self.counts[LIST_EMPTY as usize] > KEEP_EMPTY
            && self.free_objects >= self.reserved + u64::from(self.capacity)
        {
            match self.lists[LIST_EMPTY as usize] {
                Some(s) => self.release(s),
                None => break,
            }
        }
    }

    /// One object slot (uninitialized), or `OutOfPages` with nothing changed.
    /// O(1).
    pub fn alloc(&mut self) -> Result<NonNull<u8>, OutOfPages> {
        let s = match self.lists[LIST_PARTIAL as usize] {
            Some(s) => s,
            None => match self.lists[LIST_EMPTY as usize] {
                Some(s) => s,
                None => self.new_slab()?,
            },
        };
        let (obj, full, was_empty) = {
            let h = Self::hdr(s);
            let obj = match h.free {
                Some(f) => {
                    // SAFETY: `f` is on this slab's free list, so it is a
                    // free object slot inside the page whose first word was
                    // written by `free` as the next link.
                    h.free = unsafe { f.as_ptr().read().next };
                    f.cast::<u8>()
                }
                None => {
                    let off = self.first_off + usize::from(h.bump) * self.obj_size;
                    h.bump += 1;
                    // SAFETY: `bump < capacity` (the slab is not full), so
                    // `off + obj_size <= PAGE_SIZE`: the slot is in the page.
                    unsafe { NonNull::new_unchecked(s.as_ptr().cast::<u8>().add(off)) }
                }
            };
            let was_empty = h.in_use == 0;
            h.in_use += 1;
            (obj, h.in_use == self.capacity, was_empty)
        };
        if full || was_empty {
            self.unlink(s);
            self.push(s, if full { LIST_FULL } else { LIST_PARTIAL });
        }
        self.in_use += 1;
        self.free_objects -= 1;
        self.reserved = self.reserved.saturating_sub(1);
        self.allocations += 1;
        Ok(obj)
    }

    /// Returns an object slot. O(1). May return its slab's page to the
    /// page source (see module docs).
    ///
    /// # Safety
    ///
    /// `obj` was returned by [`SlabCache::alloc`] on this cache and not freed
    /// since; nothing uses it any more.
    pub unsafe fn free(&mut self, obj: NonNull<u8>) {
        let addr = obj.as_ptr() as usize;
        let s = obj
            .as_ptr()
            .wrapping_sub(addr & (PAGE_SIZE - 1))
            .cast::<SlabHeader>();
        // SAFETY: `obj` lies in a slab page (caller's contract), pages are
        // 4096-aligned, so masking the low bits gives the page start, where
        // the header is; a page address is never null.
        let s = unsafe { NonNull::new_unchecked(s) };
        let (was_full, empty) = {
            let h = Self::hdr(s);
            let f = obj.cast::<FreeObj>();
            // SAFETY: the slot is at least 8 bytes, 8-aligned, and no longer
            // used (caller's contract): it now holds the free-list link.
            unsafe { f.as_ptr().write(FreeObj { next: h.free }) };
            h.free = Some(f);
            let was_full = h.in_use == self.capacity;
            h.in_use -= 1;
            (was_full, h.in_use == 0)
        };
        self.in_use -= 1;
        self.free_objects += 1;
        if empty {
            self.unlink(s);
            self.push(s, LIST_EMPTY);
            self.trim_unreserved();
        } else if was_full {
            self.unlink(s);
            self.push(s, LIST_PARTIAL);
        }
    }

    /// Verifies the cache's bookkeeping: list membership matches each slab's
    /// fill, counts add up, every free-list entry is a distinct object slot
    /// of its own slab. O(pages × objects per slab).
    pub fn check(&self) -> Result<(), SlabCorruption> {
        let mut in_use = 0u64;
        let mut free = 0u64;
        for list in [LIST_PARTIAL, LIST_FULL, LIST_EMPTY] {
            let mut n = 0u64;
            let mut prev: Option<NonNull<SlabHeader>> = None;
            let mut cur = self.lists[list as usize];
            while let Some(s) = cur {
                n += 1;
                if n > self.source.live() {
                    return Err(SlabCorruption("slab list longer than pages drawn"));
                }
                let h = Self::hdr(s);
                if h.list != list || h.prev != prev {
                    return Err(SlabCorruption("slab list links or tag wrong"));
                }
                let ok = match list {
                    LIST_FULL => h.in_use == self.capacity,
                    LIST_EMPTY => h.in_use == 0,
                    _ => h.in_use > 0 && h.in_use < self.capacity,
                };
                if !ok || h.bump > self.capacity || h.in_use > h.bump {
                    return Err(SlabCorruption("slab fill does not match its list"));
                }
                let mut seen = [0u64; PAGE_SIZE / 8 / 64];
                let mut nfree = 0u16;
                let mut f = h.free;
                while let Some(o) = f {
                    let off = o.as_ptr() as usize - s.as_ptr() as usize;
                    if off < self.first_off
                        || off >= PAGE_SIZE
                        || !(off - self.first_off).is_multiple_of(self.obj_size)
                    {
                        return Err(SlabCorruption("free object outside its slab"));
                    }
                    let idx = (off - self.first_off) / self.obj_size;
                    if idx >= usize::from(h.bump) {
                        return Err(SlabCorruption("free object beyond the bump index"));
                    }
                    if seen[idx / 64] & (1 << (idx % 64)) != 0 {
                        return Err(SlabCorruption("object twice on a free list"));
                    }
                    seen[idx / 64] |= 1 << (idx % 64);
                    nfree += 1;
                    // SAFETY: `o` was just checked to be a slot of this slab
                    // that is on its free list, so its first word is a link.
                    f = unsafe { o.as_ptr().read().next };
                }
                if nfree + h.in_use != h.bump {
                    return Err(SlabCorruption("free list length wrong"));
                }
                in_use += u64::from(h.in_use);
                free += u64::from(self.capacity - h.in_use);
                prev = Some(s);
                cur = h.next;
            }
            if n != self.counts[list as usize] {
                return Err(SlabCorruption("slab count wrong"));
            }
        }
        if in_use != self.in_use || free != self.free_objects {
            return Err(SlabCorruption("object counts wrong"));
        }
        if self.counts.iter().sum::<u64>() != self.source.live() {
            return Err(SlabCorruption("pages drawn differ from slabs"));
        }
        Ok(())
    }
}

impl Drop for SlabCache {
    /// Returns every page, including those of objects still in use (which
    /// are not dropped: a cache holds plain slots).
    fn drop(&mut self) {
        for list in 0..3 {
            while let Some(s) = self.lists[list] {
                self.unlink(s);
                // SAFETY: `s` was on a list of this cache, so it is a page from
                // `self.source`; the cache is going away, and holders of its
                // objects were told (`Slab` docs) that dropping frees them.
                unsafe { self.source.free_page(s.cast::<u8>()) };
            }
        }
    }
}

/// A typed slab cache of `T`.
///
/// `alloc` moves a value into a slot and returns a pointer to it; `free`
/// drops it and returns the slot. Dropping the `Slab` returns all its pages;
/// values still allocated then are **not** dropped (their memory is gone), so
/// holders must not use their pointers after that.
#[derive(Debug)]
pub struct Slab<T> {
    cache: SlabCache,
    _t: PhantomData<T>,
}

// SAFETY: the slab owns its pages (see `SlabCache`); it hands out `T`s, so it
// may cross threads when `T` may.
unsafe impl<T: Send> Send for Slab<T> {}

impl<T> Slab<T> {
    const FITS: () = assert!(
        align_of::<T>() <= 64 && size_of::<T>() <= PAGE_SIZE / 2,
        "slab objects must be at most 2 KiB and 64-aligned"
    );

    /// A slab of `T` drawing pages from `source`. (A `T` larger than 2 KiB or
    /// aligned beyond 64 is a compile-time error.)
    pub fn new(source: PageSource) -> Slab<T> {
        #[allow(clippy::let_unit_value)]
        let () = Self::FITS;
        let cache = SlabCache::new(source, size_of::<T>(), align_of::<T>())
            .expect("FITS guarantees the size and alignment fit a page");
        Slab {
            cache,
            _t: PhantomData,
        }
    }

    /// Moves `value` into a new slot; O(1). On `OutOfPages` the value is
    /// dropped and nothing changed.
    pub fn alloc(&mut self, value: T) -> Result<NonNull<T>, OutOfPages> {
        let p = self.cache.alloc()?.cast::<T>();
        // SAFETY: the slot is at least `size_of::<T>()` bytes, aligned for
        // `T` (cache made with T's layout) and exclusively ours.
        unsafe { p.as_ptr().write(value) };
        Ok(p)
    }

    /// Drops the value and returns its slot; O(1).
    ///
    /// # Safety
    ///
    /// `p` came from [`Slab::alloc`] on this slab, was not freed since, and
    /// nothing uses it any more.
    pub unsafe fn free(&mut self, p: NonNull<T>) {
        // SAFETY: `p` holds a live `T` written by `alloc` (caller's contract).
        unsafe { p.as_ptr().drop_in_place() };
        // SAFETY: the slot came from this cache's `alloc` (caller's contract).
        unsafe { self.cache.free(p.cast::<u8>()) };
    }

    /// See [`SlabCache::reserve`].
    pub fn reserve(&mut self, n: u64) -> Result<(), OutOfPages> {
        self.cache.reserve(n)
    }

    /// See [`SlabCache::trim`].
    pub fn trim(&mut self) {
        self.cache.trim()
    }

    /// See [`SlabCache::trim_to`].
    pub fn trim_to(&mut self, pages: u64) {
        self.cache.trim_to(pages)
    }

    /// Statistics.
    pub fn stats(&self) -> SlabStats {
        self.cache.stats()
    }

    /// The untyped cache (for its page source and checks).
    pub fn cache(&self) -> &SlabCache {
        &self.cache
    }

    /// Changes the page source's limit (fault injection).
    pub fn set_page_limit(&mut self, limit: Option<u64>) {
        self.cache.set_page_limit(limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;
    use std::vec::Vec;

    #[derive(Debug, Clone, Copy, PartialEq)]
    struct Rec {
        a: u64,
        b: u64,
        c: u32,
    }

    #[test]
    fn layout_and_capacity() {
        let s: Slab<Rec> = Slab::new(PageSource::new());
        let st = s.stats();
        assert_eq!(st.object_size, 24);
        assert_eq!(st.objects_per_slab, (4096 - 32) / 24);
        assert_eq!(st.pages, 0);
        let c = SlabCache::new(PageSource::new(), 1, 1).expect("tiny fits");
        assert_eq!(c.stats().object_size, 8);
        assert_eq!(
            SlabCache::new(PageSource::new(), 4096, 8).err(),
            Some(SlabLayoutError::TooLarge)
        );
        assert_eq!(
            SlabCache::new(PageSource::new(), 8, 3).err(),
            Some(SlabLayoutError::BadAlign)
        );
    }

    #[test]
    fn fill_drain_returns_pages() {
        let mut s: Slab<Rec> = Slab::new(PageSource::new());
        let per = s.stats().objects_per_slab;
        let mut v = Vec::new();
        for i in 0..(per * 3 + 5) {
            let r = Rec {
                a: i,
                b: !i,
                c: i as u32,
            };
            v.push((s.alloc(r).expect("unlimited source"), r));
        }
        s.cache().check().expect("consistent after fill");
        assert_eq!(s.stats().pages, 4);
        assert_eq!(s.stats().slabs_full, 3);
        assert_eq!(s.stats().slabs_partial, 1);
        // No two objects overlap and each kept its value.
        let mut addrs: Vec<usize> = v.iter().map(|(p, _)| p.as_ptr() as usize).collect();
        addrs.sort_unstable();
        for w in addrs.windows(2) {
            assert!(w[1] - w[0] >= 24);
        }
        for (p, r) in &v {
            // SAFETY: live object of this slab.
            assert_eq!(unsafe { *p.as_ptr() }, *r);
        }
        for (p, _) in v.drain(..) {
            // SAFETY: allocated above, freed once.
            unsafe { s.free(p) };
        }
        s.cache().check().expect("consistent after drain");
        let st = s.stats();
        assert_eq!(st.objects_in_use, 0);
        assert_eq!(st.pages, KEEP_EMPTY);
        assert_eq!(s.cache().page_source().stats().peak, 4);
    }

    #[test]
    fn limit_fails_cleanly_and_reserve_rolls_back() {
        let mut s: Slab<Rec> = Slab::new(PageSource::with_limit(2));
        let per = s.stats().objects_per_slab;
        assert_eq!(s.reserve(per * 3), Err(OutOfPages));
        assert_eq!(s.stats().pages, 0);
        s.reserve(per * 2).expect("two pages allowed");
        assert_eq!(s.stats().slabs_empty, 2);
        let mut v = Vec::new();
        for i in 0..per * 2 {
            v.push(s.alloc(Rec { a: i, b: 0, c: 0 }).expect("reserved"));
        }
        let before = s.stats();
        assert_eq!(s.alloc(Rec { a: 0, b: 0, c: 0 }), Err(OutOfPages));
        assert_eq!(s.stats(), before);
        s.cache().check().expect("consistent");
        for p in v {
            // SAFETY: allocated above, freed once.
            unsafe { s.free(p) };
        }
        assert_eq!(s.stats().pages, 1);
    }

    #[test]
    fn drop_frees_pages_and_values() {
        use std::rc::Rc;
        let token = Rc::new(());
        let mut s: Slab<Rc<()>> = Slab::new(PageSource::new());
        let p = s.alloc(Rc::clone(&token)).expect("unlimited");
        assert_eq!(Rc::strong_count(&token), 2);
        // SAFETY: allocated above, freed once.
        unsafe { s.free(p) };
        assert_eq!(Rc::strong_count(&token), 1);
    }

    proptest! {
        #[test]
        fn random_alloc_free_keeps_invariants(ops in proptest::collection::vec((any::<bool>(), any::<u16>()), 1..2000)) {
            let mut s: Slab<Rec> = Slab::new(PageSource::new());
            let mut live: Vec<(NonNull<Rec>, Rec)> = Vec::new();
            let mut n = 0u64;
            for (do_alloc, pick) in ops {
                if do_alloc || live.is_empty() {
                    let r = Rec { a: n, b: n * 7, c: n as u32 };
                    n += 1;
                    live.push((s.alloc(r).expect("unlimited"), r));
                } else {
                    let (p, r) = live.swap_remove(usize::from(pick) % live.len());
                    // SAFETY: live object of this slab.
                    prop_assert_eq!(unsafe { *p.as_ptr() }, r);
                    // SAFETY: freed once.
                    unsafe { s.free(p) };
                }
                let st = s.stats();
                prop_assert_eq!(st.objects_in_use, live.len() as u64);
                prop_assert!(st.slabs_empty <= KEEP_EMPTY);
                prop_assert_eq!(st.pages, s.cache().page_source().live());
            }
            s.cache().check().map_err(|e| TestCaseError::fail(e.0))?;
            let set: BTreeSet<usize> = live.iter().map(|(p, _)| p.as_ptr() as usize).collect();
            prop_assert_eq!(set.len(), live.len());
            for (p, r) in &live {
                // SAFETY: live object of this slab.
                prop_assert_eq!(unsafe { *p.as_ptr() }, *r);
            }
        }
    }
}
