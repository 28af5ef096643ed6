//! The vCPU loop: a thin shell around [`handle_exit`].
//!
//! `run()` → parse the exit once into an [`Exit`] → [`handle_exit`] decides
//! → carry out the [`Action`]. The decision runs inside the vCPU's
//! *in-flight section* (a sequence counter, odd while inside) so the control
//! plane can wait, after a revocation, until no access checked before it is
//! still being delivered ([`VcpuCtl::quiesce`]).

use crate::exit::{handle_exit, Action, Exit, ExitEnv, StopReason};
use crate::inflight::InFlight;
use crate::layout;
use crate::mem::HostMem;
use crate::pvio::Trap;
use kvm_ioctls::{VcpuExit, VcpuFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Shared control block of one vCPU thread.
#[derive(Debug, Default)]
pub struct VcpuCtl {
    /// The vCPU's index in its domain.
    index: u32,
    stop: AtomicBool,
    /// Open while a checked exit is being decided and carried out.
    section: InFlight,
    thread: Mutex<Option<libc::pthread_t>>,
    done: AtomicBool,
    exits: AtomicU64,
    native_port_exits: AtomicU64,
    trapped_port_exits: AtomicU64,
    /// Handler timing for the bench (see [`HandlerProbe`]); unset: one load.
    probe: OnceLock<HandlerProbe>,
    /// The CPU the vCPU thread ran on when it entered [`run`], plus one
    /// (0: not started, or unknown).
    cpu: AtomicU64,
}

/// How a port access reached the hypervisor: evidence of which exit path a
/// host exercised (VT-x and AMD-V exit natively; PVM traps, see `pvio`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitPath {
    /// A `KVM_EXIT_IO` from the CPU's own I/O intercept.
    Native,
    /// The guest's #GP stub forwarded a faulting `in`/`out` (PVM).
    PvmTrap,
}

/// Times the exit handler of every checked port exit in TSC ticks,
/// independently of the tracepoints (so an enabled tracepoint's cost is not
/// part of what it measures). One per vCPU: the vCPU thread is its only
/// writer; a reader takes the ticks while the vCPU is not handling exits
/// (its guest parked). Bounded: past its capacity, exits are counted as
/// dropped, not recorded.
#[derive(Debug)]
pub struct HandlerProbe {
    ticks: Box<[AtomicU64]>,
    len: AtomicU64,
    dropped: AtomicU64,
}

