//! `accountant.instructions`: the exact number of instructions one call of
//! each accountant operation executes, counted by callgrind.
//!
//! Timings of nanosecond operations move with code layout and neighbours'
//! load; instruction counts do not. Under callgrind, one run of
//! `ioacct-bench --count-instructions [--quick]` performs every [`Case`]
//! once, each call wrapped in [`ioacct_measured_op`]; callgrind collects only
//! inside that wrapper (`--toggle-collect`) and writes one profile dump per
//! call (`--dump-after`), so the total of dump *k* is exactly the
//! instructions of case *k*: its setup is outside the wrapper, and nothing
//! else runs inside it. Counts are deterministic for one binary (the
//! accountant has no randomized hashing), so the gate compares them exactly.
//!
//! Every case but grant and access is counted warm: its setup has granted
//! the units, then mapped and unmapped them (bound and unbound the line)
//! once, so the tracker's slab holds a page and its spare record, as in a
//! hypervisor that has run for a while. The first use of a fresh tracker
//! also draws that page from the page source (one 4 KiB-aligned allocation:
//! about 670 instructions of the C library's `posix_memalign` under
//! callgrind), once per tracker, not per operation.
//!
//! Parameters: `op` ([`Op::name`]), `tracker` and `units` (grant and the
//! three revokes at 1, 4,096 and 65,536 I/O memory frames; map and unmap at
//! the page counts `accountant.map` uses; bind, unbind and access at 1), and
//! `domains` on the one case counted beside a crowd: access with [`CROWD`]
//! other domains holding [`CROWD_GRANTS`] port ranges each, whose count
//! must equal the plain access's (a gated invariant).
//! Where valgrind is not installed the metric is listed under not measured,
//! once, with the reason.

use crate::suites::{page_points, Ctx, Sink};
use accountant::{Accountant, DomId, Mode, Space, TrackerKind, UnitRange};
use reports::{Key, Metric, MetricName, Param};
use std::hint::black_box;
use std::path::Path;
use std::process::Command;

/// The metric name.
pub const NAME: MetricName = MetricName::Instructions;

/// The metric names this suite emits (for `--only`).
pub const EMITS: &[MetricName] = &[NAME];

/// The argument of the internal entry point that runs every case once.
pub const ENTRY: &str = "--count-instructions";

/// The wrapper's name, as callgrind's function patterns match it (a
/// wildcard pattern for `--toggle-collect`; `--dump-after` needs the
/// demangled name itself).
const WRAPPER_PATTERN: &str = "*ioacct_measured_op*";
const WRAPPER_NAME: &str = "bench::instructions::ioacct_measured_op";

/// First I/O memory frame the cases use.
const IOMEM_BASE: u64 = 0x10_0000;

/// The interrupt line bind, unbind use.
const IRQ_LINE: u64 = 10;

/// The I/O port access checks (not a hypervisor device).
const PORT: u64 = 0x500;

/// An accountant operation whose instructions are counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Exclusive grant of unused frames.
    Grant,
    /// Revoke of granted, unused frames (released at once).
    Revoke,
    /// Revoke of mapped frames without force: they drain.
    RevokePending,
    /// Forced revoke of mapped frames: the mappings are torn down.
    RevokeForce,
    /// Map of granted frames.
    Map,
    /// Unmap of mapped frames.
    Unmap,
    /// Bind of a granted interrupt line.
    Bind,
    /// Unbind of a bound line.
    Unbind,
    /// One allowed one-byte port access check.
    Access,
    /// Map of granted frames through the C API (`ioacct_map`).
    MapCapi,
    /// Bind of a granted line through the C API (`ioacct_bind`).
    BindCapi,
}

impl Op {
    /// Every operation, in the order cases run.
    pub const ALL: [Op; 11] = [
        Op::Grant,
        Op::Revoke,
        Op::RevokePending,
        Op::RevokeForce,
        Op::Map,
        Op::Unmap,
        Op::Bind,
        Op::Unbind,
        Op::Access,
        Op::MapCapi,
        Op::BindCapi,
    ];

