//! Trace text (SPEC section 3): parsing one line into an [`Op`], and a
//! [`Replay`] that applies a trace to a fresh accountant, one output line per op
//! (each op run by [`crate::exec::execute`]).
//!
//! Parsing is purely syntactic: numbers of any size parse, and are checked
//! against their space when the op runs, so that an out-of-range number is
//! the op's `err out-of-range`, not a malformed line.
//!
//! **Bounds.** A line is at most [`MAX_LINE`] bytes (4 MiB, so that a
//! 10⁶-digit number is still a number); [`LineReader`] streams a trace line
//! by line in memory bounded by that, and reports a longer line as a
//! malformed line without reading the rest of it. Parsing a line takes time
//! linear in its length and keeps at most six of its words. Error messages
//! quote at most [`QUOTE_CHARS`] characters of a word, escaped
//! ([`quote`]), never raw control bytes. A UTF-8 byte-order mark before the
//! first line is skipped.

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

/// The longest line a trace may have, in bytes (without its newline).
pub const MAX_LINE: usize = 4 << 20;

/// The most characters of a word an error message quotes.
pub const QUOTE_CHARS: usize = 40;

/// `w` for an error message: at most [`QUOTE_CHARS`] characters, control
/// and other non-printing characters escaped (`\u{0}`, `\n`…), and, if cut,
/// followed by how long it was.
pub fn quote(w: &str) -> String {
    let mut s = String::new();
    for (i, c) in w.chars().enumerate() {
        if i == QUOTE_CHARS {
            s.push_str(&format!("… ({} bytes)", w.len()));
            break;
        }
        s.extend(c.escape_debug());
    }
    s
}

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

