//! The accountant as the hypervisor uses it, with accounting on or off.
//!
//! * [`Accounting::On`]: the ioacct [`Accountant`] decides every grant, map,
//!   bind and port access (exclusivity, reservations, drain and forced
//!   teardown); port checks on the vCPU path use its lock-free
//!   [`PortChecker`].
//! * [`Accounting::Off`]: Xen's behaviour without accounting, kept so the
//!   problem can be shown. Each domain has its own permission rangesets
//!   (Xen's `iomem_caps`/`ioport_caps`/`irq_caps`); a grant adds to them, a
//!   revoke removes from them, a map/bind/port access is checked only against
//!   the caller's own set. There is no exclusivity, reservations are not
//!   enforced, and revoking never tears a mapping down. Domain 0 starts with
//!   every unit (or, with `io_default=none`, with its boot grants).
//!
//! This module is the only place hv touches the accountant's API.

use accountant::{
    Accountant, BootError, BootOptions, BoundPortChecker, DomId, Error, ErrorCode, IoDefault, Mode,
    PortChecker, Quotas, Revoked, Space, Teardown, TrackerKind, UnitInfo, UnitRange,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};

/// Whether the accountant is in charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Accounting {
    /// The ioacct accountant decides (default).
    #[default]
    On,
    /// Xen today: per-domain permissions only.
    Off,
}

impl Accounting {
    /// Parses `on` / `off`.
    pub fn from_name(s: &str) -> Option<Accounting> {
        match s {
            "on" => Some(Accounting::On),
            "off" => Some(Accounting::Off),
            _ => None,
        }
    }
    /// `on` / `off`.
    pub fn name(self) -> &'static str {
        match self {
            Accounting::On => "on",
            Accounting::Off => "off",
        }
    }
}

/// A set of inclusive ranges (Xen's `rangeset`), kept merged.
#[derive(Debug, Clone, Default)]
struct RangeSet(BTreeMap<u64, u64>);

impl RangeSet {
    fn add(&mut self, first: u64, last: u64) {
        let (mut f, mut l) = (first, last);
        let overlapping: Vec<(u64, u64)> = self
            .0
            .range(..=last.saturating_add(1))
            .rev()
            .take_while(|(_, e)| **e + 1 >= first)
            .map(|(s, e)| (*s, *e))
            .collect();
        for (s, e) in overlapping {
            self.0.remove(&s);
            f = f.min(s);
            l = l.max(e);
        }
        self.0.insert(f, l);
    }
    fn remove(&mut self, first: u64, last: u64) {
        let overlapping: Vec<(u64, u64)> = self
            .0
            .range(..=last)
            .rev()
            .take_while(|(_, e)| **e >= first)
            .map(|(s, e)| (*s, *e))
            .collect();
        for (s, e) in overlapping {
            self.0.remove(&s);
            if s < first {
                self.0.insert(s, first - 1);
            }
            if e > last {
                self.0.insert(last + 1, e);
            }
        }
    }
    fn contains(&self, first: u64, last: u64) -> bool {
        self.0
            .range(..=first)
            .next_back()
            .is_some_and(|(_, e)| *e >= last)
    }
}

/// Xen-style per-domain permissions (accounting off).
#[derive(Debug, Default)]
pub struct XenCaps {
    ram: Vec<UnitRange>,
    domains: BTreeSet<DomId>,
    caps: BTreeMap<(DomId, Space), RangeSet>,
}

impl XenCaps {
    fn boot(opts: &BootOptions) -> XenCaps {
        let mut x = XenCaps {
            ram: opts.ram.clone(),
            domains: BTreeSet::from([DomId::DOM0]),
            caps: BTreeMap::new(),
        };
        match opts.io_default {
            IoDefault::Dom0 => {
                for s in Space::ALL {
                    x.caps
                        .entry((DomId::DOM0, s))
                        .or_default()
                        .add(0, s.max_unit());
                }
            }
            IoDefault::None => {
                for r in &opts.dom0 {
                    x.caps
                        .entry((DomId::DOM0, r.space()))
                        .or_default()
                        .add(r.first(), r.last());
                }
            }
        }
        x
    }

    fn exists(&self, d: DomId) -> Result<(), Error> {
        if self.domains.contains(&d) {
            Ok(())
        } else {
            Err(Error::NoSuchDomain(d))
        }
    }

