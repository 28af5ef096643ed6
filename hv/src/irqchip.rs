//! Interrupts through KVM's in-kernel irqchip.
//!
//! Where KVM offers an in-kernel irqchip (`KVM_CREATE_IRQCHIP`, which works
//! on PVM as on VT-x and AMD-V), every VM gets one at creation, with a GSI
//! routing table that sends each interrupt line `l` (GSI `l`,
//! `0..=1023`) as an MSI to vector [`IRQ_VECTOR`] of vCPU 0. Binding a line
//! for a domain assigns an irqfd (`KVM_IRQFD`) for that GSI on the domain's
//! VM; raising the line writes the eventfd, and KVM injects the interrupt,
//! which the guest takes in its interrupt handler (it counts them at
//! [`layout::IRQ_COUNT`]). Unbinding deassigns the irqfd before it returns,
//! so no later raise reaches the domain. The routing is set once per VM, so
//! a bind is only the irqfd assignment.
//!
//! Where KVM has no irqchip, a domain gets interrupts only as pending bits
//! in its event page, as before; [`IrqFds::chip`] says which.

use crate::layout;
use crate::vm::{kvm_err, VmError};
use kvm_bindings::{kvm_irq_routing_entry, KvmIrqRouting, KVM_IRQ_ROUTING_MSI};
use kvm_ioctls::{VcpuFd, VmFd};
use std::sync::Mutex;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

/// The vector every line is delivered on.
pub const IRQ_VECTOR: u8 = 0x40;
/// Lines routed (the accountant's irq space).
pub const LINES: u32 = 1024;
/// Eventfds a domain keeps ready, so a bind does not create one.
const POOL: usize = 4;

/// Which way interrupts reach a domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// KVM's in-kernel irqchip: an irqfd per bound line, taken by the guest's handler.
    Irqchip,
    /// Pending bits in the domain's event page only.
    EventPage,
}

impl Delivery {
    /// The name used in results.
    pub fn name(self) -> &'static str {
        match self {
            Delivery::Irqchip => "irqchip",
            Delivery::EventPage => "event-page",
        }
    }
}

/// Creates the in-kernel irqchip of a fresh VM (before any vCPU) and routes
/// every line to [`IRQ_VECTOR`]; `Ok(false)` if KVM has no irqchip.
pub fn create(vm: &VmFd) -> Result<bool, VmError> {
    if vm.create_irq_chip().is_err() {
        return Ok(false);
    }
    let mut routing = KvmIrqRouting::new(0).map_err(|_| VmError::Kvm {
        what: "GSI routing table",
        errno: libc::ENOMEM,
    })?;
    for gsi in 0..LINES {
        let mut e = kvm_irq_routing_entry {
            gsi,
            type_: KVM_IRQ_ROUTING_MSI,
            ..Default::default()
        };
        // Fixed delivery, physical destination APIC id 0.
        e.u.msi.address_lo = 0xfee0_0000;
        e.u.msi.address_hi = 0;
        e.u.msi.data = u32::from(IRQ_VECTOR);
        routing.push(e).map_err(|_| VmError::Kvm {
            what: "GSI routing table",
            errno: libc::ENOMEM,
        })?;
    }
    vm.set_gsi_routing(&routing)
        .map_err(kvm_err("KVM_SET_GSI_ROUTING"))?;
    Ok(true)
}

/// Software-enables a vCPU's local APIC (spurious vector register bit 8),
/// so it accepts the routed interrupts.
pub fn enable_lapic(vcpu: &VcpuFd) -> Result<(), VmError> {
    let mut lapic = vcpu.get_lapic().map_err(kvm_err("KVM_GET_LAPIC"))?;
    const SVR: usize = 0xf0;
    let v = 0x1ffu32.to_le_bytes();
    for (i, b) in v.iter().enumerate() {
        lapic.regs[SVR + i] = *b as libc::c_char;
    }
    vcpu.set_lapic(&lapic).map_err(kvm_err("KVM_SET_LAPIC"))
}

/// The irqfds of one domain's VM: one per bound line. A domain binds few
/// lines, so they are a short list whose storage is kept across binds, and
/// spare eventfds are kept ready (a bind allocates nothing in steady state).
#[derive(Debug)]
pub struct IrqFds {
    chip: bool,
    fds: Mutex<Fds>,
}

/// Bound lines and spare eventfds, under one lock.
#[derive(Debug, Default)]
struct Fds {
    bound: Vec<(u32, EventFd)>,
    pool: Vec<EventFd>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl IrqFds {
    /// For a VM with (`chip`) or without an irqchip.
    pub fn new(chip: bool) -> IrqFds {
        let pool = if chip {
            (0..POOL)
                .filter_map(|_| EventFd::new(EFD_NONBLOCK).ok())
                .collect()
        } else {
            Vec::new()
        };
        IrqFds {
            chip,
            fds: Mutex::new(Fds {
                bound: Vec::with_capacity(POOL),
                pool,
            }),
        }
    }

    /// How interrupts reach this domain.
    pub fn delivery(&self) -> Delivery {
        if self.chip {
            Delivery::Irqchip
        } else {
            Delivery::EventPage
        }
    }

    /// Whether the VM has an irqchip.
    pub fn chip(&self) -> bool {
        self.chip
    }

    /// Assigns an irqfd for `line` on `vm` (no-op without an irqchip or if
    /// one is assigned already); the errno if KVM refuses.
    pub fn assign(&self, vm: &VmFd, line: u32) -> Result<(), i32> {
        if !self.chip || line >= LINES {
            return Ok(());
        }
        let mut fds = lock(&self.fds);
        if fds.bound.iter().any(|(l, _)| *l == line) {
            return Ok(());
        }
        let fd = match fds.pool.pop() {
            Some(fd) => fd,
            None => {
                EventFd::new(EFD_NONBLOCK).map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?
            }
        };
        match vm.register_irqfd(&fd, line) {
            Ok(()) => {
                fds.bound.push((line, fd));
                Ok(())
            }
            Err(e) => {
                fds.pool.push(fd);
                Err(e.errno())
            }
        }
    }

    /// Deassigns `line`'s irqfd (synchronous: once this returns KVM injects
    /// nothing more from it). No-op if none is assigned.
    pub fn deassign(&self, vm: &VmFd, line: u32) {
        let mut fds = lock(&self.fds);
        let Some(i) = fds.bound.iter().position(|(l, _)| *l == line) else {
            return;
        };
        let (_, fd) = fds.bound.swap_remove(i);
        // A refusal means KVM no longer has it; the fd is dropped then.
        if vm.unregister_irqfd(&fd, line).is_ok() {
            // Drain a count a raise left behind, so a later bind starts clean.
            let _ = fd.read();
            if fds.pool.len() < POOL {
                fds.pool.push(fd);
            }
        }
    }

    /// Deassigns every line.
    pub fn deassign_all(&self, vm: &VmFd) {
        for l in self.lines() {
            self.deassign(vm, l);
        }
    }

    /// Signals `line`'s irqfd; whether one is assigned.
    pub fn raise(&self, line: u32) -> bool {
        lock(&self.fds)
            .bound
            .iter()
            .find(|(l, _)| *l == line)
            .is_some_and(|(_, fd)| fd.write(1).is_ok())
    }

    /// Lines with an irqfd assigned, ascending.
    pub fn lines(&self) -> Vec<u32> {
        let mut v: Vec<u32> = lock(&self.fds).bound.iter().map(|(l, _)| *l).collect();
        v.sort_unstable();
        v
    }
}

/// The guest-RAM word the interrupt handler counts in.
pub const COUNT_GPA: u64 = layout::IRQ_COUNT;
