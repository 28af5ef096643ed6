//! Bad host maps: each is a typed error naming the file (and line), read in
//! bounded time and memory, or a gap where the part is merely absent.

use std::io;
use std::path::{Path, PathBuf};

mod common;

use common::{host, scratch};
use ioacct_check::host::{read::PROC_LIMIT, sysfs::MAX_DEVICES, HostError, HostMap};

fn real(rel: &str) -> Vec<u8> {
    std::fs::read(host("desktop-e1000e").join(rel)).expect("test data")
}

/// A snapshot with the desktop's four proc files, each replaced where
/// `edit` says so.
fn snapshot(tag: &str) -> PathBuf {
    let dir = scratch(tag);
    std::fs::create_dir_all(dir.join("proc")).expect("mkdir");
    for f in [
        "proc/iomem",
        "proc/ioports",
        "proc/interrupts",
        "proc/cpuinfo",
    ] {
        std::fs::write(dir.join(f), real(f)).expect("write");
    }
    dir
}

/// A snapshot whose file `rel` is replaced by what `make` puts at its path.
fn snapshot_with(tag: &str, rel: &str, make: impl FnOnce(&Path)) -> PathBuf {
    let dir = snapshot(tag);
    std::fs::remove_file(dir.join(rel)).expect("rm");
    make(&dir.join(rel));
    dir
}

/// The file (relative to `dir`) and kind of the read error the snapshot
/// at `dir` gives.
fn read_error(dir: &Path) -> (&'static str, io::ErrorKind) {
    match HostMap::read_dir(dir) {
        Err(HostError::Read { path, error }) => {
            let rel = [
                "proc/iomem",
                "proc/ioports",
                "proc/interrupts",
                "proc/cpuinfo",
            ]
            .into_iter()
            .find(|f| path == dir.join(f))
            .unwrap_or_else(|| panic!("{}", path.display()));
            (rel, error.kind())
        }
        other => panic!("{other:?}"),
    }
}

