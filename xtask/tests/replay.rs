//! `cargo xtask replay` as a user runs it: output lines, exit status 2 with
//! the line number for a malformed trace, `--trace` JSON, `--tracker`.

use std::path::PathBuf;
use std::process::Command;

fn xtask() -> Command {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
}

fn temp(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ioacct-xtask-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write trace");
    p
}

const TRACE: &str = "\
# device A's page, ports and line
boot ram=0x0-0x7ffff reserve_ioports=0x3f8-0x3ff
map 0 iomem 0xfeb00
create 1

grant 1 iomem 0xfeb00 exclusive
grant 1 iomem 0xfeb00 exclusive force
access 0 ioport 0x3f8
map 1 iomem 0x10
query iomem 0xfeb00
check
";

#[test]
fn replays_one_line_per_op_with_every_tracker() {
    let trace = temp("ok.trace", TRACE);
    let mut outputs = Vec::new();
    for tracker in ["slab-extent", "slab-page", "xmalloc-page"] {
        let out = xtask()
            .args(["replay"])
            .arg(&trace)
            .args(["--tracker", tracker])
            .output()
            .expect("runs");
        assert!(out.status.success(), "{tracker}: {out:?}");
        let text = String::from_utf8(out.stdout).expect("utf-8");
        let firsts: Vec<String> = text
            .lines()
            .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
            .collect();
        assert_eq!(
            firsts,
            [
                "ok",
                "ok",
                "ok",
                "err in-use",
                "ok torn",
                "deny",
                "err not-io-memory",
                "state iomem",
                "ok"
            ]
        );
        outputs.push(text);
    }
    assert!(
        outputs.windows(2).all(|w| w[0] == w[1]),
        "identical output per tracker"
    );
}

#[test]
fn malformed_line_exits_2_naming_the_line() {
    let trace = temp("bad.trace", "boot\ncreate 1\n\nmap 1 ioport 0x10\ncheck\n");
    let out = xtask().arg("replay").arg(&trace).output().expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(":4:"), "names line 4: {err}");
    assert!(!err.contains("panicked"));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        2,
        "ops before it ran"
    );
    let out = xtask()
        .args(["replay", "/nonexistent/x.trace"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let out = xtask()
        .arg("replay")
        .arg(&trace)
        .args(["--tracker", "nope"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn trace_flag_writes_chrome_json() {
    let trace = temp("traced.trace", TRACE);
    let json = trace.with_extension("json");
    let out = xtask()
        .arg("replay")
        .arg(&trace)
        .arg("--trace")
        .arg(&json)
        .output()
        .expect("runs");
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read_to_string(&json).expect("written");
    let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let events = v
        .get("traceEvents")
        .and_then(|e| e.as_array())
        .or_else(|| v.as_array())
        .expect("an event array");
    let names: Vec<&str> = events
        .iter()
        .filter_map(|e| e.get("name")?.as_str())
        .collect();
    for want in [
        "reserve",
        "map",
        "create",
        "grant",
        "teardown",
        "port_check",
    ] {
        assert!(
            names.iter().any(|n| n.contains(want)),
            "no `{want}` event in {names:?}"
        );
    }
    assert!(
        events
            .iter()
            .any(|e| e.get("ph").and_then(|p| p.as_str()) == Some("X")),
        "slices"
    );
}
