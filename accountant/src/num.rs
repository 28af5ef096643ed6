//! Numbers as written in traces and on the command line: decimal or `0x` hex,
//! of any length. A number too large for `u64` is kept (as its digits) so that
//! it still compares correctly (`bad-range` before `out-of-range`) and then is
//! reported `out-of-range`, never a parse error.
//!
//! Parsing is linear in the number of digits: the value is accumulated in a
//! `u64` until it overflows, after which the digits are only validated and
//! kept. Comparing two numbers beyond `u64` is linear too when both are in the
//! same base (digit count, then digits). Across bases, two such numbers are
//! told apart by their bit length bounds (hex digits give it exactly, decimal
//! digits within one bit of `digits × log2 10`, refined by the leading
//! digits); only when those bounds overlap are the exact values computed, and
//! that exact conversion (quadratic) is done only up to [`EXACT_DIGITS`]
//! digits. Past that, the two numbers are taken as equal (not `bad-range`):
//! both are `out-of-range` in every space anyway, so only which of two level-1
//! errors is named can differ, and only for inputs built to defeat the
//! estimate.

use alloc::vec::Vec;
use core::cmp::Ordering;

/// The most digits of a beyond-`u64` number converted exactly for a
/// cross-base comparison (about 10 ms on one core).
pub const EXACT_DIGITS: usize = 20_000;

/// A non-negative integer of any size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Num(Repr);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Repr {
    Small(u64),
    /// Beyond `u64`: digit values (most significant first, no leading zero)
    /// in `base` (10 or 16).
    Big {
        base: u8,
        digits: Vec<u8>,
    },
}

impl Num {
    /// Parses `123` or `0x7b`; `None` for anything else (signs, empty, `0x`
    /// alone, other characters). Time linear in the length of `s`.
    pub fn parse(s: &str) -> Option<Num> {
        let (digits, base) = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
            Some(h) => (h.as_bytes(), 16u8),
            None => (s.as_bytes(), 10u8),
        };
        if digits.is_empty() {
            return None;
        }
        let mut v: u64 = 0;
        let mut i = 0;
        while i < digits.len() {
            let d = digit(digits[i], base)?;
            match v
                .checked_mul(u64::from(base))
                .and_then(|x| x.checked_add(u64::from(d)))
            {
                Some(x) => v = x,
                None => break,
            }
            i += 1;
        }
        if i == digits.len() {
            return Some(Num(Repr::Small(v)));
        }
        // Beyond u64: validate and keep the digits (leading zeros are gone,
        // since the value overflowed).
        let mut kept = Vec::with_capacity(digits.len());
        for &c in digits {
            kept.push(digit(c, base)?);
        }
        let lead = kept.iter().take_while(|d| **d == 0).count();
        kept.drain(..lead);
        Some(Num(Repr::Big { base, digits: kept }))
    }

    /// The value if it fits in `u64`.
    pub fn get(&self) -> Option<u64> {
        match self.0 {
            Repr::Small(v) => Some(v),
            Repr::Big { .. } => None,
        }
    }

    /// The value, saturated to `u64::MAX` (for error details).
    pub fn saturated(&self) -> u64 {
        self.get().unwrap_or(u64::MAX)
    }

    /// The error for this number beyond a space whose last unit is below it:
    /// its value when it fits in `u64`, else that it has more than 64 bits.
    pub fn out_of_range(&self) -> crate::Error {
        match self.get() {
            Some(value) => crate::Error::OutOfRange { value },
            None => crate::Error::TooLarge,
        }
    }
}

fn digit(c: u8, base: u8) -> Option<u8> {
    let d = match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => return None,
    };
    (d < base).then_some(d)
}

/// Bounds on log2 of a number with these digits (most significant first, no
/// leading zero): `lo <= log2(v) < hi`, with a margin for rounding.
fn log2_bounds(base: u8, digits: &[u8]) -> (f64, f64) {
    let k = digits.len().min(15);
    let mut lead: u64 = 0;
    for &d in &digits[..k] {
        lead = lead * u64::from(base) + u64::from(d);
    }
    let rest = (digits.len() - k) as f64;
    let scale = rest * libm_log2(f64::from(base));
    let lo = libm_log2(lead as f64) + scale;
    let hi = libm_log2((lead + 1) as f64) + scale;
    let margin = 1e-6 + scale * 1e-12;
    (lo - margin, hi + margin)
}

/// log2 for `x >= 1` without `std`: exponent from the bits, mantissa by series.
fn libm_log2(x: f64) -> f64 {
    let bits = x.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let m = f64::from_bits((bits & ((1u64 << 52) - 1)) | (1023u64 << 52)); // in [1, 2)
                                                                           // ln(m) = 2 atanh((m-1)/(m+1)), series in t^2 with t <= 1/3.
    let t = (m - 1.0) / (m + 1.0);
    let t2 = t * t;
    let mut term = t;
    let mut sum = 0.0;
    let mut n = 1.0;
    for _ in 0..30 {
        sum += term / n;
        term *= t2;
        n += 2.0;
    }
    exp as f64 + 2.0 * sum / core::f64::consts::LN_2
}

/// Little-endian 64-bit limbs of the value (quadratic; small inputs only).
fn limbs(base: u8, digits: &[u8]) -> Vec<u64> {
    let mut limbs: Vec<u64> = Vec::new();
    for &d in digits {
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
    limbs
}

fn cmp_big(ab: u8, a: &[u8], bb: u8, b: &[u8]) -> Ordering {
    if ab == bb {
        return a.len().cmp(&b.len()).then_with(|| a.cmp(b));
    }
    let (alo, ahi) = log2_bounds(ab, a);
    let (blo, bhi) = log2_bounds(bb, b);
    if ahi < blo {
        return Ordering::Less;
    }
    if bhi < alo {
        return Ordering::Greater;
    }
    if a.len() <= EXACT_DIGITS && b.len() <= EXACT_DIGITS {
        let (x, y) = (limbs(ab, a), limbs(bb, b));
        return x
            .len()
            .cmp(&y.len())
            .then_with(|| x.iter().rev().cmp(y.iter().rev()));
    }
    Ordering::Equal
}

impl PartialOrd for Num {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Num {
    fn cmp(&self, other: &Self) -> Ordering {
        match (&self.0, &other.0) {
            (Repr::Small(a), Repr::Small(b)) => a.cmp(b),
            (Repr::Small(_), Repr::Big { .. }) => Ordering::Less,
            (Repr::Big { .. }, Repr::Small(_)) => Ordering::Greater,
            (
                Repr::Big {
                    base: ab,
                    digits: a,
                },
                Repr::Big {
                    base: bb,
                    digits: b,
                },
            ) => cmp_big(*ab, a, *bb, b),
        }
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
            None => Err(self.last.out_of_range()),
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
