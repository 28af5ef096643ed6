//! hv's exit handler (`hv::exit::handle_exit`) on made-up exits, with
//! hostile hypercall blocks decoded by `hv::hypercall::Op::decode` and
//! carried out against the accountant (accounting on or off): no VM. Every
//! exit gets an action, every hypercall a status from the documented set,
//! and the accountant's invariants hold after each one.
#![no_main]

use accountant::{DomId, Mode, Space, TrackerKind, UnitRange};
use hv::acct::{errno_of, Accounting, Acct, DomChecker};
use hv::exit::{handle_exit, Action, Exit, ExitEnv, MmioOutcome};
use hv::hypercall::{self, Op, Rejected};
use libfuzzer_sys::fuzz_target;

#[path = "bytes.rs"]
mod bytes;
use bytes::Bytes;

/// Exits per input: bounds the time of one run.
const MAX_EXITS: usize = 128;

/// One domain's exit environment over the accountant; the hypercall block
/// comes from the fuzz input.
struct Env<'a> {
    acct: Acct,
    dom: DomId,
    ports: DomChecker,
    block: [u64; 4],
    input: Bytes<'a>,
}

/// Statuses a hypercall may return besides a value (`DOMID`, `VCPU_ID`).
fn known_status(s: u32) -> bool {
    s <= 16
        || matches!(
            s,
            hypercall::E_BAD_OP | hypercall::E_HV | hypercall::E_TIMEOUT | hypercall::E_FAULT
        )
}

impl ExitEnv for Env<'_> {
    fn port_allowed(&self, port: u16, size: u8) -> bool {
        self.ports.check(port, size)
    }
    fn port_read(&mut self, port: u16, _size: u8) -> Option<u32> {
        (port & 1 == 0).then_some(u32::from(port))
    }
    fn port_write(&mut self, _port: u16, _size: u8, _data: u32) {}
    fn port_denied(&mut self, _port: u16, _size: u8, _write: bool) {}
    fn hypercall(&mut self) -> u32 {
        let w = self.block;
        match Op::decode(w) {
            Err(Rejected(s)) => {
                assert!(known_status(s), "{w:x?} rejected with {s:#x}");
                s
            }
            Ok(op) => {
                let r = match op {
                    Op::MapIomem(r) => self.acct.map(self.dom, r),
                    Op::UnmapIomem(r) => self.acct.unmap(self.dom, r),
                    Op::BindIrq(r) => self.acct.bind(self.dom, r),
                    Op::UnbindIrq(r) => self.acct.unbind(self.dom, r),
                    Op::Query(space, unit) => match self.acct.query(space, unit) {
                        Some(Err(e)) => Err(e),
                        _ => Ok(()),
                    },
                    Op::Block(_) => return hypercall::E_TIMEOUT,
                    Op::DomId => return u32::from(self.dom.get()),
                    Op::VcpuId => return 0,
                };
                let s = r.map_or_else(|e| errno_of(e.code()), |()| 0);
                assert!(known_status(s), "{op:?} answered {s:#x}");
                s
            }
        }
    }
    fn bad_hypercall(&mut self) {}
    fn mmio_read(&mut self, _gpa: u64, _len: u8) -> MmioOutcome {
        MmioOutcome::Denied
    }
    fn mmio_write(&mut self, _gpa: u64, _len: u8, _data: [u8; 8]) -> MmioOutcome {
        MmioOutcome::Denied
    }
    fn stop_requested(&self) -> bool {
        self.input.0.is_empty()
    }
    fn domain(&self) -> u16 {
        self.dom.get()
    }
}

fn exit(b: &mut Bytes<'_>) -> Exit {
    // Ports near the hypercall and the hypervisor's own ports are where the
    // handler branches: bias a quarter of the ports onto them.
    let port = |b: &mut Bytes<'_>| {
        let p = b.u16();
        if p & 3 == 0 {
            hv::layout::HCALL_PORT.wrapping_add(p >> 14)
        } else {
            p
        }
    };
    match b.u8() % 10 {
        0 => Exit::IoIn {
            port: port(b),
            size: b.u8(),
        },
        1 => Exit::IoOut {
            port: port(b),
            size: b.u8(),
            data: b.u32(),
        },
        2 => Exit::MmioRead {
            gpa: b.u64(),
            len: b.u8(),
        },
        3 => Exit::MmioWrite {
            gpa: b.u64(),
            len: b.u8(),
            data: b.take(),
        },
        4 => Exit::Shutdown,
        5 => Exit::Hlt,
        6 => Exit::Interrupted,
        7 => Exit::FailEntry(b.u64()),
        8 => Exit::InternalError,
        _ => Exit::Unsupported(b.u32()),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    let accounting = if b.u8() & 1 == 0 {
        Accounting::On
    } else {
        Accounting::Off
    };
    let Ok(mut acct) = Acct::boot(
        "reserve_ioports=0x3f8-0x3ff dom0_irqs=1 quota_frames=64 quota_records=8",
        accounting,
        TrackerKind::SlabExtent,
    ) else {
        panic!("the fixed boot line boots");
    };
    let dom = DomId::new(1).expect("a valid id");
    acct.create(dom).expect("a fresh domain");
    // The domain holds a few ports and frames to start from.
    for (space, first, last) in [
        (Space::IoPort, 0x60, 0x64),
        (Space::IoMem, 0xfeb00, 0xfeb0f),
        (Space::Irq, 5, 5),
    ] {
        let r = UnitRange::new(space, first, last).expect("a valid range");
        acct.grant(dom, r, Mode::Exclusive, false)
            .expect("free units");
    }
    let Some(ports) = acct.dom_checker(dom) else {
        panic!("domain 1 fits the port table");
    };
    let mut env = Env {
        acct,
        dom,
        ports,
        block: [0; 4],
        input: Bytes(&[]),
    };
    for _ in 0..MAX_EXITS {
        if b.0.is_empty() {
            break;
        }
        let e = exit(&mut b);
        // Mostly the known op numbers; a raw 64-bit op when the top bit is set.
        let op = b.u64();
        let op = if op >> 63 == 0 { op % 10 } else { op };
        env.block = [op, b.u64(), b.u64(), b.u64()];
        env.input = Bytes(b.0);
        let a = handle_exit(&mut env, e);
        if let Action::ReplyIo(v) = a {
            if let Exit::IoIn { size, .. } = e {
                if matches!(size, 1 | 2) {
                    assert_eq!(
                        v >> (8 * u32::from(size)),
                        0,
                        "{e:?} replied {v:#x} past its width"
                    );
                }
            }
        }
        if let Err(v) = env.acct.check_invariants() {
            panic!(
                "invariant broken after {e:?} with block {:x?}: {v:?}",
                env.block
            );
        }
    }
});
