//! The op vocabulary of SPEC section 3, each op's pieces side by side:
//! its word ([`Keyword`], one table), its parsed form ([`Op`]) and parse arm
//! ([`parse_op`]), its numbers in one shape ([`Operands`], which the level-1
//! check of numbers too large for a C call and the C replay's conversion
//! are written over), the [`Control`] method a back end performs it with,
//! and its run and output line ([`execute`]).
//!
//! **Adding an op** is an edit of this file the compiler leads through:
//! the keyword's line makes [`parse_op`] fail to compile until its arm is
//! written, the [`Op`] variant makes [`Op::keyword`], [`Op::operands`] and
//! [`execute`] fail until theirs are; the arm calls a [`Control`] method,
//! whose default body performs the op on the accountant the back end keeps
//! ([`Control::on_accountant`]), so no back end needs an edit unless the op
//! does something of its own there (ARCHITECTURE.md, "Adding an accountant
//! operation").
//!
//! **One executor.** Two back ends implement [`Control`]: the [`Accountant`]
//! itself (what `cargo xtask replay` runs) and the hypervisor in `hv` (what
//! `cargo xtask scenario trace` runs, where `create` starts a real VM and a
//! teardown deletes real memslots). Because both go through [`execute`], a
//! trace prints the same lines on both, and a difference is a difference in
//! behaviour, never in formatting. What [`execute`] owns: the checks of a
//! parsed op's numbers against their space (a domain id, then the range, as
//! SPEC's level 1 orders them), and the output words (`ok`,
//! `ok <teardown>`, `pending`, `allow`, `deny`, `state …`, `err CODE …`).
//! What a back end owns: the operation itself.
//!
//! Parsing is purely syntactic: numbers of any size parse, and are checked
//! against their space when the op runs, so that an out-of-range number is
//! the op's `err out-of-range`, not a malformed line. Parsing a line takes
//! time linear in its length and keeps at most six of its words.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use crate::boot::BootOptions;
use crate::model::{describe_teardown, Accountant, Revoked, Teardown, UnitInfo, Violation};
use crate::num::{Num, RawRange};
use crate::trace::quote;
use crate::{DomId, Error, Mode, Space, UnitRange};

// ---- The words --------------------------------------------------------------

