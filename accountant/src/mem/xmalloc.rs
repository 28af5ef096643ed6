//! A general-purpose allocator in the manner of Xen's xmalloc: the baseline
//! the slab is compared with.
//!
//! # Design
//!
//! Every allocation is a *block* with a 16-byte header in front of the
//! caller's bytes; requests are rounded up to 16 bytes and a block is at
//! least 32 bytes (a free block keeps two free-list links after its header).
//! So a 40-byte record costs a 64-byte block: the per-allocation overhead the
//! page trackers are meant to show.
//!
//! Blocks are carved from 4 KiB pages of a [`PageSource`]:
//!
//! ```text
//! 0          16                                                  4096
//! +----------+-----------------+------------------+-- ... --------+
//! | page hdr | hdr | payload   | hdr | (free) links |              |
//! +----------+-----------------+------------------+-- ... --------+
//! page hdr: links of the list of all pages (to return them on drop)
//! block hdr: block size, size of the previous block in the page, free flag
//! ```
//!
//! Free blocks sit on *segregated free lists*, one per block size (32 to
//! 4080 bytes in steps of 16: 255 exact classes), with a 256-bit map of the
//! non-empty ones: `alloc` takes the first free block of the smallest
//! sufficient class (one bit scan), splitting off the rest when at least 32
//! bytes remain. This is TLSF with a single level, which suffices because no
//! block exceeds a page. `free` **coalesces** with both physical neighbours
//! (the header's previous-block size is a boundary tag), so a page whose
//! blocks are all free becomes one free block and goes back to the page
//! source at once. Both are O(1). Requests above 4064 bytes or aligned
//! beyond 16 are refused (Xen hands those whole pages; no tracker needs it).

use core::alloc::Layout;
use core::mem::size_of;
use core::ptr::NonNull;

use super::page::{OutOfPages, PageSource, PAGE_SIZE};

/// Bytes of header in front of every allocation.
pub const HEADER: usize = 16;
/// Allocation sizes are rounded up to a multiple of this.
pub const GRANULE: usize = 16;
/// The smallest block (header included).
pub const MIN_BLOCK: usize = 32;
const PAGE_HDR: usize = 16;
const MAX_BLOCK: usize = PAGE_SIZE - PAGE_HDR;
/// The largest request served.
pub const MAX_REQUEST: usize = MAX_BLOCK - HEADER;
const CLASSES: usize = PAGE_SIZE / GRANULE;

/// Why an allocation failed; nothing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XmallocError {
    /// The page source refused a page.
    OutOfPages,
    /// More than [`MAX_REQUEST`] bytes.
    TooLarge,
    /// Alignment above 16.
    BadAlign,
}

impl From<OutOfPages> for XmallocError {
    fn from(_: OutOfPages) -> Self {
        XmallocError::OutOfPages
    }
}

/// Statistics of an [`Xmalloc`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XmallocStats {
    /// Pages drawn from the page source.
    pub pages: u64,
    /// Live allocations.
    pub live: u64,
    /// Bytes in live blocks, headers and rounding included.
    pub bytes: u64,
    /// Bytes in free blocks (headers included).
    pub free_bytes: u64,
    /// Allocations made so far.
    pub allocations: u64,
}

/// An xmalloc heap inconsistency found by [`Xmalloc::check`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XmallocCorruption(pub &'static str);

#[repr(C)]
struct PageHdr {
    prev: Option<NonNull<PageHdr>>,
    next: Option<NonNull<PageHdr>>,
}

#[repr(C)]
struct BlockHdr {
    /// Block size, header included; a multiple of 16.
    size: u32,
    /// Size of the physically previous block in the page; 0 for the first.
    prev_size: u32,
    /// 1 when free.
    free: u32,
    _pad: u32,
    // Free blocks continue with `FreeLinks`.
}

#[repr(C)]
struct FreeLinks {
    prev: Option<NonNull<BlockHdr>>,
    next: Option<NonNull<BlockHdr>>,
}

const _: () = assert!(size_of::<BlockHdr>() == HEADER && size_of::<PageHdr>() == PAGE_HDR);
const _: () = assert!(HEADER + size_of::<FreeLinks>() == MIN_BLOCK);

