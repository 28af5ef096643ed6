//! `IOACCT_INJECT_HV_SLOWDOWN` slows the timed hypervisor step and not its
//! KVM floor: the paired ratio grows, and the results name the knob.
use reports::{Key, MetricName, Param, Results};
use std::path::Path;
use std::process::Command;

/// Runs the bench for `hv.bind_over_floor` into `out`, with `knob` set to
/// the injected percentage (or unset), and returns the results.
fn bind_run(out: &Path, knob: Option<&str>) -> Results {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ioacct-bench"));
    cmd.args([
        "--quick",
        "--no-progress",
        "--only",
        "hv.bind_over_floor",
        "--out",
    ])
    .arg(out)
    .env_remove("IOACCT_INJECT_HV_SLOWDOWN");
    if let Some(v) = knob {
        cmd.env("IOACCT_INJECT_HV_SLOWDOWN", v);
    }
    let st = cmd.status().expect("run ioacct-bench");
    assert!(st.success(), "ioacct-bench: {st}");
    Results::load(out).expect("results")
}

/// The median bind-over-floor ratio at `pages`.
fn ratio(r: &Results, pages: u64) -> f64 {
    r.metrics
        .iter()
        .find(|m| {
            m.is(MetricName::BindOverFloor) && m.param(Key::Pages) == Some(&Param::Int(pages))
        })
        .map(|m| m.value)
        .expect("hv.bind_over_floor at that size")
}

#[test]
fn injected_hv_slowdown_raises_the_paired_ratio() {
    if !hv::host::require_kvm("injected_hv_slowdown_raises_the_paired_ratio") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("ioacct-inject-hv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let plain = bind_run(&dir.join("plain.json"), None);
    let slowed = bind_run(&dir.join("slowed.json"), Some("100"));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(plain.run.knobs.is_empty(), "{:?}", plain.run.knobs);
    assert_eq!(
        slowed
            .run
            .knobs
            .get("IOACCT_INJECT_HV_SLOWDOWN")
            .map(String::as_str),
        Some("100")
    );
    // A 100 % stretch of the step doubles step/floor; the margin leaves
    // room for a noisy shared machine, not for a knob that does nothing.
    for pages in [1, 16, 256] {
        let (a, b) = (ratio(&plain, pages), ratio(&slowed, pages));
        assert!(b / a > 1.4, "pages={pages}: {a} without, {b} with the knob");
    }
}
