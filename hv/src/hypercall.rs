//! The guest → hypervisor call interface (port I/O).
//!
//! A guest fills its vCPU's hypercall block ([`layout::hcall_block`]; vCPU 0's
//! is [`layout::HCALL_BLOCK`])
//! (little-endian u64s) and executes `in eax, dx` with
//! `dx` = [`layout::HCALL_PORT`]; the value read is the status.
//!
//! | offset | field |
//! |---|---|
//! | 0 | op |
//! | 8, 16, 24 | arg0, arg1, arg2 |
//! | 32 | out0 (written by [`Op::Query`]) |
//!
//! | op | name | args | effect |
//! |---|---|---|---|
//! | 1 | `MAP_IOMEM` | first frame, frame count | map the frames into the caller (accountant `map`, then memslots) |
//! | 2 | `UNMAP_IOMEM` | first frame, frame count | unmap them (accountant `unmap`, slots removed before return) |
//! | 3 | `BIND_IRQ` | line | accountant `bind`; the line's events reach the caller's event page |
//! | 4 | `UNBIND_IRQ` | line | accountant `unbind` |
//! | 5 | `QUERY` | space (0 ioport, 1 iomem, 2 irq), unit | out0 = [`query bits`](QUERY_HELD) |
//! | 6 | `BLOCK` | timeout µs (capped at [`BLOCK_MAX_US`]) | wait for a pending event bit |
//! | 7 | `DOMID` | — | status = the caller's domain id |
//! | 8 | `VCPU_ID` | — | status = the calling vCPU's index in its domain (`0..vcpus`) |
//!
//! Status: 0 = ok; 1–16 = the accountant's error codes
//! ([`crate::acct::errno_of`]: 1 `bad-range`, 2 `out-of-range`, 3
//! `no-such-domain`, …, 12 `not-granted`, 13 `not-mapped`, 14 `not-bound`, 15
//! `no-memory`, 16 `quota`: a per-domain limit on frames mapped or tracking
//! records, see [`crate::Config::quotas`]); [`E_BAD_OP`], [`E_HV`], [`E_TIMEOUT`], [`E_FAULT`]. Any
//! other access to the hypercall port (a narrower `in`, an `out`) is
//! malformed: it reads all ones, is dropped and counted. Hostile arguments
//! only ever produce a status.

use crate::layout;
use crate::mem::HostMem;
use accountant::{Error, Space, UnitRange};

/// Unknown op.
pub const E_BAD_OP: u32 = 0x40;
/// The hypervisor failed to carry out an accepted call (KVM refused).
pub const E_HV: u32 = 0x41;
/// `BLOCK` timed out with no event pending.
pub const E_TIMEOUT: u32 = 0x42;
/// The hypercall block could not be read.
pub const E_FAULT: u32 = 0x43;
/// Longest `BLOCK` wait, in µs.
pub const BLOCK_MAX_US: u64 = 50_000;

/// Query bit: the caller holds the unit.
pub const QUERY_HELD: u64 = 1;
/// Query bit: the caller holds it exclusively.
pub const QUERY_EXCLUSIVE: u64 = 2;
/// Query bit: the hypervisor reserves it.
pub const QUERY_RESERVED: u64 = 4;
/// Query bit: the caller is draining it.
pub const QUERY_DRAINING: u64 = 8;
/// Query: the caller's use count is in bits 32..64.
pub const QUERY_USES_SHIFT: u32 = 32;

/// Op numbers.
pub mod op {
    /// `MAP_IOMEM`.
    pub const MAP_IOMEM: u64 = 1;
    /// `UNMAP_IOMEM`.
    pub const UNMAP_IOMEM: u64 = 2;
    /// `BIND_IRQ`.
    pub const BIND_IRQ: u64 = 3;
    /// `UNBIND_IRQ`.
    pub const UNBIND_IRQ: u64 = 4;
    /// `QUERY`.
    pub const QUERY: u64 = 5;
    /// `BLOCK`.
    pub const BLOCK: u64 = 6;
    /// `DOMID`.
    pub const DOMID: u64 = 7;
    /// `VCPU_ID`: the calling vCPU's index in its domain (`0..vcpus`).
    pub const VCPU_ID: u64 = 8;
}

/// A checked hypercall. Having one tells you its ranges are valid units of
/// their space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Map frames.
    MapIomem(UnitRange),
    /// Unmap frames.
    UnmapIomem(UnitRange),
    /// Bind a line.
    BindIrq(UnitRange),
    /// Unbind a line.
    UnbindIrq(UnitRange),
    /// Query one unit.
    Query(Space, u64),
    /// Wait for an event, at most this many µs.
    Block(u64),
    /// Own domain id.
    DomId,
    /// The calling vCPU's index.
    VcpuId,
}

