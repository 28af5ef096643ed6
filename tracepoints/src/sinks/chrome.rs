//! Chrome trace event JSON (the "JSON Object Format"), which Perfetto
//! (<https://ui.perfetto.dev>) and `chrome://tracing` open.
//!
//! Mapping, so that a hypervisor engineer reads it as xenalyze's per-vCPU
//! view:
//!
//! * one *process* per domain, named `d1` (pid = domain id); inside it one
//!   *thread* per vCPU, named `d1 vCPU0` (keyed by domain and vCPU index,
//!   parsed from the hypervisor's vCPU thread names such as `vcpu-d1`:
//!   [`vcpu_of`]), carrying that vCPU's VM exits, hypercalls and the port
//!   checks inside them;
//! * the *control plane*'s operations (grant, revoke, map, reserve, create,
//!   destroy, … issued from any other thread) on their own process,
//!   `control plane` (pid [`CONTROL_PID`]), one track per issuing thread;
//! * what a teardown did to a domain (the ended uses, the memslots deleted
//!   or added) on that domain's `dN memory` track, with a flow arrow from
//!   the forced grant, forced revoke or destroy that caused it;
//! * timed records are complete slices (`"ph":"X"`), the rest instants;
//!   lost-records markers are global instants on [`LOST_PID`];
//! * names say what happened: `vm_exit io`, `hypercall MAP_IOMEM` (names
//!   from [`Options::hypercall_name`]), and a failed operation is named
//!   with its error, `grant ✗ conflict`, so it stands out (and gets its own
//!   colour); a denied check or exit is `… ✗ deny`;
//! * args are only those that mean something for the kind, addresses and
//!   ranges in hex (`"iomem 0xfeb00"`, `"port": "0x300"`);
//! * timestamps are microseconds from the earliest record.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{self, BufWriter, Write};

use serde_json::{json, Map, Value};

use crate::clock::Calibration;
use crate::{Kind, Outcome, Record, Space, HYPERVISOR};

/// The `pid` that lost-records markers are put on (beyond every domain id).
pub const LOST_PID: u32 = 0x1_0000;

/// The `pid` of the control plane's process (the hypervisor's own id).
pub const CONTROL_PID: u32 = HYPERVISOR as u32;

/// Pids of the `n`-th run of [`export_runs`] are offset by `n * RUN_PID_STRIDE`.
pub const RUN_PID_STRIDE: u32 = 0x2_0000;

/// Why an export failed.
#[derive(Debug)]
pub enum ExportError {
    /// The writer failed.
    Io(io::Error),
    /// Serialising an event failed (in practice only a writer error surfaced
    /// through `serde_json`).
    Json(serde_json::Error),
}

impl fmt::Display for ExportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExportError::Io(e) => write!(f, "writing the Chrome trace failed: {e}"),
            ExportError::Json(e) => write!(f, "serialising a Chrome trace event failed: {e}"),
        }
    }
}

impl std::error::Error for ExportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ExportError::Io(e) => Some(e),
            ExportError::Json(e) => Some(e),
        }
    }
}

impl From<io::Error> for ExportError {
    fn from(e: io::Error) -> Self {
        ExportError::Io(e)
    }
}

impl From<serde_json::Error> for ExportError {
    fn from(e: serde_json::Error) -> Self {
        ExportError::Json(e)
    }
}

/// What the exporter cannot know by itself.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// The name of hypercall number `n` (the hypervisor's ABI), for
    /// `hypercall NAME` slices; without it they are `hypercall N`.
    pub hypercall_name: Option<fn(u64) -> Option<&'static str>>,
    /// The OS thread name of ring thread `n`; [`crate::thread_name`] when
    /// `None`.
    pub thread_name: Option<fn(u32) -> Option<String>>,
}

/// One run of [`export_runs`]: its records, and a label appended to its
/// process names (`d1 · accounting off`) when several runs share a file.
#[derive(Clone, Copy, Debug)]
pub struct Run<'a> {
    /// The run's records, in any order.
    pub records: &'a [Record],
    /// Appended to the run's process names, if any.
    pub label: Option<&'a str>,
}

