//! Xen `xl.cfg(5)` files, read as xl's own parser reads them
//! (`tools/libs/util/libxlu_cfg_l.l` and `libxlu_cfg_y.y`).
//!
//! The syntax: one `KEY = VALUE` or `KEY += VALUE` per statement, ended by a
//! newline or `;`. A key is `[a-z][._0-9a-z]*` (lower case only, as xl's
//! lexer has it). A value is a string in single or double quotes (one line;
//! backslash escapes `\" \' \\ \a \b \f \n \r \t \v`), a number
//! (`[0-9][0-9a-fx]*`, kept as text), or a list `[ V, V, … ]` that may span
//! lines, with an optional trailing comma. `#` starts a comment to the end
//! of the line. There is no line continuation: a newline ends a statement
//! except inside `[ … ]`. `=` replaces an earlier setting of the key; `+=`
//! appends to it. Anything else (`(`, `:`, Python's `True`) is a lexical
//! error, and xl refuses the whole file: so does this reader, naming the
//! line and column. A `\r` before a newline is accepted.
//!
//! The keys read (the rest are not host resources):
//!
//! * `iomem = ["IOMEM_START,NUM_PAGES[@GFN]", …]`: hex page numbers
//!   (`sscanf("%x,%x@%x")` in `xl_parse.c`); `@GFN` is where the guest sees
//!   the pages and is not a host resource.
//! * `ioports = ["IOPORT_FIRST[-IOPORT_LAST]", …]`: hex (`strtoul(…, 16)`).
//! * `irqs = [NUMBER, …]`: decimal (`strtoul(…, 10)`), quoted or not.
//! * `pci = ["PCI_SPEC_STRING", …]` (`xl-pci-configuration(5)`):
//!   `[DDDD:]BB:DD.F[@VSLOT][,KEY=VALUE]…` or `bdf=BDF,…`; `F` is a hex digit
//!   or `*` (every function); the keys are `bdf`, `vslot`, `permissive`,
//!   `msitranslate`, `seize`, `power_mgmt`, `rdm_policy`, `name`. A device
//!   named only by `name=` (an assignable-device name) cannot be resolved
//!   from the file: it is refused with a message.
//! * `name = "…"`: the domain's name, for messages.
//!
//! **Bounds.** Lists nest at most [`MAX_DEPTH`] deep; the lexer and parser
//! run in time linear in the file (capped by [`super::MAX_CONFIG_BYTES`]).

use std::path::PathBuf;
use std::sync::Arc;

use super::{Format, Functions, Guest, GuestError, Request, Want};
use crate::pci::Bdf;
use crate::span::Span;

/// Deepest list nesting accepted (`[[[…]]]`); xl's values are at most two deep.
pub const MAX_DEPTH: usize = 32;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Number(String),
    Str(String),
    Comma,
    Open,
    Close,
    Assign,
    AddAssign,
    Semi,
    Newline,
    Eof,
}

/// A value: an atom (string or number, as text) or a list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// A string or number, and where it starts.
    Atom(String, Span),
    /// A list, and where its `[` is.
    List(Vec<Value>, Span),
}

impl Value {
    fn span(&self) -> &Span {
        match self {
            Value::Atom(_, s) | Value::List(_, s) => s,
        }
    }
}

/// One `KEY = VALUE` statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    /// The key.
    pub key: String,
    /// `+=` rather than `=`.
    pub append: bool,
    /// The value.
    pub value: Value,
    /// Where the key is.
    pub span: Span,
}

struct Lexer<'a> {
    file: Arc<PathBuf>,
    text: &'a str,
    pos: usize,
    line: u32,
    col: u32,
}

impl<'a> Lexer<'a> {
    fn span(&self) -> Span {
        Span::new(self.file.clone(), self.line, self.col)
    }

