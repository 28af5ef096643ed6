//! Differential and fault-injection tests of the three trackers against a
//! naive per-frame model.

use super::per_page::PerPage;
use super::slab_extent::{self, SlabExtent};
use super::*;
use crate::mem::PageSource;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::vec::Vec;

/// Test access to the concrete trackers.
trait Inspect: Tracker {
    fn check(&self) -> Result<(), &'static str>;
    fn force_count(&mut self, dom: DomId, frame: u64, count: u32);
}

impl<P: per_page::RecordPool> Inspect for PerPage<P> {
    fn check(&self) -> Result<(), &'static str> {
        PerPage::check(self)
    }
    fn force_count(&mut self, dom: DomId, frame: u64, count: u32) {
        PerPage::force_count(self, dom, frame, count)
    }
}

impl Inspect for SlabExtent {
    fn check(&self) -> Result<(), &'static str> {
        SlabExtent::check(self)
    }
    fn force_count(&mut self, dom: DomId, frame: u64, count: u32) {
        SlabExtent::force_count(self, dom, frame, count)
    }
}

fn make(kind: TrackerKind, limit: Option<u64>) -> std::boxed::Box<dyn Inspect> {
    let src = match limit {
        Some(n) => PageSource::with_limit(n),
        None => PageSource::new(),
    };
    match kind {
        TrackerKind::XmallocPage => std::boxed::Box::new(xmalloc_page::new(src)),
        TrackerKind::SlabPage => std::boxed::Box::new(slab_page::new(src)),
        TrackerKind::SlabExtent => std::boxed::Box::new(slab_extent::new(src)),
    }
}

fn d(n: u16) -> DomId {
    DomId::new(u64::from(n)).expect("test domain ids are small")
}

type Model = BTreeMap<(u16, u64), u32>;

const DOMS: u16 = 3;

/// Per-frame counts as reported by `runs`, checking order and clipping.
fn dump(t: &dyn Tracker, lo: u64, hi: u64) -> Result<Model, TestCaseError> {
    let mut m = Model::new();
    for dom in 0..DOMS {
        let mut prev: Option<u64> = None;
        let mut bad = None;
        t.runs(d(dom), lo, hi, &mut |r| {
            if r.first > r.last
                || r.first < lo
                || r.last > hi
                || r.count == 0
                || prev.is_some_and(|p| p >= r.first)
            {
                bad = Some(r);
            }
            prev = Some(r.last);
            for f in r.first..=r.last {
                m.insert((dom, f), r.count);
            }
        });
        prop_assert!(bad.is_none(), "bad run {:?} from {:?}", bad, t.kind());
    }
    Ok(m)
}

fn model_slice(m: &Model, lo: u64, hi: u64) -> Model {
    m.iter()
        .filter(|((_, f), _)| (lo..=hi).contains(f))
        .map(|(k, v)| (*k, *v))
        .collect()
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Map(u16, u64, u64),
    /// `map_counted` with this room for new runs.
    MapCounted(u16, u64, u64, u64),
    Unmap(u16, u64, u64),
    UnmapCounted(u16, u64, u64),
    Clear(u16, u64, u64),
}

fn op_strategy(frames: u64, max_len: u64) -> impl Strategy<Value = Op> {
    (0u8..14, 0..DOMS, 0..frames, 1..=max_len, 0u64..3).prop_map(move |(k, dom, a, len, room)| {
        let b = (a + len - 1).min(frames - 1);
        match k {
            0..=2 => Op::Map(dom, a, b),
            3..=5 => Op::MapCounted(dom, a, b, room),
            6..=8 => Op::Unmap(dom, a, b),
            9..=11 => Op::UnmapCounted(dom, a, b),
            _ => Op::Clear(dom, a, b),
        }
    })
}

/// An op's result: `Some` change of runs for the counted ops.
type OpResult = Result<Option<RunChange>, MapRefusal>;

/// Maximal runs of equal non-zero count of `dom` within `lo..=hi`, frame
/// by frame.
fn model_runs(m: &Model, dom: u16, lo: u64, hi: u64) -> u64 {
    let c = |f: u64| m.get(&(dom, f)).copied().unwrap_or(0);
    (lo..=hi)
        .filter(|&f| c(f) != 0 && (f == lo || c(f - 1) != c(f)))
        .count() as u64
}

