//! The fixed-size event record and the small enums it carries.
//!
//! Everything here is `no_std` and allocation-free: a [`Record`] is 64 plain
//! bytes (one cache line), `Copy`, and built with `const fn` setters so that a
//! tracepoint's closure compiles to a handful of stores.

/// The one table of tracepoint kinds: for each, its doc, variant,
/// `repr(u16)` value, lower-case name (trace files, `tracing` targets, the
/// Chrome trace) and layer (the Chrome category). It hands the table to the
/// macro `$then` (after `$args`), which generates what it needs from it:
/// [`Kind`] and its tables here, the `tracing` sink's per-kind targets.
/// Adding a kind is one line here; every table follows.
macro_rules! with_kind_table {
    ($then:ident $(, $args:tt)*) => {
        $then! { $($args,)*
            /// `grant D SPACE R MODE [force]`.
            Grant = 1, "grant", "accountant";
            /// `revoke D SPACE R [force]`.
            Revoke = 2, "revoke", "accountant";
            /// `map D iomem R`: one mapping of every frame in the range.
            Map = 3, "map", "accountant";
            /// `unmap D iomem R`.
            Unmap = 4, "unmap", "accountant";
            /// `bind D irq N`.
            Bind = 5, "bind", "accountant";
            /// `unbind D irq N`.
            Unbind = 6, "unbind", "accountant";
            /// `reserve SPACE R` by the hypervisor.
            Reserve = 7, "reserve", "accountant";
            /// `unreserve SPACE R`.
            Unreserve = 8, "unreserve", "accountant";
            /// `hvmap SPACE R`: the hypervisor's own use of reserved units.
            HvMap = 9, "hv_map", "accountant";
            /// `hvunmap SPACE R`.
            HvUnmap = 10, "hv_unmap", "accountant";
            /// A forced end of a domain's uses (forced revoke/grant, destroy); the
            /// range is the torn-down range, `extra` the number of uses ended.
            Teardown = 11, "teardown", "accountant";
            /// A guest port access check (`access D ioport P [W]`): `first..=last`
            /// are the ports touched, the outcome is allow or deny.
            PortCheck = 12, "port_check", "accountant";
            /// `create D`.
            Create = 13, "create", "accountant";
            /// `destroy D`.
            Destroy = 14, "destroy", "accountant";
            /// A VM exit handled by `hv`: `extra` is the exit reason, `first..=last`
            /// the port or guest-physical range if any, `value` the data.
            VmExit = 0x100, "vm_exit", "hv";
            /// A hypercall: `extra` is the call number, `value` its return value.
            Hypercall = 0x101, "hypercall", "hv";
            /// A KVM memory slot added: `first..=last` guest frames, `extra` the slot.
            MemslotAdd = 0x102, "memslot_add", "hv";
            /// A KVM memory slot deleted: `first..=last` guest frames, `extra` the slot.
            MemslotDelete = 0x103, "memslot_delete", "hv";
            /// An interrupt injected into a guest: `first` the line, `value` the vector.
            IrqInject = 0x104, "irq_inject", "hv";
            /// Records were lost on this thread's ring (it was full): `extra` is how
            /// many since the previous marker. Written by the rings, never by a site.
            Lost = 0xffff, "lost_records", "tracepoints";
        }
    };
}
#[cfg_attr(not(feature = "std"), allow(unused_imports))]
pub(crate) use with_kind_table;