/// Generates [`Keyword`] from its one table: each op's word in a trace.
macro_rules! keywords {
    ($($(#[$doc:meta])* $kw:ident = $word:literal, $example:literal;)*) => {
        /// The word that starts a trace line: which op it is. [`parse_op`]
        /// matches on it exhaustively, so a keyword added here without its
        /// parser does not compile.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Keyword {
            $($(#[$doc])* $kw,)*
        }

        impl Keyword {
            /// Every keyword, in the table's order.
            pub const ALL: &'static [Keyword] = &[$(Keyword::$kw),*];

            /// Its word in a trace.
            pub const fn word(self) -> &'static str {
                match self {
                    $(Keyword::$kw => $word,)*
                }
            }

            /// A line of this op, for tests that must run every op (each
            /// back end runs it; the C replay converts it).
            pub const fn example(self) -> &'static str {
                match self {
                    $(Keyword::$kw => $example,)*
                }
            }

            /// The keyword spelt `w`, if any.
            pub fn from_word(w: &str) -> Option<Keyword> {
                match w {
                    $($word => Some(Keyword::$kw),)*
                    _ => None,
                }
            }
        }
    };
}

keywords! {
    /// `boot OPTIONS…`.
    Boot = "boot", "boot reserve_ioports=0x3f8-0x3ff";
    /// `create D`.
    Create = "create", "create 1";
    /// `destroy D`.
    Destroy = "destroy", "destroy 1";
    /// `reserve SPACE R`.
    Reserve = "reserve", "reserve irq 9";
    /// `unreserve SPACE R`.
    Unreserve = "unreserve", "unreserve irq 9";
    /// `hvmap SPACE R`.
    HvMap = "hvmap", "hvmap irq 9";
    /// `hvunmap SPACE R`.
    HvUnmap = "hvunmap", "hvunmap irq 9";
    /// `grant D SPACE R MODE [force]`.
    Grant = "grant", "grant 1 iomem 0xfeb00 shared force";
    /// `revoke D SPACE R [force]`.
    Revoke = "revoke", "revoke 1 iomem 0xfeb00 force";
    /// `map D iomem R`.
    Map = "map", "map 1 iomem 0xfeb00";
    /// `unmap D iomem R`.
    Unmap = "unmap", "unmap 1 iomem 0xfeb00";
    /// `bind D irq N`.
    Bind = "bind", "bind 1 irq 5";
    /// `unbind D irq N`.
    Unbind = "unbind", "unbind 1 irq 5";
    /// `access D ioport P [W]`.
    Access = "access", "access 1 ioport 0x60 2";
    /// `query SPACE U`.
    Query = "query", "query iomem 0xfeb00";
    /// `check`.
    Check = "check", "check";
}

// ---- The parsed ops --------------------------------------------------------

/// One parsed trace op.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// `boot OPTIONS…`.
    Boot(BootOptions),
    /// `create D`.
    Create(Num),
    /// `destroy D`.
    Destroy(Num),
    /// `reserve SPACE R`.
    Reserve(Space, RawRange),
    /// `unreserve SPACE R`.
    Unreserve(Space, RawRange),
    /// `hvmap SPACE R`.
    HvMap(Space, RawRange),
    /// `hvunmap SPACE R`.
    HvUnmap(Space, RawRange),
    /// `grant D SPACE R MODE [force]`.
    Grant {
        /// Domain.
        dom: Num,
        /// Space.
        space: Space,
        /// Range.
        range: RawRange,
        /// Mode.
        mode: Mode,
        /// `force`.
        force: bool,
    },
    /// `revoke D SPACE R [force]`.
    Revoke {
        /// Domain.
        dom: Num,
        /// Space.
        space: Space,
        /// Range.
        range: RawRange,
        /// `force`.
        force: bool,
    },
    /// `map D iomem R`.
    Map(Num, RawRange),
    /// `unmap D iomem R`.
    Unmap(Num, RawRange),
    /// `bind D irq N`.
    Bind(Num, RawRange),
    /// `unbind D irq N`.
    Unbind(Num, RawRange),
    /// `access D ioport P [W]`.
    Access {
        /// Domain.
        dom: Num,
        /// Port.
        port: Num,
        /// Width (1 when omitted).
        width: Num,
    },
    /// `query SPACE U`.
    Query(Space, Num),
    /// `check`.
    Check,
}

impl Op {
    /// The keyword this op was parsed from.
    pub const fn keyword(&self) -> Keyword {
        match self {
            Op::Boot(_) => Keyword::Boot,
            Op::Create(_) => Keyword::Create,
            Op::Destroy(_) => Keyword::Destroy,
            Op::Reserve(..) => Keyword::Reserve,
            Op::Unreserve(..) => Keyword::Unreserve,
            Op::HvMap(..) => Keyword::HvMap,
            Op::HvUnmap(..) => Keyword::HvUnmap,
            Op::Grant { .. } => Keyword::Grant,
            Op::Revoke { .. } => Keyword::Revoke,
            Op::Map(..) => Keyword::Map,
            Op::Unmap(..) => Keyword::Unmap,
            Op::Bind(..) => Keyword::Bind,
            Op::Unbind(..) => Keyword::Unbind,
            Op::Access { .. } => Keyword::Access,
            Op::Query(..) => Keyword::Query,
            Op::Check => Keyword::Check,
        }
    }