/// The runs within one frame of `a..=b` before and after adding `delta`
/// to its counts (saturating), frame by frame.
fn model_change(m: &Model, dom: u16, a: u64, b: u64, delta: i64) -> RunChange {
    let (lo, hi) = (a.saturating_sub(1), b + 1);
    let mut after = m.clone();
    for f in a..=b {
        let c = after.get(&(dom, f)).copied().unwrap_or(0);
        let n = if delta > 0 {
            c.saturating_add(1)
        } else {
            c.saturating_sub(1)
        };
        if n == 0 {
            after.remove(&(dom, f));
        } else {
            after.insert((dom, f), n);
        }
    }
    RunChange {
        before: model_runs(m, dom, lo, hi),
        after: model_runs(&after, dom, lo, hi),
    }
}

/// What the model says an op does: result and removed runs (per frame).
fn apply_model(m: &mut Model, op: Op) -> (OpResult, Model) {
    let mut removed = Model::new();
    let mut change = None;
    match op {
        Op::Map(dom, a, b) | Op::MapCounted(dom, a, b, _) => {
            if let Op::MapCounted(_, _, _, room) = op {
                let c = model_change(m, dom, a, b, 1);
                // The room is judged before the tracker's own errors.
                if c.added() > room {
                    return (Err(MapRefusal::Runs(c)), removed);
                }
                change = Some(c);
            }
            for f in a..=b {
                if m.get(&(dom, f)) == Some(&u32::MAX) {
                    return (Err(TrackError::Overflow { frame: f }.into()), removed);
                }
            }
            for f in a..=b {
                *m.entry((dom, f)).or_insert(0) += 1;
            }
        }
        Op::Unmap(dom, a, b) | Op::UnmapCounted(dom, a, b) => {
            for f in a..=b {
                if !m.contains_key(&(dom, f)) {
                    return (Err(TrackError::NotMapped { frame: f }.into()), removed);
                }
            }
            if let Op::UnmapCounted(..) = op {
                change = Some(model_change(m, dom, a, b, -1));
            }
            for f in a..=b {
                let c = m.get_mut(&(dom, f)).expect("checked above");
                *c -= 1;
                if *c == 0 {
                    m.remove(&(dom, f));
                }
            }
        }
        Op::Clear(dom, a, b) => {
            for f in a..=b {
                if let Some(c) = m.remove(&(dom, f)) {
                    removed.insert((dom, f), c);
                }
            }
        }
    }
    (Ok(change), removed)
}

fn apply_tracker(t: &mut dyn Inspect, op: Op) -> Result<(OpResult, Model), TestCaseError> {
    let mut removed = Model::new();
    let r = match op {
        Op::Map(dom, a, b) => t.map(d(dom), a, b).map(|()| None).map_err(Into::into),
        Op::MapCounted(dom, a, b, room) => t.map_counted(d(dom), a, b, room).map(Some),
        Op::Unmap(dom, a, b) => t.unmap(d(dom), a, b).map(|()| None).map_err(Into::into),
        Op::UnmapCounted(dom, a, b) => t.unmap_counted(d(dom), a, b).map(Some).map_err(Into::into),
        Op::Clear(dom, a, b) => {
            let mut prev: Option<u64> = None;
            let mut ordered = true;
            t.clear(d(dom), a, b, &mut |r| {
                ordered &= prev.is_none_or(|p| p < r.first) && r.first >= a && r.last <= b;
                prev = Some(r.last);
                for f in r.first..=r.last {
                    removed.insert((dom, f), r.count);
                }
            });
            prop_assert!(ordered, "clear reported runs out of order or unclipped");
            Ok(None)
        }
    };
    Ok((r, removed))
}