/// Generates [`Kind`] and its tables from [`with_kind_table`].
macro_rules! define_kind {
    ($($(#[$doc:meta])* $kind:ident = $raw:literal, $name:literal, $layer:literal;)*) => {
        /// What happened: one variant per instrumented operation.
        ///
        /// The accountant's operations come first (`1..`), the hypervisor's own
        /// events from `0x100`, and the collector's lost-records marker is
        /// [`Kind::Lost`].
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[repr(u16)]
        pub enum Kind {
            $($(#[$doc])* $kind = $raw,)*
        }

        /// Each kind's position in the table: the discriminants count from 0.
        #[repr(usize)]
        enum Position {
            $($kind,)*
        }

        impl Kind {
            /// Every kind, in declaration order; [`Kind::index`] is the position here.
            pub const ALL: [Kind; [$(Kind::$kind),*].len()] = [$(Kind::$kind),*];

            /// Dense index `0..Kind::COUNT`, for per-kind arrays.
            pub const fn index(self) -> usize {
                match self {
                    $(Kind::$kind => Position::$kind as usize,)*
                }
            }

            /// Lower-case name, as used in trace files, `tracing` targets and the
            /// Chrome trace (`port_check`, `hv_map`, ...).
            pub const fn name(self) -> &'static str {
                match self {
                    $(Kind::$kind => $name,)*
                }
            }

            /// Which layer emits this kind: `"accountant"`, `"hv"` or `"tracepoints"`
            /// (the lost-records marker). Used as the Chrome trace category.
            pub const fn layer(self) -> &'static str {
                match self {
                    $(Kind::$kind => $layer,)*
                }
            }
        }
    };
}

with_kind_table!(define_kind);

impl Kind {
    /// Number of kinds (length of [`Kind::ALL`]); sizes per-kind tables.
    pub const COUNT: usize = Kind::ALL.len();

    /// The kind whose `repr(u16)` value is `raw`, if any.
    pub const fn from_u16(raw: u16) -> Option<Kind> {
        let mut i = 0;
        while i < Kind::COUNT {
            if Kind::ALL[i] as u16 == raw {
                return Some(Kind::ALL[i]);
            }
            i += 1;
        }
        None
    }
}

/// How an operation ended. Plain `u8` so this crate does not depend on the
/// accountant: errors `16..=30` follow the accountant's `ErrorCode`
/// declaration order, so `Outcome::from_error_index(code as u8)` converts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Outcome {
    /// Succeeded.
    Ok = 0,
    /// Accepted, but completes later (a revoke whose units drain).
    Pending = 1,
    /// A port access check allowed the access.
    Allow = 2,
    /// A port access check denied the access.
    Deny = 3,
    /// `bad-range`.
    BadRange = 16,
    /// `out-of-range`.
    OutOfRange = 17,
    /// `no-such-domain`.
    NoSuchDomain = 18,
    /// `domain-exists`.
    DomainExists = 19,
    /// `not-permitted`.
    NotPermitted = 20,
    /// `not-io-memory`.
    NotIoMemory = 21,
    /// `reserved`.
    Reserved = 22,
    /// `not-reserved`.
    NotReserved = 23,
    /// `conflict`.
    Conflict = 24,
    /// `draining`.
    Draining = 25,
    /// `in-use`.
    InUse = 26,
    /// `not-granted`.
    NotGranted = 27,
    /// `not-mapped`.
    NotMapped = 28,
    /// `not-bound`.
    NotBound = 29,
    /// `no-memory`.
    NoMemory = 30,
    /// `quota`.
    Quota = 31,
    /// The event has no result (a VM exit, a lost-records marker).
    None = 255,
}

impl Outcome {
    /// The error outcomes in the accountant's `ErrorCode` declaration order.
    pub const ERRORS: [Outcome; 16] = [
        Outcome::BadRange,
        Outcome::OutOfRange,
        Outcome::NoSuchDomain,
        Outcome::DomainExists,
        Outcome::NotPermitted,
        Outcome::NotIoMemory,
        Outcome::Reserved,
        Outcome::NotReserved,
        Outcome::Conflict,
        Outcome::Draining,
        Outcome::InUse,
        Outcome::NotGranted,
        Outcome::NotMapped,
        Outcome::NotBound,
        Outcome::Quota,
        Outcome::NoMemory,
    ];

    /// The error outcome at position `index` of the accountant's `ErrorCode`
    /// enum (`BadRange` = 0 ... `NoMemory` = 15); `None` past the end.
    pub const fn from_error_index(index: u8) -> Option<Outcome> {
        if (index as usize) < Outcome::ERRORS.len() {
            Some(Outcome::ERRORS[index as usize])
        } else {
            None
        }
    }

    /// True for the error outcomes (`16..=31`).
    pub const fn is_error(self) -> bool {
        let v = self as u8;
        v >= 16 && v <= 31
    }

    /// The word the replay output uses: `ok`, `pending`, `allow`, `deny`, the
    /// spec's error words (`bad-range`, ...), or `-` for [`Outcome::None`].
    pub const fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Pending => "pending",
            Outcome::Allow => "allow",
            Outcome::Deny => "deny",
            Outcome::BadRange => "bad-range",
            Outcome::OutOfRange => "out-of-range",
            Outcome::NoSuchDomain => "no-such-domain",
            Outcome::DomainExists => "domain-exists",
            Outcome::NotPermitted => "not-permitted",
            Outcome::NotIoMemory => "not-io-memory",
            Outcome::Reserved => "reserved",
            Outcome::NotReserved => "not-reserved",
            Outcome::Conflict => "conflict",
            Outcome::Draining => "draining",
            Outcome::InUse => "in-use",
            Outcome::NotGranted => "not-granted",
            Outcome::NotMapped => "not-mapped",
            Outcome::NotBound => "not-bound",
            Outcome::NoMemory => "no-memory",
            Outcome::Quota => "quota",
            Outcome::None => "-",
        }
    }
}