    /// The `op` parameter value.
    pub const fn name(self) -> &'static str {
        match self {
            Op::Grant => "grant",
            Op::Revoke => "revoke",
            Op::RevokePending => "revoke-pending",
            Op::RevokeForce => "revoke-force",
            Op::Map => "map",
            Op::Unmap => "unmap",
            Op::Bind => "bind",
            Op::Unbind => "unbind",
            Op::Access => "access",
            Op::MapCapi => "map-capi",
            Op::BindCapi => "bind-capi",
        }
    }

    /// The unit counts this operation is counted at.
    pub fn sizes(self, quick: bool) -> Vec<u64> {
        match self {
            Op::Grant | Op::Revoke | Op::RevokePending | Op::RevokeForce => vec![1, 4096, 65_536],
            Op::Map | Op::Unmap => page_points(quick),
            Op::Bind | Op::Unbind | Op::Access | Op::BindCapi => vec![1],
            // Beside `map` at the sizes where the C boundary's fixed cost
            // weighs most (1 page) and where the work dominates.
            Op::MapCapi => vec![1, 4096],
        }
    }
}

/// One counted call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Case {
    /// The operation.
    pub op: Op,
    /// The I/O memory tracker of the accountant.
    pub tracker: TrackerKind,
    /// Units the operation covers.
    pub units: u64,
    /// Other domains that exist beside domain 0 and the measured one, each
    /// holding [`CROWD_GRANTS`] port ranges (0: none). The `domains`
    /// parameter counts every domain (crowd + 2); it is absent without a
    /// crowd.
    pub crowd: u16,
}

/// Port ranges each domain of a crowd holds.
pub const CROWD_GRANTS: u64 = 16;

/// The crowd of the constant-count cases: the access check's count may not
/// change with it (SPEC 4: a fixed number of loads whatever the grants).
pub const CROWD: u16 = 64;

impl Case {
    /// The metric parameters of this case.
    pub fn params(&self) -> Vec<(Key, Param)> {
        let mut p = vec![
            (Key::Op, Param::from(self.op.name())),
            (Key::Tracker, Param::from(self.tracker.name())),
            (Key::Units, Param::from(self.units)),
        ];
        if self.crowd > 0 {
            p.push((Key::Domains, Param::from(u64::from(self.crowd) + 2)));
        }
        p
    }
}

/// Every case, in the order the entry point runs them.
pub fn cases(quick: bool) -> Vec<Case> {
    let mut v = Vec::new();
    for tracker in TrackerKind::ALL {
        for op in Op::ALL {
            for units in op.sizes(quick) {
                v.push(Case {
                    op,
                    tracker,
                    units,
                    crowd: 0,
                });
            }
        }
    }
    v.push(Case {
        op: Op::Access,
        tracker: TrackerKind::SlabExtent,
        units: 1,
        crowd: CROWD,
    });
    v
}

/// The only code callgrind counts: one call of `f`. Never inlined, so its
/// symbol exists for `--toggle-collect` and `--dump-after`.
#[inline(never)]
fn ioacct_measured_op<T>(f: impl FnOnce() -> T) -> T {
    black_box(f())
}

fn frames(units: u64) -> Result<UnitRange, String> {
    UnitRange::new(Space::IoMem, IOMEM_BASE, IOMEM_BASE + units - 1).map_err(|e| format!("{e}"))
}

