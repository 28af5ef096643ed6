//! The HTML report: built from a results fixture, checked as a context, as
//! text, and as rendered by headless Chromium (`--dump-dom`).
//!
//! The Chromium test skips with a message when `chromium` is not installed,
//! but fails under `CI=true`, where it must be.

use reports::gate::Verdict;
use reports::html::{report, Context};
use reports::{
    CounterStatus, Host, Key, Metric, MetricName, NotMeasured, Param, Results, RunInfo, SCHEMA,
};
use std::path::PathBuf;
use std::process::Command;

fn timing(name: MetricName, params: &[(Key, Param)], p50: f64) -> Metric {
    let mut m = Metric::new(name, params);
    m.value = p50;
    m.p50 = p50;
    m.p90 = p50 * 1.1;
    m.p99 = p50 * 1.5;
    m.p999 = p50 * 2.0;
    m.max = p50 * 3.0;
    m.min = p50 * 0.9;
    m.count = 100;
    // Within-run samples whose median is the p50, as a run's are: the goals'
    // points and intervals are computed from the raw ones, the gate judges
    // the normalised ones.
    m.samples = (0..50)
        .map(|i| p50 * (1.0 + f64::from(i % 5) * 0.001))
        .collect();
    m.norm_samples = m.samples.clone();
    m.spectrum = vec![
        [0.5, p50],
        [0.9, p50 * 1.1],
        [0.99, p50 * 1.5],
        [0.999, p50 * 2.0],
    ];
    m
}

fn fixture() -> Results {
    let mut metrics = Vec::new();
    for g in [1u64, 256, 65_536] {
        metrics.push(timing(
            MetricName::PortCheck,
            &[(Key::Impl, "radix".into()), (Key::Grants, g.into())],
            3.0,
        ));
        metrics.push(timing(
            MetricName::PortCheck,
            &[(Key::Impl, "linear".into()), (Key::Grants, g.into())],
            g as f64 / 8.0 + 1.0,
        ));
    }
    for (t, per_page) in [
        ("xmalloc-page", 64.0),
        ("slab-page", 32.0),
        ("slab-extent", 0.0),
    ] {
        for p in [1u64, 65_536] {
            let params = [(Key::Tracker, Param::from(t)), (Key::Pages, Param::from(p))];
            metrics.push(Metric::exact(
                MetricName::TrackingBytes,
                &params,
                4096.0 + per_page * p as f64,
            ));
            metrics.push(Metric::exact(
                MetricName::TrackingAllocations,
                &params,
                if per_page > 0.0 { p as f64 } else { 1.0 },
            ));
            metrics.push(timing(MetricName::Map, &params, 20.0 * p as f64));
        }
    }
    for (s, v) in [("baseline", 0.4), ("disabled", 0.5), ("enabled", 12.0)] {
        metrics.push(timing(
            MetricName::TracepointOverhead,
            &[(Key::State, s.into())],
            v,
        ));
    }
    for (acc, pages, v) in [
        ("on", 0u64, 5100.0),
        ("off", 0, 5000.0),
        ("on", 65_536, 5150.0),
    ] {
        metrics.push(timing(
            MetricName::PioExit,
            &[
                (Key::Accounting, acc.into()),
                (Key::MmioTrackedPages, pages.into()),
            ],
            v,
        ));
    }
    let mut cost = timing(
        MetricName::AccountingCost,
        &[
            (Key::MmioTrackedPages, 0u64.into()),
            (Key::Load, "none".into()),
        ],
        54.0,
    );
    cost.samples = vec![50.0, 54.0, 58.0];
    cost.ci95 = Some([50.0, 58.0]);
    metrics.push(cost);
    for pages in [1u64, 65_536] {
        let params = [(Key::Pages, Param::from(pages))];
        let floor = 5000.0 + pages as f64 / 2.0;
        metrics.push(timing(MetricName::MemslotAdd, &params, floor));
        metrics.push(timing(MetricName::Bind, &params, floor + 200.0));
        let mut ratio = timing(MetricName::BindOverFloor, &params, 1.0 + 200.0 / floor);
        ratio.unit = "ratio".into();
        metrics.push(ratio);
    }
    for st in ["parked", "running"] {
        let own = [
            (Key::Pages, Param::from(1u64)),
            (Key::VcpuState, Param::from(st)),
        ];
        let mut floor_params = own.to_vec();
        floor_params.push((Key::PairedWith, Param::from("revoke_force")));
        metrics.push(timing(MetricName::MemslotDelete, &floor_params, 16_000.0));
        metrics.push(timing(MetricName::RevokeForce, &own, 17_000.0));
        metrics.push(timing(MetricName::RevokeForceOverFloor, &own, 1.0625));
    }
    let mut exit = timing(
        MetricName::PortExit,
        &[(Key::Port, 0x3f8u64.into())],
        4900.0,
    );
    exit.count = 12_345;
    metrics.push(exit);
    Results {
        schema: SCHEMA,
        host: Host {
            cpu_model: "Test CPU Model 9000".into(),
            cpu_vendor: "GenuineIntel".into(),
            virtualization: "pvm".into(),
            nested: true,
            kernel: "6.1.0-test".into(),
            commit: Some("0123abcd".into()),
            date: "2026-11-24T20:00:00Z".into(),
            cpus: 2,
            clocksource: "tsc".into(),
            invariant_tsc: true,
            governor: None,
            turbo: None,
            affinity: Default::default(),
            counters: CounterStatus {
                available: false,
                errno: Some(2),
                detail: "unavailable (ENOENT: no such hardware event)".into(),
            },
        },
        run: RunInfo {
            quick: true,
            wall_secs: 42.0,
            ..RunInfo::default()
        },
        metrics,
        not_measured: vec![NotMeasured {
            name: "hv.revoke_force".into(),
            reason: "fixture leaves it out".into(),
        }],
    }
}