/// The resource space an event concerns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Space {
    /// The event names no space (create, destroy, most VM exits).
    None = 0,
    /// I/O ports `0..=0xffff`.
    IoPort = 1,
    /// 4 KiB frames of I/O memory.
    IoMem = 2,
    /// Interrupt lines (GSIs).
    Irq = 3,
    /// Guest-physical memory (`hv` memslots, MMIO exits).
    GuestMem = 4,
}

impl Space {
    /// The spec's word for the space (`ioport`, `iomem`, `irq`), `guestmem`
    /// for guest memory, `-` for none.
    pub const fn name(self) -> &'static str {
        match self {
            Space::None => "-",
            Space::IoPort => "ioport",
            Space::IoMem => "iomem",
            Space::Irq => "irq",
            Space::GuestMem => "guestmem",
        }
    }
}

/// Grant mode (or access width class) attached to an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Mode {
    /// No mode applies.
    None = 0,
    /// `exclusive` grant.
    Exclusive = 1,
    /// `shared` grant.
    Shared = 2,
}

impl Mode {
    /// `exclusive`, `shared`, or `-`.
    pub const fn name(self) -> &'static str {
        match self {
            Mode::None => "-",
            Mode::Exclusive => "exclusive",
            Mode::Shared => "shared",
        }
    }
}

/// The domain id used for the hypervisor's own operations (reserve,
/// unreserve, hvmap, hvunmap); real domain ids stop at 32751.
pub const HYPERVISOR: u16 = u16::MAX;

/// [`Record::flags`] bit: `tsc` is the start of the operation and
/// `duration` its length (the record was built with [`Record::since`]).
pub const FLAG_TIMED: u8 = 1 << 0;
/// [`Record::flags`] bit: the operation was forced (`force` on grant/revoke).
pub const FLAG_FORCE: u8 = 1 << 1;
/// [`Record::flags`] bit, on [`Kind::VmExit`] port exits: the access reached
/// the hypervisor through PVM's #GP fallback (`hv/src/pvio.rs`) instead of a
/// native `KVM_EXIT_IO`. Clear on a native exit, so a VT-x or AMD-V trace
/// shows no record with it set.
pub const FLAG_PVM_TRAP: u8 = 1 << 2;

/// A timestamp taken by [`crate::start`] at the beginning of a timed
/// operation; zero when tracing was off at that moment (the event is then
/// recorded as an instant, without a duration).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Stamp(pub u64);

