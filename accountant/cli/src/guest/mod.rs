//! Guest configurations: what each domain asks of the host.
//!
//! One file is one domain. [`load`] reads a file with a size cap
//! ([`MAX_CONFIG_BYTES`]), picks the format (libvirt domain XML when the
//! first non-blank byte is `<`, Xen `xl.cfg` otherwise) and returns the
//! domain's [`Request`]s, each with the [`Span`] that asked for it.
//!
//! Only host resources are requests: a page of host I/O memory, a range of
//! host ports, a host interrupt line, a host PCI function. What a guest
//! config names that is *not* a host resource — a guest-frame remap
//! (`@GFN`), an emulated device (`serial='pty'`, an emulated UART at
//! 0x2f8), a virtual slot (`@VSLOT`) — is never a request.

pub mod libvirt;
pub mod xl;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::bounded::{read_regular, BoundedError};
use crate::pci::Bdf;
use crate::span::Span;

/// Largest configuration file read: 4 MiB. Real `xl.cfg` and domain XML
/// files are a few KiB; a larger one is refused before it is read whole.
pub const MAX_CONFIG_BYTES: u64 = 4 << 20;

/// The configuration format of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Xen `xl.cfg(5)`.
    Xl,
    /// libvirt domain XML.
    Libvirt,
}

/// The PCI functions one request names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Functions {
    /// One function.
    One(Bdf),
    /// `BB:DD.*`: every function of the device (those the host has; all
    /// eight without a host map). `func` of the [`Bdf`] is 0.
    All(Bdf),
}

/// One host resource a guest asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Want {
    /// `iomem=`: `count` frames of host I/O memory from frame `first`.
    IoMem {
        /// First host frame (4 KiB page number).
        first: u64,
        /// Number of frames (≥ 1).
        count: u64,
    },
    /// `ioports=`: host ports `first..=last`.
    IoPort {
        /// First port.
        first: u64,
        /// Last port, inclusive.
        last: u64,
    },
    /// `irqs=`: a host interrupt line.
    Irq(u64),
    /// `pci=` / `<hostdev>`: a host PCI function (or a device's functions).
    Pci(Functions),
}

/// A request and where it was made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// What is asked for.
    pub want: Want,
    /// The list item (xl) or element (XML) that asks.
    pub span: Span,
    /// The text as written, for messages (`"3f8-3ff"`, `0000:01:00.0`).
    pub text: String,
}

/// One domain's configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Guest {
    /// The file.
    pub file: Arc<PathBuf>,
    /// Its format.
    pub format: Format,
    /// The domain's name (`name=` / `<name>`), if given.
    pub name: Option<String>,
    /// Its host-resource requests, in file order.
    pub requests: Vec<Request>,
    /// The file's text, for diagnostics that quote it.
    pub source: String,
}

impl Guest {
    /// A domain read from `file`, its requests put in file order (by line,
    /// then column; requests at one place keep their order).
    pub fn new(
        file: Arc<PathBuf>,
        format: Format,
        name: Option<String>,
        mut requests: Vec<Request>,
        source: String,
    ) -> Guest {
        requests.sort_by_key(|r| (r.span.line, r.span.col));
        Guest {
            file,
            format,
            name,
            requests,
            source,
        }
    }

    /// The name to print: the domain's name, else the file name.
    pub fn label(&self) -> String {
        match &self.name {
            Some(n) => n.clone(),
            None => self.file.display().to_string(),
        }
    }
}

/// Why a configuration file was refused. Nothing was checked.
#[derive(Debug)]
pub enum GuestError {
    /// The path is not a regular file (a directory, a device).
    NotAFile(PathBuf),
    /// The file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        error: std::io::Error,
    },
    /// The file is larger than [`MAX_CONFIG_BYTES`].
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit in bytes.
        limit: u64,
    },
    /// The bytes at `line` are not UTF-8.
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// 1-based line of the first bad byte.
        line: u32,
    },
    /// The file is not valid in its format, or a value is not what its key takes.
    Syntax {
        /// Where.
        span: Span,
        /// What is wrong.
        why: String,
    },
}