    /// Its arguments in the one shape every op shares.
    pub fn operands(&self) -> Operands<'_> {
        let o = Operands {
            dom: None,
            target: Target::Nothing,
            mode: None,
            force: false,
        };
        match self {
            Op::Boot(_) | Op::Check => o,
            Op::Create(d) | Op::Destroy(d) => Operands { dom: Some(d), ..o },
            Op::Reserve(s, r) | Op::Unreserve(s, r) | Op::HvMap(s, r) | Op::HvUnmap(s, r) => {
                Operands {
                    target: Target::Range(*s, r),
                    ..o
                }
            }
            Op::Grant {
                dom,
                space,
                range,
                mode,
                force,
            } => Operands {
                dom: Some(dom),
                target: Target::Range(*space, range),
                mode: Some(*mode),
                force: *force,
            },
            Op::Revoke {
                dom,
                space,
                range,
                force,
            } => Operands {
                dom: Some(dom),
                target: Target::Range(*space, range),
                mode: None,
                force: *force,
            },
            Op::Map(d, r) | Op::Unmap(d, r) => Operands {
                dom: Some(d),
                target: Target::Range(Space::IoMem, r),
                ..o
            },
            Op::Bind(d, r) | Op::Unbind(d, r) => Operands {
                dom: Some(d),
                target: Target::Range(Space::Irq, r),
                ..o
            },
            Op::Access { dom, port, width } => Operands {
                dom: Some(dom),
                target: Target::Port { port, width },
                ..o
            },
            Op::Query(s, u) => Operands {
                target: Target::Unit(*s, u),
                ..o
            },
        }
    }
}

/// An op's arguments in one shape for every op: the domain it names, then
/// what it acts on, as SPEC's level 1 checks them, and its flags. Code that
/// must handle every op the same way (the C replay's `ioacct_op`, the
/// level-1 check of numbers too large for a C call) is written over this,
/// so that a new op needs no edit there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Operands<'a> {
    /// The domain, for an op that names one.
    pub dom: Option<&'a Num>,
    /// What the op acts on.
    pub target: Target<'a>,
    /// `grant`'s mode.
    pub mode: Option<Mode>,
    /// `force` given.
    pub force: bool,
}

/// What an op acts on ([`Operands::target`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target<'a> {
    /// Nothing but its domain, if any (`create`, `destroy`, `check`, `boot`).
    Nothing,
    /// A range of units of a space (for `map`/`unmap` iomem, for
    /// `bind`/`unbind` irq).
    Range(Space, &'a RawRange),
    /// `access`: a port and the access width (ioport).
    Port {
        /// Port.
        port: &'a Num,
        /// Width; never checked at level 1 (the accountant answers a bad
        /// width with `bad-range`).
        width: &'a Num,
    },
    /// `query`: one unit of a space.
    Unit(Space, &'a Num),
}

impl Operands<'_> {
    /// Whether a number the level-1 check looks at does not fit in 64 bits.
    pub fn any_too_large(&self) -> bool {
        let big = |n: &Num| n.get().is_none();
        self.dom.is_some_and(big)
            || match self.target {
                Target::Nothing => false,
                Target::Range(_, r) => big(&r.first) || big(&r.last),
                Target::Port { port, .. } => big(port),
                Target::Unit(_, u) => big(u),
            }
    }

    /// The op's level-1 error, as [`execute`] finds it (the domain, then the
    /// target); `None` when its numbers pass.
    pub fn level1(&self) -> Option<Error> {
        if let Some(Err(e)) = self.dom.map(dom) {
            return Some(e);
        }
        match self.target {
            Target::Nothing => None,
            Target::Range(s, r) => r.check(s).err(),
            Target::Port { port, .. } => port.get().is_none().then_some(Error::TooLarge),
            Target::Unit(s, u) => one_unit(s, u).err(),
        }
    }
}

fn dom(n: &Num) -> Result<DomId, Error> {
    n.get().map_or(Err(Error::TooLarge), DomId::new)
}

