//! A domain's I/O memory map: per-frame map counts and the KVM memslots that
//! make mapped frames reachable without an exit.
//!
//! The table keeps two things in step:
//! * `counts`: how many live mappings the domain has of each frame (extents of
//!   equal count), the hypervisor's copy of the accountant's use counts;
//! * `slots`: KVM memslots covering exactly the frames with a non-zero count
//!   that have backing memory. Contiguous frames of the same backing share one
//!   slot: a new piece merges with the slots on either side (delete both, add
//!   the union); an unmap deletes the slots it touches and re-adds the parts
//!   that stay mapped.
//!
//! Slot ids come from `1..max_slots` (slot 0 is guest RAM). When none is free,
//! a mapped piece stays without a slot: the guest's accesses to it then exit
//! and are served from the backing by [`SlotTable::resolve`] (slow, but
//! correct). The same path covers the instant between deleting and re-adding
//! a slot while merging or splitting, so a frame the domain maps is never
//! denied. A frame with count 0 has no slot once `unmap` returns (KVM deletes
//! slots synchronously), so the guest's next access exits and is denied —
//! unless KVM refused the delete: `unmap` then returns those frames, and the
//! caller must stop the domain (it could still reach them).

use crate::frame_map::FrameMap;

/// Where a frame's backing memory lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backing {
    /// Which backing region (frames of different regions never share a slot).
    pub region: u32,
    /// Host virtual address of the frame.
    pub host: u64,
    /// Last frame of the region (the backing is contiguous up to it).
    pub region_last: u64,
}

/// Finds the backing of a frame (`None`: no device memory there).
pub trait Backings {
    /// The backing of `frame`, if any.
    fn backing(&self, frame: u64) -> Option<Backing>;
    /// The first frame `>= frame` that has a backing, if any.
    fn next_backed(&self, frame: u64) -> Option<u64>;
}

/// The KVM side: add or delete one memslot.
pub trait SlotOps {
    /// Adds slot `id` mapping guest frames `first..=last` to host `host`.
    fn add(&mut self, id: u32, first: u64, last: u64, host: u64) -> Result<(), i32>;
    /// Deletes slot `id` (which maps `first..=last`).
    fn del(&mut self, id: u32, first: u64, last: u64) -> Result<(), i32>;
    /// The table holds `n` slots now: told after every change of its slots,
    /// so a reader that must not lock the table can follow its size.
    fn slots_now(&mut self, _n: usize) {}
}

/// Why a map or unmap was refused (nothing changed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotError {
    /// `unmap` of a frame mapped fewer than the requested times.
    NotMapped(u64),
    /// Range or count invalid (`first > last`, count 0).
    BadRange,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    id: u32,
    last: u64,
    host: u64,
    region: u32,
}

/// One domain's I/O memory map. See the module docs.
#[derive(Debug)]
pub struct SlotTable {
    counts: FrameMap<(u64, u32)>,
    slots: FrameMap<Slot>,
    free: Vec<u32>,
    next: u32,
    max: u32,
    /// Pieces left without a slot because ids ran out or KVM refused.
    pub unslotted_pieces: u64,
    /// KVM has refused a delete since the table was last cleared. Until
    /// then every slot covers mapped frames only, so a range with no mapped
    /// frame within one frame of it has no slot to merge with or overlap.
    refused: bool,
}

impl SlotTable {
    /// An empty table handing out slot ids `1..max_slots`.
    pub fn new(max_slots: u32) -> SlotTable {
        SlotTable {
            counts: FrameMap::default(),
            slots: FrameMap::default(),
            free: Vec::new(),
            next: 1,
            max: max_slots,
            unslotted_pieces: 0,
            refused: false,
        }
    }

    /// Number of KVM slots in use for I/O memory.
    pub fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// The slots as `(first, last)` frame ranges, in order.
    pub fn slot_ranges(&self) -> Vec<(u64, u64)> {
        self.slots.iter().map(|(f, s)| (*f, s.last)).collect()
    }

    /// How many times `frame` is mapped.
    pub fn count(&self, frame: u64) -> u32 {
        self.counts
            .range(..=frame)
            .next_back()
            .filter(|(_, (l, _))| *l >= frame)
            .map_or(0, |(_, (_, c))| *c)
    }

    /// Frames mapped at least once, as merged `(first, last)` ranges.
    pub fn mapped_ranges(&self) -> Vec<(u64, u64)> {
        merge(self.counts.iter().map(|(f, (l, _))| (*f, *l)))
    }