/// Sets up an accountant for `c` and performs its operation once inside
/// [`ioacct_measured_op`]. An error means the case did not do what it names
/// (e.g. a non-forced revoke of mapped frames that did not drain).
pub fn run_case(c: &Case) -> Result<(), String> {
    if matches!(c.op, Op::MapCapi | Op::BindCapi) {
        return run_capi_case(c);
    }
    let mut a = Accountant::new(c.tracker);
    let d = DomId::new(1).map_err(|e| format!("{e}"))?;
    a.create(d).map_err(|e| format!("create: {e}"))?;
    for i in 0..c.crowd {
        let other = DomId::new(100 + u64::from(i)).map_err(|e| format!("{e}"))?;
        a.create(other).map_err(|e| format!("create: {e}"))?;
        for g in 0..CROWD_GRANTS {
            let first = 0x1000 + (u64::from(i) * CROWD_GRANTS + g) * 8;
            let r = UnitRange::new(Space::IoPort, first, first + 3).map_err(|e| format!("{e}"))?;
            a.grant(other, r, Mode::Exclusive, false)
                .map_err(|e| format!("crowd grant: {e}"))?;
        }
    }
    let what = format!("{} {} {}", c.op.name(), c.tracker.name(), c.units);
    let fail = |e: accountant::Error| format!("{what}: {e}");
    match c.op {
        Op::Grant | Op::Revoke | Op::RevokePending | Op::RevokeForce | Op::Map | Op::Unmap => {
            let r = frames(c.units)?;
            if c.op == Op::Grant {
                return ioacct_measured_op(|| a.grant(d, r, Mode::Exclusive, false))
                    .map(drop)
                    .map_err(fail);
            }
            a.grant(d, r, Mode::Exclusive, false).map_err(fail)?;
            // Warm: the tracker's slab holds its page and spare record, as
            // in a running hypervisor (module docs).
            a.map(d, r).map_err(fail)?;
            a.unmap(d, r).map_err(fail)?;
            if c.op == Op::Map {
                return ioacct_measured_op(|| a.map(d, r)).map_err(fail);
            }
            if c.op != Op::Revoke {
                a.map(d, r).map_err(fail)?;
            }
            match c.op {
                Op::Unmap => ioacct_measured_op(|| a.unmap(d, r)).map_err(fail),
                _ => {
                    let force = c.op == Op::RevokeForce;
                    let rv = ioacct_measured_op(|| a.revoke(d, r, force)).map_err(fail)?;
                    if rv.pending != (c.op == Op::RevokePending) {
                        return Err(format!("{what}: pending = {}", rv.pending));
                    }
                    Ok(())
                }
            }
        }
        Op::Bind | Op::Unbind => {
            let r = UnitRange::one(Space::Irq, IRQ_LINE).map_err(|e| format!("{e}"))?;
            a.grant(d, r, Mode::Exclusive, false).map_err(fail)?;
            a.bind(d, r).map_err(fail)?;
            a.unbind(d, r).map_err(fail)?;
            if c.op == Op::Bind {
                return ioacct_measured_op(|| a.bind(d, r)).map_err(fail);
            }
            a.bind(d, r).map_err(fail)?;
            ioacct_measured_op(|| a.unbind(d, r)).map_err(fail)
        }
        Op::MapCapi | Op::BindCapi => run_capi_case(c),
        Op::Access => {
            let r = UnitRange::one(Space::IoPort, PORT).map_err(|e| format!("{e}"))?;
            a.grant(d, r, Mode::Exclusive, false).map_err(fail)?;
            match ioacct_measured_op(|| a.access(d, PORT, 1)).map_err(fail)? {
                true => Ok(()),
                false => Err(format!("{what}: a granted port was denied")),
            }
        }
    }
}

/// A case through libioacct's C API: the same setup as the Rust case (no
/// boot options, the case's tracker, domain 1, the same grant, one warm-up
/// call and its undo), and one
/// call of the exported function through an opaque pointer inside
/// [`ioacct_measured_op`].
fn run_capi_case(c: &Case) -> Result<(), String> {
    let what = format!("{} {}", c.op.name(), c.units);
    let mut a = crate::capi::CAcct::new("", c.tracker, 1)?;
    let (f, undo, first, last) = if c.op == Op::MapCapi {
        a.grant_frames(1, IOMEM_BASE, IOMEM_BASE + c.units - 1)?;
        let (f, undo) = (crate::capi::map_fn(), crate::capi::unmap_fn());
        (f, undo, IOMEM_BASE, IOMEM_BASE + c.units - 1)
    } else {
        a.grant_irq(1, IRQ_LINE)?;
        let (f, undo) = (crate::capi::bind_fn(), crate::capi::unbind_fn());
        (f, undo, IRQ_LINE, IRQ_LINE)
    };
    // Warm, as the Rust case: one call and its undo first, so the tracker's
    // slab already holds its page.
    // SAFETY: a live handle of `a`.
    let warm = unsafe { f(a.acct, 1, first, last) };
    // SAFETY: as above.
    let undone = unsafe { undo(a.acct, 1, first, last) };
    if warm != 0 || undone != 0 {
        return Err(format!("{what}: warm-up: C errors {warm}, {undone}"));
    }
    // SAFETY: a live handle of `a`.
    let rc = ioacct_measured_op(|| unsafe { f(a.acct, 1, first, last) });
    if rc == 0 {
        Ok(())
    } else {
        Err(format!("{what}: C error {rc}"))
    }
}

