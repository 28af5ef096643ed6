//! The ioacct I/O resource accountant (SPEC sections 2 and 4).
#![no_std]
#![deny(missing_docs)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod mem;
pub mod track;
pub mod types;

pub use track::{Run, TrackError, Tracker, TrackerKind, TrackerStats};
pub use types::{DomId, Error, ErrorCode, Mode, Space, UnitRange, MAX_DOMID};
