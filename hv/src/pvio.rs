//! Port I/O on platforms that force IOPL to 0 for guests (PVM).
//!
//! Under PVM the guest always runs with the underlying RFLAGS.IOPL = 0, so a
//! CPL3 `in`/`out` raises #GP instead of exiting (measured here: the IOPL=3
//! the hypervisor sets is cleared). The guest's #GP stub (see
//! [`crate::guest::write_descriptor_tables`]) saves `rax`/`rdx` in the
//! mailbox on its own ring-0 stack ([`layout::pio_mailbox`]) and writes [`layout::PIO_TRAP_PORT`]; the
//! hypervisor then decodes the faulting instruction from guest memory, turns
//! it into the same typed [`Exit`] a native port exit gives, and completes it
//! by rewriting the saved `rax` and advancing the saved `rip`. On VT-x/AMD-V
//! IOPL=3 is honoured and this path is never taken.
//!
//! Everything read from the guest here is an allegation: the frame, the
//! instruction bytes and the mailbox are bounds-checked and validated, and
//! anything that is not a plain CPL3 `in`/`out` is reported as a real #GP.

use crate::exit::Exit;
use crate::layout;
use crate::mem::HostMem;

/// Why a #GP could not be treated as port I/O (the domain has really faulted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrapError {
    /// The frame or instruction lies outside guest RAM.
    OutOfRam,
    /// The #GP was not raised at CPL3 (frame CS is not the user code segment).
    NotUser(u64),
    /// The #GP carried a non-zero error code (a segment fault, not I/O).
    ErrorCode(u64),
    /// The faulting instruction is not a supported `in`/`out` (first byte
    /// after prefixes).
    NotPortIo(u8),
}

/// A decoded port instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortInsn {
    /// True for `in`.
    pub is_in: bool,
    /// The port (immediate or `dx`).
    pub port: u16,
    /// Access width in bytes: 1, 2 or 4.
    pub size: u8,
    /// Instruction length in bytes.
    pub len: u8,
}

/// Decodes `in`/`out` (forms E4-E7 with imm8, EC-EF with `dx`; an optional
/// 0x66 operand-size prefix and REX prefix). `rdx` supplies the port for the
/// `dx` forms. String I/O and anything else is `NotPortIo`.
pub fn decode(bytes: &[u8], rdx: u64) -> Result<PortInsn, TrapError> {
    let mut i = 0usize;
    let mut opsize16 = false;
    while let Some(&b) = bytes.get(i) {
        match b {
            0x66 => opsize16 = true,
            0x40..=0x4f => {}
            _ => break,
        }
        i += 1;
        if i > 4 {
            return Err(TrapError::NotPortIo(b));
        }
    }
    let op = *bytes.get(i).ok_or(TrapError::NotPortIo(0))?;
    let wide = if opsize16 { 2 } else { 4 };
    let (is_in, size, imm) = match op {
        0xe4 => (true, 1, true),
        0xe5 => (true, wide, true),
        0xe6 => (false, 1, true),
        0xe7 => (false, wide, true),
        0xec => (true, 1, false),
        0xed => (true, wide, false),
        0xee => (false, 1, false),
        0xef => (false, wide, false),
        other => return Err(TrapError::NotPortIo(other)),
    };
    let (port, len) = if imm {
        let p = *bytes.get(i + 1).ok_or(TrapError::NotPortIo(op))?;
        (p as u16, i + 2)
    } else {
        (rdx as u16, i + 1)
    };
    Ok(PortInsn {
        is_in,
        port,
        size,
        len: len as u8,
    })
}

/// A port-I/O trap read from guest memory, ready to be handled and completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trap {
    /// The guest's `rax` at the fault.
    pub rax: u64,
    /// The faulting instruction's address.
    pub rip: u64,
    /// The decoded instruction.
    pub insn: PortInsn,
    /// The vCPU that trapped.
    pub vcpu: u32,
}

impl Trap {
    /// Reads and validates the trap the #GP stub reported.
    pub fn read(ram: &HostMem) -> Result<Trap, TrapError> {
        Trap::read_vcpu(ram, 0)
    }

    /// Reads and validates the trap the #GP stub of vCPU `vcpu` reported
    /// (its mailbox and frame are on its own ring-0 stack).
    pub fn read_vcpu(ram: &HostMem, vcpu: u32) -> Result<Trap, TrapError> {
        let rd = |off: u64| ram.read_u64(off).ok_or(TrapError::OutOfRam);
        let (mailbox, frame) = (layout::pio_mailbox(vcpu), layout::gp_frame(vcpu));
        let rax = rd(mailbox)?;
        let rdx = rd(mailbox + 8)?;
        let err = rd(frame)?;
        let rip = rd(frame + 8)?;
        let cs = rd(frame + 16)?;
        if cs & 0xffff != layout::USER_CS as u64 {
            return Err(TrapError::NotUser(cs));
        }
        if err != 0 {
            return Err(TrapError::ErrorCode(err));
        }
        let mut bytes = [0u8; 8];
        // The instruction may sit at the very end of RAM: read what exists.
        let avail = ram.len().saturating_sub(rip).min(8) as usize;
        if avail == 0 {
            return Err(TrapError::OutOfRam);
        }
        ram.read(rip, &mut bytes[..avail])
            .ok_or(TrapError::OutOfRam)?;
        let insn = decode(&bytes[..avail], rdx)?;
        Ok(Trap {
            rax,
            rip,
            insn,
            vcpu,
        })
    }

