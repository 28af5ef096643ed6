//! Checked identifiers and ranges, and the accountant's error type.
//!
//! Everything a guest or a trace hands the accountant is an allegation until it
//! has been through one of the constructors here. Having a [`DomId`] tells you
//! the id is in `0..=MAX_DOMID`; having a [`UnitRange`] tells you
//! `first <= last <= space.max_unit()`, so `last + 1` and `last - first + 1`
//! cannot overflow.

use core::fmt;

/// The highest domain id (`0x7fef`, as Xen's `DOMID_FIRST_RESERVED - 1`).
pub const MAX_DOMID: u16 = 32751;

/// One of the three resource spaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Space {
    /// I/O ports, `0..=0xffff`.
    IoPort,
    /// 4 KiB frames of I/O memory, 40-bit frame numbers.
    IoMem,
    /// Interrupt lines (GSIs), `0..=1023`.
    Irq,
}

impl Space {
    /// All spaces, in index order.
    pub const ALL: [Space; 3] = [Space::IoPort, Space::IoMem, Space::Irq];

    /// The highest valid unit of this space.
    pub const fn max_unit(self) -> u64 {
        match self {
            Space::IoPort => 0xffff,
            Space::IoMem => 0xff_ffff_ffff,
            Space::Irq => 1023,
        }
    }

    /// The word used in traces and on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            Space::IoPort => "ioport",
            Space::IoMem => "iomem",
            Space::Irq => "irq",
        }
    }

    /// Parses the trace word (`ioport`, `iomem`, `irq`).
    pub fn from_name(s: &str) -> Option<Space> {
        Space::ALL.into_iter().find(|sp| sp.name() == s)
    }

    /// Dense index (0, 1, 2) for per-space arrays.
    pub const fn index(self) -> usize {
        match self {
            Space::IoPort => 0,
            Space::IoMem => 1,
            Space::Irq => 2,
        }
    }
}

impl fmt::Display for Space {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A domain id known to be in `0..=MAX_DOMID` (it may or may not exist).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DomId(u16);

impl DomId {
    /// Domain 0, which exists from boot and cannot be destroyed.
    pub const DOM0: DomId = DomId(0);

    /// Checks a domain id; `Err(OutOfRange)` beyond [`MAX_DOMID`].
    pub fn new(id: u64) -> Result<DomId, Error> {
        if id <= MAX_DOMID as u64 {
            Ok(DomId(id as u16))
        } else {
            Err(Error::OutOfRange { value: id })
        }
    }

    /// The id as a number.
    pub const fn get(self) -> u16 {
        self.0
    }
}

impl fmt::Display for DomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "d{}", self.0)
    }
}

/// An inclusive range of units in one space, checked at construction:
/// `first <= last <= space.max_unit()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UnitRange {
    space: Space,
    first: u64,
    last: u64,
}

impl UnitRange {
    /// Checks `first..=last` against `space`: `BadRange` when `first > last`,
    /// else `OutOfRange` when `last` is beyond the space.
    pub fn new(space: Space, first: u64, last: u64) -> Result<UnitRange, Error> {
        if first > last {
            return Err(Error::BadRange { first, last });
        }
        if last > space.max_unit() {
            return Err(Error::OutOfRange { value: last });
        }
        Ok(UnitRange { space, first, last })
    }

    /// A single unit.
    pub fn one(space: Space, unit: u64) -> Result<UnitRange, Error> {
        UnitRange::new(space, unit, unit)
    }

    /// The whole space.
    pub const fn all(space: Space) -> UnitRange {
        UnitRange {
            space,
            first: 0,
            last: space.max_unit(),
        }
    }

    /// The space.
    pub const fn space(&self) -> Space {
        self.space
    }
    /// First unit (inclusive).
    pub const fn first(&self) -> u64 {
        self.first
    }
    /// Last unit (inclusive).
    pub const fn last(&self) -> u64 {
        self.last
    }
    /// Number of units; at most 2^40, so it cannot overflow.
    pub const fn len(&self) -> u64 {
        self.last - self.first + 1
    }
    /// Always false: a range holds at least one unit. (For clippy's `len_without_is_empty`.)
    pub const fn is_empty(&self) -> bool {
        false
    }
    /// Whether `unit` lies in the range.
    pub const fn contains(&self, unit: u64) -> bool {
        self.first <= unit && unit <= self.last
    }
    /// The intersection with `first..=last` of the same space, if any.
    pub fn clamp(&self, first: u64, last: u64) -> Option<UnitRange> {
        let f = if first > self.first {
            first
        } else {
            self.first
        };
        let l = if last < self.last { last } else { self.last };
        (f <= l).then_some(UnitRange {
            space: self.space,
            first: f,
            last: l,
        })
    }
}

