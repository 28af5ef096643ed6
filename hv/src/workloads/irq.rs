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

use crate::hv::{Config, HvError, Hypervisor};
use crate::irqchip::Delivery;
use crate::layout;
use crate::programs;
use crate::vm::{kvm_err, GuestVm, VmError};
use accountant::{DomId, Mode, Space, UnitRange};
use kvm_ioctls::Kvm;
use std::time::Instant;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

/// Paired samples: per round, the bare KVM step and the hypervisor step that
/// contains it (ns), and the CPU the round ran on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Paired {
    /// The bare KVM step.
    pub bare: Vec<u64>,
    /// The hypervisor step.
    pub step: Vec<u64>,
    /// `sched_getcpu` at the end of the round (`u32::MAX` if unknown).
    pub cpu: Vec<u32>,
}

impl Paired {
    fn push(&mut self, bare: u64, step: u64) {
        self.bare.push(bare);
        self.step.push(step);
        self.cpu
            .push(crate::host::current_cpu().unwrap_or(u32::MAX));
    }

    /// Per-round `step / bare`.
    pub fn ratios(&self) -> Vec<f64> {
        self.bare
            .iter()
            .zip(&self.step)
            .map(|(&b, &s)| s as f64 / (b.max(1)) as f64)
            .collect()
    }

    /// Per-round `step - bare` (ns, may be negative).
    pub fn deltas(&self) -> Vec<f64> {
        self.bare
            .iter()
            .zip(&self.step)
            .map(|(&b, &s)| s as f64 - b as f64)
            .collect()
    }
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
            out.bind.push(b, s);
            out.unbind.push(ub, us);
        }
    }
    Ok(out)
}
