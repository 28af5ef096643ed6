//! The accountant: SPEC section 2 as a library.
//!
//! # Unit states and transitions
//!
//! Every unit of every space is in exactly one of these states (per domain
//! where it says so); `Accountant::check_invariants` verifies them.
//!
//! ```text
//!            reserve                    grant D
//!   reserved <-------- free (default-  ---------> held by D (exclusive, or
//!   (hv use  --------> accessible to    <-------   shared with other holders)
//!    count)  unreserve  the default     revoke D      |            ^
//!     |  ^   (count 0)  I/O domain)     (unused,      | revoke D   | grant D
//!     |  |                              or force:     | while D    | (ends the
//!  hvmap hvunmap                        teardown)     v uses it    |  draining)
//!     v  |                                         draining by D --+
//!   (count+1 / -1)                                    | last unmap/unbind by D
//!                                                     v
//!                                                   free (or still held by others)
//! ```
//!
//! * *used*: orthogonal to the above — domain D has `n > 0` live mappings
//!   (iomem) or bindings (irq) of the unit. A use is allowed only while D
//!   holds the unit, drains it, or the unit is default-accessible to D.
//!   Ports have no uses: they are checked on every access.
//! * *default-accessible* to the default I/O domain: not reserved, no holder,
//!   not draining, not RAM, and (ports) not in `dom0_ioports_disable`.
//! * A *teardown* (forced grant, forced revoke, destroy) ends uses at once;
//!   the ended uses are returned as a [`Teardown`] so that a hypervisor can
//!   remove the mappings before its own operation returns.
//!
//! Every operation checks the whole range before changing anything, in the
//! SPEC's error precedence, so a failed operation changes nothing.

use crate::sync::Arc;
use alloc::boxed::Box;
use alloc::collections::BTreeSet;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use smallvec::SmallVec;

use crate::boot::{BootError, BootOptions, IoDefault};
use crate::doms::DomTable;
use crate::index::RangeSet;
use crate::ports::{BoundPortChecker, PortChecker, PortTable, Retired};
use crate::segs::SegMap;
use crate::track::{
    new_tracker, new_tracker_with_limit, runs_around, MapRefusal, Run, RunChange, TrackError,
    Tracker, TrackerKind, TrackerStats,
};
use crate::{DomId, Error, Mode, QuotaKind, Space, UnitRange};
use tracepoints::{tp, Kind, Outcome, Record, Stamp};

fn tp_space(s: Space) -> tracepoints::Space {
    match s {
        Space::IoPort => tracepoints::Space::IoPort,
        Space::IoMem => tracepoints::Space::IoMem,
        Space::Irq => tracepoints::Space::Irq,
    }
}

fn tp_mode(m: Mode) -> tracepoints::Mode {
    match m {
        Mode::Exclusive => tracepoints::Mode::Exclusive,
        Mode::Shared => tracepoints::Mode::Shared,
    }
}

fn tp_outcome<T>(r: &Result<T, Error>) -> Outcome {
    use crate::ErrorCode as C;
    // Exhaustive: adding an error code fails to compile until it is traced.
    match r.as_ref().map_err(Error::code) {
        Ok(_) => Outcome::Ok,
        Err(C::BadRange) => Outcome::BadRange,
        Err(C::OutOfRange) => Outcome::OutOfRange,
        Err(C::NoSuchDomain) => Outcome::NoSuchDomain,
        Err(C::DomainExists) => Outcome::DomainExists,
        Err(C::NotPermitted) => Outcome::NotPermitted,
        Err(C::NotIoMemory) => Outcome::NotIoMemory,
        Err(C::Reserved) => Outcome::Reserved,
        Err(C::NotReserved) => Outcome::NotReserved,
        Err(C::Conflict) => Outcome::Conflict,
        Err(C::Draining) => Outcome::Draining,
        Err(C::InUse) => Outcome::InUse,
        Err(C::NotGranted) => Outcome::NotGranted,
        Err(C::NotMapped) => Outcome::NotMapped,
        Err(C::NotBound) => Outcome::NotBound,
        Err(C::Quota) => Outcome::Quota,
        Err(C::NoMemory) => Outcome::NoMemory,
    }
}

/// A record for an operation on `r` by `dom` (`HYPERVISOR` for the hypervisor's own).
/// The record of a traced operation, emitted (out of line: tracing is
/// usually off).
#[cold]
#[inline(never)]
fn emit_op<T>(kind: Kind, dom: u16, r: Option<UnitRange>, res: &Result<T, Error>, t0: Stamp) {
    tracepoints::emit(op_record(kind, dom, r, res).since(t0));
}

fn op_record<T>(kind: Kind, dom: u16, r: Option<UnitRange>, res: &Result<T, Error>) -> Record {
    let rec = Record::new(kind).domain(dom).outcome(tp_outcome(res));
    match r {
        Some(r) => rec.range(tp_space(r.space()), r.first(), r.last()),
        None => rec,
    }
}

/// The state of a run of units (one segment of a [`SegMap`]).
#[derive(Debug, Default, PartialEq, Eq)]
struct Unit {
    /// A RAM frame (boot `ram=`): not I/O memory.
    ram: bool,
    /// A port in `dom0_ioports_disable`: no default right.
    no_default: bool,
    /// Reserved by the hypervisor.
    reserved: bool,
    /// The hypervisor's own use count (only while reserved).
    hv_uses: u32,
    /// Grant holders, sorted by domain (inline up to two: a grant or
    /// revoke of a unit with one or two holders allocates nothing).
    holders: SmallVec<[(DomId, Mode); 2]>,
    /// Domains whose grant was revoked while they used the unit, sorted.
    draining: SmallVec<[DomId; 2]>,
}

impl Clone for Unit {
    // By slice copies: the derived clone of a `SmallVec` extends element by
    // element.
    fn clone(&self) -> Unit {
        Unit {
            ram: self.ram,
            no_default: self.no_default,
            reserved: self.reserved,
            hv_uses: self.hv_uses,
            holders: SmallVec::from_slice(&self.holders),
            draining: SmallVec::from_slice(&self.draining),
        }
    }
}

impl Unit {
    fn holds(&self, d: DomId) -> Option<Mode> {
        self.holders.iter().find(|(h, _)| *h == d).map(|(_, m)| *m)
    }
    fn drains(&self, d: DomId) -> bool {
        self.draining.contains(&d)
    }
    fn add_holder(&mut self, d: DomId, mode: Mode) {
        if let Err(i) = self.holders.binary_search_by_key(&d, |(h, _)| *h) {
            self.holders.insert(i, (d, mode));
        }
    }
    fn add_draining(&mut self, d: DomId) {
        if let Err(i) = self.draining.binary_search(&d) {
            self.draining.insert(i, d);
        }
    }
}

/// One use ended by a teardown: `dom`'s `count` uses of each unit in `first..=last`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TeardownItem {
    /// The domain whose use ended.
    pub dom: DomId,
    /// `IoMem` (mappings) or `Irq` (bindings).
    pub space: Space,
    /// First unit.
    pub first: u64,
    /// Last unit (inclusive).
    pub last: u64,
    /// How many uses of each unit ended.
    pub count: u32,
}

/// The uses an operation tore down; a hypervisor must remove them for real
/// before its own operation returns.
pub type Teardown = Vec<TeardownItem>;

/// What a revoke did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revoked {
    /// Some units are still used and drain until their last use ends (`pending`).
    pub pending: bool,
    /// Uses torn down by a forced revoke.
    pub teardown: Teardown,
}

/// The state of one unit, for `query`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnitInfo {
    /// The space.
    pub space: Space,
    /// The unit.
    pub unit: u64,
    /// Reserved by the hypervisor.
    pub reserved: bool,
    /// The hypervisor's use count.
    pub hv_uses: u32,
    /// Grant holders.
    pub holders: Vec<(DomId, Mode)>,
    /// Draining domains.
    pub draining: Vec<DomId>,
    /// Uses by domain (mappings or bindings).
    pub uses: Vec<(DomId, u32)>,
    /// Whether the default I/O domain may use it by default right.
    pub default_accessible: bool,
}

