//! The host map on real hosts' files (`tests/data/hosts`, provenance beside
//! each): parsers, gaps, claims and names, with expected values read from
//! the files themselves.

use std::path::PathBuf;

mod common;

use accountant::Space;
use common::{host, scratch};
use ioacct_check::host::{capture_from, Claim, HostError, HostMap, HvReserve, SharedPage};
use ioacct_check::pci::Bdf;

fn read(name: &str) -> HostMap {
    match HostMap::read_dir(&host(name)) {
        Ok(m) => m,
        Err(e) => panic!("{name}: {e}"),
    }
}

fn bdf(s: &str) -> Bdf {
    Bdf::parse(s).expect("a PCI address")
}

fn find(claims: &[Claim], space: Space, first: u64) -> Option<&Claim> {
    claims.iter().find(|c| c.space == space && c.first == first)
}

/// The name of the claim in `space` that starts at `first`.
fn name_at(claims: &[Claim], space: Space, first: u64) -> &str {
    match find(claims, space, first) {
        Some(c) => &c.name,
        None => panic!("no {space:?} claim starts at {first:#x}: {claims:?}"),
    }
}

fn covers(claims: &[Claim], space: Space, unit: u64) -> Option<&Claim> {
    claims
        .iter()
        .find(|c| c.space == space && c.first <= unit && unit <= c.last)
}

fn gap_paths(m: &HostMap) -> Vec<String> {
    m.gaps
        .iter()
        .map(|g| {
            let s = g.path.to_string_lossy();
            s.rsplit_once("/hosts/").map_or(s.to_string(), |(_, t)| {
                t.split_once('/').map_or(t, |x| x.1).to_string()
            })
        })
        .collect()
}

#[test]
fn each_unit_is_claimed_at_most_once() {
    for name in [
        "virtio-vm",
        "desktop-e1000e",
        "desktop-forcedeth",
        "server-hpsa-igb",
        "hyperv-vm",
        "qemu-unprivileged",
    ] {
        let m = read(name);
        for claims in [m.dom0_claims(), m.hv_reservations(&HvReserve::default())] {
            for w in claims.windows(2) {
                assert!(w[0].first <= w[0].last, "{name}: {:?}", w[0]);
                if w[0].space == w[1].space {
                    assert!(
                        w[0].last < w[1].first,
                        "{name}: {:?} overlaps {:?}",
                        w[0],
                        w[1]
                    );
                }
            }
        }
    }
}