impl Stamp {
    /// True when the stamp holds a real timestamp.
    pub const fn is_set(self) -> bool {
        self.0 != 0
    }
}

/// One trace event: 64 bytes, fixed layout, no pointers, so it can be
/// copied into a ring slot with a single `memcpy`.
///
/// Sites build it with [`Record::new`] and the `const fn` setters; the
/// timestamp, duration and thread id are filled in on the emit path, not by
/// the site.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Record {
    /// Raw TSC (x86_64) or monotonic-nanosecond clock value: the moment of
    /// the event, or its start if [`FLAG_TIMED`] is set. Convert with a
    /// `Calibration` (std feature).
    pub tsc: u64,
    /// Length of a timed operation in the same clock ticks as `tsc`; zero for
    /// instants.
    pub duration: u64,
    /// First unit of the range concerned (port, frame, line, guest frame).
    pub first: u64,
    /// Last unit of the range (inclusive); equals `first` for one unit.
    pub last: u64,
    /// Kind-specific detail: VM exit reason, hypercall number, memslot
    /// number, uses torn down, or the count of lost records.
    pub extra: u64,
    /// Kind-specific data: the value of a port access, a hypercall's return
    /// value, an injected vector.
    pub value: u64,
    /// Small id of the emitting thread (assigned per ring, from 1); 0 when
    /// the record did not pass through a ring.
    pub thread: u32,
    /// What happened.
    pub kind: Kind,
    /// The domain acting or acted upon; [`HYPERVISOR`] for the hypervisor.
    pub domain: u16,
    /// Resource space of `first..=last`.
    pub space: Space,
    /// Result of the operation.
    pub outcome: Outcome,
    /// Grant mode, where one applies.
    pub mode: Mode,
    /// [`FLAG_TIMED`], [`FLAG_FORCE`], [`FLAG_PVM_TRAP`].
    pub flags: u8,
    /// Access width in bytes for port checks and exits (1, 2, 4), else 0.
    pub width: u8,
    _reserved: [u8; 3],
}

const _: () = assert!(core::mem::size_of::<Record>() == 64);

impl Record {
    /// An event of `kind` with every other field empty (domain 0, no space,
    /// no range, [`Outcome::None`]).
    #[inline(always)]
    pub const fn new(kind: Kind) -> Record {
        Record {
            tsc: 0,
            duration: 0,
            first: 0,
            last: 0,
            extra: 0,
            value: 0,
            thread: 0,
            kind,
            domain: 0,
            space: Space::None,
            outcome: Outcome::None,
            mode: Mode::None,
            flags: 0,
            width: 0,
            _reserved: [0; 3],
        }
    }

    /// Sets the domain.
    #[inline(always)]
    pub const fn domain(mut self, domain: u16) -> Record {
        self.domain = domain;
        self
    }

    /// Sets the space and the inclusive range `first..=last` within it.
    #[inline(always)]
    pub const fn range(mut self, space: Space, first: u64, last: u64) -> Record {
        self.space = space;
        self.first = first;
        self.last = last;
        self
    }

    /// Sets the result.
    #[inline(always)]
    pub const fn outcome(mut self, outcome: Outcome) -> Record {
        self.outcome = outcome;
        self
    }

    /// Sets the grant mode.
    #[inline(always)]
    pub const fn mode(mut self, mode: Mode) -> Record {
        self.mode = mode;
        self
    }

    /// Marks the operation as forced.
    #[inline(always)]
    pub const fn forced(mut self, force: bool) -> Record {
        if force {
            self.flags |= FLAG_FORCE;
        }
        self
    }

    /// Marks a port exit that came through PVM's #GP fallback.
    #[inline(always)]
    pub const fn trapped(mut self, trapped: bool) -> Record {
        if trapped {
            self.flags |= FLAG_PVM_TRAP;
        }
        self
    }

    /// Sets the access width in bytes.
    #[inline(always)]
    pub const fn width(mut self, width: u8) -> Record {
        self.width = width;
        self
    }

