//! What a vCPU's exits do: the exit environment [`crate::exit::handle_exit`]
//! runs against (port check, device model, MMIO, hypercalls), and hypercall
//! dispatch to the control plane.

use crate::acct::{errno_of, Accounting};
use crate::control::Shared;
use crate::domain::{Domain, Stat, Vcpu};
use crate::exit::{ExitEnv, MmioOutcome};
use crate::hypercall::{self, Op, Rejected};
use crate::layout;
use crate::locks::{Root, Token};
use crate::platform::PortEffect;
use crate::HvError;
use accountant::{DomId, Mode, Space, UnitRange};

/// The exit environment of one vCPU of one domain.
pub(crate) struct Env<'a> {
    sh: &'a Shared,
    dom: &'a Domain,
    vcpu: &'a Vcpu,
    /// The vCPU thread's root of the lock order: its exits hold no lock
    /// when they reach the shared state.
    root: Token<Root>,
}

impl<'a> Env<'a> {
    /// The environment of `vcpu` of `dom`, made on its own thread.
    pub(crate) fn new(sh: &'a Shared, dom: &'a Domain, vcpu: &'a Vcpu) -> Env<'a> {
        Env {
            sh,
            dom,
            vcpu,
            root: Token::root(),
        }
    }
}

impl ExitEnv for Env<'_> {
    fn port_allowed(&self, port: u16, size: u8) -> bool {
        self.dom.port_allowed(port, size)
    }
    fn quiesces(&self) -> bool {
        self.sh.cfg().accounting == Accounting::On
    }
    fn port_read(&mut self, port: u16, _size: u8) -> Option<u32> {
        self.sh.platform().port_read(self.dom.id().get(), port)
    }
    fn port_write(&mut self, port: u16, _size: u8, data: u32) {
        if let PortEffect::RaiseIrq(irq) =
            self.sh
                .platform()
                .port_write(self.dom.id().get(), port, data)
        {
            self.sh.irqs().raise(&mut self.root, u64::from(irq));
        }
    }
    fn port_denied(&mut self, _port: u16, _size: u8, _write: bool) {
        self.dom.count(Stat::DeniedPorts, 1);
    }
    fn hypercall(&mut self) -> u32 {
        self.sh
            .hypercall(&mut self.root, self.dom, self.vcpu.ctl().index())
    }
    fn bad_hypercall(&mut self) {
        self.dom.count(Stat::BadHypercalls, 1);
    }
    fn mmio_read(&mut self, gpa: u64, len: u8) -> MmioOutcome {
        self.sh.mmio(&mut self.root, self.dom, gpa, len, None)
    }
    fn mmio_write(&mut self, gpa: u64, len: u8, data: [u8; 8]) -> MmioOutcome {
        self.sh.mmio(&mut self.root, self.dom, gpa, len, Some(data))
    }
    fn stop_requested(&self) -> bool {
        self.vcpu.ctl().stop_requested()
    }
    fn domain(&self) -> u16 {
        self.dom.id().get()
    }
}

impl Shared {
    /// Runs vCPU `vcpu`'s hypercall from its block; its status. From the
    /// vCPU thread, outside its in-flight section, with no lock held.
    pub(crate) fn hypercall(&self, root: &mut Token<Root>, dom: &Domain, vcpu: u32) -> u32 {
        let t0 = tracepoints::start();
        dom.count(Stat::Hypercalls, 1);
        let block = layout::hcall_block(vcpu);
        let raw_op = dom.gvm().ram.read_u64(block).unwrap_or(0);
        let (status, failed) = match Op::read_vcpu(&dom.gvm().ram, vcpu) {
            Err(Rejected(s)) => (s, true),
            Ok(op) => {
                // DOM_ID returns a value, not a status: never a failure.
                let is_value = matches!(op, Op::DomId | Op::VcpuId);
                let r = match op {
                    Op::MapIomem(r) => self.map(root, dom.id(), r).map(|_| 0),
                    Op::UnmapIomem(r) => self.unmap(root, dom.id(), r).map(|_| 0),
                    Op::BindIrq(r) => self.bind(root, dom.id(), r).map(|_| 0),
                    Op::UnbindIrq(r) => self.unbind(root, dom.id(), r).map(|_| 0),
                    Op::Query(space, unit) => {
                        self.query_bits(root, dom.id(), space, unit).map(|bits| {
                            dom.gvm()
                                .ram
                                .write_u64(block + 32, bits)
                                .map_or(hypercall::E_FAULT, |_| 0)
                        })
                    }
                    Op::Block(us) => Ok(dom.block(us)),
                    Op::DomId => Ok(dom.id().get() as u32),
                    Op::VcpuId => Ok(vcpu),
                };
                let s = match r {
                    Ok(s) => s,
                    Err(HvError::Acct(e)) => {
                        if e.code() == accountant::ErrorCode::Quota {
                            dom.count(Stat::QuotaRefusals, 1);
                        }
                        errno_of(e.code())
                    }
                    Err(_) => hypercall::E_HV,
                };
                (s, !is_value && s != 0)
            }
        };
        if failed {
            dom.count(Stat::HypercallErrors, 1);
        }
        tracepoints::tp!(tracepoints::Record::new(tracepoints::Kind::Hypercall)
            .domain(dom.id().get())
            .extra(raw_op)
            .value(status as u64)
            .since(t0));
        status
    }

    /// The QUERY answer for `d`. The accountant's refusal becomes the
    /// hypercall's status, except for a RAM frame (answered "nothing", as
    /// with accounting off).
    pub(crate) fn query_bits(
        &self,
        root: &mut Token<Root>,
        d: DomId,
        space: Space,
        unit: u64,
    ) -> Result<u64, HvError> {
        let acct = self.acct(root);
        Ok(match acct.query(space, unit) {
            Some(Ok(i)) => {
                let mut bits = 0;
                if let Some((_, m)) = i.holders.iter().find(|(h, _)| *h == d) {
                    bits |= hypercall::QUERY_HELD;
                    if *m == Mode::Exclusive {
                        bits |= hypercall::QUERY_EXCLUSIVE;
                    }
                }
                if i.reserved {
                    bits |= hypercall::QUERY_RESERVED;
                }
                if i.draining.contains(&d) {
                    bits |= hypercall::QUERY_DRAINING;
                }
                let uses = i.uses.iter().find(|(u, _)| *u == d).map_or(0, |(_, n)| *n);
                bits | ((uses as u64) << hypercall::QUERY_USES_SHIFT)
            }
            // A RAM frame is no I/O memory: nobody holds or uses it, the
            // answer accounting off gives too (its caps never cover RAM).
            Some(Err(e)) if e.code() == accountant::ErrorCode::NotIoMemory => 0,
            Some(Err(e)) => return Err(e.into()),
            None => match UnitRange::one(space, unit).map(|r| acct.caps_cover(d, r)) {
                Ok(Some(true)) => hypercall::QUERY_HELD,
                _ => 0,
            },
        })
    }
}
