//! The vCPU loop: a thin shell around [`handle_exit`].
//!
//! `run()` → parse the exit once into an [`Exit`] → [`handle_exit`] decides
//! → carry out the [`Action`]. The decision runs inside the vCPU's
//! *in-flight section* (a sequence counter, odd while inside) so the control
//! plane can wait, after a revocation, until no access checked before it is
//! still being delivered ([`VcpuCtl::quiesce`]).

use crate::exit::{handle_exit, Action, Exit, ExitEnv, StopReason};
use crate::layout;
use crate::mem::HostMem;
use crate::pvio::Trap;
use kvm_ioctls::{VcpuExit, VcpuFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, Once};
use std::time::Duration;

/// Shared control block of one vCPU thread.
#[derive(Debug, Default)]
pub struct VcpuCtl {
    stop: AtomicBool,
    /// Odd while an exit is being decided and carried out.
    seq: AtomicU64,
    thread: Mutex<Option<libc::pthread_t>>,
    done: AtomicBool,
    exits: AtomicU64,
}

impl VcpuCtl {
    fn enter(&self) {
        self.seq.fetch_add(1, Ordering::SeqCst);
    }
    fn leave(&self) {
        self.seq.fetch_add(1, Ordering::SeqCst);
    }

    /// Waits until any exit that was being handled when this was called has
    /// finished (its port check and device access both happened before this
    /// returns). Called after an accountant change, it guarantees no access
    /// checked against the old state is still in flight.
    pub fn quiesce(&self) {
        let s = self.seq.load(Ordering::SeqCst);
        if s % 2 == 1 {
            let mut spins = 0u32;
            while self.seq.load(Ordering::SeqCst) == s {
                spins = spins.wrapping_add(1);
                if spins.is_multiple_of(64) {
                    // The vCPU thread may be preempted inside its section.
                    std::thread::yield_now();
                } else {
                    std::hint::spin_loop();
                }
            }
        }
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

    /// Asks the vCPU to stop and kicks it out of `KVM_RUN` with a signal,
    /// repeating until the loop has returned (a kick that lands just before
    /// the thread enters `KVM_RUN` is lost, the next one is not). `also` runs
    /// before every kick (to wake a vCPU blocked in a hypercall).
    pub fn stop_and_wait(&self, also: impl Fn()) {
        self.stop.store(true, Ordering::SeqCst);
        while !self.finished() {
            also();
            if let Ok(t) = self.thread.lock() {
                if let Some(t) = *t {
                    // SAFETY: `t` is the id of the vCPU thread, recorded by
                    // that thread in `run` and cleared (under this lock)
                    // before it exits, so it names a live thread; the signal
                    // has a no-op handler installed by `install_kick_handler`.
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

fn install_kick_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: a zeroed `sigaction` is a valid "no flags, empty mask"
        // value; we install a handler that does nothing (async-signal-safe)
        // without SA_RESTART so KVM_RUN returns EINTR.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = noop_handler as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(kick_signal(), &sa, std::ptr::null_mut());
        }
    });
}

/// Runs the vCPU until the guest stops or the host stops it.
pub fn run(vcpu: &mut VcpuFd, ram: &HostMem, env: &mut impl ExitEnv, ctl: &VcpuCtl) -> StopReason {
    install_kick_handler();
    if let Ok(mut t) = ctl.thread.lock() {
        // SAFETY: pthread_self has no preconditions.
        *t = Some(unsafe { libc::pthread_self() });
    }
    let reason = run_loop(vcpu, ram, env, ctl);
    if let Ok(mut t) = ctl.thread.lock() {
        *t = None;
    }
    ctl.done.store(true, Ordering::SeqCst);
    reason
}

fn decide(env: &mut impl ExitEnv, ctl: &VcpuCtl, exit: Exit) -> Action {
    // Only checked port accesses are in-flight sections: a hypercall takes
    // the control-plane lock, which a quiescing control plane holds.
    let section = matches!(
        exit,
        Exit::IoIn { port, .. } | Exit::IoOut { port, .. } if port != layout::HCALL_PORT
    );
    let t0 = tracepoints::start();
    if section {
        ctl.enter();
    }
    let a = handle_exit(env, exit);
    if section {
        ctl.leave();
    }
    tracepoints::tp!(exit_record(env.domain(), exit).since(t0));
    ctl.exits.fetch_add(1, Ordering::Relaxed);
    a
}

fn run_loop(vcpu: &mut VcpuFd, ram: &HostMem, env: &mut impl ExitEnv, ctl: &VcpuCtl) -> StopReason {
    loop {
        if ctl.stop_requested() {
            return StopReason::Killed;
        }
        let action = match vcpu.run() {
            Ok(VcpuExit::IoOut(layout::PIO_TRAP_PORT, _)) => match Trap::read(ram) {
                Ok(trap) => {
                    let a = decide(env, ctl, trap.exit());
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
            },
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
