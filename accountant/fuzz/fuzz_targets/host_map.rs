//! The host map's parsers (`ioacct check`): `/proc/iomem` and
//! `/proc/ioports`, `/proc/interrupts`, sysfs `resource` and `irq`, and
//! `/proc/cpuinfo`. The first byte picks the parser, the rest is the file.
//! Any input either parses or is a typed error; what parses as a resource
//! tree is then used as a host map (claims, RAM, reservations, names), which
//! must not panic either.
#![no_main]

use std::path::Path;

use accountant::Space;
use ioacct_check::host::{cpuinfo, interrupts, resources, sysfs, HostMap, HvReserve};
use libfuzzer_sys::fuzz_target;

/// The reader's own cap on a `/proc` file, far above any input here.
const MAX: u64 = 16 << 20;

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let path = Path::new("fuzz");
    match which % 5 {
        0 | 1 => {
            let Ok(entries) = resources::parse(path, body, MAX) else {
                return;
            };
            let mut map = HostMap::default();
            if which % 5 == 0 {
                map.iomem = Some(entries);
            } else {
                map.ioports = Some(entries);
            }
            let _ = map.ram_frames();
            let _ = map.dom0_claims();
            let _ = map.hv_reservations(&HvReserve::default());
            for unit in [0, 0x3f8, 0xfee00, u64::from(u32::MAX)] {
                let _ = map.name_of(Space::IoMem, unit);
                let _ = map.name_of(Space::IoPort, unit);
            }
        }
        2 => {
            if let Ok(mut rows) = interrupts::parse(path, body) {
                interrupts::assign_gsis(&mut rows, 1);
                interrupts::assign_gsis(&mut rows, 3);
            }
        }
        3 => {
            let _ = sysfs::parse_resource(path, body);
            let _ = sysfs::parse_irq(path, body);
        }
        _ => {
            let _ = cpuinfo::phys_bits(path, body);
        }
    }
});