impl fmt::Display for UnitInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:#x}:", self.space, self.unit)?;
        if self.reserved {
            write!(f, " reserved(hv uses {})", self.hv_uses)?;
        }
        for (d, m) in &self.holders {
            write!(f, " held-by {d} {}", m.name())?;
        }
        for d in &self.draining {
            write!(f, " drained-by {d}")?;
        }
        for (d, n) in &self.uses {
            write!(f, " used-by {d} x{n}")?;
        }
        if self.default_accessible {
            f.write_str(" default-accessible")?;
        }
        if !self.reserved && self.holders.is_empty() && self.draining.is_empty() {
            f.write_str(" free")?;
        }
        Ok(())
    }
}

/// A broken invariant (SPEC section 2, numbered as there).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Invariant number 1–7 (0: the segment map itself is malformed).
    pub invariant: u8,
    /// The space.
    pub space: Space,
    /// The first unit concerned.
    pub unit: u64,
    /// The domain concerned, if any.
    pub dom: Option<DomId>,
    /// What is wrong.
    pub what: &'static str,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invariant {} at {} {:#x}",
            self.invariant, self.space, self.unit
        )?;
        if let Some(d) = self.dom {
            write!(f, " ({d})")?;
        }
        write!(f, ": {}", self.what)
    }
}

/// Keeps the error of the lowest precedence level seen (the first at that level).
#[derive(Default)]
struct Worst(Option<Error>);

impl Worst {
    fn offer(&mut self, e: Error) {
        if self
            .0
            .as_ref()
            .is_none_or(|w| e.code().level() < w.code().level())
        {
            self.0 = Some(e);
        }
    }
    fn result(self) -> Result<(), Error> {
        self.0.map_or(Ok(()), Err)
    }
}

fn track_err(space: Space, e: TrackError) -> Error {
    match e {
        TrackError::NoMemory | TrackError::Overflow { .. } => Error::NoMemory,
        TrackError::NotMapped { frame } if space == Space::Irq => Error::NotBound { unit: frame },
        TrackError::NotMapped { frame } => Error::NotMapped { unit: frame },
    }
}

/// Per-domain limits (SPEC section 2, level 10), the same for every domain,
/// domain 0 included. Only `map` checks them: unmap, unbind and every
/// teardown succeed whatever the counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quotas {
    /// Frames mapped, in pages: every live mapping of a frame counts one
    /// (boot option `quota_frames=`).
    pub frames: u64,
    /// Tracking records: the maximal runs of frames of equal non-zero use
    /// count in the domain's mappings — what `slab-extent` keeps one record
    /// for (boot option `quota_records=`). Per-page trackers keep one record
    /// per mapped frame, which the frames quota bounds. An unmap in the
    /// middle of a run adds a run and may take a domain past this limit (it
    /// never fails); the next map that would add a run is then refused.
    pub records: u64,
}

impl Quotas {
    /// Default frames quota: an 8 GiB BAR (2 Mi pages) plus 256 MiB for the
    /// platform's other devices.
    pub const DEFAULT_FRAMES: u64 = (2 << 20) + (64 << 10);
    /// Default records quota: 65,536 runs (about 3 MiB of `slab-extent`
    /// records, a few MiB more in a hypervisor's own per-run state).
    pub const DEFAULT_RECORDS: u64 = 64 << 10;
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            frames: Quotas::DEFAULT_FRAMES,
            records: Quotas::DEFAULT_RECORDS,
        }
    }
}

/// What a domain has: its counts against [`Quotas`] and the per-domain index
/// of where it holds or drains units (a superset: ranges it was granted and
/// has not revoked without draining), so that `destroy` and `check` visit
/// only those.
#[derive(Clone, Debug, Default)]
struct DomState {
    frames: u64,
    records: u64,
    held: [RangeSet; 3],
}

/// Which domain ids exist: one bit per id `0..=MAX_DOMID` (4 KiB).
struct LiveSet([u64; LiveSet::WORDS]);

impl LiveSet {
    const WORDS: usize = (crate::MAX_DOMID as usize + 1).div_ceil(64);

    fn with_dom0() -> LiveSet {
        let mut s = LiveSet([0; LiveSet::WORDS]);
        s.set(DomId::DOM0, true);
        s
    }

    fn contains(&self, d: DomId) -> bool {
        let i = usize::from(d.get());
        self.0.get(i / 64).is_some_and(|w| w >> (i % 64) & 1 != 0)
    }

    fn set(&mut self, d: DomId, on: bool) {
        let i = usize::from(d.get());
        if let Some(w) = self.0.get_mut(i / 64) {
            let bit = 1u64 << (i % 64);
            if on {
                *w |= bit;
            } else {
                *w &= !bit;
            }
        }
    }
}

/// The I/O resource accountant. See the module docs for the state machine.
pub struct Accountant {
    spaces: [SegMap<Unit>; 3],
    domains: BTreeSet<DomId>,
    /// The same set as one bit per possible id, so that every operation's
    /// existence check is one load whatever the number of domains.
    live: Box<LiveSet>,
    doms: DomTable<DomState>,
    quotas: Quotas,
    quota_refusals: u64,
    default_dom: Option<DomId>,
    iomem: Box<dyn Tracker + Send>,
    irq: Box<dyn Tracker + Send>,
    ports: Arc<PortTable>,
    /// Destroyed domains' port leaves a [`PortChecker`] may still read.
    retired: Retired,
}

impl fmt::Debug for Accountant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Accountant")
            .field("domains", &self.domains)
            .field("default_dom", &self.default_dom)
            .field("tracker", &self.iomem.kind())
            .finish_non_exhaustive()
    }
}

impl Accountant {
    /// An accountant booted with no options (`boot` alone): domain 0 is the
    /// default I/O domain, nothing is reserved.
    pub fn new(tracker: TrackerKind) -> Accountant {
        Accountant::with_page_limit(tracker, None)
    }

    /// Like [`Accountant::new`], with the MMIO tracker's page source limited
    /// to `page_limit` live pages (fault injection: operations that create
    /// state then fail with `no-memory`; teardowns still succeed, taking the
    /// few records a split needs beyond the limit).
    pub fn with_page_limit(tracker: TrackerKind, page_limit: Option<u64>) -> Accountant {
        let mut a = Accountant {
            spaces: Space::ALL.map(|s| SegMap::new(s.max_unit(), Unit::default())),
            domains: BTreeSet::from([DomId::DOM0]),
            live: Box::new(LiveSet::with_dom0()),
            doms: DomTable::new(),
            quotas: Quotas::default(),
            quota_refusals: 0,
            default_dom: Some(DomId::DOM0),
            iomem: match page_limit {
                Some(_) => new_tracker_with_limit(tracker, page_limit),
                None => new_tracker(tracker),
            },
            irq: new_tracker(TrackerKind::SlabExtent),
            ports: Arc::new(PortTable::new()),
            retired: Retired::default(),
        };
        a.doms.insert(DomId::DOM0, DomState::default());
        a.sync_ports(UnitRange::all(Space::IoPort), &[Some(DomId::DOM0)]);
        a
    }

    /// Boots from parsed options, applying them in the SPEC's order; any
    /// failure fails the whole boot.
    pub fn boot(opts: &BootOptions, tracker: TrackerKind) -> Result<Accountant, BootError> {
        Accountant::boot_with_page_limit(opts, tracker, None)
    }

