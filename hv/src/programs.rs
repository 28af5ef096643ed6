//! The guest workload library: small programs assembled in Rust (iced-x86),
//! run at CPL3 in long mode.
//!
//! Every program gets its domain id in `rdi`, ends with an `out` to
//! [`layout::DONE_PORT`] (never `hlt`), and talks to the host through the
//! start-info page ([`layout::START_INFO`], u64 words):
//!
//! | word | set by | meaning |
//! |---|---|---|
//! | [`SI_DOMID`] | host | domain id |
//! | [`SI_STOP`] | host | non-zero: finish at the next loop turn |
//! | [`SI_PROGRESS`] | guest | loop turns done / events seen |
//! | [`SI_STATUS`] | guest | status of the program's own hypercall |
//! | [`SI_ERRORS`] | guest | hypercalls that returned non-zero (hostile) |
//! | [`SI_OKS`] | guest | hypercalls that returned zero (hostile) |
//! | [`SI_QUERY`] | guest | result bits of [`query_probe`] |

use crate::guest::{GuestError, Program};
use crate::hypercall::{op, BLOCK_MAX_US};
use crate::layout::{self, DATA, DONE_PORT, EVTCHN_PAGE, HCALL_BLOCK, HCALL_PORT, START_INFO};
use crate::mem::PAGE_SIZE;
use crate::platform::{DEVICE_A_DATA, DEVICE_A_FRAME, DEVICE_A_RECORDS};
use iced_x86::code_asm::*;
use iced_x86::IcedError;

/// Start-info word: domain id.
pub const SI_DOMID: u64 = START_INFO;
/// Start-info word: stop request from the host.
pub const SI_STOP: u64 = START_INFO + 8;
/// Start-info word: progress counter.
pub const SI_PROGRESS: u64 = START_INFO + 16;
/// Start-info word: status of the program's own hypercall.
pub const SI_STATUS: u64 = START_INFO + 24;
/// Start-info word: hypercalls that failed.
pub const SI_ERRORS: u64 = START_INFO + 32;
/// Start-info word: hypercalls that succeeded.
pub const SI_OKS: u64 = START_INFO + 40;

/// Largest number of samples [`port_loop`] can keep in `ram_bytes` of RAM.
pub fn max_samples(ram_bytes: u64) -> u64 {
    ram_bytes.saturating_sub(DATA) / 8
}

fn done_imm(a: &mut CodeAssembler, code: u32) -> Result<(), IcedError> {
    a.mov(edx, DONE_PORT as u32)?;
    a.mov(eax, code)?;
    a.out(dx, eax)
}

/// `hypercall(op, arg0 = rax_arg, arg1, arg2)` through the calling vCPU's
/// own block ([`layout::hcall_block`] of the index in `r9`, which programs
/// keep); status in eax. Clobbers rax, rdx. `arg0` must not be `rdx`.
fn hcall(
    a: &mut CodeAssembler,
    opn: u64,
    arg0: AsmRegister64,
    arg1: u64,
    arg2: u64,
) -> Result<(), IcedError> {
    a.mov(rdx, r9)?;
    a.shl(rdx, layout::HCALL_STRIDE.trailing_zeros())?;
    a.add(rdx, HCALL_BLOCK as i32)?;
    a.mov(qword_ptr(rdx + 8), arg0)?;
    a.mov(rax, opn)?;
    a.mov(qword_ptr(rdx), rax)?;
    a.mov(rax, arg1)?;
    a.mov(qword_ptr(rdx + 16), rax)?;
    a.mov(rax, arg2)?;
    a.mov(qword_ptr(rdx + 24), rax)?;
    a.mov(edx, HCALL_PORT as u32)?;
    a.in_(eax, dx)
}

/// `lfence; rdtsc` into `rax` as a 64-bit value (clobbers rdx).
fn tsc(a: &mut CodeAssembler) -> Result<(), IcedError> {
    a.lfence()?;
    a.rdtsc()?;
    a.shl(rdx, 32)?;
    a.or(rax, rdx)
}