/// The baseline allocator (see module docs).
#[derive(Debug)]
pub struct Xmalloc {
    source: PageSource,
    pages: Option<NonNull<PageHdr>>,
    heads: [Option<NonNull<BlockHdr>>; CLASSES],
    bitmap: [u64; CLASSES / 64],
    live: u64,
    bytes: u64,
    allocations: u64,
}

// SAFETY: the heap exclusively owns every page on its list (from its own
// page source); allocations are owned by their callers.
unsafe impl Send for Xmalloc {}

fn blk<'a>(b: NonNull<BlockHdr>) -> &'a mut BlockHdr {
    // SAFETY: every block pointer this module handles points at a block
    // header inside a page of the heap that owns it (written by `new_page`
    // or a split), and callers hold that heap mutably, so no other reference
    // to the header is live.
    unsafe { &mut *b.as_ptr() }
}

fn links<'a>(b: NonNull<BlockHdr>) -> &'a mut FreeLinks {
    // SAFETY: only called on free blocks, which are at least MIN_BLOCK bytes:
    // the links follow the 16-byte header inside the block.
    unsafe { &mut *b.as_ptr().add(1).cast::<FreeLinks>() }
}

fn page_off(b: NonNull<BlockHdr>) -> usize {
    b.as_ptr() as usize & (PAGE_SIZE - 1)
}

fn offset(b: NonNull<BlockHdr>, by: isize) -> NonNull<BlockHdr> {
    let p = b
        .as_ptr()
        .cast::<u8>()
        .wrapping_offset(by)
        .cast::<BlockHdr>();
    // SAFETY: callers offset within the same page (checked against the page
    // bounds first), whose addresses are not null.
    unsafe { NonNull::new_unchecked(p) }
}

impl Xmalloc {
    /// A heap drawing pages from `source`.
    pub fn new(source: PageSource) -> Xmalloc {
        Xmalloc {
            source,
            pages: None,
            heads: [None; CLASSES],
            bitmap: [0; CLASSES / 64],
            live: 0,
            bytes: 0,
            allocations: 0,
        }
    }

    /// The block size a request of `size` bytes takes.
    pub const fn block_size(size: usize) -> usize {
        let b = ((size + GRANULE - 1) & !(GRANULE - 1)) + HEADER;
        if b < MIN_BLOCK {
            MIN_BLOCK
        } else {
            b
        }
    }

    /// Statistics.
    pub fn stats(&self) -> XmallocStats {
        XmallocStats {
            pages: self.source.live(),
            live: self.live,
            bytes: self.bytes,
            free_bytes: self.source.live() * MAX_BLOCK as u64 - self.bytes,
            allocations: self.allocations,
        }
    }

    /// The page source.
    pub fn page_source(&self) -> &PageSource {
        &self.source
    }

    /// Changes the page source's limit (fault injection).
    pub fn set_page_limit(&mut self, limit: Option<u64>) {
        self.source.set_limit(limit);
    }

    fn insert_free(&mut self, b: NonNull<BlockHdr>) {
        let c = blk(b).size as usize / GRANULE;
        let head = self.heads[c];
        blk(b).free = 1;
        *links(b) = FreeLinks {
            prev: None,
            next: head,
        };
        if let Some(h) = head {
            links(h).prev = Some(b);
        }
        self.heads[c] = Some(b);
        self.bitmap[c / 64] |= 1 << (c % 64);
    }

    fn unlink_free(&mut self, b: NonNull<BlockHdr>) {
        let c = blk(b).size as usize / GRANULE;
        let FreeLinks { prev, next } = *links(b);
        match prev {
            Some(p) => links(p).next = next,
            None => self.heads[c] = next,
        }
        if let Some(n) = next {
            links(n).prev = prev;
        }
        if self.heads[c].is_none() {
            self.bitmap[c / 64] &= !(1 << (c % 64));
        }
        blk(b).free = 0;
    }

    /// First non-empty class at or above `c`.
    fn find_class(&self, c: usize) -> Option<usize> {
        let mut w = c / 64;
        let mut bits = self.bitmap[w] & (!0u64 << (c % 64));
        loop {
            if bits != 0 {
                return Some(w * 64 + bits.trailing_zeros() as usize);
            }
            w += 1;
            if w == self.bitmap.len() {
                return None;
            }
            bits = self.bitmap[w];
        }
    }