fn parse_error(dir: &Path) -> (PathBuf, u32, String) {
    match HostMap::read_dir(dir) {
        Err(HostError::Parse { path, line, why }) => (path, line, why),
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn a_truncated_iomem_names_its_last_line() {
    let dir = snapshot("truncated");
    let data = real("proc/iomem");
    // Cut inside line 10 (`00100000-cf1f9fff : System RAM`).
    let line10 = data
        .split(|&b| b == b'\n')
        .take(9)
        .map(|l| l.len() + 1)
        .sum::<usize>();
    std::fs::write(dir.join("proc/iomem"), &data[..line10 + 12]).expect("write");
    let (path, line, why) = parse_error(&dir);
    assert!(path.ends_with("proc/iomem"));
    assert_eq!(line, 10);
    assert!(why.contains("truncated"), "{why}");
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn binary_data_is_refused_with_its_line() {
    let dir = snapshot("binary");
    let mut data = b"00000000-0000ffff : reserved\n".to_vec();
    data.extend((0u8..=255).cycle().take(4096));
    data.push(b'\n');
    std::fs::write(dir.join("proc/ioports"), &data).expect("write");
    let (path, line, _) = parse_error(&dir);
    assert!(path.ends_with("proc/ioports"));
    assert_eq!(line, 2);

    // The ELF header of a binary in place of /proc/interrupts.
    std::fs::write(dir.join("proc/ioports"), real("proc/ioports")).expect("write");
    std::fs::write(dir.join("proc/interrupts"), b"\x7fELF\x02\x01\x01\x00\n").expect("write");
    let (path, line, _) = parse_error(&dir);
    assert!(path.ends_with("proc/interrupts"));
    assert_eq!(line, 1);
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn a_100_mb_file_is_refused_after_the_cap() {
    let dir = snapshot("huge");
    let f = std::fs::File::create(dir.join("proc/interrupts")).expect("create");
    f.set_len(100 << 20).expect("a sparse 100 MB file");
    match HostMap::read_dir(&dir) {
        Err(HostError::TooLarge { path, limit }) => {
            assert!(path.ends_with("proc/interrupts"));
            assert_eq!(limit, PROC_LIMIT);
        }
        other => panic!("{other:?}"),
    }
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn an_endless_file_is_not_read_forever() {
    let dir = snapshot_with("endless", "proc/iomem", |p| {
        std::os::unix::fs::symlink("/dev/zero", p).expect("ln");
    });
    assert_eq!(
        read_error(&dir),
        ("proc/iomem", io::ErrorKind::InvalidInput)
    );
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn a_fifo_is_refused_without_waiting_for_a_writer() {
    let dir = snapshot_with("fifo", "proc/interrupts", |p| {
        let made = std::process::Command::new("mkfifo")
            .arg(p)
            .status()
            .expect("mkfifo runs");
        assert!(made.success());
    });
    assert_eq!(
        read_error(&dir),
        ("proc/interrupts", io::ErrorKind::InvalidInput)
    );
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn a_directory_where_a_file_was_expected() {
    let dir = snapshot_with("dir", "proc/iomem", |p| {
        std::fs::create_dir(p).expect("mkdir");
    });
    assert_eq!(
        read_error(&dir),
        ("proc/iomem", io::ErrorKind::IsADirectory)
    );
    std::fs::remove_dir_all(&dir).expect("clean up");
    // And the snapshot root itself.
    let file = std::env::temp_dir().join(format!("ioacct-bad-root-{}", std::process::id()));
    std::fs::write(&file, b"x").expect("write");
    assert!(matches!(
        HostMap::read_dir(&file),
        Err(HostError::NotADirectory(p)) if p == file
    ));
    std::fs::remove_file(&file).expect("clean up");
}

#[test]
fn huge_numbers_are_refused() {
    let dir = snapshot("numbers");
    std::fs::write(
        dir.join("proc/iomem"),
        b"00000000-00000fff : reserved\n100000000000000000-100000000000000fff : System RAM\n",
    )
    .expect("write");
    let (_, line, why) = parse_error(&dir);
    assert_eq!(line, 2);
    assert!(why.contains("hex digits"), "{why}");
    std::fs::write(dir.join("proc/iomem"), real("proc/iomem")).expect("write");
    std::fs::write(
        dir.join("proc/ioports"),
        b"0000-1ffffffff : PCI Bus 0000:00\n",
    )
    .expect("write");
    let (path, line, _) = parse_error(&dir);
    assert!(path.ends_with("proc/ioports"));
    assert_eq!(line, 1);
    std::fs::write(dir.join("proc/ioports"), real("proc/ioports")).expect("write");
    std::fs::write(
        dir.join("proc/interrupts"),
        b"   CPU0\n 4294967296:  1  IO-APIC   2-edge      timer\n",
    )
    .expect("write");
    let (_, line, _) = parse_error(&dir);
    assert_eq!(line, 2);
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn names_with_control_bytes_are_escaped() {
    let dir = snapshot("names");
    std::fs::write(
        dir.join("proc/ioports"),
        b"0000-0cf7 : PCI Bus 0000:00\n  03f8-03ff : ser\x1b[2Jial \xff\n",
    )
    .expect("write");
    let m = HostMap::read_dir(&dir).expect("a name may hold any byte");
    let ports = m.ioports.expect("read");
    assert_eq!(ports[1].name, "ser\\x1b[2Jial \\xff");
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn missing_parts_are_gaps_and_the_rest_is_used() {
    let dir = snapshot("partial");
    std::fs::remove_file(dir.join("proc/interrupts")).expect("rm");
    std::fs::write(dir.join("proc/cpuinfo"), b"").expect("truncate");
    std::fs::write(dir.join("proc/ioports"), b"").expect("truncate");
    let m = HostMap::read_dir(&dir).expect("partial snapshots read");
    assert!(m.iomem.is_some());
    assert!(m.ioports.is_none() && m.interrupts.is_none() && m.pci.is_none());
    let gaps: Vec<(String, &str)> = m
        .gaps
        .iter()
        .map(|g| {
            let p = g
                .path
                .strip_prefix(&dir)
                .expect("inside")
                .to_string_lossy()
                .to_string();
            (p, g.why.split(':').next().unwrap_or(""))
        })
        .collect();
    assert_eq!(
        gaps,
        [
            ("proc/ioports".to_string(), "empty"),
            ("proc/interrupts".to_string(), "missing"),
            ("proc/cpuinfo".to_string(), "no `address sizes` line"),
            ("sys/bus/pci/devices".to_string(), "missing"),
        ]
    );
    assert!(m.gaps[1].why.contains("not checked"));
    std::fs::remove_dir_all(&dir).expect("clean up");
}

fn pci_dir(dir: &Path) -> PathBuf {
    let p = dir.join("sys/bus/pci/devices");
    std::fs::create_dir_all(&p).expect("mkdir");
    p
}

#[test]
fn a_sysfs_tree_with_too_many_entries_is_refused() {
    let dir = snapshot("many");
    let devs = pci_dir(&dir);
    for i in 0..=MAX_DEVICES {
        std::fs::File::create(devs.join(format!("e{i}"))).expect("create");
    }
    match HostMap::read_dir(&dir) {
        Err(HostError::TooMany { path, limit }) => {
            assert_eq!(path, devs);
            assert_eq!(limit, MAX_DEVICES);
        }
        other => panic!("{other:?}"),
    }
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn a_symlink_loop_in_sysfs_is_an_error_not_a_hang() {
    let dir = snapshot("loop");
    let devs = pci_dir(&dir);
    std::os::unix::fs::symlink("0000:00:01.0", devs.join("0000:00:01.0")).expect("ln");
    match HostMap::read_dir(&dir) {
        Err(HostError::Read { path, .. }) => {
            assert!(
                path.starts_with(devs.join("0000:00:01.0")),
                "{}",
                path.display()
            );
        }
        other => panic!("{other:?}"),
    }
    // A driver link pointing at itself is a name, not a loop to follow.
    std::fs::remove_file(devs.join("0000:00:01.0")).expect("rm");
    let d = devs.join("0000:00:01.0");
    std::fs::create_dir(&d).expect("mkdir");
    std::os::unix::fs::symlink("driver", d.join("driver")).expect("ln");
    let m = HostMap::read_dir(&dir).expect("reads");
    assert_eq!(
        m.device(&ioacct_check::pci::Bdf::parse("00:01.0").expect("bdf"))
            .and_then(|d| d.driver.clone())
            .as_deref(),
        Some("driver")
    );
    assert_eq!(m.gaps.len(), 2, "{:?}", m.gaps); // no resource, no irq
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn sysfs_entries_that_are_not_the_kernels() {
    let dir = snapshot("sysfs");
    let devs = pci_dir(&dir);
    std::fs::create_dir(devs.join("not-a-device")).expect("mkdir");
    assert!(matches!(
        HostMap::read_dir(&dir),
        Err(HostError::Invalid { path, .. }) if path.ends_with("not-a-device")
    ));
    std::fs::remove_dir(devs.join("not-a-device")).expect("rm");
    let d = devs.join("0000:00:02.0");
    std::fs::create_dir(&d).expect("mkdir");
    std::fs::write(
        d.join("resource"),
        b"0x00000000e0000000 0x00000000efffffff\n",
    )
    .expect("write");
    let (path, line, _) = parse_error(&dir);
    assert!(path.ends_with("0000:00:02.0/resource"));
    assert_eq!(line, 1);
    std::fs::write(
        d.join("resource"),
        b"0x00000000e0000000 0x00000000efffffff 0x200\n",
    )
    .expect("write");
    std::fs::write(d.join("iommu_group"), b"seven\n").expect("write");
    assert!(matches!(
        HostMap::read_dir(&dir),
        Err(HostError::Invalid { path, .. }) if path.ends_with("iommu_group")
    ));
    std::fs::write(d.join("iommu_group"), b"7\n").expect("write");
    std::fs::write(d.join("irq"), b"-1\n").expect("write");
    let (path, _, _) = parse_error(&dir);
    assert!(path.ends_with("irq"));
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn errors_name_the_file_and_line_when_shown() {
    let e = HostError::Parse {
        path: PathBuf::from("snap/proc/iomem"),
        line: 7,
        why: "start 0x10 after end 0x1".into(),
    };
    assert_eq!(e.to_string(), "snap/proc/iomem:7: start 0x10 after end 0x1");
    let e = HostError::TooLarge {
        path: PathBuf::from("snap/proc/iomem"),
        limit: PROC_LIMIT,
    };
    assert!(e
        .to_string()
        .starts_with("snap/proc/iomem: larger than 16777216 bytes"));
}

#[test]
fn missing_attributes_are_one_gap_each_however_many_functions() {
    let dir = snapshot("attrs");
    let devs = pci_dir(&dir);
    for f in 0..5 {
        let d = devs.join(format!("0000:00:03.{f}"));
        std::fs::create_dir(&d).expect("mkdir");
        std::fs::write(
            d.join("resource"),
            b"0x0000000000000000 0x0000000000000000 0x0000000000000000\n",
        )
        .expect("write");
    }
    let m = HostMap::read_dir(&dir).expect("reads");
    assert_eq!(m.pci.as_ref().map(Vec::len), Some(5));
    assert_eq!(m.gaps.len(), 1, "{:?}", m.gaps);
    assert!(m.gaps[0].path.ends_with("0000:00:03.0/irq"));
    assert!(
        m.gaps[0].why.contains("for 4 more functions"),
        "{}",
        m.gaps[0].why
    );
    std::fs::remove_dir_all(&dir).expect("clean up");
}