/// Drives all three trackers and the model in lockstep.
fn run_lockstep(ops: &[Op], frames: u64, limit: Option<u64>) -> Result<u64, TestCaseError> {
    let mut no_memory = 0u64;
    let mut ts: Vec<_> = TrackerKind::ALL.iter().map(|&k| make(k, limit)).collect();
    let mut model = Model::new();
    for &op in ops {
        let mut agreed = None;
        for t in ts.iter_mut() {
            let before = dump(&**t, 0, frames)?;
            let stats_before = t.stats();
            // Under a page limit the trackers' states may differ (one failed
            // where another did not), so each is judged from its own state.
            let (want, want_removed) = apply_model(&mut before.clone(), op);
            let (got, removed) = apply_tracker(&mut **t, op)?;
            t.check().map_err(TestCaseError::fail)?;
            let after = dump(&**t, 0, frames)?;
            if got == Err(MapRefusal::Track(TrackError::NoMemory)) {
                no_memory += 1;
                prop_assert!(
                    limit.is_some(),
                    "{:?} ran out of memory without a limit",
                    t.kind()
                );
                prop_assert!(
                    want.is_ok(),
                    "{:?}: validation must come before allocation",
                    t.kind()
                );
                prop_assert_eq!(
                    &after,
                    &before,
                    "{:?}: failed {:?} changed the runs",
                    t.kind(),
                    op
                );
                let s = t.stats();
                prop_assert_eq!(
                    (s.records, s.record_bytes, s.pages),
                    (
                        stats_before.records,
                        stats_before.record_bytes,
                        stats_before.pages
                    ),
                    "{:?}: failed {:?} changed the allocator",
                    t.kind(),
                    op
                );
                continue;
            }
            prop_assert_eq!(got, want, "{:?} result of {:?}", t.kind(), op);
            prop_assert_eq!(
                &removed,
                &want_removed,
                "{:?} removed runs of {:?}",
                t.kind(),
                op
            );
            if got.is_err() {
                prop_assert_eq!(
                    &after,
                    &before,
                    "{:?}: failed {:?} changed the runs",
                    t.kind(),
                    op
                );
                let s = t.stats();
                prop_assert_eq!(
                    (s.records, s.pages, s.allocations),
                    (
                        stats_before.records,
                        stats_before.pages,
                        stats_before.allocations
                    ),
                    "{:?}: failed {:?} changed the allocator",
                    t.kind(),
                    op
                );
            }
            let mut m2 = before.clone();
            let _ = apply_model(&mut m2, op);
            prop_assert_eq!(&after, &m2, "{:?} state after {:?}", t.kind(), op);
            if limit.is_none() {
                if let Some(a) = &agreed {
                    prop_assert_eq!(a, &after, "trackers disagree after {:?}", op);
                }
            }
            agreed = Some(after);
        }
        if limit.is_none() {
            let _ = apply_model(&mut model, op);
            for t in &ts {
                prop_assert_eq!(&dump(&**t, 0, frames)?, &model);
                // A sub-range query reports exactly the model's slice.
                prop_assert_eq!(dump(&**t, 5, 20)?, model_slice(&model, 5, 20));
            }
        }
    }
    // Whole-domain clears leave nothing, and (past the kept spare slab and
    // the extent tracker's spare record) return the pages.
    for t in ts.iter_mut() {
        for dom in 0..DOMS {
            t.clear(d(dom), 0, u64::MAX >> 24, &mut |_| {});
        }
        prop_assert!(dump(&**t, 0, frames)?.is_empty());
        t.check().map_err(TestCaseError::fail)?;
        // At most the kept empty slab and the page of the spare record.
        prop_assert!(
            t.stats().pages <= crate::mem::KEEP_EMPTY + t.stats().records,
            "{:?} kept {} pages",
            t.kind(),
            t.stats().pages
        );
        prop_assert!(t.stats().records <= 1);
    }
    Ok(no_memory)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn trackers_match_model(ops in proptest::collection::vec(op_strategy(48, 12), 1..120)) {
        prop_assert_eq!(run_lockstep(&ops, 48, None)?, 0);
    }

}

#[test]
fn extent_fragmentation_hits_the_limit_cleanly() {
    // Every other frame mapped twice: 2 records per 2 frames; one page holds
    // 84 extent records, so 2 pages run out.
    let mut t = make(TrackerKind::SlabExtent, Some(2));
    let dom = d(1);
    t.map(dom, 0, 999).expect("one record");
    let mut failed_at = None;
    for f in (0..1000).step_by(2) {
        let before = dump(&*t, 0, 1000).expect("dump");
        match t.map(dom, f, f) {
            Ok(()) => {}
            Err(e) => {
                assert_eq!(e, TrackError::NoMemory);
                assert_eq!(dump(&*t, 0, 1000).expect("dump"), before);
                failed_at = Some(f);
                break;
            }
        }
        t.check().expect("consistent");
    }
    let f = failed_at.expect("2 pages cannot hold 1000 records");
    assert!(f > 100, "failed too early at {f}");
    assert!(t.stats().pages <= 2);
    // Unmapping and clearing still work at the limit (a clear inside one
    // record uses the spare).
    t.clear(dom, 1, 1, &mut |_| {});
    t.check().expect("consistent");
    t.clear(dom, 0, 999, &mut |_| {});
    assert!(!t.any(dom, 0, 999));
    t.check().expect("consistent");
}