/// `(domain, vCPU index)` of a hypervisor vCPU thread, from its name: a
/// `vcpu…` word and a `d{D}` word, the index from `vcpu{I}`, `v{I}`, a bare
/// number or `d{D}v{I}` (0 when absent) — `vcpu-d1`, `vcpu-d1-2`,
/// `vcpu2-d1`, `d1-vcpu2`. `None` for any other thread.
pub fn vcpu_of(thread_name: &str) -> Option<(u16, u32)> {
    let words: Vec<&str> = thread_name
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let vcpu = words.iter().find(|w| w.starts_with("vcpu"))?;
    let mut idx: Option<u32> = None;
    let mut dom: Option<u16> = None;
    if let Some(n) = vcpu.strip_prefix("vcpu").filter(|n| !n.is_empty()) {
        idx = Some(n.parse().ok()?);
    }
    for w in words.iter().filter(|w| !w.starts_with("vcpu")) {
        if let Some(rest) = w.strip_prefix('d') {
            let (d, i) = match rest.split_once('v') {
                Some((d, i)) => (d, Some(i.parse().ok()?)),
                None => (rest, None),
            };
            dom = Some(d.parse().ok()?);
            idx = idx.or(i);
        } else if let Some(i) = w.strip_prefix('v') {
            idx = Some(i.parse().ok()?);
        } else if w.bytes().all(|b| b.is_ascii_digit()) {
            idx = Some(w.parse().ok()?);
        }
    }
    Some((dom?, idx.unwrap_or(0)))
}

/// Where a record is drawn.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Track {
    pid: u32,
    tid: u32,
}

/// Synthetic thread id of vCPU 0's track in its domain's process (vCPU `i`
/// is `VCPU_TID + i`): tracks are keyed by domain and vCPU index, whatever
/// ring thread ids the vCPU threads got.
const VCPU_TID: u32 = 0x8000_0000;

/// Synthetic thread id of a domain's `dN memory` track (teardowns,
/// memslots), beyond every ring thread id.
const MEMORY_TID: u32 = 0xffff_0000;

/// How many later records are searched for the effects of one cause.
const FLOW_SCAN: usize = 1 << 14;

fn hex_range(first: u64, last: u64) -> String {
    if first == last {
        format!("{first:#x}")
    } else {
        format!("{first:#x}-{last:#x}")
    }
}

fn dom_name(d: u16) -> String {
    if d == HYPERVISOR {
        "hypervisor".to_string()
    } else {
        format!("d{d}")
    }
}

struct Exporter<'a> {
    cal: &'a Calibration,
    opts: Options,
    base: u64,
    names: BTreeMap<u32, Option<String>>,
}

