//! Interrupt lines: which domains are bound to each line (a count per
//! binding), binding and unbinding through the accountant, and delivery of
//! a raise to every binder (event-page bit, and the irqfd where the VM has
//! KVM's irqchip, [`crate::irqchip`]).

use crate::acct::Accounting;
use crate::control::{lock, Shared};
use crate::irqchip::Delivery;
use crate::layout;
use crate::vm::VmError;
use crate::{HvError, Hypervisor};
use accountant::{DomId, Error, Space, UnitRange};
use std::sync::atomic::Ordering;

impl Shared {
    pub(crate) fn raise_irq(&self, irq: u32) -> usize {
        let irqs = lock(&self.irqs);
        let Some(binders) = irqs.get(&irq) else {
            return 0;
        };
        let word = layout::EVTCHN_PAGE + 8 * (irq as u64 / 64);
        let bit = 1u64 << (irq % 64);
        let mut n = 0;
        for d in binders.keys() {
            let Ok(id) = DomId::new(*d as u64) else {
                continue;
            };
            if let Some(dom) = self.domain(id) {
                if dom.gvm.ram.fetch_or_u64(word, bit).is_some() {
                    dom.stats.events.fetch_add(1, Ordering::Relaxed);
                    n += 1;
                }
                // With an irqchip, the pending bit is also an interrupt.
                dom.irq.raise(irq);
                dom.wake();
            }
        }
        n
    }

    pub(crate) fn bind(&self, d: DomId, r: UnitRange) -> Result<(), HvError> {
        if r.space() != Space::Irq {
            return Err(HvError::WrongSpace(r.space()));
        }
        let mut acct = lock(&self.cp);
        acct.bind(d, r)?;
        let mut irqs = lock(&self.irqs);
        let dom = self.domain(d);
        for irq in r.first()..=r.last() {
            let c = irqs
                .entry(irq as u32)
                .or_default()
                .entry(d.get())
                .or_default();
            *c += 1;
            if *c > 1 {
                continue;
            }
            let Some(dom) = &dom else { continue };
            if let Err(errno) = dom.irq.assign(&dom.gvm.vm, irq as u32) {
                // Undo this bind entirely: the lines bound so far, the table,
                // the accountant.
                drop(irqs);
                let undo = accountant::TeardownItem {
                    dom: d,
                    space: Space::Irq,
                    first: r.first(),
                    last: irq,
                    count: 1,
                };
                self.apply_teardown(&vec![undo]);
                let _ = acct.unbind(d, r);
                return Err(HvError::Vm(VmError::Kvm {
                    what: "KVM_IRQFD assign",
                    errno,
                }));
            }
        }
        Ok(())
    }

    pub(crate) fn unbind(&self, d: DomId, r: UnitRange) -> Result<(), HvError> {
        if r.space() != Space::Irq {
            return Err(HvError::WrongSpace(r.space()));
        }
        let mut acct = lock(&self.cp);
        if acct.accounting() == Accounting::Off {
            let irqs = lock(&self.irqs);
            for irq in r.first()..=r.last() {
                if !irqs
                    .get(&(irq as u32))
                    .is_some_and(|b| b.contains_key(&d.get()))
                {
                    return Err(Error::NotBound { unit: irq }.into());
                }
            }
        }
        acct.unbind(d, r)?;
        self.apply_teardown(&vec![accountant::TeardownItem {
            dom: d,
            space: Space::Irq,
            first: r.first(),
            last: r.last(),
            count: 1,
        }]);
        Ok(())
    }

    /// Ends `count` bindings of `d` to lines `first..=last`; a line whose
    /// count reaches zero is removed from the table and its irqfd
    /// deassigned before this returns.
    pub(crate) fn unbind_lines(&self, d: DomId, first: u64, last: u64, count: u32) {
        let mut irqs = lock(&self.irqs);
        for irq in first..=last.min(Space::Irq.max_unit()) {
            if let Some(b) = irqs.get_mut(&(irq as u32)) {
                let gone = match b.get_mut(&d.get()) {
                    Some(c) => {
                        *c = c.saturating_sub(count);
                        *c == 0
                    }
                    None => false,
                };
                if gone {
                    b.remove(&d.get());
                    // Deassigned before the operation returns.
                    if let Some(dom) = self.domain(d) {
                        dom.irq.deassign(&dom.gvm.vm, irq as u32);
                    }
                }
            }
        }
    }
}

impl Hypervisor {
    /// Binds line(s) `r` for `d`.
    pub fn bind(&self, d: DomId, r: UnitRange) -> Result<(), HvError> {
        self.sh.bind(d, r)
    }

    /// Unbinds line(s) `r` for `d`; no event reaches `d` from them afterwards.
    pub fn unbind(&self, d: DomId, r: UnitRange) -> Result<(), HvError> {
        self.sh.unbind(d, r)
    }

    /// Raises interrupt line `irq`: sets its pending bit in the event page of
    /// every bound domain and wakes them. Returns how many got it.
    pub fn raise_irq(&self, irq: u32) -> usize {
        self.sh.raise_irq(irq)
    }

    /// How interrupts reach domain `d` (KVM irqchip or event page only).
    pub fn irq_delivery(&self, d: DomId) -> Option<Delivery> {
        self.sh.domain(d).map(|x| x.irq.delivery())
    }

    /// Interrupts domain `d`'s guest handler has taken (the guest's own
    /// count at [`layout::IRQ_COUNT`]; 0 without an irqchip).
    pub fn irqs_taken(&self, d: DomId) -> Option<u64> {
        self.read_guest_u64(d, layout::IRQ_COUNT)
    }

    /// Lines with an irqfd assigned on domain `d`'s VM.
    pub fn irqfd_lines(&self, d: DomId) -> Vec<u32> {
        self.sh.domain(d).map(|x| x.irq.lines()).unwrap_or_default()
    }

    /// Rings `d`'s doorbell: sets event bit [`DOORBELL_LINE`] on its event
    /// page and wakes it from `BLOCK`. Bench guests wait on it between
    /// measured steps. False if `d` has no VM.
    pub fn notify(&self, d: DomId) -> bool {
        let Some(dom) = self.sh.domain(d) else {
            return false;
        };
        let word = layout::EVTCHN_PAGE + 8 * (DOORBELL_LINE as u64 / 64);
        let _ = dom.gvm.ram.fetch_or_u64(word, 1u64 << (DOORBELL_LINE % 64));
        dom.wake();
        true
    }
}

/// The event line bench guests wait on ([`Hypervisor::notify`]); no device
/// uses it.
pub const DOORBELL_LINE: u32 = 1023;
