//! The hypervisor as a back end of the one trace executor
//! ([`accountant::ops::execute`]): `cargo xtask scenario trace` runs a
//! trace through these, so `create` starts a real VM (running
//! [`programs::idle`]), `destroy` stops and frees it, and every teardown a
//! forced grant or revoke returns has deleted real memslots before the op's
//! line is printed.
//!
//! [`TraceHv::boot`] is the trace's `boot` line: the platform's reservations
//! come from it, and domain 0 gets an idle VM of its own.
//!
//! **Which ops are overridden.** An op [`Control`] does not see overridden
//! here runs on the accountant under the control plane
//! ([`Hypervisor::on_accountant`]), and with `--accounting off` answers
//! `err hypervisor no accountant: accounting is off`. Every op of SPEC
//! section 3 is overridden, for one of two reasons: it changes the
//! hypervisor's own state (`create`/`destroy` start and stop VMs,
//! `grant`/`revoke` carry out teardowns and quiesce vCPUs, `reserve`
//! quiesces, `map`/`unmap` change memslots, `bind`/`unbind` irq routes), or
//! it has behaviour of its own with accounting off (every other op: Xen's
//! permissions answer, or the hypervisor's own reservations are accepted
//! unrecorded, or there is no accountant state to show).

use accountant::ops::Control;
use accountant::{
    Accountant, DomId, Error, Mode, Revoked, Space, Teardown, UnitInfo, UnitRange, Violation,
};

use crate::acct::Accounting;
use crate::programs;
use crate::{Config, HvError, Hypervisor};

/// A hypervisor booted for a trace: [`Control`] on it runs each op on the
/// control plane, with real VMs behind every domain.
pub struct TraceHv(pub Hypervisor);

impl TraceHv {
    /// Boots a hypervisor with `boot_line` (a trace's `boot` options),
    /// accounting `m` and a 16 MiB framebuffer, and starts domain 0 idle.
    pub fn boot(boot_line: &str, m: Accounting) -> Result<TraceHv, HvError> {
        let hv = Hypervisor::boot(Config {
            accounting: m,
            boot_line: boot_line.to_string(),
            fb_bytes: 16 << 20,
            ..Config::default()
        })?;
        hv.create_domain(DomId::DOM0, &programs::idle()?)?;
        Ok(TraceHv(hv))
    }
}

impl Control for TraceHv {
    type Error = HvError;

    fn acct_error(e: &HvError) -> Option<&Error> {
        match e {
            HvError::Acct(e) => Some(e),
            _ => None,
        }
    }
    fn on_accountant<R>(
        &mut self,
        f: impl FnOnce(&mut Accountant) -> Result<R, Error>,
    ) -> Result<R, HvError> {
        self.0.on_accountant(f)
    }
    fn create(&mut self, d: DomId) -> Result<(), HvError> {
        self.0.create_domain(d, &programs::idle()?)
    }
    fn destroy(&mut self, d: DomId) -> Result<Teardown, HvError> {
        self.0.destroy_domain(d)
    }
    fn reserve(&mut self, r: UnitRange) -> Result<(), HvError> {
        self.0.reserve(r)
    }
    fn unreserve(&mut self, r: UnitRange) -> Result<(), HvError> {
        self.0.unreserve(r)
    }
    fn hvmap(&mut self, r: UnitRange) -> Result<(), HvError> {
        self.0.hvmap(r)
    }
    fn hvunmap(&mut self, r: UnitRange) -> Result<(), HvError> {
        self.0.hvunmap(r)
    }
    fn grant(
        &mut self,
        d: DomId,
        r: UnitRange,
        mode: Mode,
        force: bool,
    ) -> Result<Teardown, HvError> {
        self.0.grant(d, r, mode, force)
    }
    fn revoke(&mut self, d: DomId, r: UnitRange, force: bool) -> Result<Revoked, HvError> {
        self.0.revoke(d, r, force)
    }
    fn map(&mut self, d: DomId, r: UnitRange) -> Result<(), HvError> {
        self.0.map(d, r)
    }
    fn unmap(&mut self, d: DomId, r: UnitRange) -> Result<(), HvError> {
        self.0.unmap(d, r)
    }
    fn bind(&mut self, d: DomId, r: UnitRange) -> Result<(), HvError> {
        self.0.bind(d, r)
    }
    fn unbind(&mut self, d: DomId, r: UnitRange) -> Result<(), HvError> {
        self.0.unbind(d, r)
    }
    fn access(&mut self, d: DomId, port: u64, width: u64) -> Result<bool, HvError> {
        self.0.access(d, port, width)
    }
    fn query(&mut self, space: Space, unit: u64) -> Result<Option<UnitInfo>, HvError> {
        self.0.query(space, unit).transpose().map_err(HvError::Acct)
    }
    fn check(&mut self) -> Result<Result<(), Violation>, HvError> {
        Ok(self.0.check_invariants())
    }
}
