//! The trace language (SPEC section 3) end to end: every line of the input
//! is parsed and replayed against the accountant, and the accountant's
//! invariants (`check_invariants`) are checked after every op. A panic, a
//! hang or an invariant violation is a finding.
#![no_main]

use accountant::trace::Replay;
use accountant::TrackerKind;
use libfuzzer_sys::fuzz_target;

/// Lines replayed per input: bounds the time of one run.
const MAX_LINES: usize = 256;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the tracker (and a page limit, for the
    // allocation-failure paths), so all of them are searched.
    let Some((&pick, text)) = data.split_first() else {
        return;
    };
    let tracker = match pick % 3 {
        0 => TrackerKind::SlabExtent,
        1 => TrackerKind::SlabPage,
        _ => TrackerKind::XmallocPage,
    };
    let limit = (pick & 0x80 != 0).then_some(u64::from(pick & 0x0f));
    let mut replay = Replay::with_page_limit(tracker, limit);
    for line in text.split(|b| *b == b'\n').take(MAX_LINES) {
        match replay.feed_bytes(line) {
            Err(_) => return,
            Ok(None) => {}
            Ok(Some(out)) => {
                let Some(a) = replay.accountant() else {
                    panic!("{line:?} answered {out:?} before boot");
                };
                if let Err(v) = a.check_invariants() {
                    panic!("invariant broken after {line:?} -> {out}: {v:?}");
                }
            }
        }
    }
});