    /// [`Accountant::boot`] with a page limit on the MMIO tracker (see
    /// [`Accountant::with_page_limit`]).
    pub fn boot_with_page_limit(
        opts: &BootOptions,
        tracker: TrackerKind,
        page_limit: Option<u64>,
    ) -> Result<Accountant, BootError> {
        let mut a = Accountant::with_page_limit(tracker, page_limit);
        a.quotas = opts.quotas;
        let apply = |option: &'static str| move |error: Error| BootError::Apply { option, error };
        for r in &opts.ram {
            a.spaces[Space::IoMem.index()].update(r.first(), r.last(), |u| u.ram = true);
        }
        a.default_dom = match opts.io_default {
            IoDefault::Dom0 => Some(DomId::DOM0),
            IoDefault::None => None,
        };
        for r in &opts.ioports_disable {
            a.spaces[Space::IoPort.index()].update(r.first(), r.last(), |u| u.no_default = true);
        }
        // Domain 0's default right follows `io_default` and the disabled ports.
        a.sync_ports(UnitRange::all(Space::IoPort), &[Some(DomId::DOM0)]);
        for r in &opts.reserve {
            a.reserve(*r).map_err(apply("reserve"))?;
        }
        for r in &opts.dom0 {
            a.grant(DomId::DOM0, *r, Mode::Exclusive, false)
                .map_err(apply("dom0 grant"))?;
        }
        Ok(a)
    }

    /// The per-domain limits.
    pub fn quotas(&self) -> Quotas {
        self.quotas
    }

    /// Changes the per-domain limits. Lowering one below what a domain
    /// already has takes nothing away; its next map that needs more is refused.
    pub fn set_quotas(&mut self, q: Quotas) {
        self.quotas = q;
    }

    /// `d`'s counts against its quotas: (frames mapped, records), or `None`
    /// if `d` does not exist.
    pub fn quota_usage(&self, d: DomId) -> Option<(u64, u64)> {
        self.doms.get(d).map(|s| (s.frames, s.records))
    }

    /// Maps refused with `quota` so far.
    pub fn quota_refusals(&self) -> u64 {
        self.quota_refusals
    }

    /// Bytes of nodes in the port table: directories, live domains' leaves,
    /// and destroyed domains' leaves not yet returned because a
    /// [`PortChecker`] exists (see the `ports` module docs). A leaf that
    /// only a destroyed domain's [`BoundPortChecker`] still holds is that
    /// checker's, not counted here.
    pub fn port_table_bytes(&self) -> u64 {
        self.ports.node_bytes() + self.retired.bytes()
    }

    /// A lock-free port checker sharing this accountant's radix tree.
    ///
    /// While any clone of it lives, destroyed domains' port leaves are
    /// kept (a check may be reading one) and reused when their ids are
    /// created again; once none is left, the next `create` or `destroy`
    /// frees them. vCPU threads should hold [`BoundPortChecker`]s.
    pub fn port_checker(&self) -> PortChecker {
        PortChecker {
            table: Arc::clone(&self.ports),
        }
    }

    /// A port checker bound to domain `d`, for `d`'s vCPU threads: its node
    /// of the radix tree is loaded once (and made, if `d` has no port bit
    /// yet), so a check is two loads. `&mut` because making a node is a
    /// write to the table, whose only writer is the accountant. `d` need not
    /// exist yet; the checker sees whatever rights `d` has at each check,
    /// until `d` is destroyed: from then on it denies everything, and the
    /// leaf it holds is freed when the last such checker is dropped.
    pub fn bound_port_checker(&mut self, d: DomId) -> Option<BoundPortChecker> {
        BoundPortChecker::new(&self.ports, d.get())
    }

    /// The MMIO tracker in use.
    pub fn tracker_kind(&self) -> TrackerKind {
        self.iomem.kind()
    }

    /// Bytes of MMIO tracking state (the iomem tracker's pages and index).
    pub fn tracking_bytes(&self) -> u64 {
        self.iomem.tracking_bytes()
    }

    /// The MMIO tracker's allocator statistics.
    pub fn tracker_stats(&self) -> TrackerStats {
        self.iomem.stats()
    }

    /// Number of segments the state of `space` is kept in.
    pub fn segments(&self, space: Space) -> usize {
        self.spaces[space.index()].len()
    }

    /// Whether domain `d` exists.
    pub fn exists(&self, d: DomId) -> bool {
        self.live.contains(d)
    }

    /// The default I/O domain, if any.
    pub fn default_domain(&self) -> Option<DomId> {
        self.default_dom
    }