impl fmt::Display for UnitRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{} {:#x}", self.space, self.first)
        } else {
            write!(f, "{} {:#x}-{:#x}", self.space, self.first, self.last)
        }
    }
}

/// How a domain holds a unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mode {
    /// The only holder.
    Exclusive,
    /// One of possibly several holders, all shared.
    Shared,
}

impl Mode {
    /// The trace word.
    pub const fn name(self) -> &'static str {
        match self {
            Mode::Exclusive => "exclusive",
            Mode::Shared => "shared",
        }
    }
}

/// The error codes of SPEC section 2, in precedence order (a lower
/// [`ErrorCode::level`] wins over a higher one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorCode {
    /// `A > B`, or an access width other than 1, 2, 4.
    BadRange,
    /// A number beyond the space or the domain id range.
    OutOfRange,
    /// The domain does not exist.
    NoSuchDomain,
    /// `create` of an existing domain.
    DomainExists,
    /// `destroy 0`.
    NotPermitted,
    /// A frame declared as RAM.
    NotIoMemory,
    /// A unit reserved by the hypervisor.
    Reserved,
    /// `unreserve`/`hvmap`/`hvunmap` of a unit that is not reserved.
    NotReserved,
    /// Another holder, or a mode mismatch.
    Conflict,
    /// Another domain drains the unit (or, for map/bind, the domain itself does).
    Draining,
    /// The unit is in use (by default right, or by the hypervisor).
    InUse,
    /// The domain does not hold the unit.
    NotGranted,
    /// Unmap of a frame the domain does not map (or `hvunmap` at count 0).
    NotMapped,
    /// Unbind of a line the domain has not bound.
    NotBound,
    /// A per-domain limit (frames mapped, tracking records) would be
    /// exceeded; nothing changed.
    Quota,
    /// An allocation failed (the page source is exhausted); nothing changed.
    NoMemory,
}

impl ErrorCode {
    /// The word printed after `err`.
    pub const fn name(self) -> &'static str {
        match self {
            ErrorCode::BadRange => "bad-range",
            ErrorCode::OutOfRange => "out-of-range",
            ErrorCode::NoSuchDomain => "no-such-domain",
            ErrorCode::DomainExists => "domain-exists",
            ErrorCode::NotPermitted => "not-permitted",
            ErrorCode::NotIoMemory => "not-io-memory",
            ErrorCode::Reserved => "reserved",
            ErrorCode::NotReserved => "not-reserved",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Draining => "draining",
            ErrorCode::InUse => "in-use",
            ErrorCode::NotGranted => "not-granted",
            ErrorCode::NotMapped => "not-mapped",
            ErrorCode::NotBound => "not-bound",
            ErrorCode::Quota => "quota",
            ErrorCode::NoMemory => "no-memory",
        }
    }

    /// Precedence level of SPEC section 2 (1 = checked first). `Quota` and
    /// `NoMemory` rank after every other condition.
    pub const fn level(self) -> u8 {
        match self {
            ErrorCode::BadRange | ErrorCode::OutOfRange => 1,
            ErrorCode::NoSuchDomain | ErrorCode::DomainExists | ErrorCode::NotPermitted => 2,
            ErrorCode::NotIoMemory => 3,
            ErrorCode::Reserved | ErrorCode::NotReserved => 4,
            ErrorCode::Conflict => 5,
            ErrorCode::Draining => 6,
            ErrorCode::InUse => 7,
            ErrorCode::NotGranted => 8,
            ErrorCode::NotMapped | ErrorCode::NotBound => 9,
            ErrorCode::Quota | ErrorCode::NoMemory => 10,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A failed operation. Every variant carries the values that made it fail;
/// the operation changed nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// `first > last`, or a bad access width (`first` = `last` = width).
    BadRange {
        /// Start as given.
        first: u64,
        /// End as given.
        last: u64,
    },
    /// A number beyond its space or the domain id range (saturated to `u64::MAX`).
    OutOfRange {
        /// The offending value.
        value: u64,
    },
    /// The domain does not exist.
    NoSuchDomain(DomId),
    /// The domain exists already.
    DomainExists(DomId),
    /// The operation is not allowed on this domain (domain 0 cannot be destroyed).
    NotPermitted(DomId),
    /// The range touches RAM; `unit` is the first such frame.
    NotIoMemory {
        /// First RAM frame in the range.
        unit: u64,
    },
    /// `unit` is reserved by the hypervisor.
    Reserved {
        /// The reserved unit.
        unit: u64,
    },
    /// `unit` is not reserved.
    NotReserved {
        /// The unit.
        unit: u64,
    },
    /// `unit` is held by `holder` in a way that excludes the request.
    Conflict {
        /// The contested unit.
        unit: u64,
        /// The domain that holds it.
        holder: DomId,
    },
    /// `unit` is being drained by `domain`.
    Draining {
        /// The unit.
        unit: u64,
        /// The draining domain.
        domain: DomId,
    },
    /// `unit` is in use by `user` (`None`: by the hypervisor).
    InUse {
        /// The unit.
        unit: u64,
        /// The domain using it, or `None` for the hypervisor.
        user: Option<DomId>,
    },
    /// The domain does not hold `unit`.
    NotGranted {
        /// The unit.
        unit: u64,
    },
    /// The domain (or the hypervisor) does not map `unit`.
    NotMapped {
        /// The unit.
        unit: u64,
    },
    /// The domain has not bound `unit`.
    NotBound {
        /// The unit.
        unit: u64,
    },
    /// A number of more than 64 bits (beyond every space): `out-of-range`.
    TooLarge,
    /// `dom` would exceed its `limit` of `kind`.
    Quota {
        /// The domain.
        dom: DomId,
        /// Which limit.
        kind: QuotaKind,
        /// The limit.
        limit: u64,
    },
    /// The page source is exhausted.
    NoMemory,
}

/// The per-domain limits (SPEC section 2, level 10).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QuotaKind {
    /// Frames mapped, in pages: every live mapping of a frame counts one.
    Frames,
    /// Tracking records the domain's mappings and bindings need.
    Records,
}