    /// The exit a native port instruction would have given.
    pub fn exit(&self) -> Exit {
        if self.insn.is_in {
            Exit::IoIn {
                port: self.insn.port,
                size: self.insn.size,
            }
        } else {
            let mask = width_mask(self.insn.size);
            Exit::IoOut {
                port: self.insn.port,
                size: self.insn.size,
                data: (self.rax as u32) & mask,
            }
        }
    }

    /// Completes the instruction: merges `in_data` into the saved `rax` (as
    /// the CPU would: a 4-byte `in` zero-extends, narrower ones merge) and
    /// moves the saved `rip` past the instruction.
    pub fn complete(&self, ram: &HostMem, in_data: Option<u32>) -> Result<(), TrapError> {
        if let (true, Some(v)) = (self.insn.is_in, in_data) {
            let rax = match self.insn.size {
                4 => v as u64,
                2 => (self.rax & !0xffff) | (v as u64 & 0xffff),
                _ => (self.rax & !0xff) | (v as u64 & 0xff),
            };
            ram.write_u64(layout::pio_mailbox(self.vcpu), rax)
                .ok_or(TrapError::OutOfRam)?;
        }
        ram.write_u64(
            layout::gp_frame(self.vcpu) + 8,
            self.rip + self.insn.len as u64,
        )
        .ok_or(TrapError::OutOfRam)
    }
}

/// All-ones mask for a 1, 2 or 4 byte access.
pub fn width_mask(size: u8) -> u32 {
    match size {
        1 => 0xff,
        2 => 0xffff,
        _ => 0xffff_ffff,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_every_form() {
        let d = |b: &[u8]| decode(b, 0x3f8).unwrap();
        assert_eq!(
            d(&[0xe4, 0x80]),
            PortInsn {
                is_in: true,
                port: 0x80,
                size: 1,
                len: 2
            }
        );
        assert_eq!(d(&[0x66, 0xe5, 0x10]).size, 2);
        assert_eq!(
            d(&[0xe7, 0x10]),
            PortInsn {
                is_in: false,
                port: 0x10,
                size: 4,
                len: 2
            }
        );
        assert_eq!(
            d(&[0xec]),
            PortInsn {
                is_in: true,
                port: 0x3f8,
                size: 1,
                len: 1
            }
        );
        assert_eq!(
            d(&[0x66, 0xef]),
            PortInsn {
                is_in: false,
                port: 0x3f8,
                size: 2,
                len: 2
            }
        );
        assert_eq!(decode(&[0x6c], 0), Err(TrapError::NotPortIo(0x6c)));
        assert_eq!(decode(&[0xe4], 0), Err(TrapError::NotPortIo(0xe4)));
        assert_eq!(decode(&[], 0), Err(TrapError::NotPortIo(0)));
        assert!(decode(&[0x66; 8], 0).is_err());
    }

    #[test]
    fn completes_like_the_cpu() {
        let ram = HostMem::new(crate::layout::DEFAULT_RAM).unwrap();
        let t = Trap {
            rax: 0x1122_3344_5566_7788,
            rip: 0x30000,
            insn: PortInsn {
                is_in: true,
                port: 1,
                size: 1,
                len: 2,
            },
            vcpu: 0,
        };
        t.complete(&ram, Some(0xab)).unwrap();
        assert_eq!(
            ram.read_u64(layout::PIO_MAILBOX),
            Some(0x1122_3344_5566_77ab)
        );
        assert_eq!(ram.read_u64(layout::GP_FRAME + 8), Some(0x30002));
        let t4 = Trap {
            insn: PortInsn { size: 4, ..t.insn },
            ..t
        };
        t4.complete(&ram, Some(0xdead_beef)).unwrap();
        assert_eq!(ram.read_u64(layout::PIO_MAILBOX), Some(0xdead_beef));
        // vCPU 2 completes into its own mailbox and frame only.
        let t2 = Trap { vcpu: 2, ..t };
        t2.complete(&ram, Some(0x5a)).unwrap();
        assert_eq!(
            ram.read_u64(layout::pio_mailbox(2)),
            Some(0x1122_3344_5566_775a)
        );
        assert_eq!(ram.read_u64(layout::PIO_MAILBOX), Some(0xdead_beef));
        let out = Trap {
            insn: PortInsn {
                is_in: false,
                size: 2,
                ..t.insn
            },
            ..t
        };
        assert_eq!(
            out.exit(),
            Exit::IoOut {
                port: 1,
                size: 2,
                data: 0x7788
            }
        );
    }

    #[test]
    fn rejects_kernel_and_segment_faults() {
        let ram = HostMem::new(crate::layout::DEFAULT_RAM).unwrap();
        ram.write_u64(layout::GP_FRAME + 16, 0x08).unwrap();
        assert_eq!(Trap::read(&ram), Err(TrapError::NotUser(0x08)));
        ram.write_u64(layout::GP_FRAME + 16, 0x1b).unwrap();
        ram.write_u64(layout::GP_FRAME, 0x10).unwrap();
        assert_eq!(Trap::read(&ram), Err(TrapError::ErrorCode(0x10)));
        ram.write_u64(layout::GP_FRAME, 0).unwrap();
        ram.write_u64(layout::GP_FRAME + 8, u64::MAX - 2).unwrap();
        assert_eq!(Trap::read(&ram), Err(TrapError::OutOfRam));
    }
}
