//! Sinks end to end: Chrome trace JSON, `tracing` forwarding (drained and
//! live), latency histograms, all from records that went through the rings.
#![cfg(all(feature = "std", feature = "compiled"))]

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use tracepoints::sinks::histogram::LatencyHistograms;
use tracepoints::sinks::{chrome, tracing as tp_tracing};
use tracepoints::{tp, Collector, Kind, Mode, Outcome, Record, Space};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A short workload on this thread: a timed map, two port checks, a timed
/// bind with an error, a VM exit. Returns the drained records of this thread.
fn workload(c: &Collector) -> Vec<Record> {
    let me = c.current_thread().expect("thread is alive");
    c.clear();
    tracepoints::enable();
    let t0 = tracepoints::start();
    std::hint::black_box((0..1000).sum::<u64>());
    tp!(Record::new(Kind::Map)
        .domain(3)
        .range(Space::IoMem, 0x1000, 0x10ff)
        .outcome(Outcome::Ok)
        .since(t0));
    tp!(Record::new(Kind::PortCheck)
        .domain(3)
        .range(Space::IoPort, 0x3f8, 0x3f8)
        .width(1)
        .outcome(Outcome::Allow));
    tp!(Record::new(Kind::PortCheck)
        .domain(5)
        .range(Space::IoPort, 0x60, 0x63)
        .width(4)
        .outcome(Outcome::Deny));
    let t1 = tracepoints::start();
    tp!(Record::new(Kind::Bind)
        .domain(5)
        .range(Space::Irq, 11, 11)
        .mode(Mode::Exclusive)
        .outcome(Outcome::NotGranted)
        .since(t1));
    tp!(Record::new(Kind::VmExit)
        .domain(5)
        .extra(2)
        .range(Space::IoPort, 0x60, 0x60));
    tracepoints::disable();
    c.drain().into_iter().filter(|r| r.thread == me).collect()
}

#[test]
fn chrome_json_parses_and_has_the_events() {
    let _g = serial();
    let c = Collector::install();
    let mut records = workload(&c);
    assert_eq!(records.len(), 5);
    records.push(Record::lost(4, records[0].thread, records[4].tsc + 1));
    let mut out = Vec::new();
    chrome::export_chrome_json(&records, c.calibration(), &mut out).expect("Vec never fails");
    let doc: Value = serde_json::from_slice(&out).expect("exporter writes valid JSON");
    let events = doc["traceEvents"]
        .as_array()
        .expect("traceEvents is an array");
    let by_name = |n: &str| -> Vec<&Value> { events.iter().filter(|e| e["name"] == n).collect() };
    // Issued from a thread that is no vCPU: the control plane's process.
    let map = by_name("map");
    assert_eq!(map.len(), 1);
    assert_eq!(map[0]["ph"], "X");
    assert_eq!(map[0]["pid"], chrome::CONTROL_PID);
    assert_eq!(map[0]["args"]["domain"], "d3");
    assert_eq!(map[0]["args"]["range"], "iomem 0x1000-0x10ff");
    assert!(
        map[0]["args"].get("width").is_none(),
        "only meaningful args"
    );
    assert!(map[0]["dur"].as_f64().expect("dur is a number") > 0.0);
    assert_eq!(map[0]["ts"], 0.0, "earliest record is time 0");
    let allowed = by_name("port_check");
    let denied = by_name("port_check ✗ deny");
    assert_eq!((allowed.len(), denied.len()), (1, 1));
    assert!(denied[0]["ph"] == "i" && denied[0]["s"] == "t");
    assert_eq!(denied[0]["args"]["outcome"], "deny");
    assert_eq!(denied[0]["args"]["port"], "0x60-0x63");
    assert_eq!(denied[0]["args"]["width"], 4);
    let bind = by_name("bind ✗ not-granted");
    assert_eq!(
        (bind[0]["ph"].as_str(), bind[0]["args"]["outcome"].as_str()),
        (Some("X"), Some("not-granted"))
    );
    let exit = by_name("vm_exit io");
    assert_eq!(exit[0]["args"]["port"], "0x60");
    let lost = by_name("lost_records");
    assert_eq!(
        (lost[0]["s"].as_str(), lost[0]["args"]["lost"].as_u64()),
        (Some("g"), Some(4))
    );
    // Timestamps never go below zero and slices/instants are in order.
    let ts: Vec<f64> = events
        .iter()
        .filter(|e| e["ph"] != "M")
        .map(|e| e["ts"].as_f64().expect("ts is a number"))
        .collect();
    assert_eq!(ts.len(), 6);
    assert!(ts.windows(2).all(|w| w[0] <= w[1]), "{ts:?}");
    let procs: Vec<&str> = events
        .iter()
        .filter(|e| e["name"] == "process_name")
        .filter_map(|e| e["args"]["name"].as_str())
        .collect();
    assert_eq!(procs, ["control plane", "tracepoints (lost records)"]);
    // The track carries the OS thread's name (libtest names the test
    // thread after the test).
    let me = records[0].thread;
    let tname = events
        .iter()
        .find(|e| e["name"] == "thread_name" && e["pid"] == chrome::CONTROL_PID && e["tid"] == me)
        .and_then(|e| e["args"]["name"].as_str())
        .expect("the control plane has a track for this thread");
    assert_eq!(
        tname,
        "control plane (chrome_json_parses_and_has_the_events)"
    );
}