#[test]
fn virtio_vm_the_build_machine() {
    let m = read("virtio-vm");
    assert!(m.gaps.is_empty(), "{:?}", m.gaps);
    assert_eq!(m.phys_bits, Some(48));
    assert_eq!(m.max_frame(), Some((1 << 36) - 1));
    let pci = m.pci.as_ref().expect("sysfs");
    assert_eq!(pci.len(), 6);
    let d1 = m.device(&bdf("00:01.0")).expect("0000:00:01.0");
    assert_eq!(d1.driver.as_deref(), Some("virtio-pci"));
    assert_eq!(
        (d1.bars[0].start, d1.bars[0].end),
        (0x40_0000_0000, 0x40_0007_ffff)
    );
    assert_eq!(m.device(&bdf("00:00.0")).expect("host bridge").driver, None);

    // proc/iomem: `00100000-bfffffff : System RAM`, `100000000-63fffffff : System RAM`.
    assert_eq!(
        m.ram_frames(),
        [(0x1, 0x9f), (0x100, 0xbffff), (0x10_0000, 0x63_ffff)]
    );
    // proc/interrupts line 4: ` 26: … IO-APIC   4-edge      ttyS0`.
    let tty = m
        .interrupts
        .iter()
        .flatten()
        .find(|r| r.irq == 26)
        .expect("irq 26");
    assert_eq!((tty.hwirq, tty.gsi, tty.span.line), (Some(4), Some(4), 4));
    assert_eq!(tty.actions, ["ttyS0"]);

    let (name, span) = m.name_of(Space::IoPort, 0x3f8).expect("a name");
    assert_eq!(name, "serial");
    assert_eq!(span.expect("a span").line, 13);
    let (name, _) = m
        .name_of(Space::IoMem, 0x40_0000_0000 >> 12)
        .expect("a name");
    assert_eq!(name, "0000:00:01.0 virtio-pci-modern");
    assert_eq!(m.name_of(Space::Irq, 4).expect("line 4").0, "ttyS0");
    assert_eq!(
        m.name_of(Space::IoMem, 0xfec00).expect("ioapic").0,
        "IOAPIC 0"
    );

    let hv = m.hv_reservations(&HvReserve::default());
    let console = find(&hv, Space::IoPort, 0x3f8).expect("console");
    assert_eq!((console.last, console.name.as_str()), (0x3ff, "serial"));
    let line = find(&hv, Space::Irq, 4).expect("the console's line");
    assert_eq!(line.name, "ttyS0");
    let ioapic = find(&hv, Space::IoMem, 0xfec00).expect("IOAPIC 0");
    assert_eq!(ioapic.name, "IOAPIC 0");
    assert_eq!(ioapic.span.as_ref().map(|s| s.line), Some(15));
    // This host's map names no Local APIC: the architectural page, said so.
    let lapic = find(&hv, Space::IoMem, 0xfee00).expect("Local APIC");
    assert!(lapic.name.contains("architectural"), "{}", lapic.name);
    assert!(lapic.span.is_none());

    let dom0 = m.dom0_claims();
    let serial = find(&dom0, Space::IoPort, 0x3f8).expect("dom0's serial");
    assert_eq!(serial.name, "serial");
    let bar = find(&dom0, Space::IoMem, 0x400_0000).expect("00:01.0's BAR");
    assert_eq!(bar.name, "0000:00:01.0 virtio-pci");
    assert_eq!(bar.device, Some(bdf("00:01.0")));
    assert_eq!(bar.last, 0x400_007f);
    // The platform's own ports and lines are not a driver's.
    for port in [0x20, 0x40, 0xa0, 0xcf8] {
        assert!(covers(&dom0, Space::IoPort, port).is_none(), "{port:#x}");
    }
    // MSI rows are not lines: irq 36 (virtio1-req.0) claims no line 36.
    assert!(covers(&dom0, Space::Irq, 36).is_none());
    assert!(m.shared_bar_pages().is_empty());
    assert!(m.iommu_groups().is_empty());
    let ecam = m.ecam_windows();
    assert_eq!(ecam.len(), 1);
    assert_eq!((ecam[0].first, ecam[0].last), (0xeec00, 0xeecff));
}

