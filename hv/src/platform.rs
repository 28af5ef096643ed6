//! The platform: devices whose I/O resources the accountant owns.
//!
//! | device | ports | I/O memory (frames) | irq | accountant |
//! |---|---|---|---|---|
//! | 16550 UART (hypervisor console) | `0x3f8-0x3ff` | — | 4 | reserved |
//! | IO-APIC | — | `0xfec00` | 2 (cascade) | reserved |
//! | local APIC | — | `0xfee00` | — | reserved |
//! | device A | `0x300-0x307` | `0xfeb00` | 11 | ordinary |
//! | framebuffer | — | BAR at `0x100000` (GPA 4 GiB), 256 MiB default | — | ordinary |
//!
//! Device A counts every port access that reaches it, per domain. Its MMIO
//! page is mapped into guests directly, so the evidence of who wrote it is in
//! the page: a guest writes its domain id and a sequence number into its own
//! 16-byte record at [`DEVICE_A_RECORDS`] + 16 × (domain id mod 250). Writing
//! [`DEVICE_A_DOORBELL`] raises irq 11.
//!
//! The framebuffer BAR and device A's page are backed by host memory mapped
//! `MAP_NORESERVE`: only pages a guest touches cost host memory.

use crate::mem::{HostMem, MemError, PAGE_SIZE};
use crate::memslot::{Backing, Backings};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// The UART's ports (hypervisor console, reserved).
pub const UART_PORTS: (u16, u16) = (0x3f8, 0x3ff);
/// The IO-APIC page (reserved).
pub const IOAPIC_FRAME: u64 = 0xfec00;
/// The local APIC page (reserved).
pub const LAPIC_FRAME: u64 = 0xfee00;
/// The cascade line (reserved).
pub const CASCADE_IRQ: u32 = 2;
/// Device A's ports.
pub const DEVICE_A_PORTS: (u16, u16) = (0x300, 0x307);
/// Device A's MMIO page.
pub const DEVICE_A_FRAME: u64 = 0xfeb00;
/// Device A's interrupt line.
pub const DEVICE_A_IRQ: u32 = 11;
/// Device A's data register: writes latch a value, reads return it.
pub const DEVICE_A_DATA: u16 = 0x300;
/// Device A's doorbell: a write raises [`DEVICE_A_IRQ`].
pub const DEVICE_A_DOORBELL: u16 = 0x304;
/// Offset of the per-domain write records in device A's page.
pub const DEVICE_A_RECORDS: u64 = 64;
/// First frame of the framebuffer BAR.
pub const FB_FRAME: u64 = 0x10_0000;
/// Default framebuffer BAR size.
pub const DEFAULT_FB_BYTES: u64 = 256 << 20;

/// The boot line the seed scenario uses (RAM, reservations of the
/// hypervisor's devices).
pub const SEED_BOOT: &str =
    "ram=0x0-0x7ffff reserve_iomem=0xfec00,0xfee00 reserve_ioports=0x3f8-0x3ff reserve_irqs=2";

/// Accesses that reached device A from one domain.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceCounters {
    /// Port reads.
    pub port_reads: u64,
    /// Port writes.
    pub port_writes: u64,
    /// Doorbell rings (interrupts raised).
    pub doorbells: u64,
}

impl DeviceCounters {
    /// Port accesses of either direction.
    pub fn port_accesses(&self) -> u64 {
        self.port_reads + self.port_writes
    }
}

#[derive(Debug, Default)]
struct DeviceAState {
    data: u32,
    counters: BTreeMap<u16, DeviceCounters>,
}

/// Device A.
#[derive(Debug)]
pub struct DeviceA {
    state: Mutex<DeviceAState>,
    page: HostMem,
}

/// What a port write asked the platform to do besides storing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortEffect {
    /// Nothing more.
    None,
    /// Raise this interrupt line.
    RaiseIrq(u32),
}

