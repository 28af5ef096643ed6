//! `cargo xtask export --bmf [RESULTS] [--out FILE]`: writes a results file
//! (default `target/bench/results.json`) in Bencher Metric Format, so a team
//! can keep the history in an existing dashboard (`bencher run --adapter
//! json`). Each metric key (name and parameters) is one benchmark; timings
//! in `ns` are the `latency` measure (value = median, lower value = the
//! fastest sample, upper value = p99), other units are a measure of
//! that unit's name (`instructions`, `bytes`, `count`, `ratio`) with the
//! exact or median value. Stdout when `--out` is not given.
use crate::report;
use reports::{Metric, Results};
use serde_json::{json, Map, Value};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// `cargo xtask export`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Write Bencher Metric Format (the one format so far).
    #[arg(long, required = true)]
    bmf: bool,
    /// The results file [default: target/bench/results.json].
    results: Option<PathBuf>,
    /// Where to write [default: stdout].
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// One metric as a BMF measure: (measure name, object).
pub fn measure(m: &Metric) -> (String, Value) {
    let name = if m.unit == "ns" {
        "latency".to_owned()
    } else {
        m.unit.clone()
    };
    let finite = |v: f64| v.is_finite().then_some(v);
    let mut o = Map::new();
    o.insert("value".into(), json!(finite(m.value)));
    if !m.deterministic {
        o.insert("lower_value".into(), json!(finite(m.min)));
        o.insert("upper_value".into(), json!(finite(m.p99)));
    }
    (name, Value::Object(o))
}

/// The whole results file in Bencher Metric Format.
pub fn bmf(r: &Results) -> Value {
    let mut top = Map::new();
    for m in &r.metrics {
        let (name, v) = measure(m);
        let entry = top
            .entry(m.key())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(o) = entry {
            o.insert(name, v);
        }
    }
    Value::Object(top)
}

/// Runs the task.
pub fn run(args: Args) -> ExitCode {
    let (input, out) = (args.results, args.out);
    let path = input.unwrap_or_else(|| report::root().join("target/bench/results.json"));
    let r = match Results::load(&path) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("xtask export: {e}");
            return ExitCode::from(2);
        }
    };
    let text = serde_json::to_string_pretty(&bmf(&r))
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    match out {
        Some(p) => {
            if let Err(e) = std::fs::write(&p, text + "\n") {
                eprintln!("xtask export: {}: {e}", p.display());
                return ExitCode::FAILURE;
            }
        }
        None => {
            // A closed stdout (`| head`) only loses the output.
            let _ = writeln!(std::io::stdout().lock(), "{text}");
        }
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;
    use reports::{Host, Key, MetricName, Param, RunInfo, SCHEMA};

    #[test]
    fn timings_are_latency_and_counts_their_unit() {
        let mut t = Metric::new(MetricName::PortCheck, &[(Key::Grants, Param::from(1u64))]);
        t.value = 3.0;
        t.min = 2.5;
        t.p99 = 4.0;
        let c = Metric::exact(
            MetricName::Instructions,
            &[(Key::Op, Param::from("map"))],
            1670.0,
        );
        let r = Results {
            schema: SCHEMA,
            host: Host::default(),
            run: RunInfo::default(),
            metrics: vec![t, c],
            not_measured: vec![],
        };
        let v = bmf(&r);
        assert_eq!(
            v["accountant.port_check grants=1"]["latency"]["value"],
            json!(3.0)
        );
        assert_eq!(
            v["accountant.port_check grants=1"]["latency"]["upper_value"],
            json!(4.0)
        );
        assert_eq!(
            v["accountant.instructions op=map"]["instructions"]["value"],
            json!(1670.0)
        );
        assert!(v["accountant.instructions op=map"]["instructions"]
            .get("lower_value")
            .is_none());
    }
}
