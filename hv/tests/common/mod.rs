//! Shared helpers of the KVM integration tests (test code: unwrap is the assertion).
#![allow(dead_code, clippy::unwrap_used)]
use accountant::{DomId, Mode, Space, UnitRange};
use hv::guest::Program;
use hv::platform::DEVICE_A_FRAME;
use hv::programs::SI_PROGRESS;
use hv::{Config, Hypervisor};
use std::time::{Duration, Instant};

pub fn d(n: u64) -> DomId {
    DomId::new(n).unwrap()
}

pub fn mem(f: u64) -> UnitRange {
    UnitRange::one(Space::IoMem, f).unwrap()
}

pub fn range(s: Space, a: u64, b: u64) -> UnitRange {
    UnitRange::new(s, a, b).unwrap()
}

pub fn boot(cfg: Config) -> Option<Hypervisor> {
    if !hv::host::require_kvm("kvm test") {
        return None;
    }
    Some(Hypervisor::boot(cfg).unwrap())
}

pub fn small() -> Config {
    Config {
        fb_bytes: 64 << 20,
        ..Config::default()
    }
}

/// Waits until the guest's progress counter reaches `at_least`.
pub fn progress(hv: &Hypervisor, dom: DomId, at_least: u64) -> u64 {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let p = hv.read_guest_u64(dom, SI_PROGRESS).unwrap();
        if p >= at_least {
            return p;
        }
        assert!(Instant::now() < end, "{dom} stuck at progress {p}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Lets the guest make `more` turns beyond what it has done now.
pub fn advance(hv: &Hypervisor, dom: DomId, more: u64) -> u64 {
    let now = hv.read_guest_u64(dom, SI_PROGRESS).unwrap();
    progress(hv, dom, now + more)
}

/// Prints a domain's port-exit counters and asserts they took the path this
/// host must use (native on VT-x/AMD-V, the #GP fallback on PVM).
pub fn assert_exit_path(hv: &Hypervisor, dom: DomId) {
    let s = hv.stats(dom).unwrap();
    let kind = hv.host().kind;
    println!(
        "{dom} exit path on {}: {} native port exits, {} pvm-trapped",
        kind.name(),
        s.native_port_exits,
        s.trapped_port_exits
    );
    hv::host::check_exit_path(kind, s.native_port_exits, s.trapped_port_exits).unwrap();
}

/// Device A's eight ports.
pub fn device_a_ports() -> UnitRange {
    range(Space::IoPort, 0x300, 0x307)
}

/// A domain being set up: created paused (default RAM) by [`domain`],
/// given resources step by step (each step must succeed), then started.
pub struct Setup<'a> {
    hv: &'a Hypervisor,
    dom: DomId,
}

/// Creates `dom` paused with `prog`, to be set up and started.
pub fn domain<'a>(hv: &'a Hypervisor, dom: DomId, prog: &Program) -> Setup<'a> {
    hv.create_domain_paused(dom, prog, hv::layout::DEFAULT_RAM)
        .unwrap();
    Setup { hv, dom }
}

impl Setup<'_> {
    /// Grants `r` in `mode`, unforced.
    pub fn grant(self, r: UnitRange, mode: Mode) -> Self {
        self.hv.grant(self.dom, r, mode, false).unwrap();
        self
    }

    /// Grants `r` in `mode`, forced (tearing down domain 0's uses).
    pub fn grant_forced(self, r: UnitRange, mode: Mode) -> Self {
        self.hv.grant(self.dom, r, mode, true).unwrap();
        self
    }

    /// Grants device A's page and ports exclusively, unforced.
    pub fn device_a(self) -> Self {
        self.grant(mem(DEVICE_A_FRAME), Mode::Exclusive)
            .grant(device_a_ports(), Mode::Exclusive)
    }

    /// Maps frames `r`.
    pub fn map(self, r: UnitRange) -> Self {
        self.hv.map(self.dom, r).unwrap();
        self
    }

    /// Binds lines `r`.
    pub fn bind(self, r: UnitRange) -> Self {
        self.hv.bind(self.dom, r).unwrap();
        self
    }

    /// Starts its vCPU(s).
    pub fn start(self) {
        self.hv.start(self.dom).unwrap();
    }

    /// Leaves it paused.
    pub fn paused(self) {}
}
