//! Host memory regions that back guest RAM and device memory.
//!
//! A [`HostMem`] is an anonymous `mmap` owned by the hypervisor. Guest vCPUs
//! write into it concurrently (it is mapped into their VMs through memslots),
//! so the host only touches it through bounds-checked volatile or atomic
//! accessors: a racing guest can make the host read a stale or torn value,
//! never make it read or write outside the region.

use std::sync::atomic::{AtomicU64, Ordering};

/// Size of a page (and of an I/O memory frame).
pub const PAGE_SIZE: u64 = 4096;

/// Why a region could not be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemError {
    /// Size zero or not a multiple of [`PAGE_SIZE`].
    BadSize(u64),
    /// `mmap` failed with this errno.
    Mmap(i32),
}

impl std::fmt::Display for MemError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MemError::BadSize(s) => write!(f, "bad region size {s:#x}"),
            MemError::Mmap(e) => write!(f, "mmap failed: errno {e}"),
        }
    }
}

impl std::error::Error for MemError {}

/// An anonymous shared mapping, `MAP_NORESERVE`: pages cost host memory only
/// once something touches them, so a several-GiB framebuffer BAR is cheap
/// until painted.
#[derive(Debug)]
pub struct HostMem {
    ptr: *mut u8,
    len: u64,
}

// SAFETY: the mapping is plain memory owned by this value for its whole life
// (unmapped only in `Drop`) and not tied to the creating thread. Every host
// access is bounds-checked and goes through raw pointers, never a `&`/`&mut`
// into the mapping: byte-wise volatile reads and writes (`read`, `write`),
// `write_bytes` (`fill`, used to initialise memory before a guest runs on
// it), and `AtomicU64` operations on aligned words (`fetch_or_u64`,
// `load_u64_atomic`). Words the host shares with other host threads (event
// words) are only accessed with the atomic accessors; the guest may race
// with any access, which can yield stale or torn values but never an
// out-of-bounds access.
unsafe impl Send for HostMem {}
// SAFETY: as for `Send`: `&HostMem` only gives the bounds-checked raw-pointer
// accessors above, so sharing it between threads creates no references into
// the mapping; host threads that race on a word use its atomic accessors.
unsafe impl Sync for HostMem {}

