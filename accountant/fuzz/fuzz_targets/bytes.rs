//! The fuzz input read a few bytes at a time, shared by the targets that
//! decode calls or exits from it (`#[path]`-included: each target is a
//! binary of its own, and each uses a subset of the readers).
#![allow(dead_code)]

/// Reads the input a few bytes at a time; past its end, zeros.
pub struct Bytes<'a>(pub &'a [u8]);

impl Bytes<'_> {
    /// The next `N` bytes, zero-padded past the end.
    pub fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let n = N.min(self.0.len());
        out[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        out
    }
    pub fn u8(&mut self) -> u8 {
        self.take::<1>()[0]
    }
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.take())
    }
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }
    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take())
    }
    /// Mostly small numbers (domain ids, units), sometimes any 64 bits.
    pub fn num(&mut self) -> u64 {
        let tag = self.u8();
        match tag % 4 {
            0 => self.u64(),
            1 => u64::from(self.u16()),
            _ => u64::from(tag >> 2),
        }
    }
}