    /// Existing domains, ascending.
    pub fn domains(&self) -> impl Iterator<Item = DomId> + '_ {
        self.domains.iter().copied()
    }

    fn need(&self, d: DomId) -> Result<(), Error> {
        if self.exists(d) {
            Ok(())
        } else {
            Err(Error::NoSuchDomain(d))
        }
    }

    fn not_ram(&self, r: UnitRange) -> Result<(), Error> {
        if r.space() != Space::IoMem {
            return Ok(());
        }
        match self
            .segs(r)
            .find_map(r.first(), r.last(), |s, _, u| u.ram.then_some(s))
        {
            Some(unit) => Err(Error::NotIoMemory { unit }),
            None => Ok(()),
        }
    }

    fn segs(&self, r: UnitRange) -> &SegMap<Unit> {
        &self.spaces[r.space().index()]
    }

    fn uses(&self, space: Space) -> Option<&(dyn Tracker + Send)> {
        match space {
            Space::IoPort => None,
            Space::IoMem => Some(&*self.iomem),
            Space::Irq => Some(&*self.irq),
        }
    }

    fn uses_mut(&mut self, space: Space) -> Option<&mut (dyn Tracker + Send)> {
        match space {
            Space::IoPort => None,
            Space::IoMem => Some(&mut *self.iomem),
            Space::Irq => Some(&mut *self.irq),
        }
    }

    /// Whether `u` (in `space`) is default-accessible to `d`.
    fn default_ok(&self, d: DomId, space: Space, u: &Unit) -> bool {
        self.default_dom == Some(d)
            && !u.reserved
            && u.holders.is_empty()
            && u.draining.is_empty()
            && !u.ram
            && !(space == Space::IoPort && u.no_default)
    }

    /// Rewrites the port bits of `doms` over `r`: every clear first, then every set.
    fn sync_ports(&self, r: UnitRange, doms: &[Option<DomId>]) {
        if r.space() != Space::IoPort {
            return;
        }
        let doms = || doms.iter().flatten().copied().filter(|d| self.exists(*d));
        for allow in [false, true] {
            for d in doms() {
                self.spaces[0].for_each(r.first(), r.last(), |s, e, u| {
                    let ok = u.holds(d).is_some() || self.default_ok(d, Space::IoPort, u);
                    if ok == allow {
                        self.ports.write(d.get(), s as u16, e as u16, allow);
                    }
                });
            }
        }
    }

    /// Removes `d`'s uses within `first..=last` of `space`, appending them to `out`.
    fn tear_down(&mut self, d: DomId, space: Space, first: u64, last: u64, out: &mut Teardown) {
        let RunChange { before, after } = if space == Space::IoMem {
            runs_around(&*self.iomem, d, first, last, |_| 0)
        } else {
            RunChange::default()
        };
        let start = out.len();
        if let Some(t) = self.uses_mut(space) {
            t.clear(d, first, last, &mut |run: Run| {
                tp!(Record::new(Kind::Teardown)
                    .domain(d.get())
                    .range(tp_space(space), run.first, run.last)
                    .value(u64::from(run.count)));
                out.push(TeardownItem {
                    dom: d,
                    space,
                    first: run.first,
                    last: run.last,
                    count: run.count,
                })
            });
        }
        if space == Space::IoMem {
            let frames: u64 = out[start..]
                .iter()
                .map(|t| (t.last - t.first + 1).saturating_mul(u64::from(t.count)))
                .sum();
            if let Some(st) = self.doms.get_mut(d) {
                st.frames = st.frames.saturating_sub(frames);
                st.records = (st.records + after).saturating_sub(before);
            }
        }
    }

    /// `create D`.
    fn create_op(&mut self, d: DomId) -> Result<(), Error> {
        self.live.set(d, true);
        if !self.domains.insert(d) {
            return Err(Error::DomainExists(d));
        }
        self.doms.insert(d, DomState::default());
        self.retired.reclaim(&mut self.ports);
        self.retired.reuse(&self.ports, d.get());
        Ok(())
    }

    /// `destroy D`: ends every use (returned as the teardown), drops every
    /// grant, ends every draining. Domain 0 cannot be destroyed.
    fn destroy_op(&mut self, d: DomId) -> Result<Teardown, Error> {
        if d == DomId::DOM0 {
            return Err(Error::NotPermitted(d));
        }
        self.need(d)?;
        let mut teardown = Vec::new();
        for space in [Space::IoMem, Space::Irq] {
            self.tear_down(d, space, 0, space.max_unit(), &mut teardown);
            if let Some(t) = self.uses_mut(space) {
                t.forget(d);
            }
        }
        let st = self.doms.remove(d).unwrap_or_default();
        let mut ports_held: Vec<(u64, u64)> = Vec::new();
        for space in Space::ALL {
            // Only where the index says `d` may hold or drain something.
            let mut pieces: Vec<(u64, u64)> = Vec::new();
            for (first, last) in st.held[space.index()].iter() {
                self.spaces[space.index()].for_each(first, last, |s, e, u| {
                    if u.holds(d).is_some() || u.drains(d) {
                        pieces.push((s, e));
                    }
                });
            }
            for &(s, e) in &pieces {
                self.spaces[space.index()].update(s, e, |u| {
                    u.holders.retain(|(h, _)| *h != d);
                    u.draining.retain(|x| *x != d);
                });
            }
            if space == Space::IoPort {
                ports_held = pieces;
            }
        }
        self.ports.write(d.get(), 0, 0xffff, false);
        // Its leaf leaves the table: freed when no generic checker can be
        // reading it and the domain's bound checkers are gone (`ports`).
        self.retired.retire(&self.ports, d.get());
        self.retired.reclaim(&mut self.ports);
        self.domains.remove(&d);
        self.live.set(d, false);
        for (s, e) in ports_held {
            if let Ok(r) = UnitRange::new(Space::IoPort, s, e) {
                self.sync_ports(r, &[self.default_dom]);
            }
        }
        Ok(teardown)
    }

    /// `reserve SPACE R`: hypervisor reservation. Units already reserved are
    /// left as they are.
    fn reserve_op(&mut self, r: UnitRange) -> Result<(), Error> {
        self.not_ram(r)?;
        let mut worst = Worst::default();
        let t = self.uses(r.space());
        self.segs(r).for_each(r.first(), r.last(), |s, e, u| {
            if u.reserved {
                return;
            }
            if let Some((h, _)) = u.holders.first() {
                worst.offer(Error::Conflict {
                    unit: s,
                    holder: *h,
                });
            }
            if let Some(x) = u.draining.first() {
                worst.offer(Error::Draining {
                    unit: s,
                    domain: *x,
                });
            }
            if let (Some(dd), Some(t)) = (self.default_dom, t) {
                if t.any(dd, s, e) {
                    worst.offer(Error::InUse {
                        unit: s,
                        user: Some(dd),
                    });
                }
            }
        });
        worst.result()?;
        self.spaces[r.space().index()].update(r.first(), r.last(), |u| u.reserved = true);
        self.sync_ports(r, &[self.default_dom]);
        Ok(())
    }

    /// The hypervisor's own operations on its reservations: each segment
    /// must be reserved (else `not-reserved` at its first unit) and pass
    /// `busy(first unit, hypervisor use count)`; the error of the lowest
    /// precedence level over the whole range is returned, and only if there
    /// is none `apply` is applied to every unit of `r`.
    fn update_reserved(
        &mut self,
        r: UnitRange,
        busy: impl Fn(u64, u32) -> Option<Error>,
        apply: impl FnMut(&mut Unit),
    ) -> Result<(), Error> {
        self.not_ram(r)?;
        let mut worst = Worst::default();
        self.segs(r).for_each(r.first(), r.last(), |s, _, u| {
            let e = match u.reserved {
                false => Some(Error::NotReserved { unit: s }),
                true => busy(s, u.hv_uses),
            };
            if let Some(e) = e {
                worst.offer(e);
            }
        });
        worst.result()?;
        self.spaces[r.space().index()].update(r.first(), r.last(), apply);
        Ok(())
    }

    /// `unreserve SPACE R`: lifts a reservation whose hypervisor use count is zero.
    fn unreserve_op(&mut self, r: UnitRange) -> Result<(), Error> {
        let in_use = |unit, n| (n > 0).then_some(Error::InUse { unit, user: None });
        self.update_reserved(r, in_use, |u| u.reserved = false)?;
        self.sync_ports(r, &[self.default_dom]);
        Ok(())
    }

    /// `hvmap SPACE R`: one more use by the hypervisor of reserved units.
    fn hvmap_op(&mut self, r: UnitRange) -> Result<(), Error> {
        let full = |_, n| (n == u32::MAX).then_some(Error::NoMemory);
        self.update_reserved(r, full, |u| u.hv_uses += 1)
    }

    /// `hvunmap SPACE R`: one less use by the hypervisor.
    fn hvunmap_op(&mut self, r: UnitRange) -> Result<(), Error> {
        let unused = |unit, n| (n == 0).then_some(Error::NotMapped { unit });
        self.update_reserved(r, unused, |u| u.hv_uses -= 1)
    }

    /// `grant D SPACE R MODE [force]`. With `force`, the default I/O
    /// domain's default-right uses of the range are torn down (and returned)
    /// instead of failing with `in-use`.
    fn grant_op(
        &mut self,
        d: DomId,
        r: UnitRange,
        mode: Mode,
        force: bool,
    ) -> Result<Teardown, Error> {
        self.need(d)?;
        let dd = self.default_dom.filter(|x| *x != d);
        let t = self.uses(r.space());
        let mut worst = Worst::default();
        let mut ram = None;
        let mut torn: Vec<(u64, u64)> = Vec::new();
        // One walk for the RAM check (which comes first) and the others.
        self.segs(r).for_each(r.first(), r.last(), |s, e, u| {
            if u.ram {
                ram = ram.or(Some(s));
                return;
            }
            if u.reserved {
                worst.offer(Error::Reserved { unit: s });
                return;
            }
            if u.holds(d) == Some(mode) {
                // Already held in this mode: left as it is, nothing to check.
                return;
            }
            if u.holds(d).is_some_and(|m| m != mode) {
                worst.offer(Error::Conflict { unit: s, holder: d });
            }
            for (h, hm) in &u.holders {
                if *h != d && (mode == Mode::Exclusive || *hm == Mode::Exclusive) {
                    worst.offer(Error::Conflict {
                        unit: s,
                        holder: *h,
                    });
                }
            }
            if let Some(x) = u.draining.iter().find(|x| **x != d) {
                worst.offer(Error::Draining {
                    unit: s,
                    domain: *x,
                });
            }
            if let (Some(dd), Some(t)) = (dd, t) {
                if u.holds(dd).is_none() && t.any(dd, s, e) {
                    if force {
                        torn.push((s, e));
                    } else {
                        worst.offer(Error::InUse {
                            unit: s,
                            user: Some(dd),
                        });
                    }
                }
            }
        });
        if let Some(unit) = ram {
            return Err(Error::NotIoMemory { unit });
        }
        worst.result()?;
        let mut teardown = Vec::new();
        if let Some(dd) = dd {
            for (s, e) in torn {
                self.tear_down(dd, r.space(), s, e, &mut teardown);
            }
        }
        self.spaces[r.space().index()].update(r.first(), r.last(), |u| {
            u.draining.retain(|x| *x != d);
            u.add_holder(d, mode);
        });
        if let Some(st) = self.doms.get_mut(d) {
            st.held[r.space().index()].insert(r.first(), r.last());
        }
        self.sync_ports(r, &[dd, Some(d)]);
        Ok(teardown)
    }

    /// `revoke D SPACE R [force]`. Unused units are released at once; used
    /// ones drain (`pending`) or, with `force`, are torn down.
    fn revoke_op(&mut self, d: DomId, r: UnitRange, force: bool) -> Result<Revoked, Error> {
        self.need(d)?;
        // One walk: RAM anywhere in the range comes before a unit not held.
        let (mut ram, mut not_held) = (None, None);
        self.segs(r).for_each(r.first(), r.last(), |s, _, u| {
            if u.ram {
                ram = ram.or(Some(s));
            } else if u.holds(d).is_none() {
                not_held = not_held.or(Some(s));
            }
        });
        if let Some(unit) = ram {
            return Err(Error::NotIoMemory { unit });
        }
        if let Some(unit) = not_held {
            return Err(Error::NotGranted { unit });
        }
        // The runs that drain (a forced revoke tears them down instead).
        let mut runs: SmallVec<[Run; 2]> = SmallVec::new();
        if let (false, Some(t)) = (force, self.uses(r.space())) {
            t.runs(d, r.first(), r.last(), &mut |run| runs.push(run));
        }
        let mut teardown = Vec::new();
        if force {
            self.tear_down(d, r.space(), r.first(), r.last(), &mut teardown);
        }
        let segs = &mut self.spaces[r.space().index()];
        segs.update(r.first(), r.last(), |u| u.holders.retain(|(h, _)| *h != d));
        if !force {
            for run in &runs {
                segs.update(run.first, run.last, |u| u.add_draining(d));
            }
        }
        if let Some(st) = self.doms.get_mut(d) {
            let held = &mut st.held[r.space().index()];
            held.remove(r.first(), r.last());
            if !force {
                for run in &runs {
                    held.insert(run.first, run.last);
                }
            }
        }
        self.sync_ports(r, &[Some(d), self.default_dom]);
        Ok(Revoked {
            pending: !force && !runs.is_empty(),
            teardown,
        })
    }

    /// One more use (mapping or binding) of every unit of `r` by `d`.
    fn add_use(&mut self, d: DomId, r: UnitRange) -> Result<(), Error> {
        self.need(d)?;
        // One walk for the RAM check and the others: RAM comes first
        // whatever lies before it in the range.
        let mut worst = Worst::default();
        let mut ram = None;
        self.segs(r).for_each(r.first(), r.last(), |s, _, u| {
            if u.ram {
                ram = ram.or(Some(s));
            } else if u.reserved {
                worst.offer(Error::Reserved { unit: s });
            } else if u.holds(d).is_some() {
                // Allowed: a holder does not drain (invariant 3).
            } else if u.drains(d) {
                worst.offer(Error::Draining { unit: s, domain: d });
            } else if !self.default_ok(d, r.space(), u) {
                worst.offer(Error::NotGranted { unit: s });
            }
        });
        if let Some(unit) = ram {
            return Err(Error::NotIoMemory { unit });
        }
        worst.result()?;
        let space = r.space();
        if space != Space::IoMem {
            let t = self.uses_mut(space).ok_or(Error::BadRange {
                first: r.first(),
                last: r.last(),
            })?;
            return t
                .map(d, r.first(), r.last())
                .map_err(|e| track_err(space, e));
        }
        // One lookup of d's counts, kept for the update (the fields are
        // borrowed apart).
        let Accountant {
            doms,
            iomem,
            quotas: q,
            quota_refusals,
            ..
        } = self;
        let st = doms.get_mut(d);
        let (frames, records) = st.as_ref().map_or((0, 0), |s| (s.frames, s.records));
        let len = r.last() - r.first() + 1;
        let refuse = |kind, limit| Error::Quota {
            dom: d,
            kind,
            limit,
        };
        if frames.saturating_add(len) > q.frames {
            *quota_refusals += 1;
            return Err(refuse(QuotaKind::Frames, q.frames));
        }
        // `records + added > q.records`, for any `records`.
        let room = q.records.saturating_sub(records);
        match iomem.map_counted(d, r.first(), r.last(), room) {
            Ok(RunChange { before, after }) => {
                if let Some(st) = st {
                    st.frames = frames + len;
                    st.records = (records + after).saturating_sub(before);
                }
                Ok(())
            }
            Err(MapRefusal::Runs(_)) => {
                *quota_refusals += 1;
                Err(refuse(QuotaKind::Records, q.records))
            }
            Err(MapRefusal::Track(e)) => Err(track_err(space, e)),
        }
    }

    /// One less use of every unit of `r` by `d`; draining ends where the last use ended.
    fn drop_use(&mut self, d: DomId, r: UnitRange) -> Result<(), Error> {
        self.need(d)?;
        // One walk: the RAM check, and the segments `d` drains (whose
        // draining may end below; the unmap does not change them).
        let mut ram = None;
        let mut drained: Vec<(u64, u64)> = Vec::new();
        self.segs(r).for_each(r.first(), r.last(), |s, e, u| {
            if u.ram {
                ram = ram.or(Some(s));
            } else if u.drains(d) {
                drained.push((s, e));
            }
        });
        if let Some(unit) = ram {
            return Err(Error::NotIoMemory { unit });
        }
        let space = r.space();
        let (first, last) = (r.first(), r.last());
        if space == Space::IoMem {
            let RunChange { before, after } = self
                .iomem
                .unmap_counted(d, first, last)
                .map_err(|e| track_err(space, e))?;
            if let Some(st) = self.doms.get_mut(d) {
                st.frames = st.frames.saturating_sub(last - first + 1);
                st.records = (st.records + after).saturating_sub(before);
            }
        } else {
            let t = self
                .uses_mut(space)
                .ok_or(Error::BadRange { first, last })?;
            t.unmap(d, first, last).map_err(|e| track_err(space, e))?;
        }
        if !drained.is_empty() {
            self.end_draining(d, space, drained);
        }
        Ok(())
    }

    /// After an unmap or unbind by `d`: the units of the `drained` segments
    /// (which `d` drains) that `d` no longer uses stop draining for it. Out
    /// of line: only a revoke that left uses behind makes segments drain.
    #[cold]
    #[inline(never)]
    fn end_draining(&mut self, d: DomId, space: Space, drained: Vec<(u64, u64)>) {
        for (s, e) in drained {
            // The gaps between d's remaining runs in s..=e have no use left.
            let mut gaps: Vec<(u64, u64)> = Vec::new();
            let mut next = s;
            if let Some(t) = self.uses(space) {
                t.runs(d, s, e, &mut |run| {
                    if run.first > next {
                        gaps.push((next, run.first - 1));
                    }
                    next = run.last.saturating_add(1);
                });
            }
            if next <= e {
                gaps.push((next, e));
            }
            for (gs, ge) in gaps {
                self.spaces[space.index()].update(gs, ge, |u| u.draining.retain(|x| *x != d));
            }
        }
    }

    /// `map D iomem R`: one more mapping of every frame of `r`.
    /// `r` must be in `IoMem` (else `bad-range`).
    fn map_op(&mut self, d: DomId, r: UnitRange) -> Result<(), Error> {
        Self::want(r, Space::IoMem)?;
        self.add_use(d, r)
    }

    /// `unmap D iomem R`.
    fn unmap_op(&mut self, d: DomId, r: UnitRange) -> Result<(), Error> {
        Self::want(r, Space::IoMem)?;
        self.drop_use(d, r)
    }

    /// `bind D irq N`: one more binding of every line of `r` (in `Irq`).
    fn bind_op(&mut self, d: DomId, r: UnitRange) -> Result<(), Error> {
        Self::want(r, Space::Irq)?;
        self.add_use(d, r)
    }

    /// `unbind D irq N`.
    fn unbind_op(&mut self, d: DomId, r: UnitRange) -> Result<(), Error> {
        Self::want(r, Space::Irq)?;
        self.drop_use(d, r)
    }

    fn want(r: UnitRange, space: Space) -> Result<(), Error> {
        if r.space() == space {
            Ok(())
        } else {
            Err(Error::BadRange {
                first: r.first(),
                last: r.last(),
            })
        }
    }

    /// `access D ioport P [W]`: whether one guest access of width `width`
    /// at `port` is allowed. Errors: `out-of-range` port, `bad-range` width,
    /// `no-such-domain`; a range past 0xffff is simply denied.
    fn access_op(&self, d: DomId, port: u64, width: u64) -> Result<bool, Error> {
        if port > Space::IoPort.max_unit() {
            return Err(Error::OutOfRange { value: port });
        }
        if !matches!(width, 1 | 2 | 4) {
            return Err(Error::BadRange {
                first: width,
                last: width,
            });
        }
        self.need(d)?;
        Ok(self.ports.check(d.get(), port as u16, width as u8))
    }

    /// The state of one unit.
    pub fn query(&self, space: Space, unit: u64) -> Result<UnitInfo, Error> {
        let r = UnitRange::one(space, unit)?;
        self.not_ram(r)?;
        let mut info = None;
        self.segs(r).for_each(unit, unit, |_, _, u| {
            info = Some(UnitInfo {
                space,
                unit,
                reserved: u.reserved,
                hv_uses: u.hv_uses,
                holders: u.holders.to_vec(),
                draining: u.draining.to_vec(),
                uses: Vec::new(),
                default_accessible: self
                    .default_dom
                    .is_some_and(|dd| self.default_ok(dd, space, u)),
            });
        });
        let mut info = info.ok_or(Error::OutOfRange { value: unit })?;
        if let Some(t) = self.uses(space) {
            for d in &self.domains {
                t.runs(*d, unit, unit, &mut |run| info.uses.push((*d, run.count)));
            }
        }
        Ok(info)
    }

    /// Verifies the invariants of SPEC section 2 over the whole state, in
    /// time proportional to the segments plus what the domains hold and use
    /// (not segments × domains): one pass over the segments for what they
    /// record, one over each domain's uses, one over each domain's port
    /// index.
    pub fn check_invariants(&self) -> Result<(), Violation> {
        for space in Space::ALL {
            let segs = &self.spaces[space.index()];
            let v = |invariant, unit, dom, what| Violation {
                invariant,
                space,
                unit,
                dom,
                what,
            };
            segs.well_formed()
                .map_err(|unit| v(0, unit, None, "segment map malformed"))?;
            let t = self.uses(space);
            let mut bad: Option<Violation> = None;
            segs.for_each(0, space.max_unit(), |s, e, u| {
                if bad.is_some() {
                    return;
                }
                if u.reserved && (!u.holders.is_empty() || !u.draining.is_empty()) {
                    bad = Some(v(1, s, None, "reserved unit held or draining"));
                } else if !u.reserved && u.hv_uses != 0 {
                    bad = Some(v(1, s, None, "hypervisor use of an unreserved unit"));
                } else if u.holders.iter().any(|(_, m)| *m == Mode::Exclusive)
                    && u.holders.len() > 1
                {
                    bad = Some(v(2, s, None, "exclusive holder is not alone"));
                } else if u.ram && (!u.holders.is_empty() || u.reserved) {
                    bad = Some(v(3, s, None, "RAM frame held or reserved"));
                } else if let Some(d) = u
                    .holders
                    .iter()
                    .map(|(d, _)| *d)
                    .chain(u.draining.iter().copied())
                    .find(|d| !self.exists(*d))
                {
                    bad = Some(v(6, s, Some(d), "destroyed domain holds or drains"));
                } else if let Some(d) = u.draining.iter().find(|d| u.holds(**d).is_some()) {
                    bad = Some(v(3, s, Some(*d), "domain both holds and drains"));
                }
                if bad.is_some() {
                    return;
                }
                // Every unit a domain drains is still used by it.
                for d in &u.draining {
                    let mut covered = s;
                    if let Some(t) = t {
                        t.runs(*d, s, e, &mut |run| {
                            if run.first == covered {
                                covered = run.last.saturating_add(1);
                            }
                        });
                    }
                    if covered <= e {
                        bad = Some(v(3, covered, Some(*d), "draining unit without a use"));
                        return;
                    }
                }
            });
            if let Some(b) = bad {
                return Err(b);
            }
            // Every use is of an unreserved unit and covered (invariants 1, 3):
            // each domain's runs, against the segments they overlap.
            if let Some(t) = t {
                for d in &self.domains {
                    let mut runs: Vec<(u64, u64)> = Vec::new();
                    t.runs(*d, 0, space.max_unit(), &mut |run| {
                        runs.push((run.first, run.last))
                    });
                    for (first, last) in runs {
                        segs.for_each(first, last, |s, _, u| {
                            if bad.is_some() {
                                return;
                            }
                            if u.reserved {
                                bad = Some(v(1, s, Some(*d), "reserved unit used by a domain"));
                            } else if !(u.holds(*d).is_some()
                                || u.drains(*d)
                                || self.default_ok(*d, space, u))
                            {
                                bad = Some(v(3, s, Some(*d), "use not covered by a grant"));
                            }
                        });
                        if let Some(b) = bad {
                            return Err(b);
                        }
                    }
                }
            }
            // Port bits agree with the model (invariant 7): the default I/O
            // domain over every segment; any other domain over the segments
            // its index covers, and no bit at all outside them.
            if space == Space::IoPort {
                for d in &self.domains {
                    let mismatch = |s: u64, e: u64, want: bool| {
                        self.ports
                            .first_mismatch(d.get(), s as u16, e as u16, want)
                            .map(|p| {
                                v(
                                    7,
                                    u64::from(p),
                                    Some(*d),
                                    "port check disagrees with the state",
                                )
                            })
                    };
                    let seg_check = |first: u64, last: u64, bad: &mut Option<Violation>| {
                        segs.for_each(first, last, |s, e, u| {
                            if bad.is_none() {
                                let want = u.holds(*d).is_some() || self.default_ok(*d, space, u);
                                *bad = mismatch(s, e, want);
                            }
                        });
                    };
                    if self.default_dom == Some(*d) {
                        seg_check(0, space.max_unit(), &mut bad);
                    } else {
                        let mut next = 0u64;
                        let held = self.doms.get(*d).map(|st| &st.held[space.index()]);
                        for (first, last) in held.into_iter().flat_map(|h| h.iter()) {
                            if bad.is_none() && first > next {
                                bad = mismatch(next, first - 1, false);
                            }
                            if bad.is_none() {
                                seg_check(first, last, &mut bad);
                            }
                            next = last + 1;
                        }
                        if bad.is_none() && next <= space.max_unit() {
                            bad = mismatch(next, space.max_unit(), false);
                        }
                    }
                    if let Some(b) = bad {
                        return Err(b);
                    }
                }
            }
        }
        Ok(())
    }
}