    fn peek(&self) -> Option<char> {
        self.text.get(self.pos..).and_then(|s| s.chars().next())
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line = self.line.saturating_add(1);
            self.col = 1;
        } else {
            self.col = self.col.saturating_add(1);
        }
        Some(c)
    }

    fn error(&self, span: Span, why: String) -> GuestError {
        GuestError::Syntax { span, why }
    }

    /// The next token and where it starts.
    fn next(&mut self) -> Result<(Tok, Span), GuestError> {
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.bump();
        }
        // A `\r` right before a newline (a file written on Windows).
        if self.peek() == Some('\r')
            && self
                .text
                .get(self.pos + 1..)
                .is_some_and(|s| s.starts_with('\n'))
        {
            self.bump();
        }
        let at = self.span();
        let Some(c) = self.peek() else {
            return Ok((Tok::Eof, at));
        };
        let tok = match c {
            'a'..='z' => {
                Tok::Ident(self.take_while(|c| matches!(c, 'a'..='z' | '0'..='9' | '.' | '_')))
            }
            '0'..='9' => Tok::Number(self.take_while(|c| matches!(c, '0'..='9' | 'a'..='f' | 'x'))),
            ',' | '[' | ']' | '=' | ';' | '\n' => {
                self.bump();
                match c {
                    ',' => Tok::Comma,
                    '[' => Tok::Open,
                    ']' => Tok::Close,
                    '=' => Tok::Assign,
                    ';' => Tok::Semi,
                    _ => Tok::Newline,
                }
            }
            '+' if self
                .text
                .get(self.pos + 1..)
                .is_some_and(|s| s.starts_with('=')) =>
            {
                self.bump();
                self.bump();
                Tok::AddAssign
            }
            '#' => {
                while !matches!(self.peek(), None | Some('\n')) {
                    self.bump();
                }
                self.bump();
                Tok::Newline
            }
            '"' | '\'' => Tok::Str(self.string(c, &at)?),
            _ => {
                let word: String = self
                    .text
                    .get(self.pos..)
                    .unwrap_or("")
                    .chars()
                    .take_while(|c| !c.is_whitespace())
                    .take(40)
                    .collect();
                let hint = if "+-.():".contains(c) {
                    " (xl.cfg is not Python: values are strings, numbers or [lists])"
                } else {
                    ""
                };
                return Err(self.error(
                    at,
                    format!("lexical error at `{}`{hint}", word.escape_default()),
                ));
            }
        };
        Ok((tok, at))
    }

    fn take_while(&mut self, ok: impl Fn(char) -> bool) -> String {
        let start = self.pos;
        while self.peek().is_some_and(&ok) {
            self.bump();
        }
        self.text.get(start..self.pos).unwrap_or("").to_string()
    }

    fn string(&mut self, quote: char, at: &Span) -> Result<String, GuestError> {
        self.bump();
        let mut out = String::new();
        loop {
            match self.bump() {
                None | Some('\n') => {
                    return Err(self.error(
                        at.clone(),
                        "unterminated string (a string ends on its own line)".to_string(),
                    ))
                }
                Some(c) if c == quote => return Ok(out),
                Some('\\') => {
                    let esc = self.span();
                    let c = match self.bump() {
                        Some(c @ ('"' | '\'' | '\\')) => c,
                        Some('a') => '\x07',
                        Some('b') => '\x08',
                        Some('f') => '\x0c',
                        Some('n') => '\n',
                        Some('r') => '\r',
                        Some('t') => '\t',
                        Some('v') => '\x0b',
                        other => {
                            return Err(self.error(
                                esc,
                                format!(
                                    "escape `\\{}` in a quoted string is not one xl accepts",
                                    other
                                        .map(|c| c.escape_default().to_string())
                                        .unwrap_or_default()
                                ),
                            ))
                        }
                    };
                    out.push(c);
                }
                Some(c) => out.push(c),
            }
        }
    }
}

struct Parser<'a> {
    lex: Lexer<'a>,
    tok: Tok,
    at: Span,
}

impl<'a> Parser<'a> {
    fn advance(&mut self) -> Result<(), GuestError> {
        let (t, s) = self.lex.next()?;
        self.tok = t;
        self.at = s;
        Ok(())
    }

