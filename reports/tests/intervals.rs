//! Target verdicts from 95 % intervals, on a doctored copy of a real results
//! file (the committed `bench/baseline.json`): an interval that straddles
//! the limit is inconclusive, one beyond it missed, one within it met —
//! whatever the median alone says. Invariants stay exact.
use reports::goals::{evaluate, Evaluation, Status};
use reports::{Key, Results};
use serde_json::Value;
use std::path::Path;

fn baseline_json() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/baseline.json");
    let text = std::fs::read_to_string(&path).expect("bench/baseline.json");
    serde_json::from_str(&text).expect("JSON")
}

/// The metric of `doc` named `name` whose params include `params`.
fn metric<'d>(doc: &'d mut Value, name: &str, params: &[(Key, Value)]) -> &'d mut Value {
    doc["metrics"]
        .as_array_mut()
        .expect("metrics")
        .iter_mut()
        .find(|m| m["name"] == name && params.iter().all(|(k, v)| &m["params"][k.as_str()] == v))
        .expect("the baseline has the metric")
}

fn load(doc: &Value) -> Results {
    Results::from_json(Path::new("doctored.json"), &doc.to_string()).expect("results")
}

fn eval(r: &Results, id: &str) -> Evaluation {
    evaluate(r)
        .into_iter()
        .find(|e| e.goal.id == id)
        .expect("goal")
}

/// Sets the bind-over-floor (1 page) rounds to `v` and drops the stored
/// interval, so the report's bootstrap makes one from the rounds.
fn bind_rounds(doc: &mut Value, v: &[f64]) {
    let m = metric(doc, "hv.bind_over_floor", &[(Key::Pages, 1.into())]);
    m["samples"] = v.iter().copied().collect();
    m["norm_samples"] = v.iter().copied().collect();
    m["p50"] = reports::stats::median(v).expect("median").into();
    m.as_object_mut().expect("object").remove("ci95");
}

#[test]
fn a_paired_ratio_target_follows_its_interval() {
    let mut doc = baseline_json();
    // 40 rounds spread around the 1.03 limit, median 1.02: below the limit,
    // yet the interval straddles it.
    let straddle: Vec<f64> = (0..40).map(|i| 0.95 + 0.004 * f64::from(i)).collect();
    bind_rounds(&mut doc, &straddle);
    let e = eval(&load(&doc), "bind-over-floor");
    let m = e.measured.clone().expect("measured");
    let [lo, hi] = m.interval.expect("an interval from the rounds");
    assert!(m.value < 1.03 && lo < 1.03 && hi > 1.03, "{m:?}");
    assert_eq!(e.met(), Some(true), "the median alone would say met");
    assert_eq!(e.status(), Status::Inconclusive);
    // All rounds well beyond the limit: missed.
    let beyond: Vec<f64> = straddle.iter().map(|x| x + 0.2).collect();
    bind_rounds(&mut doc, &beyond);
    let e = eval(&load(&doc), "bind-over-floor");
    assert!(
        e.measured
            .as_ref()
            .and_then(|m| m.interval)
            .expect("interval")[0]
            > 1.03
    );
    assert_eq!(e.status(), Status::Missed);
    // All rounds within: met.
    let within: Vec<f64> = straddle.iter().map(|x| x - 0.1).collect();
    bind_rounds(&mut doc, &within);
    assert_eq!(eval(&load(&doc), "bind-over-floor").status(), Status::Met);
}

/// The guest-timed port exits with the most MMIO tracked (`big`) and with
/// none, accounting on, set to `scale_big` times a common series.
fn pio_rounds(doc: &mut Value, scale_big: f64, spread: f64) {
    // Twenty rounds of 100 exits; each round shifted by its own amount (a
    // neighbour's burst), the exits within it spread by 1 %.
    let series: Vec<f64> = (0..2000)
        .map(|i| {
            let round = f64::from((i / 100 * 37) % 20) / 19.0 - 0.5;
            let exit = f64::from((i * 7919) % 101) / 100.0;
            1000.0 * (1.0 + spread * round) * (1.0 + 0.01 * exit)
        })
        .collect();
    for (pages, scale) in [(0u64, 1.0), (1_048_576, scale_big)] {
        let m = metric(
            doc,
            "hv.pio_exit",
            &[
                (Key::Accounting, "on".into()),
                (Key::Load, "none".into()),
                (Key::MmioTrackedPages, pages.into()),
            ],
        );
        let v: Vec<f64> = series.iter().map(|x| x * scale).collect();
        let med = reports::stats::median(&v).expect("median");
        m["samples"] = v.into_iter().collect();
        m["p50"] = med.into();
        m["uncorrected"]["p50"] = med.into();
    }
}

#[test]
fn a_guest_seen_round_trip_gets_an_interval_over_rounds() {
    let mut doc = baseline_json();
    // Round trips 1.08× as slow with 4 GiB tracked, rounds spread ±30 %:
    // under the 1.10 limit, but not clearly.
    pio_rounds(&mut doc, 1.08, 0.6);
    let e = eval(&load(&doc), "pio-vs-tracked");
    let m = e.measured.clone().expect("measured");
    let [lo, hi] = m.interval.expect("an interval from per-round medians");
    assert!(
        lo < 1.10 && hi > 1.10 && (m.value - 1.08).abs() < 0.01,
        "{m:?}"
    );
    assert_eq!(e.status(), Status::Inconclusive);
    // 1.43× (a quick run's reading once) with tight rounds: missed.
    pio_rounds(&mut doc, 1.43, 0.02);
    assert_eq!(eval(&load(&doc), "pio-vs-tracked").status(), Status::Missed);
    // 1.00× with tight rounds: met.
    pio_rounds(&mut doc, 1.0, 0.02);
    assert_eq!(eval(&load(&doc), "pio-vs-tracked").status(), Status::Met);
    // The report shows the verdict and the interval.
    pio_rounds(&mut doc, 1.08, 0.6);
    let html = reports::html::report(&load(&doc), None);
    assert!(html.contains("inconclusive"), "the status is shown");
    assert!(html.contains("95 % interval"), "the interval is shown");
}

#[test]
fn invariants_stay_exact() {
    let mut doc = baseline_json();
    // The radix flatness invariant holds on its value whatever the spread.
    let r = load(&doc);
    let e = eval(&r, "radix-flat");
    assert_eq!(e.measured.as_ref().and_then(|m| m.interval), None);
    assert_eq!(e.status(), Status::Met);
    // An allocation count over its limit is broken, with no interval to hide in.
    let m = metric(
        &mut doc,
        "accountant.tracking_allocations",
        &[
            (Key::Tracker, "slab-extent".into()),
            (Key::Pages, 262_144u64.into()),
        ],
    );
    m["value"] = 5000.0.into();
    let e = eval(&load(&doc), "extent-allocations");
    assert_eq!(e.status(), Status::Missed);
    assert_eq!(e.met(), Some(false));
}