#[test]
fn desktop_e1000e_without_sysfs() {
    let m = read("desktop-e1000e");
    assert_eq!(gap_paths(&m), ["sys/bus/pci/devices"]);
    assert_eq!(m.phys_bits, Some(36));
    assert_eq!(m.ram_frames()[0], (0x10, 0x91)); // 00010000-000917ff

    let dom0 = m.dom0_claims();
    // iomem 31-32: `e1500000-e151ffff : 0000:00:19.0` / `e1000e`.
    let nic = find(&dom0, Space::IoMem, 0xe1500).expect("e1000e's BAR");
    assert_eq!(
        (nic.last, nic.name.as_str()),
        (0xe151f, "0000:00:19.0 e1000e")
    );
    assert_eq!(nic.span.as_ref().map(|s| s.line), Some(31));
    // ioports 36: `4040-405f : 0000:00:19.0`, no driver entry under it, but
    // the function's memory BARs show e1000e: its ports are dom0's too.
    let io = find(&dom0, Space::IoPort, 0x4040).expect("e1000e's I/O BAR");
    assert_eq!((io.last, io.name.as_str()), (0x405f, "0000:00:19.0 e1000e"));
    let amt = find(&dom0, Space::IoPort, 0x40a0).expect("AMT serial");
    assert_eq!(amt.name, "0000:00:16.3 serial");
    assert_eq!(name_at(&dom0, Space::IoPort, 0x3f8), "serial");
    assert_eq!(name_at(&dom0, Space::Irq, 1), "i8042");
    // `43: … IR-PCI-MSI-edge eth0` is an MSI, not line 43.
    assert!(covers(&dom0, Space::Irq, 43).is_none());
    // 0000:00:1f.3 has no driver: its BAR is nobody's.
    assert!(covers(&dom0, Space::IoPort, 0x4000).is_none());
    // The MMCONFIG window and RAM are not dom0's drivers'.
    assert!(covers(&dom0, Space::IoMem, 0xf8000).is_none());
    assert!(covers(&dom0, Space::IoMem, 0x1000).is_none());

    let fr = m.function_resources(&bdf("00:19.0")).expect("e1000e");
    assert_eq!(fr.frames, [(0xe1500, 0xe151f), (0xe1580, 0xe1580)]);
    assert_eq!(fr.ports, [(0x4040, 0x405f)]);
    assert_eq!(fr.driver.as_deref(), Some("e1000e"));
    assert!(m.function_resources(&bdf("00:05.0")).is_none());

    let hv = m.hv_reservations(&HvReserve::default());
    let hpet = find(&hv, Space::IoMem, 0xfed00).expect("HPET");
    assert_eq!(
        (hpet.name.as_str(), hpet.span.as_ref().map(|s| s.line)),
        ("HPET 0", Some(50))
    );
    assert_eq!(name_at(&hv, Space::IoMem, 0xfee00), "Local APIC");
    // Old format: `0: … IR-IO-APIC-edge timer` is line 0.
    assert_eq!(name_at(&hv, Space::Irq, 0), "timer");
    assert_eq!(
        m.name_of(Space::IoMem, 0xe1580).expect("name").0,
        "0000:00:19.0 e1000e"
    );
    let ecam = m.ecam_windows();
    assert_eq!((ecam[0].first, ecam[0].last), (0xf8000, 0xfbfff));
}

#[test]
fn desktop_forcedeth_three_functions_in_one_page() {
    let m = read("desktop-forcedeth");
    // iomem 40-47: fcf7f000 forcedeth, fcf7f400 forcedeth, fcf7f800
    // ehci_hcd (00:04.1), fcf7fc00 ehci_hcd (00:02.1).
    assert_eq!(
        m.shared_bar_pages(),
        [SharedPage {
            frame: 0xfcf7f,
            devices: vec![bdf("00:02.1"), bdf("00:04.1"), bdf("00:0a.0")],
        }]
    );
    let dom0 = m.dom0_claims();
    let page = covers(&dom0, Space::IoMem, 0xfcf7f).expect("the shared page");
    assert_eq!(page.name, "0000:00:0a.0 forcedeth");
    // `b3a9fc00-b3a9ffff : RAM buffer` shares frame b3a9f with System RAM:
    // a frame with any byte of RAM is RAM.
    assert!(m
        .ram_frames()
        .iter()
        .any(|&(a, b)| a <= 0xb3a9f && 0xb3a9f <= b));
    let parts = gap_paths(&m);
    assert_eq!(
        parts,
        [
            "proc/ioports",
            "proc/interrupts",
            "proc/cpuinfo",
            "sys/bus/pci/devices"
        ]
    );
}

#[test]
fn server_with_three_ioapics() {
    let m = read("server-hpsa-igb");
    let hv = m.hv_reservations(&HvReserve::default());
    let ioapics: Vec<(u64, &str)> = hv
        .iter()
        .filter(|c| c.name.starts_with("IOAPIC"))
        .map(|c| (c.first, c.name.as_str()))
        .collect();
    assert_eq!(
        ioapics,
        [
            (0xfec00, "IOAPIC 0"),
            (0xfec01, "IOAPIC 1"),
            (0xfec40, "IOAPIC 2")
        ]
    );
    let dom0 = m.dom0_claims();
    assert_eq!(name_at(&dom0, Space::IoMem, 0x92b00), "0000:02:00.1 igb");
    assert_eq!(name_at(&dom0, Space::IoMem, 0x92e00), "0000:03:00.0 hpsa");
    // DMAR units are the hypervisor's; bus windows, MMCONFIG, legacy
    // persistent memory's parent range are structural.
    for frame in [0xc7ffc, 0xfbffc, 0x80000, 0x90000, 0x3a0_0000] {
        assert!(covers(&dom0, Space::IoMem, frame).is_none(), "{frame:#x}");
    }
    assert!(m.ram_frames().contains(&(0x20_0000, 0x87_ffff)));
    // Without ioports the PIC is named by its role.
    assert_eq!(name_at(&hv, Space::IoPort, 0x20), "PIC (master)");
}

