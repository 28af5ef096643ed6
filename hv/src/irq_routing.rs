//! Interrupt lines: which domains are bound to each line (a count per
//! binding), binding and unbinding through the accountant, and delivery of
//! a raise to every binder (event-page bit, and the irqfd where the VM has
//! KVM's irqchip, [`crate::irqchip`]).

use crate::acct::Accounting;
use crate::control::Shared;
use crate::domain::{Domain, Stat};
use crate::irqchip::{self, Delivery, IrqfdPool};
use crate::layout;
use crate::locks::{Before, ControlPlane, Guard, IrqLines, Ordered, Root, Token};
use crate::vm::VmError;
use crate::{HvError, Hypervisor};
use accountant::{DomId, Error, Space, UnitRange};
use std::collections::BTreeMap;
use std::sync::Arc;
use vmm_sys_util::eventfd::EventFd;

/// The interrupt lines: the binding table behind its lock, at
/// [`IrqLines`] in the lock order (alone, or after the control plane).
/// Bindings and the domains they reach change only under the control
/// plane; a raise needs no more than the table.
pub(crate) struct Interrupts {
    table: Ordered<IrqLines, IrqTable>,
}

impl Interrupts {
    /// No line bound, no domain.
    pub(crate) fn new() -> Interrupts {
        Interrupts {
            table: Ordered::new(IrqTable::new()),
        }
    }

    fn lock<'a, H: Before<IrqLines>>(
        &'a self,
        held: &'a mut Token<H>,
    ) -> Guard<'a, IrqLines, IrqTable> {
        self.table.lock(held)
    }

    /// Domain `dom`'s VM now exists: its lines can be bound and raised.
    pub(crate) fn add_domain(&self, cp: &mut Token<ControlPlane>, dom: Arc<Domain>) {
        self.lock(cp).add_domain(dom);
    }

    /// Ends every binding of `dom` (its irqfds deassigned before this
    /// returns) and forgets it.
    pub(crate) fn remove_domain(&self, cp: &mut Token<ControlPlane>, dom: u16) {
        self.lock(cp).remove_domain(dom);
    }

    /// Raises `line` for every binder; how many event pages got it.
    pub(crate) fn raise<H: Before<IrqLines>>(&self, held: &mut Token<H>, line: u64) -> usize {
        self.lock(held).raise(line)
    }

    /// Ends `count` bindings of `d` to lines `first..=last`; a line whose
    /// count reaches zero is removed from the table and its irqfd
    /// deassigned before this returns.
    pub(crate) fn unbind_lines(
        &self,
        cp: &mut Token<ControlPlane>,
        d: DomId,
        first: u64,
        last: u64,
        count: u32,
    ) {
        let mut irqs = self.lock(cp);
        for irq in first..=last.min(Space::Irq.max_unit()) {
            irqs.unbind(irq, d.get(), count);
        }
    }
}

/// Which domains are bound to each line, how many bindings each holds, and
/// the irqfd of each binding on a VM with KVM's irqchip: one short list per
/// line, indexed by the line, its binders in domain order. A list keeps its
/// storage when its last binder leaves and eventfds come from a pool, so
/// once a line has been bound a bind allocates nothing.
///
/// The table also holds every domain that has a VM (added at creation,
/// removed at destroy, both under the control plane, like the domain
/// table), so a bind, an unbind or a raise takes this one lock and no
/// other.
pub(crate) struct IrqTable {
    lines: Box<[Vec<Binder>]>,
    doms: BTreeMap<u16, Arc<Domain>>,
    pool: IrqfdPool,
}

/// One domain's bindings of one line.
#[derive(Debug)]
struct Binder {
    dom: u16,
    count: u32,
    /// Its irqfd, assigned at the first binding where the VM has an
    /// irqchip and deassigned when the last one ends.
    fd: Option<EventFd>,
}

impl IrqTable {
    /// No line bound, no domain.
    pub(crate) fn new() -> IrqTable {
        IrqTable {
            lines: (0..=Space::Irq.max_unit()).map(|_| Vec::new()).collect(),
            doms: BTreeMap::new(),
            pool: IrqfdPool::default(),
        }
    }

    fn list(&self, line: u64) -> &[Binder] {
        usize::try_from(line)
            .ok()
            .and_then(|l| self.lines.get(l))
            .map_or(&[][..], |v| &v[..])
    }

    /// Whether domain `dom` holds a binding of `line`.
    fn is_bound(&self, line: u64, dom: u16) -> bool {
        self.list(line).iter().any(|b| b.dom == dom)
    }

    /// Lines with an irqfd assigned on domain `dom`'s VM, ascending.
    fn irqfd_lines(&self, dom: u16) -> Vec<u32> {
        (0..=Space::Irq.max_unit())
            .filter(|&l| self.list(l).iter().any(|b| b.dom == dom && b.fd.is_some()))
            .map(|l| l as u32)
            .collect()
    }