impl DeviceA {
    fn state(&self) -> std::sync::MutexGuard<'_, DeviceAState> {
        // The state is a value and counters; a panic elsewhere cannot leave
        // it half-updated, so a poisoned lock is still usable.
        crate::locks::leaf(&self.state)
    }

    /// A port read by `dom` (already allowed by the accountant).
    pub fn read(&self, dom: u16, port: u16) -> u32 {
        let mut s = self.state();
        s.counters.entry(dom).or_default().port_reads += 1;
        if port == DEVICE_A_DATA {
            s.data
        } else {
            0
        }
    }

    /// A port write by `dom` (already allowed by the accountant).
    pub fn write(&self, dom: u16, port: u16, data: u32) -> PortEffect {
        let mut s = self.state();
        let c = s.counters.entry(dom).or_default();
        c.port_writes += 1;
        match port {
            DEVICE_A_DATA => {
                s.data = data;
                PortEffect::None
            }
            DEVICE_A_DOORBELL => {
                c.doorbells += 1;
                PortEffect::RaiseIrq(DEVICE_A_IRQ)
            }
            _ => PortEffect::None,
        }
    }

    /// Counters of every domain that reached the device.
    pub fn counters(&self) -> BTreeMap<u16, DeviceCounters> {
        self.state().counters.clone()
    }

    /// The `(domain id, sequence)` record a domain last wrote into the page
    /// (zeros if never).
    pub fn page_record(&self, dom: u16) -> (u64, u64) {
        let off = DEVICE_A_RECORDS + 16 * (dom as u64 % 250);
        (
            self.page.read_u64(off).unwrap_or(0),
            self.page.read_u64(off + 8).unwrap_or(0),
        )
    }
}

/// The device model.
#[derive(Debug)]
pub struct Platform {
    /// Device A.
    pub device_a: DeviceA,
    fb: HostMem,
    fb_frames: u64,
    console: Mutex<Console>,
}

/// Bytes the console keeps: the most recent ones; older ones are dropped
/// (and counted) so a guest writing the UART forever costs bounded memory.
pub const CONSOLE_CAP: usize = 64 * 1024;

#[derive(Debug, Default)]
struct Console {
    buf: std::collections::VecDeque<u8>,
    dropped: u64,
}

impl Platform {
    /// Builds the platform with a framebuffer BAR of `fb_bytes` (a non-zero
    /// multiple of 4 KiB), reserved lazily.
    pub fn new(fb_bytes: u64) -> Result<Platform, MemError> {
        Ok(Platform {
            device_a: DeviceA {
                state: Mutex::new(DeviceAState::default()),
                page: HostMem::new(PAGE_SIZE)?,
            },
            fb: HostMem::new(fb_bytes)?,
            fb_frames: fb_bytes / PAGE_SIZE,
            console: Mutex::new(Console::default()),
        })
    }

    /// Framebuffer frames `FB_FRAME..FB_FRAME + fb_frames()`.
    pub fn fb_frames(&self) -> u64 {
        self.fb_frames
    }

    /// The framebuffer's backing (for checking what a painter wrote).
    pub fn fb(&self) -> &HostMem {
        &self.fb
    }

    /// Highest guest-physical address any device uses, plus one.
    pub fn top_gpa(&self) -> u64 {
        (FB_FRAME + self.fb_frames) * PAGE_SIZE
    }

    /// A port read that the accountant allowed; `None` when no device claims
    /// the port.
    pub fn port_read(&self, dom: u16, port: u16) -> Option<u32> {
        match port {
            p if (DEVICE_A_PORTS.0..=DEVICE_A_PORTS.1).contains(&p) => {
                Some(self.device_a.read(dom, p))
            }
            // Line status: transmitter empty.
            0x3fd => Some(0x60),
            p if (UART_PORTS.0..=UART_PORTS.1).contains(&p) => Some(0),
            _ => None,
        }
    }

    /// A port write that the accountant allowed.
    pub fn port_write(&self, dom: u16, port: u16, data: u32) -> PortEffect {
        match port {
            p if (DEVICE_A_PORTS.0..=DEVICE_A_PORTS.1).contains(&p) => {
                self.device_a.write(dom, p, data)
            }
            0x3f8 => {
                let mut c = crate::locks::leaf(&self.console);
                if c.buf.len() >= CONSOLE_CAP {
                    c.buf.pop_front();
                    c.dropped = c.dropped.saturating_add(1);
                }
                c.buf.push_back(data as u8);
                PortEffect::None
            }
            _ => PortEffect::None,
        }
    }