/// Captures every tracing event as (target, message + fields).
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Captured>>>);

/// Target and fields (the message under `message`) of one event.
type Captured = (String, HashMap<String, String>);

struct Fields<'a>(&'a mut HashMap<String, String>);
impl Visit for Fields<'_> {
    fn record_debug(&mut self, f: &Field, v: &dyn std::fmt::Debug) {
        self.0.insert(f.name().to_string(), format!("{v:?}"));
    }
    fn record_str(&mut self, f: &Field, v: &str) {
        self.0.insert(f.name().to_string(), v.to_string());
    }
}

impl<S: tracing::Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut fields = HashMap::new();
        event.record(&mut Fields(&mut fields));
        let target = event.metadata().target().to_string();
        self.0
            .lock()
            .expect("no panics while held")
            .push((target, fields));
    }
}

#[test]
fn tracing_bridge_forwards_drained_records_with_fields() {
    let _g = serial();
    let c = Collector::install();
    let records = workload(&c);
    let cap = Capture::default();
    let subscriber = tracing_subscriber::registry().with(cap.clone());
    tracing::subscriber::with_default(subscriber, || {
        tp_tracing::forward(&records, c.calibration());
    });
    let got = cap.0.lock().expect("no panics while held").clone();
    assert_eq!(got.len(), 5);
    let targets: Vec<&str> = got.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        targets,
        [
            "tracepoints::map",
            "tracepoints::port_check",
            "tracepoints::port_check",
            "tracepoints::bind",
            "tracepoints::vm_exit"
        ]
    );
    let bind = &got[3].1;
    assert_eq!(bind["domain"], "5");
    assert_eq!(bind["space"], "irq");
    assert_eq!(bind["mode"], "exclusive");
    assert_eq!(bind["outcome"], "not-granted");
    assert_eq!(bind["message"], "bind");
    assert_eq!(got[2].1["first"], "0x60", "ports in hex");
    assert_eq!(got[2].1["last"], "0x63");
    assert_eq!(got[2].1["duration_ns"], "0");
    assert_ne!(got[0].1["duration_ns"], "0");
}

#[test]
fn every_kind_is_forwarded_to_the_target_named_after_it() {
    let cap = Capture::default();
    let subscriber = tracing_subscriber::registry().with(cap.clone());
    let records: Vec<Record> = Kind::ALL.iter().map(|&k| Record::new(k)).collect();
    let cal = tracepoints::Calibration::global();
    tracing::subscriber::with_default(subscriber, || tp_tracing::forward(&records, &cal));
    let got = cap.0.lock().expect("no panics while held").clone();
    let want: Vec<(String, String)> = Kind::ALL
        .iter()
        .map(|k| (format!("tracepoints::{}", k.name()), k.name().to_string()))
        .collect();
    let seen: Vec<(String, String)> = got
        .into_iter()
        .map(|(t, f)| (t, f.get("message").cloned().unwrap_or_default()))
        .collect();
    assert_eq!(seen, want);
    assert!(want.iter().any(|(t, _)| t == "tracepoints::lost_records"));
}

#[test]
fn live_tracing_sink_prints_at_emit_time() {
    let _g = serial();
    let cap = Capture::default();
    let subscriber = tracing_subscriber::registry().with(cap.clone());
    tracing::subscriber::with_default(subscriber, || {
        tp_tracing::install_live();
        tracepoints::enable();
        tp!(Record::new(Kind::Revoke)
            .domain(8)
            .range(Space::IoPort, 1, 2)
            .outcome(Outcome::Pending));
        tracepoints::disable();
        tp!(Record::new(Kind::Revoke).domain(9));
    });
    Collector::install();
    let got = cap.0.lock().expect("no panics while held").clone();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, "tracepoints::revoke");
    assert_eq!(got[0].1["domain"], "8");
    assert_eq!(got[0].1["outcome"], "pending");
}

#[test]
fn histograms_from_collected_records() {
    let _g = serial();
    let c = Collector::install();
    let mut all = Vec::new();
    for _ in 0..50 {
        all.extend(workload(&c));
    }
    let mut h = LatencyHistograms::new();
    h.record_all(&all, c.calibration());
    let map = h.summary(Kind::Map).expect("maps were recorded");
    assert_eq!((map.count, map.untimed), (50, 0));
    assert!(map.min > 0 && map.min <= map.p50 && map.p50 <= map.p99 && map.p99 <= map.max);
    let checks = h.summary(Kind::PortCheck).expect("checks were recorded");
    assert_eq!((checks.count, checks.untimed), (0, 100));
    assert_eq!(h.summary(Kind::Bind).map(|s| s.count), Some(50));
    assert!(h.summary(Kind::Grant).is_none());
}