/// The body of a timing loop: with `r12` = the count and `r13` = 0, and
/// `rbx` the data area, times `op` `r12` times with `lfence; rdtsc` before
/// and after and stores each TSC delta at `rbx + 8 * r13` (and, with
/// `progress`, the number done so far in [`SI_PROGRESS`]); then done(0).
fn timed_loop(
    a: &mut CodeAssembler,
    progress: bool,
    op: impl Fn(&mut CodeAssembler) -> Result<(), IcedError>,
) -> Result<(), IcedError> {
    let mut top = a.create_label();
    let mut end = a.create_label();
    a.set_label(&mut top)?;
    a.cmp(r13, r12)?;
    a.jae(end)?;
    tsc(a)?;
    a.mov(r14, rax)?;
    op(a)?;
    tsc(a)?;
    a.sub(rax, r14)?;
    a.mov(qword_ptr(rbx + r13 * 8), rax)?;
    a.inc(r13)?;
    if progress {
        a.mov(qword_ptr(SI_PROGRESS), r13)?;
    }
    a.jmp(top)?;
    a.set_label(&mut end)?;
    done_imm(a, 0)
}

/// Port-I/O timing loop: `n` times `in al, port`, each timed with
/// `lfence; rdtsc` before and after; the TSC deltas go to the vCPU's data
/// area (`r10`: [`DATA`] on a domain's only vCPU) as u64s.
pub fn port_loop(port: u16, n: u64) -> Result<Program, GuestError> {
    Program::assemble([n, 0, 0, 0], |a| {
        a.mov(r12, n)?;
        a.xor(r13, r13)?;
        a.mov(rbx, r10)?;
        timed_loop(a, true, |a| {
            a.mov(edx, port as u32)?;
            a.in_(al, dx)
        })
    })
}

/// MMIO timing loop: `n` times a 1-byte load from guest-physical `gpa`
/// (an address with no memslot, so each load exits as MMIO), timed like
/// [`port_loop`]; TSC deltas to [`DATA`].
pub fn mmio_loop(gpa: u64, n: u64) -> Result<Program, GuestError> {
    Program::assemble([gpa, n, 0, 0], |a| {
        a.mov(r12, n)?;
        a.xor(r13, r13)?;
        a.mov(rbx, DATA)?;
        a.mov(r15, gpa)?;
        timed_loop(a, false, |a| a.mov(al, byte_ptr(r15)))
    })
}

/// Loop until `iterations` turns (0: until [`SI_STOP`]) writing the record
/// `(domain id, sequence)` at guest-physical `gpa` — MMIO writes with no exit
/// while the page is mapped. With `ports`, each turn also writes the
/// sequence to device A's data port and reads it back.
/// Takes the next turn number of the domain into `r13`: an atomic
/// increment of [`SI_PROGRESS`], so the vCPUs of one domain share one
/// monotonic count (clobbers nothing else).
fn next_turn(a: &mut CodeAssembler) -> Result<(), IcedError> {
    a.mov(r13, 1u64)?;
    a.lock().xadd(qword_ptr(SI_PROGRESS), r13)?;
    a.inc(r13)
}

fn record_loop(
    a: &mut CodeAssembler,
    gpa_reg: AsmRegister64,
    iterations: u64,
    ports: bool,
) -> Result<(), IcedError> {
    let mut top = a.create_label();
    let mut end = a.create_label();
    a.set_label(&mut top)?;
    next_turn(a)?;
    a.mov(qword_ptr(gpa_reg), r15)?;
    a.mov(qword_ptr(gpa_reg + 8), r13)?;
    if ports {
        a.mov(eax, r13d)?;
        a.mov(edx, DEVICE_A_DATA as u32)?;
        a.out(dx, eax)?;
        a.in_(eax, dx)?;
    }
    a.cmp(qword_ptr(SI_STOP), 0)?;
    a.jne(end)?;
    if iterations != 0 {
        a.mov(rax, iterations)?;
        a.cmp(r13, rax)?;
        a.jae(end)?;
    }
    a.jmp(top)?;
    a.set_label(&mut end)?;
    done_imm(a, 0)
}

