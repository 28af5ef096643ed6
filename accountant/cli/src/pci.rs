//! PCI addresses. `01:13.0` and `0000:01:13.0` are the same function: a
//! [`Bdf`] always carries its segment (0 when none was written), so two
//! spellings compare equal once parsed.

use std::fmt;

/// A PCI function: segment (domain), bus, device, function. Having one tells
/// you `dev <= 0x1f` and `func <= 7`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bdf {
    /// PCI segment (Linux's "domain"), 0 when not written.
    pub seg: u16,
    /// Bus, 0..=0xff.
    pub bus: u8,
    /// Device, 0..=0x1f.
    pub dev: u8,
    /// Function, 0..=7.
    pub func: u8,
}

/// Why a PCI address did not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BdfError {
    /// Not of the form `[SSSS:]BB:DD.F` (hex fields).
    Syntax,
    /// A field beyond its width: device > 0x1f, function > 7, bus > 0xff,
    /// segment > 0xffff.
    OutOfRange,
}

impl fmt::Display for BdfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BdfError::Syntax => f.write_str("not a PCI address of the form [SSSS:]BB:DD.F"),
            BdfError::OutOfRange => {
                f.write_str("PCI address field out of range (device <= 1f, function <= 7)")
            }
        }
    }
}

impl std::error::Error for BdfError {}

impl Bdf {
    /// A checked function address.
    pub fn new(seg: u16, bus: u8, dev: u8, func: u8) -> Result<Bdf, BdfError> {
        if dev > 0x1f || func > 7 {
            return Err(BdfError::OutOfRange);
        }
        Ok(Bdf {
            seg,
            bus,
            dev,
            func,
        })
    }

    /// Parses `SSSS:BB:DD.F` or `BB:DD.F` (hex, any case, no surrounding
    /// space). Field widths are not enforced beyond their value ranges, so
    /// `0:1:2.3` parses as `0000:01:02.3`.
    pub fn parse(s: &str) -> Result<Bdf, BdfError> {
        let (head, func) = s.rsplit_once('.').ok_or(BdfError::Syntax)?;
        let mut parts: Vec<&str> = head.split(':').collect();
        if parts.len() < 2 || parts.len() > 3 {
            return Err(BdfError::Syntax);
        }
        let seg = if parts.len() == 3 {
            parts.remove(0)
        } else {
            "0"
        };
        let field = |t: &str, max: u32| -> Result<u32, BdfError> {
            if t.is_empty() || t.len() > 8 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(BdfError::Syntax);
            }
            let v = u32::from_str_radix(t, 16).map_err(|_| BdfError::Syntax)?;
            if v > max {
                return Err(BdfError::OutOfRange);
            }
            Ok(v)
        };
        let seg = field(seg, 0xffff)?;
        let bus = field(parts[0], 0xff)?;
        let dev = field(parts[1], 0x1f)?;
        let func = field(func, 7)?;
        // The casts cannot truncate: each field was checked against its maximum.
        Bdf::new(seg as u16, bus as u8, dev as u8, func as u8)
    }
}

impl fmt::Display for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.seg, self.bus, self.dev, self.func
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_are_one_function() {
        let a = Bdf::parse("01:13.0").expect("short form");
        let b = Bdf::parse("0000:01:13.0").expect("long form");
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "0000:01:13.0");
    }

    #[test]
    fn rejects_what_is_not_a_function() {
        assert_eq!(Bdf::parse("01:20.0"), Err(BdfError::OutOfRange));
        assert_eq!(Bdf::parse("01:13.8"), Err(BdfError::OutOfRange));
        assert_eq!(Bdf::parse("01:13"), Err(BdfError::Syntax));
        assert_eq!(Bdf::parse("x1:13.0"), Err(BdfError::Syntax));
        assert_eq!(Bdf::parse("1:2:3:4.0"), Err(BdfError::Syntax));
        assert_eq!(Bdf::parse("0000:01:13.0 "), Err(BdfError::Syntax));
    }
}