/// The public operations: each runs the untraced operation and emits one
/// tracepoint with its result and duration (one relaxed load when tracing
/// is off; nothing at all without the `tracepoints` feature).
impl Accountant {
    /// Runs `op` and emits one `kind` record with its outcome and duration.
    fn traced<T>(
        &mut self,
        kind: Kind,
        dom: u16,
        r: Option<UnitRange>,
        op: impl FnOnce(&mut Self) -> Result<T, Error>,
    ) -> Result<T, Error> {
        // One look at the tracing switch: the stamp says whether it was on.
        let t0 = tracepoints::start();
        let res = op(self);
        if t0.is_set() {
            emit_op(kind, dom, r, &res, t0);
        }
        res
    }

    /// [`Accountant::traced`] for the hypervisor's own operations on `r`.
    fn traced_hv(
        &mut self,
        kind: Kind,
        r: UnitRange,
        op: fn(&mut Self, UnitRange) -> Result<(), Error>,
    ) -> Result<(), Error> {
        self.traced(kind, tracepoints::HYPERVISOR, Some(r), |a| op(a, r))
    }

    /// `create D`: a new domain. Errors: `domain-exists`.
    pub fn create(&mut self, d: DomId) -> Result<(), Error> {
        self.traced(Kind::Create, d.get(), None, |a| a.create_op(d))
    }