    fn alloc_id(&mut self) -> Option<u32> {
        if let Some(id) = self.free.pop() {
            return Some(id);
        }
        (self.next < self.max).then(|| {
            self.next += 1;
            self.next - 1
        })
    }

    fn split_count(&mut self, at: u64) {
        if let Some((&s, &(e, c))) = self.counts.range(..at).next_back() {
            if e >= at {
                self.counts.insert(s, (at - 1, c));
                self.counts.insert(at, (e, c));
            }
        }
    }

    fn normalize(&mut self, first: u64, last: u64) {
        let lo = first.saturating_sub(1);
        let keys: Vec<u64> = self
            .counts
            .range(..=last.saturating_add(1))
            .rev()
            .take_while(|(_, (e, _))| *e >= lo)
            .map(|(s, _)| *s)
            .collect();
        let mut keys = keys;
        keys.reverse();
        let mut i = 0;
        while i + 1 < keys.len() {
            let (a, b) = (keys[i], keys[i + 1]);
            match (self.counts.get(&a).copied(), self.counts.get(&b).copied()) {
                (Some((ae, ac)), Some((be, bc))) if ae + 1 == b && ac == bc => {
                    self.counts.remove(&b);
                    self.counts.insert(a, (be, ac));
                    keys.remove(i + 1);
                }
                _ => i += 1,
            }
        }
    }

    /// Adds one mapping of every frame in `first..=last`; frames that become
    /// mapped get slots (merged with neighbours).
    pub fn map(
        &mut self,
        first: u64,
        last: u64,
        backings: &impl Backings,
        ops: &mut impl SlotOps,
    ) -> Result<(), SlotError> {
        if first > last {
            return Err(SlotError::BadRange);
        }
        // A bind's common case: no frame of the range, nor one on either
        // side of it, is mapped yet. Then the range is one new extent of
        // count 1 that merges with nothing, and one new piece.
        let apart = self
            .counts
            .insert_apart(first, last, (last, 1), |&(e, _)| e)
            .is_ok();
        if apart {
            match backings.backing(first) {
                // One region backs it all and no slot can be in the way (see
                // `refused`): the piece is one new slot, no search needed.
                Some(bk) if !self.refused && bk.region_last >= last => {
                    self.install_clear(first, last, bk.host, bk.region, ops)
                }
                _ => self.add_slots(first, last, backings, ops),
            }
            return Ok(());
        }
        self.split_count(first);
        if let Some(after) = last.checked_add(1) {
            self.split_count(after);
        }
        let mut newly = Vec::new();
        let mut cur = first;
        let existing: Vec<(u64, u64)> = self
            .counts
            .range(first..=last)
            .map(|(s, (e, _))| (*s, *e))
            .collect();
        for (s, e) in existing {
            if s > cur {
                newly.push((cur, s - 1));
            }
            if let Some(v) = self.counts.get_mut(&s) {
                v.1 = v.1.saturating_add(1);
            }
            cur = e.saturating_add(1);
        }
        if cur <= last {
            newly.push((cur, last));
        }
        for &(a, b) in &newly {
            self.counts.insert(a, (b, 1));
        }
        self.normalize(first, last);
        for (a, b) in newly {
            self.add_slots(a, b, backings, ops);
        }
        Ok(())
    }

