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
//! in its event page, as before; [`Delivery`] says which. The binding table
//! that owns the assigned irqfds is `irq_routing.rs`.

use crate::layout;
use crate::vm::{kvm_err, VmError};
use kvm_bindings::{kvm_irq_routing_entry, KvmIrqRouting, KVM_IRQ_ROUTING_MSI};
use kvm_ioctls::{VcpuFd, VmFd};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

/// The vector every line is delivered on.
pub const IRQ_VECTOR: u8 = 0x40;
/// Lines routed (the accountant's irq space).
pub const LINES: u32 = 1024;
/// Eventfds kept ready, so a bind does not create one.
pub const POOL: usize = 4;

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

/// Spare eventfds, kept ready so that a bind creates none. An eventfd
/// belongs to no VM until it is assigned, so one pool serves every VM; a
/// deassigned eventfd is drained and comes back.
#[derive(Debug, Default)]
pub struct IrqfdPool {
    spare: Vec<EventFd>,
}

impl IrqfdPool {
    /// Creates eventfds until [`POOL`] are spare (fewer if the host
    /// refuses; a bind then creates its own).
    pub fn top_up(&mut self) {
        while self.spare.len() < POOL {
            match EventFd::new(EFD_NONBLOCK) {
                Ok(fd) => self.spare.push(fd),
                Err(_) => break,
            }
        }
    }

    /// Assigns an irqfd for GSI `line` on `vm`, which must have an
    /// irqchip: the eventfd now wired to it, or the errno if KVM (or the
    /// host, creating an eventfd) refuses.
    pub fn assign(&mut self, vm: &VmFd, line: u32) -> Result<EventFd, i32> {
        let fd = match self.spare.pop() {
            Some(fd) => fd,
            None => {
                EventFd::new(EFD_NONBLOCK).map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?
            }
        };
        match vm.register_irqfd(&fd, line) {
            Ok(()) => Ok(fd),
            Err(e) => {
                self.spare.push(fd);
                Err(e.errno())
            }
        }
    }

    /// Deassigns `fd` from GSI `line` on `vm` (synchronous: once this
    /// returns KVM injects nothing more from it).
    pub fn deassign(&mut self, vm: &VmFd, line: u32, fd: EventFd) {
        // A refusal means KVM no longer has it; the fd is dropped then.
        if vm.unregister_irqfd(&fd, line).is_ok() {
            // Drain a count a raise left behind, so a later bind starts clean.
            let _ = fd.read();
            if self.spare.len() < 4 * POOL {
                self.spare.push(fd);
            }
        }
    }
}

/// Signals an assigned irqfd (KVM injects the line's interrupt); whether
/// the write succeeded.
pub fn raise(fd: &EventFd) -> bool {
    fd.write(1).is_ok()
}

/// The guest-RAM word the interrupt handler counts in.
pub const COUNT_GPA: u64 = layout::IRQ_COUNT;
