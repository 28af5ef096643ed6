//! Boot options (SPEC "Boot options"): any line either parses or is refused
//! with a typed error, and a parsed one either boots an accountant whose
//! invariants hold or is refused as a whole.
#![no_main]

use accountant::{Accountant, BootOptions, TrackerKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(data);
    let Ok(opts) = BootOptions::parse(&line) else {
        return;
    };
    if let Ok(a) = Accountant::boot(&opts, TrackerKind::SlabExtent) {
        if let Err(v) = a.check_invariants() {
            panic!("booted from {line:?} with a broken invariant: {v:?}");
        }
    }
});