#[test]
fn unmap_in_the_middle_never_fails_at_the_limit() {
    for kind in TrackerKind::ALL {
        let mut t = make(kind, Some(1));
        let dom = d(1);
        // Fill the page: map single frames with gaps until the limit refuses.
        let mut mapped = Vec::new();
        let mut f = 0u64;
        while t.map(dom, f, f + 9).is_ok() {
            mapped.push(f);
            f += 11;
        }
        assert!(!mapped.is_empty(), "{kind:?}: nothing fits in one page");
        assert_eq!(t.map(dom, f, f + 9), Err(TrackError::NoMemory));
        // Every unmap of a middle frame splits an extent: none may fail.
        for &m in &mapped {
            t.unmap(dom, m + 5, m + 5).expect("an unmap never runs out");
            t.unmap(dom, m + 2, m + 2).expect("an unmap never runs out");
            t.check().expect("consistent");
        }
        let left: u64 = {
            let mut n = 0;
            t.runs(dom, 0, f, &mut |r| n += r.last - r.first + 1);
            n
        };
        assert_eq!(left, 8 * mapped.len() as u64, "{kind:?}");
        for &m in &mapped {
            t.unmap(dom, m, m + 1).expect("mapped");
            t.unmap(dom, m + 3, m + 4).expect("mapped");
            t.unmap(dom, m + 6, m + 9).expect("mapped");
        }
        assert!(!t.any(dom, 0, f), "{kind:?}");
        t.check().expect("consistent");
    }
}

#[test]
fn overflow_is_reported_and_changes_nothing() {
    for kind in TrackerKind::ALL {
        let mut t = make(kind, None);
        let dom = d(2);
        t.map(dom, 10, 20).expect("fresh");
        t.map(dom, 12, 13).expect("second use");
        // Extent records hold 12..=13 together; per-page ones one each.
        t.force_count(dom, 12, u32::MAX);
        t.force_count(dom, 13, u32::MAX);
        t.check().expect("still canonical");
        let before = dump(&*t, 0, 30).expect("dump");
        assert_eq!(
            t.map(dom, 5, 25),
            Err(TrackError::Overflow { frame: 12 }),
            "{kind:?}"
        );
        assert_eq!(dump(&*t, 0, 30).expect("dump"), before, "{kind:?}");
        assert_eq!(
            t.unmap(dom, 9, 11),
            Err(TrackError::NotMapped { frame: 9 }),
            "{kind:?}"
        );
        assert_eq!(
            t.unmap(dom, 15, 21),
            Err(TrackError::NotMapped { frame: 21 }),
            "{kind:?}"
        );
        assert_eq!(
            t.unmap(d(0), 15, 15),
            Err(TrackError::NotMapped { frame: 15 }),
            "{kind:?}"
        );
        t.map(dom, 14, 20).expect("no overflow there");
        assert_eq!(dump(&*t, 0, 30).expect("dump")[&(2, 14)], 2);
    }
}

#[test]
fn irq_lines_and_top_frames() {
    let top = 0xff_ffff_ffff;
    for kind in TrackerKind::ALL {
        let mut t = new_tracker(kind);
        t.map(DomId::DOM0, 1023, 1023).expect("irq line");
        t.map(DomId::DOM0, top - 3, top).expect("top frames");
        t.unmap(DomId::DOM0, top, top).expect("mapped");
        let mut runs = Vec::new();
        t.runs(DomId::DOM0, 0, top, &mut |r| runs.push(r));
        assert_eq!(
            runs,
            [
                Run {
                    first: 1023,
                    last: 1023,
                    count: 1
                },
                Run {
                    first: top - 3,
                    last: top - 1,
                    count: 1
                }
            ],
            "{kind:?}"
        );
        assert!(t.any(DomId::DOM0, 1000, 1023));
        assert!(!t.any(DomId::DOM0, 0, 1022));
        assert_eq!(t.kind(), kind);
    }
}