    fn unexpected(&self, wanted: &str) -> GuestError {
        let got = match &self.tok {
            Tok::Ident(s) | Tok::Number(s) => format!("`{s}`"),
            Tok::Str(_) => "a string".to_string(),
            Tok::Comma => "`,`".to_string(),
            Tok::Open => "`[`".to_string(),
            Tok::Close => "`]`".to_string(),
            Tok::Assign => "`=`".to_string(),
            Tok::AddAssign => "`+=`".to_string(),
            Tok::Semi => "`;`".to_string(),
            Tok::Newline => "the end of the line".to_string(),
            Tok::Eof => "the end of the file".to_string(),
        };
        GuestError::Syntax {
            span: self.at.clone(),
            why: format!("syntax error: expected {wanted}, found {got}"),
        }
    }

    fn skip_newlines(&mut self) -> Result<(), GuestError> {
        while self.tok == Tok::Newline {
            self.advance()?;
        }
        Ok(())
    }

    fn value(&mut self, depth: usize) -> Result<Value, GuestError> {
        let at = self.at.clone();
        match std::mem::replace(&mut self.tok, Tok::Eof) {
            Tok::Str(s) | Tok::Number(s) => {
                self.advance()?;
                Ok(Value::Atom(s, at))
            }
            Tok::Open => {
                if depth >= MAX_DEPTH {
                    return Err(GuestError::Syntax {
                        span: at,
                        why: format!("lists nested more than {MAX_DEPTH} deep"),
                    });
                }
                self.advance()?;
                self.skip_newlines()?;
                let mut items = Vec::new();
                while self.tok != Tok::Close {
                    items.push(self.value(depth + 1)?);
                    self.skip_newlines()?;
                    match self.tok {
                        Tok::Comma => {
                            self.advance()?;
                            self.skip_newlines()?;
                        }
                        Tok::Close => {}
                        _ => return Err(self.unexpected("`,` or `]`")),
                    }
                }
                self.advance()?;
                Ok(Value::List(items, at))
            }
            other => {
                self.tok = other;
                Err(self.unexpected("a string, a number or `[`"))
            }
        }
    }

    fn file(&mut self) -> Result<Vec<Setting>, GuestError> {
        let mut out = Vec::new();
        loop {
            match std::mem::replace(&mut self.tok, Tok::Eof) {
                Tok::Eof => return Ok(out),
                Tok::Newline | Tok::Semi => self.advance()?,
                Tok::Ident(key) => {
                    let span = self.at.clone();
                    self.advance()?;
                    let append = match self.tok {
                        Tok::Assign => false,
                        Tok::AddAssign => true,
                        _ => return Err(self.unexpected("`=` or `+=`")),
                    };
                    self.advance()?;
                    let value = self.value(0)?;
                    match self.tok {
                        Tok::Newline | Tok::Semi | Tok::Eof => {}
                        _ => return Err(self.unexpected("the end of the statement")),
                    }
                    out.push(Setting {
                        key,
                        append,
                        value,
                        span,
                    });
                }
                other => {
                    self.tok = other;
                    return Err(self.unexpected("a setting `key = value`"));
                }
            }
        }
    }
}

/// Parses the statements of an xl.cfg text.
pub fn settings(file: Arc<PathBuf>, text: &str) -> Result<Vec<Setting>, GuestError> {
    let body = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lex = Lexer {
        file: file.clone(),
        text: body,
        pos: 0,
        line: 1,
        col: 1,
    };
    let mut p = Parser {
        lex,
        tok: Tok::Eof,
        at: Span::new(file, 1, 1),
    };
    p.advance()?;
    p.file()
}

/// The effective value of `key`: the last `=`, extended by later `+=`.
fn lookup<'s>(settings: &'s [Setting], key: &str) -> Option<(Vec<&'s Value>, &'s Setting)> {
    let mut items: Option<(Vec<&Value>, &Setting)> = None;
    for s in settings.iter().filter(|s| s.key == key) {
        let mine: Vec<&Value> = match &s.value {
            Value::List(v, _) => v.iter().collect(),
            atom => vec![atom],
        };
        items = match (items, s.append) {
            (Some((mut old, first)), true) => {
                old.extend(mine);
                Some((old, first))
            }
            _ => Some((mine, s)),
        };
    }
    items
}

