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
//! **The C API's cases** (`op=map-capi`, `op=bind-capi`) are counted from
//! C: `target/capi/ioacct-count` (built by `cargo xtask capi` from
//! `accountant/capi/c/count.c` against the freestanding static library, the
//! library a C hypervisor links) sets each case up as the Rust case is and
//! makes the one call inside its own wrapper, `ioacct_count_call`, in a
//! second callgrind run. That call takes raw numbers and validates them (the
//! domain id, the range) before the accountant's work; the Rust case hands
//! the accountant a `DomId` and `UnitRange` made outside the count. Where
//! the harness is missing (`cargo xtask capi` not run, or no C compiler) the
//! C cases are listed under not measured with the reason.
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

impl Op {
    /// Counted from C by `ioacct-count` rather than in this binary.
    pub const fn from_c(self) -> bool {
        matches!(self, Op::MapCapi | Op::BindCapi)
    }
}

/// Sets up an accountant for `c` and performs its operation once inside
/// [`ioacct_measured_op`]. An error means the case did not do what it names
/// (e.g. a non-forced revoke of mapped frames that did not drain), or is
/// one counted from C ([`Op::from_c`]).
pub fn run_case(c: &Case) -> Result<(), String> {
    if c.op.from_c() {
        return Err(format!("{}: counted from C by {C_HARNESS}", c.op.name()));
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
        Op::MapCapi | Op::BindCapi => Err(format!("{what}: counted from C")),
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

/// The C harness's file name in `target/capi/` (`cargo xtask capi`).
const C_HARNESS: &str = "ioacct-count";

/// The wrapper `ioacct-count` makes each counted call in.
const C_WRAPPER: &str = "ioacct_count_call";

/// `ioacct-count`'s argument for a C case: `OP:TRACKER:UNITS`.
fn c_case_arg(c: &Case) -> String {
    let op = if c.op == Op::MapCapi { "map" } else { "bind" };
    format!("{op}:{}:{}", c.tracker.name(), c.units)
}

/// Where `cargo xtask capi` put the C harness: `$CARGO_TARGET_DIR/capi`,
/// else `target/capi` of the tree the bench runs in (its working directory).
fn c_harness() -> std::path::PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from("target"))
        .join("capi")
        .join(C_HARNESS)
}

/// The internal entry point (`ioacct-bench --count-instructions [--quick]`):
/// runs every case once, in [`cases`] order.
pub fn run_all(quick: bool) -> Result<(), String> {
    for c in cases(quick).iter().filter(|c| !c.op.from_c()) {
        run_case(c)?;
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

/// Runs `exe args…` under callgrind, collecting only inside the function
/// `toggle` matches and dumping after each call of `dump`; returns one count
/// per call.
fn count(
    exe: &Path,
    args: &[String],
    toggle: &str,
    dump: &str,
    dir: &Path,
) -> Result<Vec<u64>, String> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut cmd = Command::new("valgrind");
    cmd.arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}/cg.out", dir.display()))
        .arg(format!("--toggle-collect={toggle}"))
        .arg(format!("--dump-after={dump}"))
        .arg(exe)
        .args(args);
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

/// `accountant.instructions`: the Rust cases counted in one callgrind run
/// of this binary, the C cases in one of the C harness.
pub fn accountant_instructions(cx: &mut Ctx, sink: &mut Sink) {
    cx.progress.step(&format!("{NAME} (callgrind)"));
    let all = cases(cx.quick);
    let (from_c, rust): (Vec<Case>, Vec<Case>) = all.into_iter().partition(|c| c.op.from_c());
    let dir = std::env::temp_dir().join(format!("ioacct-callgrind-{}", std::process::id()));
    let rust_counts = std::env::current_exe()
        .map_err(|e| format!("own path: {e}"))
        .and_then(|exe| {
            let mut args = vec![ENTRY.to_owned()];
            if cx.quick {
                args.push("--quick".to_owned());
            }
            count(&exe, &args, WRAPPER_PATTERN, WRAPPER_NAME, &dir)
        });
    record(
        sink,
        &rust,
        rust_counts,
        "callgrind: one call, setup excluded",
    );
    let harness = c_harness();
    let c_counts = if harness.exists() {
        let args: Vec<String> = from_c.iter().map(c_case_arg).collect();
        count(&harness, &args, C_WRAPPER, C_WRAPPER, &dir)
    } else {
        Err(format!(
            "the C API's cases: {} is missing (run `cargo xtask capi`)",
            harness.display()
        ))
    };
    record(
        sink,
        &from_c,
        c_counts,
        "callgrind: one call from C through the freestanding libioacct.a, setup excluded",
    );
}

/// Records one count per case, or why there is none.
fn record(sink: &mut Sink, cases: &[Case], counts: Result<Vec<u64>, String>, note: &str) {
    match counts {
        Ok(counts) if counts.len() == cases.len() => {
            for (c, n) in cases.iter().zip(counts) {
                let mut m = Metric::exact(NAME, &c.params(), n as f64);
                m.note = Some(note.to_owned());
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
            if c.op.from_c() {
                assert!(run_case(&c).is_err(), "{c:?} is counted from C");
            } else {
                assert_eq!(run_case(&c), Ok(()), "{c:?}");
            }
        }
    }

    #[test]
    fn c_cases_name_the_harness_arguments() {
        let args: Vec<String> = cases(true)
            .iter()
            .filter(|c| c.op.from_c() && c.tracker == TrackerKind::SlabExtent)
            .map(c_case_arg)
            .collect();
        assert_eq!(
            args,
            [
                "map:slab-extent:1",
                "map:slab-extent:4096",
                "bind:slab-extent:1"
            ]
        );
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
