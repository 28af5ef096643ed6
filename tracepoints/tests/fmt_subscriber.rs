//! `install_fmt_subscriber`: installs the global `RUST_LOG` formatter once,
//! and `RUST_LOG=tracepoints::<kind>=trace` really prints those events.
#![cfg(all(feature = "std", feature = "compiled"))]

use std::process::Command;

use tracepoints::sinks::tracing::{install_fmt_subscriber, install_live};
use tracepoints::{tp, Kind, Outcome, Record, Space};

const CHILD: &str = "TRACEPOINTS_FMT_CHILD";

#[test]
fn installs_once_then_reports_the_existing_subscriber() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    assert!(install_fmt_subscriber().is_ok());
    assert!(install_fmt_subscriber().is_err());
}

#[test]
fn rust_log_selects_and_prints_events_on_stderr() {
    if std::env::var_os(CHILD).is_some() {
        // Child: a binary that installs the formatter and traces live.
        install_fmt_subscriber().expect("fresh process has no subscriber");
        install_live();
        tracepoints::enable();
        tp!(Record::new(Kind::Map)
            .domain(3)
            .range(Space::IoMem, 16, 31)
            .outcome(Outcome::Ok));
        tp!(Record::new(Kind::PortCheck)
            .domain(3)
            .outcome(Outcome::Deny));
        return;
    }
    let exe = std::env::current_exe().expect("test binary path is known");
    let out = Command::new(exe)
        .args(["--exact", "rust_log_selects_and_prints_events_on_stderr"])
        .args(["--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env("RUST_LOG", "tracepoints::map=trace")
        .output()
        .expect("re-running the test binary works");
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stderr.contains("tracepoints::map"), "stderr: {stderr}");
    assert!(stderr.contains("domain=3"), "stderr: {stderr}");
    assert!(
        stderr.contains("space=\"iomem\"") || stderr.contains("space=iomem"),
        "stderr: {stderr}"
    );
    assert!(stderr.contains("last=0x1f"), "addresses in hex: {stderr}");
    assert!(
        !stderr.contains("port_check"),
        "filtered out by RUST_LOG: {stderr}"
    );
    assert!(
        !stdout.contains("tracepoints::map"),
        "stdout stays clean: {stdout}"
    );
}