/// Device A driver: maps device A's page with the `MAP_IOMEM` hypercall
/// (status in [`SI_STATUS`]), then loops writing its record into the page
/// (at [`DEVICE_A_RECORDS`] + 16 × (domid mod 250)) and talking on the data
/// port. `iterations` 0 runs until [`SI_STOP`].
pub fn driver(iterations: u64) -> Result<Program, GuestError> {
    Program::assemble([iterations, 0, 0, 0], |a| {
        a.mov(r15, rdi)?;
        a.mov(rax, DEVICE_A_FRAME)?;
        a.mov(rbx, rax)?;
        hcall(a, op::MAP_IOMEM, rbx, 1, 0)?;
        a.mov(qword_ptr(SI_STATUS), rax)?;
        // rbx = page + RECORDS + 16 * (domid % 250)
        a.mov(rax, r15)?;
        a.xor(edx, edx)?;
        a.mov(ecx, 250u32)?;
        a.div(rcx)?;
        a.shl(rdx, 4)?;
        a.mov(rbx, DEVICE_A_FRAME * PAGE_SIZE + DEVICE_A_RECORDS)?;
        a.add(rbx, rdx)?;
        record_loop(a, rbx, iterations, true)
    })
}

/// MMIO writer: writes its `(domain id, sequence)` record at guest-physical
/// `gpa` in a loop (no hypercall: the control plane maps for it); with
/// `ports`, each turn also writes and reads device A's data port.
pub fn mmio_writer(gpa: u64, iterations: u64, ports: bool) -> Result<Program, GuestError> {
    Program::assemble([gpa, iterations, ports as u64, 0], |a| {
        a.mov(r15, rdi)?;
        a.mov(rbx, gpa)?;
        record_loop(a, rbx, iterations, ports)
    })
}

/// Guest-physical address of domain `dom`'s record in device A's page.
pub fn device_a_record_gpa(dom: u16) -> u64 {
    DEVICE_A_FRAME * PAGE_SIZE + DEVICE_A_RECORDS + 16 * (dom as u64 % 250)
}

/// Port hammer: writes its sequence number to `port` and reads it back,
/// until [`SI_STOP`].
pub fn port_hammer(port: u16) -> Result<Program, GuestError> {
    Program::assemble([port as u64, 0, 0, 0], |a| {
        let mut top = a.create_label();
        let mut end = a.create_label();
        a.set_label(&mut top)?;
        next_turn(a)?;
        a.mov(eax, r13d)?;
        a.mov(edx, port as u32)?;
        a.out(dx, eax)?;
        a.in_(eax, dx)?;
        a.cmp(qword_ptr(SI_STOP), 0)?;
        a.je(top)?;
        a.set_label(&mut end)?;
        done_imm(a, 0)
    })
}

/// Writes `value` to the first quadword of each of `pages` (at least one)
/// pages from `first_frame` on (clobbers `rax`, `rbx`, `rcx`).
fn paint_once(
    a: &mut CodeAssembler,
    first_frame: u64,
    pages: u64,
    value: u64,
) -> Result<(), IcedError> {
    let mut page = a.create_label();
    a.mov(rbx, first_frame * PAGE_SIZE)?;
    a.mov(rcx, pages.max(1))?;
    a.mov(rax, value)?;
    a.set_label(&mut page)?;
    a.mov(qword_ptr(rbx), rax)?;
    a.add(rbx, PAGE_SIZE as i32)?;
    a.dec(rcx)?;
    a.jnz(page)
}

/// Framebuffer painter: writes `value` to the first word of each of `pages`
/// pages from frame `first_frame` (one touch per page), `passes` times.
pub fn fb_painter(
    first_frame: u64,
    pages: u64,
    value: u64,
    passes: u64,
) -> Result<Program, GuestError> {
    Program::assemble([first_frame, pages, value, passes], |a| {
        let mut pass = a.create_label();
        a.mov(r12, passes.max(1))?;
        a.set_label(&mut pass)?;
        paint_once(a, first_frame, pages, value)?;
        a.dec(r12)?;
        a.jnz(pass)?;
        done_imm(a, 0)
    })
}