    /// The last (at most [`CONSOLE_CAP`]) bytes that reached the console's
    /// transmit register.
    pub fn console(&self) -> Vec<u8> {
        crate::locks::leaf(&self.console)
            .buf
            .iter()
            .copied()
            .collect()
    }

    /// Console bytes dropped because more than [`CONSOLE_CAP`] arrived.
    pub fn console_dropped(&self) -> u64 {
        crate::locks::leaf(&self.console).dropped
    }

    /// The backing memory of a frame's region and the offset of the frame in it.
    pub fn backing_mem(&self, frame: u64) -> Option<(&HostMem, u64)> {
        if frame == DEVICE_A_FRAME {
            Some((&self.device_a.page, 0))
        } else if (FB_FRAME..FB_FRAME + self.fb_frames).contains(&frame) {
            Some((&self.fb, (frame - FB_FRAME) * PAGE_SIZE))
        } else {
            None
        }
    }
}

impl Backings for Platform {
    fn backing(&self, frame: u64) -> Option<Backing> {
        let (mem, off) = self.backing_mem(frame)?;
        let host = mem.host_addr(off)?;
        let (region, region_last) = if frame == DEVICE_A_FRAME {
            (1, DEVICE_A_FRAME)
        } else {
            (2, FB_FRAME + self.fb_frames - 1)
        };
        Some(Backing {
            region,
            host,
            region_last,
        })
    }

    fn next_backed(&self, frame: u64) -> Option<u64> {
        if frame <= DEVICE_A_FRAME {
            Some(DEVICE_A_FRAME)
        } else if frame < FB_FRAME {
            Some(FB_FRAME)
        } else if frame < FB_FRAME + self.fb_frames {
            Some(frame)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_a_counts_per_domain_and_rings() {
        let p = Platform::new(16 * PAGE_SIZE).unwrap();
        assert_eq!(p.port_write(3, DEVICE_A_DATA, 9), PortEffect::None);
        assert_eq!(p.port_read(3, DEVICE_A_DATA), Some(9));
        assert_eq!(
            p.port_write(4, DEVICE_A_DOORBELL, 1),
            PortEffect::RaiseIrq(11)
        );
        assert_eq!(p.port_read(4, 0x1234), None);
        let c = p.device_a.counters();
        assert_eq!(
            c[&3],
            DeviceCounters {
                port_reads: 1,
                port_writes: 1,
                doorbells: 0
            }
        );
        assert_eq!(c[&4].doorbells, 1);
    }

    #[test]
    fn backings_cover_device_memory_only() {
        let p = Platform::new(16 * PAGE_SIZE).unwrap();
        assert!(p.backing(DEVICE_A_FRAME).is_some());
        assert!(p.backing(DEVICE_A_FRAME + 1).is_none());
        assert_eq!(p.backing(FB_FRAME + 15).unwrap().region_last, FB_FRAME + 15);
        assert!(p.backing(FB_FRAME + 16).is_none());
        assert_eq!(p.next_backed(0), Some(DEVICE_A_FRAME));
        assert_eq!(p.next_backed(DEVICE_A_FRAME + 1), Some(FB_FRAME));
        assert_eq!(p.next_backed(FB_FRAME + 16), None);
        assert_eq!(p.top_gpa(), (FB_FRAME + 16) * PAGE_SIZE);
    }

    #[test]
    fn console_keeps_the_most_recent_bytes() {
        let p = Platform::new(PAGE_SIZE).unwrap();
        for i in 0..CONSOLE_CAP + 10 {
            p.port_write(0, 0x3f8, (i % 251) as u32);
        }
        let c = p.console();
        assert_eq!(c.len(), CONSOLE_CAP);
        assert_eq!(p.console_dropped(), 10);
        assert_eq!(c[0], 10, "the oldest 10 bytes went");
        assert_eq!(c[CONSOLE_CAP - 1], ((CONSOLE_CAP + 9) % 251) as u8);
    }
}