    fn not_ram(&self, r: UnitRange) -> Result<(), Error> {
        if r.space() != Space::IoMem {
            return Ok(());
        }
        match self.ram.iter().find_map(|m| r.clamp(m.first(), m.last())) {
            Some(hit) => Err(Error::NotIoMemory { unit: hit.first() }),
            None => Ok(()),
        }
    }

    fn holds(&self, d: DomId, r: UnitRange) -> bool {
        self.caps
            .get(&(d, r.space()))
            .is_some_and(|s| s.contains(r.first(), r.last()))
    }

    /// `Ok` when `d` holds all of `r`, else `not-granted` at its first unit.
    fn granted(&self, d: DomId, r: UnitRange) -> Result<(), Error> {
        if self.holds(d, r) {
            Ok(())
        } else {
            Err(Error::NotGranted { unit: r.first() })
        }
    }

    fn check_port(&self, dom: u16, port: u16, width: u8) -> bool {
        if !matches!(width, 1 | 2 | 4) {
            return false;
        }
        let last = port as u64 + width as u64 - 1;
        let Ok(d) = DomId::new(dom as u64) else {
            return false;
        };
        last <= 0xffff
            && self
                .caps
                .get(&(d, Space::IoPort))
                .is_some_and(|s| s.contains(port as u64, last))
    }
}

enum Inner {
    On(Box<Accountant>),
    Off(Arc<RwLock<XenCaps>>),
}

/// The accountant (or, accounting off, Xen's per-domain permissions). The
/// hypervisor keeps it behind its control-plane mutex.
pub struct Acct {
    inner: Inner,
}

impl std::fmt::Debug for Acct {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.inner {
            Inner::On(_) => "Acct(on)",
            Inner::Off(_) => "Acct(off)",
        })
    }
}

/// The per-exit port check handed to every vCPU thread.
#[derive(Clone, Debug)]
pub enum Checker {
    /// The accountant's lock-free radix-tree check.
    On(PortChecker),
    /// Xen-style: the domain's own ioport rangeset, under a read lock.
    Off(Arc<RwLock<XenCaps>>),
}

impl Checker {
    /// Whether `dom` may access `width` bytes of ports from `port`.
    #[inline]
    pub fn check(&self, dom: u16, port: u16, width: u8) -> bool {
        match self {
            Checker::On(c) => c.check(dom, port, width),
            Checker::Off(x) => x.read().is_ok_and(|x| x.check_port(dom, port, width)),
        }
    }
}

/// The port check one domain's vCPU threads hold: with accounting on, a
/// radix checker bound to the domain (its node loaded once, so a check is
/// two loads); off, the domain's Xen-style rangeset.
#[derive(Clone, Debug)]
pub enum DomChecker {
    /// The accountant's checker bound to the domain.
    On(BoundPortChecker),
    /// Xen-style: the domain's own ioport rangeset, under a read lock.
    Off(Arc<RwLock<XenCaps>>, u16),
}

impl DomChecker {
    /// Whether the domain may access `width` bytes of ports from `port`.
    #[inline]
    pub fn check(&self, port: u16, width: u8) -> bool {
        match self {
            DomChecker::On(c) => c.check(port, width),
            DomChecker::Off(x, dom) => x.read().is_ok_and(|x| x.check_port(*dom, port, width)),
        }
    }
}

/// Why the accountant could not be booted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcctBootError(pub BootError);

impl std::fmt::Display for AcctBootError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bad boot line: {}", self.0)
    }
}

impl Acct {
    /// Boots from a Xen-style command line (SPEC section 2).
    pub fn boot(
        line: &str,
        accounting: Accounting,
        tracker: TrackerKind,
    ) -> Result<Acct, AcctBootError> {
        let opts = BootOptions::parse(line).map_err(AcctBootError)?;
        let inner = match accounting {
            Accounting::On => Inner::On(Box::new(
                Accountant::boot(&opts, tracker).map_err(AcctBootError)?,
            )),
            Accounting::Off => Inner::Off(Arc::new(RwLock::new(XenCaps::boot(&opts)))),
        };
        Ok(Acct { inner })
    }

    /// Sets every domain's limits (accounting on; Xen's behaviour has none).
    pub fn set_quotas(&mut self, q: Quotas) {
        if let Inner::On(a) = &mut self.inner {
            a.set_quotas(q);
        }
    }

    /// Which mode this is.
    pub fn accounting(&self) -> Accounting {
        match self.inner {
            Inner::On(_) => Accounting::On,
            Inner::Off(_) => Accounting::Off,
        }
    }

