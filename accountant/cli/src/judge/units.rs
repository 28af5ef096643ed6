//! The units the judge asks the accountant about, and how they are named.
//!
//! A PCI function's unit is its configuration page in the window that
//! starts at [`CFG_WINDOW`] (see the [judge's docs](super)); a claim from
//! the host map is cut off below that window (`clip`).

use accountant::Space;

use crate::host::Claim;
use crate::pci::Bdf;

/// First frame of the configuration-page window (see the module docs).
pub const CFG_WINDOW: u64 = 0xff_0000_0000;
/// The configuration-page frame that stands for `b`.
pub fn cfg_frame(b: &Bdf) -> u64 {
    CFG_WINDOW
        + ((u64::from(b.seg) << 16)
            | (u64::from(b.bus) << 8)
            | (u64::from(b.dev) << 3)
            | u64::from(b.func))
}

/// The function a configuration-page frame stands for.
pub fn bdf_of_frame(frame: u64) -> Option<Bdf> {
    let i = frame.checked_sub(CFG_WINDOW)?;
    if i > 0xffff_ffff {
        return None;
    }
    // Each field is masked to its width: the casts cannot truncate.
    Bdf::new(
        (i >> 16) as u16,
        ((i >> 8) & 0xff) as u8,
        ((i >> 3) & 0x1f) as u8,
        (i & 7) as u8,
    )
    .ok()
}
pub(super) fn range_text(first: u64, last: u64) -> String {
    if first == last {
        format!("{first:#x}")
    } else {
        format!("{first:#x}-{last:#x}")
    }
}

/// How a resource is named in messages.
pub fn resource_text(space: Space, first: u64, last: u64) -> String {
    match space {
        Space::IoPort => format!("ioport {}", range_text(first, last)),
        Space::Irq if first == last => format!("interrupt line {first}"),
        Space::Irq => format!("interrupt lines {first}-{last}"),
        Space::IoMem => match (bdf_of_frame(first), bdf_of_frame(last)) {
            (Some(a), Some(b)) if a == b => format!("PCI function {a}"),
            (Some(a), Some(b)) => format!("PCI functions {a} to {b}"),
            _ if first == last => format!("iomem page {first:#x} (address {:#x})", first << 12),
            _ => format!(
                "iomem pages {} (addresses {:#x}-{:#x})",
                range_text(first, last),
                first << 12,
                (last << 12) | 0xfff
            ),
        },
    }
}
/// A claim's units with the configuration-page window cut off.
pub(super) fn clip(c: &Claim) -> Option<(u64, u64)> {
    if c.first > c.last {
        return None;
    }
    if c.space == Space::IoMem {
        if c.first >= CFG_WINDOW {
            return None;
        }
        return Some((c.first, c.last.min(CFG_WINDOW - 1)));
    }
    Some((c.first, c.last.min(c.space.max_unit())))
}