impl Exporter<'_> {
    fn thread_name(&mut self, t: u32) -> Option<String> {
        let f = self
            .opts
            .thread_name
            .unwrap_or(crate::collector::thread_name);
        self.names.entry(t).or_insert_with(|| f(t)).clone()
    }

    fn vcpu(&mut self, r: &Record) -> Option<(u16, u32)> {
        self.thread_name(r.thread).as_deref().and_then(vcpu_of)
    }

    fn track(&mut self, r: &Record) -> Track {
        if r.kind == Kind::Lost {
            return Track {
                pid: LOST_PID,
                tid: r.thread,
            };
        }
        if let Some((d, i)) = self.vcpu(r) {
            return Track {
                pid: u32::from(d),
                tid: VCPU_TID.saturating_add(i).min(MEMORY_TID - 1),
            };
        }
        match r.kind {
            Kind::Teardown | Kind::MemslotAdd | Kind::MemslotDelete if r.domain != HYPERVISOR => {
                Track {
                    pid: u32::from(r.domain),
                    tid: MEMORY_TID,
                }
            }
            _ => Track {
                pid: CONTROL_PID,
                tid: r.thread,
            },
        }
    }

    fn track_name(&mut self, t: &Track) -> String {
        if t.pid == LOST_PID {
            return format!("thread {}", t.tid);
        }
        if t.tid == MEMORY_TID {
            return format!("d{} memory", t.pid);
        }
        if t.tid >= VCPU_TID {
            return format!("d{} vCPU{}", t.pid, t.tid - VCPU_TID);
        }
        match self.thread_name(t.tid) {
            Some(n) => format!("control plane ({n})"),
            None => format!("control plane (thread {})", t.tid),
        }
    }

    fn ts(&self, tsc: u64) -> f64 {
        self.cal.ns_since(self.base, tsc) as f64 / 1000.0
    }

    fn name(&self, r: &Record, exit_outcome: Option<Outcome>) -> String {
        let base = match r.kind {
            Kind::VmExit => format!("vm_exit {}", exit_reason(r.extra)),
            Kind::Hypercall => match self.opts.hypercall_name.and_then(|f| f(r.extra)) {
                Some(n) => format!("hypercall {n}"),
                None => format!("hypercall {}", r.extra),
            },
            k => k.name().to_string(),
        };
        let outcome = if r.kind == Kind::VmExit {
            exit_outcome
        } else {
            Some(r.outcome)
        };
        match outcome {
            Some(o) if o.is_error() || o == Outcome::Deny => format!("{base} ✗ {}", o.name()),
            Some(Outcome::Pending) => format!("{base} (pending)"),
            _ => base,
        }
    }

    fn args(&self, r: &Record, exit_outcome: Option<Outcome>) -> Value {
        let mut a = Map::new();
        let mut put = |k: &str, v: Value| {
            a.insert(k.to_string(), v);
        };
        let range = || format!("{} {}", r.space.name(), hex_range(r.first, r.last));
        match r.kind {
            Kind::VmExit => {
                put("reason", json!(exit_reason(r.extra)));
                match r.space {
                    Space::IoPort => {
                        put("port", json!(format!("{:#x}", r.first)));
                        put("width", json!(r.width));
                        put("data", json!(format!("{:#x}", r.value)));
                        put(
                            "path",
                            json!(if r.is_trapped() {
                                "pvm-trapped"
                            } else {
                                "native"
                            }),
                        );
                    }
                    Space::GuestMem => {
                        put("gpa", json!(format!("{:#x}", r.first << 12)));
                        put("width", json!(r.width));
                    }
                    _ => {}
                }
                if let Some(o) = exit_outcome {
                    put("outcome", json!(o.name()));
                }
            }
            Kind::Hypercall => {
                put("call", json!(r.extra));
                put("status", json!(format!("{:#x}", r.value)));
            }
            Kind::MemslotAdd | Kind::MemslotDelete => {
                put("domain", json!(dom_name(r.domain)));
                put("slot", json!(r.extra));
                put("gfn", json!(hex_range(r.first, r.last)));
                put(
                    "frames",
                    json!(r.last.saturating_sub(r.first).saturating_add(1)),
                );
                if r.value != 0 {
                    put("errno", json!(r.value));
                }
            }
            Kind::IrqInject => {
                put("domain", json!(dom_name(r.domain)));
                put("irq", json!(r.first));
                put("vector", json!(format!("{:#x}", r.value)));
            }
            Kind::Teardown => {
                put("domain", json!(dom_name(r.domain)));
                put("range", json!(range()));
                put("uses", json!(r.value));
            }
            Kind::PortCheck => {
                put("domain", json!(dom_name(r.domain)));
                put("port", json!(hex_range(r.first, r.last)));
                put("width", json!(r.width));
                put("outcome", json!(r.outcome.name()));
            }
            Kind::Create | Kind::Destroy => {
                put("domain", json!(dom_name(r.domain)));
                put("outcome", json!(r.outcome.name()));
            }
            _ => {
                put("domain", json!(dom_name(r.domain)));
                if r.space != Space::None {
                    put("range", json!(range()));
                }
                if r.mode != crate::Mode::None {
                    put("mode", json!(r.mode.name()));
                }
                if r.is_forced() {
                    put("force", json!(true));
                }
                put("outcome", json!(r.outcome.name()));
            }
        }
        if r.is_timed() {
            put("duration_ns", json!(self.cal.ticks_to_ns(r.duration)));
        }
        Value::Object(a)
    }
}

/// KVM's name for exit reason `n` (`io`, `mmio`, `hlt`, …).
pub fn exit_reason(n: u64) -> String {
    match n {
        0 => "unknown".into(),
        1 => "exception".into(),
        2 => "io".into(),
        3 => "hypercall".into(),
        4 => "debug".into(),
        5 => "hlt".into(),
        6 => "mmio".into(),
        8 => "shutdown".into(),
        9 => "fail_entry".into(),
        10 => "intr".into(),
        17 => "internal_error".into(),
        24 => "system_event".into(),
        n => format!("reason {n}"),
    }
}