impl HandlerProbe {
    /// A probe for up to `capacity` exits between two [`HandlerProbe::take`]s.
    pub fn new(capacity: usize) -> HandlerProbe {
        HandlerProbe {
            ticks: (0..capacity.max(1)).map(|_| AtomicU64::new(0)).collect(),
            len: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    fn record(&self, ticks: u64) {
        let i = self.len.load(Ordering::Relaxed);
        match self.ticks.get(i as usize) {
            Some(slot) => {
                slot.store(ticks, Ordering::Relaxed);
                // Publishes the slot: a reader that sees the new length sees it.
                self.len.store(i + 1, Ordering::Release);
            }
            None => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The ticks recorded since the last call, and how many exits did not
    /// fit; resets both. Call while the vCPU handles no exits.
    pub fn take(&self) -> (Vec<u64>, u64) {
        let n = self.len.load(Ordering::Acquire) as usize;
        let v = self.ticks[..n.min(self.ticks.len())]
            .iter()
            .map(|t| t.load(Ordering::Relaxed))
            .collect();
        self.len.store(0, Ordering::Release);
        (v, self.dropped.swap(0, Ordering::Relaxed))
    }
}

fn rdtsc() -> u64 {
    // SAFETY: `rdtsc` reads the time-stamp counter; it has no memory effects
    // and every x86-64 CPU has it.
    unsafe { core::arch::x86_64::_rdtsc() }
}

impl VcpuCtl {
    /// The control block of vCPU `index` of its domain.
    pub fn new(index: u32) -> VcpuCtl {
        VcpuCtl {
            index,
            ..VcpuCtl::default()
        }
    }

    /// The vCPU's index in its domain.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Turns on handler timing for this vCPU (once; later calls keep the
    /// first probe). Call before the vCPU starts.
    pub fn enable_probe(&self, capacity: usize) -> &HandlerProbe {
        self.probe.get_or_init(|| HandlerProbe::new(capacity))
    }

    /// The CPU the vCPU thread was on when it started (after any pinning).
    pub fn start_cpu(&self) -> Option<u32> {
        let c = self.cpu.load(Ordering::Relaxed);
        (c > 0).then(|| (c - 1) as u32)
    }

    /// The handler probe, if enabled.
    pub fn probe(&self) -> Option<&HandlerProbe> {
        self.probe.get()
    }

    fn enter(&self) {
        self.section.enter();
    }
    fn leave(&self) {
        self.section.leave();
    }

    /// Waits until any exit that was being handled when this was called has
    /// finished (its port check and device access both happened before this
    /// returns). Called after an accountant change, it guarantees no access
    /// checked against the old state is still in flight
    /// ([`InFlight::quiesce`]).
    pub fn quiesce(&self) {
        self.section.quiesce();
    }

    /// Asks the vCPU to stop at its next exit (without kicking it).
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Marks a vCPU that never ran as finished.
    pub fn mark_finished(&self) {
        self.done.store(true, Ordering::SeqCst);
    }

    /// Whether the host asked the vCPU to stop.
    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Whether the vCPU loop has returned.
    pub fn finished(&self) -> bool {
        self.done.load(Ordering::SeqCst)
    }

    /// Exits handled so far.
    pub fn exits(&self) -> u64 {
        self.exits.load(Ordering::Relaxed)
    }

    /// Port exits (hypercalls included) that arrived as native `KVM_EXIT_IO`.
    pub fn native_port_exits(&self) -> u64 {
        self.native_port_exits.load(Ordering::Relaxed)
    }

    /// Port exits (hypercalls included) forwarded by the PVM #GP fallback.
    pub fn trapped_port_exits(&self) -> u64 {
        self.trapped_port_exits.load(Ordering::Relaxed)
    }

    /// Asks the vCPU to stop and kicks it out of `KVM_RUN` with a signal,
    /// repeating until the loop has returned (a kick that lands just before
    /// the thread enters `KVM_RUN` is lost, the next one is not). `also` runs
    /// before every kick (to wake a vCPU blocked in a hypercall).
    pub fn stop_and_wait(&self, also: impl Fn()) {
        self.stop.store(true, Ordering::SeqCst);
        // Without the no-op handler the kick signal would kill the process:
        // then never kick (the vCPU stops at its next exit).
        let can_kick = kick_ready();
        while !self.finished() {
            also();
            if let (true, Ok(t)) = (can_kick, self.thread.lock()) {
                if let Some(t) = *t {
                    // SAFETY: `t` is the id of the vCPU thread, recorded by
                    // that thread in `run` and cleared (under this lock) by
                    // its `Finish` guard before it exits, even when
                    // unwinding, so it names a live thread; `kick_ready`
                    // proved the signal's no-op handler is installed.
                    unsafe {
                        libc::pthread_kill(t, kick_signal());
                    }
                }
            }
            std::thread::sleep(Duration::from_micros(500));
        }
    }
}

fn kick_signal() -> libc::c_int {
    libc::SIGRTMIN() + 2
}

extern "C" fn noop_handler(_: libc::c_int) {}

static KICK_HANDLER: OnceLock<Result<(), i32>> = OnceLock::new();

/// Installs (once per process) the no-op handler of the signal that kicks
/// vCPUs out of `KVM_RUN`; the `sigaction` errno if that failed, in which
/// case vCPUs are never kicked. Call before starting a vCPU thread.
pub fn install_kick_handler() -> Result<(), i32> {
    *KICK_HANDLER.get_or_init(|| {
        // SAFETY: a zeroed `sigaction` is a valid "no flags, empty mask"
        // value; we install a handler that does nothing (async-signal-safe)
        // without SA_RESTART so KVM_RUN returns EINTR.
        let rc = unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = noop_handler as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(kick_signal(), &sa, std::ptr::null_mut())
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EINVAL))
        }
    })
}

/// Whether the kick handler is installed (so the kick signal is harmless).
fn kick_ready() -> bool {
    matches!(KICK_HANDLER.get(), Some(Ok(())))
}

/// Marks the vCPU finished when `run` exits, however it exits (a panic in
/// an exit handler included): closes an in-flight section left open, clears
/// the thread id (so it is never kicked again), then sets `done`, so
/// `quiesce` and `stop_and_wait` cannot hang on a dead thread.
struct Finish<'a>(&'a VcpuCtl);

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        let ctl = self.0;
        // Only this thread enters; open means it unwound mid-section.
        if ctl.section.is_open() {
            ctl.leave();
        }
        *ctl.thread.lock().unwrap_or_else(|p| p.into_inner()) = None;
        ctl.done.store(true, Ordering::SeqCst);
    }
}