fn one_unit(s: Space, u: &Num) -> Result<UnitRange, Error> {
    u.get()
        .ok_or(Error::TooLarge)
        .and_then(|u| UnitRange::one(s, u))
}

// ---- Parsing ----------------------------------------------------------------

fn num(w: &str) -> Result<Num, String> {
    Num::parse(w).ok_or_else(|| format!("`{}` is not a number", quote(w)))
}

fn range(w: &str) -> Result<RawRange, String> {
    RawRange::parse(w).ok_or_else(|| format!("`{}` is not a range", quote(w)))
}

fn space(w: &str) -> Result<Space, String> {
    Space::from_name(w).ok_or_else(|| format!("`{}` is not a space (ioport, iomem, irq)", quote(w)))
}

fn only(w: &str, want: Space, op: &str) -> Result<(), String> {
    if space(w)? == want {
        Ok(())
    } else {
        Err(format!("`{op}` takes `{}` only, not `{w}`", want.name()))
    }
}

fn force(w: Option<&&str>) -> Result<bool, String> {
    match w {
        None => Ok(false),
        Some(&"force") => Ok(true),
        Some(w) => Err(format!("expected `force` or nothing, got `{}`", quote(w))),
    }
}

/// The most words any op takes, the op included.
const MAX_WORDS: usize = 6;

/// Parses the code part of one line (comments already stripped, not blank).
/// Time linear in its length; at most [`MAX_WORDS`] words are kept.
pub fn parse_op(code: &str) -> Result<Op, String> {
    let mut words = code.split_whitespace();
    let w: Vec<&str> = words.by_ref().take(MAX_WORDS).collect();
    let more = words.count();
    let Some((&op, args)) = w.split_first() else {
        return Err("empty line".to_string());
    };
    let Some(kw) = Keyword::from_word(op) else {
        return Err(format!("unknown op `{}`", quote(op)));
    };
    let got = args.len() + more;
    let arity = |min: usize, max: usize| -> Result<(), String> {
        if got < min || got > max {
            Err(if min == max {
                format!("`{op}` takes {min} words, got {got}")
            } else {
                format!("`{op}` takes {min} to {max} words, got {got}")
            })
        } else {
            Ok(())
        }
    };
    Ok(match kw {
        Keyword::Boot => {
            let opts = code.trim_start().strip_prefix("boot").unwrap_or("");
            // Every boot option is one word; the words were only counted above.
            Op::Boot(BootOptions::parse(opts).map_err(|e| e.to_string())?)
        }
        Keyword::Create | Keyword::Destroy => {
            arity(1, 1)?;
            let d = num(args[0])?;
            if kw == Keyword::Create {
                Op::Create(d)
            } else {
                Op::Destroy(d)
            }
        }
        Keyword::Reserve | Keyword::Unreserve | Keyword::HvMap | Keyword::HvUnmap => {
            arity(2, 2)?;
            let (s, r) = (space(args[0])?, range(args[1])?);
            match kw {
                Keyword::Reserve => Op::Reserve(s, r),
                Keyword::Unreserve => Op::Unreserve(s, r),
                Keyword::HvMap => Op::HvMap(s, r),
                _ => Op::HvUnmap(s, r),
            }
        }
        Keyword::Grant => {
            arity(4, 5)?;
            let mode = match args[3] {
                "exclusive" => Mode::Exclusive,
                "shared" => Mode::Shared,
                m => return Err(format!("`{m}` is not a mode (exclusive, shared)")),
            };
            Op::Grant {
                dom: num(args[0])?,
                space: space(args[1])?,
                range: range(args[2])?,
                mode,
                force: force(args.get(4))?,
            }
        }
        Keyword::Revoke => {
            arity(3, 4)?;
            Op::Revoke {
                dom: num(args[0])?,
                space: space(args[1])?,
                range: range(args[2])?,
                force: force(args.get(3))?,
            }
        }
        Keyword::Map | Keyword::Unmap | Keyword::Bind | Keyword::Unbind => {
            arity(3, 3)?;
            let want = if matches!(kw, Keyword::Map | Keyword::Unmap) {
                Space::IoMem
            } else {
                Space::Irq
            };
            only(args[1], want, op)?;
            let (d, r) = (num(args[0])?, range(args[2])?);
            match kw {
                Keyword::Map => Op::Map(d, r),
                Keyword::Unmap => Op::Unmap(d, r),
                Keyword::Bind => Op::Bind(d, r),
                _ => Op::Unbind(d, r),
            }
        }
        Keyword::Access => {
            arity(3, 4)?;
            only(args[1], Space::IoPort, op)?;
            Op::Access {
                dom: num(args[0])?,
                port: num(args[2])?,
                width: match args.get(3) {
                    Some(w) => num(w)?,
                    None => Num::parse("1").ok_or("internal: literal")?,
                },
            }
        }
        Keyword::Query => {
            arity(2, 2)?;
            Op::Query(space(args[0])?, num(args[1])?)
        }
        Keyword::Check => {
            arity(0, 0)?;
            Op::Check
        }
    })
}

