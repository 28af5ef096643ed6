//! Numbers as written in traces and on the command line: decimal or `0x` hex,
//! of any length. A number too large for `u64` is kept (as limbs) so that it
//! still compares correctly (`bad-range` before `out-of-range`) and then is
//! reported `out-of-range`, never a parse error.

use alloc::vec::Vec;
use core::cmp::Ordering;

/// A non-negative integer of any size, little-endian 64-bit limbs, no
/// trailing zero limbs (zero is the empty vector).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Num(Vec<u64>);

impl Num {
    /// Parses `123` or `0x7b`; `None` for anything else (signs, empty, `0x`
    /// alone, other characters).
    pub fn parse(s: &str) -> Option<Num> {
        let (digits, base) = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
            Some(h) => (h, 16u64),
            None => (s, 10u64),
        };
        if digits.is_empty() {
            return None;
        }
        let mut limbs: Vec<u64> = Vec::new();
        for c in digits.chars() {
            let d = u64::from(c.to_digit(base as u32)?);
            let mut carry = u128::from(d);
            for l in limbs.iter_mut() {
                let v = u128::from(*l) * u128::from(base) + carry;
                *l = v as u64;
                carry = v >> 64;
            }
            if carry != 0 {
                limbs.push(carry as u64);
            }
        }
        while limbs.last() == Some(&0) {
            limbs.pop();
        }
        Some(Num(limbs))
    }

    /// The value if it fits in `u64`.
    pub fn get(&self) -> Option<u64> {
        match self.0.as_slice() {
            [] => Some(0),
            [v] => Some(*v),
            _ => None,
        }
    }

    /// The value, saturated to `u64::MAX` (for error details).
    pub fn saturated(&self) -> u64 {
        self.get().unwrap_or(u64::MAX)
    }
}

impl PartialOrd for Num {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Num {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0
            .len()
            .cmp(&other.0.len())
            .then_with(|| self.0.iter().rev().cmp(other.0.iter().rev()))
    }
}

/// A range as written: `A` or `A-B`, not yet checked against a space.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawRange {
    /// `A`.
    pub first: Num,
    /// `B` (equal to `A` for a single unit).
    pub last: Num,
}

impl RawRange {
    /// Parses `A` or `A-B`.
    pub fn parse(s: &str) -> Option<RawRange> {
        match s.split_once('-') {
            Some((a, b)) => Some(RawRange {
                first: Num::parse(a)?,
                last: Num::parse(b)?,
            }),
            None => {
                let n = Num::parse(s)?;
                Some(RawRange {
                    first: n.clone(),
                    last: n,
                })
            }
        }
    }

    /// Checks it against `space`: `bad-range` if `A > B`, else
    /// `out-of-range` if `B` is beyond the space.
    pub fn check(&self, space: crate::Space) -> Result<crate::UnitRange, crate::Error> {
        if self.first > self.last {
            return Err(crate::Error::BadRange {
                first: self.first.saturated(),
                last: self.last.saturated(),
            });
        }
        match self.last.get() {
            Some(last) => crate::UnitRange::new(space, self.first.saturated(), last),
            None => Err(crate::Error::OutOfRange { value: u64::MAX }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_compares_any_size() {
        assert_eq!(Num::parse("0x10").and_then(|n| n.get()), Some(16));
        assert_eq!(Num::parse("0").and_then(|n| n.get()), Some(0));
        assert_eq!(
            Num::parse("18446744073709551615").and_then(|n| n.get()),
            Some(u64::MAX)
        );
        let big = Num::parse("18446744073709551616").expect("digits");
        assert_eq!(big.get(), None);
        let bigger = Num::parse("0x20000000000000000").expect("digits");
        assert!(bigger > big && big > Num::parse("5").expect("digits"));
        for bad in ["", "0x", "-1", "+1", "1_0", "0xg", "12a", " 1"] {
            assert_eq!(Num::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn range_errors_in_order() {
        use crate::{ErrorCode, Space};
        let r = |s: &str| RawRange::parse(s).expect("syntax").check(Space::IoPort);
        assert_eq!(
            r("0x10-0x5").map_err(|e| e.code()),
            Err(ErrorCode::BadRange)
        );
        assert_eq!(
            r("0x10000").map_err(|e| e.code()),
            Err(ErrorCode::OutOfRange)
        );
        assert_eq!(
            r("99999999999999999999999-5").map_err(|e| e.code()),
            Err(ErrorCode::BadRange)
        );
        assert_eq!(
            r("5-99999999999999999999999").map_err(|e| e.code()),
            Err(ErrorCode::OutOfRange)
        );
        assert_eq!(
            r("0x3f8-0x3ff").map(|u| (u.first(), u.last())),
            Ok((0x3f8, 0x3ff))
        );
        assert_eq!(RawRange::parse("1-2-3"), None);
    }
}