fn bad(span: &Span, why: String) -> GuestError {
    GuestError::Syntax {
        span: span.clone(),
        why,
    }
}

/// `strtoul(s, &end, radix)` for a whole word: leading blanks, an optional
/// `0x` when hex, at least one digit; returns the value and the rest.
fn number(s: &str, radix: u32) -> Option<(u64, &str)> {
    let s = s.trim_start_matches([' ', '\t']);
    let s = if radix == 16 {
        s.strip_prefix("0x")
            .or_else(|| s.strip_prefix("0X"))
            .filter(|r| r.starts_with(|c: char| c.is_ascii_hexdigit()))
            .unwrap_or(s)
    } else {
        s
    };
    let end = s.find(|c: char| !c.is_digit(radix)).unwrap_or(s.len());
    if end == 0 {
        return None;
    }
    let digits = s.get(..end)?;
    let v = u64::from_str_radix(digits, radix).ok()?;
    Some((v, s.get(end..)?))
}

fn atom<'v>(v: &'v Value, key: &str) -> Result<(&'v str, &'v Span), GuestError> {
    match v {
        Value::Atom(s, span) => Ok((s, span)),
        Value::List(_, span) => Err(bad(
            span,
            format!("`{key}` takes a list of strings, not a list of lists"),
        )),
    }
}

/// `IOMEM_START,NUM_PAGES[@GFN]`, hex.
pub fn iomem(s: &str) -> Option<(u64, u64)> {
    let (start, rest) = number(s, 16)?;
    let rest = rest.strip_prefix(',')?;
    let (count, rest) = number(rest, 16)?;
    if !rest.is_empty() {
        // `@GFN` is where the guest sees the pages: not a host resource, but it must parse.
        let (_gfn, rest) = number(rest.strip_prefix('@')?, 16)?;
        if !rest.is_empty() {
            return None;
        }
    }
    Some((start, count))
}

/// `IOPORT_FIRST[-IOPORT_LAST]`, hex.
pub fn ioports(s: &str) -> Option<(u64, u64)> {
    let (first, rest) = number(s, 16)?;
    if rest.is_empty() {
        return Some((first, first));
    }
    let (last, rest) = number(rest.strip_prefix('-')?, 16)?;
    (rest.is_empty() && first <= last).then_some((first, last))
}

/// `[DDDD:]BB:DD.F` with `F` a hex digit or `*`.
fn bdf(s: &str) -> Result<Functions, String> {
    if let Some(dev) = s.strip_suffix(".*") {
        let b = Bdf::parse(&format!("{dev}.0")).map_err(|e| format!("`{s}`: {e}"))?;
        return Ok(Functions::All(b));
    }
    Bdf::parse(s)
        .map(Functions::One)
        .map_err(|e| format!("`{s}`: {e}"))
}