fn slower_copy(r: &Results) -> Results {
    let mut s = r.clone();
    for m in &mut s.metrics {
        if m.is(MetricName::PortCheck) && m.param(Key::Impl) == Some(&Param::from("radix")) {
            for v in &mut m.norm_samples {
                *v *= 1.2;
            }
        }
    }
    s
}

fn status(c: &Context, id: &str) -> Option<String> {
    c.goals
        .iter()
        .find(|g| g.id == id)
        .map(|g| g.status.label().to_owned())
}

#[test]
fn context_judges_goals() {
    let c = Context::build(&fixture(), None);
    for id in [
        "radix-flat",
        "radix-flat-tight",
        "radix-vs-linear",
        "extent-allocations",
        "extent-bytes",
        "tracepoint-disabled",
        "tracepoint-enabled",
        "pio-vs-tracked",
        "quick-wall",
    ] {
        assert_eq!(status(&c, id).as_deref(), Some("met"), "{id}");
    }
    // 54 ns against a 25 ns target.
    assert_eq!(status(&c, "accounting-cost").as_deref(), Some("MISSED"));
    // 1 + 200 / 5000.5 = ×1.04 against ×1.03.
    assert_eq!(status(&c, "bind-over-floor").as_deref(), Some("MISSED"));
    assert_eq!(
        status(&c, "revoke-parked-over-floor").as_deref(),
        Some("met")
    );
    let mut bare = fixture();
    bare.metrics.retain(|m| !m.is(MetricName::BindOverFloor));
    assert_eq!(
        status(&Context::build(&bare, None), "bind-over-floor").as_deref(),
        Some("not measured")
    );
    assert_eq!(c.exit_table.len(), 1);
    assert_eq!(c.exit_table[0].count, 12_345);
    assert!(c.comparison.is_none());
    assert_eq!(c.not_measured.len(), 1);
}

/// The accounting-cost goal follows the metric: scaled ×10 it stays missed,
/// scaled ÷10 (5.4 ns) it is met.
#[test]
fn goals_follow_their_metric() {
    let scaled = |k: f64| {
        let mut r = fixture();
        for m in &mut r.metrics {
            if m.is(MetricName::AccountingCost) {
                for v in [&mut m.value, &mut m.p50, &mut m.p90, &mut m.p99, &mut m.max] {
                    *v *= k;
                }
                m.samples.iter_mut().for_each(|v| *v *= k);
                m.ci95.iter_mut().flatten().for_each(|v| *v *= k);
            }
        }
        Context::build(&r, None)
    };
    assert_eq!(
        status(&scaled(10.0), "accounting-cost").as_deref(),
        Some("MISSED")
    );
    assert_eq!(
        status(&scaled(0.1), "accounting-cost").as_deref(),
        Some("met")
    );
    // A broken invariant is BROKEN, not MISSED.
    let mut r = fixture();
    for m in &mut r.metrics {
        if m.is(MetricName::TrackingAllocations)
            && m.param(Key::Tracker) == Some(&Param::from("slab-extent"))
        {
            m.value = 65_536.0;
        }
    }
    assert_eq!(
        status(&Context::build(&r, None), "extent-allocations").as_deref(),
        Some("BROKEN")
    );
}

#[test]
fn comparison_shows_regression() {
    let base = fixture();
    let cur = slower_copy(&base);
    let c = Context::build(&cur, Some(&base));
    let rows = c.comparison.expect("baseline given");
    assert!(rows
        .iter()
        .any(|r| r.verdict.0 == Verdict::Regression && r.key.contains("impl=radix")));
    assert!(rows
        .iter()
        .all(|r| r.verdict.0 != Verdict::Regression || r.key.contains("impl=radix")));
}

#[test]
fn report_is_self_contained() {
    let html = report(&fixture(), None);
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));
    assert!(!html.contains("<script"));
    assert!(!html.contains("<link"));
    assert!(html.matches("<svg").count() >= 5);
    assert!(html.contains("Test CPU Model 9000"));
}

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            let out = Command::new("which").arg(name).output().ok()?;
            out.status
                .success()
                .then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().to_owned()))
        })
}