/// The Chrome trace event for one record (with default [`Options`], on its
/// own: no flows, no exit outcome); `base` is the timestamp of time 0.
pub fn event_json(r: &Record, cal: &Calibration, base: u64) -> Value {
    let mut e = Exporter {
        cal,
        opts: Options::default(),
        base,
        names: BTreeMap::new(),
    };
    let t = e.track(r);
    event(&e, r, &t, None, 0)
}

fn event(
    e: &Exporter<'_>,
    r: &Record,
    t: &Track,
    exit_outcome: Option<Outcome>,
    pid_off: u32,
) -> Value {
    let ts = e.ts(r.tsc);
    let pid = t.pid + pid_off;
    if r.kind == Kind::Lost {
        return json!({
            "name": r.kind.name(),
            "cat": r.kind.layer(),
            "ph": "i",
            "s": "g",
            "ts": ts,
            "pid": pid,
            "tid": t.tid,
            "args": { "lost": r.extra, "thread": r.thread },
        });
    }
    let name = e.name(r, exit_outcome);
    let args = e.args(r, exit_outcome);
    // Teardowns are drawn as (zero-length) slices so flow arrows can end on them.
    if r.is_timed() || r.kind == Kind::Teardown {
        json!({
            "name": name,
            "cat": r.kind.layer(),
            "ph": "X",
            "ts": ts,
            "dur": e.cal.ticks_to_ns(r.duration) as f64 / 1000.0,
            "pid": pid,
            "tid": t.tid,
            "args": args,
        })
    } else {
        json!({
            "name": name,
            "cat": r.kind.layer(),
            "ph": "i",
            "s": "t",
            "ts": ts,
            "pid": pid,
            "tid": t.tid,
            "args": args,
        })
    }
}

/// Writes `records` as a Chrome trace JSON object to `writer` (see the
/// module docs for the mapping), with default [`Options`].
pub fn export_chrome_json<W: Write>(
    records: &[Record],
    cal: &Calibration,
    writer: W,
) -> Result<(), ExportError> {
    export_runs(
        &[Run {
            records,
            label: None,
        }],
        cal,
        Options::default(),
        writer,
    )
}

/// The ends of a record's time span, in ticks.
fn span(r: &Record) -> (u64, u64) {
    (r.tsc, r.tsc.saturating_add(r.duration))
}