/// A `PCI_SPEC_STRING` (xl-pci-configuration(5)): the host function(s) it names.
pub fn pci_spec(s: &str) -> Result<Functions, String> {
    let mut found: Option<Functions> = None;
    let mut name = false;
    for (i, word) in s.split(',').enumerate() {
        if word.is_empty() && i > 0 {
            continue;
        }
        match word.split_once('=') {
            None if i == 0 => {
                let b = word.split_once('@').map_or(word, |(b, vslot)| {
                    if number(vslot, 16).is_some_and(|(v, r)| v <= 0x1f && r.is_empty()) {
                        b
                    } else {
                        ""
                    }
                });
                if b.is_empty() {
                    return Err(format!(
                        "`{word}`: bad virtual slot after `@` (hex, at most 1f)"
                    ));
                }
                found = Some(bdf(b)?);
            }
            None => return Err(format!("`{word}` is not `key=value`")),
            Some(("bdf", v)) => {
                if found.is_some() {
                    return Err("the device is named twice".to_string());
                }
                found = Some(bdf(v)?);
            }
            Some(("vslot", v)) => {
                if !number(v, 16).is_some_and(|(n, r)| n <= 0x1f && r.is_empty()) {
                    return Err(format!("vslot `{v}`: hex, at most 1f"));
                }
            }
            Some(("permissive" | "msitranslate" | "seize" | "power_mgmt", _)) => {}
            Some(("rdm_policy", v)) => {
                if !matches!(v, "strict" | "relaxed") {
                    return Err(format!("rdm_policy `{v}`: strict or relaxed"));
                }
            }
            Some(("name", _)) => name = true,
            Some((k, _)) => return Err(format!("unknown PCI_SPEC_STRING option `{k}`")),
        }
    }
    match (found, name) {
        (Some(f), false) => Ok(f),
        (None, true) => Err("a device named by `name=` (an assignable-device name) cannot be resolved from the file: name it by `bdf=`".to_string()),
        (Some(_), true) => Err("both `bdf` and `name` given".to_string()),
        (None, false) => Err("no device: expected `[DDDD:]BB:DD.F`".to_string()),
    }
}

