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

/// Which domains are bound to each line, and how many bindings each holds:
/// one short list per line, indexed by the line, its binders in domain
/// order. A list keeps its storage when its last binder leaves, so once a
/// line has been bound a bind allocates nothing, and finding a line is an
/// index, not a search.
#[derive(Debug)]
pub(crate) struct IrqTable {
    lines: Box<[Vec<Binder>]>,
}

/// One domain's bindings of one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Binder {
    dom: u16,
    count: u32,
}

impl IrqTable {
    /// No line bound.
    pub(crate) fn new() -> IrqTable {
        IrqTable {
            lines: (0..=Space::Irq.max_unit()).map(|_| Vec::new()).collect(),
        }
    }

    /// The domains bound to `line`, ascending.
    fn binders(&self, line: u64) -> impl Iterator<Item = u16> + '_ {
        let list = usize::try_from(line)
            .ok()
            .and_then(|l| self.lines.get(l))
            .map_or(&[][..], |v| &v[..]);
        list.iter().map(|b| b.dom)
    }

    /// Whether `dom` holds a binding of `line`.
    fn is_bound(&self, line: u64, dom: u16) -> bool {
        self.binders(line).any(|d| d == dom)
    }

    fn list(&mut self, line: u64) -> Option<&mut Vec<Binder>> {
        usize::try_from(line)
            .ok()
            .and_then(|l| self.lines.get_mut(l))
    }

    /// One more binding of `line` by `dom`; whether it is `dom`'s first.
    fn add(&mut self, line: u64, dom: u16) -> bool {
        let Some(list) = self.list(line) else {
            return false;
        };
        match list.binary_search_by_key(&dom, |b| b.dom) {
            Ok(i) => {
                list[i].count = list[i].count.saturating_add(1);
                false
            }
            Err(i) => {
                list.insert(i, Binder { dom, count: 1 });
                true
            }
        }
    }

    /// Ends `count` of `dom`'s bindings of `line`; whether that ended its
    /// last one (it is then no longer a binder).
    fn remove(&mut self, line: u64, dom: u16, count: u32) -> bool {
        let Some(list) = self.list(line) else {
            return false;
        };
        let Ok(i) = list.binary_search_by_key(&dom, |b| b.dom) else {
            return false;
        };
        list[i].count = list[i].count.saturating_sub(count);
        if list[i].count > 0 {
            return false;
        }
        list.remove(i);
        true
    }

    /// Ends every binding of `dom`.
    pub(crate) fn remove_domain(&mut self, dom: u16) {
        for list in self.lines.iter_mut() {
            list.retain(|b| b.dom != dom);
        }
    }
}

impl Shared {
    pub(crate) fn raise_irq(&self, irq: u32) -> usize {
        let irqs = lock(&self.irqs);
        let line = u64::from(irq);
        let word = layout::EVTCHN_PAGE + 8 * (line / 64);
        let bit = 1u64 << (irq % 64);
        let mut n = 0;
        // Lock order: the binding table, then the domain table.
        let doms = self.domains.read().unwrap_or_else(|p| p.into_inner());
        for d in irqs.binders(line) {
            if let Some(dom) = doms.get(&d) {
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
        // Lock order: the binding table, then the domain table. Its writers
        // (create, destroy) hold the control plane, which this holds too.
        let doms = self.domains.read().unwrap_or_else(|p| p.into_inner());
        let dom = doms.get(&d.get());
        for irq in r.first()..=r.last() {
            if !irqs.add(irq, d.get()) {
                continue;
            }
            let Some(dom) = dom else { continue };
            if let Err(errno) = dom.irq.assign(&dom.gvm.vm, irq as u32) {
                // Undo this bind entirely: the lines bound so far, the table,
                // the accountant.
                drop(doms);
                drop(irqs);
                self.unbind_lines(d, r.first(), irq, 1);
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
                if !irqs.is_bound(irq, d.get()) {
                    return Err(Error::NotBound { unit: irq }.into());
                }
            }
        }
        acct.unbind(d, r)?;
        self.unbind_lines(d, r.first(), r.last(), 1);
        Ok(())
    }

    /// Ends `count` bindings of `d` to lines `first..=last`; a line whose
    /// count reaches zero is removed from the table and its irqfd
    /// deassigned before this returns.
    pub(crate) fn unbind_lines(&self, d: DomId, first: u64, last: u64, count: u32) {
        let mut irqs = lock(&self.irqs);
        let mut dom = None;
        for irq in first..=last.min(Space::Irq.max_unit()) {
            if irqs.remove(irq, d.get(), count) {
                // Deassigned before the operation returns.
                if let Some(dom) = dom.get_or_insert_with(|| self.domain(d)) {
                    dom.irq.deassign(&dom.gvm.vm, irq as u32);
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