    /// The checker for vCPU threads.
    pub fn checker(&self) -> Checker {
        match &self.inner {
            Inner::On(a) => Checker::On(a.port_checker()),
            Inner::Off(x) => Checker::Off(Arc::clone(x)),
        }
    }

    /// The checker for the vCPU threads of domain `d` (`None` only if the
    /// port table cannot hold `d`, which no `DomId` reaches).
    pub fn dom_checker(&mut self, d: DomId) -> Option<DomChecker> {
        match &mut self.inner {
            Inner::On(a) => a.bound_port_checker(d).map(DomChecker::On),
            Inner::Off(x) => Some(DomChecker::Off(Arc::clone(x), d.get())),
        }
    }

    fn off<T>(
        x: &Arc<RwLock<XenCaps>>,
        f: impl FnOnce(&mut XenCaps) -> Result<T, Error>,
    ) -> Result<T, Error> {
        // The caps stay consistent through a panic elsewhere (every update
        // is a single map operation): see `locks`.
        let mut g = crate::locks::write(x);
        f(&mut g)
    }

    /// Runs `on` against the accountant, or `off` against Xen's permissions
    /// (write-locked), whichever this is.
    fn either<T>(
        &mut self,
        on: impl FnOnce(&mut Accountant) -> Result<T, Error>,
        off: impl FnOnce(&mut XenCaps) -> Result<T, Error>,
    ) -> Result<T, Error> {
        match &mut self.inner {
            Inner::On(a) => on(a),
            Inner::Off(x) => Self::off(x, off),
        }
    }

    /// Runs `f` against the accountant; `None` with accounting off (there
    /// is none).
    pub fn with_accountant<T>(
        &mut self,
        f: impl FnOnce(&mut Accountant) -> Result<T, Error>,
    ) -> Option<Result<T, Error>> {
        match &mut self.inner {
            Inner::On(a) => Some(f(a)),
            Inner::Off(_) => None,
        }
    }

    /// Runs `on` against the accountant; accounting off, accepts (Xen keeps
    /// no record of the hypervisor's own reservations and uses).
    fn on_only(
        &mut self,
        on: impl FnOnce(&mut Accountant) -> Result<(), Error>,
    ) -> Result<(), Error> {
        match &mut self.inner {
            Inner::On(a) => on(a),
            Inner::Off(_) => Ok(()),
        }
    }

    /// Creates domain `d`.
    pub fn create(&mut self, d: DomId) -> Result<(), Error> {
        match &mut self.inner {
            Inner::On(a) => a.create(d),
            Inner::Off(x) => Self::off(x, |x| {
                if !x.domains.insert(d) {
                    return Err(Error::DomainExists(d));
                }
                Ok(())
            }),
        }
    }

    /// Destroys domain `d`; returns the uses torn down.
    pub fn destroy(&mut self, d: DomId) -> Result<Teardown, Error> {
        match &mut self.inner {
            Inner::On(a) => a.destroy(d),
            Inner::Off(x) => Self::off(x, |x| {
                if d == DomId::DOM0 {
                    return Err(Error::NotPermitted(d));
                }
                x.exists(d)?;
                x.domains.remove(&d);
                x.caps.retain(|(dd, _), _| *dd != d);
                Ok(Teardown::new())
            }),
        }
    }

    /// `Ok` if domain `d` exists (domain 0 always does), else `NoSuchDomain`.
    pub fn known(&self, d: DomId) -> Result<(), Error> {
        let known = d == DomId::DOM0
            || match &self.inner {
                Inner::On(a) => a.exists(d),
                Inner::Off(x) => crate::locks::read(x).exists(d).is_ok(),
            };
        if known {
            Ok(())
        } else {
            Err(Error::NoSuchDomain(d))
        }
    }

    /// Whether [`Acct::destroy`] of `d` would succeed, changing nothing:
    /// `NotPermitted` for domain 0, `NoSuchDomain` for an unknown domain.
    pub fn can_destroy(&self, d: DomId) -> Result<(), Error> {
        if d == DomId::DOM0 {
            return Err(Error::NotPermitted(d));
        }
        self.known(d)
    }

