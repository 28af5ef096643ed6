//! `ioacct check` end to end: the command line, on snapshot host maps and
//! the live host, with the issue's own cases, bad input, and the JSON and
//! SARIF outputs validated against their schemas.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

mod common;

use common::{data, ioacct, scratch};

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    fs::write(&p, text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    p.display().to_string()
}

/// The JSON text `out` checked against the JSON Schema at `schema`
/// (`tests/data/…` or the spec's): the value, and the validator to try
/// broken copies on.
fn valid_json(out: &str, schema: &str) -> (serde_json::Value, jsonschema::Validator) {
    let v: serde_json::Value = serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let schema_text = fs::read_to_string(schema).unwrap_or_else(|e| panic!("{schema}: {e}"));
    let schema: serde_json::Value =
        serde_json::from_str(&schema_text).unwrap_or_else(|e| panic!("{e}"));
    let validator = jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{e}"));
    let errors: Vec<String> = validator.iter_errors(&v).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    (v, validator)
}

/// `ioacct check --host virtio-vm --format FORMAT a.cfg b.cfg` with the
/// two texts as the files: its output, once the exit code is 1 (findings).
fn two_guests_on_the_vm(format: &str, a: &str, b: &str) -> String {
    let d = scratch(format);
    let (a, b) = (write(&d, "a.cfg", a), write(&d, "b.cfg", b));
    let vm = data("hosts/virtio-vm");
    let (code, out, err) = ioacct(&["check", "--host", &vm, "--format", format, &a, &b]);
    assert_eq!(code, 1, "{out}{err}");
    out
}

#[test]
fn the_live_host_with_no_guests_is_clean() {
    if !Path::new("/proc/iomem").exists() {
        return;
    }
    let (code, out, err) = ioacct(&["check"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("0 errors"), "{out}");
}

#[test]
fn two_guests_asking_for_the_serial_ports() {
    let d = scratch("serial");
    let a = write(&d, "a.cfg", "name = \"a\"\nioports = [\"3f8-3ff\"]\n");
    let b = write(
        &d,
        "b.cfg",
        "# second guest\nname = \"b\"\nmemory = 256\nioports = [ \"3f8-3ff\" ]\n",
    );
    let h = data("hosts/virtio-vm");
    // On the snapshot of this machine, with Xen's default reservations: the console UART.
    let (code, out, _) = ioacct(&["check", "--host", &h, &a, &b]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("{a}:2:12: error[E0201]")), "{out}");
    assert!(out.contains(&format!("{b}:4:13: error[E0201]")), "{out}");
    assert!(out.contains("`serial`"), "{out}");
    // Without the console reserved, dom0's serial driver still holds the ports.
    let (code, out, _) = ioacct(&[
        "check",
        "--host",
        &h,
        "--hv-reserve",
        "lapic,ioapic",
        &a,
        &b,
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("{b}:4:13: error[E0301]")), "{out}");
    assert!(out.contains("dom0's driver holds `serial`"), "{out}");
    // With no host map at all, the two guests conflict with each other.
    // With no host map at all, still.
    let (code, out, _) = ioacct(&["check", "--no-host", &a, &b]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("error[E0102]") && out.contains(&format!("{a}:2:12: note")),
        "{out}"
    );
    // On the live host too.
    if Path::new("/proc/ioports").exists() {
        let (code, out, _) = ioacct(&["check", &a, &b]);
        assert_eq!(code, 1, "{out}");
        assert!(out.contains(&a) && out.contains(&b), "{out}");
    }
}

#[test]
fn a_page_of_system_ram_is_refused_as_ram() {
    let d = scratch("ram");
    let g = write(&d, "ram.cfg", "iomem = [ \"1000,1\" ]\n");
    let (code, out, _) = ioacct(&["check", "--host", &data("hosts/virtio-vm"), &g]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("{g}:1:11: error[E0401]")), "{out}");
    assert!(out.contains("System RAM"), "{out}");
    // Beyond the physical address width (this snapshot: 46 bits, frames below 0x4_0000_0000).
    let g = write(&d, "far.cfg", "iomem = [ \"40000000000,1\" ]\n");
    let (code, out, _) = ioacct(&["check", "--host", &data("hosts/virtio-vm"), &g]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("error[E0402]"), "{out}");
}

