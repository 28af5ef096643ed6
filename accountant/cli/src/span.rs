//! Where a resource was named: a file, a line and a column, for diagnostics.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// A place in an input file. Lines and columns count from 1; a column of 0
/// means "the whole line".
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    /// The file, as the user named it (or as the host map's reader opened it).
    pub file: Arc<PathBuf>,
    /// 1-based line.
    pub line: u32,
    /// 1-based column; 0 when only the line is known.
    pub col: u32,
}

impl Span {
    /// A span at `line:col` of `file`.
    pub fn new(file: Arc<PathBuf>, line: u32, col: u32) -> Span {
        Span { file, line, col }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.col == 0 {
            write!(f, "{}:{}", self.file.display(), self.line)
        } else {
            write!(f, "{}:{}:{}", self.file.display(), self.line, self.col)
        }
    }
}