/// Painter that stays alive: paints each page once, sets [`SI_PROGRESS`] to
/// 1, then idles (blocking in `BLOCK`) until [`SI_STOP`] — so the guest's
/// mappings of the pages are live when the host revokes them.
pub fn fb_painter_linger(first_frame: u64, pages: u64, value: u64) -> Result<Program, GuestError> {
    Program::assemble([first_frame, pages, value, 0], |a| {
        paint_once(a, first_frame, pages, value)?;
        a.mov(qword_ptr(SI_PROGRESS), 1)?;
        idle_loop(a)
    })
}

fn idle_loop(a: &mut CodeAssembler) -> Result<(), IcedError> {
    let mut top = a.create_label();
    let mut end = a.create_label();
    a.set_label(&mut top)?;
    a.cmp(qword_ptr(SI_STOP), 0)?;
    a.jne(end)?;
    a.mov(rbx, BLOCK_MAX_US)?;
    hcall(a, op::BLOCK, rbx, 0, 0)?;
    for i in 0..16u64 {
        a.mov(qword_ptr(EVTCHN_PAGE + 8 * i), 0)?;
    }
    a.jmp(top)?;
    a.set_label(&mut end)?;
    done_imm(a, 0)
}

/// Interrupt waiter: binds `irq` with `BIND_IRQ` (status in [`SI_STATUS`];
/// exit code 1 if refused), then waits for `count` events, polling its
/// pending bit (`lock btr`) and blocking in `BLOCK` between polls. Exit code
/// 0 when all arrived, 2 when stopped first.
pub fn irq_waiter(irq: u32, count: u64) -> Result<Program, GuestError> {
    Program::assemble([irq as u64, count, 0, 0], |a| {
        let mut top = a.create_label();
        let mut got = a.create_label();
        let mut refused = a.create_label();
        let mut stopped = a.create_label();
        a.mov(rbx, irq as u64)?;
        hcall(a, op::BIND_IRQ, rbx, 0, 0)?;
        a.mov(qword_ptr(SI_STATUS), rax)?;
        a.test(eax, eax)?;
        a.jnz(refused)?;
        a.xor(r13, r13)?;
        a.mov(r14, EVTCHN_PAGE + 8 * (irq as u64 / 64))?;
        a.set_label(&mut top)?;
        a.lock().btr(qword_ptr(r14), irq % 64)?;
        a.jc(got)?;
        a.cmp(qword_ptr(SI_STOP), 0)?;
        a.jne(stopped)?;
        a.mov(rbx, BLOCK_MAX_US)?;
        hcall(a, op::BLOCK, rbx, 0, 0)?;
        a.jmp(top)?;
        a.set_label(&mut got)?;
        a.inc(r13)?;
        a.mov(qword_ptr(SI_PROGRESS), r13)?;
        a.mov(rax, count)?;
        a.cmp(r13, rax)?;
        a.jb(top)?;
        done_imm(a, 0)?;
        a.set_label(&mut refused)?;
        done_imm(a, 1)?;
        a.set_label(&mut stopped)?;
        done_imm(a, 2)
    })
}

