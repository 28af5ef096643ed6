//! The framebuffer BAR through memslots on real KVM: page-by-page maps
//! coalesce, a painter reaches every page without exits, a split unmap
//! leaves the rest mapped and makes the removed page deny.
mod common;
use accountant::{Mode, Space};
use common::*;
use hv::exit::StopReason;
use hv::mem::PAGE_SIZE;
use hv::platform::FB_FRAME;
use hv::programs;
use hv::Config;
use std::time::Duration;

#[test]
fn page_by_page_maps_coalesce_and_unmap_splits() {
    let Some(hv) = boot(Config {
        fb_bytes: 256 << 20,
        ..Config::default()
    }) else {
        return;
    };
    let pages = 1024u64;
    let r = range(Space::IoMem, FB_FRAME, FB_FRAME + pages - 1);
    let painter = programs::fb_painter(FB_FRAME, pages, 0xabcd_0001, 1).unwrap();
    hv.create_domain_paused(d(1), &painter, hv::layout::DEFAULT_RAM)
        .unwrap();
    hv.grant(d(1), r, Mode::Exclusive, false).unwrap();
    for f in FB_FRAME..FB_FRAME + pages {
        hv.map(d(1), mem(f)).unwrap();
    }
    assert_eq!(
        hv.io_slots(d(1)),
        vec![(FB_FRAME, FB_FRAME + pages - 1)],
        "one slot"
    );
    hv.start(d(1)).unwrap();
    assert_eq!(
        hv.wait(d(1), Duration::from_secs(60)),
        Some(StopReason::Done(0))
    );
    let s = hv.stats(d(1)).unwrap();
    assert_eq!(
        (s.denied_mmio, s.slow_mmio),
        (0, 0),
        "every write went through the slot"
    );
    for p in [0, 1, pages / 2, pages - 1] {
        assert_eq!(
            hv.platform().fb().read_u64(p * PAGE_SIZE),
            Some(0xabcd_0001)
        );
    }
    let mid = FB_FRAME + pages / 2;
    hv.unmap(d(1), mem(mid)).unwrap();
    assert_eq!(
        hv.io_slots(d(1)),
        vec![(FB_FRAME, mid - 1), (mid + 1, FB_FRAME + pages - 1)]
    );
    hv.destroy_domain(d(1)).unwrap();
    // A second painter over the whole range with the middle page unmapped:
    // that one write exits and is denied, the rest land.
    let painter = programs::fb_painter(FB_FRAME, pages, 0x2222, 1).unwrap();
    hv.create_domain_paused(d(2), &painter, hv::layout::DEFAULT_RAM)
        .unwrap();
    hv.grant(d(2), r, Mode::Exclusive, false).unwrap();
    hv.map(d(2), range(Space::IoMem, FB_FRAME, mid - 1))
        .unwrap();
    hv.map(d(2), range(Space::IoMem, mid + 1, FB_FRAME + pages - 1))
        .unwrap();
    hv.start(d(2)).unwrap();
    assert_eq!(
        hv.wait(d(2), Duration::from_secs(60)),
        Some(StopReason::Done(0))
    );
    assert_eq!(hv.stats(d(2)).unwrap().denied_mmio, 1);
    assert_eq!(
        hv.platform().fb().read_u64((pages / 2) * PAGE_SIZE),
        Some(0xabcd_0001)
    );
    assert_eq!(hv.platform().fb().read_u64(0), Some(0x2222));
    hv.check_invariants().unwrap();
}

#[test]
fn a_several_gib_bar_costs_nothing_until_touched() {
    let Some(hv) = boot(Config {
        fb_bytes: 8 << 30,
        ..Config::default()
    }) else {
        return;
    };
    assert_eq!(hv.platform().fb_frames(), 2 << 20);
    let r = range(Space::IoMem, FB_FRAME, FB_FRAME + (2 << 20) - 1);
    hv.create_domain_paused(
        d(1),
        &programs::fb_painter(FB_FRAME + (2 << 20) - 4, 4, 7, 1).unwrap(),
        hv::layout::DEFAULT_RAM,
    )
    .unwrap();
    hv.grant(d(1), r, Mode::Exclusive, false).unwrap();
    hv.map(d(1), r).unwrap();
    assert_eq!(hv.io_slots(d(1)).len(), 1);
    hv.start(d(1)).unwrap();
    assert_eq!(
        hv.wait(d(1), Duration::from_secs(60)),
        Some(StopReason::Done(0))
    );
    assert_eq!(hv.platform().fb().read_u64((8 << 30) - PAGE_SIZE), Some(7));
    hv.revoke(d(1), r, true).unwrap();
    assert!(hv.io_slots(d(1)).is_empty());
}

#[test]
fn the_memslot_limit_is_respected_and_the_rest_served_by_the_hypervisor() {
    let Some(hv) = boot(Config {
        fb_bytes: 512 << 20,
        ..Config::default()
    }) else {
        return;
    };
    let max = hv.max_memslots() as u64;
    // Every other page: nothing coalesces, so this needs more slots than KVM has.
    let mapped = max + 100;
    let span = 2 * mapped;
    let r = range(Space::IoMem, FB_FRAME, FB_FRAME + span - 1);
    let painter = programs::fb_painter(FB_FRAME, span, 0x77, 1).unwrap();
    hv.create_domain_paused(d(1), &painter, hv::layout::DEFAULT_RAM)
        .unwrap();
    hv.grant(d(1), r, Mode::Exclusive, false).unwrap();
    for i in 0..mapped {
        hv.map(d(1), mem(FB_FRAME + 2 * i)).unwrap();
    }
    let slots = hv.io_slots(d(1)).len() as u64;
    assert_eq!(
        slots,
        max - 2,
        "every slot but RAM's and the one kept for the bench's bare-KVM floors is used, no more"
    );
    hv.start(d(1)).unwrap();
    assert_eq!(
        hv.wait(d(1), Duration::from_secs(300)),
        Some(StopReason::Done(0))
    );
    let s = hv.stats(d(1)).unwrap();
    assert_eq!(
        s.slow_mmio,
        mapped - slots,
        "pages without a slot were served"
    );
    assert_eq!(s.denied_mmio, mapped, "the unmapped odd pages were denied");
    let fb = hv.platform().fb();
    assert_eq!(
        fb.read_u64((2 * mapped - 2) * PAGE_SIZE),
        Some(0x77),
        "last mapped page written"
    );
    assert_eq!(fb.read_u64(PAGE_SIZE), Some(0), "unmapped page untouched");
    hv.revoke(d(1), r, true).unwrap();
    assert!(hv.io_slots(d(1)).is_empty());
}
