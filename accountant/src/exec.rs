//! The one trace executor: [`execute`] runs a parsed trace [`Op`] against any
//! back end that implements [`Control`], and renders the op's output line
//! (SPEC section 3).
//!
//! Two back ends implement [`Control`]: the [`Accountant`] itself (what
//! `cargo xtask replay` runs) and the hypervisor in `hv` (what
//! `cargo xtask scenario trace` runs, where `create` starts a real VM and a
//! teardown deletes real memslots). Because both go through this one
//! function, a trace prints the same lines on both, and a difference is a
//! difference in behaviour, never in formatting.
//!
//! What [`execute`] owns: the checks of a parsed op's numbers against their
//! space (a domain id, then the range, as SPEC's level 1 orders them), and
//! the output words (`ok`, `ok <teardown>`, `pending`, `allow`, `deny`,
//! `state …`, `err CODE …`). What a back end owns: the operation itself.

use alloc::format;
use alloc::string::{String, ToString};
use core::fmt;

use crate::model::{describe_teardown, Accountant, Revoked, Teardown, UnitInfo, Violation};
use crate::num::{Num, RawRange};
use crate::trace::Op;
use crate::{DomId, Error, Mode, Space, UnitRange};

/// The control operations of SPEC section 2, as a back end performs them.
///
/// Every argument has been checked already (a [`DomId`] and a [`UnitRange`]
/// cannot be out of range); the back end answers with the accountant's
/// typed result, or its own error type when it can fail for reasons of its
/// own (a VM that could not be built).
pub trait Control {
    /// The back end's error: the accountant's [`Error`] converts into it, and
    /// [`Control::acct_error`] gets it back out.
    type Error: From<Error> + fmt::Display;

    /// The accountant's refusal inside `e`, if that is what `e` is; `None`
    /// for a failure of the back end itself (printed `err hypervisor …`).
    fn acct_error(e: &Self::Error) -> Option<&Error>;

    /// `create D`.
    fn create(&mut self, d: DomId) -> Result<(), Self::Error>;
    /// `destroy D`: the uses it ended.
    fn destroy(&mut self, d: DomId) -> Result<Teardown, Self::Error>;
    /// `reserve SPACE R`.
    fn reserve(&mut self, r: UnitRange) -> Result<(), Self::Error>;
    /// `unreserve SPACE R`.
    fn unreserve(&mut self, r: UnitRange) -> Result<(), Self::Error>;
    /// `hvmap SPACE R`.
    fn hvmap(&mut self, r: UnitRange) -> Result<(), Self::Error>;
    /// `hvunmap SPACE R`.
    fn hvunmap(&mut self, r: UnitRange) -> Result<(), Self::Error>;
    /// `grant D SPACE R MODE [force]`: the default-right uses a forced grant
    /// tore down.
    fn grant(
        &mut self,
        d: DomId,
        r: UnitRange,
        mode: Mode,
        force: bool,
    ) -> Result<Teardown, Self::Error>;
    /// `revoke D SPACE R [force]`.
    fn revoke(&mut self, d: DomId, r: UnitRange, force: bool) -> Result<Revoked, Self::Error>;
    /// `map D iomem R`.
    fn map(&mut self, d: DomId, r: UnitRange) -> Result<(), Self::Error>;
    /// `unmap D iomem R`.
    fn unmap(&mut self, d: DomId, r: UnitRange) -> Result<(), Self::Error>;
    /// `bind D irq N`.
    fn bind(&mut self, d: DomId, r: UnitRange) -> Result<(), Self::Error>;
    /// `unbind D irq N`.
    fn unbind(&mut self, d: DomId, r: UnitRange) -> Result<(), Self::Error>;
    /// `access D ioport P W`: allowed or not.
    fn access(&mut self, d: DomId, port: u64, width: u64) -> Result<bool, Self::Error>;
    /// `query SPACE U` of a unit inside its space; `Ok(None)` when the back
    /// end keeps no accountant state (the hypervisor with accounting off).
    fn query(&mut self, space: Space, unit: u64) -> Result<Option<UnitInfo>, Self::Error>;
    /// `check`.
    fn check(&mut self) -> Result<(), Violation>;
}

impl Control for Accountant {
    type Error = Error;