    /// Ends `n` mappings of every frame in `first..=last`; frames that become
    /// unmapped lose their slots before this returns, except where KVM
    /// refused to delete a slot: those frames (still reachable by the guest
    /// without an exit) are returned, empty when every slot went. Refused,
    /// changing nothing, if some frame is mapped fewer than `n` times.
    pub fn unmap(
        &mut self,
        first: u64,
        last: u64,
        n: u32,
        ops: &mut impl SlotOps,
    ) -> Result<Vec<(u64, u64)>, SlotError> {
        if first > last || n == 0 {
            return Err(SlotError::BadRange);
        }
        // An unmap's or a revoke's common case: the range is one extent
        // mapped exactly `n` times with a slot of its own (as a map of the
        // whole range made it). Nothing splits, merges or is re-added, so
        // the extent and the slot go without a buffer; the rest below
        // would do the same.
        if self.counts.get(&first) == Some(&(last, n)) {
            if let Some(&s) = self.slots.get(&first).filter(|s| s.last == last) {
                self.counts.remove(&first);
                if ops.del(s.id, first, last).is_err() {
                    self.refused = true;
                    return Ok(vec![(first, last)]);
                }
                self.slots.remove(&first);
                self.tell(ops);
                self.free.push(s.id);
                return Ok(Vec::new());
            }
        }
        self.covered(first, last, n).map_err(SlotError::NotMapped)?;
        self.split_count(first);
        if let Some(after) = last.checked_add(1) {
            self.split_count(after);
        }
        let keys: Vec<u64> = self.counts.range(first..=last).map(|(s, _)| *s).collect();
        let mut gone = Vec::new();
        for s in keys {
            if let Some(&(e, c)) = self.counts.get(&s) {
                if c == n {
                    self.counts.remove(&s);
                    gone.push((s, e));
                } else {
                    self.counts.insert(s, (e, c - n));
                }
            }
        }
        self.normalize(first, last);
        let mut stuck = Vec::new();
        for (a, b) in merge(gone.into_iter()) {
            stuck.extend(self.remove_slots(a, b, ops));
        }
        Ok(stuck)
    }

    /// Whether every frame of `first..=last` is mapped at least `n` times;
    /// `Err(frame)` names the first that is not.
    pub fn covered(&self, first: u64, last: u64, n: u32) -> Result<(), u64> {
        let mut cur = first;
        for (s, (e, c)) in self.counts.range(..=last) {
            if *e < cur {
                continue;
            }
            if *s > cur {
                return Err(cur);
            }
            if *c < n {
                return Err(cur.max(*s));
            }
            match e.checked_add(1) {
                Some(x) if x <= last => cur = x,
                _ => return Ok(()),
            }
        }
        Err(cur)
    }

    /// Ends every mapping of `first..=last` whatever its count (a teardown
    /// the hypervisor's counts disagree with must still remove the slots).
    /// Returns the frames KVM refused to unslot, as [`SlotTable::unmap`].
    #[must_use = "frames still slotted remain reachable by the guest"]
    pub fn force_unmap(
        &mut self,
        first: u64,
        last: u64,
        ops: &mut impl SlotOps,
    ) -> Vec<(u64, u64)> {
        if first > last {
            return Vec::new();
        }
        self.split_count(first);
        if let Some(after) = last.checked_add(1) {
            self.split_count(after);
        }
        let keys: Vec<u64> = self.counts.range(first..=last).map(|(s, _)| *s).collect();
        for k in keys {
            self.counts.remove(&k);
        }
        self.normalize(first, last);
        self.remove_slots(first, last, ops)
    }

    /// Removes every mapping and slot (domain teardown).
    pub fn clear(&mut self, ops: &mut impl SlotOps) {
        let slots = std::mem::take(&mut self.slots);
        self.tell(ops);
        for (f, s) in slots.iter() {
            let _ = ops.del(s.id, *f, s.last);
            self.free.push(s.id);
        }
        self.counts.clear();
        self.refused = false;
    }

    /// For an access that exited at `frame`: its backing when the domain maps
    /// it (a piece without a slot, or a slot being rebuilt), else `None`
    /// (deny).
    pub fn resolve(&self, frame: u64, backings: &impl Backings) -> Option<Backing> {
        if self.count(frame) == 0 {
            return None;
        }
        backings.backing(frame)
    }

    fn add_slots(&mut self, a: u64, b: u64, backings: &impl Backings, ops: &mut impl SlotOps) {
        let mut f = a;
        while f <= b {
            let start = match backings.next_backed(f) {
                Some(s) if s <= b => s,
                _ => return,
            };
            let Some(bk) = backings.backing(start) else {
                return;
            };
            let end = bk.region_last.min(b);
            self.add_piece(start, end, bk, ops);
            f = match end.checked_add(1) {
                Some(x) => x,
                None => return,
            };
        }
    }

