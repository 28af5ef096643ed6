//! Chrome trace event JSON (the "JSON Object Format"), which Perfetto
//! (<https://ui.perfetto.dev>) and `chrome://tracing` open.
//!
//! Mapping:
//!
//! * one *process* per domain (`pid` = domain id, named `domain N`;
//!   [`HYPERVISOR`] is named `hypervisor`), one *thread* track per emitting
//!   thread inside it (`tid` = [`Record::thread`], named after the OS
//!   thread, e.g. `vcpu0 (4)`, when it had a name: [`crate::thread_name`]);
//! * timed records (grant, map, bind, ... built with [`Record::since`]) are
//!   complete slices, `"ph":"X"` with `dur`;
//! * untimed records (port checks, VM exits, ...) are instants, `"ph":"i"`
//!   with thread scope;
//! * lost-records markers are global instants (`"s":"g"`) named
//!   `lost_records` on process [`LOST_PID`], with the count in `args.lost`;
//! * timestamps are microseconds (fractional) from the earliest record;
//!   every record's fields are in `args`.

use std::collections::BTreeSet;
use std::fmt;
use std::io::{self, BufWriter, Write};

use serde_json::{json, Value};

use crate::clock::Calibration;
use crate::{Kind, Record, HYPERVISOR};

/// The `pid` that lost-records markers are put on (beyond every domain id).
pub const LOST_PID: u32 = 0x1_0000;

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

fn pid_of(r: &Record) -> u32 {
    if r.kind == Kind::Lost {
        LOST_PID
    } else {
        u32::from(r.domain)
    }
}

fn process_name(pid: u32) -> String {
    if pid == LOST_PID {
        "tracepoints (lost records)".to_string()
    } else if pid == u32::from(HYPERVISOR) {
        "hypervisor".to_string()
    } else {
        format!("domain {pid}")
    }
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

/// The Chrome trace event for one record; `base` is the timestamp of time 0.
pub fn event_json(r: &Record, cal: &Calibration, base: u64) -> Value {
    let ts = us(cal.ns_since(base, r.tsc));
    let pid = pid_of(r);
    if r.kind == Kind::Lost {
        return json!({
            "name": r.kind.name(),
            "cat": r.kind.layer(),
            "ph": "i",
            "s": "g",
            "ts": ts,
            "pid": pid,
            "tid": r.thread,
            "args": { "lost": r.extra, "thread": r.thread },
        });
    }
    let args = json!({
        "domain": r.domain,
        "space": r.space.name(),
        "first": r.first,
        "last": r.last,
        "mode": r.mode.name(),
        "outcome": r.outcome.name(),
        "width": r.width,
        "forced": r.is_forced(),
        "extra": r.extra,
        "value": r.value,
        "duration_ns": cal.ticks_to_ns(r.duration),
    });
    if r.is_timed() {
        json!({
            "name": r.kind.name(),
            "cat": r.kind.layer(),
            "ph": "X",
            "ts": ts,
            "dur": us(cal.ticks_to_ns(r.duration)),
            "pid": pid,
            "tid": r.thread,
            "args": args,
        })
    } else {
        json!({
            "name": r.kind.name(),
            "cat": r.kind.layer(),
            "ph": "i",
            "s": "t",
            "ts": ts,
            "pid": pid,
            "tid": r.thread,
            "args": args,
        })
    }
}

/// Writes `records` as a Chrome trace JSON object to `writer`: metadata
/// events naming every process (domain) and thread track first, then one
/// event per record in slice order. The writer is buffered internally and
/// flushed at the end.
pub fn export_chrome_json<W: Write>(
    records: &[Record],
    cal: &Calibration,
    writer: W,
) -> Result<(), ExportError> {
    let mut w = BufWriter::new(writer);
    let base = records.iter().map(|r| r.tsc).min().unwrap_or(0);
    let mut tracks: BTreeSet<(u32, u32)> = BTreeSet::new();
    for r in records {
        tracks.insert((pid_of(r), r.thread));
    }
    w.write_all(b"{\"displayTimeUnit\":\"ns\",")?;
    let other = json!({ "ns_per_tick": cal.ns_per_tick, "records": records.len() });
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
    let mut last_pid = None;
    for &(pid, tid) in &tracks {
        if last_pid != Some(pid) {
            last_pid = Some(pid);
            let v = json!({"name": "process_name", "ph": "M", "pid": pid, "tid": 0,
                           "args": {"name": process_name(pid)}});
            put(&mut w, &v)?;
        }
        let name = match crate::collector::thread_name(tid) {
            Some(n) => format!("{n} ({tid})"),
            None => format!("thread {tid}"),
        };
        let v = json!({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid,
                       "args": {"name": name}});
        put(&mut w, &v)?;
    }
    for r in records {
        put(&mut w, &event_json(r, cal, base))?;
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
        assert_eq!(m["pid"], 4);
        assert_eq!(m["tid"], 2);
        assert_eq!(m["args"]["last"], 31);
        let c = event_json(&check, &cal(), 1000);
        assert_eq!(c["ph"], "i");
        assert_eq!(c["s"], "t");
        assert_eq!(c["ts"], 1.0);
        assert_eq!(c["args"]["outcome"], "deny");
        let l = event_json(&lost, &cal(), 1000);
        assert_eq!((l["ph"].clone(), l["s"].clone()), (json!("i"), json!("g")));
        assert_eq!(l["args"]["lost"], 7);
        assert_eq!(l["pid"], LOST_PID);
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