    /// `destroy D`: ends every use (returned as the teardown, which the
    /// hypervisor must carry out before it returns), drops every grant, ends
    /// every draining. Errors: `not-permitted` (domain 0), `no-such-domain`.
    pub fn destroy(&mut self, d: DomId) -> Result<Teardown, Error> {
        self.traced(Kind::Destroy, d.get(), None, |a| a.destroy_op(d))
    }

    /// `reserve SPACE R`: hypervisor reservation; units already reserved
    /// are left as they are. Errors: `not-io-memory`, `conflict`,
    /// `draining`, `in-use`.
    pub fn reserve(&mut self, r: UnitRange) -> Result<(), Error> {
        self.traced_hv(Kind::Reserve, r, Self::reserve_op)
    }

    /// `unreserve SPACE R`. Errors: `not-reserved`, `in-use` (hypervisor use count > 0).
    pub fn unreserve(&mut self, r: UnitRange) -> Result<(), Error> {
        self.traced_hv(Kind::Unreserve, r, Self::unreserve_op)
    }

    /// `hvmap SPACE R`: the hypervisor's own use of reserved units. Errors: `not-reserved`.
    pub fn hvmap(&mut self, r: UnitRange) -> Result<(), Error> {
        self.traced_hv(Kind::HvMap, r, Self::hvmap_op)
    }

