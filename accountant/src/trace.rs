//! Trace text (SPEC section 3): reading a trace line by line, its comments,
//! and a [`Replay`] that applies a trace to a fresh accountant, one output
//! line per op (each line parsed by [`parse_op`] and run by
//! [`crate::ops::execute`]; the ops themselves are [`crate::ops`]).
//!
//! **Bounds.** A line is at most [`MAX_LINE`] bytes (4 MiB, so that a
//! 10⁶-digit number is still a number); [`LineReader`] streams a trace line
//! by line in memory bounded by that, and reports a longer line as a
//! malformed line without reading the rest of it. Error messages
//! quote at most [`QUOTE_CHARS`] characters of a word, escaped
//! ([`quote`]), never raw control bytes. A UTF-8 byte-order mark before the
//! first line is skipped.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use crate::model::Accountant;
use crate::ops::{parse_op, Op};
use crate::TrackerKind;

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
            (Some(a), op) => Ok(Some(a.execute(&op))),
        }
    }
}
