//! Fixed guest-physical layout and the hypervisor's paravirtual ports.
//!
//! Every domain gets the same layout: RAM from GPA 0 (4 MiB by default), the
//! platform's device memory at its physical addresses, identity-mapped by the
//! guest page tables with 2 MiB pages, user-accessible at every level. Guest
//! virtual address = guest physical address.

/// GDT (7 entries: null, kernel code/data, user code/data, 64-bit TSS).
pub const GDT: u64 = 0x1000;
/// IDT (32 interrupt gates, one per exception vector).
pub const IDT: u64 = 0x2000;
/// 64-bit TSS (RSP0 and IST1 point at the kernel stack).
pub const TSS: u64 = 0x3000;
/// The hypercall argument block (see [`crate::hypercall`]).
pub const HCALL_BLOCK: u64 = 0x4000;
/// The event-channel page: 1024 pending bits, one per interrupt line
/// (see [`crate::platform`]).
pub const EVTCHN_PAGE: u64 = 0x5000;
/// The start-info page: domain id and workload arguments (little-endian u64s).
pub const START_INFO: u64 = 0x6000;
/// Exception stubs (ring 0; each reports its vector on [`FAULT_PORT`]),
/// then the interrupt handler at [`IRQ_STUB`].
pub const EXC_STUBS: u64 = 0x7000;
/// The interrupt handler (ring 0): counts at [`IRQ_COUNT`], EOIs the local
/// APIC, returns.
pub const IRQ_STUB: u64 = EXC_STUBS + 32 * 64;
/// Interrupts the guest's handler has taken (a u64 in the start-info page).
pub const IRQ_COUNT: u64 = START_INFO + 0x100;
/// vCPU 0's port-I/O trap mailbox (see [`pio_mailbox`]).
pub const PIO_MAILBOX: u64 = pio_mailbox(0);
/// vCPU 0's #GP frame (see [`gp_frame`]).
pub const GP_FRAME: u64 = gp_frame(0);
/// PML4; PDPT follows, then one page directory per GiB mapped.
pub const PAGE_TABLES: u64 = 0x10000;
/// Most GiB the guest page tables can map (page directories that fit
/// between [`PAGE_TABLES`] and [`CODE`]).
pub const MAX_MAPPED_GIB: u64 = 30;
/// Guest program code.
pub const CODE: u64 = 0x30000;
/// Largest guest program.
pub const CODE_MAX: u64 = 0x10000;
/// Top of vCPU 0's ring-0 stack used by exception delivery.
pub const KERNEL_STACK_TOP: u64 = 0x48000;
/// Top of the CPL3 stack vCPU 0 starts on.
pub const USER_STACK_TOP: u64 = 0x50000;

/// Most vCPUs a domain can have: each has its own TSS, ring-0 and CPL3
/// stacks (8 KiB each, between [`CODE`] + [`CODE_MAX`] and [`DATA`]),
/// hypercall block and data area.
pub const MAX_VCPUS: u32 = 4;
/// Size of each vCPU's ring-0 and CPL3 stack.
pub const VCPU_STACK: u64 = 0x2000;
/// Bytes between two vCPUs' TSSs (a TSS is 0x68 bytes).
pub const TSS_STRIDE: u64 = 0x80;
/// Bytes between two vCPUs' hypercall blocks.
pub const HCALL_STRIDE: u64 = 0x100;

/// Top of vCPU `i`'s ring-0 stack.
pub const fn kernel_stack_top(i: u32) -> u64 {
    KERNEL_STACK_TOP - i as u64 * VCPU_STACK
}
/// Top of vCPU `i`'s CPL3 stack.
pub const fn user_stack_top(i: u32) -> u64 {
    USER_STACK_TOP - i as u64 * VCPU_STACK
}
/// vCPU `i`'s 64-bit TSS (RSP0 and IST1 point at its ring-0 stack).
pub const fn tss(i: u32) -> u64 {
    TSS + i as u64 * TSS_STRIDE
}
/// Where the CPU pushes the exception frame of a #GP raised at CPL3 on vCPU
/// `i`: its IST1 top minus the six words (error code, rip, cs, rflags, rsp,
/// ss).
pub const fn gp_frame(i: u32) -> u64 {
    kernel_stack_top(i) - 48
}
/// vCPU `i`'s port-I/O trap mailbox, just below its #GP frame: the #GP stub
/// saves `rax`, `rdx` there (see [`crate::pvio`]).
pub const fn pio_mailbox(i: u32) -> u64 {
    gp_frame(i) - 16
}
/// vCPU `i`'s hypercall block (see [`crate::hypercall`]).
pub const fn hcall_block(i: u32) -> u64 {
    HCALL_BLOCK + i as u64 * HCALL_STRIDE
}
/// vCPU `i`'s data area of a domain with `vcpus` vCPUs and `ram_bytes` of
/// RAM: `(first byte, bytes)`, an equal share of [`DATA`]..end of RAM, 8-byte
/// aligned. vCPU `i` starts with it in `r10` (start) and `r11` (bytes).
pub const fn vcpu_data(i: u32, vcpus: u32, ram_bytes: u64) -> (u64, u64) {
    let n = if vcpus == 0 { 1 } else { vcpus as u64 };
    let total = ram_bytes.saturating_sub(DATA);
    let share = (total / n) & !7;
    (DATA + i as u64 * share, share)
}
/// Start of the free data area (sample buffers) up to the end of RAM.
pub const DATA: u64 = 0x10_0000;
/// Default guest RAM size.
pub const DEFAULT_RAM: u64 = 4 << 20;

/// GDT selector of the CPL3 64-bit code segment.
pub const USER_CS: u16 = 0x1b;
/// GDT selector of the CPL3 data segment.
pub const USER_DS: u16 = 0x23;
/// GDT selector of the ring-0 code segment (exception gates).
pub const KERNEL_CS: u16 = 0x08;
/// GDT selector of the TSS.
pub const TSS_SEL: u16 = 0x28;

/// Hypercall port: `in eax, dx` with `dx = HCALL_PORT` performs the call
/// described by the [`HCALL_BLOCK`] and returns its status in `eax`.
pub const HCALL_PORT: u16 = 0x0500;
/// Done port: an `out` here ends the program; the value is its exit code.
pub const DONE_PORT: u16 = 0x0501;
/// Fault port: the exception stubs write the vector here; the domain stops.
pub const FAULT_PORT: u16 = 0x0502;
/// Port-I/O trap port: the #GP stub writes here when a CPL3 `in`/`out`
/// faulted because the platform forces IOPL to 0 (PVM); the hypervisor
/// emulates the instruction (see [`crate::pvio`]).
pub const PIO_TRAP_PORT: u16 = 0x0503;
/// The hypervisor's paravirtual ports, reserved in the accountant at boot so
/// they can never be granted.
pub const HV_PORTS: (u16, u16) = (HCALL_PORT, PIO_TRAP_PORT);
