//! Guest configurations that Xen and libvirt ship (tests/data/guests,
//! PROVENANCE.md there): they parse, and the check finds what a careful
//! administrator would see and nothing else.

use std::path::PathBuf;

mod common;

use common::{data, ioacct};

fn all(dir: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(data(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p: &PathBuf| p.is_file())
        .map(|p| p.display().to_string())
        .collect();
    v.sort();
    v
}

/// `ioacct check ARGS…`: the exit code, and stdout and stderr together.
fn check(args: &[&str]) -> (i32, String) {
    let argv: Vec<&str> = std::iter::once("check")
        .chain(args.iter().copied())
        .collect();
    let (code, out, err) = ioacct(&argv);
    (code, out + &err)
}

/// `ioacct check OPTS… FILES…`.
fn check_files(opts: &[&str], files: &[String]) -> (i32, String) {
    let args: Vec<&str> = opts
        .iter()
        .copied()
        .chain(files.iter().map(String::as_str))
        .collect();
    check(&args)
}

fn codes(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.split_once(": error[").map(|(_, r)| r[..5].to_string()))
        .collect()
}

#[test]
fn every_file_parses_and_alone_is_clean() {
    let files: Vec<String> = all("guests/xen")
        .into_iter()
        .chain(all("guests/libvirt"))
        .collect();
    assert!(files.len() >= 15);
    for f in &files {
        let (code, out) = check(&["--no-host", f]);
        assert_eq!(code, 0, "{f}: {out}");
    }
}

#[test]
fn different_domains_together_do_not_conflict() {
    let mut files = all("guests/xen");
    files.retain(|f| !f.contains("vtd-") || f.ends_with("vtd-hvm.cfg"));
    files.extend(
        all("guests/libvirt")
            .into_iter()
            // The same domain as test-fullvirt-pci.cfg; functions of
            // hostdev-pci-multifunction.xml (tests below).
            .filter(|f| !f.ends_with("test-fullvirt-pci.xml") && !f.ends_with("hostdev-vfio.xml")),
    );
    let (code, out) = check_files(&["--no-host"], &files);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn one_domain_defined_in_both_formats_conflicts_on_each_function() {
    let cfg = data("guests/libvirt/xlconfigdata-test-fullvirt-pci.cfg");
    let xml = data("guests/libvirt/xlconfigdata-test-fullvirt-pci.xml");
    let (code, out) = check(&["--no-host", &cfg, &xml]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(codes(&out), ["E0104", "E0104"], "{out}");
    assert!(
        out.contains(&format!(
            "{xml}:42:9: error[E0104]: PCI function 0000:01:1a.1"
        )),
        "{out}"
    );
    assert!(out.contains(&format!("{cfg}:20:9: note")), "{out}");
    assert!(
        out.contains(&format!(
            "{xml}:48:9: error[E0104]: PCI function 0000:02:00.0"
        )),
        "{out}"
    );
    assert!(out.contains(&format!("{cfg}:20:25: note")), "{out}");
}

#[test]
fn the_vtd_examples_share_their_functions() {
    let f: Vec<String> = ["vtd-hvm.cfg", "vtd-msitranslate.cfg", "vtd-rdm-policy.cfg"]
        .iter()
        .map(|n| data(&format!("guests/xen/{n}")))
        .collect();
    let (code, out) = check(&["--no-host", &f[0], &f[1], &f[2]]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(codes(&out), ["E0104"; 4], "{out}");
    assert_eq!(
        out.matches(&format!("{}:1:", f[0])).count(),
        4,
        "every note is at the first file: {out}"
    );
}

#[test]
fn on_real_host_maps_the_examples_raise_no_false_alarm() {
    let guests: Vec<String> = all("guests/xen")
        .into_iter()
        .filter(|f| !f.contains("vtd-"))
        .collect();
    for host in [
        "virtio-vm",
        "desktop-e1000e",
        "hyperv-vm",
        "desktop-forcedeth",
        "server-hpsa-igb",
    ] {
        let h = data(&format!("hosts/{host}"));
        let (code, out) = check_files(&["--host", &h], &guests);
        assert_eq!(code, 0, "{host}: {out}");
    }
}

/// On the desktop whose /proc/iomem shows `vesafb` under the GPU at
/// 0000:01:00.0, passing that function through (docs/misc/vtd.txt's
/// example) hands a guest the framebuffer dom0's console still writes to.
#[test]
fn the_vtd_example_on_a_desktop_takes_dom0s_framebuffer() {
    let h = data("hosts/desktop-e1000e");
    let g = data("guests/xen/vtd-hvm.cfg");
    let (code, out) = check(&["--host", &h, &g]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(codes(&out), ["E0301"], "{out}");
    assert!(
        out.contains(&format!("{g}:1:9: error[E0301]: PCI function 0000:01:00.0")),
        "{out}"
    );
    assert!(out.contains("`0000:01:00.0 vesafb`"), "{out}");
    // 03:00.0 is not on that host: a warning, not an error.
    assert!(out.contains(&format!("{g}:1:20: warning[W0603]")), "{out}");
}

/// libvirt's test domains reuse host functions: `hostdev-vfio.xml` names
/// 0000:06:12.1–4, and `hostdev-pci-multifunction.xml` names .1 and .2 too.
/// Defined on one host, those two functions are each given twice; .3 and .4
/// (behind `<driver name='vfio' model='vfio-pci-igb'/>`) are not.
#[test]
fn libvirt_domains_that_reuse_functions_conflict_on_exactly_those() {
    let vfio = data("guests/libvirt/qemuxmlconfdata-hostdev-vfio.xml");
    let multi = data("guests/libvirt/qemuxml2argvdata-hostdev-pci-multifunction.xml");
    let (code, out) = check(&["--no-host", &multi, &vfio]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(codes(&out), ["E0104", "E0104"], "{out}");
    for (line, func, note) in [(29, 1, 49), (35, 2, 55)] {
        assert!(
            out.contains(&format!(
                "{vfio}:{line}:9: error[E0104]: PCI function 0000:06:12.{func} "
            )),
            "{out}"
        );
        assert!(out.contains(&format!("{multi}:{note}:9: note")), "{out}");
    }
    assert!(
        !out.contains("06:12.3") && !out.contains("06:12.4"),
        "{out}"
    );
}

/// `net-hostdev-multidomain.xml` gives a guest a function in PCI segment
/// 0x2424 as its NIC (`<interface type='hostdev'>`). An xl.cfg naming the
/// same function conflicts with it; one naming bus 0x21 of segment 0 does not.
#[test]
fn a_function_outside_segment_zero_is_compared_with_its_segment() {
    let xml = data("guests/libvirt/qemuxmlconfdata-net-hostdev-multidomain.xml");
    let d = common::scratch("segment");
    let same = d.join("same.cfg");
    std::fs::write(&same, "pci = [ '2424:21:1c.6,permissive=1' ]\n").expect("write");
    let other = d.join("other.cfg");
    std::fs::write(&other, "pci = [ '21:1c.6' ]\n").expect("write");
    let (same, other) = (same.display().to_string(), other.display().to_string());
    let (code, out) = check(&["--no-host", &xml, &same]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(codes(&out), ["E0104"], "{out}");
    assert!(
        out.contains(&format!(
            "{same}:1:9: error[E0104]: PCI function 2424:21:1c.6 "
        )),
        "{out}"
    );
    assert!(out.contains(&format!("{xml}:28:9: note")), "{out}");
    let (code, out) = check(&["--no-host", &xml, &other]);
    assert_eq!(code, 0, "{out}");
}