#[test]
fn chromium_renders_report() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "chromium is required under CI=true (apt-get install chromium)"
        );
        eprintln!("SKIP chromium_renders_report: chromium not installed");
        return;
    };
    let base = fixture();
    let cur = slower_copy(&base);
    let dir = std::env::temp_dir().join(format!("ioacct-report-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir is writable");
    let file = dir.join("report.html");
    std::fs::write(&file, report(&cur, Some(&base))).expect("temp file is writable");
    let out = Command::new(browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom"])
        .arg(format!("file://{}", file.display()))
        .output()
        .expect("chromium starts");
    let dom = String::from_utf8_lossy(&out.stdout);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for text in [
        "Summary against goals",
        "Test CPU Model 9000",
        "pvm",
        "ENOENT",
        "Port check against grants",
        "Tracker memory",
        "Tracepoint overhead",
        "Latency spectrum: hv.pio_exit",
        "port=0x03f8",
        "12345",
        "REGRESSION",
        "hv.revoke_force",
        "Coordinated omission",
    ] {
        assert!(dom.contains(text), "rendered DOM lacks {text:?}");
    }
    // The charts survive parsing as SVG elements with drawn content.
    assert!(dom.matches("<svg").count() >= 5);
    assert!(dom.contains("<polyline") || dom.contains("<path"));
}

/// Every log axis of every chart has at least two labelled ticks inside the
/// data's range (where the data spans a range), and every label is drawn.
#[test]
fn every_log_axis_is_labelled_where_the_data_is() {
    let c = Context::build(&fixture(), Some(&fixture()));
    let mut axes = 0;
    for ch in &c.charts {
        let Some((x0, x1, y0, y1)) = ch.data_range else {
            continue;
        };
        for (ticks, lo, hi) in [(&ch.x_ticks, x0, x1), (&ch.y_ticks, y0, y1)] {
            let inside = ticks
                .iter()
                .filter(|(v, _)| *v >= lo * (1.0 - 1e-9) && *v <= hi * (1.0 + 1e-9))
                .count();
            let want = if hi > lo { 2 } else { 1 };
            assert!(
                inside >= want,
                "{}: {inside} ticks in {lo}..{hi}: {ticks:?}",
                ch.title
            );
            for (_, label) in ticks {
                assert!(
                    ch.svg.contains(&reports::html::escape(label)),
                    "{}: label {label} not drawn",
                    ch.title
                );
            }
            axes += 1;
        }
        assert!(!ch.legend.is_empty(), "{} has a legend", ch.title);
    }
    assert!(axes >= 10, "{axes} log axes checked");
}

/// Each headline number is the metric it names.
#[test]
fn headline_numbers_are_their_metrics() {
    let r = fixture();
    let c = Context::build(&r, None);
    let mut checked = 0;
    for h in &c.headline {
        let Some(v) = h.number else { continue };
        let m = r
            .metrics
            .iter()
            .find(|m| m.key() == h.metric)
            .unwrap_or_else(|| panic!("{}: metric {} exists", h.label, h.metric));
        let want = if m.deterministic { m.value } else { m.p50 };
        assert_eq!(v, want, "{}", h.label);
        checked += 1;
    }
    assert!(checked >= 5, "{checked} headline numbers");
    assert!(c.headline[0].label.starts_with("Accounting per port exit"));
    let html = report(&r, None);
    let head = html
        .find("What I/O accounting costs")
        .expect("headline block");
    let toc = html.find("Contents").expect("table of contents");
    let summary = html.find("Summary against goals").expect("summary");
    assert!(
        head < toc && toc < summary,
        "headline, then contents, then the rest"
    );
}

/// The load table pairs each painter-mapped metric's idle and painting rows
/// with the same other params, and nothing else.
#[test]
fn load_table_pairs_idle_and_painting_rows() {
    let mut r = fixture();
    let loaded = |load: &str, acc: &str, p50: f64| {
        timing(
            MetricName::PioExit,
            &[
                (Key::Accounting, acc.into()),
                (Key::Load, load.into()),
                (Key::MappedBy, "painter".into()),
                (Key::MmioTrackedPages, 65_536u64.into()),
            ],
            p50,
        )
    };
    r.metrics.push(loaded("none", "on", 100.0));
    r.metrics.push(loaded("fb-paint", "on", 250.0));
    r.metrics.push(loaded("none", "off", 90.0));
    // No painting counterpart: not in the table.
    r.metrics.push(timing(
        MetricName::Bind,
        &[
            (Key::Load, "none".into()),
            (Key::MappedBy, "painter".into()),
            (Key::Pages, 1u64.into()),
        ],
        6000.0,
    ));
    let c = Context::build(&r, None);
    assert_eq!(c.load_table.len(), 1, "{:?}", c.load_table);
    let row = &c.load_table[0];
    assert!(row.key.contains("accounting=on") && !row.key.contains("load="));
    assert_eq!((row.none, row.paint, row.moved), (100.0, 250.0, 150.0));
    let html = report(&r, None);
    assert!(html.contains("id=\"load\"") && html.contains("(×2.50)"));
}
