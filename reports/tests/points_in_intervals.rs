//! Every goal that reports a 95 % interval reports a point estimate inside
//! it: the point and the interval describe the same statistic, computed the
//! same way from the same samples. Checked on real results files: the
//! committed `bench/baseline.json` and a quick run kept in `tests/data/`
//! (provenance in `tests/data/README.md`). `IOACCT_EXTRA_RESULTS` (paths
//! separated by `:`) adds more files, e.g. a fresh `target/bench/results.json`.
use reports::goals::{evaluate, Status};
use reports::Results;
use std::path::{Path, PathBuf};

fn files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut v = vec![
        dir.join("../bench/baseline.json"),
        dir.join("tests/data/quick-run-05.json"),
    ];
    if let Ok(extra) = std::env::var("IOACCT_EXTRA_RESULTS") {
        v.extend(
            extra
                .split(':')
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
        );
    }
    v
}

/// The rounding the report prints: ratios to 3 decimals, other values to
/// about four significant digits.
fn slack(unit: &str, value: f64) -> f64 {
    if matches!(unit, "ratio" | "×" | "fraction") {
        5e-4
    } else {
        5e-4 * value.abs()
    }
}

#[test]
fn every_point_lies_in_its_own_interval() {
    let mut bad = Vec::new();
    let mut with_interval = 0;
    for path in files() {
        let text = std::fs::read_to_string(&path).expect("results file");
        let r = Results::from_json(&path, &text).expect("results");
        for e in evaluate(&r) {
            let Some(m) = &e.measured else { continue };
            let status = e.status();
            eprintln!(
                "{}\t{}\t{:.4}\t{:?}\t{status:?}\t{}",
                path.file_name().and_then(|f| f.to_str()).unwrap_or("?"),
                e.goal.id,
                m.value,
                m.interval,
                m.detail
            );
            let Some([lo, hi]) = m.interval else { continue };
            with_interval += 1;
            let s = slack(e.goal.unit, m.value);
            if !(lo <= hi && lo - s <= m.value && m.value <= hi + s) {
                bad.push(format!(
                    "{}: {} = {} outside its interval {lo} … {hi} ({})",
                    path.display(),
                    e.goal.id,
                    m.value,
                    m.detail
                ));
            }
            assert_ne!(status, Status::NotMeasured);
        }
    }
    assert!(
        with_interval >= 10,
        "too few goals with an interval to judge"
    );
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