/// Writes several runs into one Chrome trace: metadata naming every
/// process and track first, then each run's events in time order, VM exits
/// with the outcome of the port check inside them, and flow arrows from
/// each forced grant, forced revoke or destroy to the teardowns and
/// memslot deletes it caused. Time 0 is the earliest record of all runs.
pub fn export_runs<W: Write>(
    runs: &[Run<'_>],
    cal: &Calibration,
    opts: Options,
    writer: W,
) -> Result<(), ExportError> {
    let mut w = BufWriter::new(writer);
    let base = runs
        .iter()
        .flat_map(|r| r.records.iter().map(|x| x.tsc))
        .min()
        .unwrap_or(0);
    let mut ex = Exporter {
        cal,
        opts,
        base,
        names: BTreeMap::new(),
    };
    let total: usize = runs.iter().map(|r| r.records.len()).sum();
    w.write_all(b"{\"displayTimeUnit\":\"ns\",")?;
    let other = json!({ "ns_per_tick": cal.ns_per_tick, "records": total });
    w.write_all(b"\"otherData\":")?;
    serde_json::to_writer(&mut w, &other)?;
    w.write_all(b",\"traceEvents\":[")?;
    let mut first = true;
    let mut put = |w: &mut BufWriter<W>, v: &Value| -> Result<(), ExportError> {
        if !first {
            w.write_all(b",\n")?;
        }
        first = false;
        serde_json::to_writer(&mut *w, v)?;
        Ok(())
    };
    let mut flow_id = 0u64;
    for (n, run) in runs.iter().enumerate() {
        let off = u32::try_from(n)
            .unwrap_or(u32::MAX / RUN_PID_STRIDE)
            .saturating_mul(RUN_PID_STRIDE);
        let mut recs: Vec<&Record> = run.records.iter().collect();
        recs.sort_by_key(|r| r.tsc);
        let tracks: Vec<Track> = recs.iter().map(|r| ex.track(r)).collect();
        // Metadata: process and thread names, processes sorted by pid.
        let set: BTreeSet<&Track> = tracks.iter().collect();
        let mut last_pid = None;
        for t in set {
            if last_pid != Some(t.pid) {
                last_pid = Some(t.pid);
                let mut pname = match t.pid {
                    LOST_PID => "tracepoints (lost records)".to_string(),
                    CONTROL_PID => "control plane".to_string(),
                    p => format!("d{p}"),
                };
                if let Some(l) = run.label {
                    pname = format!("{pname} · {l}");
                }
                put(
                    &mut w,
                    &json!({"name": "process_name", "ph": "M", "pid": t.pid + off,
                                     "tid": 0, "args": {"name": pname}}),
                )?;
                // Domains in id order, the control plane after them.
                put(
                    &mut w,
                    &json!({"name": "process_sort_index", "ph": "M", "pid": t.pid + off,
                                     "tid": 0, "args": {"sort_index": t.pid + off}}),
                )?;
            }
            let tname = ex.track_name(t);
            put(
                &mut w,
                &json!({"name": "thread_name", "ph": "M", "pid": t.pid + off,
                                 "tid": t.tid, "args": {"name": tname}}),
            )?;
        }
        // The outcome of a VM exit: the port check made inside it, on its thread.
        let mut exit_outcome: BTreeMap<usize, Outcome> = BTreeMap::new();
        let mut open: BTreeMap<u32, (usize, u64)> = BTreeMap::new();
        for (i, r) in recs.iter().enumerate() {
            match r.kind {
                Kind::VmExit if r.is_timed() => {
                    open.insert(r.thread, (i, span(r).1));
                }
                Kind::PortCheck => {
                    if let Some(&(x, end)) = open.get(&r.thread) {
                        if r.tsc <= end {
                            exit_outcome.insert(x, r.outcome);
                        }
                    }
                }
                _ => {}
            }
        }
        // Causes: a forced grant/revoke or a destroy, timed, on a control thread.
        let mut flows_from: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (i, r) in recs.iter().enumerate() {
            let cause = r.is_timed()
                && (r.kind == Kind::Destroy
                    || (r.is_forced() && matches!(r.kind, Kind::Grant | Kind::Revoke)));
            if !cause {
                continue;
            }
            // The accountant's teardowns happen inside its operation; the
            // hypervisor deletes the memslots right after it, before the
            // thread's next operation.
            let (s, e) = span(r);
            let mut effects = Vec::new();
            for (j, x) in recs.iter().enumerate().skip(i + 1).take(FLOW_SCAN) {
                if x.thread != r.thread || x.tsc < s {
                    continue;
                }
                match x.kind {
                    Kind::Teardown if x.tsc <= e => effects.push(j),
                    Kind::MemslotDelete => effects.push(j),
                    Kind::Teardown | Kind::MemslotAdd => {}
                    _ if x.tsc > e => break,
                    _ => {}
                }
            }
            if !effects.is_empty() {
                flows_from.insert(i, effects);
            }
        }
        for (i, r) in recs.iter().enumerate() {
            put(
                &mut w,
                &event(&ex, r, &tracks[i], exit_outcome.get(&i).copied(), off),
            )?;
        }
        for (i, effects) in &flows_from {
            let c = recs[*i];
            let ct = &tracks[*i];
            for j in effects {
                flow_id += 1;
                let x = recs[*j];
                let xt = &tracks[*j];
                put(
                    &mut w,
                    &json!({"name": "caused", "cat": "teardown", "ph": "s", "id": flow_id,
                                     "ts": ex.ts(c.tsc), "pid": ct.pid + off, "tid": ct.tid}),
                )?;
                put(
                    &mut w,
                    &json!({"name": "caused", "cat": "teardown", "ph": "f", "bp": "e",
                                     "id": flow_id, "ts": ex.ts(x.tsc), "pid": xt.pid + off,
                                     "tid": xt.tid}),
                )?;
            }
        }
    }
    w.write_all(b"]}\n")?;
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Outcome, Space, Stamp};

    fn cal() -> Calibration {
        Calibration {
            ns_per_tick: 0.5,
            tsc_at_calibration: 0,
        }
    }

    #[test]
    fn timed_is_slice_untimed_is_instant_lost_is_global() {
        let mut map = Record::new(Kind::Map)
            .domain(4)
            .range(Space::IoMem, 16, 31)
            .outcome(Outcome::Ok)
            .since(Stamp(1000));
        map.duration = 4000;
        map.thread = 2;
        let mut check = Record::new(Kind::PortCheck)
            .domain(4)
            .range(Space::IoPort, 0x60, 0x60)
            .outcome(Outcome::Deny);
        check.tsc = 3000;
        check.thread = 2;
        let lost = Record::lost(7, 2, 5000);

        let m = event_json(&map, &cal(), 1000);
        assert_eq!(m["ph"], "X");
        assert_eq!(m["ts"], 0.0);
        assert_eq!(m["dur"], 2.0);
        assert_eq!(m["pid"], CONTROL_PID);
        assert_eq!(m["tid"], 2);
        assert_eq!(m["args"]["range"], "iomem 0x10-0x1f");
        let c = event_json(&check, &cal(), 1000);
        assert_eq!(c["ph"], "i");
        assert_eq!(c["s"], "t");
        assert_eq!(c["ts"], 1.0);
        assert_eq!(c["name"], "port_check ✗ deny");
        let l = event_json(&lost, &cal(), 1000);
        assert_eq!((l["ph"].clone(), l["s"].clone()), (json!("i"), json!("g")));
        assert_eq!(l["args"]["lost"], 7);
        assert_eq!(l["pid"], LOST_PID);
    }

    #[test]
    fn vcpu_thread_names() {
        assert_eq!(vcpu_of("vcpu-d1"), Some((1, 0)));
        assert_eq!(vcpu_of("vcpu-d12-3"), Some((12, 3)));
        assert_eq!(vcpu_of("vcpu-d2v1"), Some((2, 1)));
        assert_eq!(vcpu_of("vcpu3-d2"), Some((2, 3)));
        assert_eq!(vcpu_of("d7-vcpu1"), Some((7, 1)));
        assert_eq!(vcpu_of("vcpu-d2-v1"), Some((2, 1)));
        assert_eq!(vcpu_of("vcpu"), None);
        assert_eq!(vcpu_of("main"), None);
        assert_eq!(vcpu_of("vcpu-dx"), None);
        // Other words are ignored.
        assert_eq!(vcpu_of("vcpu-d1-x"), Some((1, 0)));
        assert_eq!(vcpu_of("vcpu-d99999999"), None);
    }

    fn names(t: u32) -> Option<String> {
        match t {
            1 => Some("main".into()),
            2 => Some("vcpu-d0".into()),
            3 => Some("vcpu-d1".into()),
            4 => Some("vcpu-d1-1".into()),
            _ => None,
        }
    }

    fn at(mut r: Record, thread: u32, tsc: u64, dur: u64) -> Record {
        r.thread = thread;
        if dur > 0 {
            r = r.since(Stamp(tsc));
            r.duration = dur;
        } else {
            r.tsc = tsc;
        }
        r
    }

    /// A guest's exits on two vCPUs of d1, and a forced grant on the control
    /// plane that tears down d0's mapping and deletes its memslot.
    fn scenario() -> Vec<Record> {
        let exit = Record::new(Kind::VmExit)
            .domain(1)
            .extra(2)
            .range(Space::IoPort, 0x300, 0x300)
            .width(1);
        let check = |o| {
            Record::new(Kind::PortCheck)
                .domain(1)
                .range(Space::IoPort, 0x300, 0x300)
                .width(1)
                .outcome(o)
        };
        vec![
            at(exit, 3, 1100, 100),
            at(check(Outcome::Allow), 3, 1150, 0),
            at(exit, 4, 1200, 100),
            at(check(Outcome::Deny), 4, 1250, 0),
            at(
                Record::new(Kind::Grant)
                    .domain(1)
                    .range(Space::IoMem, 0xfeb00, 0xfeb00)
                    .mode(crate::Mode::Exclusive)
                    .forced(true)
                    .outcome(Outcome::Ok),
                1,
                2000,
                400,
            ),
            at(
                Record::new(Kind::Teardown)
                    .domain(0)
                    .range(Space::IoMem, 0xfeb00, 0xfeb00)
                    .value(1),
                1,
                2200,
                0,
            ),
            at(
                Record::new(Kind::MemslotDelete)
                    .domain(0)
                    .range(Space::GuestMem, 0xfeb00, 0xfeb00)
                    .extra(9),
                1,
                2500,
                100,
            ),
            at(
                Record::new(Kind::Grant)
                    .domain(2)
                    .range(Space::IoMem, 0xfeb00, 0xfeb00)
                    .mode(crate::Mode::Exclusive)
                    .outcome(Outcome::Conflict),
                1,
                3000,
                100,
            ),
            at(Record::new(Kind::Hypercall).domain(1).extra(1), 3, 3500, 50),
        ]
    }

    fn export(records: &[Record]) -> Vec<Value> {
        let mut out = Vec::new();
        let opts = Options {
            hypercall_name: Some(|n| (n == 1).then_some("MAP_IOMEM")),
            thread_name: Some(names),
        };
        let r = export_runs(
            &[Run {
                records,
                label: None,
            }],
            &cal(),
            opts,
            &mut out,
        );
        assert!(r.is_ok());
        let doc: Value = serde_json::from_slice(&out).unwrap_or_default();
        doc["traceEvents"].as_array().cloned().unwrap_or_default()
    }

    #[test]
    fn vcpus_are_named_threads_of_their_domain() {
        let ev = export(&scenario());
        let tracks: BTreeSet<(u64, String)> = ev
            .iter()
            .filter(|e| e["name"] == "thread_name")
            .map(|e| {
                (
                    e["pid"].as_u64().unwrap_or(0),
                    e["args"]["name"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        let want: BTreeSet<(u64, String)> = [
            (0, "d0 memory"),
            (1, "d1 vCPU0"),
            (1, "d1 vCPU1"),
            (u64::from(CONTROL_PID), "control plane (main)"),
        ]
        .iter()
        .map(|(p, n)| (*p, n.to_string()))
        .collect();
        assert_eq!(tracks, want);
        // Each exit carries the outcome of the check made inside it.
        let exits: Vec<(&str, &str)> = ev
            .iter()
            .filter(|e| e["args"]["reason"] == "io")
            .map(|e| {
                (
                    e["name"].as_str().unwrap_or(""),
                    e["args"]["outcome"].as_str().unwrap_or(""),
                )
            })
            .collect();
        assert_eq!(
            exits,
            [("vm_exit io", "allow"), ("vm_exit io ✗ deny", "deny")]
        );
        assert!(ev
            .iter()
            .any(|e| e["name"] == "hypercall MAP_IOMEM" && e["pid"] == 1));
        assert!(ev.iter().any(|e| e["name"] == "grant ✗ conflict"));
        assert_eq!(
            ev.iter()
                .filter(|e| e["ph"] != "M")
                .map(|e| e["ts"].as_f64())
                .next(),
            Some(Some(0.0))
        );
    }

    #[test]
    fn a_forced_grant_flows_to_its_teardown_and_memslot_delete() {
        let ev = export(&scenario());
        let starts: Vec<&Value> = ev.iter().filter(|e| e["ph"] == "s").collect();
        let ends: Vec<&Value> = ev.iter().filter(|e| e["ph"] == "f").collect();
        assert_eq!(starts.len(), 2, "teardown and memslot delete");
        for s in &starts {
            assert_eq!(s["pid"], CONTROL_PID);
            assert_eq!(s["ts"], 0.45, "starts at the forced grant");
        }
        let mut ends_at: Vec<(u64, f64)> = ends
            .iter()
            .map(|e| {
                (
                    e["pid"].as_u64().unwrap_or(99),
                    e["ts"].as_f64().unwrap_or(-1.0),
                )
            })
            .collect();
        ends_at.sort_by(|a, b| a.1.total_cmp(&b.1));
        assert_eq!(ends_at, [(0, 0.55), (0, 0.7)], "on d0's memory track");
        // The unforced, failed grant causes nothing.
        assert!(starts.iter().all(|s| s["ts"] != 0.95));
    }

    #[test]
    fn writer_error_is_reported() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::other("disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Err(io::Error::other("disk full"))
            }
        }
        let r = [Record::new(Kind::Create)];
        let err = export_chrome_json(&r, &cal(), Broken);
        assert!(matches!(err, Err(ExportError::Io(_))));
    }
}
