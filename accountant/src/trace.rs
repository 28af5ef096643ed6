//! Trace text (SPEC section 3): parsing one line into an [`Op`], and a
//! [`Replay`] that applies a trace to a fresh accountant, one output line per op
//! (each op run by [`crate::exec::execute`]).
//!
//! Parsing is purely syntactic: numbers of any size parse, and are checked
//! against their space when the op runs, so that an out-of-range number is
//! the op's `err out-of-range`, not a malformed line.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use crate::boot::BootOptions;
use crate::model::Accountant;
use crate::num::{Num, RawRange};
use crate::{Mode, Space, TrackerKind};

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

/// Why a line could not be parsed (or, for `boot`, applied).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub msg: String,
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.msg)
    }
}

fn num(w: &str) -> Result<Num, String> {
    Num::parse(w).ok_or_else(|| format!("`{w}` is not a number"))
}

fn range(w: &str) -> Result<RawRange, String> {
    RawRange::parse(w).ok_or_else(|| format!("`{w}` is not a range"))
}

fn space(w: &str) -> Result<Space, String> {
    Space::from_name(w).ok_or_else(|| format!("`{w}` is not a space (ioport, iomem, irq)"))
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
        Some(w) => Err(format!("expected `force` or nothing, got `{w}`")),
    }
}

/// Parses the code part of one line (comments already stripped, not blank).
pub fn parse_op(code: &str) -> Result<Op, String> {
    let w: Vec<&str> = code.split_whitespace().collect();
    let Some((&op, args)) = w.split_first() else {
        return Err("empty line".to_string());
    };
    let arity = |min: usize, max: usize| -> Result<(), String> {
        if args.len() < min || args.len() > max {
            Err(if min == max {
                format!("`{op}` takes {min} words, got {}", args.len())
            } else {
                format!("`{op}` takes {min} to {max} words, got {}", args.len())
            })
        } else {
            Ok(())
        }
    };
    Ok(match op {
        "boot" => {
            let opts = code.trim_start().strip_prefix("boot").unwrap_or("");
            Op::Boot(BootOptions::parse(opts).map_err(|e| e.to_string())?)
        }
        "create" | "destroy" => {
            arity(1, 1)?;
            let d = num(args[0])?;
            if op == "create" {
                Op::Create(d)
            } else {
                Op::Destroy(d)
            }
        }
        "reserve" | "unreserve" | "hvmap" | "hvunmap" => {
            arity(2, 2)?;
            let (s, r) = (space(args[0])?, range(args[1])?);
            match op {
                "reserve" => Op::Reserve(s, r),
                "unreserve" => Op::Unreserve(s, r),
                "hvmap" => Op::HvMap(s, r),
                _ => Op::HvUnmap(s, r),
            }
        }
        "grant" => {
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
        "revoke" => {
            arity(3, 4)?;
            Op::Revoke {
                dom: num(args[0])?,
                space: space(args[1])?,
                range: range(args[2])?,
                force: force(args.get(3))?,
            }
        }
        "map" | "unmap" | "bind" | "unbind" => {
            arity(3, 3)?;
            let want = if op.ends_with("map") {
                Space::IoMem
            } else {
                Space::Irq
            };
            only(args[1], want, op)?;
            let (d, r) = (num(args[0])?, range(args[2])?);
            match op {
                "map" => Op::Map(d, r),
                "unmap" => Op::Unmap(d, r),
                "bind" => Op::Bind(d, r),
                _ => Op::Unbind(d, r),
            }
        }
        "access" => {
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
        "query" => {
            arity(2, 2)?;
            Op::Query(space(args[0])?, num(args[1])?)
        }
        "check" => {
            arity(0, 0)?;
            Op::Check
        }
        _ => return Err(format!("unknown op `{op}`")),
    })
}

/// Replays a trace line by line.
#[derive(Debug)]
pub struct Replay {
    tracker: TrackerKind,
    acct: Option<Accountant>,
    line: usize,
}

impl Replay {
    /// A replay that will boot with the given MMIO tracker.
    pub fn new(tracker: TrackerKind) -> Replay {
        Replay {
            tracker,
            acct: None,
            line: 0,
        }
    }

    /// The accountant, once booted.
    pub fn accountant(&self) -> Option<&Accountant> {
        self.acct.as_ref()
    }

    /// Feeds the next line. `Ok(None)` for a blank or comment line,
    /// `Ok(Some(output))` for an op, `Err` for a line that ends the run.
    pub fn feed(&mut self, text: &str) -> Result<Option<String>, TraceError> {
        self.line += 1;
        let line = self.line;
        let err = |msg: String| TraceError { line, msg };
        let code = text.split('#').next().unwrap_or("").trim();
        if code.is_empty() {
            return Ok(None);
        }
        let op = parse_op(code).map_err(err)?;
        match (&mut self.acct, op) {
            (None, Op::Boot(opts)) => {
                let a = Accountant::boot(&opts, self.tracker).map_err(|e| err(e.to_string()))?;
                self.acct = Some(a);
                Ok(Some("ok".to_string()))
            }
            (None, _) => Err(err("the first op must be `boot`".to_string())),
            (Some(_), Op::Boot(_)) => Err(err("`boot` only as the first op".to_string())),
            (Some(a), op) => Ok(Some(crate::exec::execute(a, &op))),
        }
    }
}
