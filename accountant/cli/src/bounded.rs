//! Bounded reading of one regular file, shared by the guest configurations
//! ([`guest::read_capped`](crate::guest::read_capped)) and the host map
//! ([`host::read::read_capped`](crate::host::read::read_capped)), each of
//! which turns a [`BoundedError`] into its own error type.
//!
//! Only regular files are opened: a FIFO (which could block forever), a
//! device node (a symlink to `/dev/zero`) and a directory are refused by
//! `stat` before any `open`; the open is non-blocking and checked again
//! with `fstat`, so a file swapped for a FIFO in between is refused too.
//! The cap is enforced while reading (`Read::take(limit + 1)`), not only
//! from the length `stat` reports (`/proc` files report 0): a file costs at
//! most `limit + 1` bytes of memory whatever it claims.

use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Why a file was not read whole.
#[derive(Debug)]
pub(crate) enum BoundedError {
    /// The path does not exist (what `stat` said).
    Missing(io::Error),
    /// The path is not a regular file.
    NotAFile {
        /// It is a directory.
        dir: bool,
    },
    /// The file has more than the cap's bytes.
    TooLarge,
    /// Reading failed.
    Io(io::Error),
}

fn kind(meta: &Metadata) -> Result<(), BoundedError> {
    if meta.is_file() {
        Ok(())
    } else {
        Err(BoundedError::NotAFile { dir: meta.is_dir() })
    }
}

/// Reads the regular file `path` whole, refusing more than `limit` bytes.
pub(crate) fn read_regular(path: &Path, limit: u64) -> Result<Vec<u8>, BoundedError> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => BoundedError::Missing(e),
        _ => BoundedError::Io(e),
    })?;
    kind(&meta)?;
    if meta.len() > limit {
        return Err(BoundedError::TooLarge);
    }
    // O_NONBLOCK: should the path have become a FIFO since the stat, the
    // open must not wait for a writer; it changes nothing for a regular file.
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(BoundedError::Io)?;
    kind(&file.metadata().map_err(BoundedError::Io)?)?;
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(BoundedError::Io)?;
    if bytes.len() as u64 > limit {
        return Err(BoundedError::TooLarge);
    }
    Ok(bytes)
}
