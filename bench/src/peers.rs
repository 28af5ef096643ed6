//! Peer designs of the port check, kept only for comparison with the
//! accountant's radix tree (`accountant.port_check` rows `impl=bitmap` and
//! `impl=btree`).
//!
//! * [`PortBitmaps`]: a flat 8 KiB bitmap per domain (65,536 bits), the
//!   VT-x I/O-bitmap / Jailhouse design. A check is one word load, but every
//!   domain pays 8 KiB whether it holds one port or none.
//! * [`PortBus`]: a `BTreeMap` of port ranges searched for the range that
//!   contains the port, as rust-vmm's `vm-device` and Firecracker's bus
//!   dispatch port I/O. One map holds every domain's ranges, keyed by
//!   `(domain, first)`, so its depth grows with the number of grants.

use std::collections::BTreeMap;

/// Ports per bitmap word.
const WORD_BITS: usize = 64;
/// Words in one domain's bitmap (65,536 ports).
const WORDS: usize = 65_536 / WORD_BITS;

/// One flat bitmap of permitted ports per domain id `0..domains`.
#[derive(Clone, Debug)]
pub struct PortBitmaps {
    maps: Vec<Box<[u64; WORDS]>>,
}

impl PortBitmaps {
    /// Bitmaps for domains `0..domains`, all ports denied.
    pub fn new(domains: u16) -> PortBitmaps {
        PortBitmaps {
            maps: (0..domains).map(|_| Box::new([0u64; WORDS])).collect(),
        }
    }

    /// Permits ports `first..=last` to `dom` (ignored for a domain past the
    /// table or an empty range).
    pub fn grant(&mut self, dom: u16, first: u16, last: u16) {
        let Some(map) = self.maps.get_mut(usize::from(dom)) else {
            return;
        };
        for p in usize::from(first)..=usize::from(last) {
            map[p / WORD_BITS] |= 1 << (p % WORD_BITS);
        }
    }

    /// The bitmap of `dom`, for a vCPU that holds its own domain's.
    pub fn domain(&self, dom: u16) -> Option<&[u64; WORDS]> {
        self.maps.get(usize::from(dom)).map(|m| &**m)
    }

    /// Whether `dom` may access `width` ports from `port` (width 1, 2 or 4).
    #[inline]
    pub fn check(&self, dom: u16, port: u16, width: u8) -> bool {
        self.domain(dom)
            .is_some_and(|m| bitmap_check(m, port, width))
    }
}

/// Whether every port of `port..port + width` is set in one bitmap.
#[inline]
pub fn bitmap_check(map: &[u64; WORDS], port: u16, width: u8) -> bool {
    if !matches!(width, 1 | 2 | 4) {
        return false;
    }
    let first = usize::from(port);
    let last = first + usize::from(width) - 1;
    if last > 0xffff {
        return false;
    }
    (first..=last).all(|p| map[p / WORD_BITS] & (1 << (p % WORD_BITS)) != 0)
}

/// A bus of port ranges: `(domain, first) -> last`.
#[derive(Clone, Debug, Default)]
pub struct PortBus {
    ranges: BTreeMap<(u16, u16), u16>,
}

impl PortBus {
    /// An empty bus (denies everything).
    pub fn new() -> PortBus {
        PortBus::default()
    }

    /// Adds the range `first..=last` for `dom` (ignored if `last < first`).
    /// Ranges are assumed disjoint, as a bus's devices are.
    pub fn grant(&mut self, dom: u16, first: u16, last: u16) {
        if first <= last {
            self.ranges.insert((dom, first), last);
        }
    }

    /// Number of ranges.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Whether the bus is empty.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Whether `dom` may access `width` ports from `port`: the range with
    /// the greatest start at or before `port` must cover the whole access.
    #[inline]
    pub fn check(&self, dom: u16, port: u16, width: u8) -> bool {
        if !matches!(width, 1 | 2 | 4) {
            return false;
        }
        let last = u32::from(port) + u32::from(width) - 1;
        self.ranges
            .range((dom, 0)..=(dom, port))
            .next_back()
            .is_some_and(|(_, &end)| u32::from(end) >= last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_agree_on_grants_and_denials() {
        let mut bm = PortBitmaps::new(4);
        let mut bus = PortBus::new();
        for (d, f, l) in [
            (1u16, 0x60u16, 0x64u16),
            (2, 0x3f, 0x41),
            (3, 0xfffc, 0xffff),
        ] {
            bm.grant(d, f, l);
            bus.grant(d, f, l);
        }
        bm.grant(9, 0, 1);
        bus.grant(1, 5, 4);
        assert_eq!(bus.len(), 3);
        for d in 0..5u16 {
            for port in (0..=0xffffu32)
                .step_by(13)
                .chain(0x38..0x70)
                .chain(0xfff0..=0xffff)
            {
                for w in [0u8, 1, 2, 3, 4] {
                    let port = port as u16;
                    assert_eq!(
                        bm.check(d, port, w),
                        bus.check(d, port, w),
                        "{d} {port:#x}/{w}"
                    );
                }
            }
        }
        assert!(bm.check(1, 0x61, 4) && !bm.check(1, 0x62, 4) && bm.check(2, 0x3f, 2));
        assert!(bus.check(3, 0xfffc, 4) && !bus.check(3, 0xfffd, 4) && !bus.check(2, 0x3f, 4));
        assert!(!bm.check(9, 0, 1), "domain past the table");
    }
}
