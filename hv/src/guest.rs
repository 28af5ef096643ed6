//! Building a guest: page tables, descriptor tables and the initial CPU state
//! for 64-bit long mode at CPL3 with IOPL=3, and assembling guest programs.
//!
//! The same state runs natively under PVM (where only CPL3 long-mode code runs
//! at full speed; ring 0 is emulated) and on VT-x/AMD-V. The guest starts in
//! user mode; ring 0 is entered only for exception delivery, whose stubs
//! report the vector on [`layout::FAULT_PORT`].

use crate::layout;
use crate::mem::HostMem;
use iced_x86::code_asm::{self as asm, CodeAssembler};
use kvm_bindings::{kvm_regs, kvm_segment, kvm_sregs};
use x86_64::structures::paging::{PageTable, PageTableFlags};

/// Why a guest could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestError {
    /// The program failed to assemble (message from the assembler).
    Asm(String),
    /// The program is larger than [`layout::CODE_MAX`].
    TooBig(usize),
    /// The address space to map exceeds [`layout::MAX_MAPPED_GIB`].
    TooMuchToMap(u64),
    /// Guest RAM is too small for the fixed layout.
    RamTooSmall(u64),
    /// A vCPU count outside `1..=layout::MAX_VCPUS`.
    TooManyVcpus(u32),
}

impl std::fmt::Display for GuestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GuestError::Asm(m) => write!(f, "assembler: {m}"),
            GuestError::TooBig(n) => write!(f, "program of {n} bytes is too big"),
            GuestError::TooMuchToMap(g) => write!(f, "{g} GiB to map is too much"),
            GuestError::RamTooSmall(r) => write!(f, "guest RAM of {r:#x} bytes is too small"),
            GuestError::TooManyVcpus(n) => write!(
                f,
                "{n} vCPUs: a domain has 1 to {} vCPUs",
                layout::MAX_VCPUS
            ),
        }
    }
}

impl std::error::Error for GuestError {}

impl From<iced_x86::IcedError> for GuestError {
    fn from(e: iced_x86::IcedError) -> Self {
        GuestError::Asm(e.to_string())
    }
}

/// A guest program: machine code placed at [`layout::CODE`] and entered at
/// CPL3 with `rdi` = domain id and `rsi`, `rdx`, `rcx`, `r8` = its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// Machine code, assembled for [`layout::CODE`].
    pub code: Vec<u8>,
    /// The four arguments.
    pub args: [u64; 4],
}

impl Program {
    /// Assembles a program with `body` (64-bit mode, origin [`layout::CODE`]).
    pub fn assemble(
        args: [u64; 4],
        body: impl FnOnce(&mut CodeAssembler) -> Result<(), iced_x86::IcedError>,
    ) -> Result<Program, GuestError> {
        let mut a = CodeAssembler::new(64)?;
        body(&mut a)?;
        let code = a.assemble(layout::CODE)?;
        if code.len() as u64 > layout::CODE_MAX {
            return Err(GuestError::TooBig(code.len()));
        }
        Ok(Program { code, args })
    }
}

const PTE_FLAGS: PageTableFlags = PageTableFlags::PRESENT
    .union(PageTableFlags::WRITABLE)
    .union(PageTableFlags::USER_ACCESSIBLE);

fn table_bytes(t: &PageTable) -> Vec<u8> {
    t.iter()
        .flat_map(|e| {
            // Entries are plain u64s: address bits | flags.
            let v = e.addr().as_u64() | e.flags().bits();
            v.to_le_bytes()
        })
        .collect()
}

/// Writes identity page tables for `0..gib` GiB with 2 MiB pages, U/W/P at
/// every level, into `ram` at [`layout::PAGE_TABLES`].
pub fn write_page_tables(ram: &HostMem, gib: u64) -> Result<(), GuestError> {
    if gib == 0 || gib > layout::MAX_MAPPED_GIB {
        return Err(GuestError::TooMuchToMap(gib));
    }
    let pml4_at = layout::PAGE_TABLES;
    let pdpt_at = pml4_at + 0x1000;
    let pd_at = |g: u64| pdpt_at + 0x1000 * (1 + g);
    let mut pml4 = PageTable::new();
    pml4[0].set_addr(x86_64::PhysAddr::new(pdpt_at), PTE_FLAGS);
    let mut pdpt = PageTable::new();
    for g in 0..gib {
        pdpt[g as usize].set_addr(x86_64::PhysAddr::new(pd_at(g)), PTE_FLAGS);
        let mut pd = PageTable::new();
        for (i, e) in pd.iter_mut().enumerate() {
            let addr = (g << 30) | ((i as u64) << 21);
            e.set_addr(
                x86_64::PhysAddr::new(addr),
                PTE_FLAGS | PageTableFlags::HUGE_PAGE,
            );
        }
        ram.write(pd_at(g), &table_bytes(&pd))
            .ok_or(GuestError::RamTooSmall(ram.len()))?;
    }
    ram.write(pml4_at, &table_bytes(&pml4))
        .ok_or(GuestError::RamTooSmall(ram.len()))?;
    ram.write(pdpt_at, &table_bytes(&pdpt))
        .ok_or(GuestError::RamTooSmall(ram.len()))?;
    Ok(())
}