#[test]
fn hyperv_vm_without_an_ioapic_entry() {
    let m = read("hyperv-vm");
    let hv = m.hv_reservations(&HvReserve::default());
    let io = find(&hv, Space::IoMem, 0xfec00).expect("IO-APIC");
    assert!(io.name.contains("architectural"), "{}", io.name);
    assert_eq!(name_at(&hv, Space::IoMem, 0xfee00), "Local APIC");
    let lines: Vec<u32> = m.lines().iter().map(|(g, _)| *g).collect();
    assert_eq!(lines, [8, 9]);
    assert_eq!(m.phys_bits, Some(46));
}

#[test]
fn unprivileged_reads_are_a_gap_not_a_map() {
    let m = read("qemu-unprivileged");
    assert!(m.iomem.is_none() && m.ioports.is_none());
    let why: Vec<&str> = m.gaps.iter().map(|g| g.why.as_str()).collect();
    assert!(
        why[0].starts_with("shows zero addresses: read as root (CAP_SYS_ADMIN) or capture as root"),
        "{why:?}"
    );
    assert!(m.gaps[0].path.ends_with("proc/iomem"));
    assert!(m.gaps[1].path.ends_with("proc/ioports"));
    // What is there is used: the interrupt lines.
    let dom0 = m.dom0_claims();
    assert!(dom0.iter().all(|c| c.space == Space::Irq));
    // `0: … IO-APIC   2-edge  timer`: the PIT is on line 2, the hypervisor's.
    assert!(covers(&dom0, Space::Irq, 2).is_none());
    let hv = m.hv_reservations(&HvReserve::default());
    assert_eq!(name_at(&hv, Space::Irq, 2), "timer");
    assert_eq!(
        name_at(&dom0, Space::Irq, 0x15),
        "uhci_hcd:usb3, uhci_hcd:usb5, virtio1, enp0s1"
    );
}

#[test]
fn hv_reserve_policy_turns_items_off() {
    let m = read("virtio-vm");
    let none = m.hv_reservations(&HvReserve::parse("none").expect("none"));
    assert!(none.is_empty());
    let only = m.hv_reservations(&HvReserve::parse("console=0x2f8").expect("list"));
    assert_eq!(only.len(), 1);
    assert_eq!((only[0].first, only[0].last), (0x2f8, 0x2ff));
    assert_eq!(only[0].name, "console UART");
}

/// Writes the desktop's proc files into a new snapshot with 0000:00:19.0
/// bound to `driver` in sysfs (its /proc driver entries renamed as that
/// driver registers them) and 0000:00:1f.2 bound to ahci.
fn desktop_with(driver: &str, proc_name: Option<&str>) -> PathBuf {
    let src = host("desktop-e1000e");
    let dst = scratch(driver);
    std::fs::create_dir_all(dst.join("proc")).expect("mkdir");
    for f in ["iomem", "ioports", "interrupts", "cpuinfo"] {
        let text = std::fs::read_to_string(src.join("proc").join(f)).expect("read");
        let text: String = text
            .lines()
            .filter_map(|l| match (l.ends_with(" : e1000e"), proc_name) {
                (true, None) => None,
                (true, Some(n)) => Some(l.replace("e1000e", n)),
                (false, _) => Some(l.to_string()),
            })
            .map(|l| l + "\n")
            .collect();
        std::fs::write(dst.join("proc").join(f), text).expect("write");
    }
    let dev = |name: &str, resource: &str, irq: &str, drv: &str| {
        let d = dst.join("sys/bus/pci/devices").join(name);
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(d.join("resource"), resource).expect("write");
        std::fs::write(d.join("irq"), irq).expect("write");
        std::fs::write(d.join("driver"), format!("{drv}\n")).expect("write");
        std::fs::write(d.join("iommu_group"), "7\n").expect("write");
    };
    let z = "0x0000000000000000 0x0000000000000000 0x0000000000000000\n";
    dev(
        "0000:00:19.0",
        &format!(
            "0x00000000e1500000 0x00000000e151ffff 0x0000000000040200\n\
             0x00000000e1580000 0x00000000e1580fff 0x0000000000040200\n\
             0x0000000000004040 0x000000000000405f 0x0000000000040101\n{}",
            z.repeat(10)
        ),
        "20\n",
        driver,
    );
    dev(
        "0000:00:1f.2",
        &format!(
            "0x0000000000004090 0x0000000000004097 0x0000000000040101\n{}0x00000000e1540000 0x00000000e15407ff 0x0000000000040200\n{}",
            z.repeat(4),
            z.repeat(7)
        ),
        "19\n",
        "ahci",
    );
    dst
}