    fn add_piece(&mut self, a: u64, b: u64, bk: Backing, ops: &mut impl SlotOps) {
        let (mut first, mut last, mut host) = (a, b, bk.host);
        // Left neighbour ending at a-1, same region, host-contiguous.
        if let Some(prev) = a.checked_sub(1) {
            if let Some((&lf, &ls)) = self.slots.range(..=prev).next_back() {
                if ls.last == prev
                    && ls.region == bk.region
                    && ls.host + (a - lf) * crate::mem::PAGE_SIZE == bk.host
                    && ops.del(ls.id, lf, ls.last).is_ok()
                {
                    self.slots.remove(&lf);
                    self.tell(ops);
                    self.free.push(ls.id);
                    first = lf;
                    host = ls.host;
                }
            }
        }
        if let Some(next) = b.checked_add(1) {
            if let Some(&rs) = self.slots.get(&next) {
                if rs.region == bk.region
                    && bk.host + (next - a) * crate::mem::PAGE_SIZE == rs.host
                    && ops.del(rs.id, next, rs.last).is_ok()
                {
                    self.slots.remove(&next);
                    self.tell(ops);
                    self.free.push(rs.id);
                    last = rs.last;
                }
            }
        }
        self.install(first, last, host, bk.region, ops);
    }

    /// Tells `ops` the slot count after a change.
    fn tell(&self, ops: &mut impl SlotOps) {
        ops.slots_now(self.slots.len());
    }

    fn overlaps_slot(&self, first: u64, last: u64) -> bool {
        self.slots
            .range(..=last)
            .next_back()
            .is_some_and(|(_, s)| s.last >= first)
    }

    fn install(&mut self, first: u64, last: u64, host: u64, region: u32, ops: &mut impl SlotOps) {
        if self.overlaps_slot(first, last) {
            // Only a slot KVM refused to delete can be in the way: leave the
            // piece to the slow path rather than ask KVM for an overlap.
            self.unslotted_pieces += 1;
            return;
        }
        self.install_clear(first, last, host, region, ops);
    }

    /// [`SlotTable::install`] where no slot overlaps `first..=last`.
    fn install_clear(
        &mut self,
        first: u64,
        last: u64,
        host: u64,
        region: u32,
        ops: &mut impl SlotOps,
    ) {
        match self.alloc_id() {
            Some(id) => {
                if ops.add(id, first, last, host).is_ok() {
                    self.slots.insert(
                        first,
                        Slot {
                            id,
                            last,
                            host,
                            region,
                        },
                    );
                    self.tell(ops);
                } else {
                    self.free.push(id);
                    self.unslotted_pieces += 1;
                }
            }
            None => self.unslotted_pieces += 1,
        }
    }

    /// Deletes the slots overlapping `a..=b` (re-adding their parts outside
    /// it). Returns the parts of `a..=b` still slotted because KVM refused a
    /// delete.
    fn remove_slots(&mut self, a: u64, b: u64, ops: &mut impl SlotOps) -> Vec<(u64, u64)> {
        let hit: Vec<(u64, Slot)> = self
            .slots
            .range(..=b)
            .rev()
            .take_while(|(_, s)| s.last >= a)
            .map(|(f, s)| (*f, *s))
            .collect();
        let mut stuck = Vec::new();
        for (f, s) in hit.into_iter().rev() {
            // A failed delete leaves the slot: keep it recorded (the guest
            // can still reach it) and report the revoked frames it covers so
            // the caller can isolate the domain.
            if ops.del(s.id, f, s.last).is_err() {
                self.refused = true;
                stuck.push((f.max(a), s.last.min(b)));
                continue;
            }
            self.slots.remove(&f);
            self.tell(ops);
            self.free.push(s.id);
            if f < a {
                self.reinstall(f, a - 1, f, s, ops);
            }
            if s.last > b {
                self.reinstall(b + 1, s.last, f, s, ops);
            }
        }
        stuck
    }

    /// Re-adds slots for the still-mapped frames of `lo..=hi`, part of slot
    /// `s` (which started at frame `f`) just deleted. Normally all of it is
    /// mapped; after a refused delete the old slot may cover unmapped frames.
    fn reinstall(&mut self, lo: u64, hi: u64, f: u64, s: Slot, ops: &mut impl SlotOps) {
        let pieces = merge(
            self.counts
                .range(..=hi)
                .filter(|(_, (e, _))| *e >= lo)
                .map(|(a, (e, _))| ((*a).max(lo), (*e).min(hi))),
        );
        for (a, b) in pieces {
            let host = s.host + (a - f) * crate::mem::PAGE_SIZE;
            self.install(a, b, host, s.region, ops);
        }
    }
}