#[test]
fn a_function_bound_to_a_dom0_driver() {
    let d = scratch("bound");
    let x = write(
        &d,
        "nic.xml",
        "<domain type='xen'>\n  <name>nic</name>\n  <devices>\n    <hostdev mode='subsystem' type='pci' managed='yes'>\n      <source><address domain='0x0000' bus='0x00' slot='0x03' function='0x0'/></source>\n    </hostdev>\n  </devices>\n</domain>\n",
    );
    let (code, out, _) = ioacct(&["check", "--host", &data("hosts/virtio-vm"), &x]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("{x}:5:15: error[E0301]")), "{out}");
    assert!(out.contains("0000:00:03.0 virtio-pci"), "{out}");
}

#[test]
fn sharing_declared_by_option_or_policy_file() {
    let d = scratch("share");
    let a = write(&d, "a.cfg", "ioports = ['300-307']\nirqs = [ 10 ]\n");
    let b = write(&d, "b.cfg", "ioports = ['300-307']\nirqs = [ 10 ]\n");
    let (code, out, _) = ioacct(&["check", "--no-host", &a, &b]);
    assert_eq!(code, 1, "{out}");
    let (code, out, _) = ioacct(&[
        "check",
        "--no-host",
        "--share",
        "ioport:0x300-0x307",
        "--share",
        "irq:10",
        &a,
        &b,
    ]);
    assert_eq!(code, 0, "{out}");
    let p = write(
        &d,
        "policy",
        "# the shared card\nshare ioport 0x300-0x307\nshare irq 10\n",
    );
    let (code, out, _) = ioacct(&["check", "--no-host", "--policy", &p, &a, &b]);
    assert_eq!(code, 0, "{out}");
    let p = write(&d, "bad-policy", "share ioport\n");
    let (code, _, err) = ioacct(&["check", "--no-host", "--policy", &p, &a, &b]);
    assert_eq!(code, 2);
    assert!(err.contains(&format!("{p}:1")), "{err}");
}

#[test]
fn warnings_fail_only_with_werror() {
    // The snapshot's serial driver holds the console UART Xen takes: a warning.
    let h = data("hosts/virtio-vm");
    let (code, out, _) = ioacct(&["check", "--host", &h]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("warning[W0601]") && out.contains("`serial`"),
        "{out}"
    );
    let (code, _, _) = ioacct(&["check", "--host", &h, "--werror"]);
    assert_eq!(code, 1);
}

#[test]
fn the_emitted_trace_replays_to_the_same_verdicts() {
    let d = scratch("trace");
    let a = write(
        &d,
        "a.cfg",
        "ioports = ['300-307']\npci = ['00:04.0']\niomem = ['1000,2']\n",
    );
    let b = write(&d, "b.cfg", "ioports = ['304-30b']\nirqs = [ 4 ]\n");
    let t = d.join("t.trace").display().to_string();
    let (code, out, _) = ioacct(&[
        "check",
        "--host",
        &data("hosts/virtio-vm"),
        "--emit-trace",
        &t,
        &a,
        &b,
    ]);
    assert_eq!(code, 1, "{out}");
    let text = fs::read_to_string(&t).unwrap_or_else(|e| panic!("{e}"));
    let mut replay = accountant::trace::Replay::new(accountant::TrackerKind::default());
    let (mut ops, mut errs) = (0, 0);
    for line in text.lines() {
        let want = line.split_once("#=> ").map(|(_, w)| w);
        match replay.feed(line) {
            Ok(Some(got)) => {
                assert_eq!(Some(got.as_str()), want, "{line}");
                ops += 1;
                errs += usize::from(got.starts_with("err"));
            }
            Ok(None) => {}
            Err(e) => panic!("{line}: {e}"),
        }
    }
    assert!(ops > 10 && errs >= 3, "{ops} ops, {errs} refusals");
}

#[test]
fn json_output_follows_its_schema() {
    let out = two_guests_on_the_vm(
        "json",
        "ioports = ['300-307']\npci = ['00:04.0']\n",
        "ioports = ['300-307']\niomem = ['1000,1']\n",
    );
    let (v, validator) = valid_json(
        &out,
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../spec/check-output.schema.json"
        ),
    );
    let codes: Vec<&str> = v["findings"].as_array().map_or(Vec::new(), |f| {
        f.iter().filter_map(|x| x["code"].as_str()).collect()
    });
    assert!(
        codes.contains(&"E0102") && codes.contains(&"E0301") && codes.contains(&"E0401"),
        "{codes:?}"
    );
    // The schema is not vacuous: a finding without a code fails it.
    let mut broken = v.clone();
    if let Some(f) = broken["findings"]
        .get_mut(0)
        .and_then(|f| f.as_object_mut())
    {
        f.remove("code");
    }
    assert!(!validator.is_valid(&broken));
}