/// Why a block did not decode: the status to return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected(pub u32);

fn frames(first: u64, count: u64) -> Result<UnitRange, Rejected> {
    if count == 0 {
        return Err(errno(&Error::BadRange { first, last: first }));
    }
    let last = first
        .checked_add(count - 1)
        .ok_or(errno(&Error::OutOfRange { value: u64::MAX }))?;
    UnitRange::new(Space::IoMem, first, last).map_err(|e| errno(&e))
}

fn errno(e: &Error) -> Rejected {
    Rejected(crate::acct::errno_of(e.code()))
}

impl Op {
    /// Decodes `[op, arg0, arg1, arg2]`.
    pub fn decode(w: [u64; 4]) -> Result<Op, Rejected> {
        match w[0] {
            op::MAP_IOMEM => Ok(Op::MapIomem(frames(w[1], w[2])?)),
            op::UNMAP_IOMEM => Ok(Op::UnmapIomem(frames(w[1], w[2])?)),
            op::BIND_IRQ => Ok(Op::BindIrq(
                UnitRange::one(Space::Irq, w[1]).map_err(|e| errno(&e))?,
            )),
            op::UNBIND_IRQ => Ok(Op::UnbindIrq(
                UnitRange::one(Space::Irq, w[1]).map_err(|e| errno(&e))?,
            )),
            op::QUERY => {
                let space = match w[1] {
                    0 => Space::IoPort,
                    1 => Space::IoMem,
                    2 => Space::Irq,
                    _ => return Err(errno(&Error::OutOfRange { value: w[1] })),
                };
                UnitRange::one(space, w[2]).map_err(|e| errno(&e))?;
                Ok(Op::Query(space, w[2]))
            }
            op::BLOCK => Ok(Op::Block(w[1].min(BLOCK_MAX_US))),
            op::DOMID => Ok(Op::DomId),
            op::VCPU_ID => Ok(Op::VcpuId),
            _ => Err(Rejected(E_BAD_OP)),
        }
    }

    /// Reads and decodes vCPU 0's block in guest RAM.
    pub fn read(ram: &HostMem) -> Result<Op, Rejected> {
        Op::read_vcpu(ram, 0)
    }

    /// Reads and decodes vCPU `vcpu`'s block ([`layout::hcall_block`]).
    pub fn read_vcpu(ram: &HostMem, vcpu: u32) -> Result<Op, Rejected> {
        let mut w = [0u64; 4];
        for (i, x) in w.iter_mut().enumerate() {
            *x = ram
                .read_u64(layout::hcall_block(vcpu) + 8 * i as u64)
                .ok_or(Rejected(E_FAULT))?;
        }
        Op::decode(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_good_calls() {
        assert_eq!(
            Op::decode([1, 0xfeb00, 1, 0]),
            Ok(Op::MapIomem(UnitRange::one(Space::IoMem, 0xfeb00).unwrap()))
        );
        assert_eq!(Op::decode([6, u64::MAX, 0, 0]), Ok(Op::Block(BLOCK_MAX_US)));
        assert_eq!(Op::decode([5, 2, 11, 0]), Ok(Op::Query(Space::Irq, 11)));
        assert_eq!(Op::decode([7, 9, 9, 9]), Ok(Op::DomId));
        assert_eq!(Op::decode([8, 0, 0, 0]), Ok(Op::VcpuId));
    }

    #[test]
    fn garbage_gets_a_status_only() {
        assert_eq!(Op::decode([0, 0, 0, 0]), Err(Rejected(E_BAD_OP)));
        assert_eq!(Op::decode([u64::MAX, 1, 2, 3]), Err(Rejected(E_BAD_OP)));
        assert_eq!(
            Op::decode([1, 5, 0, 0]),
            Err(Rejected(1)),
            "zero frames: bad-range"
        );
        assert_eq!(
            Op::decode([1, u64::MAX, 2, 0]),
            Err(Rejected(2)),
            "wraps: out-of-range"
        );
        assert_eq!(Op::decode([2, 1 << 40, 1, 0]), Err(Rejected(2)));
        assert_eq!(Op::decode([3, 1024, 0, 0]), Err(Rejected(2)));
        assert_eq!(Op::decode([5, 3, 0, 0]), Err(Rejected(2)));
        assert_eq!(Op::decode([5, 0, 0x10000, 0]), Err(Rejected(2)));
    }
}
