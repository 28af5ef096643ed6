//! One KVM VM with its guest RAM, ready to run a [`Program`] at CPL3.

use crate::guest::{self, GuestError, Program};
use crate::layout;
use crate::mem::{HostMem, MemError, PAGE_SIZE};
use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::{Kvm, VcpuFd, VmFd};

/// Why a VM could not be built or changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmError {
    /// A KVM ioctl failed (`what` names it) with this errno.
    Kvm {
        /// The failing step.
        what: &'static str,
        /// The errno.
        errno: i32,
    },
    /// Guest RAM could not be mapped.
    Mem(MemError),
    /// The guest image could not be built.
    Guest(GuestError),
}

impl std::fmt::Display for VmError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VmError::Kvm { what, errno } => write!(f, "{what}: errno {errno}"),
            VmError::Mem(e) => write!(f, "{e}"),
            VmError::Guest(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for VmError {}

impl From<MemError> for VmError {
    fn from(e: MemError) -> Self {
        VmError::Mem(e)
    }
}
impl From<GuestError> for VmError {
    fn from(e: GuestError) -> Self {
        VmError::Guest(e)
    }
}

pub(crate) fn kvm_err(what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> VmError {
    move |e| VmError::Kvm {
        what,
        errno: e.errno(),
    }
}

/// Memslot 0 holds guest RAM; I/O memory slots use `1..max_slots`.
pub const RAM_SLOT: u32 = 0;

/// A VM with guest RAM at GPA 0 in memslot [`RAM_SLOT`], and one vCPU set up
/// for CPL3 long mode (not yet running).
#[derive(Debug)]
pub struct GuestVm {
    /// The VM file descriptor (memslot changes go through it).
    pub vm: VmFd,
    /// Guest RAM.
    pub ram: HostMem,
    /// Number of memslots KVM gives this VM (`KVM_CAP_NR_MEMSLOTS`).
    pub max_slots: u32,
    /// Whether the VM has KVM's in-kernel irqchip (see [`crate::irqchip`]).
    pub irqchip: bool,
}

impl GuestVm {
    /// Creates the VM, maps `ram_bytes` of RAM, writes descriptor tables, page
    /// tables identity-mapping `map_gib` GiB, and the program; returns the VM
    /// and its vCPU 0 with entry state set.
    pub fn new(
        kvm: &Kvm,
        ram_bytes: u64,
        map_gib: u64,
        domid: u16,
        program: &Program,
    ) -> Result<(GuestVm, VcpuFd), VmError> {
        let (vm, mut vcpus) = GuestVm::new_smp(kvm, ram_bytes, map_gib, domid, program, 1)?;
        let vcpu = vcpus.pop().ok_or(VmError::Kvm {
            what: "KVM_CREATE_VCPU",
            errno: libc::EINVAL,
        })?;
        Ok((vm, vcpu))
    }

    /// [`GuestVm::new`] with `vcpus` vCPUs (1..=[`layout::MAX_VCPUS`]),
    /// returned in index order. Each has its own TSS and stacks and starts
    /// at the program's entry with its index in `r9` and its data area in
    /// `r10`/`r11` ([`guest::vcpu_entry_regs`]).
    pub fn new_smp(
        kvm: &Kvm,
        ram_bytes: u64,
        map_gib: u64,
        domid: u16,
        program: &Program,
        vcpus: u32,
    ) -> Result<(GuestVm, Vec<VcpuFd>), VmError> {
        if vcpus == 0 || vcpus > layout::MAX_VCPUS {
            return Err(GuestError::TooManyVcpus(vcpus).into());
        }
        if ram_bytes < layout::DATA + PAGE_SIZE {
            return Err(GuestError::RamTooSmall(ram_bytes).into());
        }
        let vm = kvm.create_vm().map_err(kvm_err("KVM_CREATE_VM"))?;
        let max_slots = kvm.get_nr_memslots() as u32;
        let ram = HostMem::new(ram_bytes)?;
        guest::write_descriptor_tables(&ram)?;
        guest::write_page_tables(&ram, map_gib)?;
        ram.write(layout::CODE, &program.code)
            .ok_or(GuestError::TooBig(program.code.len()))?;
        ram.write_u64(layout::START_INFO, domid as u64)
            .ok_or(GuestError::RamTooSmall(ram_bytes))?;
        let region = kvm_userspace_memory_region {
            slot: RAM_SLOT,
            flags: 0,
            guest_phys_addr: 0,
            memory_size: ram_bytes,
            userspace_addr: ram.host_addr(0).ok_or(GuestError::RamTooSmall(0))?,
        };
        // SAFETY: the region is `ram`, a live mapping of exactly `ram_bytes`
        // owned by the returned `GuestVm`, which also owns `vm`; the struct's
        // field order drops `vm` (and with it the slot) before `ram`.
        unsafe { vm.set_user_memory_region(region) }.map_err(kvm_err("RAM memslot"))?;
        // Before any vCPU: the irqchip gives each vCPU an in-kernel LAPIC.
        let irqchip = crate::irqchip::create(&vm)?;
        let cpuid = kvm
            .get_supported_cpuid(kvm_bindings::KVM_MAX_CPUID_ENTRIES)
            .map_err(kvm_err("KVM_GET_SUPPORTED_CPUID"))?;
        let mut fds = Vec::with_capacity(vcpus as usize);
        for i in 0..vcpus {
            let vcpu = vm
                .create_vcpu(u64::from(i))
                .map_err(kvm_err("KVM_CREATE_VCPU"))?;
            vcpu.set_cpuid2(&cpuid).map_err(kvm_err("KVM_SET_CPUID2"))?;
            let sregs = vcpu.get_sregs().map_err(kvm_err("KVM_GET_SREGS"))?;
            vcpu.set_sregs(&guest::vcpu_sregs(sregs, i))
                .map_err(kvm_err("KVM_SET_SREGS"))?;
            let mut regs = guest::vcpu_entry_regs(domid, program.args, i, vcpus, ram_bytes);
            if irqchip {
                crate::irqchip::enable_lapic(&vcpu)?;
                // With an in-kernel LAPIC the other vCPUs would wait for a
                // startup IPI: every vCPU starts at the program's entry.
                vcpu.set_mp_state(kvm_bindings::kvm_mp_state {
                    mp_state: kvm_bindings::KVM_MP_STATE_RUNNABLE,
                })
                .map_err(kvm_err("KVM_SET_MP_STATE"))?;
                // Interrupts on: only routed lines with an irqfd are injected.
                regs.rflags |= 0x200;
            }
            vcpu.set_regs(&regs).map_err(kvm_err("KVM_SET_REGS"))?;
            fds.push(vcpu);
        }
        Ok((
            GuestVm {
                vm,
                ram,
                max_slots,
                irqchip,
            },
            fds,
        ))
    }
}