    fn acct_error(e: &Error) -> Option<&Error> {
        Some(e)
    }
    fn create(&mut self, d: DomId) -> Result<(), Error> {
        Accountant::create(self, d)
    }
    fn destroy(&mut self, d: DomId) -> Result<Teardown, Error> {
        Accountant::destroy(self, d)
    }
    fn reserve(&mut self, r: UnitRange) -> Result<(), Error> {
        Accountant::reserve(self, r)
    }
    fn unreserve(&mut self, r: UnitRange) -> Result<(), Error> {
        Accountant::unreserve(self, r)
    }
    fn hvmap(&mut self, r: UnitRange) -> Result<(), Error> {
        Accountant::hvmap(self, r)
    }
    fn hvunmap(&mut self, r: UnitRange) -> Result<(), Error> {
        Accountant::hvunmap(self, r)
    }
    fn grant(
        &mut self,
        d: DomId,
        r: UnitRange,
        mode: Mode,
        force: bool,
    ) -> Result<Teardown, Error> {
        Accountant::grant(self, d, r, mode, force)
    }
    fn revoke(&mut self, d: DomId, r: UnitRange, force: bool) -> Result<Revoked, Error> {
        Accountant::revoke(self, d, r, force)
    }
    fn map(&mut self, d: DomId, r: UnitRange) -> Result<(), Error> {
        Accountant::map(self, d, r)
    }
    fn unmap(&mut self, d: DomId, r: UnitRange) -> Result<(), Error> {
        Accountant::unmap(self, d, r)
    }
    fn bind(&mut self, d: DomId, r: UnitRange) -> Result<(), Error> {
        Accountant::bind(self, d, r)
    }
    fn unbind(&mut self, d: DomId, r: UnitRange) -> Result<(), Error> {
        Accountant::unbind(self, d, r)
    }
    fn access(&mut self, d: DomId, port: u64, width: u64) -> Result<bool, Error> {
        Accountant::access(self, d, port, width)
    }
    fn query(&mut self, space: Space, unit: u64) -> Result<Option<UnitInfo>, Error> {
        Accountant::query(self, space, unit).map(Some)
    }
    fn check(&mut self) -> Result<(), Violation> {
        self.check_invariants()
    }
}

fn dom(n: &Num) -> Result<DomId, Error> {
    n.get().map_or(Err(Error::TooLarge), DomId::new)
}

fn ok_with(t: &Teardown) -> String {
    if t.is_empty() {
        "ok".to_string()
    } else {
        format!("ok {}", describe_teardown(t))
    }
}

fn err_line<C: Control>(e: &C::Error) -> String {
    match C::acct_error(e) {
        Some(a) => format!("err {a}"),
        None => format!("err hypervisor {e}"),
    }
}

