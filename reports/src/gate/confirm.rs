//! Confirmation: a timing regression stands only if it reproduces in every
//! one of N fresh re-measurements of its metric family.
//!
//! The gate (`cargo xtask gate --confirm N`, a fresh quick run of the
//! working tree against the baseline) and the A/B run (`cargo xtask ab
//! --confirm N`, both sides re-run interleaved) differ only in how they
//! re-measure; [`confirm`] is the loop both run. A false alarm then needs
//! N + 1 independent unlucky runs; a real regression shows every time.

use super::{GateReport, Verdict};

/// The metric families (names before the first space of a finding's key)
/// of `keys`, sorted and without repeats: what one confirmation round
/// re-measures.
pub fn families(keys: &[String]) -> Vec<String> {
    let mut names: Vec<String> = keys
        .iter()
        .filter_map(|k| k.split_whitespace().next().map(str::to_owned))
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// Re-measures the families of `g`'s timing regressions up to `rounds`
/// times and clears ([`GateReport::settle`]) the ones that do not reproduce
/// in every round; `what` says in the closing note what was re-run.
///
/// `remeasure(round, index, family)` (rounds from 1, families from 0 within
/// a round) measures `family` afresh and returns its comparison, judged as
/// the original was. Only a fresh finding that is judged and clean (same
/// or better) clears a key; a missing or unjudged one counts as
/// reproduced. When `remeasure` fails, its error is pushed as a note and
/// every regression stands (no settling). With no regression or
/// `rounds == 0` nothing is re-run and nothing noted.
pub fn confirm<F>(g: &mut GateReport, rounds: usize, what: &str, mut remeasure: F)
where
    F: FnMut(usize, usize, &str) -> Result<GateReport, String>,
{
    let mut failing = g.timing_regressions();
    for round in 1..=rounds {
        if failing.is_empty() {
            break;
        }
        g.confirmations = round;
        let mut still = Vec::new();
        for (i, name) in families(&failing).iter().enumerate() {
            let again = match remeasure(round, i, name) {
                Ok(again) => again,
                Err(note) => {
                    g.notes.push(note);
                    return;
                }
            };
            for key in failing
                .iter()
                .filter(|k| k.split_whitespace().next() == Some(name.as_str()))
            {
                let cleared = again
                    .findings
                    .iter()
                    .find(|f| &f.key == key)
                    .is_some_and(|f| matches!(f.verdict, Verdict::Same | Verdict::Improvement));
                if !cleared {
                    still.push(key.clone());
                }
            }
        }
        failing = still;
    }
    if g.confirmations == 0 {
        return;
    }
    g.settle(&failing, what);
}
