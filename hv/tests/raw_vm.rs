//! The raw plumbing without the hypervisor: a CPL3 long-mode guest whose
//! port I/O (through the #GP trap on PVM) and MMIO exits reach a made-up
//! exit environment.
use hv::exit::{ExitEnv, MmioOutcome, StopReason};
use hv::guest::Program;
use hv::layout;
use hv::vcpu::{run, VcpuCtl};
use iced_x86::code_asm::*;
use kvm_ioctls::Kvm;

#[derive(Default)]
struct Env {
    log: Vec<(u16, u32)>,
}
impl ExitEnv for Env {
    fn port_allowed(&self, port: u16, _size: u8) -> bool {
        port == 0x80
    }
    fn port_read(&mut self, _port: u16, _size: u8) -> Option<u32> {
        Some(0x99)
    }
    fn port_write(&mut self, port: u16, _size: u8, data: u32) {
        self.log.push((port, data));
    }
    fn port_denied(&mut self, port: u16, _size: u8, _write: bool) {
        self.log.push((port, u32::MAX));
    }
    fn hypercall(&mut self) -> u32 {
        0
    }
    fn bad_hypercall(&mut self) {}
    fn mmio_read(&mut self, _gpa: u64, _len: u8) -> MmioOutcome {
        MmioOutcome::Denied
    }
    fn mmio_write(&mut self, gpa: u64, _len: u8, data: [u8; 8]) -> MmioOutcome {
        self.log.push((0xffff, gpa as u32 ^ data[0] as u32));
        MmioOutcome::Denied
    }
    fn stop_requested(&self) -> bool {
        false
    }
}

#[test]
fn raw_cpl3_guest_port_io_and_mmio_exits() {
    if !hv::host::require_kvm("raw smoke") {
        return;
    }
    let kvm = Kvm::new().unwrap();
    let prog = Program::assemble([0; 4], |a| {
        a.mov(al, 0x42u32)?;
        a.out(0x80u32, al)?;
        a.in_(al, 0x80u32)?;
        a.out(0x80u32, al)?;
        a.mov(al, 1u32)?;
        a.out(0x81u32, al)?;
        a.mov(rbx, 0xfeb0_0000u64)?;
        a.mov(dword_ptr(rbx), 0x5u32)?;
        a.lfence()?;
        a.rdtsc()?;
        a.mov(edx, layout::DONE_PORT as u32)?;
        a.mov(eax, 7u32)?;
        a.out(dx, eax)?;
        Ok(())
    })
    .unwrap();
    let (vm, mut vcpu) = hv::vm::GuestVm::new(&kvm, layout::DEFAULT_RAM, 8, 1, &prog).unwrap();
    let mut env = Env::default();
    let ctl = VcpuCtl::default();
    let r = run(&mut vcpu, &vm.ram, &mut env, &ctl);
    println!("{r:?} {:x?}", env.log);
    let kind = hv::host::detect().kind;
    let (native, trapped) = (ctl.native_port_exits(), ctl.trapped_port_exits());
    println!(
        "exit path on {}: {native} native port exits, {trapped} pvm-trapped",
        kind.name()
    );
    // Five port instructions, each exactly one exit on one of the paths.
    assert_eq!(native + trapped, 5);
    hv::host::check_exit_path(kind, native, trapped).unwrap();
    assert_eq!(r, StopReason::Done(7));
    assert_eq!(
        env.log,
        vec![
            (0x80, 0x42),
            (0x80, 0x99),
            (0x81, u32::MAX),
            (0xffff, 0xfeb0_0005)
        ]
    );
}