fn merge(it: impl Iterator<Item = (u64, u64)>) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (a, b) in it {
        match out.last_mut() {
            Some(l) if l.1.checked_add(1) == Some(a) => l.1 = b,
            _ => out.push((a, b)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Two regions: 0x100-0x1ff (host 0x10_0000 + …) and 0x400-0x4ff.
    struct Regions;
    impl Backings for Regions {
        fn backing(&self, f: u64) -> Option<Backing> {
            match f {
                0x100..=0x1ff => Some(Backing {
                    region: 1,
                    host: 0x10_0000 + (f - 0x100) * 4096,
                    region_last: 0x1ff,
                }),
                0x400..=0x4ff => Some(Backing {
                    region: 2,
                    host: 0x90_0000 + (f - 0x400) * 4096,
                    region_last: 0x4ff,
                }),
                _ => None,
            }
        }
        fn next_backed(&self, f: u64) -> Option<u64> {
            match f {
                0..=0x100 => Some(0x100),
                0x101..=0x1ff => Some(f),
                0x200..=0x400 => Some(0x400),
                0x401..=0x4ff => Some(f),
                _ => None,
            }
        }
    }

    /// Records live KVM slots; can be told to refuse deletes.
    #[derive(Default)]
    struct Kvm {
        live: BTreeMap<u32, (u64, u64, u64)>,
        adds: u32,
        /// Every `del` fails (the slot stays live) while set.
        fail_del: bool,
        /// The last count the table told.
        told: usize,
    }
    impl SlotOps for Kvm {
        fn add(&mut self, id: u32, first: u64, last: u64, host: u64) -> Result<(), i32> {
            for (f, l, _) in self.live.values() {
                assert!(last < *f || first > *l, "overlapping slots");
            }
            assert!(
                self.live.insert(id, (first, last, host)).is_none(),
                "id reused while live"
            );
            self.adds += 1;
            Ok(())
        }
        fn del(&mut self, id: u32, first: u64, last: u64) -> Result<(), i32> {
            if self.fail_del {
                return Err(libc::EINVAL);
            }
            let v = self.live.remove(&id).expect("deleting a live slot");
            assert_eq!((v.0, v.1), (first, last));
            Ok(())
        }
        fn slots_now(&mut self, n: usize) {
            self.told = n;
        }
    }

    fn live_ranges(k: &Kvm) -> Vec<(u64, u64)> {
        let mut v: Vec<_> = k.live.values().map(|(f, l, _)| (*f, *l)).collect();
        v.sort();
        v
    }

    #[test]
    fn random_maps_and_unmaps_agree_with_per_frame_counts() {
        // Both paths of `map` (nothing around the range mapped, or some)
        // against a count per frame; the live slots must be exactly the
        // backed frames with a count, each slot maximal within its region.
        let (lo, hi) = (0xf8u64, 0x208u64);
        let mut t = SlotTable::new(64);
        let mut k = Kvm::default();
        let mut counts = vec![0u32; (hi - lo + 1) as usize];
        let mut rng = accountant::testing::XorShift::new(0x2545_f491_4f6c_dd1d);
        let mut next = |n: u64| rng.below(n);
        for step in 0..3_000 {
            let a = lo + next(hi - lo + 1);
            let b = (a + next(if step % 7 == 0 { 40 } else { 3 })).min(hi);
            let idx = (a - lo) as usize..=(b - lo) as usize;
            if next(3) > 0 {
                t.map(a, b, &Regions, &mut k).expect("valid range");
                counts[idx].iter_mut().for_each(|c| *c += 1);
            } else if counts[idx.clone()].iter().all(|c| *c > 0) {
                assert_eq!(t.unmap(a, b, 1, &mut k), Ok(Vec::new()), "step {step}");
                counts[idx].iter_mut().for_each(|c| *c -= 1);
            } else {
                assert!(t.unmap(a, b, 1, &mut k).is_err(), "step {step}");
            }
            for f in lo..=hi {
                assert_eq!(
                    t.count(f),
                    counts[(f - lo) as usize],
                    "step {step} frame {f:#x}"
                );
            }
            let mut want = Vec::new();
            for f in lo..=hi {
                let on = counts[(f - lo) as usize] > 0 && Regions.backing(f).is_some();
                match want.last_mut() {
                    Some((_, l)) if on && *l + 1 == f && f != 0x200 => *l = f,
                    _ if on => want.push((f, f)),
                    _ => {}
                }
            }
            assert_eq!(live_ranges(&k), want, "step {step}");
            assert_eq!(k.told, t.slot_count(), "step {step}: the count told");
            assert_eq!(k.told, k.live.len(), "step {step}");
        }
    }

    #[test]
    fn contiguous_maps_coalesce_into_one_slot() {
        let (mut t, mut k) = (SlotTable::new(100), Kvm::default());
        for f in 0x100..0x110 {
            t.map(f, f, &Regions, &mut k).unwrap();
        }
        assert_eq!(live_ranges(&k), vec![(0x100, 0x10f)]);
        assert_eq!(k.live.values().next().unwrap().2, 0x10_0000);
        // Mapped in the middle first, then both sides.
        t.map(0x120, 0x120, &Regions, &mut k).unwrap();
        t.map(0x122, 0x122, &Regions, &mut k).unwrap();
        t.map(0x121, 0x121, &Regions, &mut k).unwrap();
        assert_eq!(live_ranges(&k), vec![(0x100, 0x10f), (0x120, 0x122)]);
    }

    #[test]
    fn regions_never_share_a_slot_and_unbacked_frames_get_none() {
        let (mut t, mut k) = (SlotTable::new(100), Kvm::default());
        t.map(0x1f0, 0x40f, &Regions, &mut k).unwrap();
        assert_eq!(live_ranges(&k), vec![(0x1f0, 0x1ff), (0x400, 0x40f)]);
        assert_eq!(t.count(0x300), 1);
        assert!(t.resolve(0x300, &Regions).is_none(), "no backing");
    }

    #[test]
    fn unmap_splits_and_counts_nest() {
        let (mut t, mut k) = (SlotTable::new(100), Kvm::default());
        t.map(0x100, 0x1ff, &Regions, &mut k).unwrap();
        t.map(0x150, 0x150, &Regions, &mut k).unwrap();
        t.unmap(0x140, 0x15f, 1, &mut k).unwrap();
        // 0x150 is still mapped once: it keeps its own slot.
        assert_eq!(
            live_ranges(&k),
            vec![(0x100, 0x13f), (0x150, 0x150), (0x160, 0x1ff)]
        );
        assert_eq!(
            t.unmap(0x140, 0x150, 1, &mut k),
            Err(SlotError::NotMapped(0x140))
        );
        assert_eq!(live_ranges(&k).len(), 3, "refused unmap changed nothing");
        t.unmap(0x150, 0x150, 1, &mut k).unwrap();
        t.unmap(0x100, 0x13f, 1, &mut k).unwrap();
        t.unmap(0x160, 0x1ff, 1, &mut k).unwrap();
        assert!(k.live.is_empty());
        assert!(t.mapped_ranges().is_empty());
        assert_eq!(
            t.unmap(0x100, 0x100, 1, &mut k),
            Err(SlotError::NotMapped(0x100))
        );
    }

    #[test]
    fn slot_limit_is_respected_and_the_rest_is_served_slowly() {
        let (mut t, mut k) = (SlotTable::new(3), Kvm::default()); // ids 1, 2
        for f in [0x100u64, 0x102, 0x104, 0x106] {
            t.map(f, f, &Regions, &mut k).unwrap();
        }
        assert_eq!(k.live.len(), 2);
        assert_eq!(t.unslotted_pieces, 2);
        assert!(
            t.resolve(0x106, &Regions).is_some(),
            "mapped without slot: served"
        );
        assert!(t.resolve(0x107, &Regions).is_none());
    }

    #[test]
    fn force_unmap_ignores_counts() {
        let (mut t, mut k) = (SlotTable::new(100), Kvm::default());
        t.map(0x100, 0x1ff, &Regions, &mut k).unwrap();
        t.map(0x100, 0x1ff, &Regions, &mut k).unwrap();
        assert_eq!(t.covered(0x100, 0x1ff, 2), Ok(()));
        assert_eq!(t.covered(0x100, 0x200, 1), Err(0x200));
        assert!(t.force_unmap(0x180, 0x1ff, &mut k).is_empty());
        assert_eq!(live_ranges(&k), vec![(0x100, 0x17f)]);
        assert_eq!(t.count(0x180), 0);
        assert_eq!(t.count(0x17f), 2);
    }

    #[test]
    fn clear_removes_everything() {
        let (mut t, mut k) = (SlotTable::new(100), Kvm::default());
        t.map(0x100, 0x1ff, &Regions, &mut k).unwrap();
        t.map(0x400, 0x401, &Regions, &mut k).unwrap();
        assert_eq!(k.told, 2);
        t.clear(&mut k);
        assert!(k.live.is_empty());
        assert_eq!(k.told, 0);
        assert_eq!(t.count(0x100), 0);
    }

    #[test]
    fn a_refused_delete_is_reported_and_the_slot_kept() {
        let (mut t, mut k) = (SlotTable::new(100), Kvm::default());
        t.map(0x100, 0x1ff, &Regions, &mut k).unwrap();
        t.map(0x400, 0x40f, &Regions, &mut k).unwrap();
        k.fail_del = true;
        // Unmapping the middle of a slot: the whole slot stays live in KVM,
        // and exactly the revoked frames are reported.
        assert_eq!(t.unmap(0x140, 0x14f, 1, &mut k), Ok(vec![(0x140, 0x14f)]));
        assert_eq!(live_ranges(&k), vec![(0x100, 0x1ff), (0x400, 0x40f)]);
        assert_eq!(t.slot_ranges(), vec![(0x100, 0x1ff), (0x400, 0x40f)]);
        assert_eq!(k.told, 2, "the count told keeps the refused slots");
        assert_eq!(t.count(0x140), 0, "the use itself ended");
        // Across two slots, by force.
        assert_eq!(
            t.force_unmap(0x1f0, 0x401, &mut k),
            vec![(0x1f0, 0x1ff), (0x400, 0x401)]
        );
        // Once KVM cooperates again the stale slot goes on the next unmap.
        k.fail_del = false;
        assert_eq!(t.unmap(0x100, 0x13f, 1, &mut k), Ok(vec![]));
        // Only frames still mapped get slots back.
        assert_eq!(
            live_ranges(&k),
            vec![(0x150, 0x1ef), (0x400, 0x40f)],
            "re-added parts skip the frames unmapped while deletes failed"
        );
        // An unmap touching no slot reports nothing even while deletes fail.
        t.map(0x300, 0x300, &Regions, &mut k).unwrap();
        k.fail_del = true;
        assert_eq!(t.unmap(0x300, 0x300, 1, &mut k), Ok(vec![]));
        assert_eq!(t.unmap(0x150, 0x150, 1, &mut k), Ok(vec![(0x150, 0x150)]));
        // A range that is one extent with a slot of its own (the unmap's
        // short path): refused, its frames are reported and the slot kept.
        k.fail_del = false;
        t.map(0x420, 0x42f, &Regions, &mut k).unwrap();
        k.fail_del = true;
        assert_eq!(t.unmap(0x420, 0x42f, 1, &mut k), Ok(vec![(0x420, 0x42f)]));
        assert!(live_ranges(&k).contains(&(0x420, 0x42f)));
        assert!(t.slot_ranges().contains(&(0x420, 0x42f)));
        assert_eq!(t.count(0x420), 0, "the use itself ended");
        // Accepted, the slot goes.
        k.fail_del = false;
        t.map(0x440, 0x44f, &Regions, &mut k).unwrap();
        assert_eq!(t.unmap(0x440, 0x44f, 1, &mut k), Ok(vec![]));
        assert!(!live_ranges(&k).contains(&(0x440, 0x44f)));
        assert_eq!(t.count(0x440), 0);
    }

    #[test]
    fn a_map_over_a_refused_slot_asks_kvm_for_no_overlap() {
        // A slot KVM refused to delete outlives its frames' counts: a later
        // map of those frames (nothing mapped around it, the fast path's
        // case) must find it rather than add an overlapping slot.
        let (mut t, mut k) = (SlotTable::new(100), Kvm::default());
        t.map(0x420, 0x42f, &Regions, &mut k).unwrap();
        k.fail_del = true;
        assert_eq!(t.unmap(0x420, 0x42f, 1, &mut k), Ok(vec![(0x420, 0x42f)]));
        k.fail_del = false;
        t.map(0x428, 0x428, &Regions, &mut k).unwrap();
        assert_eq!(live_ranges(&k), vec![(0x420, 0x42f)], "no second slot");
        assert_eq!(t.unslotted_pieces, 1, "served from the backing instead");
        assert_eq!(t.count(0x428), 1);
        // Once the table is cleared, maps take the short path again.
        t.clear(&mut k);
        t.map(0x428, 0x428, &Regions, &mut k).unwrap();
        assert_eq!(live_ranges(&k), vec![(0x428, 0x428)]);
    }
}