    /// `hvunmap SPACE R`. Errors: `not-reserved`, `not-mapped`.
    pub fn hvunmap(&mut self, r: UnitRange) -> Result<(), Error> {
        self.traced_hv(Kind::HvUnmap, r, Self::hvunmap_op)
    }

    /// `grant D SPACE R MODE [force]`. Errors: `reserved`, `conflict`,
    /// `draining`, `in-use`; with `force` the default I/O domain's
    /// default-right uses are torn down (and returned) instead of `in-use`.
    pub fn grant(
        &mut self,
        d: DomId,
        r: UnitRange,
        mode: Mode,
        force: bool,
    ) -> Result<Teardown, Error> {
        let t0 = tracepoints::start();
        let res = self.grant_op(d, r, mode, force);
        tp!(op_record(Kind::Grant, d.get(), Some(r), &res)
            .mode(tp_mode(mode))
            .forced(force)
            .since(t0));
        res
    }

    /// `revoke D SPACE R [force]`: unused units are released at once; used
    /// ones drain (`pending`) or, with `force`, are torn down. Errors:
    /// `not-granted`.
    pub fn revoke(&mut self, d: DomId, r: UnitRange, force: bool) -> Result<Revoked, Error> {
        let t0 = tracepoints::start();
        let res = self.revoke_op(d, r, force);
        tp!({
            let rec = op_record(Kind::Revoke, d.get(), Some(r), &res).forced(force);
            match &res {
                Ok(rv) if rv.pending => rec.outcome(Outcome::Pending),
                _ => rec,
            }
            .since(t0)
        });
        res
    }

    /// `map D iomem R`: one more mapping of every frame. Errors:
    /// `reserved`, `draining`, `not-granted`; `bad-range` if `r` is not iomem.
    pub fn map(&mut self, d: DomId, r: UnitRange) -> Result<(), Error> {
        self.traced(Kind::Map, d.get(), Some(r), |a| a.map_op(d, r))
    }

    /// `unmap D iomem R`; a unit `D` drains stops draining at its last unmap.
    /// Errors: `not-mapped`.
    pub fn unmap(&mut self, d: DomId, r: UnitRange) -> Result<(), Error> {
        self.traced(Kind::Unmap, d.get(), Some(r), |a| a.unmap_op(d, r))
    }

    /// `bind D irq N`: one more binding of every line of `r`. Errors:
    /// `reserved`, `draining`, `not-granted`; `bad-range` if `r` is not irq.
    pub fn bind(&mut self, d: DomId, r: UnitRange) -> Result<(), Error> {
        self.traced(Kind::Bind, d.get(), Some(r), |a| a.bind_op(d, r))
    }

    /// `unbind D irq N`. Errors: `not-bound`.
    pub fn unbind(&mut self, d: DomId, r: UnitRange) -> Result<(), Error> {
        self.traced(Kind::Unbind, d.get(), Some(r), |a| a.unbind_op(d, r))
    }

    /// `access D ioport P [W]`: whether one guest access of `width` (1, 2,
    /// 4) at `port` is allowed. Errors: `out-of-range` port, `bad-range`
    /// width, `no-such-domain`; a range past 0xffff is simply denied.
    pub fn access(&self, d: DomId, port: u64, width: u64) -> Result<bool, Error> {
        let res = self.access_op(d, port, width);
        tp!({
            let rec = Record::new(Kind::PortCheck)
                .domain(d.get())
                .range(
                    tracepoints::Space::IoPort,
                    port,
                    port.saturating_add(width.saturating_sub(1)),
                )
                .width(u8::try_from(width).unwrap_or(u8::MAX));
            match &res {
                Ok(true) => rec.outcome(Outcome::Allow),
                Ok(false) => rec.outcome(Outcome::Deny),
                Err(_) => rec.outcome(tp_outcome(&res)),
            }
        });
        res
    }
}

impl Accountant {
    /// Whether `d` may use every unit of `r` now: each unit is held by `d`
    /// and not drained by it, or is default-accessible to it (the cover of
    /// SPEC invariant 3, without counting uses). This is Xen's
    /// `iomem_access_permitted` / `irq_access_permitted` over a range, for
    /// the C library. Time proportional to the segments in `r`, not its
    /// units. Errors: `no-such-domain`.
    pub fn permitted(&self, d: DomId, r: UnitRange) -> Result<bool, Error> {
        self.need(d)?;
        let refused = self.segs(r).find_map(r.first(), r.last(), |s, _, u| {
            let ok = (u.holds(d).is_some() && !u.drains(d)) || self.default_ok(d, r.space(), u);
            (!ok).then_some(s)
        });
        Ok(refused.is_none())
    }
}