/// Runs one op (not `boot`: starting the back end is the caller's) on `c`
/// and returns its output line.
pub fn execute<C: Control>(c: &mut C, op: &Op) -> String {
    let unit = |r: &RawRange, s: Space| r.check(s).map_err(C::Error::from);
    let did = |n: &Num| dom(n).map_err(C::Error::from);
    let done = |_| "ok".to_string();
    let r: Result<String, C::Error> = match op {
        Op::Boot(_) => Ok("err boot-twice".to_string()),
        Op::Create(d) => did(d).and_then(|d| c.create(d)).map(done),
        Op::Destroy(d) => did(d).and_then(|d| c.destroy(d)).map(|t| ok_with(&t)),
        Op::Reserve(s, r) => unit(r, *s).and_then(|r| c.reserve(r)).map(done),
        Op::Unreserve(s, r) => unit(r, *s).and_then(|r| c.unreserve(r)).map(done),
        Op::HvMap(s, r) => unit(r, *s).and_then(|r| c.hvmap(r)).map(done),
        Op::HvUnmap(s, r) => unit(r, *s).and_then(|r| c.hvunmap(r)).map(done),
        Op::Grant {
            dom: d,
            space,
            range,
            mode,
            force,
        } => did(d)
            .and_then(|d| Ok((d, unit(range, *space)?)))
            .and_then(|(d, r)| c.grant(d, r, *mode, *force))
            .map(|t| ok_with(&t)),
        Op::Revoke {
            dom: d,
            space,
            range,
            force,
        } => did(d)
            .and_then(|d| Ok((d, unit(range, *space)?)))
            .and_then(|(d, r)| c.revoke(d, r, *force))
            .map(|rv| {
                if rv.pending {
                    "pending".to_string()
                } else {
                    ok_with(&rv.teardown)
                }
            }),
        Op::Map(d, r) | Op::Unmap(d, r) | Op::Bind(d, r) | Op::Unbind(d, r) => {
            let space = if matches!(op, Op::Map(..) | Op::Unmap(..)) {
                Space::IoMem
            } else {
                Space::Irq
            };
            did(d)
                .and_then(|d| Ok((d, unit(r, space)?)))
                .and_then(|(d, r)| match op {
                    Op::Map(..) => c.map(d, r),
                    Op::Unmap(..) => c.unmap(d, r),
                    Op::Bind(..) => c.bind(d, r),
                    _ => c.unbind(d, r),
                })
                .map(done)
        }
        Op::Access {
            dom: d,
            port,
            width,
        } => did(d)
            .and_then(|d| Ok((d, port.get().ok_or(C::Error::from(Error::TooLarge))?)))
            .and_then(|(d, port)| c.access(d, port, width.saturated()))
            .map(|allowed| if allowed { "allow" } else { "deny" }.to_string()),
        Op::Query(s, u) => u
            .get()
            .ok_or(Error::TooLarge)
            .and_then(|u| UnitRange::one(*s, u))
            .map_err(C::Error::from)
            .and_then(|r| c.query(*s, r.first()))
            .map(|info| match info {
                Some(info) => format!("state {info}"),
                None => "state (no accountant state: accounting is off)".to_string(),
            }),
        Op::Check => Ok(match c.check() {
            Ok(()) => "ok".to_string(),
            Err(v) => format!("err invariant {v}"),
        }),
    };
    r.unwrap_or_else(|e| err_line::<C>(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::parse_op;
    use crate::{BootOptions, TrackerKind};
    use alloc::vec::Vec;

    /// A back end that refuses everything with an error of its own, to show
    /// that such failures are printed apart from the accountant's.
    struct Broken;

    #[derive(Debug)]
    enum BrokenError {
        Acct(Error),
        Down,
    }
    impl From<Error> for BrokenError {
        fn from(e: Error) -> Self {
            BrokenError::Acct(e)
        }
    }
    impl fmt::Display for BrokenError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                BrokenError::Acct(e) => write!(f, "{e}"),
                BrokenError::Down => f.write_str("back end is down"),
            }
        }
    }

    impl Control for Broken {
        type Error = BrokenError;
        fn acct_error(e: &BrokenError) -> Option<&Error> {
            match e {
                BrokenError::Acct(e) => Some(e),
                BrokenError::Down => None,
            }
        }
        fn create(&mut self, _: DomId) -> Result<(), BrokenError> {
            Err(BrokenError::Down)
        }
        fn destroy(&mut self, _: DomId) -> Result<Teardown, BrokenError> {
            Err(BrokenError::Down)
        }
        fn reserve(&mut self, _: UnitRange) -> Result<(), BrokenError> {
            Err(BrokenError::Down)
        }
        fn unreserve(&mut self, _: UnitRange) -> Result<(), BrokenError> {
            Err(BrokenError::Down)
        }
        fn hvmap(&mut self, _: UnitRange) -> Result<(), BrokenError> {
            Err(BrokenError::Down)
        }
        fn hvunmap(&mut self, _: UnitRange) -> Result<(), BrokenError> {
            Err(BrokenError::Down)
        }
        fn grant(
            &mut self,
            _: DomId,
            _: UnitRange,
            _: Mode,
            _: bool,
        ) -> Result<Teardown, BrokenError> {
            Err(BrokenError::Down)
        }
        fn revoke(&mut self, _: DomId, _: UnitRange, _: bool) -> Result<Revoked, BrokenError> {
            Err(BrokenError::Down)
        }
        fn map(&mut self, _: DomId, _: UnitRange) -> Result<(), BrokenError> {
            Err(BrokenError::Down)
        }
        fn unmap(&mut self, _: DomId, _: UnitRange) -> Result<(), BrokenError> {
            Err(BrokenError::Down)
        }
        fn bind(&mut self, _: DomId, _: UnitRange) -> Result<(), BrokenError> {
            Err(BrokenError::Down)
        }
        fn unbind(&mut self, _: DomId, _: UnitRange) -> Result<(), BrokenError> {
            Err(BrokenError::Down)
        }
        fn access(&mut self, _: DomId, _: u64, _: u64) -> Result<bool, BrokenError> {
            Err(BrokenError::Down)
        }
        fn query(&mut self, _: Space, _: u64) -> Result<Option<UnitInfo>, BrokenError> {
            Ok(None)
        }
        fn check(&mut self) -> Result<(), Violation> {
            Ok(())
        }
    }

    fn op(s: &str) -> Op {
        match parse_op(s) {
            Ok(op) => op,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn back_end_failures_are_not_accountant_codes() {
        let mut b = Broken;
        assert_eq!(
            execute(&mut b, &op("create 1")),
            "err hypervisor back end is down"
        );
        // Level-1 checks happen before the back end is asked.
        assert!(execute(&mut b, &op("create 99999")).starts_with("err out-of-range"));
        assert!(execute(&mut b, &op("grant 1 ioport 5-4 shared")).starts_with("err bad-range"));
        assert_eq!(
            execute(&mut b, &op("query ioport 0x60")),
            "state (no accountant state: accounting is off)"
        );
        assert_eq!(execute(&mut b, &op("check")), "ok");
    }

    #[test]
    fn accountant_lines() {
        let boot =
            BootOptions::parse("reserve_ioports=0x3f8-0x3ff").unwrap_or_else(|e| panic!("{e}"));
        let mut a =
            Accountant::boot(&boot, TrackerKind::default()).unwrap_or_else(|e| panic!("{e}"));
        let lines: Vec<String> = [
            "create 1",
            "create 1",
            "grant 1 ioport 0x3f8 exclusive",
            "grant 1 ioport 0x300-0x307 exclusive",
            "access 1 ioport 0x300 2",
            "access 1 ioport 0x310",
            "grant 1 iomem 0xfeb00 exclusive",
            "map 1 iomem 0xfeb00",
            "revoke 1 iomem 0xfeb00",
            "check",
        ]
        .iter()
        .map(|s| execute(&mut a, &op(s)))
        .collect();
        let first: Vec<&str> = lines
            .iter()
            .map(|l| l.split_whitespace().next().unwrap_or(""))
            .collect();
        assert_eq!(
            first,
            ["ok", "err", "err", "ok", "allow", "deny", "ok", "ok", "pending", "ok"]
        );
        assert!(lines[1].starts_with("err domain-exists"));
        assert!(lines[2].starts_with("err reserved"));
    }
}
