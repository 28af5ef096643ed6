//! Differential property test: random op sequences through the real
//! accountant (as trace text, through `Replay`) and through a naive per-unit
//! reference model written here from SPEC section 2. After every op: the
//! outputs agree, the invariants hold, and the observable state of every unit
//! in the windows (holders, draining, uses, reservation, port checks) agrees;
//! a failed op leaves that state exactly as it was. Boot lines sometimes set
//! small quotas (`quota_frames=`, `quota_records=`), which the reference
//! model applies by its own definition: frames = the domain's iomem use
//! counts summed; records = maximal runs of frames of equal non-zero count.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use accountant::trace::Replay;
use accountant::{DomId, Mode, Space, TrackerKind};
use proptest::prelude::*;

const DOMS: u16 = 5;
/// Units the test draws ranges from, per space.
fn window(space: Space) -> Vec<u64> {
    match space {
        Space::IoPort => (0x3c..=0x43).chain(0xfffc..=0xffff).collect(),
        Space::IoMem => (0..=11).collect(),
        Space::Irq => (0..=11).collect(),
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct U {
    ram: bool,
    nodef: bool,
    reserved: bool,
    hv: u32,
    holders: BTreeMap<u16, Mode>,
    draining: BTreeSet<u16>,
    uses: BTreeMap<u16, u32>,
}

#[derive(Clone, Debug)]
struct Reference {
    units: HashMap<(Space, u64), U>,
    doms: BTreeSet<u16>,
    default: Option<u16>,
    /// (frames, records) limits of every domain.
    quotas: (u64, u64),
}

type Out = Result<&'static str, &'static str>;

impl Reference {
    fn u(&self, s: Space, x: u64) -> U {
        self.units.get(&(s, x)).cloned().unwrap_or_default()
    }
    fn um(&mut self, s: Space, x: u64) -> &mut U {
        self.units.entry((s, x)).or_default()
    }
    fn default_ok(&self, d: u16, s: Space, u: &U) -> bool {
        self.default == Some(d)
            && !u.reserved
            && u.holders.is_empty()
            && u.draining.is_empty()
            && !u.ram
            && !(s == Space::IoPort && u.nodef)
    }
    /// Level 1 for a range; returns the units.
    fn range(s: Space, a: u64, b: u64) -> Result<Vec<u64>, &'static str> {
        if a > b {
            Err("bad-range")
        } else if b > s.max_unit() {
            Err("out-of-range")
        } else {
            Ok((a..=b).collect())
        }
    }
    fn dom(&self, d: u64) -> Result<u16, &'static str> {
        if d > 32751 {
            Err("out-of-range")
        } else {
            Ok(d as u16)
        }
    }
    fn exists(&self, d: u16) -> Result<(), &'static str> {
        if self.doms.contains(&d) {
            Ok(())
        } else {
            Err("no-such-domain")
        }
    }
    fn not_ram(&self, s: Space, units: &[u64]) -> Result<(), &'static str> {
        if units.iter().any(|x| self.u(s, *x).ram) {
            Err("not-io-memory")
        } else {
            Ok(())
        }
    }
    /// The lowest-level error over units, by the SPEC's order.
    fn worst(errs: impl IntoIterator<Item = &'static str>) -> Result<(), &'static str> {
        const ORDER: [&str; 10] = [
            "reserved",
            "not-reserved",
            "conflict",
            "draining",
            "in-use",
            "not-granted",
            "not-mapped",
            "not-bound",
            "quota",
            "no-memory",
        ];
        match errs
            .into_iter()
            .min_by_key(|e| ORDER.iter().position(|o| o == e).unwrap_or(99))
        {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn reserve(&mut self, s: Space, a: u64, b: u64) -> Out {
        let units = Self::range(s, a, b)?;
        self.not_ram(s, &units)?;
        let mut errs = vec![];
        for &x in &units {
            let u = self.u(s, x);
            if u.reserved {
                continue;
            }
            if !u.holders.is_empty() {
                errs.push("conflict");
            }
            if !u.draining.is_empty() {
                errs.push("draining");
            }
            if u.uses.values().any(|n| *n > 0) {
                errs.push("in-use");
            }
        }
        Self::worst(errs)?;
        for x in units {
            self.um(s, x).reserved = true;
        }
        Ok("ok")
    }

    fn grant(&mut self, d: u64, s: Space, a: u64, b: u64, mode: Mode, force: bool) -> Out {
        let d = self.dom(d)?;
        let units = Self::range(s, a, b)?;
        self.exists(d)?;
        self.not_ram(s, &units)?;
        let dd = self.default.filter(|x| *x != d);
        let mut errs = vec![];
        for &x in &units {
            let u = self.u(s, x);
            if u.reserved {
                errs.push("reserved");
                continue;
            }
            if u.holders.get(&d) == Some(&mode) {
                continue; // held in this mode already: left as it is
            }
            if u.holders.get(&d).is_some_and(|m| *m != mode) {
                errs.push("conflict");
            }
            if u.holders
                .iter()
                .any(|(h, m)| *h != d && (mode == Mode::Exclusive || *m == Mode::Exclusive))
            {
                errs.push("conflict");
            }
            if u.draining.iter().any(|x| *x != d) {
                errs.push("draining");
            }
            if let Some(dd) = dd {
                if !u.holders.contains_key(&dd) && u.uses.get(&dd).is_some_and(|n| *n > 0) && !force
                {
                    errs.push("in-use");
                }
            }
        }
        Self::worst(errs)?;
        for x in units {
            let u = self.um(s, x);
            if u.holders.get(&d) == Some(&mode) {
                continue; // left as it is: no teardown of another domain's use either
            }
            if let Some(dd) = dd {
                if !u.holders.contains_key(&dd) {
                    u.uses.remove(&dd);
                }
            }
            u.draining.remove(&d);
            u.holders.entry(d).or_insert(mode);
        }
        Ok("ok")
    }

    fn revoke(&mut self, d: u64, s: Space, a: u64, b: u64, force: bool) -> Out {
        let d = self.dom(d)?;
        let units = Self::range(s, a, b)?;
        self.exists(d)?;
        self.not_ram(s, &units)?;
        if units
            .iter()
            .any(|x| !self.u(s, *x).holders.contains_key(&d))
        {
            return Err("not-granted");
        }
        let mut pending = false;
        for x in units {
            let u = self.um(s, x);
            u.holders.remove(&d);
            if u.uses.get(&d).is_some_and(|n| *n > 0) {
                if force {
                    u.uses.remove(&d);
                } else {
                    u.draining.insert(d);
                    pending = true;
                }
            }
        }
        Ok(if pending { "pending" } else { "ok" })
    }

    fn add_use(&mut self, d: u64, s: Space, a: u64, b: u64) -> Out {
        let d = self.dom(d)?;
        let units = Self::range(s, a, b)?;
        self.exists(d)?;
        self.not_ram(s, &units)?;
        let mut errs = vec![];
        for &x in &units {
            let u = self.u(s, x);
            if u.reserved {
                errs.push("reserved");
            } else if u.draining.contains(&d) {
                errs.push("draining");
            } else if !u.holders.contains_key(&d) && !self.default_ok(d, s, &u) {
                errs.push("not-granted");
            }
        }
        Self::worst(errs)?;
        if s == Space::IoMem {
            let (frames, runs) = self.usage(d, None);
            let (_, after) = self.usage(d, Some((a, b)));
            if frames + units.len() as u64 > self.quotas.0
                || (after > runs && after > self.quotas.1)
            {
                return Err("quota");
            }
        }
        for x in units {
            *self.um(s, x).uses.entry(d).or_insert(0) += 1;
        }
        Ok("ok")
    }

    /// `d`'s iomem frames mapped (counts summed) and maximal runs of equal
    /// non-zero count, after one more use of `extra` if given.
    fn usage(&self, d: u16, extra: Option<(u64, u64)>) -> (u64, u64) {
        let mut frames = 0;
        let mut runs = 0;
        let mut prev = 0u32;
        for x in 0..=12u64 {
            let mut n = self.u(Space::IoMem, x).uses.get(&d).copied().unwrap_or(0);
            if extra.is_some_and(|(a, b)| (a..=b).contains(&x)) {
                n += 1;
            }
            frames += u64::from(n);
            if n != 0 && n != prev {
                runs += 1;
            }
            prev = n;
        }
        (frames, runs)
    }

    fn drop_use(&mut self, d: u64, s: Space, a: u64, b: u64) -> Out {
        let d = self.dom(d)?;
        let units = Self::range(s, a, b)?;
        self.exists(d)?;
        self.not_ram(s, &units)?;
        if units
            .iter()
            .any(|x| self.u(s, *x).uses.get(&d).is_none_or(|n| *n == 0))
        {
            return Err(if s == Space::Irq {
                "not-bound"
            } else {
                "not-mapped"
            });
        }
        for x in units {
            let u = self.um(s, x);
            let n = u.uses.entry(d).or_insert(0);
            *n -= 1;
            if *n == 0 {
                u.uses.remove(&d);
                u.draining.remove(&d);
            }
        }
        Ok("ok")
    }

    fn allowed(&self, d: u16, p: u64) -> bool {
        let u = self.u(Space::IoPort, p);
        u.holders.contains_key(&d) || self.default_ok(d, Space::IoPort, &u)
    }

    fn apply(&mut self, op: &G) -> Out {
        match op {
            G::Create(d) => {
                let d = self.dom(*d)?;
                if !self.doms.insert(d) {
                    return Err("domain-exists");
                }
                Ok("ok")
            }
            G::Destroy(d) => {
                let d = self.dom(*d)?;
                if d == 0 {
                    return Err("not-permitted");
                }
                self.exists(d)?;
                self.doms.remove(&d);
                for u in self.units.values_mut() {
                    u.holders.remove(&d);
                    u.draining.remove(&d);
                    u.uses.remove(&d);
                }
                Ok("ok")
            }
            G::Reserve(s, a, b) => self.reserve(*s, *a, *b),
            G::Unreserve(s, a, b) => {
                let units = Self::range(*s, *a, *b)?;
                self.not_ram(*s, &units)?;
                Self::worst(units.iter().filter_map(|x| {
                    let u = self.u(*s, *x);
                    if !u.reserved {
                        Some("not-reserved")
                    } else if u.hv > 0 {
                        Some("in-use")
                    } else {
                        None
                    }
                }))?;
                for x in units {
                    self.um(*s, x).reserved = false;
                }
                Ok("ok")
            }
            G::HvMap(s, a, b) | G::HvUnmap(s, a, b) => {
                let map = matches!(op, G::HvMap(..));
                let units = Self::range(*s, *a, *b)?;
                self.not_ram(*s, &units)?;
                Self::worst(units.iter().filter_map(|x| {
                    let u = self.u(*s, *x);
                    if !u.reserved {
                        Some("not-reserved")
                    } else if !map && u.hv == 0 {
                        Some("not-mapped")
                    } else {
                        None
                    }
                }))?;
                for x in units {
                    let u = self.um(*s, x);
                    if map {
                        u.hv += 1
                    } else {
                        u.hv -= 1
                    }
                }
                Ok("ok")
            }
            G::Grant(d, s, a, b, m, f) => self.grant(*d, *s, *a, *b, *m, *f),
            G::Revoke(d, s, a, b, f) => self.revoke(*d, *s, *a, *b, *f),
            G::Map(d, a, b) => self.add_use(*d, Space::IoMem, *a, *b),
            G::Bind(d, a, b) => self.add_use(*d, Space::Irq, *a, *b),
            G::Unmap(d, a, b) => self.drop_use(*d, Space::IoMem, *a, *b),
            G::Unbind(d, a, b) => self.drop_use(*d, Space::Irq, *a, *b),
            G::Access(d, p, w) => {
                let d = self.dom(*d)?;
                if *p > 0xffff {
                    return Err("out-of-range");
                }
                if !matches!(w, 1 | 2 | 4) {
                    return Err("bad-range");
                }
                self.exists(d)?;
                if p + w - 1 > 0xffff {
                    return Ok("deny");
                }
                Ok(if (*p..p + w).all(|x| self.allowed(d, x)) {
                    "allow"
                } else {
                    "deny"
                })
            }
            G::Check => Ok("ok"),
        }
    }
}

#[derive(Clone, Debug)]
enum G {
    Create(u64),
    Destroy(u64),
    Reserve(Space, u64, u64),
    Unreserve(Space, u64, u64),
    HvMap(Space, u64, u64),
    HvUnmap(Space, u64, u64),
    Grant(u64, Space, u64, u64, Mode, bool),
    Revoke(u64, Space, u64, u64, bool),
    Map(u64, u64, u64),
    Unmap(u64, u64, u64),
    Bind(u64, u64, u64),
    Unbind(u64, u64, u64),
    Access(u64, u64, u64),
    Check,
}

fn text(op: &G) -> String {
    let r = |a: &u64, b: &u64| {
        if a == b {
            format!("{a:#x}")
        } else {
            format!("{a:#x}-{b:#x}")
        }
    };
    let m = |m: &Mode| {
        if *m == Mode::Exclusive {
            "exclusive"
        } else {
            "shared"
        }
    };
    let f = |f: &bool| if *f { " force" } else { "" };
    match op {
        G::Create(d) => format!("create {d}"),
        G::Destroy(d) => format!("destroy {d}"),
        G::Reserve(s, a, b) => format!("reserve {s} {}", r(a, b)),
        G::Unreserve(s, a, b) => format!("unreserve {s} {}", r(a, b)),
        G::HvMap(s, a, b) => format!("hvmap {s} {}", r(a, b)),
        G::HvUnmap(s, a, b) => format!("hvunmap {s} {}", r(a, b)),
        G::Grant(d, s, a, b, mo, fo) => format!("grant {d} {s} {} {}{}", r(a, b), m(mo), f(fo)),
        G::Revoke(d, s, a, b, fo) => format!("revoke {d} {s} {}{}", r(a, b), f(fo)),
        G::Map(d, a, b) => format!("map {d} iomem {}", r(a, b)),
        G::Unmap(d, a, b) => format!("unmap {d} iomem {}", r(a, b)),
        G::Bind(d, a, b) => format!("bind {d} irq {}", r(a, b)),
        G::Unbind(d, a, b) => format!("unbind {d} irq {}", r(a, b)),
        G::Access(d, p, w) => format!("access {d} ioport {p:#x} {w}"),
        G::Check => "check".to_string(),
    }
}

fn space() -> impl Strategy<Value = Space> {
    prop_oneof![Just(Space::IoPort), Just(Space::IoMem), Just(Space::Irq)]
}

/// A domain id: mostly 0..DOMS, sometimes out of range.
fn dom() -> impl Strategy<Value = u64> {
    prop_oneof![40 => 0..u64::from(DOMS), 1 => Just(40000u64)]
}

/// A range in `s`'s window: mostly 1..=4 units, sometimes reversed or out of the space.
fn range_in(s: Space) -> impl Strategy<Value = (Space, u64, u64)> {
    let w = window(s);
    let n = w.len();
    prop_oneof![
        40 => (0..n, 0..3usize).prop_map(move |(i, len)| {
            let a = w[i];
            let b = w[(i + len).min(n - 1)];
            (s, a, b.max(a))
        }),
        1 => Just((s, 5, 3)),
        1 => Just((s, s.max_unit(), s.max_unit() + 1)),
    ]
}

fn any_range() -> impl Strategy<Value = (Space, u64, u64)> {
    space().prop_flat_map(range_in)
}

fn mode() -> impl Strategy<Value = Mode> {
    prop_oneof![Just(Mode::Exclusive), Just(Mode::Shared)]
}

/// Use ops over a space: map/unmap for iomem, bind/unbind for irq; ports have none.
fn use_op(d: u64, s: Space, a: u64, b: u64, add: bool) -> Option<G> {
    match (s, add) {
        (Space::IoMem, true) => Some(G::Map(d, a, b)),
        (Space::IoMem, false) => Some(G::Unmap(d, a, b)),
        (Space::Irq, true) => Some(G::Bind(d, a, b)),
        (Space::Irq, false) => Some(G::Unbind(d, a, b)),
        (Space::IoPort, _) => None,
    }
}

/// Related ops on one range, so that draining, teardown and default-right
/// conflicts happen often: grant, use, revoke (plain or forced), maybe unuse,
/// maybe a competing grant; or the default domain's use then a (forced) grant.
fn compound() -> impl Strategy<Value = Vec<G>> {
    (1..4u64, 1..4u64, any_range(), mode(), any::<bool>(), 0..4u8).prop_map(
        |(d, e, (s, a, b), m, force, tail)| {
            let mut v = vec![G::Grant(d, s, a, b, m, false)];
            v.extend(use_op(d, s, a, b, true));
            match tail {
                0 => v.push(G::Revoke(d, s, a, b, force)),
                1 => {
                    v.push(G::Revoke(d, s, a, b, false));
                    v.push(G::Grant(e, s, a, b, m, force));
                    v.extend(use_op(d, s, a, a, false));
                    v.push(G::Grant(d, s, a, b, m, false));
                }
                2 => {
                    v.clear();
                    v.extend(use_op(0, s, a, b, true));
                    v.push(G::Grant(e, s, a, b, m, force));
                    v.extend(use_op(0, s, a, b, false));
                }
                _ => {
                    v.push(G::Revoke(d, s, a, b, false));
                    v.extend(use_op(d, s, b, b, false));
                    v.push(G::Grant(e, s, b, b, Mode::Shared, false));
                }
            }
            v
        },
    )
}

fn op() -> impl Strategy<Value = Vec<G>> {
    prop_oneof![
        12 => compound(),
        60 => single().prop_map(|g| vec![g]),
    ]
}

fn single() -> impl Strategy<Value = G> {
    prop_oneof![
        2 => dom().prop_map(G::Create),
        1 => dom().prop_map(G::Destroy),
        1 => any_range().prop_map(|(s, a, b)| G::Reserve(s, a, b)),
        2 => any_range().prop_map(|(s, a, b)| G::Unreserve(s, a, b)),
        1 => any_range().prop_map(|(s, a, b)| G::HvMap(s, a, b)),
        1 => any_range().prop_map(|(s, a, b)| G::HvUnmap(s, a, b)),
        8 => (dom(), any_range(), mode(), any::<bool>())
            .prop_map(|(d, (s, a, b), m, f)| G::Grant(d, s, a, b, m, f)),
        6 => (dom(), any_range(), any::<bool>()).prop_map(|(d, (s, a, b), f)| G::Revoke(d, s, a, b, f)),
        8 => (dom(), range_in(Space::IoMem)).prop_map(|(d, (_, a, b))| G::Map(d, a, b)),
        6 => (dom(), range_in(Space::IoMem)).prop_map(|(d, (_, a, b))| G::Unmap(d, a, b)),
        5 => (dom(), range_in(Space::Irq)).prop_map(|(d, (_, a, b))| G::Bind(d, a, b)),
        4 => (dom(), range_in(Space::Irq)).prop_map(|(d, (_, a, b))| G::Unbind(d, a, b)),
        6 => (dom(), range_in(Space::IoPort), prop_oneof![6 => Just(1u64), 3 => Just(2), 3 => Just(4), 1 => Just(3)])
            .prop_map(|(d, (_, p, _), w)| G::Access(d, p, w)),
        1 => Just(G::Check),
    ]
}

#[derive(Clone, Debug)]
struct Boot {
    none: bool,
    ram: Option<(u64, u64)>,
    disable: Option<(u64, u64)>,
    reserve: Vec<(Space, u64, u64)>,
    dom0: Vec<(Space, u64, u64)>,
    quotas: Option<(u64, u64)>,
}

fn boot() -> impl Strategy<Value = Boot> {
    (
        any::<bool>(),
        proptest::option::of((0u64..4, 0u64..4).prop_map(|(a, l)| (a, a + l))),
        proptest::option::of(
            range_in(Space::IoPort).prop_filter("valid", |r| r.1 <= r.2 && r.2 <= 0xffff),
        ),
        proptest::collection::vec(
            any_range().prop_filter("valid", |r| r.1 <= r.2 && r.2 <= r.0.max_unit()),
            0..3,
        ),
        proptest::collection::vec(
            any_range().prop_filter("valid", |r| r.1 <= r.2 && r.2 <= r.0.max_unit()),
            0..3,
        ),
        proptest::option::of((0u64..16, 0u64..4)),
    )
        .prop_map(|(none, ram, disable, reserve, dom0, quotas)| Boot {
            none,
            ram,
            disable: disable.map(|(_, a, b)| (a, b)),
            reserve,
            dom0,
            quotas,
        })
}

fn boot_line(b: &Boot) -> String {
    let mut s = String::from("boot");
    if b.none {
        s += " io_default=none";
    }
    if let Some((a, e)) = b.ram {
        s += &format!(" ram={a}-{e}");
    }
    if let Some((a, e)) = b.disable {
        s += &format!(" dom0_ioports_disable={a}-{e}");
    }
    let key = |prefix: &str, sp: Space| {
        format!(
            "{prefix}_{}",
            match sp {
                Space::IoPort => "ioports",
                Space::IoMem => "iomem",
                Space::Irq => "irqs",
            }
        )
    };
    for (sp, a, e) in &b.reserve {
        s += &format!(" {}={a}-{e}", key("reserve", *sp));
    }
    for (sp, a, e) in &b.dom0 {
        s += &format!(" {}={a}-{e}", key("dom0", *sp));
    }
    if let Some((f, r)) = b.quotas {
        s += &format!(" quota_frames={f} quota_records={r}");
    }
    s
}

/// Boots the reference; `None` when the boot line must fail.
fn boot_reference(b: &Boot) -> Option<Reference> {
    let mut r = Reference {
        units: HashMap::new(),
        doms: BTreeSet::from([0]),
        default: (!b.none).then_some(0),
        quotas: b.quotas.unwrap_or((
            accountant::Quotas::DEFAULT_FRAMES,
            accountant::Quotas::DEFAULT_RECORDS,
        )),
    };
    if let Some((a, e)) = b.ram {
        for x in a..=e {
            r.um(Space::IoMem, x).ram = true;
        }
    }
    if let Some((a, e)) = b.disable {
        for x in a..=e {
            r.um(Space::IoPort, x).nodef = true;
        }
    }
    for (s, a, e) in &b.reserve {
        r.reserve(*s, *a, *e).ok()?;
    }
    for (s, a, e) in &b.dom0 {
        r.grant(0, *s, *a, *e, Mode::Exclusive, false).ok()?;
    }
    Some(r)
}

fn key(line: &str) -> String {
    let t: Vec<&str> = line.split_whitespace().collect();
    match t.as_slice() {
        ["err", code, ..] => format!("err {code}"),
        [first, ..] => first.to_string(),
        [] => String::new(),
    }
}

/// The observable state of the windows, from the real accountant.
fn snapshot(rp: &Replay) -> Vec<String> {
    let a = rp.accountant().expect("booted");
    let mut out = vec![];
    for s in Space::ALL {
        for x in window(s) {
            out.push(match a.query(s, x) {
                Ok(i) => format!(
                    "{s} {x:#x} r{} hv{} h{:?} d{:?} u{:?}",
                    i.reserved, i.hv_uses, i.holders, i.draining, i.uses
                ),
                Err(e) => format!("{s} {x:#x} {e}"),
            });
        }
    }
    for d in 0..DOMS {
        let Ok(id) = DomId::new(u64::from(d)) else {
            continue;
        };
        for p in window(Space::IoPort) {
            out.push(format!("{d} {p:#x} {:?}", a.access(id, p, 1)));
        }
    }
    out
}

fn compare(rp: &Replay, r: &Reference) -> Result<(), String> {
    let a = rp.accountant().expect("booted");
    for s in Space::ALL {
        for x in window(s) {
            let u = r.u(s, x);
            match a.query(s, x) {
                Err(e) => {
                    if !(u.ram && e.code().name() == "not-io-memory") {
                        return Err(format!("query {s} {x:#x}: {e}"));
                    }
                }
                Ok(i) => {
                    let holders: Vec<(u16, Mode)> =
                        i.holders.iter().map(|(d, m)| (d.get(), *m)).collect();
                    let want_h: Vec<(u16, Mode)> =
                        u.holders.iter().map(|(d, m)| (*d, *m)).collect();
                    let draining: Vec<u16> = i.draining.iter().map(|d| d.get()).collect();
                    let want_d: Vec<u16> = u.draining.iter().copied().collect();
                    let uses: Vec<(u16, u32)> = i.uses.iter().map(|(d, n)| (d.get(), *n)).collect();
                    let want_u: Vec<(u16, u32)> = u.uses.iter().map(|(d, n)| (*d, *n)).collect();
                    if u.ram
                        || i.reserved != u.reserved
                        || i.hv_uses != u.hv
                        || holders != want_h
                        || draining != want_d
                        || uses != want_u
                    {
                        return Err(format!("{s} {x:#x}: got {i}, reference {u:?}"));
                    }
                }
            }
        }
    }
    for d in 0..DOMS {
        if !r.doms.contains(&d) {
            continue;
        }
        let id = DomId::new(u64::from(d)).map_err(|e| e.to_string())?;
        for p in window(Space::IoPort) {
            let got = a.access(id, p, 1).map_err(|e| e.to_string())?;
            if got != r.allowed(d, p) {
                return Err(format!("access {d} {p:#x}: got {got}"));
            }
        }
    }
    Ok(())
}

fn run_case(tracker: TrackerKind, b: &Boot, ops: &[G]) -> Result<(), TestCaseError> {
    let line = boot_line(b);
    let mut rp = Replay::new(tracker);
    let booted = rp.feed(&line);
    let Some(mut reference) = boot_reference(b) else {
        prop_assert!(booted.is_err(), "`{line}` must fail");
        return Ok(());
    };
    prop_assert_eq!(booted, Ok(Some("ok".to_string())), "`{}`", line);
    let setup = [G::Create(1), G::Create(2), G::Create(3)];
    for (i, op) in setup.iter().chain(ops).enumerate() {
        let t = text(op);
        let before = snapshot(&rp);
        let got = rp
            .feed(&t)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let got = got.unwrap_or_default();
        if std::env::var_os("IOACCT_DIFF_STATS").is_some() {
            eprintln!(
                "STAT {} {}",
                t.split_whitespace().next().unwrap_or(""),
                key(&got)
            );
        }
        let want = match reference.apply(op) {
            Ok(w) => w.to_string(),
            Err(code) => format!("err {code}"),
        };
        prop_assert_eq!(
            key(&got),
            want.clone(),
            "op {} `{}` -> `{}` (boot `{}`)",
            i,
            t,
            got,
            line
        );
        let a = rp.accountant().expect("booted");
        if let Err(v) = a.check_invariants() {
            return Err(TestCaseError::fail(format!("after op {i} `{t}`: {v}")));
        }
        if want.starts_with("err") {
            prop_assert_eq!(
                &before,
                &snapshot(&rp),
                "failed op {} `{}` changed state",
                i,
                t
            );
        }
        if let Err(e) = compare(&rp, &reference) {
            return Err(TestCaseError::fail(format!(
                "after op {i} `{t}` (boot `{line}`): {e}"
            )));
        }
    }
    Ok(())
}

proptest! {
    // 400 cases x ~250 ops (200 groups) > 10^5 ops per run.
    #![proptest_config(ProptestConfig { cases: 400, max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn matches_reference_default_tracker(b in boot(), ops in proptest::collection::vec(op(), 200).prop_map(|v| v.concat())) {
        run_case(TrackerKind::SlabExtent, &b, &ops)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn matches_reference_page_trackers(b in boot(), ops in proptest::collection::vec(op(), 120).prop_map(|v| v.concat())) {
        run_case(TrackerKind::SlabPage, &b, &ops)?;
        run_case(TrackerKind::XmallocPage, &b, &ops)?;
    }
}

/// Replays `lines` with one tracker, returning every output line in full.
fn replay_all(tracker: TrackerKind, lines: &[String]) -> Vec<String> {
    let mut rp = Replay::new(tracker);
    lines
        .iter()
        .map(|l| match rp.feed(l) {
            Ok(o) => o.unwrap_or_default(),
            Err(e) => format!("trace error {e}"),
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 60, ..ProptestConfig::default() })]

    /// The same trace gives identical output, details included, with each tracker.
    #[test]
    fn trackers_give_identical_output(b in boot(), ops in proptest::collection::vec(op(), 100).prop_map(|v| v.concat())) {
        let mut lines = vec![boot_line(&b), "create 1".into(), "create 2".into(), "create 3".into()];
        lines.extend(ops.iter().map(text));
        lines.extend((0..12).map(|f| format!("query iomem {f}")));
        let ext = replay_all(TrackerKind::SlabExtent, &lines);
        prop_assert_eq!(&ext, &replay_all(TrackerKind::SlabPage, &lines));
        prop_assert_eq!(&ext, &replay_all(TrackerKind::XmallocPage, &lines));
    }
}