    fn new_page(&mut self) -> Result<NonNull<BlockHdr>, OutOfPages> {
        let page = self.source.alloc_page()?;
        let ph = page.cast::<PageHdr>();
        // SAFETY: a fresh exclusively owned 4096-byte page; the page header
        // and the first block header fit at offsets 0 and 16.
        unsafe {
            ph.as_ptr().write(PageHdr {
                prev: None,
                next: self.pages,
            });
        }
        if let Some(n) = self.pages {
            // SAFETY: `n` is the first page on our list, so a live page of ours.
            unsafe { (*n.as_ptr()).prev = Some(ph) };
        }
        self.pages = Some(ph);
        let b = offset(page.cast::<BlockHdr>(), PAGE_HDR as isize);
        // SAFETY: offset 16 of our fresh page, 16-aligned, room for 4080 bytes.
        unsafe {
            b.as_ptr().write(BlockHdr {
                size: MAX_BLOCK as u32,
                prev_size: 0,
                free: 0,
                _pad: 0,
            })
        };
        Ok(b)
    }

    fn release_page(&mut self, b: NonNull<BlockHdr>) {
        let ph = offset(b, -(PAGE_HDR as isize)).cast::<PageHdr>();
        // SAFETY: `b` is the single block spanning a page of ours, so the
        // page header precedes it; we hold the heap mutably.
        let (prev, next) = unsafe { ((*ph.as_ptr()).prev, (*ph.as_ptr()).next) };
        match prev {
            // SAFETY: `p` is on our page list, a live page of ours.
            Some(p) => unsafe { (*p.as_ptr()).next = next },
            None => self.pages = next,
        }
        if let Some(n) = next {
            // SAFETY: `n` is on our page list, a live page of ours.
            unsafe { (*n.as_ptr()).prev = prev };
        }
        // SAFETY: the page came from `self.source` in `new_page`, is off the
        // list and has no live block.
        unsafe { self.source.free_page(ph.cast::<u8>()) };
    }

    /// Allocates `layout.size()` bytes aligned to `layout.align()` (at most
    /// 16). O(1). On error nothing changed.
    pub fn alloc(&mut self, layout: Layout) -> Result<NonNull<u8>, XmallocError> {
        if layout.align() > GRANULE {
            return Err(XmallocError::BadAlign);
        }
        if layout.size() > MAX_REQUEST {
            return Err(XmallocError::TooLarge);
        }
        let need = Self::block_size(layout.size());
        let b = match self.find_class(need / GRANULE) {
            Some(c) => {
                let b = self.heads[c].expect("the bitmap marks only non-empty classes");
                self.unlink_free(b);
                b
            }
            None => self.new_page()?,
        };
        let size = blk(b).size as usize;
        if size - need >= MIN_BLOCK {
            blk(b).size = need as u32;
            let r = offset(b, need as isize);
            let rest = size - need;
            // SAFETY: `r` lies inside `b`'s old extent, in the same page,
            // 16-aligned, with `rest >= 32` bytes.
            unsafe {
                r.as_ptr().write(BlockHdr {
                    size: rest as u32,
                    prev_size: need as u32,
                    free: 0,
                    _pad: 0,
                })
            };
            if page_off(r) + rest < PAGE_SIZE {
                blk(offset(r, rest as isize)).prev_size = rest as u32;
            }
            self.insert_free(r);
        }
        self.live += 1;
        self.bytes += u64::from(blk(b).size);
        self.allocations += 1;
        Ok(offset(b, HEADER as isize).cast::<u8>())
    }

    /// Frees an allocation, coalescing with free neighbours; a page left
    /// with no allocation goes back to the page source. O(1).
    ///
    /// # Safety
    ///
    /// `p` came from [`Xmalloc::alloc`] on this heap, was not freed since,
    /// and nothing uses it any more.
    pub unsafe fn free(&mut self, p: NonNull<u8>) {
        let mut b = offset(p.cast::<BlockHdr>(), -(HEADER as isize));
        self.live -= 1;
        self.bytes -= u64::from(blk(b).size);
        let size = blk(b).size as usize;
        if page_off(b) + size < PAGE_SIZE {
            let n = offset(b, size as isize);
            if blk(n).free != 0 {
                self.unlink_free(n);
                blk(b).size += blk(n).size;
            }
        }
        let prev_size = blk(b).prev_size as usize;
        if prev_size != 0 {
            let pb = offset(b, -(prev_size as isize));
            if blk(pb).free != 0 {
                self.unlink_free(pb);
                blk(pb).size += blk(b).size;
                b = pb;
            }
        }
        let size = blk(b).size as usize;
        if size == MAX_BLOCK {
            self.release_page(b);
            return;
        }
        if page_off(b) + size < PAGE_SIZE {
            blk(offset(b, size as isize)).prev_size = size as u32;
        }
        self.insert_free(b);
    }