impl QuotaKind {
    /// The name in error details and boot options.
    pub const fn name(self) -> &'static str {
        match self {
            QuotaKind::Frames => "frames",
            QuotaKind::Records => "records",
        }
    }
}

impl Error {
    /// The code of SPEC section 2.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::BadRange { .. } => ErrorCode::BadRange,
            Error::OutOfRange { .. } | Error::TooLarge => ErrorCode::OutOfRange,
            Error::NoSuchDomain(_) => ErrorCode::NoSuchDomain,
            Error::DomainExists(_) => ErrorCode::DomainExists,
            Error::NotPermitted(_) => ErrorCode::NotPermitted,
            Error::NotIoMemory { .. } => ErrorCode::NotIoMemory,
            Error::Reserved { .. } => ErrorCode::Reserved,
            Error::NotReserved { .. } => ErrorCode::NotReserved,
            Error::Conflict { .. } => ErrorCode::Conflict,
            Error::Draining { .. } => ErrorCode::Draining,
            Error::InUse { .. } => ErrorCode::InUse,
            Error::NotGranted { .. } => ErrorCode::NotGranted,
            Error::NotMapped { .. } => ErrorCode::NotMapped,
            Error::NotBound { .. } => ErrorCode::NotBound,
            Error::Quota { .. } => ErrorCode::Quota,
            Error::NoMemory => ErrorCode::NoMemory,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code())?;
        match self {
            Error::BadRange { first, last } => write!(f, " {first:#x}-{last:#x}"),
            Error::OutOfRange { value } => write!(f, " {value:#x}"),
            Error::NoSuchDomain(d) | Error::DomainExists(d) | Error::NotPermitted(d) => {
                write!(f, " {d}")
            }
            Error::NotIoMemory { unit }
            | Error::Reserved { unit }
            | Error::NotReserved { unit }
            | Error::NotGranted { unit }
            | Error::NotMapped { unit }
            | Error::NotBound { unit } => write!(f, " at {unit:#x}"),
            Error::Conflict { unit, holder } => write!(f, " at {unit:#x} held by {holder}"),
            Error::Draining { unit, domain } => write!(f, " at {unit:#x} drained by {domain}"),
            Error::InUse {
                unit,
                user: Some(d),
            } => write!(f, " at {unit:#x} used by {d}"),
            Error::InUse { unit, user: None } => write!(f, " at {unit:#x} used by the hypervisor"),
            Error::TooLarge => f.write_str(" (a number of more than 64 bits)"),
            Error::Quota { dom, kind, limit } => {
                write!(f, " {dom} {} limit {limit}", kind.name())
            }
            Error::NoMemory => Ok(()),
        }
    }
}