// ---- The back end -----------------------------------------------------------

/// The control operations of SPEC section 2, as a back end performs them.
///
/// Every argument has been checked already (a [`DomId`] and a [`UnitRange`]
/// cannot be out of range); the back end answers with the accountant's
/// typed result, or its own error type when it can fail for reasons of its
/// own (a VM that could not be built).
///
/// Each op's method has a default body that performs it on the accountant
/// the back end keeps, through [`Control::on_accountant`] (calling the
/// inherent method by its path, `Accountant::create(a, d)`: on a
/// `&mut Accountant`, `a.create(d)` would be this trait's method, and
/// recurse); a back end
/// overrides an op only where it does something of its own (the hypervisor:
/// `create` starts a VM, a teardown deletes memslots, accounting off).
pub trait Control {
    /// The back end's error: the accountant's [`Error`] converts into it, and
    /// [`Control::acct_error`] gets it back out.
    type Error: From<Error> + fmt::Display;

    /// The accountant's refusal inside `e`, if that is what `e` is; `None`
    /// for a failure of the back end itself (printed `err hypervisor …`).
    fn acct_error(e: &Self::Error) -> Option<&Error>;

    /// Runs `f` on the accountant this back end keeps (under whatever lock
    /// guards it), or fails with the back end's own error when it keeps
    /// none: the body of every op the back end does not override.
    fn on_accountant<R>(
        &mut self,
        f: impl FnOnce(&mut Accountant) -> Result<R, Error>,
    ) -> Result<R, Self::Error>;