    /// Moves `value` into a new allocation.
    pub fn alloc_value<T>(&mut self, value: T) -> Result<NonNull<T>, XmallocError> {
        let p = self.alloc(Layout::new::<T>())?.cast::<T>();
        // SAFETY: the allocation has T's size and alignment (checked by
        // `alloc`) and is exclusively ours.
        unsafe { p.as_ptr().write(value) };
        Ok(p)
    }

    /// Drops and frees a value from [`Xmalloc::alloc_value`].
    ///
    /// # Safety
    ///
    /// As for [`Xmalloc::free`]; `p` holds a live `T`.
    pub unsafe fn free_value<T>(&mut self, p: NonNull<T>) {
        // SAFETY: `p` holds a live T (caller's contract).
        unsafe { p.as_ptr().drop_in_place() };
        // SAFETY: came from `alloc` on this heap (caller's contract).
        unsafe { self.free(p.cast::<u8>()) };
    }

    /// Verifies the heap: blocks tile every page exactly, boundary tags
    /// agree, no two free blocks are adjacent (coalescing), the free lists
    /// hold exactly the free blocks in their classes, and the counts add up.
    pub fn check(&self) -> Result<(), XmallocCorruption> {
        let mut pages = 0u64;
        let mut used = 0u64;
        let mut bytes = 0u64;
        let mut free_blocks = 0u64;
        let mut cur = self.pages;
        while let Some(ph) = cur {
            pages += 1;
            if pages > self.source.live() {
                return Err(XmallocCorruption("page list longer than pages drawn"));
            }
            let mut off = PAGE_HDR;
            let mut prev_size = 0u32;
            let mut prev_free = false;
            while off < PAGE_SIZE {
                let b = offset(ph.cast::<BlockHdr>(), off as isize);
                let h = blk(b);
                if !(h.size as usize).is_multiple_of(GRANULE)
                    || (h.size as usize) < MIN_BLOCK
                    || off + h.size as usize > PAGE_SIZE
                {
                    return Err(XmallocCorruption("bad block size"));
                }
                if h.prev_size != prev_size {
                    return Err(XmallocCorruption("boundary tag wrong"));
                }
                let free = h.free != 0;
                if free && prev_free {
                    return Err(XmallocCorruption("adjacent free blocks"));
                }
                if free {
                    free_blocks += 1;
                } else {
                    used += 1;
                    bytes += u64::from(h.size);
                }
                prev_free = free;
                prev_size = h.size;
                off += h.size as usize;
            }
            if prev_free && prev_size as usize == MAX_BLOCK {
                return Err(XmallocCorruption("wholly free page kept"));
            }
            // SAFETY: `ph` is on our page list, a live page of ours.
            cur = unsafe { (*ph.as_ptr()).next };
        }
        let mut listed = 0u64;
        for (c, head) in self.heads.iter().enumerate() {
            let mut prev = None;
            let mut cur = *head;
            if (self.bitmap[c / 64] >> (c % 64)) & 1 != u64::from(head.is_some()) {
                return Err(XmallocCorruption("bitmap disagrees with free list"));
            }
            while let Some(b) = cur {
                listed += 1;
                if listed > free_blocks {
                    return Err(XmallocCorruption("free lists longer than free blocks"));
                }
                if blk(b).free == 0 || blk(b).size as usize / GRANULE != c || links(b).prev != prev
                {
                    return Err(XmallocCorruption("free list entry wrong"));
                }
                prev = Some(b);
                cur = links(b).next;
            }
        }
        if listed != free_blocks
            || pages != self.source.live()
            || used != self.live
            || bytes != self.bytes
        {
            return Err(XmallocCorruption("counts disagree"));
        }
        Ok(())
    }
}