impl HostMem {
    /// Maps `len` bytes (a non-zero multiple of [`PAGE_SIZE`]), zero-filled.
    pub fn new(len: u64) -> Result<HostMem, MemError> {
        if len == 0 || !len.is_multiple_of(PAGE_SIZE) || usize::try_from(len).is_err() {
            return Err(MemError::BadSize(len));
        }
        // SAFETY: an anonymous mapping at a kernel-chosen address aliases no
        // existing Rust object; the arguments are checked above (len > 0,
        // fits usize) and the result is checked against MAP_FAILED below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(MemError::Mmap(
                std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
            ));
        }
        Ok(HostMem {
            ptr: ptr.cast(),
            len,
        })
    }

    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Always false: a region holds at least one page.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Host virtual address of byte `off` (for a memslot's `userspace_addr`),
    /// or `None` beyond the region.
    pub fn host_addr(&self, off: u64) -> Option<u64> {
        (off < self.len).then(|| self.ptr as u64 + off)
    }

    fn check(&self, off: u64, n: u64) -> Option<*mut u8> {
        let end = off.checked_add(n)?;
        (end <= self.len).then(|| {
            // SAFETY: `off + n <= len`, so the offset stays inside the mapping
            // established in `new`.
            unsafe { self.ptr.add(off as usize) }
        })
    }

    /// Copies `buf.len()` bytes from `off`; `None` if out of bounds.
    pub fn read(&self, off: u64, buf: &mut [u8]) -> Option<()> {
        let p = self.check(off, buf.len() as u64)?;
        for (i, b) in buf.iter_mut().enumerate() {
            // SAFETY: `check` proved `off..off+len` lies in the mapping; a
            // volatile byte read tolerates concurrent guest writes.
            *b = unsafe { p.add(i).read_volatile() };
        }
        Some(())
    }

    /// Copies `data` to `off`; `None` if out of bounds.
    pub fn write(&self, off: u64, data: &[u8]) -> Option<()> {
        let p = self.check(off, data.len() as u64)?;
        for (i, b) in data.iter().enumerate() {
            // SAFETY: bounds checked by `check` as in `read`.
            unsafe { p.add(i).write_volatile(*b) };
        }
        Some(())
    }

    /// Reads a little-endian `u64` at `off` (any alignment).
    pub fn read_u64(&self, off: u64) -> Option<u64> {
        let mut b = [0u8; 8];
        self.read(off, &mut b)?;
        Some(u64::from_le_bytes(b))
    }

    /// Writes a little-endian `u64` at `off` (any alignment).
    pub fn write_u64(&self, off: u64, v: u64) -> Option<()> {
        self.write(off, &v.to_le_bytes())
    }

    /// Atomically ORs `bits` into the 8-byte-aligned word at `off`; returns
    /// the previous value. `None` if out of bounds or misaligned.
    pub fn fetch_or_u64(&self, off: u64, bits: u64) -> Option<u64> {
        if !off.is_multiple_of(8) {
            return None;
        }
        let p = self.check(off, 8)?;
        // SAFETY: `p` is 8-byte aligned (the mapping from `new` is page
        // aligned and `off % 8 == 0`) and `check` proved the 8 bytes in
        // bounds; the mapping lives as long as `self`, longer than this
        // borrow. Host threads access such event words only through this
        // and `load_u64_atomic` (both atomic); the guest's own accesses are
        // outside Rust's model and can at worst change the value.
        let a = unsafe { AtomicU64::from_ptr(p.cast()) };
        Some(a.fetch_or(bits, Ordering::SeqCst))
    }

    /// Atomically loads the 8-byte-aligned word at `off` (for words other
    /// host threads update with [`HostMem::fetch_or_u64`]). `None` if out of
    /// bounds or misaligned.
    pub fn load_u64_atomic(&self, off: u64) -> Option<u64> {
        if !off.is_multiple_of(8) {
            return None;
        }
        let p = self.check(off, 8)?;
        // SAFETY: as in `fetch_or_u64`: aligned (page-aligned mapping,
        // `off % 8 == 0`), in bounds (`check`), and the mapping lives as long
        // as `self`; concurrent host writers of this word use atomics too.
        let a = unsafe { AtomicU64::from_ptr(p.cast()) };
        Some(a.load(Ordering::SeqCst))
    }

    /// Fills `off..off+n` with `byte`.
    pub fn fill(&self, off: u64, n: u64, byte: u8) -> Option<()> {
        let p = self.check(off, n)?;
        // SAFETY: bounds checked above; `write_bytes` on raw memory creates
        // no reference.
        unsafe { p.write_bytes(byte, n as usize) };
        Some(())
    }
}

impl Drop for HostMem {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly the mapping made in `new`; after
        // drop nothing refers to it (VMs holding memslots into it are dropped
        // first by their owners, see `domain::Domain`).
        unsafe {
            libc::munmap(self.ptr.cast(), self.len as usize);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_checked() {
        let m = HostMem::new(PAGE_SIZE).unwrap();
        assert_eq!(m.write_u64(PAGE_SIZE - 8, 7), Some(()));
        assert_eq!(m.read_u64(PAGE_SIZE - 8), Some(7));
        assert_eq!(m.write_u64(PAGE_SIZE - 7, 7), None);
        assert_eq!(m.read_u64(u64::MAX - 3), None);
        assert_eq!(m.fetch_or_u64(4, 1), None);
        assert_eq!(m.fetch_or_u64(8, 1), Some(0));
        assert_eq!(m.fetch_or_u64(8, 2), Some(1));
        assert_eq!(m.load_u64_atomic(8), Some(3));
        assert_eq!(m.load_u64_atomic(12), None, "misaligned");
        assert_eq!(m.load_u64_atomic(PAGE_SIZE), None, "out of bounds");
        assert_eq!(m.load_u64_atomic(PAGE_SIZE - 8), Some(7));
        assert!(matches!(HostMem::new(0), Err(MemError::BadSize(0))));
        assert!(matches!(HostMem::new(100), Err(MemError::BadSize(100))));
    }
}