    /// Grants `r` to `d`; returns the uses a forced grant tore down.
    pub fn grant(
        &mut self,
        d: DomId,
        r: UnitRange,
        mode: Mode,
        force: bool,
    ) -> Result<Teardown, Error> {
        match &mut self.inner {
            Inner::On(a) => a.grant(d, r, mode, force),
            Inner::Off(x) => Self::off(x, |x| {
                x.exists(d)?;
                x.not_ram(r)?;
                x.caps
                    .entry((d, r.space()))
                    .or_default()
                    .add(r.first(), r.last());
                Ok(Teardown::new())
            }),
        }
    }

    /// Revokes `r` from `d`.
    pub fn revoke(&mut self, d: DomId, r: UnitRange, force: bool) -> Result<Revoked, Error> {
        match &mut self.inner {
            Inner::On(a) => a.revoke(d, r, force),
            Inner::Off(x) => Self::off(x, |x| {
                x.exists(d)?;
                if let Some(s) = x.caps.get_mut(&(d, r.space())) {
                    s.remove(r.first(), r.last());
                }
                Ok(Revoked {
                    pending: false,
                    teardown: Teardown::new(),
                })
            }),
        }
    }

    /// Records a mapping of every frame in `r` by `d`.
    pub fn map(&mut self, d: DomId, r: UnitRange) -> Result<(), Error> {
        self.either(
            |a| a.map(d, r),
            |x| {
                x.exists(d)?;
                x.not_ram(r)?;
                x.granted(d, r)
            },
        )
    }

    /// Ends a mapping of every frame in `r` by `d` (accounting off: the
    /// hypervisor's own map counts decide `not-mapped`).
    pub fn unmap(&mut self, d: DomId, r: UnitRange) -> Result<(), Error> {
        self.either(|a| a.unmap(d, r), |x| x.exists(d))
    }

    /// Records a binding of line(s) `r` by `d`.
    pub fn bind(&mut self, d: DomId, r: UnitRange) -> Result<(), Error> {
        self.either(
            |a| a.bind(d, r),
            |x| {
                x.exists(d)?;
                x.granted(d, r)
            },
        )
    }

    /// Ends a binding (accounting off: the hypervisor's binding table decides
    /// `not-bound`).
    pub fn unbind(&mut self, d: DomId, r: UnitRange) -> Result<(), Error> {
        self.either(|a| a.unbind(d, r), |x| x.exists(d))
    }

    /// Hypervisor reservation (accounting off: accepted and not enforced).
    pub fn reserve(&mut self, r: UnitRange) -> Result<(), Error> {
        self.on_only(|a| a.reserve(r))
    }

    /// Lifts a reservation.
    pub fn unreserve(&mut self, r: UnitRange) -> Result<(), Error> {
        self.on_only(|a| a.unreserve(r))
    }

    /// The hypervisor's own use of reserved units.
    pub fn hvmap(&mut self, r: UnitRange) -> Result<(), Error> {
        self.on_only(|a| a.hvmap(r))
    }

    /// Ends the hypervisor's own use.
    pub fn hvunmap(&mut self, r: UnitRange) -> Result<(), Error> {
        self.on_only(|a| a.hvunmap(r))
    }

    /// One port access check through the locked path (the vCPU path uses
    /// [`Checker`]).
    pub fn access(&self, d: DomId, port: u64, width: u64) -> Result<bool, Error> {
        match &self.inner {
            Inner::On(a) => a.access(d, port, width),
            Inner::Off(x) => {
                let p = u16::try_from(port).map_err(|_| Error::OutOfRange { value: port })?;
                let w = u8::try_from(width).map_err(|_| Error::BadRange {
                    first: width,
                    last: width,
                })?;
                Ok(x.read().is_ok_and(|x| x.check_port(d.get(), p, w)))
            }
        }
    }

    /// The state of one unit (accounting on only: `None` when off).
    pub fn query(&self, space: Space, unit: u64) -> Option<Result<UnitInfo, Error>> {
        match &self.inner {
            Inner::On(a) => Some(a.query(space, unit)),
            Inner::Off(_) => None,
        }
    }

    /// Accounting off: whether `d`'s own permission rangeset covers `r`;
    /// `None` with accounting on (ask [`Acct::query`]).
    pub fn caps_cover(&self, d: DomId, r: UnitRange) -> Option<bool> {
        match &self.inner {
            Inner::On(_) => None,
            Inner::Off(x) => Some(x.read().is_ok_and(|x| x.holds(d, r))),
        }
    }

    /// Verifies the accountant's invariants (accounting off: nothing to check).
    pub fn check_invariants(&self) -> Result<(), accountant::Violation> {
        match &self.inner {
            Inner::On(a) => a.check_invariants(),
            Inner::Off(_) => Ok(()),
        }
    }

