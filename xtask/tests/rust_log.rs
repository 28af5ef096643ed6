//! `RUST_LOG=tracepoints=trace cargo xtask replay FILE`: each op's events are
//! printed as it runs, before its result line, with addresses in hex.

use std::fs::File;
use std::process::{Command, Stdio};

#[test]
fn events_interleave_with_op_results() {
    let dir = std::env::temp_dir().join(format!("ioacct-rust-log-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let trace = dir.join("t.trace");
    std::fs::write(
        &trace,
        "boot\ncreate 1\nmap 0 iomem 0xfeb00\ngrant 1 iomem 0xfeb00 exclusive force\naccess 1 ioport 0x300\n",
    )
    .expect("write");
    // stdout and stderr into one file, in the order they were written.
    let both = dir.join("out.txt");
    let f = File::create(&both).expect("create");
    let status = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("replay")
        .arg(&trace)
        .env("RUST_LOG", "tracepoints=trace")
        .env_remove("NO_COLOR")
        .stdout(Stdio::from(f.try_clone().expect("dup")))
        .stderr(Stdio::from(f))
        .status()
        .expect("runs");
    assert!(status.success());
    let text = std::fs::read_to_string(&both).expect("read");
    let lines: Vec<&str> = text.lines().collect();
    let pos = |pred: &dyn Fn(&str) -> bool| {
        lines
            .iter()
            .position(|l| pred(l))
            .unwrap_or_else(|| panic!("missing line in:\n{text}"))
    };
    let map_ev = pos(&|l| l.contains("tracepoints::map") && l.contains("first=0xfeb00"));
    let grant_ev = pos(&|l| l.contains("tracepoints::grant") && l.contains("forced=true"));
    let teardown_ev = pos(&|l| l.contains("tracepoints::teardown"));
    let torn = pos(&|l| l.starts_with("ok torn"));
    let check_ev = pos(&|l| l.contains("tracepoints::port_check") && l.contains("first=0x300"));
    let deny = pos(&|l| l == "deny");
    // map's event, map's `ok`, the grant's events, its result, the check, its result.
    assert_eq!(lines.get(map_ev + 1).copied(), Some("ok"), "{text}");
    assert!(
        map_ev < grant_ev && grant_ev < teardown_ev && teardown_ev < torn,
        "{text}"
    );
    assert!(torn < check_ev && check_ev < deny, "{text}");
}