/// Generates [`Keyword`] from its one table: each op's word in a trace.
macro_rules! keywords {
    ($($(#[$doc:meta])* $kw:ident = $word:literal,)*) => {
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
    Boot = "boot",
    /// `create D`.
    Create = "create",
    /// `destroy D`.
    Destroy = "destroy",
    /// `reserve SPACE R`.
    Reserve = "reserve",
    /// `unreserve SPACE R`.
    Unreserve = "unreserve",
    /// `hvmap SPACE R`.
    HvMap = "hvmap",
    /// `hvunmap SPACE R`.
    HvUnmap = "hvunmap",
    /// `grant D SPACE R MODE [force]`.
    Grant = "grant",
    /// `revoke D SPACE R [force]`.
    Revoke = "revoke",
    /// `map D iomem R`.
    Map = "map",
    /// `unmap D iomem R`.
    Unmap = "unmap",
    /// `bind D irq N`.
    Bind = "bind",
    /// `unbind D irq N`.
    Unbind = "unbind",
    /// `access D ioport P [W]`.
    Access = "access",
    /// `query SPACE U`.
    Query = "query",
    /// `check`.
    Check = "check",
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

/// Where [`LineReader`] gets its bytes (`std::io::Read` in a `std` caller).
pub trait ReadBytes {
    /// The error of a failed read.
    type Error;
    /// Reads some bytes into `buf`; `Ok(0)` at the end.
    fn read_bytes(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error>;
}

/// Why [`LineReader::next_line`] stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum LineError<E> {
    /// Line `line` is longer than [`MAX_LINE`]; `start` is its first bytes,
    /// quoted.
    TooLong {
        /// 1-based line number.
        line: usize,
        /// The first bytes, escaped.
        start: String,
    },
    /// The source failed.
    Read(E),
}

impl<E> LineError<E> {
    /// The malformed-line error this is, for [`LineError::TooLong`].
    pub fn trace_error(&self) -> Option<TraceError> {
        match self {
            LineError::TooLong { line, start } => Some(TraceError {
                line: *line,
                msg: format!("line longer than {MAX_LINE} bytes (starts with `{start}`)"),
            }),
            LineError::Read(_) => None,
        }
    }
}

/// Reads a trace line by line in bounded memory: one 64 KiB chunk plus at
/// most [`MAX_LINE`] bytes of the current line, whatever the input.
pub struct LineReader<R> {
    src: R,
    chunk: Vec<u8>,
    pos: usize,
    len: usize,
    line: Vec<u8>,
    number: usize,
    eof: bool,
}

impl<R: ReadBytes> LineReader<R> {
    /// A reader over `src`.
    pub fn new(src: R) -> Self {
        LineReader {
            src,
            chunk: alloc::vec![0; 64 << 10],
            pos: 0,
            len: 0,
            line: Vec::new(),
            number: 0,
            eof: false,
        }
    }

    /// The next line without its `\n` (or `\r\n`), `Ok(None)` at the end.
    pub fn next_line(&mut self) -> Result<Option<&[u8]>, LineError<R::Error>> {
        self.line.clear();
        loop {
            if self.pos == self.len {
                if self.eof {
                    break;
                }
                self.len = self
                    .src
                    .read_bytes(&mut self.chunk)
                    .map_err(LineError::Read)?;
                self.pos = 0;
                if self.len == 0 {
                    self.eof = true;
                    break;
                }
            }
            let avail = &self.chunk[self.pos..self.len];
            let (piece, done) = match avail.iter().position(|b| *b == b'\n') {
                Some(i) => (&avail[..i], i + 1),
                None => (avail, avail.len()),
            };
            let newline = done > piece.len();
            if self.line.len() + piece.len() > MAX_LINE {
                let take = MAX_LINE - self.line.len();
                self.line.extend_from_slice(&piece[..take]);
                let start = String::from_utf8_lossy(&self.line[..self.line.len().min(QUOTE_CHARS)]);
                return Err(LineError::TooLong {
                    line: self.number + 1,
                    start: quote(&start),
                });
            }
            self.line.extend_from_slice(piece);
            self.pos += done;
            if newline {
                self.number += 1;
                if self.line.last() == Some(&b'\r') {
                    self.line.pop();
                }
                return Ok(Some(&self.line));
            }
        }
        if self.line.is_empty() {
            return Ok(None);
        }
        self.number += 1;
        Ok(Some(&self.line))
    }
}

/// Replays a trace line by line.
#[derive(Debug)]
pub struct Replay {
    tracker: TrackerKind,
    page_limit: Option<u64>,
    acct: Option<Accountant>,
    line: usize,
}

impl Replay {
    /// A replay that will boot with the given MMIO tracker.
    pub fn new(tracker: TrackerKind) -> Replay {
        Replay::with_page_limit(tracker, None)
    }

    /// A replay whose MMIO tracker may hold at most `page_limit` pages
    /// (fault injection; see [`Accountant::with_page_limit`]).
    pub fn with_page_limit(tracker: TrackerKind, page_limit: Option<u64>) -> Replay {
        Replay {
            tracker,
            page_limit,
            acct: None,
            line: 0,
        }
    }

    /// Feeds the next line as bytes (invalid UTF-8 replaced, a byte-order
    /// mark before the first line skipped); see [`Replay::feed`].
    pub fn feed_bytes(&mut self, bytes: &[u8]) -> Result<Option<String>, TraceError> {
        let bytes = match (self.line, bytes.strip_prefix(b"\xef\xbb\xbf")) {
            (0, Some(rest)) => rest,
            _ => bytes,
        };
        self.feed(&String::from_utf8_lossy(bytes))
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
                let a = Accountant::boot_with_page_limit(&opts, self.tracker, self.page_limit)
                    .map_err(|e| err(e.to_string()))?;
                self.acct = Some(a);
                Ok(Some("ok".to_string()))
            }
            (None, _) => Err(err("the first op must be `boot`".to_string())),
            (Some(_), Op::Boot(_)) => Err(err("`boot` only as the first op".to_string())),
            (Some(a), op) => Ok(Some(crate::exec::execute(a, &op))),
        }
    }
}