/// A short human-readable summary of a teardown, for replay output.
pub fn describe_teardown(t: &Teardown) -> String {
    use core::fmt::Write;
    let mut s = String::new();
    for (i, it) in t.iter().enumerate() {
        let _ = write!(
            s,
            "{}{} {} {:#x}-{:#x} x{}",
            if i == 0 { "torn down: " } else { ", " },
            it.dom,
            it.space,
            it.first,
            it.last,
            it.count
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(space: Space, a: u64, b: u64) -> UnitRange {
        UnitRange::new(space, a, b).expect("valid range")
    }

    #[test]
    fn permitted_covers_holders_and_default_right_over_a_range() {
        let mut a = Accountant::new(TrackerKind::SlabExtent);
        let d1 = DomId::new(1).expect("id");
        a.create(d1).expect("create");
        let all = r(Space::IoMem, 0x100, 0x1ff);
        assert_eq!(
            a.permitted(DomId::DOM0, all),
            Ok(true),
            "dom0 by default right"
        );
        assert_eq!(a.permitted(d1, all), Ok(false));
        a.grant(d1, r(Space::IoMem, 0x100, 0x17f), Mode::Exclusive, false)
            .expect("grant");
        assert_eq!(a.permitted(d1, r(Space::IoMem, 0x100, 0x17f)), Ok(true));
        assert_eq!(a.permitted(d1, all), Ok(false), "half of it only");
        assert_eq!(a.permitted(DomId::DOM0, all), Ok(false), "d1 holds part");
        a.map(d1, r(Space::IoMem, 0x100, 0x100)).expect("map");
        let rv = a
            .revoke(d1, r(Space::IoMem, 0x100, 0x17f), false)
            .expect("revoke");
        assert!(rv.pending);
        assert_eq!(
            a.permitted(d1, r(Space::IoMem, 0x100, 0x100)),
            Ok(false),
            "draining"
        );
        let d2 = DomId::new(2).expect("id");
        assert_eq!(a.permitted(d2, all), Err(Error::NoSuchDomain(d2)));
    }

    #[test]
    fn teardowns_name_exactly_the_uses_ended() {
        let mut a = Accountant::new(TrackerKind::SlabExtent);
        let d1 = DomId::new(1).expect("valid");
        a.create(d1).expect("fresh");
        a.map(DomId::DOM0, r(Space::IoMem, 0x100, 0x10f))
            .expect("default right");
        a.map(DomId::DOM0, r(Space::IoMem, 0x104, 0x105))
            .expect("twice");
        let torn = a
            .grant(d1, r(Space::IoMem, 0x104, 0x1ff), Mode::Exclusive, true)
            .expect("forced");
        let ended: Vec<(u64, u64, u32)> = torn.iter().map(|t| (t.first, t.last, t.count)).collect();
        assert_eq!(ended, [(0x104, 0x105, 2), (0x106, 0x10f, 1)]);
        assert!(torn
            .iter()
            .all(|t| t.dom == DomId::DOM0 && t.space == Space::IoMem));
        // dom0 keeps what was outside the grant.
        assert_eq!(
            a.query(Space::IoMem, 0x103).expect("io").uses,
            [(DomId::DOM0, 1)]
        );
        a.map(d1, r(Space::IoMem, 0x180, 0x181)).expect("granted");
        a.grant(d1, r(Space::Irq, 11, 11), Mode::Shared, false)
            .expect("free");
        a.bind(d1, r(Space::Irq, 11, 11)).expect("granted");
        let torn = a.destroy(d1).expect("exists");
        assert_eq!(torn.len(), 2);
        assert!(torn.contains(&TeardownItem {
            dom: d1,
            space: Space::Irq,
            first: 11,
            last: 11,
            count: 1
        }));
        assert_eq!(a.check_invariants(), Ok(()));
    }

    #[test]
    fn whole_spaces_cost_a_handful_of_segments() {
        let mut a = Accountant::new(TrackerKind::SlabExtent);
        let d1 = DomId::new(1).expect("valid");
        a.create(d1).expect("fresh");
        for space in Space::ALL {
            a.grant(d1, UnitRange::all(space), Mode::Exclusive, false)
                .expect("all free");
            assert_eq!(a.segments(space), 1);
        }
        // A million frames mapped at once: one extent record.
        a.map(d1, r(Space::IoMem, 0x10_0000, 0x1f_ffff))
            .expect("held");
        assert!(a.tracker_stats().records <= 2, "{:?}", a.tracker_stats());
        assert!(a.tracking_bytes() <= 2 * 4096);
        let rv = a
            .revoke(d1, UnitRange::all(Space::IoMem), false)
            .expect("held");
        assert!(rv.pending);
        assert_eq!(a.segments(Space::IoMem), 3, "free | draining | free");
        a.unmap(d1, r(Space::IoMem, 0x10_0000, 0x1f_ffff))
            .expect("mapped");
        assert_eq!(a.segments(Space::IoMem), 1, "draining ended, merged back");
        assert_eq!(a.check_invariants(), Ok(()));
    }

    #[test]
    fn regranting_what_is_held_is_left_as_it_is() {
        let mut a = Accountant::new(TrackerKind::SlabExtent);
        let (d1, d2) = (DomId::new(1).expect("valid"), DomId::new(2).expect("valid"));
        a.create(d1).expect("fresh");
        a.create(d2).expect("fresh");
        let line = r(Space::Irq, 10, 10);
        a.grant(d1, line, Mode::Shared, false).expect("free");
        a.grant(d2, line, Mode::Shared, false).expect("shared");
        a.bind(d2, line).expect("granted");
        assert!(a.revoke(d2, line, false).expect("held").pending);
        // d2 drains line 10; d1 still holds it shared: re-granting is a no-op...
        assert_eq!(a.grant(d1, line, Mode::Shared, false), Ok(Vec::new()));
        // ...but a range that adds a line d1 does not hold yet still checks it.
        a.grant(d2, r(Space::Irq, 11, 11), Mode::Exclusive, false)
            .expect("free");
        assert_eq!(
            a.grant(d1, r(Space::Irq, 10, 11), Mode::Shared, false)
                .map_err(|e| e.code()),
            Err(crate::ErrorCode::Conflict)
        );
        assert_eq!(a.check_invariants(), Ok(()));
    }

    #[test]
    fn port_table_memory_is_returned_at_destroy() {
        let mut a = Accountant::boot(
            &BootOptions::parse("io_default=none").expect("valid"),
            TrackerKind::SlabExtent,
        )
        .expect("boots");
        let base = a.port_table_bytes();
        let d = DomId::new(300).expect("valid");
        // One leaf of port bits (8 KiB and its count of holders).
        let leaf = 8192 + 8;
        for round in 0..3 {
            a.create(d).expect("fresh");
            a.grant(d, UnitRange::all(Space::IoPort), Mode::Exclusive, false)
                .expect("free");
            // One new directory (ids 256..=511) the first time, kept after.
            assert_eq!(a.port_table_bytes(), base + 2048 + leaf, "round {round}");
            a.destroy(d).expect("exists");
            assert_eq!(a.port_table_bytes(), base + 2048, "round {round}");
            assert!(!a.port_checker().check(300, 0x80, 1));
        }
        // A live generic checker keeps a destroyed leaf (it may be reading
        // it), reuses it for the same id, and lets it go once dropped.
        let c = a.port_checker();
        a.create(d).expect("fresh");
        a.grant(d, UnitRange::all(Space::IoPort), Mode::Exclusive, false)
            .expect("free");
        a.destroy(d).expect("exists");
        assert_eq!(a.port_table_bytes(), base + 2048 + leaf, "retired");
        a.create(d).expect("fresh");
        a.grant(d, UnitRange::all(Space::IoPort), Mode::Exclusive, false)
            .expect("free");
        assert_eq!(a.port_table_bytes(), base + 2048 + leaf, "reused");
        assert!(c.check(300, 0x80, 1));
        a.destroy(d).expect("exists");
        assert!(!c.check(300, 0x80, 1));
        drop(c);
        a.create(d).expect("fresh");
        assert_eq!(a.port_table_bytes(), base + 2048, "let go");
        assert_eq!(a.check_invariants(), Ok(()));
    }

    #[test]
    fn port_checker_follows_grants_and_default_deny() {
        let opts = BootOptions::parse("io_default=none dom0_ioports=0x60-0x64").expect("valid");
        let mut a = Accountant::boot(&opts, TrackerKind::SlabExtent).expect("boots");
        let c = a.port_checker();
        assert!(c.check(0, 0x60, 4) && !c.check(0, 0x62, 4) && !c.check(0, 0x70, 1));
        let d = DomId::new(7).expect("valid");
        a.create(d).expect("fresh");
        a.grant(d, r(Space::IoPort, 0x70, 0x71), Mode::Exclusive, false)
            .expect("free");
        assert!(c.check(7, 0x70, 2));
        a.destroy(d).expect("exists");
        assert!(!c.check(7, 0x70, 1), "destroy clears the bits");
        assert_eq!(a.access(d, 0x70, 1), Err(Error::NoSuchDomain(d)));
    }
}