impl GuestError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            GuestError::NotAFile(p)
            | GuestError::Read { path: p, .. }
            | GuestError::TooLarge { path: p, .. }
            | GuestError::NotUtf8 { path: p, .. } => p,
            GuestError::Syntax { span, .. } => span.file.as_path(),
        }
    }
}

impl fmt::Display for GuestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuestError::NotAFile(p) => write!(f, "{}: not a regular file", p.display()),
            GuestError::Read { path, error } => write!(f, "{}: {error}", path.display()),
            GuestError::TooLarge { path, limit } => {
                write!(f, "{}: larger than {limit} bytes; not read", path.display())
            }
            GuestError::NotUtf8 { path, line } => {
                write!(f, "{}:{line}: not UTF-8 text", path.display())
            }
            GuestError::Syntax { span, why } => write!(f, "{span}: {why}"),
        }
    }
}

impl std::error::Error for GuestError {}

/// Reads at most `limit` bytes of a regular file: a larger file, a
/// directory or a device is an error, and no more than `limit + 1` bytes
/// are ever read (the reading is `bounded.rs`'s, shared with the host map).
pub fn read_capped(path: &Path, limit: u64) -> Result<Vec<u8>, GuestError> {
    read_regular(path, limit).map_err(|e| match e {
        BoundedError::Missing(error) | BoundedError::Io(error) => GuestError::Read {
            path: path.to_path_buf(),
            error,
        },
        BoundedError::NotAFile { .. } => GuestError::NotAFile(path.to_path_buf()),
        BoundedError::TooLarge => GuestError::TooLarge {
            path: path.to_path_buf(),
            limit,
        },
    })
}

/// The bytes as text, or the line of the first byte that is not UTF-8.
pub fn utf8(path: &Path, bytes: Vec<u8>) -> Result<String, GuestError> {
    String::from_utf8(bytes).map_err(|e| {
        let upto = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..upto].iter().filter(|&&b| b == b'\n').count() + 1;
        GuestError::NotUtf8 {
            path: path.to_path_buf(),
            line: u32::try_from(line).unwrap_or(u32::MAX),
        }
    })
}

/// Reads and parses one guest configuration file.
pub fn load(path: &Path) -> Result<Guest, GuestError> {
    let bytes = read_capped(path, MAX_CONFIG_BYTES)?;
    let text = utf8(path, bytes)?;
    parse(Arc::new(path.to_path_buf()), text)
}

/// Parses a configuration already in memory (`file` names it in spans).
pub fn parse(file: Arc<PathBuf>, text: String) -> Result<Guest, GuestError> {
    let body = text.strip_prefix('\u{feff}').unwrap_or(&text);
    if body.trim_start().starts_with('<') {
        libvirt::parse(file, text)
    } else {
        xl::parse(file, text)
    }
}

/// Byte offsets of line starts, to turn an offset into a line and column
/// in O(log lines).
pub(crate) struct LineIndex<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    /// Indexes `text`.
    pub(crate) fn new(text: &'a str) -> LineIndex<'a> {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { text, starts }
    }

    /// Byte offset where 1-based `line` starts.
    pub(crate) fn offset_of_line(&self, line: u32) -> Option<usize> {
        self.starts.get((line as usize).checked_sub(1)?).copied()
    }

    /// Line and column (1-based; the column in characters) of byte offset `at`.
    pub(crate) fn line_col(&self, at: usize) -> (u32, u32) {
        let at = at.min(self.text.len());
        let line = self.starts.partition_point(|&s| s <= at).max(1);
        let start = self.starts.get(line - 1).copied().unwrap_or(0);
        let col = self.text.get(start..at).map_or(0, |s| s.chars().count()) + 1;
        (
            u32::try_from(line).unwrap_or(u32::MAX),
            u32::try_from(col).unwrap_or(u32::MAX),
        )
    }
}