/// Hostile guest: `iterations` random actions from an xorshift64 stream
/// seeded by `seed` — hypercalls with garbage blocks (random op 0–15 and
/// arguments, half of them near device A's frame so real paths run),
/// narrow `in` and `out` on the hypercall port, `in`/`out` on random ports
/// (never the done/fault ports), reads and writes of random guest-physical
/// addresses between 2 and 4 GiB. Hypercall statuses are counted in
/// [`SI_ERRORS`] / [`SI_OKS`].
pub fn hostile(seed: u64, iterations: u64) -> Result<Program, GuestError> {
    Program::assemble([seed, iterations, 0, 0], |a| {
        let mut top = a.create_label();
        let mut next = a.create_label();
        let mut h_call = a.create_label();
        let mut h_narrow = a.create_label();
        let mut h_out = a.create_label();
        let mut h_port = a.create_label();
        let mut h_mmio = a.create_label();
        let mut small = a.create_label();
        let mut issue = a.create_label();
        let mut ok = a.create_label();
        let mut port_ok = a.create_label();
        let mut do_in = a.create_label();
        let mut do_read = a.create_label();
        a.mov(r12, seed | 1)?;
        a.mov(r13, iterations.max(1))?;
        a.set_label(&mut top)?;
        // xorshift64
        a.mov(rax, r12)?;
        a.shl(rax, 13)?;
        a.xor(r12, rax)?;
        a.mov(rax, r12)?;
        a.shr(rax, 7)?;
        a.xor(r12, rax)?;
        a.mov(rax, r12)?;
        a.shl(rax, 17)?;
        a.xor(r12, rax)?;
        a.mov(rax, r12)?;
        a.and(eax, 7)?;
        a.cmp(eax, 3)?;
        a.jb(h_call)?;
        a.je(h_narrow)?;
        a.cmp(eax, 4)?;
        a.je(h_out)?;
        a.cmp(eax, 7)?;
        a.jb(h_port)?;
        a.jmp(h_mmio)?;

        a.set_label(&mut h_call)?;
        a.mov(rax, r12)?;
        a.shr(rax, 8)?;
        a.and(eax, 15)?;
        a.mov(qword_ptr(HCALL_BLOCK), rax)?;
        a.mov(rax, r12)?;
        a.ror(rax, 17)?;
        a.bt(r12, 40)?;
        a.jc(small)?;
        a.mov(qword_ptr(HCALL_BLOCK + 8), rax)?;
        a.ror(rax, 23)?;
        a.mov(qword_ptr(HCALL_BLOCK + 16), rax)?;
        a.ror(rax, 11)?;
        a.mov(qword_ptr(HCALL_BLOCK + 24), rax)?;
        a.jmp(issue)?;
        a.set_label(&mut small)?;
        // Plausible arguments: a frame near device A, 0-3 frames / a line.
        a.and(eax, 3)?;
        a.mov(qword_ptr(HCALL_BLOCK + 16), rax)?;
        a.add(rax, (DEVICE_A_FRAME - 1) as i32)?;
        a.mov(qword_ptr(HCALL_BLOCK + 8), rax)?;
        a.set_label(&mut issue)?;
        a.mov(edx, HCALL_PORT as u32)?;
        a.in_(eax, dx)?;
        a.test(eax, eax)?;
        a.jz(ok)?;
        a.inc(qword_ptr(SI_ERRORS))?;
        a.jmp(next)?;
        a.set_label(&mut ok)?;
        a.inc(qword_ptr(SI_OKS))?;
        a.jmp(next)?;

        a.set_label(&mut h_narrow)?;
        a.mov(edx, HCALL_PORT as u32)?;
        a.in_(al, dx)?;
        a.jmp(next)?;

        a.set_label(&mut h_out)?;
        a.mov(edx, HCALL_PORT as u32)?;
        a.mov(rax, r12)?;
        a.out(dx, eax)?;
        a.jmp(next)?;

        a.set_label(&mut h_port)?;
        a.mov(rdx, r12)?;
        a.shr(rdx, 20)?;
        a.and(edx, 0xffff)?;
        a.mov(ecx, edx)?;
        a.and(ecx, 0xfffc)?;
        a.cmp(ecx, layout::HCALL_PORT as i32)?;
        a.jne(port_ok)?;
        a.xor(edx, 0x1000)?;
        a.set_label(&mut port_ok)?;
        a.bt(r12, 33)?;
        a.jc(do_in)?;
        a.mov(rax, r12)?;
        a.out(dx, al)?;
        a.jmp(next)?;
        a.set_label(&mut do_in)?;
        a.in_(eax, dx)?;
        a.jmp(next)?;

        a.set_label(&mut h_mmio)?;
        a.mov(rbx, r12)?;
        a.shr(rbx, 3)?;
        a.and(ebx, 0x7fff_fff8)?;
        a.mov(rcx, 0x8000_0000u64)?;
        a.add(rbx, rcx)?;
        a.bt(r12, 9)?;
        a.jc(do_read)?;
        a.mov(qword_ptr(rbx), r12)?;
        a.jmp(next)?;
        a.set_label(&mut do_read)?;
        a.mov(rax, qword_ptr(rbx))?;

        a.set_label(&mut next)?;
        a.mov(qword_ptr(SI_PROGRESS), r13)?;
        a.dec(r13)?;
        a.jnz(top)?;
        done_imm(a, 0)
    })
}