/// Runs the vCPU until the guest stops or the host stops it.
pub fn run(vcpu: &mut VcpuFd, ram: &HostMem, env: &mut impl ExitEnv, ctl: &VcpuCtl) -> StopReason {
    let _finish = Finish(ctl);
    if let Some(c) = crate::affinity::current_cpu() {
        ctl.cpu.store(u64::from(c) + 1, Ordering::Relaxed);
    }
    // A failure leaves kicks disabled (see `stop_and_wait`); the hypervisor
    // refuses to start vCPUs in that case, before getting here.
    let _ = install_kick_handler();
    if let Ok(mut t) = ctl.thread.lock() {
        // SAFETY: pthread_self has no preconditions.
        *t = Some(unsafe { libc::pthread_self() });
    }
    run_loop(vcpu, ram, env, ctl)
}

fn decide(env: &mut impl ExitEnv, ctl: &VcpuCtl, exit: Exit) -> Action {
    decide_via(env, ctl, exit, ExitPath::Native)
}

fn decide_via(env: &mut impl ExitEnv, ctl: &VcpuCtl, exit: Exit, path: ExitPath) -> Action {
    let is_port = matches!(exit, Exit::IoIn { .. } | Exit::IoOut { .. });
    // Only checked port accesses are in-flight sections: a hypercall takes
    // the control-plane lock, which a quiescing control plane holds.
    let checked = matches!(
        exit,
        Exit::IoIn { port, .. } | Exit::IoOut { port, .. } if port != layout::HCALL_PORT
    );
    let section = checked && env.quiesces();
    let t0 = tracepoints::start();
    let probe = ctl.probe.get().filter(|_| checked);
    let p0 = if probe.is_some() { rdtsc() } else { 0 };
    if section {
        ctl.enter();
    }
    let a = handle_exit(env, exit);
    if section {
        ctl.leave();
    }
    if let Some(p) = probe {
        p.record(rdtsc().wrapping_sub(p0));
    }
    tracepoints::tp!(exit_record(env.domain(), exit)
        .trapped(is_port && path == ExitPath::PvmTrap)
        .since(t0));
    ctl.exits.fetch_add(1, Ordering::Relaxed);
    match (is_port, path) {
        (true, ExitPath::Native) => ctl.native_port_exits.fetch_add(1, Ordering::Relaxed),
        (true, ExitPath::PvmTrap) => ctl.trapped_port_exits.fetch_add(1, Ordering::Relaxed),
        (false, _) => 0,
    };
    a
}

fn run_loop(vcpu: &mut VcpuFd, ram: &HostMem, env: &mut impl ExitEnv, ctl: &VcpuCtl) -> StopReason {
    loop {
        if ctl.stop_requested() {
            return StopReason::Killed;
        }
        let action = match vcpu.run() {
            Ok(VcpuExit::IoOut(layout::PIO_TRAP_PORT, _)) => {
                match Trap::read_vcpu(ram, ctl.index) {
                    Ok(trap) => {
                        let a = decide_via(env, ctl, trap.exit(), ExitPath::PvmTrap);
                        let done = match a {
                            Action::ReplyIo(v) => trap.complete(ram, Some(v)),
                            Action::Resume => trap.complete(ram, None),
                            _ => Ok(()),
                        };
                        match (a, done) {
                            (Action::Stop(_), _) => a,
                            (_, Err(_)) => Action::Stop(StopReason::Fault(13)),
                            _ => Action::Resume,
                        }
                    }
                    Err(_) => Action::Stop(StopReason::Fault(13)),
                }
            }
            Ok(VcpuExit::IoOut(port, data)) => {
                let exit = match io_size(data.len()) {
                    Some(size) => {
                        let mut b = [0u8; 4];
                        b[..data.len()].copy_from_slice(data);
                        Exit::IoOut {
                            port,
                            size,
                            data: u32::from_le_bytes(b),
                        }
                    }
                    None => Exit::Unsupported(kvm_bindings::KVM_EXIT_IO),
                };
                decide(env, ctl, exit)
            }
            Ok(VcpuExit::IoIn(port, data)) => {
                let exit = match io_size(data.len()) {
                    Some(size) => Exit::IoIn { port, size },
                    None => Exit::Unsupported(kvm_bindings::KVM_EXIT_IO),
                };
                let a = decide(env, ctl, exit);
                if let Action::ReplyIo(v) = a {
                    let n = data.len().min(4);
                    data[..n].copy_from_slice(&v.to_le_bytes()[..n]);
                    Action::Resume
                } else {
                    a
                }
            }
            Ok(VcpuExit::MmioRead(gpa, data)) => {
                let len = data.len().min(8);
                let a = decide(
                    env,
                    ctl,
                    Exit::MmioRead {
                        gpa,
                        len: len as u8,
                    },
                );
                if let Action::ReplyMmio(b) = a {
                    data[..len].copy_from_slice(&b[..len]);
                    Action::Resume
                } else {
                    a
                }
            }
            Ok(VcpuExit::MmioWrite(gpa, data)) => {
                let len = data.len().min(8);
                let mut b = [0u8; 8];
                b[..len].copy_from_slice(&data[..len]);
                decide(
                    env,
                    ctl,
                    Exit::MmioWrite {
                        gpa,
                        len: len as u8,
                        data: b,
                    },
                )
            }
            Ok(VcpuExit::Shutdown) => decide(env, ctl, Exit::Shutdown),
            Ok(VcpuExit::Hlt) => decide(env, ctl, Exit::Hlt),
            Ok(VcpuExit::Intr) => decide(env, ctl, Exit::Interrupted),
            Ok(VcpuExit::FailEntry(r, _)) => decide(env, ctl, Exit::FailEntry(r)),
            Ok(VcpuExit::InternalError) => decide(env, ctl, Exit::InternalError),
            Ok(other) => {
                let code = raw_reason(&other);
                decide(env, ctl, Exit::Unsupported(code))
            }
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                decide(env, ctl, Exit::Interrupted)
            }
            Err(e) => Action::Stop(StopReason::Error(e.errno() as u64)),
        };
        match action {
            Action::Stop(r) => return r,
            Action::Resume | Action::ReplyIo(_) | Action::ReplyMmio(_) => {}
        }
    }
}