/// The numbers for the report: one contiguous mapping of 65,536 and of
/// 262,144 frames with each tracker (`--nocapture` prints them).
#[test]
fn large_contiguous_mapping_costs() {
    for n in [65_536u64, 262_144] {
        for kind in TrackerKind::ALL {
            let mut t = new_tracker(kind);
            let base = 0x10_0000;
            t.map(DomId::DOM0, base, base + n - 1).expect("unlimited");
            let s = t.stats();
            std::println!(
                "{:>13} pages={:>7}: tracking_bytes={:>9} pages={:>5} records={:>6} record_bytes={:>9} allocations={:>6}",
                kind.name(), n, t.tracking_bytes(), s.pages, s.records, s.record_bytes, s.allocations
            );
            match kind {
                TrackerKind::SlabExtent => {
                    assert!(s.records <= 2, "one record and the spare");
                    assert!(t.tracking_bytes() <= 4096 + 256);
                }
                _ => assert_eq!(s.records, n),
            }
            let mut runs = Vec::new();
            t.runs(DomId::DOM0, 0, u64::MAX >> 24, &mut |r| runs.push(r));
            assert_eq!(
                runs,
                [Run {
                    first: base,
                    last: base + n - 1,
                    count: 1
                }]
            );
            t.unmap(DomId::DOM0, base, base + n - 1).expect("mapped");
            assert!(!t.any(DomId::DOM0, 0, u64::MAX >> 24));
            assert!(t.stats().pages <= 1);
        }
    }
}

#[test]
fn every_tracker_fails_cleanly_at_its_limit() {
    for kind in TrackerKind::ALL {
        let mut t = make(kind, Some(1));
        let dom = d(3);
        t.map(dom, 100, 110).expect("fits in one page");
        let before = (dump(&*t, 0, 6000).expect("dump"), t.stats().records);
        let want = match kind {
            TrackerKind::SlabExtent => Ok(()),
            _ => Err(TrackError::NoMemory),
        };
        // 5,000 pages is one extent, but 5,000 per-page records need pages.
        let got = t.map(dom, 0, 4999);
        assert_eq!(got, want, "{kind:?}");
        if got.is_err() {
            assert_eq!(
                (dump(&*t, 0, 6000).expect("dump"), t.stats().records),
                before
            );
            assert_eq!(t.stats().pages, 1, "{kind:?} kept pages of the failed map");
        }
        t.check().expect("consistent");
    }
}

#[test]
fn extent_inner_clears_at_the_limit_stay_correct() {
    let mut t = make(TrackerKind::SlabExtent, Some(1));
    let dom = d(1);
    t.map(dom, 10_000, 20_000).expect("one record");
    let mut f = 0;
    // Isolated frames until the one page (spare included) is full.
    while t.map(dom, f, f).is_ok() {
        f += 2;
    }
    assert_eq!(t.stats().pages, 1);
    let mut removed = Vec::new();
    // Uses the spare; refilling it fails.
    t.clear(dom, 12_000, 12_010, &mut |r| removed.push(r));
    // No spare: the one allocation allowed past the limit.
    t.clear(dom, 15_000, 15_000, &mut |r| removed.push(r));
    assert_eq!(
        removed,
        [
            Run {
                first: 12_000,
                last: 12_010,
                count: 1
            },
            Run {
                first: 15_000,
                last: 15_000,
                count: 1
            }
        ]
    );
    t.check().expect("consistent");
    let mut runs = Vec::new();
    t.runs(dom, 10_000, 20_000, &mut |r| runs.push((r.first, r.last)));
    assert_eq!(runs, [(10_000, 11_999), (12_011, 14_999), (15_001, 20_000)]);
    assert_eq!(t.stats().pages, 2, "exceeded the limit by exactly one page");
    // The page drawn past the limit has free slots, which later ops use;
    // no further page is drawn.
    t.map(dom, 30_000, 30_000)
        .expect("free slots in the second page");
    assert_eq!(t.stats().pages, 2);
    t.check().expect("consistent");
}