/// Idle guest: blocks in `BLOCK` (clearing any pending events) until
/// [`SI_STOP`]; costs one hypercall per [`BLOCK_MAX_US`] or event.
pub fn idle() -> Result<Program, GuestError> {
    Program::assemble([0; 4], idle_loop)
}

/// Start-info word: the `out0` result of [`query_probe`]'s query.
pub const SI_QUERY: u64 = START_INFO + 48;

/// Asks the hypervisor about one unit with `QUERY` (space 0 ioport, 1
/// iomem, 2 irq): status to [`SI_STATUS`], the result bits to [`SI_QUERY`].
pub fn query_probe(space: u64, unit: u64) -> Result<Program, GuestError> {
    Program::assemble([space, unit, 0, 0], |a| {
        a.mov(rbx, space)?;
        hcall(a, op::QUERY, rbx, unit, 0)?;
        a.mov(qword_ptr(SI_STATUS), rax)?;
        a.mov(rax, qword_ptr(HCALL_BLOCK + 32))?;
        a.mov(qword_ptr(SI_QUERY), rax)?;
        done_imm(a, 0)
    })
}

/// vCPU probe, for domains of several vCPUs: each vCPU asks the `VCPU_ID`
/// hypercall (through its own block, [`layout::hcall_block`]) for its index
/// and writes `(hypercall answer, r9, domain id)` at the start of its own
/// data area (`r10`), pushing and popping through its own stack on the way;
/// then ends.
pub fn vcpu_probe() -> Result<Program, GuestError> {
    Program::assemble([0; 4], |a| {
        a.mov(r12, r9)?;
        a.shl(r12, layout::HCALL_STRIDE.trailing_zeros())?;
        a.add(r12, HCALL_BLOCK as i32)?;
        a.mov(rax, op::VCPU_ID)?;
        a.mov(qword_ptr(r12), rax)?;
        a.push(rdi)?;
        a.push(r9)?;
        a.mov(edx, HCALL_PORT as u32)?;
        a.in_(eax, dx)?;
        a.mov(qword_ptr(r10), rax)?;
        a.pop(rax)?;
        a.mov(qword_ptr(r10 + 8), rax)?;
        a.pop(rax)?;
        a.mov(qword_ptr(r10 + 16), rax)?;
        done_imm(a, 0)
    })
}

/// Spins forever (`jmp $`); only the host can stop it.
pub fn spinner() -> Result<Program, GuestError> {
    Program::assemble([0; 4], |a| {
        let mut l = a.create_label();
        a.set_label(&mut l)?;
        a.jmp(l)
    })
}

/// How [`faulter`] faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// `ud2` (#UD, vector 6).
    Ud2,
    /// A load from a non-canonical address (#GP, vector 13).
    NonCanonical,
    /// A load beyond the guest page tables (#PF, vector 14).
    Unmapped,
    /// Zeroes its own IDT (guest RAM is the guest's to wreck), then `ud2`:
    /// #UD → #NP → #DF → triple fault (KVM shutdown exit).
    TripleFault,
}

/// A guest that faults right away.
pub fn faulter(kind: FaultKind) -> Result<Program, GuestError> {
    Program::assemble([0; 4], |a| {
        match kind {
            FaultKind::Ud2 => a.ud2()?,
            FaultKind::NonCanonical => {
                a.mov(rbx, 0xdead_0000_0000_0000u64)?;
                a.mov(rax, qword_ptr(rbx))?;
            }
            FaultKind::Unmapped => {
                a.mov(rbx, 0x3f_0000_0000u64)?;
                a.mov(rax, qword_ptr(rbx))?;
            }
            FaultKind::TripleFault => {
                a.mov(rbx, layout::IDT)?;
                a.mov(ecx, 64u32)?;
                let mut l = a.create_label();
                a.set_label(&mut l)?;
                a.mov(qword_ptr(rbx), 0)?;
                a.add(rbx, 8)?;
                a.dec(ecx)?;
                a.jnz(l)?;
                a.ud2()?;
            }
        }
        done_imm(a, 0)
    })
}

