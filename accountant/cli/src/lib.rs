//! `ioacct check`: guest configurations against a host's resource map,
//! judged by the accountant.
//!
//! * [`host`] — the host's own resource map: `/proc/iomem`, `/proc/ioports`,
//!   `/proc/interrupts` and `/sys/bus/pci/devices`, live or from a snapshot
//!   directory (`ioacct capture`).
//! * [`pci`] — PCI addresses (`[SSSS:]BB:DD.F`), normalised.
//! * [`span`] — where a finding comes from: a file, a line, a column.
#![deny(missing_docs)]

mod bounded;
pub mod cli;
pub mod finding;
pub mod guest;
pub mod host;
pub mod judge;
pub mod pci;
pub mod report;
pub mod rules;
pub mod scale;
pub mod share;
pub mod span;