    /// `create D`.
    fn create(&mut self, d: DomId) -> Result<(), Self::Error> {
        self.on_accountant(|a| Accountant::create(a, d))
    }
    /// `destroy D`: the uses it ended.
    fn destroy(&mut self, d: DomId) -> Result<Teardown, Self::Error> {
        self.on_accountant(|a| Accountant::destroy(a, d))
    }
    /// `reserve SPACE R`.
    fn reserve(&mut self, r: UnitRange) -> Result<(), Self::Error> {
        self.on_accountant(|a| Accountant::reserve(a, r))
    }
    /// `unreserve SPACE R`.
    fn unreserve(&mut self, r: UnitRange) -> Result<(), Self::Error> {
        self.on_accountant(|a| Accountant::unreserve(a, r))
    }
    /// `hvmap SPACE R`.
    fn hvmap(&mut self, r: UnitRange) -> Result<(), Self::Error> {
        self.on_accountant(|a| Accountant::hvmap(a, r))
    }
    /// `hvunmap SPACE R`.
    fn hvunmap(&mut self, r: UnitRange) -> Result<(), Self::Error> {
        self.on_accountant(|a| Accountant::hvunmap(a, r))
    }
    /// `grant D SPACE R MODE [force]`: the default-right uses a forced grant
    /// tore down.
    fn grant(
        &mut self,
        d: DomId,
        r: UnitRange,
        mode: Mode,
        force: bool,
    ) -> Result<Teardown, Self::Error> {
        self.on_accountant(|a| Accountant::grant(a, d, r, mode, force))
    }
    /// `revoke D SPACE R [force]`.
    fn revoke(&mut self, d: DomId, r: UnitRange, force: bool) -> Result<Revoked, Self::Error> {
        self.on_accountant(|a| Accountant::revoke(a, d, r, force))
    }
    /// `map D iomem R`.
    fn map(&mut self, d: DomId, r: UnitRange) -> Result<(), Self::Error> {
        self.on_accountant(|a| Accountant::map(a, d, r))
    }
    /// `unmap D iomem R`.
    fn unmap(&mut self, d: DomId, r: UnitRange) -> Result<(), Self::Error> {
        self.on_accountant(|a| Accountant::unmap(a, d, r))
    }
    /// `bind D irq N`.
    fn bind(&mut self, d: DomId, r: UnitRange) -> Result<(), Self::Error> {
        self.on_accountant(|a| Accountant::bind(a, d, r))
    }
    /// `unbind D irq N`.
    fn unbind(&mut self, d: DomId, r: UnitRange) -> Result<(), Self::Error> {
        self.on_accountant(|a| Accountant::unbind(a, d, r))
    }
    /// `access D ioport P W`: allowed or not.
    fn access(&mut self, d: DomId, port: u64, width: u64) -> Result<bool, Self::Error> {
        self.on_accountant(|a| Accountant::access(a, d, port, width))
    }
    /// `query SPACE U` of a unit inside its space; `Ok(None)` when the back
    /// end keeps no accountant state (the hypervisor with accounting off).
    fn query(&mut self, space: Space, unit: u64) -> Result<Option<UnitInfo>, Self::Error> {
        self.on_accountant(|a| Accountant::query(a, space, unit))
            .map(Some)
    }
    /// `check`: the invariants' verdict (`Ok(Err(…))` is a violation, printed
    /// `err invariant …`).
    fn check(&mut self) -> Result<Result<(), Violation>, Self::Error> {
        self.on_accountant(|a| Ok(Accountant::check_invariants(a)))
    }
}

/// The accountant as its own back end, every op the default one: what
/// [`Accountant::execute`] runs. [`Control`] is implemented for this
/// wrapper and not for [`Accountant`] itself, so that a default's
/// `Accountant::op(a, …)` can only name the accountant's own method: an op
/// the model lacks does not compile (were `Accountant` a back end, the path
/// would name the trait's default, which would call itself).
pub struct Direct<'a>(pub &'a mut Accountant);

impl Control for Direct<'_> {
    type Error = Error;

    fn acct_error(e: &Error) -> Option<&Error> {
        Some(e)
    }
    fn on_accountant<R>(
        &mut self,
        f: impl FnOnce(&mut Accountant) -> Result<R, Error>,
    ) -> Result<R, Error> {
        f(self.0)
    }
}

impl Accountant {
    /// Runs one parsed op (not `boot`) on this accountant and returns its
    /// output line: [`execute`] with the accountant as the back end.
    pub fn execute(&mut self, op: &Op) -> String {
        execute(&mut Direct(self), op)
    }
}

