//! The original design of the port check, kept only for comparison: a list
//! of `(domain, first, last)` grants scanned linearly on every access.
//!
//! Its check costs one comparison per grant before the match, so it grows
//! with the number of grants; the accountant's radix tree does a fixed number
//! of loads. `accountant.port_check` measures both over the same grants.

/// One grant of ports `first..=last` to `dom`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    /// Domain holding the ports.
    pub dom: u16,
    /// First port.
    pub first: u16,
    /// Last port (inclusive, `>= first`).
    pub last: u16,
}

/// A linear access list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinearAccessList {
    grants: Vec<Grant>,
}

/// A grant whose `last` is before its `first`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadGrant {
    /// First port given.
    pub first: u16,
    /// Last port given.
    pub last: u16,
}

impl LinearAccessList {
    /// An empty list (denies everything).
    pub fn new() -> LinearAccessList {
        LinearAccessList::default()
    }

    /// Appends a grant.
    pub fn grant(&mut self, dom: u16, first: u16, last: u16) -> Result<(), BadGrant> {
        if last < first {
            return Err(BadGrant { first, last });
        }
        self.grants.push(Grant { dom, first, last });
        Ok(())
    }

    /// Number of grants.
    pub fn len(&self) -> usize {
        self.grants.len()
    }

    /// Whether there are no grants.
    pub fn is_empty(&self) -> bool {
        self.grants.is_empty()
    }

    /// Whether `dom` may access `width` ports from `port`: some single grant
    /// of `dom` covers all of them. Widths other than 1, 2 and 4, and ranges
    /// past port 0xffff, are denied (as the radix check does).
    pub fn check(&self, dom: u16, port: u16, width: u8) -> bool {
        if !matches!(width, 1 | 2 | 4) {
            return false;
        }
        let Some(last) = port.checked_add(u16::from(width) - 1) else {
            return false;
        };
        self.grants
            .iter()
            .any(|g| g.dom == dom && g.first <= port && last <= g.last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_cover_whole_access() {
        let mut l = LinearAccessList::new();
        l.grant(1, 0x60, 0x64).expect("ordered");
        l.grant(2, 0x3f8, 0x3ff).expect("ordered");
        assert!(l.check(1, 0x60, 1));
        assert!(l.check(1, 0x61, 4));
        assert!(!l.check(1, 0x62, 4), "runs past 0x64");
        assert!(!l.check(2, 0x60, 1), "other domain");
        assert!(l.check(2, 0x3fc, 4));
        assert!(!l.check(1, 0x60, 3), "bad width");
        assert_eq!(l.len(), 2);
    }

    #[test]
    fn rejects_reversed_and_top_overflow() {
        let mut l = LinearAccessList::new();
        assert_eq!(l.grant(1, 5, 4), Err(BadGrant { first: 5, last: 4 }));
        assert!(l.is_empty());
        l.grant(1, 0xfffe, 0xffff).expect("ordered");
        assert!(l.check(1, 0xfffe, 2));
        assert!(!l.check(1, 0xfffe, 4), "wraps past 0xffff");
    }
}