/// Random ops under a page limit of 1 to 4 pages: every `NoMemory` leaves
/// runs, records and pages as they were. Also checks that failures did
/// happen, so the test cannot pass vacuously.
#[test]
fn failures_change_nothing() {
    use proptest::test_runner::{Config, TestRunner};
    use std::sync::atomic::{AtomicU64, Ordering};
    let failures = AtomicU64::new(0);
    let mut runner = TestRunner::new(Config {
        cases: 200,
        ..Config::default()
    });
    let strategy = (
        proptest::collection::vec(op_strategy(1500, 300), 1..80),
        1u64..5,
    );
    let result = runner.run(&strategy, |(ops, limit)| {
        failures.fetch_add(run_lockstep(&ops, 1500, Some(limit))?, Ordering::Relaxed);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let n = failures.load(Ordering::Relaxed);
    std::println!("NoMemory failures exercised: {n}");
    assert!(
        n > 50,
        "only {n} NoMemory failures: the limits are too loose"
    );
}

/// The counted map and unmap of `10..=12` beside every arrangement of
/// neighbours (none, adjacent or one frame away, mapped once or twice) and
/// with every count of its own (0 to 2), in every tracker: the runs
/// reported equal the model's, and the state after equals the model's.
/// Covers the `slab-extent` shortcuts (a range apart, a lone record) and
/// each way out of them.
#[test]
fn counted_ops_report_the_runs_around_them() {
    // (frames, count) of a neighbour on each side, or none.
    let left = [None, Some((9, 1)), Some((9, 2)), Some((8, 1)), Some((7, 2))];
    let right = [
        None,
        Some((13, 1)),
        Some((13, 2)),
        Some((14, 1)),
        Some((15, 2)),
    ];
    let dom = 1u16;
    for kind in TrackerKind::ALL {
        for l in left {
            for r in right {
                for own in 0..3u32 {
                    for op in [
                        Op::MapCounted(dom, 10, 12, 5),
                        Op::UnmapCounted(dom, 10, 12),
                    ] {
                        let mut t = make(kind, None);
                        // Warm, as in a running hypervisor: the spare exists.
                        t.map(d(dom), 100, 100).expect("unlimited");
                        t.unmap(d(dom), 100, 100).expect("mapped");
                        let mut setup = |f: u64, n: u32| {
                            for _ in 0..n {
                                t.map(d(dom), f, f).expect("unlimited");
                            }
                        };
                        if let Some((f, n)) = l {
                            setup(f, n);
                        }
                        if let Some((f, n)) = r {
                            setup(f, n);
                        }
                        for _ in 0..own {
                            t.map(d(dom), 10, 12).expect("unlimited");
                        }
                        let before = dump(&*t, 0, 40).expect("well-formed runs");
                        let mut model = before.clone();
                        let (want, _) = apply_model(&mut model, op);
                        let (got, _) = apply_tracker(&mut *t, op).expect("no clear");
                        let case = (kind, l, r, own, op);
                        assert_eq!(got, want, "{case:?}");
                        assert_eq!(dump(&*t, 0, 40).expect("well-formed"), model, "{case:?}");
                        t.check().expect("consistent tracker");
                    }
                }
            }
        }
    }
}

/// A map refused for its runs changes nothing, in every tracker, and is
/// refused before an overflow would be reported.
#[test]
fn counted_map_refusals_change_nothing() {
    for kind in TrackerKind::ALL {
        let mut t = make(kind, None);
        let dom = d(1);
        t.map(dom, 100, 100).expect("unlimited");
        t.unmap(dom, 100, 100).expect("mapped");
        // Apart from everything: one new run, refused without room.
        assert_eq!(
            t.map_counted(dom, 10, 12, 0),
            Err(MapRefusal::Runs(RunChange {
                before: 0,
                after: 1
            }))
        );
        assert!(!t.any(dom, 0, 200), "{kind:?}: a refused map mapped");
        assert_eq!(
            t.stats().records,
            u64::from(kind == TrackerKind::SlabExtent)
        );
        // Room for one: mapped.
        assert_eq!(
            t.map_counted(dom, 10, 12, 1),
            Ok(RunChange {
                before: 0,
                after: 1
            })
        );
        // Mapping the middle frame again splits one run into three.
        let stats = t.stats();
        let runs = dump(&*t, 0, 200).expect("well-formed");
        assert_eq!(
            t.map_counted(dom, 11, 11, 1),
            Err(MapRefusal::Runs(RunChange {
                before: 1,
                after: 3
            }))
        );
        assert_eq!(
            t.stats(),
            stats,
            "{kind:?}: a refused map changed the tracker"
        );
        assert_eq!(dump(&*t, 0, 200).expect("well-formed"), runs);
        // At the count limit the refusal still comes first.
        for f in 10..=12 {
            t.force_count(dom, f, u32::MAX);
        }
        assert!(matches!(
            t.map_counted(dom, 10, 13, 0),
            Err(MapRefusal::Runs(_))
        ));
        assert_eq!(
            t.map_counted(dom, 10, 13, 1),
            Err(MapRefusal::Track(TrackError::Overflow { frame: 10 }))
        );
    }
}