    fn add_domain(&mut self, dom: Arc<Domain>) {
        if dom.gvm().irqchip {
            self.pool.top_up();
        }
        self.doms.insert(dom.id().get(), dom);
    }

    fn remove_domain(&mut self, dom: u16) {
        let vm = self.doms.remove(&dom);
        for (line, list) in self.lines.iter_mut().enumerate() {
            let Some(i) = list.iter().position(|b| b.dom == dom) else {
                continue;
            };
            let b = list.remove(i);
            if let (Some(fd), Some(vm)) = (b.fd, &vm) {
                self.pool.deassign(&vm.gvm().vm, line as u32, fd);
            }
        }
    }

    /// One more binding of `line` by `dom`; at its first, the irqfd is
    /// assigned where the VM has an irqchip. `Err(errno)` if KVM refused
    /// it: the binding is counted all the same, for the caller to undo.
    fn bind(&mut self, line: u64, dom: u16) -> Result<(), i32> {
        let Some(list) = usize::try_from(line)
            .ok()
            .and_then(|l| self.lines.get_mut(l))
        else {
            return Ok(());
        };
        let i = match list.binary_search_by_key(&dom, |b| b.dom) {
            Ok(i) => {
                list[i].count = list[i].count.saturating_add(1);
                return Ok(());
            }
            Err(i) => {
                list.insert(
                    i,
                    Binder {
                        dom,
                        count: 1,
                        fd: None,
                    },
                );
                i
            }
        };
        let Some(d) = self.doms.get(&dom) else {
            return Ok(());
        };
        if !d.gvm().irqchip || line >= u64::from(crate::irqchip::LINES) {
            return Ok(());
        }
        list[i].fd = Some(self.pool.assign(&d.gvm().vm, line as u32)?);
        Ok(())
    }

    /// Ends `count` of `dom`'s bindings of `line`; at its last, `dom` is no
    /// longer a binder and its irqfd is deassigned before this returns.
    fn unbind(&mut self, line: u64, dom: u16, count: u32) {
        let Some(list) = usize::try_from(line)
            .ok()
            .and_then(|l| self.lines.get_mut(l))
        else {
            return;
        };
        let Ok(i) = list.binary_search_by_key(&dom, |b| b.dom) else {
            return;
        };
        list[i].count = list[i].count.saturating_sub(count);
        if list[i].count > 0 {
            return;
        }
        let b = list.remove(i);
        if let (Some(fd), Some(d)) = (b.fd, self.doms.get(&dom)) {
            self.pool.deassign(&d.gvm().vm, line as u32, fd);
        }
    }

    /// Raises `line` for every binder: its pending bit in the binder's
    /// event page, the interrupt through its irqfd if it has one, a wake
    /// from `BLOCK`. How many event pages got it.
    fn raise(&self, line: u64) -> usize {
        let word = layout::EVTCHN_PAGE + 8 * (line / 64);
        let bit = 1u64 << (line % 64);
        let mut n = 0;
        for b in self.list(line) {
            let Some(dom) = self.doms.get(&b.dom) else {
                continue;
            };
            if dom.gvm().ram.fetch_or_u64(word, bit).is_some() {
                dom.count(Stat::Events, 1);
                n += 1;
            }
            // With an irqchip, the pending bit is also an interrupt.
            if let Some(fd) = &b.fd {
                irqchip::raise(fd);
            }
            dom.wake();
        }
        n
    }
}

impl Shared {
    pub(crate) fn bind(
        &self,
        root: &mut Token<Root>,
        d: DomId,
        r: UnitRange,
    ) -> Result<(), HvError> {
        let mut acct = self.acct_for(root, r, Space::Irq)?;
        acct.bind(d, r)?;
        let mut irqs = self.irqs().lock(acct.token());
        for irq in r.first()..=r.last() {
            if let Err(errno) = irqs.bind(irq, d.get()) {
                // Undo this bind entirely: the lines bound so far, the table,
                // the accountant.
                drop(irqs);
                self.irqs().unbind_lines(acct.token(), d, r.first(), irq, 1);
                let _ = acct.unbind(d, r);
                return Err(HvError::Vm(VmError::Kvm {
                    what: "KVM_IRQFD assign",
                    errno,
                }));
            }
        }
        Ok(())
    }

    pub(crate) fn unbind(
        &self,
        root: &mut Token<Root>,
        d: DomId,
        r: UnitRange,
    ) -> Result<(), HvError> {
        let mut acct = self.acct_for(root, r, Space::Irq)?;
        if acct.accounting() == Accounting::Off {
            let irqs = self.irqs().lock(acct.token());
            for irq in r.first()..=r.last() {
                if !irqs.is_bound(irq, d.get()) {
                    return Err(Error::NotBound { unit: irq }.into());
                }
            }
        }
        acct.unbind(d, r)?;
        self.irqs()
            .unbind_lines(acct.token(), d, r.first(), r.last(), 1);
        Ok(())
    }
}

