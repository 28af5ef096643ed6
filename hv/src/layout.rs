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
/// Exception stubs (ring 0; each reports its vector on [`FAULT_PORT`]).
pub const EXC_STUBS: u64 = 0x7000;
/// Port-I/O trap mailbox (ring 0 saves `rax`, `rdx` here; see
/// [`crate::pvio`]).
pub const PIO_MAILBOX: u64 = 0x7f00;
/// Where the CPU pushes the exception frame of a #GP raised at CPL3: IST1
/// top minus the six words (error code, rip, cs, rflags, rsp, ss).
pub const GP_FRAME: u64 = KERNEL_STACK_TOP - 48;
/// PML4; PDPT follows, then one page directory per GiB mapped.
pub const PAGE_TABLES: u64 = 0x10000;
/// Most GiB the guest page tables can map (page directories that fit
/// between [`PAGE_TABLES`] and [`CODE`]).
pub const MAX_MAPPED_GIB: u64 = 30;
/// Guest program code.
pub const CODE: u64 = 0x30000;
/// Largest guest program.
pub const CODE_MAX: u64 = 0x10000;
/// Top of the ring-0 stack used by exception delivery.
pub const KERNEL_STACK_TOP: u64 = 0x48000;
/// Top of the CPL3 stack the program starts on.
pub const USER_STACK_TOP: u64 = 0x50000;
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
