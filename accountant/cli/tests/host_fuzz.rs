//! No input makes the host-map parsers panic: arbitrary bytes, and real
//! files cut, spliced and with bytes changed, each give a map or a typed
//! error.

use std::path::Path;

use ioacct_check::host::{cpuinfo, interrupts, resources, sysfs};
use proptest::prelude::*;

fn real(host: &str, rel: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/hosts")
        .join(host)
        .join(rel);
    std::fs::read(p).expect("test data")
}

/// Runs every parser on `data`; each either parses or says why not.
fn all_parsers(data: &[u8]) {
    let p = Path::new("f");
    if let Ok(v) = resources::parse(p, data, u64::MAX) {
        for r in &v {
            assert!(r.start <= r.end);
            assert!(r.parent.is_none_or(|i| i < v.len()));
        }
    }
    let _ = resources::parse(p, data, 0xffff_ffff);
    if let Ok(mut rows) = interrupts::parse(p, data) {
        interrupts::assign_gsis(&mut rows, 2);
        assert!(rows.windows(2).all(|w| w[0].irq <= w[1].irq));
    }
    if let Ok(bars) = sysfs::parse_resource(p, data) {
        assert!(bars.iter().all(|b| b.start <= b.end));
    }
    let _ = sysfs::parse_irq(p, data);
    let _ = cpuinfo::phys_bits(p, data);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        all_parsers(&data);
    }

    #[test]
    fn real_files_mangled(
        which in 0usize..6,
        cut in any::<prop::sample::Index>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
    ) {
        let (host, rel) = [
            ("desktop-e1000e", "proc/iomem"),
            ("desktop-e1000e", "proc/ioports"),
            ("desktop-e1000e", "proc/interrupts"),
            ("virtio-vm", "proc/interrupts"),
            ("virtio-vm", "sys/bus/pci/devices/0000:00:01.0/resource"),
            ("server-hpsa-igb", "proc/iomem"),
        ][which];
        let mut data = real(host, rel);
        for (at, b) in flips {
            let i = at.index(data.len());
            data[i] = b;
        }
        let keep = cut.index(data.len() + 1);
        data.truncate(keep);
        all_parsers(&data);
    }
}