impl Hypervisor {
    /// Binds line(s) `r` for `d`.
    pub fn bind(&self, d: DomId, r: UnitRange) -> Result<(), HvError> {
        self.sh().bind(&mut Token::root(), d, r)
    }

    /// Unbinds line(s) `r` for `d`; no event reaches `d` from them afterwards.
    pub fn unbind(&self, d: DomId, r: UnitRange) -> Result<(), HvError> {
        self.sh().unbind(&mut Token::root(), d, r)
    }

    /// Raises interrupt line `irq`: sets its pending bit in the event page of
    /// every bound domain and wakes them. Returns how many got it.
    pub fn raise_irq(&self, irq: u32) -> usize {
        self.sh().irqs().raise(&mut Token::root(), u64::from(irq))
    }

    /// How interrupts reach domain `d` (KVM irqchip or event page only).
    pub fn irq_delivery(&self, d: DomId) -> Option<Delivery> {
        self.sh().domain(d).map(|x| {
            if x.gvm().irqchip {
                Delivery::Irqchip
            } else {
                Delivery::EventPage
            }
        })
    }

    /// Interrupts domain `d`'s guest handler has taken (the guest's own
    /// count at [`layout::IRQ_COUNT`]; 0 without an irqchip).
    pub fn irqs_taken(&self, d: DomId) -> Option<u64> {
        self.read_guest_u64(d, layout::IRQ_COUNT)
    }

    /// Lines with an irqfd assigned on domain `d`'s VM.
    pub fn irqfd_lines(&self, d: DomId) -> Vec<u32> {
        self.sh()
            .irqs()
            .lock(&mut Token::root())
            .irqfd_lines(d.get())
    }

    /// Rings `d`'s doorbell: sets event bit [`DOORBELL_LINE`] on its event
    /// page and wakes it from `BLOCK`. Bench guests wait on it between
    /// measured steps. False if `d` has no VM.
    pub fn notify(&self, d: DomId) -> bool {
        let Some(dom) = self.sh().domain(d) else {
            return false;
        };
        let word = layout::EVTCHN_PAGE + 8 * (DOORBELL_LINE as u64 / 64);
        let _ = dom
            .gvm()
            .ram
            .fetch_or_u64(word, 1u64 << (DOORBELL_LINE % 64));
        dom.wake();
        true
    }
}

/// The event line bench guests wait on ([`Hypervisor::notify`]); no device
/// uses it.
pub const DOORBELL_LINE: u32 = 1023;

#[cfg(test)]
mod tests {
    use super::*;

    fn binders(t: &IrqTable, line: u64) -> Vec<(u16, u32)> {
        t.list(line).iter().map(|b| (b.dom, b.count)).collect()
    }

    #[test]
    fn bindings_are_counted_per_domain_and_kept_in_domain_order() {
        let mut t = IrqTable::new();
        for dom in [3, 1, 2, 1] {
            assert_eq!(t.bind(11, dom), Ok(()));
        }
        assert_eq!(binders(&t, 11), vec![(1, 2), (2, 1), (3, 1)]);
        assert!(binders(&t, 10).is_empty());
        t.unbind(11, 1, 1);
        assert!(t.is_bound(11, 1));
        t.unbind(11, 1, 1);
        assert!(!t.is_bound(11, 1));
        assert_eq!(binders(&t, 11), vec![(2, 1), (3, 1)]);
        // More than it holds ends every binding; a non-binder is no-op.
        t.unbind(11, 3, 5);
        t.unbind(11, 7, 1);
        assert_eq!(binders(&t, 11), vec![(2, 1)]);
    }

    #[test]
    fn a_line_keeps_its_storage_when_its_last_binder_leaves() {
        let mut t = IrqTable::new();
        assert_eq!(t.bind(5, 1), Ok(()));
        t.unbind(5, 1, 1);
        assert!(binders(&t, 5).is_empty());
        assert!(t.lines[5].capacity() > 0);
    }

    #[test]
    fn removing_a_domain_ends_its_bindings_on_every_line_only() {
        let mut t = IrqTable::new();
        for (line, dom) in [(0, 1), (0, 2), (1023, 1), (500, 2)] {
            assert_eq!(t.bind(line, dom), Ok(()));
        }
        t.remove_domain(1);
        assert_eq!(binders(&t, 0), vec![(2, 1)]);
        assert!(binders(&t, 1023).is_empty());
        assert_eq!(binders(&t, 500), vec![(2, 1)]);
        // Without VMs no irqfd was assigned, and a raise reaches no page.
        assert!(t.irqfd_lines(2).is_empty());
        assert_eq!(t.raise(0), 0);
    }

    #[test]
    fn a_line_past_the_irq_space_is_never_bound() {
        let mut t = IrqTable::new();
        assert_eq!(t.bind(1024, 1), Ok(()));
        assert_eq!(t.bind(u64::MAX, 1), Ok(()));
        assert!(!t.is_bound(1024, 1));
        t.unbind(u64::MAX, 1, 1);
        assert_eq!(t.raise(u64::MAX), 0);
    }
}