fn tss_descriptor(base: u64, limit: u32) -> [u64; 2] {
    let low = (limit as u64 & 0xffff)
        | ((base & 0xff_ffff) << 16)
        | (0x89u64 << 40) // present, DPL0, available 64-bit TSS
        | (((limit as u64 >> 16) & 0xf) << 48)
        | (((base >> 24) & 0xff) << 56);
    [low, base >> 32]
}

/// Writes the GDT, IDT, one TSS per possible vCPU and exception stubs into
/// `ram` (32 stubs of at most 64 bytes from [`layout::EXC_STUBS`]).
/// Every vCPU shares the GDT, IDT and stubs; its TSS (loaded by base in
/// [`long_mode_sregs`]) gives it its own ring-0 stack, on which the #GP stub
/// keeps its mailbox, so vCPUs trap concurrently without sharing state.
pub fn write_descriptor_tables(ram: &HostMem) -> Result<(), GuestError> {
    use x86_64::structures::gdt::DescriptorFlags as F;
    let small = GuestError::RamTooSmall(ram.len());
    let tss = tss_descriptor(layout::TSS, 0x67);
    let gdt: [u64; 7] = [
        0,
        F::KERNEL_CODE64.bits(),
        F::KERNEL_DATA.bits(),
        F::USER_CODE64.bits(),
        F::USER_DATA.bits(),
        tss[0],
        tss[1],
    ];
    for (i, d) in gdt.iter().enumerate() {
        ram.write_u64(layout::GDT + 8 * i as u64, *d)
            .ok_or(small.clone())?;
    }
    // TSS: RSP0 at offset 4, IST1 at offset 36, I/O map base at 102 (beyond
    // the limit: no I/O bitmap, IOPL=3 decides).
    for i in 0..layout::MAX_VCPUS {
        let (tss, top) = (layout::tss(i), layout::kernel_stack_top(i));
        ram.write_u64(tss + 4, top).ok_or(small.clone())?;
        ram.write_u64(tss + 36, top).ok_or(small.clone())?;
        ram.write(tss + 102, &0x68u16.to_le_bytes())
            .ok_or(small.clone())?;
    }
    // Exception stubs: each `mov eax, vector; mov edx, FAULT_PORT; out dx, eax`
    // then loops (the hypervisor never resumes a faulted domain).
    for v in 0..32u64 {
        let at = layout::EXC_STUBS + v * 64;
        let mut a = CodeAssembler::new(64)?;
        if v == 13 {
            // #GP: maybe a CPL3 `in`/`out` on a platform that forces IOPL 0.
            // Save rax/rdx, let the hypervisor emulate the instruction (it
            // rewrites the saved rax and the frame's rip), restore, return.
            // The mailbox is just below the frame on this vCPU's own IST
            // stack (`layout::pio_mailbox`): rsp points at the error code.
            a.mov(asm::qword_ptr(asm::rsp - 16), asm::rax)?;
            a.mov(asm::qword_ptr(asm::rsp - 8), asm::rdx)?;
            a.mov(asm::edx, layout::PIO_TRAP_PORT as u32)?;
            a.out(asm::dx, asm::al)?;
            a.mov(asm::rax, asm::qword_ptr(asm::rsp - 16))?;
            a.mov(asm::rdx, asm::qword_ptr(asm::rsp - 8))?;
            a.add(asm::rsp, 8)?;
            a.iretq()?;
        } else {
            let mut l = a.create_label();
            a.set_label(&mut l)?;
            a.mov(asm::eax, v as u32)?;
            a.mov(asm::edx, layout::FAULT_PORT as u32)?;
            a.out(asm::dx, asm::eax)?;
            a.jmp(l)?;
        }
        let code = a.assemble(at)?;
        if code.len() > 64 {
            return Err(GuestError::TooBig(code.len()));
        }
        ram.write(at, &code).ok_or(small.clone())?;
        write_gate(ram, v, at).ok_or(small.clone())?;
    }
    // The interrupt handler: count, EOI (local APIC at 0xfee00000, EOI
    // register 0xb0), return. Interrupt gate: no nesting.
    let at = layout::IRQ_STUB;
    let mut a = CodeAssembler::new(64)?;
    a.push(asm::rax)?;
    a.lock().inc(asm::qword_ptr(layout::IRQ_COUNT))?;
    a.mov(asm::rax, 0xfee0_00b0u64)?;
    a.mov(asm::dword_ptr(asm::rax), 0)?;
    a.pop(asm::rax)?;
    a.iretq()?;
    let code = a.assemble(at)?;
    ram.write(at, &code).ok_or(small.clone())?;
    write_gate(ram, u64::from(crate::irqchip::IRQ_VECTOR), at).ok_or(small.clone())?;
    Ok(())
}