#[test]
fn sarif_output_validates_against_the_official_schema() {
    let out = two_guests_on_the_vm(
        "sarif",
        "ioports = ['300-307']\n",
        "ioports = ['300-307']\n",
    );
    let (v, validator) = valid_json(&out, &data("sarif/sarif-schema-2.1.0.json"));
    let results = v["runs"][0]["results"].as_array().map_or(0, |r| r.len());
    assert!(results >= 1);
    assert_eq!(v["runs"][0]["results"][0]["ruleId"], "E0102");
    assert!(
        v["runs"][0]["results"][0]["relatedLocations"][0]["physicalLocation"]["artifactLocation"]
            ["uri"]
            .as_str()
            .is_some_and(|u| u.ends_with("a.cfg"))
    );
    let mut broken = v.clone();
    broken["runs"][0]["results"][0]["level"] = serde_json::json!("fatal");
    assert!(!validator.is_valid(&broken));
}

/// Every bad input: exit 2, the file (and line) named, nothing printed on stdout, in bounded time.
#[test]
fn bad_input_is_exit_2_naming_the_file() {
    let d = scratch("bad");
    let ok = write(&d, "ok.cfg", "ioports = ['300']\n");
    let cases: Vec<(String, String)> = vec![
        (write(&d, "syntax.cfg", "memory = 512\nirqs = (1, 2)\n"), "syntax.cfg:2:8".into()),
        (write(&d, "unterminated.cfg", "name = \"x\n"), "unterminated.cfg:1:8".into()),
        (write(&d, "bad-value.cfg", "iomem = [\"fe000\"]\n"), "bad-value.cfg:1:10".into()),
        (write(&d, "bad.xml", "<domain><devices>\n<hostdev type='pci'>\n</devices></domain>\n"), "bad.xml:3".into()),
        (
            write(&d, "bomb.xml", "<?xml version='1.0'?>\n<!DOCTYPE d [<!ENTITY a 'aaaaaaaaaa'><!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;'>]>\n<domain><name>&b;</name></domain>\n"),
            "DTD".into(),
        ),
        (
            write(&d, "deep.xml", &format!("<domain>{}{}</domain>", "<a>".repeat(250_000), "</a>".repeat(250_000))),
            "deep.xml".into(),
        ),
        (write(&d, "deep.cfg", &format!("x = {}{}\n", "[".repeat(100_000), "]".repeat(100_000))), "deep.cfg:1".into()),
        (d.display().to_string(), "not a regular file".into()),
        (d.join("missing.cfg").display().to_string(), "missing.cfg".into()),
    ];
    let latin1 = d.join("latin1.cfg");
    fs::write(&latin1, b"name = \"x\"\n# caf\xe9\n").unwrap_or_else(|e| panic!("{e}"));
    let huge = d.join("huge.cfg");
    let f = fs::File::create(&huge).unwrap_or_else(|e| panic!("{e}"));
    f.set_len(100 << 20).unwrap_or_else(|e| panic!("{e}"));
    let mut cases = cases;
    cases.push((
        latin1.display().to_string(),
        "latin1.cfg:2: not UTF-8".into(),
    ));
    cases.push((huge.display().to_string(), "larger than".into()));
    for (file, want) in &cases {
        let t = Instant::now();
        let (code, out, err) = ioacct(&["check", "--no-host", &ok, file]);
        assert_eq!(code, 2, "{file}: {out}{err}");
        assert!(out.is_empty(), "{file}: {out}");
        assert!(
            err.contains(want.as_str()),
            "{file}: want {want}, got {err}"
        );
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{file}: {:?}",
            t.elapsed()
        );
    }
    // Usage errors.
    for args in [
        vec!["check", "--format", "xml"],
        vec!["check", "--share", "irq16"],
        vec!["check", "--share", "disk:1"],
        vec!["check", "--hv-reserve", "lapic,frob"],
        vec!["check", "--host", &ok],
        vec!["check", "--host", "/nonexistent", "--no-host"],
        vec!["frob"],
    ] {
        let (code, _, err) = ioacct(&args);
        assert_eq!(code, 2, "{args:?}");
        assert!(!err.is_empty(), "{args:?}");
    }
}
