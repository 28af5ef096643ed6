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
///
/// **Deassignment happens before unbind, revoke, forced grant and destroy
/// return.** A raise delivers to a line's binders while it holds the table
/// ([`IrqTable::raise`]); the unbind of a line's last binding
/// ([`Interrupts::unbind_lines`], which revoke and forced grant reach
/// through their teardown) and destroy ([`Interrupts::remove_domain`])
/// remove the binder and deassign its irqfd under the same lock. So once
/// one of them has returned, no delivery to that binder begins, and one
/// that began before has finished. The delivery itself is behind
/// [`Deliver`] (KVM's irqfds and event pages in the product), so `cargo
/// xtask loom` runs this code with loom's mutex and a delivery it can
/// watch, and rejects a raise that delivers after letting the lock go.
pub(crate) struct Interrupts<D: Deliver = Vms> {
    table: Ordered<IrqLines, IrqTable<D>>,
}

impl Interrupts<Vms> {
    /// No line bound, no domain.
    pub(crate) fn new() -> Interrupts<Vms> {
        Interrupts {
            table: Ordered::new(IrqTable::new()),
        }
    }

    /// Domain `dom`'s VM now exists: its lines can be bound and raised.
    pub(crate) fn add_domain(&self, cp: &mut Token<ControlPlane>, dom: Arc<Domain>) {
        self.lock(cp).add_domain(dom);
    }
}

impl<D: Deliver> Interrupts<D> {
    /// No line bound; raises go to `sink`.
    #[cfg(all(test, loom))]
    fn with_sink(sink: D) -> Interrupts<D> {
        Interrupts {
            table: Ordered::new(IrqTable::with_sink(sink)),
        }
    }