    /// Sets the kind-specific `extra` word.
    #[inline(always)]
    pub const fn extra(mut self, extra: u64) -> Record {
        self.extra = extra;
        self
    }

    /// Sets the kind-specific `value` word.
    #[inline(always)]
    pub const fn value(mut self, value: u64) -> Record {
        self.value = value;
        self
    }

    /// Makes this a timed event that started at `start`: the emit path then
    /// stores `start` as the timestamp and `now - start` as the duration.
    /// An unset stamp (tracing was off when the operation began) leaves the
    /// event an instant.
    #[inline(always)]
    pub const fn since(mut self, start: Stamp) -> Record {
        if start.is_set() {
            self.tsc = start.0;
            self.flags |= FLAG_TIMED;
        }
        self
    }

    /// True when the record carries a duration ([`FLAG_TIMED`]).
    #[inline]
    pub const fn is_timed(&self) -> bool {
        self.flags & FLAG_TIMED != 0
    }

    /// True when the operation was forced ([`FLAG_FORCE`]).
    #[inline]
    pub const fn is_forced(&self) -> bool {
        self.flags & FLAG_FORCE != 0
    }

    /// True for a port exit that came through PVM's #GP fallback
    /// ([`FLAG_PVM_TRAP`]).
    #[inline]
    pub const fn is_trapped(&self) -> bool {
        self.flags & FLAG_PVM_TRAP != 0
    }

    /// A lost-records marker: `count` records of thread `thread` were dropped
    /// before the moment `tsc`.
    pub const fn lost(count: u64, thread: u32, tsc: u64) -> Record {
        let mut r = Record::new(Kind::Lost).extra(count);
        r.thread = thread;
        r.tsc = tsc;
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_index_matches_all_and_from_u16_round_trips() {
        for (i, k) in Kind::ALL.iter().enumerate() {
            assert_eq!(k.index(), i);
            assert_eq!(Kind::from_u16(*k as u16), Some(*k));
        }
        assert_eq!(Kind::from_u16(0), None);
        assert_eq!(Kind::from_u16(0x200), None);
    }

    #[test]
    fn error_index_follows_accountant_order() {
        assert_eq!(Outcome::from_error_index(0), Some(Outcome::BadRange));
        assert_eq!(Outcome::from_error_index(8), Some(Outcome::Conflict));
        assert_eq!(Outcome::from_error_index(14), Some(Outcome::Quota));
        assert_eq!(Outcome::from_error_index(15), Some(Outcome::NoMemory));
        assert_eq!(Outcome::from_error_index(16), None);
        assert!(Outcome::NotBound.is_error());
        assert!(!Outcome::Allow.is_error());
        assert!(!Outcome::None.is_error());
        assert_eq!(Outcome::InUse.name(), "in-use");
    }

    #[test]
    fn builder_sets_fields_and_since_marks_timed() {
        let r = Record::new(Kind::Grant)
            .domain(7)
            .range(Space::IoMem, 0x100, 0x1ff)
            .mode(Mode::Shared)
            .forced(true)
            .outcome(Outcome::Conflict)
            .since(Stamp(42));
        assert_eq!(r.domain, 7);
        assert_eq!((r.space, r.first, r.last), (Space::IoMem, 0x100, 0x1ff));
        assert_eq!(r.mode, Mode::Shared);
        assert!(r.is_forced());
        assert!(r.is_timed());
        assert_eq!(r.tsc, 42);
        assert!(!r.is_trapped());
        let exit = Record::new(Kind::VmExit).trapped(true).forced(false);
        assert!(exit.is_trapped() && !exit.is_forced() && !exit.is_timed());
        assert!(!Record::new(Kind::VmExit).trapped(false).is_trapped());
        let untimed = Record::new(Kind::Map).since(Stamp(0));
        assert!(!untimed.is_timed());
        assert_eq!(untimed.tsc, 0);
    }
}