    /// Bytes of MMIO tracking state (accounting off: 0).
    pub fn tracking_bytes(&self) -> u64 {
        match &self.inner {
            Inner::On(a) => a.tracking_bytes(),
            Inner::Off(_) => 0,
        }
    }
}

/// The hypercall ABI number of an accountant error code (1-based, in the
/// SPEC's precedence order; see [`crate::hypercall`]).
pub fn errno_of(code: ErrorCode) -> u32 {
    match code {
        ErrorCode::BadRange => 1,
        ErrorCode::OutOfRange => 2,
        ErrorCode::NoSuchDomain => 3,
        ErrorCode::DomainExists => 4,
        ErrorCode::NotPermitted => 5,
        ErrorCode::NotIoMemory => 6,
        ErrorCode::Reserved => 7,
        ErrorCode::NotReserved => 8,
        ErrorCode::Conflict => 9,
        ErrorCode::Draining => 10,
        ErrorCode::InUse => 11,
        ErrorCode::NotGranted => 12,
        ErrorCode::NotMapped => 13,
        ErrorCode::NotBound => 14,
        ErrorCode::NoMemory => 15,
        ErrorCode::Quota => 16,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rangeset_merges_and_splits() {
        let mut s = RangeSet::default();
        s.add(10, 20);
        s.add(21, 30);
        s.add(5, 9);
        assert_eq!(s.0.len(), 1);
        assert!(s.contains(5, 30));
        s.remove(12, 14);
        assert!(!s.contains(5, 30));
        assert!(s.contains(5, 11) && s.contains(15, 30));
        assert!(!s.contains(12, 12));
        s.remove(0, 100);
        assert!(s.0.is_empty());
    }

    /// An accountant booted with `accounting` (RAM below 0x80000, 0xfee00
    /// reserved), domain 1 created, and dom0 mapping I/O page 0xfeb00.
    fn dom0_maps_a_page(accounting: Accounting) -> (Acct, DomId, UnitRange) {
        let mut a = Acct::boot(
            "ram=0x0-0x7ffff reserve_iomem=0xfee00",
            accounting,
            TrackerKind::SlabExtent,
        )
        .unwrap();
        let d1 = DomId::new(1).unwrap();
        a.create(d1).unwrap();
        let page = UnitRange::one(Space::IoMem, 0xfeb00).unwrap();
        a.map(DomId::DOM0, page).unwrap();
        (a, d1, page)
    }

    #[test]
    fn off_mode_has_no_exclusivity_and_revoke_keeps_nothing_checked() {
        let (mut a, d1, page) = dom0_maps_a_page(Accounting::Off);
        a.grant(d1, page, Mode::Exclusive, false).unwrap();
        a.map(d1, page).unwrap();
        // The hypervisor's own device can be handed out.
        a.grant(
            d1,
            UnitRange::one(Space::IoMem, 0xfee00).unwrap(),
            Mode::Exclusive,
            false,
        )
        .unwrap();
        let r = a.revoke(DomId::DOM0, page, true).unwrap();
        assert!(r.teardown.is_empty());
        assert_eq!(
            a.map(DomId::DOM0, page).unwrap_err().code(),
            ErrorCode::NotGranted
        );
        assert_eq!(
            a.map(d1, UnitRange::one(Space::IoMem, 0x10).unwrap())
                .unwrap_err()
                .code(),
            ErrorCode::NotIoMemory
        );
        let c = a.checker();
        assert!(c.check(0, 0x300, 4));
        assert!(!c.check(1, 0x300, 1));
    }

    #[test]
    fn on_mode_refuses_reserved_and_in_use() {
        let (mut a, d1, page) = dom0_maps_a_page(Accounting::On);
        assert_eq!(
            a.grant(d1, page, Mode::Exclusive, false)
                .unwrap_err()
                .code(),
            ErrorCode::InUse
        );
        let td = a.grant(d1, page, Mode::Exclusive, true).unwrap();
        assert_eq!(td.len(), 1);
        assert_eq!(
            (td[0].dom, td[0].first, td[0].count),
            (DomId::DOM0, 0xfeb00, 1)
        );
        assert_eq!(
            a.grant(
                d1,
                UnitRange::one(Space::IoMem, 0xfee00).unwrap(),
                Mode::Exclusive,
                false
            )
            .unwrap_err()
            .code(),
            ErrorCode::Reserved
        );
    }
}