/// The internal entry point (`ioacct-bench --count-instructions [--quick]`):
/// runs every case once, in [`cases`] order.
pub fn run_all(quick: bool) -> Result<(), String> {
    for c in cases(quick) {
        run_case(&c)?;
    }
    Ok(())
}

/// The total instructions of one callgrind dump file (its `totals:` or
/// `summary:` line).
fn dump_total(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| {
            l.strip_prefix("totals:")
                .or_else(|| l.strip_prefix("summary:"))
        })
        .and_then(|n| n.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// Runs the entry point under callgrind and returns one count per case.
fn count(quick: bool, dir: &Path) -> Result<Vec<u64>, String> {
    let exe = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut cmd = Command::new("valgrind");
    cmd.arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}/cg.out", dir.display()))
        .arg(format!("--toggle-collect={WRAPPER_PATTERN}"))
        .arg(format!("--dump-after={WRAPPER_NAME}"))
        .arg(&exe)
        .arg(ENTRY);
    if quick {
        cmd.arg("--quick");
    }
    let out = cmd.output().map_err(|e| format!("valgrind: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        return Err(format!("valgrind exited with {}: {last}", out.status));
    }
    // Dumps are `cg.out.1`, `cg.out.2`, … in call order (plus the final
    // `cg.out` at exit, which collects nothing).
    let mut parts: Vec<(u64, u64)> = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(part) = name.strip_prefix("cg.out.").and_then(|p| p.parse().ok()) else {
            continue;
        };
        let text = std::fs::read_to_string(e.path()).map_err(|e| format!("{name}: {e}"))?;
        let total = dump_total(&text).ok_or_else(|| format!("{name}: no totals line"))?;
        parts.push((part, total));
    }
    parts.sort_unstable();
    let _ = std::fs::remove_dir_all(dir);
    Ok(parts.into_iter().map(|(_, t)| t).collect())
}

/// The keys [`accountant_instructions`] emits: one per case.
pub fn keys(quick: bool) -> Vec<String> {
    cases(quick)
        .iter()
        .map(|c| crate::suites::key(NAME, &c.params()))
        .collect()
}

/// `accountant.instructions`: every case counted in one callgrind run.
pub fn accountant_instructions(cx: &mut Ctx, sink: &mut Sink) {
    cx.progress.step(&format!("{NAME} (callgrind)"));
    let cases = cases(cx.quick);
    let dir = std::env::temp_dir().join(format!("ioacct-callgrind-{}", std::process::id()));
    match count(cx.quick, &dir) {
        Ok(counts) if counts.len() == cases.len() => {
            for (c, n) in cases.iter().zip(counts) {
                let mut m = Metric::exact(NAME, &c.params(), n as f64);
                m.note = Some("callgrind: one call, setup excluded".to_owned());
                sink.metrics.push(m);
            }
        }
        Ok(counts) => sink.skip(
            NAME,
            format!(
                "callgrind wrote {} dumps for {} cases",
                counts.len(),
                cases.len()
            ),
        ),
        Err(e) => sink.skip(NAME, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_case_runs_natively() {
        for c in cases(true) {
            assert_eq!(run_case(&c), Ok(()), "{c:?}");
        }
    }

    #[test]
    fn every_op_has_its_sizes_for_every_tracker() {
        let v = cases(true);
        for tracker in TrackerKind::ALL {
            for op in Op::ALL {
                let sizes: Vec<u64> = v
                    .iter()
                    .filter(|c| c.op == op && c.tracker == tracker && c.crowd == 0)
                    .map(|c| c.units)
                    .collect();
                assert_eq!(sizes, op.sizes(true), "{op:?} {tracker:?}");
            }
        }
    }

    #[test]
    fn dump_totals_parse() {
        assert_eq!(
            dump_total("events: Ir\nfn=x\n0 5\ntotals: 1234\n"),
            Some(1234)
        );
        assert_eq!(dump_total("summary: 77\n"), Some(77));
        assert_eq!(dump_total("events: Ir\n"), None);
    }
}