/// Parses an xl.cfg text into a guest's requests.
pub fn parse(file: Arc<PathBuf>, text: String) -> Result<Guest, GuestError> {
    let set = settings(file.clone(), &text)?;
    let mut requests = Vec::new();
    let name = lookup(&set, "name").and_then(|(v, _)| match v.first() {
        Some(Value::Atom(s, _)) => Some(s.clone()),
        _ => None,
    });
    for key in ["iomem", "ioports", "irqs", "pci"] {
        let Some((items, setting)) = lookup(&set, key) else {
            continue;
        };
        if !matches!(setting.value, Value::List(..)) {
            return Err(bad(
                setting.value.span(),
                format!("`{key}` takes a list `[ … ]`"),
            ));
        }
        for v in items {
            let (s, span) = atom(v, key)?;
            let want = match key {
                "iomem" => {
                    let (first, count) = iomem(s).ok_or_else(|| {
                        bad(
                            span,
                            format!(
                                "iomem `{}`: expected \"IOMEM_START,NUM_PAGES[@GFN]\" in hex",
                                s.escape_default()
                            ),
                        )
                    })?;
                    if count == 0 {
                        continue;
                    }
                    Want::IoMem { first, count }
                }
                "ioports" => {
                    let (first, last) = ioports(s).ok_or_else(|| bad(span, format!("ioports `{}`: expected \"IOPORT_FIRST[-IOPORT_LAST]\" in hex, first <= last", s.escape_default())))?;
                    Want::IoPort { first, last }
                }
                "irqs" => {
                    let n = number(s, 10)
                        .filter(|(_, r)| r.is_empty())
                        .map(|(n, _)| n)
                        .ok_or_else(|| {
                            bad(
                                span,
                                format!("irqs `{}`: expected a decimal number", s.escape_default()),
                            )
                        })?;
                    Want::Irq(n)
                }
                _ => Want::Pci(pci_spec(s).map_err(|why| bad(span, format!("pci: {why}")))?),
            };
            requests.push(Request {
                want,
                span: span.clone(),
                text: s.to_string(),
            });
        }
    }
    Ok(Guest::new(file, Format::Xl, name, requests, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guest(text: &str) -> Result<Guest, GuestError> {
        parse(Arc::new(PathBuf::from("t.cfg")), text.to_string())
    }

    fn wants(text: &str) -> Vec<Want> {
        match guest(text) {
            Ok(g) => g.requests.into_iter().map(|r| r.want).collect(),
            Err(e) => panic!("{e}"),
        }
    }

    fn syntax_at(text: &str) -> (u32, u32) {
        match guest(text) {
            Err(GuestError::Syntax { span, .. }) => (span.line, span.col),
            other => panic!("expected a syntax error, got {other:?}"),
        }
    }

    #[test]
    fn the_four_keys_in_their_bases() {
        let w = wants(
            "name = \"dd\"\niomem = [ \"fe000,10@c0000\", '0xfeb00,1' ]\nioports = [\"3f8-3ff\", \"0x60\"]\nirqs = [ 11, \"16\" ]\npci = [ '01:00.0@3,permissive=1', 'bdf=0000:02:00.*,seize=1' ]\n",
        );
        assert_eq!(
            w,
            vec![
                Want::IoMem {
                    first: 0xfe000,
                    count: 0x10
                },
                Want::IoMem {
                    first: 0xfeb00,
                    count: 1
                },
                Want::IoPort {
                    first: 0x3f8,
                    last: 0x3ff
                },
                Want::IoPort {
                    first: 0x60,
                    last: 0x60
                },
                Want::Irq(11),
                Want::Irq(16),
                Want::Pci(Functions::One(Bdf {
                    seg: 0,
                    bus: 1,
                    dev: 0,
                    func: 0
                })),
                Want::Pci(Functions::All(Bdf {
                    seg: 0,
                    bus: 2,
                    dev: 0,
                    func: 0
                })),
            ]
        );
    }

    #[test]
    fn lists_span_lines_with_comments_and_trailing_commas() {
        let g = guest("# a guest\nioports = [\n  \"2f8-2ff\", # COM2\n\n  \"3e8\",\n]\nmemory = 512; vcpus = 2\n").expect("valid");
        assert_eq!(g.requests.len(), 2);
        assert_eq!((g.requests[1].span.line, g.requests[1].span.col), (5, 3));
    }

    #[test]
    fn later_settings_replace_and_append() {
        assert_eq!(
            wants("irqs = [1]\nirqs = [2]\nirqs += [3]\n"),
            vec![Want::Irq(2), Want::Irq(3)]
        );
    }

    #[test]
    fn emulated_devices_and_remaps_are_not_requests() {
        let w = wants(
            "serial = 'pty'\ntype = \"hvm\"\nvif = ['bridge=xenbr0']\niomem = ['fe000,1@2000']\n",
        );
        assert_eq!(
            w,
            vec![Want::IoMem {
                first: 0xfe000,
                count: 1
            }]
        );
    }

    #[test]
    fn malformed_lines_name_their_place() {
        for (text, at) in [
            ("memory = 512\nirqs = (1, 2)\n", (2, 8)),
            ("name = \"x\nmemory = 1\n", (1, 8)),
            ("Name = 'x'\n", (1, 1)),
            ("ioports = [\"3f8-3ff\"\n\"2f8\"]\n", (2, 1)),
            ("ioports = [\"3ff-3f8\"]\n", (1, 12)),
            ("iomem = [\"fe000\"]\n", (1, 10)),
            ("iomem = [\"fe000,1@\"]\n", (1, 10)),
            ("irqs = [\"0x10\"]\n", (1, 9)),
            ("pci = ['01:00.8']\n", (1, 8)),
            ("pci = ['01:00.0,frob=1']\n", (1, 8)),
            ("pci = ['name=nic0']\n", (1, 8)),
            ("iomem = 'fe000,1'\n", (1, 9)),
            ("a = 1 b = 2\n", (1, 7)),
        ] {
            assert_eq!(syntax_at(text), at, "{text:?}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_recursed() {
        let deep = format!("x = {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
        assert!(matches!(guest(&deep), Err(GuestError::Syntax { .. })));
    }

    #[test]
    fn pci_spec_strings_of_the_man_page() {
        // The man page writes vslot 20, which xl itself refuses (hex, at most 1f).
        for s in [
            "36:00.0@1f,seize=1",
            "36:00.0,vslot=1f,seize=1",
            "bdf=36:00.0,vslot=1f,seize=1",
        ] {
            assert_eq!(
                pci_spec(s),
                Ok(Functions::One(Bdf {
                    seg: 0,
                    bus: 0x36,
                    dev: 0,
                    func: 0
                })),
                "{s}"
            );
        }
        assert!(pci_spec("36:00.0@20").is_err());
        assert!(pci_spec("36:00.0@40").is_err());
        assert!(pci_spec("bdf=36:00.0,name=x").is_err());
    }
}