/// Points IDT entry `vector` at the handler at `at`: a 64-bit interrupt
/// gate, DPL0, IST1 (every vCPU's own stack, through its TSS). `None` if
/// RAM is too small for the IDT.
fn write_gate(ram: &HostMem, vector: u64, at: u64) -> Option<()> {
    let lo = (at & 0xffff)
        | ((layout::KERNEL_CS as u64) << 16)
        | (1u64 << 32)
        | (0x8eu64 << 40)
        | (((at >> 16) & 0xffff) << 48);
    ram.write_u64(layout::IDT + 16 * vector, lo)?;
    ram.write_u64(layout::IDT + 16 * vector + 8, at >> 32)
}

fn seg(selector: u16, code: bool) -> kvm_segment {
    kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector,
        type_: if code { 0xb } else { 0x3 },
        present: 1,
        dpl: 3,
        db: u8::from(!code),
        s: 1,
        l: u8::from(code),
        g: 1,
        avl: 0,
        unusable: 0,
        padding: 0,
    }
}

/// Special registers for CPL3 long mode: paging on, PAE, EFER.LME|LMA,
/// CS = [`layout::USER_CS`], SS/DS/ES/FS/GS = [`layout::USER_DS`] (vCPU 0).
pub fn long_mode_sregs(s: kvm_sregs) -> kvm_sregs {
    vcpu_sregs(s, 0)
}

/// [`long_mode_sregs`] for vCPU `i`: TR is loaded with vCPU `i`'s TSS.
pub fn vcpu_sregs(mut s: kvm_sregs, i: u32) -> kvm_sregs {
    s.cs = seg(layout::USER_CS, true);
    let d = seg(layout::USER_DS, false);
    s.ds = d;
    s.es = d;
    s.fs = d;
    s.gs = d;
    s.ss = d;
    s.tr = kvm_segment {
        base: layout::tss(i),
        limit: 0x67,
        selector: layout::TSS_SEL,
        type_: 0xb,
        present: 1,
        dpl: 0,
        db: 0,
        s: 0,
        l: 0,
        g: 0,
        avl: 0,
        unusable: 0,
        padding: 0,
    };
    s.ldt = kvm_segment {
        type_: 2,
        present: 1,
        unusable: 1,
        ..Default::default()
    };
    s.gdt.base = layout::GDT;
    s.gdt.limit = 7 * 8 - 1;
    s.idt.base = layout::IDT;
    s.idt.limit = (u16::from(crate::irqchip::IRQ_VECTOR) + 1) * 16 - 1;
    s.cr0 = 0x8005_0033; // PG | AM | WP | NE | ET | MP | PE
    s.cr3 = layout::PAGE_TABLES;
    s.cr4 = 0x620; // OSXMMEXCPT | OSFXSR | PAE
    s.efer = 0x500; // LMA | LME
    s
}

/// General registers at entry: `rip` = [`layout::CODE`], `rsp` = user stack,
/// `rflags` = IOPL3 | reserved bit 1 (interrupts off: nothing is injected;
/// events arrive as pending bits), arguments in `rdi, rsi, rdx, rcx, r8`.
pub fn entry_regs(domid: u16, args: [u64; 4]) -> kvm_regs {
    vcpu_entry_regs(domid, args, 0, 1, layout::DEFAULT_RAM)
}

/// [`entry_regs`] for vCPU `i` of `vcpus` in a domain of `ram_bytes`: its
/// own stack, its index in `r9` and its data area ([`layout::vcpu_data`])
/// in `r10` (start) and `r11` (bytes).
pub fn vcpu_entry_regs(domid: u16, args: [u64; 4], i: u32, vcpus: u32, ram_bytes: u64) -> kvm_regs {
    let (data, data_bytes) = layout::vcpu_data(i, vcpus, ram_bytes);
    kvm_regs {
        rip: layout::CODE,
        rsp: layout::user_stack_top(i),
        r9: u64::from(i),
        r10: data,
        r11: data_bytes,
        rflags: 0x3002,
        rdi: domid as u64,
        rsi: args[0],
        rdx: args[1],
        rcx: args[2],
        r8: args[3],
        ..Default::default()
    }
}