impl Drop for Xmalloc {
    /// Returns every page; live allocations are not dropped.
    fn drop(&mut self) {
        while let Some(ph) = self.pages {
            // SAFETY: `ph` is on our page list, a live page of ours.
            self.pages = unsafe { (*ph.as_ptr()).next };
            // SAFETY: the page came from `self.source`; the heap is going
            // away (allocations die with it, as documented on `free`).
            unsafe { self.source.free_page(ph.cast::<u8>()) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    #[test]
    fn sizes_and_rounding() {
        assert_eq!(Xmalloc::block_size(1), 32);
        assert_eq!(Xmalloc::block_size(16), 32);
        assert_eq!(Xmalloc::block_size(17), 48);
        assert_eq!(Xmalloc::block_size(40), 64);
        let mut x = Xmalloc::new(PageSource::new());
        let p = x
            .alloc(Layout::from_size_align(40, 8).expect("valid"))
            .expect("fits");
        assert_eq!(p.as_ptr() as usize % 16, 0);
        assert_eq!(x.stats().bytes, 64);
        assert_eq!(
            x.alloc(Layout::from_size_align(MAX_REQUEST + 1, 8).expect("valid")),
            Err(XmallocError::TooLarge)
        );
        assert_eq!(
            x.alloc(Layout::from_size_align(8, 32).expect("valid")),
            Err(XmallocError::BadAlign)
        );
        let big = x
            .alloc(Layout::from_size_align(MAX_REQUEST, 8).expect("valid"))
            .expect("fits");
        assert_eq!(x.stats().pages, 2);
        // SAFETY: both allocated above, freed once.
        unsafe {
            x.free(big);
            x.free(p);
        }
        assert_eq!(x.stats().pages, 0);
        x.check().expect("consistent");
    }

    #[test]
    fn limit_fails_cleanly() {
        let mut x = Xmalloc::new(PageSource::with_limit(1));
        let l = Layout::from_size_align(3000, 8).expect("valid");
        let a = x.alloc(l).expect("first page");
        let before = x.stats();
        assert_eq!(x.alloc(l), Err(XmallocError::OutOfPages));
        assert_eq!(x.stats(), before);
        x.check().expect("consistent");
        // SAFETY: allocated above.
        unsafe { x.free(a) };
    }

    proptest! {
        #[test]
        fn random_alloc_free_no_overlap(ops in proptest::collection::vec((any::<bool>(), 1usize..1200, any::<u16>()), 1..1500)) {
            let mut x = Xmalloc::new(PageSource::new());
            let mut live: Vec<(NonNull<u8>, usize, u8)> = Vec::new();
            let mut tag = 0u8;
            for (do_alloc, size, pick) in ops {
                if do_alloc || live.is_empty() {
                    let p = x.alloc(Layout::from_size_align(size, 8).expect("valid")).expect("unlimited");
                    tag = tag.wrapping_add(1);
                    // SAFETY: `size` bytes were just allocated for us.
                    unsafe { p.as_ptr().write_bytes(tag, size) };
                    live.push((p, size, tag));
                } else {
                    let (p, size, t) = live.swap_remove(usize::from(pick) % live.len());
                    // SAFETY: a live allocation of `size` bytes.
                    let s = unsafe { core::slice::from_raw_parts(p.as_ptr(), size) };
                    prop_assert!(s.iter().all(|&b| b == t), "allocation overwritten");
                    // SAFETY: freed once.
                    unsafe { x.free(p) };
                }
                prop_assert_eq!(x.stats().live, live.len() as u64);
            }
            x.check().map_err(|e| TestCaseError::fail(e.0))?;
            let mut spans: Vec<(usize, usize)> = live.iter().map(|(p, s, _)| (p.as_ptr() as usize, *s)).collect();
            spans.sort_unstable();
            for w in spans.windows(2) {
                prop_assert!(w[0].0 + w[0].1 + HEADER <= w[1].0, "overlap");
            }
            let want: u64 = live.iter().map(|(_, s, _)| Xmalloc::block_size(*s) as u64).sum();
            // A block keeps a tail under MIN_BLOCK it could not split off.
            let got = x.stats().bytes;
            prop_assert!(want <= got && got <= want + (GRANULE as u64) * live.len() as u64, "want {} got {} live {}", want, got, live.len());
            for (p, _, _) in live.drain(..) {
                // SAFETY: freed once.
                unsafe { x.free(p) };
            }
            prop_assert_eq!(x.stats().pages, 0);
        }
    }
}