// ---- Running an op ----------------------------------------------------------

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
        Op::Query(s, u) => one_unit(*s, u)
            .map_err(C::Error::from)
            .and_then(|r| c.query(*s, r.first()))
            .map(|info| match info {
                Some(info) => format!("state {info}"),
                None => "state (no accountant state: accounting is off)".to_string(),
            }),
        Op::Check => c.check().map(|v| match v {
            Ok(()) => "ok".to_string(),
            Err(v) => format!("err invariant {v}"),
        }),
    };
    r.unwrap_or_else(|e| err_line::<C>(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
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

    /// Only the hook and `query` are its own: every other op is the
    /// default body, so it fails through the hook.
    impl Control for Broken {
        type Error = BrokenError;
        fn acct_error(e: &BrokenError) -> Option<&Error> {
            match e {
                BrokenError::Acct(e) => Some(e),
                BrokenError::Down => None,
            }
        }
        fn on_accountant<R>(
            &mut self,
            _: impl FnOnce(&mut Accountant) -> Result<R, Error>,
        ) -> Result<R, BrokenError> {
            Err(BrokenError::Down)
        }
        fn query(&mut self, _: Space, _: u64) -> Result<Option<UnitInfo>, BrokenError> {
            Ok(None)
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
        // Ops it does not override go through the hook.
        for line in [
            "destroy 1",
            "reserve irq 3",
            "revoke 1 irq 3",
            "bind 1 irq 3",
            "check",
        ] {
            assert_eq!(
                execute(&mut b, &op(line)),
                "err hypervisor back end is down",
                "{line}"
            );
        }
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
        .map(|s| a.execute(&op(s)))
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
    fn booted() -> Accountant {
        let boot =
            BootOptions::parse("reserve_ioports=0x3f8-0x3ff").unwrap_or_else(|e| panic!("{e}"));
        Accountant::boot(&boot, TrackerKind::default()).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Every op's example parses to its own keyword and runs on both back
    /// ends: on the accountant through the default bodies, on `Broken`
    /// through its hook.
    #[test]
    fn every_op_runs_on_every_back_end() {
        let mut a = booted();
        let mut b = Broken;
        for &kw in Keyword::ALL {
            let parsed = op(kw.example());
            assert_eq!(parsed.keyword(), kw, "{}", kw.example());
            assert!(kw.example().starts_with(kw.word()));
            let line = a.execute(&parsed);
            assert!(!line.is_empty(), "{}", kw.example());
            let down = execute(&mut b, &parsed);
            let own = matches!(kw, Keyword::Boot | Keyword::Query);
            assert_eq!(
                down == "err hypervisor back end is down",
                !own,
                "{}: {down}",
                kw.example()
            );
        }
    }

    /// [`Operands::level1`] finds the error [`execute`] prints, for numbers
    /// of every size in every combination of positions, of every op.
    #[test]
    fn level1_is_the_executors_first_error() {
        let huge = "0x10000000000000000";
        let sizes = ["", huge, "99999", "0x10000000000000"];
        let mut a = booted();
        let mut found = 0;
        for &kw in Keyword::ALL {
            let words: Vec<&str> = kw.example().split_whitespace().collect();
            let numeric: Vec<usize> = (1..words.len())
                .filter(|&i| words[i].starts_with(|c: char| c.is_ascii_digit()))
                .collect();
            if kw == Keyword::Boot {
                continue;
            }
            // Each numeric position keeps its word ("") or takes a size.
            for pick in 0..sizes.len().pow(numeric.len() as u32) {
                let mut w = words.clone();
                let mut p = pick;
                for &at in &numeric {
                    let n = sizes[p % sizes.len()];
                    p /= sizes.len();
                    if !n.is_empty() {
                        w[at] = n;
                    }
                }
                let line = w.join(" ");
                let parsed = op(&line);
                let o = parsed.operands();
                let out = a.execute(&parsed);
                match o.level1() {
                    Some(e) => {
                        found += 1;
                        assert_eq!(out, format!("err {e}"), "{line}");
                    }
                    None => assert!(!out.contains("more than 64 bits"), "{line}: {out}"),
                }
                // A too-large number printed is one `any_too_large` saw, and
                // it sees only numbers there are.
                if out.contains("more than 64 bits") || o.any_too_large() {
                    assert!(o.any_too_large() && w.contains(&huge), "{line}: {out}");
                }
            }
        }
        assert!(found > 50, "{found} level-1 errors");
    }
}
