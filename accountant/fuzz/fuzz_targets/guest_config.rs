//! Guest configurations (`ioacct check`): Xen xl.cfg and libvirt domain XML
//! (the text decides which, as the command does). Any input either parses
//! or is a typed error naming its line; what parses is judged — alone and
//! beside a second copy of itself, so every resource it asks for conflicts —
//! through the accountant without a host map, which must not panic, and the
//! trace the judge ran must replay to the same verdicts.
#![no_main]

use std::path::PathBuf;
use std::sync::Arc;

use accountant::trace::Replay;
use accountant::TrackerKind;
use ioacct_check::guest;
use ioacct_check::host::HvReserve;
use ioacct_check::judge::{check, Input};
use ioacct_check::share::Shares;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    let Ok(g) = guest::parse(Arc::new(PathBuf::from("a.cfg")), text) else {
        return;
    };
    let guests = [g.clone(), g];
    let (hv, shares) = (HvReserve::default(), Shares::default());
    for n in [1, 2] {
        let input = Input {
            guests: &guests[..n],
            host: None,
            hv: &hv,
            shares: &shares,
            keep_trace: true,
        };
        let Ok(out) = check(input) else {
            continue;
        };
        // The emitted trace replays to the lines the judge recorded.
        let mut replay = Replay::new(TrackerKind::default());
        let mut n = 0;
        for line in out.trace_text().lines() {
            let want = line.split_once("#=> ").map(|(_, w)| w);
            match replay.feed(line) {
                Ok(Some(got)) => {
                    assert_eq!(Some(got.as_str()), want, "{line}");
                    n += 1;
                }
                Ok(None) => {}
                Err(e) => panic!("the judge's trace does not parse: {line}: {e}"),
            }
        }
        assert_eq!(n, out.trace.len(), "every op of the judge's trace replays");
    }
});