#[test]
fn a_function_held_for_a_guest_is_not_dom0s() {
    for (driver, proc_name) in [
        ("pciback", None),
        ("xen-pciback", None),
        ("pci-stub", None),
        ("vfio-pci", Some("vfio-pci")),
    ] {
        let dir = desktop_with(driver, proc_name);
        let m = HostMap::read_dir(&dir).expect("reads");
        let e1000e = m
            .iomem
            .iter()
            .flatten()
            .filter(|r| r.name == "e1000e")
            .count();
        assert_eq!(e1000e, 0, "{driver}: the driver's /proc entries are gone");
        let dom0 = m.dom0_claims();
        let fr = m.function_resources(&bdf("00:19.0")).expect("in sysfs");
        assert_eq!(fr.driver.as_deref(), Some(driver));
        assert_eq!(fr.frames, [(0xe1500, 0xe151f), (0xe1580, 0xe1580)]);
        assert_eq!(fr.line, Some(20));
        for &(a, b) in &fr.frames {
            for f in [a, b] {
                assert!(
                    covers(&dom0, Space::IoMem, f).is_none(),
                    "{driver}: frame {f:#x}"
                );
            }
        }
        assert!(covers(&dom0, Space::IoPort, 0x4040).is_none(), "{driver}");
        assert!(covers(&dom0, Space::Irq, 20).is_none(), "{driver}");
        assert!(dom0.iter().all(|c| c.device != Some(bdf("00:19.0"))));
        // The function still bound to ahci is dom0's, BAR and line.
        let ahci = find(&dom0, Space::IoMem, 0xe1540).expect("ahci's BAR");
        assert_eq!(ahci.name, "0000:00:1f.2 ahci");
        assert_eq!(ahci.span.as_ref().map(|s| s.line), Some(6));
        assert_eq!(name_at(&dom0, Space::Irq, 19), "0000:00:1f.2 ahci");
        assert_eq!(m.iommu_groups().get(&7).map(Vec::len), Some(2));
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
    // The same function bound to e1000e is dom0's.
    let dir = desktop_with("e1000e", Some("e1000e"));
    let m = HostMap::read_dir(&dir).expect("reads");
    let dom0 = m.dom0_claims();
    assert_eq!(name_at(&dom0, Space::IoMem, 0xe1500), "0000:00:19.0 e1000e");
    assert_eq!(
        find(&dom0, Space::IoPort, 0x4040).expect("e1000e").device,
        Some(bdf("00:19.0"))
    );
    std::fs::remove_dir_all(&dir).expect("clean up");
}

fn same_map(a: &HostMap, b: &HostMap) {
    let strip = |v: &Option<Vec<ioacct_check::host::Resource>>| {
        v.as_ref().map(|v| {
            v.iter()
                .map(|r| {
                    (
                        r.start,
                        r.end,
                        r.name.clone(),
                        r.depth,
                        r.parent,
                        r.span.line,
                    )
                })
                .collect::<Vec<_>>()
        })
    };
    assert_eq!(strip(&a.iomem), strip(&b.iomem));
    assert_eq!(strip(&a.ioports), strip(&b.ioports));
    let irqs = |m: &HostMap| {
        m.interrupts.as_ref().map(|v| {
            v.iter()
                .map(|r| (r.irq, r.chip.clone(), r.actions.clone(), r.gsi))
                .collect::<Vec<_>>()
        })
    };
    assert_eq!(irqs(a), irqs(b));
    let devs = |m: &HostMap| {
        m.pci.as_ref().map(|v| {
            v.iter()
                .map(|d| {
                    (
                        d.bdf,
                        d.bars.clone(),
                        d.irq,
                        d.driver.clone(),
                        d.iommu_group,
                    )
                })
                .collect::<Vec<_>>()
        })
    };
    assert_eq!(devs(a), devs(b));
    assert_eq!(a.phys_bits, b.phys_bits);
}

#[test]
fn a_capture_reads_back_as_the_map_it_copied() {
    for name in ["virtio-vm", "desktop-e1000e"] {
        let src = host(name);
        let dst = scratch("capture");
        let summary = capture_from(&src, &dst).expect("captures");
        let a = HostMap::read_dir(&src).expect("source");
        let b = HostMap::read_dir(&dst).expect("copy");
        same_map(&a, &b);
        assert_eq!(summary.gaps.len(), a.gaps.len());
        assert_eq!(summary.devices, a.pci.as_ref().map_or(0, Vec::len));
        // A second capture into the same directory is refused.
        assert!(matches!(
            capture_from(&src, &dst),
            Err(HostError::Invalid { .. })
        ));
        std::fs::remove_dir_all(&dst).expect("clean up");
    }
    // Symlinked driver/iommu_group (as on a live host) become plain files.
    let src = desktop_with("e1000e", Some("e1000e"));
    let dev = src.join("sys/bus/pci/devices/0000:00:19.0");
    std::fs::remove_file(dev.join("driver")).expect("rm");
    std::os::unix::fs::symlink("../../../bus/pci/drivers/e1000e", dev.join("driver")).expect("ln");
    std::fs::remove_file(dev.join("iommu_group")).expect("rm");
    std::os::unix::fs::symlink("../../../kernel/iommu_groups/12", dev.join("iommu_group"))
        .expect("ln");
    let dst = scratch("capture-links");
    capture_from(&src, &dst).expect("captures");
    let copy = dst.join("sys/bus/pci/devices/0000:00:19.0/driver");
    assert!(!std::fs::symlink_metadata(&copy)
        .expect("exists")
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read_to_string(&copy).expect("read"), "e1000e\n");
    let m = HostMap::read_dir(&dst).expect("reads");
    assert_eq!(
        m.device(&bdf("00:19.0")).and_then(|d| d.iommu_group),
        Some(12)
    );
    same_map(&HostMap::read_dir(&src).expect("source"), &m);
    std::fs::remove_dir_all(&src).expect("clean up");
    std::fs::remove_dir_all(&dst).expect("clean up");
}

#[test]
fn the_live_host_captures_and_reads_back() {
    let live = match HostMap::read_live() {
        Ok(m) => m,
        Err(e) => panic!("the live host map does not read: {e}"),
    };
    let dst = scratch("live");
    let summary = ioacct_check::host::capture(&dst).expect("captures");
    assert!(summary.files >= 3, "{summary:?}");
    let copy = HostMap::read_dir(&dst).expect("reads back");
    // The live host may change between the two reads (interrupt counts,
    // hot-plug), but not the shape of its map.
    assert_eq!(copy.iomem.is_some(), live.iomem.is_some());
    assert_eq!(
        copy.pci.as_ref().map(Vec::len),
        live.pci.as_ref().map(Vec::len)
    );
    assert_eq!(copy.phys_bits, live.phys_bits);
    std::fs::remove_dir_all(&dst).expect("clean up");
}

#[test]
fn without_sysfs_a_vfio_region_is_not_dom0s() {
    // vfio-pci requests a function's BARs under the name `vfio`.
    let dir = desktop_with("e1000e", Some("vfio"));
    std::fs::remove_dir_all(dir.join("sys")).expect("no sysfs");
    let m = HostMap::read_dir(&dir).expect("reads");
    let dom0 = m.dom0_claims();
    assert!(covers(&dom0, Space::IoMem, 0xe1500).is_none());
    assert!(covers(&dom0, Space::IoPort, 0x4040).is_none());
    assert_eq!(
        m.function_resources(&bdf("00:19.0"))
            .and_then(|f| f.driver)
            .as_deref(),
        Some("vfio")
    );
    // Its neighbour under ahci still is.
    assert_eq!(name_at(&dom0, Space::IoMem, 0xe1540), "0000:00:1f.2 ahci");
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn a_framebuffer_left_on_a_function_held_for_a_guest_is_dom0s() {
    // 0000:01:00.0 (the desktop's GPU) bound to pciback in sysfs while
    // iomem still shows `vesafb` under its first BAR (iomem lines 21-23).
    let dir = desktop_with("pciback", None);
    let d = dir.join("sys/bus/pci/devices/0000:01:00.0");
    std::fs::create_dir_all(&d).expect("mkdir");
    std::fs::write(
        d.join("resource"),
        "0x00000000d0000000 0x00000000dfffffff 0x000000000014220c\n",
    )
    .expect("write");
    std::fs::write(d.join("irq"), "0\n").expect("write");
    std::fs::write(d.join("driver"), "pciback\n").expect("write");
    let m = HostMap::read_dir(&dir).expect("reads");
    let dom0 = m.dom0_claims();
    let fb = covers(&dom0, Space::IoMem, 0xd0000).expect("vesafb's range");
    assert_eq!((fb.first, fb.last), (0xd0000, 0xd05af)); // d0000000-d05affff
    assert_eq!(fb.name, "0000:01:00.0 vesafb");
    assert_eq!(fb.device, Some(bdf("01:00.0")));
    // The rest of the BAR is not dom0's.
    assert!(covers(&dom0, Space::IoMem, 0xd05b0).is_none());
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn a_functions_bars_in_one_frame_are_that_frame_once() {
    // iomem 35, 41, 43: 0000:00:0a.0 has fcf7c000-fcf7cfff, fcf7f000-fcf7f00f
    // and fcf7f400-fcf7f4ff.
    let m = read("desktop-forcedeth");
    let fr = m.function_resources(&bdf("00:0a.0")).expect("forcedeth");
    assert_eq!(fr.frames, [(0xfcf7c, 0xfcf7c), (0xfcf7f, 0xfcf7f)]);
    assert_eq!(fr.driver.as_deref(), Some("forcedeth"));
    assert_eq!(fr.span.as_ref().map(|s| s.line), Some(35));
}

#[test]
fn gpu_on_vfio_with_vesafb_still_on_its_first_bar() {
    let m = read("gpu-vfio-vesafb");
    let dom0 = m.dom0_claims();
    // iomem 17-18: `90000000-9fffffff : 0000:01:00.0` / `vesafb`.
    let fb = covers(&dom0, Space::IoMem, 0x90000).expect("vesafb");
    assert_eq!((fb.first, fb.last), (0x90000, 0x9ffff));
    assert_eq!(fb.name, "0000:01:00.0 vesafb");
    assert_eq!(fb.span.as_ref().map(|s| s.line), Some(18));
    // iomem 19-24: the BARs vfio-pci holds are not dom0's.
    for frame in [0xa0000, 0xa1fff, 0xa2000, 0xa2fff, 0xa3080, 0xa3083] {
        assert!(covers(&dom0, Space::IoMem, frame).is_none(), "{frame:#x}");
    }
    // iomem 27-28: ahci is.
    assert_eq!(name_at(&dom0, Space::IoMem, 0xa3200), "0000:02:00.0 ahci");
    let fr = m.function_resources(&bdf("01:00.0")).expect("the GPU");
    assert_eq!(fr.driver.as_deref(), Some("vfio-pci"));
    assert_eq!(fr.frames, [(0x90000, 0xa2fff)]);
    assert_eq!(m.dom0_claims().len(), 2);
}
