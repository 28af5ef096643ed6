//! `hv.bind_irq` / `hv.unbind_irq` against a bare `KVM_IRQFD` assign /
//! deassign, paired per round.
//!
//! Each round measures, on the calling thread and back to back, the bare
//! step (an irqfd assign on a VM with an irqchip, then its deassign) and
//! the hypervisor step that contains it (`Hypervisor::bind` of one line the
//! domain holds: the accountant's bind plus the irqfd assign; then
//! `Hypervisor::unbind`), alternating which goes first. Both VMs have one
//! vCPU, created and not running. Each sample records the CPU it was taken
//! on.

use crate::irqchip::Delivery;
use crate::layout;
use crate::programs;
use crate::vm::{kvm_err, GuestVm, VmError};
use crate::{Config, HvError, Hypervisor};
use accountant::{DomId, Mode, Space, UnitRange};
use kvm_ioctls::Kvm;
use std::time::Instant;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

pub use super::paired::Paired;

/// One paired round's samples (ns): the bare step, the hypervisor step,
/// which went first.
fn push(p: &mut Paired, floor: u64, step: u64, floor_first: bool) {
    p.floor.push(floor);
    p.step.push(step);
    p.floor_first.push(floor_first);
    p.cpu
        .push(crate::affinity::current_cpu().unwrap_or(u32::MAX));
}

/// Per-round `step - floor` (ns, may be negative).
pub fn deltas(p: &Paired) -> Vec<f64> {
    p.floor
        .iter()
        .zip(&p.step)
        .map(|(&f, &s)| s as f64 - f as f64)
        .collect()
}

/// Bind and unbind, each paired with its bare irqfd step.
#[derive(Debug, Clone, Default)]
pub struct IrqBind {
    /// `hv.bind_irq` against a bare assign.
    pub bind: Paired,
    /// `hv.unbind_irq` against a bare deassign.
    pub unbind: Paired,
}

fn ns(t: Instant) -> u64 {
    t.elapsed().as_nanos() as u64
}

/// `rounds` paired rounds of bind/unbind of line 11. `Err` where KVM has no
/// irqchip (then a bind touches no KVM state and there is no floor).
pub fn bind_irq(rounds: usize) -> Result<IrqBind, HvError> {
    const LINE: u32 = 11;
    let hv = Hypervisor::boot(Config::default())?;
    let dom = DomId::new(1)?;
    hv.create_domain_paused(dom, &programs::idle()?, layout::DEFAULT_RAM)?;
    if hv.irq_delivery(dom) != Some(Delivery::Irqchip) {
        return Err(HvError::Vm(VmError::Kvm {
            what: "KVM_CREATE_IRQCHIP (no irqchip: interrupts are event-page bits only)",
            errno: libc::ENODEV,
        }));
    }
    let line = UnitRange::one(Space::Irq, u64::from(LINE))?;
    hv.grant(dom, line, Mode::Exclusive, false)?;
    let kvm = Kvm::new().map_err(|e| HvError::NoKvm(e.errno()))?;
    let (bare, _vcpu) = GuestVm::new(&kvm, layout::DEFAULT_RAM, 4, 1, &programs::idle()?)?;
    let fd = EventFd::new(EFD_NONBLOCK).map_err(|e| {
        HvError::Vm(VmError::Kvm {
            what: "eventfd",
            errno: e.raw_os_error().unwrap_or(0),
        })
    })?;
    let assign = || {
        let t = Instant::now();
        bare.vm
            .register_irqfd(&fd, LINE)
            .map_err(kvm_err("KVM_IRQFD assign"))?;
        Ok::<u64, VmError>(ns(t))
    };
    let deassign = || {
        let t = Instant::now();
        bare.vm
            .unregister_irqfd(&fd, LINE)
            .map_err(kvm_err("KVM_IRQFD deassign"))?;
        Ok::<u64, VmError>(ns(t))
    };
    let bind = || {
        let t = Instant::now();
        hv.bind(dom, line)?;
        Ok::<u64, HvError>(ns(t))
    };
    let unbind = || {
        let t = Instant::now();
        hv.unbind(dom, line)?;
        Ok::<u64, HvError>(ns(t))
    };
    let mut out = IrqBind::default();
    for round in 0..rounds + 2 {
        let ((b, s), (ub, us)) = if round % 2 == 0 {
            let b = assign()?;
            let s = bind()?;
            let ub = deassign()?;
            let us = unbind()?;
            ((b, s), (ub, us))
        } else {
            let s = bind()?;
            let b = assign()?;
            let us = unbind()?;
            let ub = deassign()?;
            ((b, s), (ub, us))
        };
        // The first two rounds warm both paths (pool, tree nodes); not kept.
        if round >= 2 {
            push(&mut out.bind, b, s, round % 2 == 0);
            push(&mut out.unbind, ub, us, round % 2 == 0);
        }
    }
    Ok(out)
}