/// Request counter a host writes for [`on_request`] guests.
pub const SI_REQ: u64 = START_INFO + 56;
/// The last request an [`on_request`] guest has finished.
pub const SI_ACK: u64 = START_INFO + 64;

/// What an [`on_request`] guest does for each request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// Writes the request number to the first word of each of `pages` pages
    /// from `first_frame` (one touch per page).
    Paint {
        /// First frame.
        first_frame: u64,
        /// Pages to touch.
        pages: u64,
    },
    /// `count` times `in al, port`.
    PortReads {
        /// The port.
        port: u16,
        /// Reads per request.
        count: u64,
    },
}

/// Where an [`on_request`] guest waits between requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Parked in a blocking `BLOCK` hypercall: the vCPU thread is outside
    /// `KVM_RUN` (woken by [`crate::Hypervisor::notify`]).
    Parked,
    /// Spinning in guest mode on [`SI_REQ`] (`pause` loop, no exits).
    Running,
}

/// A bench guest that does `work` once per request: whenever [`SI_REQ`]
/// differs from [`SI_ACK`] it does the work and stores the request in
/// [`SI_ACK`]; in between it waits as `wait` says. Exit code 0 on
/// [`SI_STOP`].
pub fn on_request(work: Work, wait: Wait) -> Result<Program, GuestError> {
    let (w0, w1) = match work {
        Work::Paint { first_frame, pages } => (first_frame, pages),
        Work::PortReads { port, count } => (port as u64, count),
    };
    Program::assemble([w0, w1, (wait == Wait::Parked) as u64, 0], |a| {
        let mut top = a.create_label();
        let mut idle = a.create_label();
        let mut end = a.create_label();
        let mut body = a.create_label();
        a.set_label(&mut top)?;
        a.cmp(qword_ptr(SI_STOP), 0)?;
        a.jne(end)?;
        a.mov(r15, qword_ptr(SI_REQ))?;
        a.cmp(r15, qword_ptr(SI_ACK))?;
        a.je(idle)?;
        match work {
            Work::Paint { first_frame, pages } => {
                a.mov(rbx, first_frame * PAGE_SIZE)?;
                a.mov(rcx, pages.max(1))?;
                a.set_label(&mut body)?;
                a.mov(qword_ptr(rbx), r15)?;
                a.add(rbx, PAGE_SIZE as i32)?;
                a.dec(rcx)?;
                a.jnz(body)?;
            }
            Work::PortReads { port, count } => {
                a.mov(r12, count.max(1))?;
                a.set_label(&mut body)?;
                a.mov(edx, port as u32)?;
                a.in_(al, dx)?;
                a.dec(r12)?;
                a.jnz(body)?;
            }
        }
        a.mov(qword_ptr(SI_ACK), r15)?;
        a.jmp(top)?;
        a.set_label(&mut idle)?;
        match wait {
            Wait::Parked => {
                a.mov(rbx, BLOCK_MAX_US)?;
                hcall(a, op::BLOCK, rbx, 0, 0)?;
                for i in 0..16u64 {
                    a.mov(qword_ptr(EVTCHN_PAGE + 8 * i), 0)?;
                }
            }
            Wait::Running => a.pause()?,
        }
        a.jmp(top)?;
        a.set_label(&mut end)?;
        done_imm(a, 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_program_assembles_within_limits() {
        for p in [
            port_loop(0x300, 10),
            driver(0),
            mmio_writer(0xfeb0_0000, 5, true),
            port_hammer(0x300),
            fb_painter(0x10_0000, 16, 7, 1),
            irq_waiter(11, 3),
            hostile(42, 100),
            spinner(),
            idle(),
            fb_painter_linger(0x10_0000, 4, 1),
            faulter(FaultKind::Ud2),
            faulter(FaultKind::NonCanonical),
            faulter(FaultKind::Unmapped),
            faulter(FaultKind::TripleFault),
            mmio_loop(0xfed0_0000, 3),
            query_probe(1, 0xfeb00),
        ] {
            let p = p.unwrap();
            assert!(!p.code.is_empty() && p.code.len() < 4096);
        }
        assert_eq!(max_samples(layout::DATA + 80), 10);
    }
}
