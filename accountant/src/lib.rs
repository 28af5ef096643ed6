//! The ioacct I/O resource accountant (SPEC sections 2 and 4).
//!
//! It decides who may use which I/O port, I/O memory frame and interrupt line:
//! two domains never use the same unit unless both asked to share it, the
//! hypervisor's reservations are never handed out, and revoking a unit ends
//! its use (deferred: the unit drains; forced: the use is torn down).
//!
//! * [`Accountant`] — the model (state machine in [`model`]'s docs), range-based
//!   on segment maps; every operation returns a typed result and a failed one
//!   changes nothing.
//! * [`PortChecker`] — the lock-free radix-tree port check for vCPU threads.
//! * [`track`] — MMIO use tracking: three interchangeable trackers on
//!   [`mem`]'s slab allocator and xmalloc baseline.
//! * [`ops`] — the op vocabulary of SPEC section 3: each op's word, parse,
//!   back-end method and output line; [`trace`] — trace files and their replay.
//!
//! ```
//! use accountant::{Accountant, BootOptions, DomId, Mode, Space, TrackerKind, UnitRange};
//!
//! // 1. Boot from a Xen-style command line.
//! let opts = BootOptions::parse("reserve_ioports=0x3f8-0x3ff").unwrap();
//! let mut acct = Accountant::boot(&opts, TrackerKind::SlabExtent).unwrap();
//! // 2. Dom0 maps device A's page by default right.
//! let page = UnitRange::one(Space::IoMem, 0xfeb00).unwrap();
//! acct.map(DomId::DOM0, page).unwrap();
//! // 3. A driver domain asks for the page: refused while dom0 uses it...
//! let d1 = DomId::new(1).unwrap();
//! acct.create(d1).unwrap();
//! assert!(acct.grant(d1, page, Mode::Exclusive, false).is_err());
//! // 4. ...unless forced: dom0's mapping is torn down and reported.
//! let torn = acct.grant(d1, page, Mode::Exclusive, true).unwrap();
//! assert_eq!(torn[0].dom, DomId::DOM0);
//! // 5. vCPU threads check ports without the accountant's lock.
//! let ports = acct.port_checker();
//! assert!(!ports.check(0, 0x3f8, 1), "the console is the hypervisor's");
//! ```
#![no_std]
#![deny(missing_docs)]

extern crate alloc;
#[cfg(any(test, loom))]
extern crate std;

pub mod boot;
mod doms;
mod index;
pub mod mem;
pub mod model;
pub mod num;
pub mod ops;
mod ports;
mod segs;
mod sync;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod trace;
pub mod track;
pub mod types;

pub use boot::{BootError, BootOptions, IoDefault};
pub use model::{Accountant, Quotas, Revoked, Teardown, TeardownItem, UnitInfo, Violation};
pub use ops::{execute, Control, Direct};
pub use ports::{BoundPortChecker, PortChecker};
pub use track::{Run, TrackError, Tracker, TrackerKind, TrackerStats};
pub use types::{DomId, Error, ErrorCode, Mode, QuotaKind, Space, UnitRange, MAX_DOMID};

// The hypervisor keeps the accountant behind a mutex and hands each vCPU
// thread a checker: these must stay true.
const _: () = {
    const fn send<T: Send>() {}
    const fn send_sync<T: Send + Sync>() {}
    send::<Accountant>();
    send_sync::<PortChecker>();
    send_sync::<BoundPortChecker>();
};