    fn lock<'a, H: Before<IrqLines>>(
        &'a self,
        held: &'a mut Token<H>,
    ) -> Guard<'a, IrqLines, IrqTable<D>> {
        self.table.lock(held)
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

    /// `raise` that lets the table go before it delivers (the binders read
    /// under the lock, delivered to after): what the model must reject.
    #[cfg(all(test, loom))]
    fn raise_after_unlocking<H: Before<IrqLines>>(&self, held: &mut Token<H>, line: u64) -> usize
    where
        D: Clone,
    {
        let (binders, sink) = {
            let t = self.lock(held);
            let binders: Vec<u16> = t.list(line).iter().map(|b| b.dom).collect();
            (binders, t.sink.clone())
        };
        binders
            .into_iter()
            .filter(|&dom| sink.deliver(dom, line, None))
            .count()
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

/// Where a raise goes, and what a binding holds while it lasts: the
/// part of the interrupt table that touches a VM. The product's is
/// [`Vms`] (event pages, irqfds); the loom model's records deliveries in a
/// cell it checks. Every method is called with the table locked.
pub(crate) trait Deliver {
    /// What one binding holds (an irqfd).
    type Fd;
    /// At `dom`'s first binding of `line`: its handle, if its VM takes
    /// one; `Err(errno)` if the VM refused it.
    fn assign(&mut self, dom: u16, line: u64) -> Result<Option<Self::Fd>, i32>;
    /// At `dom`'s last binding of `line`: lets its handle go. No raise
    /// reaches `dom` through it after this returns.
    fn deassign(&mut self, dom: u16, line: u64, fd: Self::Fd);
    /// `dom` is destroyed: forgets it (its bindings already ended).
    fn forget(&mut self, dom: u16);
    /// Delivers a raise of `line` to its binder `dom` (through `fd` if it
    /// has one); whether `dom`'s event page got it.
    fn deliver(&self, dom: u16, line: u64, fd: Option<&Self::Fd>) -> bool;
}

/// Every domain that has a VM (added at creation, removed at destroy, both
/// under the control plane, like the domain table), and the pool irqfds
/// come from: the product's [`Deliver`].
#[derive(Default)]
pub(crate) struct Vms {
    doms: BTreeMap<u16, Arc<Domain>>,
    pool: IrqfdPool,
}

impl Deliver for Vms {
    type Fd = EventFd;

    fn assign(&mut self, dom: u16, line: u64) -> Result<Option<EventFd>, i32> {
        let Some(d) = self.doms.get(&dom) else {
            return Ok(None);
        };
        if !d.gvm().irqchip || line >= u64::from(crate::irqchip::LINES) {
            return Ok(None);
        }
        self.pool.assign(&d.gvm().vm, line as u32).map(Some)
    }

    fn deassign(&mut self, dom: u16, line: u64, fd: EventFd) {
        if let Some(d) = self.doms.get(&dom) {
            self.pool.deassign(&d.gvm().vm, line as u32, fd);
        }
    }

    fn forget(&mut self, dom: u16) {
        self.doms.remove(&dom);
    }

    /// Its pending bit in the binder's event page, the interrupt through
    /// its irqfd if it has one, a wake from `BLOCK`.
    fn deliver(&self, dom: u16, line: u64, fd: Option<&EventFd>) -> bool {
        let Some(dom) = self.doms.get(&dom) else {
            return false;
        };
        let word = layout::EVTCHN_PAGE + 8 * (line / 64);
        let bit = 1u64 << (line % 64);
        let paged = dom.gvm().ram.fetch_or_u64(word, bit).is_some();
        if paged {
            dom.count(Stat::Events, 1);
        }
        // With an irqchip, the pending bit is also an interrupt.
        if let Some(fd) = fd {
            irqchip::raise(fd);
        }
        dom.wake();
        paged
    }
}

/// Which domains are bound to each line, how many bindings each holds, and
/// the irqfd of each binding on a VM with KVM's irqchip: one short list per
/// line, indexed by the line, its binders in domain order. A list keeps its
/// storage when its last binder leaves and eventfds come from a pool, so
/// once a line has been bound a bind allocates nothing.
///
/// The table also holds its [`Deliver`] (every domain that has a VM), so a
/// bind, an unbind or a raise takes this one lock and no other.
pub(crate) struct IrqTable<D: Deliver = Vms> {
    lines: Box<[Vec<Binder<D::Fd>>]>,
    sink: D,
}

/// One domain's bindings of one line.
#[derive(Debug)]
struct Binder<F> {
    dom: u16,
    count: u32,
    /// Its irqfd, assigned at the first binding where the VM has an
    /// irqchip and deassigned when the last one ends.
    fd: Option<F>,
}

impl IrqTable<Vms> {
    /// No line bound, no domain.
    pub(crate) fn new() -> IrqTable<Vms> {
        IrqTable::with_sink(Vms::default())
    }

    fn add_domain(&mut self, dom: Arc<Domain>) {
        if dom.gvm().irqchip {
            self.sink.pool.top_up();
        }
        self.sink.doms.insert(dom.id().get(), dom);
    }
}

impl<D: Deliver> IrqTable<D> {
    /// No line bound; raises go to `sink`.
    fn with_sink(sink: D) -> IrqTable<D> {
        IrqTable {
            lines: (0..=Space::Irq.max_unit()).map(|_| Vec::new()).collect(),
            sink,
        }
    }

    fn list(&self, line: u64) -> &[Binder<D::Fd>] {
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

    fn remove_domain(&mut self, dom: u16) {
        for (line, list) in self.lines.iter_mut().enumerate() {
            let Some(i) = list.iter().position(|b| b.dom == dom) else {
                continue;
            };
            let b = list.remove(i);
            if let Some(fd) = b.fd {
                self.sink.deassign(dom, line as u64, fd);
            }
        }
        self.sink.forget(dom);
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
        list[i].fd = self.sink.assign(dom, line)?;
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
        if let Some(fd) = b.fd {
            self.sink.deassign(dom, line, fd);
        }
    }

    /// Raises `line` for every binder ([`Deliver::deliver`]), the table
    /// held throughout. How many event pages got it.
    fn raise(&self, line: u64) -> usize {
        self.list(line)
            .iter()
            .filter(|b| self.sink.deliver(b.dom, line, b.fd.as_ref()))
            .count()
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

#[cfg(all(test, loom))]
mod loom_model {
    //! A device raises a line bound by one domain while the control plane
    //! ends that binding (unbind, or the teardown of a revoke or forced
    //! grant: `unbind_lines`) or destroys the domain (`remove_domain`),
    //! then hands the domain's event page on (a write). The delivery writes
    //! the page too, so loom reports a causality violation if a delivery
    //! is not ordered before the operation's return. The table, its lock
    //! and the raise are the product's; only [`Deliver`] is the model's.
    use super::{Deliver, Interrupts};
    use crate::locks::{ControlPlane, Ordered, Token};
    use accountant::DomId;
    use loom::cell::UnsafeCell;
    use loom::sync::Arc;

    const LINE: u64 = 9;
    const DOM: u16 = 1;
    /// Bound to the line throughout: still delivered to.
    const OTHER: u16 = 2;

    /// `DOM`'s event page; deliveries to `OTHER` only counted.
    #[derive(Clone)]
    struct Page(Arc<UnsafeCell<u64>>);

    impl Deliver for Page {
        type Fd = ();
        fn assign(&mut self, _dom: u16, _line: u64) -> Result<Option<()>, i32> {
            Ok(Some(()))
        }
        fn deassign(&mut self, _dom: u16, _line: u64, _fd: ()) {}
        fn forget(&mut self, _dom: u16) {}
        fn deliver(&self, dom: u16, line: u64, _fd: Option<&()>) -> bool {
            if dom == DOM {
                // SAFETY: loom's cell checks this write against the control
                // plane's hand-over; nothing else touches the page.
                self.0.with_mut(|p| unsafe { *p |= 1 << (line % 64) });
            }
            true
        }
    }

    /// How the binding ends.
    #[derive(Clone, Copy)]
    enum End {
        Unbind,
        Destroy,
    }

    fn run(end: End, weakened: bool) {
        loom::model(move || {
            let page = Arc::new(UnsafeCell::new(0u64));
            let irqs = Arc::new(Interrupts::with_sink(Page(Arc::clone(&page))));
            let cp = Ordered::<ControlPlane, ()>::new(());
            let mut root = Token::root();
            {
                let mut acct = cp.lock(&mut root);
                let mut t = irqs.lock(acct.token());
                for dom in [DOM, OTHER] {
                    assert_eq!(t.bind(LINE, dom), Ok(()));
                }
            }
            let device = {
                let irqs = Arc::clone(&irqs);
                loom::thread::spawn(move || {
                    let mut root = Token::root();
                    let n = if weakened {
                        irqs.raise_after_unlocking(&mut root, LINE)
                    } else {
                        irqs.raise(&mut root, LINE)
                    };
                    // `OTHER` always, `DOM` if the raise came first.
                    assert!(n == 1 || n == 2, "{n} deliveries");
                })
            };
            {
                let mut acct = cp.lock(&mut root);
                let d = DomId::new(u64::from(DOM)).expect("a valid id");
                match end {
                    End::Unbind => irqs.unbind_lines(acct.token(), d, LINE, LINE, 1),
                    End::Destroy => irqs.remove_domain(acct.token(), DOM),
                }
            }
            // The page now belongs to someone else.
            // SAFETY: as above: loom checks this write against a delivery's.
            page.with_mut(|p| unsafe { *p = 0 });
            device.join().expect("the device thread");
        });
    }

    #[test]
    fn no_delivery_outlives_an_unbind() {
        run(End::Unbind, false);
    }

    #[test]
    fn no_delivery_outlives_a_destroy() {
        run(End::Destroy, false);
    }

    #[test]
    #[should_panic(expected = "Causality violation")]
    fn delivering_after_unlocking_outlives_an_unbind() {
        run(End::Unbind, true);
    }

    #[test]
    #[should_panic(expected = "Causality violation")]
    fn delivering_after_unlocking_outlives_a_destroy() {
        run(End::Destroy, true);
    }
}