fn exit_record(domain: u16, exit: Exit) -> tracepoints::Record {
    use tracepoints::{Kind, Record, Space};
    let r = Record::new(Kind::VmExit)
        .domain(domain)
        .extra(exit.reason() as u64);
    match exit {
        Exit::IoIn { port, size } => r
            .range(Space::IoPort, port as u64, port as u64 + size as u64 - 1)
            .width(size),
        Exit::IoOut { port, size, data } => r
            .range(Space::IoPort, port as u64, port as u64 + size as u64 - 1)
            .width(size)
            .value(data as u64),
        Exit::MmioRead { gpa, len } => r.range(Space::GuestMem, gpa >> 12, gpa >> 12).width(len),
        Exit::MmioWrite { gpa, len, data } => r
            .range(Space::GuestMem, gpa >> 12, gpa >> 12)
            .width(len)
            .value(u64::from_le_bytes(data)),
        _ => r,
    }
}

fn io_size(n: usize) -> Option<u8> {
    matches!(n, 1 | 2 | 4).then_some(n as u8)
}

fn raw_reason(e: &VcpuExit<'_>) -> u32 {
    match e {
        VcpuExit::Unknown => kvm_bindings::KVM_EXIT_UNKNOWN,
        VcpuExit::Exception => kvm_bindings::KVM_EXIT_EXCEPTION,
        VcpuExit::Debug(_) => kvm_bindings::KVM_EXIT_DEBUG,
        VcpuExit::IrqWindowOpen => kvm_bindings::KVM_EXIT_IRQ_WINDOW_OPEN,
        _ => u32::MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::Bare;
    use crate::vm::GuestVm;

    #[test]
    fn a_panicking_vcpu_thread_still_finishes() {
        if !crate::host::require_kvm("a_panicking_vcpu_thread_still_finishes") {
            return;
        }
        let kvm = kvm_ioctls::Kvm::new().unwrap();
        let prog = crate::programs::port_loop(crate::platform::DEVICE_A_DATA, 10).unwrap();
        let (vm, mut vcpu) = GuestVm::new(&kvm, layout::DEFAULT_RAM, 4, 1, &prog).unwrap();
        let ctl = VcpuCtl::default();
        // Panics on the first port read the guest makes.
        #[allow(clippy::panic)]
        let mut panicky = Bare::new(|_, _| panic!("exit handler failed (expected by the test)"));
        let joined = std::thread::scope(|s| {
            s.spawn(|| run(&mut vcpu, &vm.ram, &mut panicky, &ctl))
                .join()
        });
        assert!(joined.is_err(), "the exit handler panicked");
        assert!(ctl.finished(), "done set while unwinding");
        assert!(!ctl.section.is_open(), "section closed");
        assert!(ctl.thread.lock().unwrap().is_none(), "thread id cleared");
        // Neither of these may hang on the dead thread.
        ctl.quiesce();
        ctl.stop_and_wait(|| {});
    }

    #[test]
    fn the_kick_handler_installs() {
        assert_eq!(install_kick_handler(), Ok(()));
        assert!(kick_ready());
    }
}
