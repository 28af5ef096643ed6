//! `/proc/interrupts`: which interrupt lines exist and whose handlers they run.
//!
//! The kernel (`kernel/irq/proc.c`, `show_interrupts`) writes a header of
//! `CPUn` columns (online CPUs), then one row per interrupt: `IRQ:`, one
//! count per CPU column, the chip's name, the hardware IRQ number and
//! trigger joined as `2-edge` (kernels before 4.x wrote `IO-APIC-edge` as
//! one token, Xen's dom0 `xen-pirq-ioapic-level`), and the handlers'
//! names separated by `, ` (a name may contain spaces: `PCIe PME`). Rows
//! whose label is not a number (`NMI`, `LOC`, `ERR`, `MIS`…) are per-CPU
//! or summary counters, not interrupt lines, and are skipped.
//!
//! # Lines, not Linux IRQ numbers
//!
//! The accountant's [`Space::Irq`](accountant::Space::Irq) unit is a line
//! (a GSI). A row is a line when its chip is an IO-APIC (`IO-APIC`,
//! `IR-IO-APIC`), the 8259 (`XT-PIC`) or Xen's physical IRQ chip for an
//! IO-APIC pin (`xen-pirq` with an `ioapic` trigger); MSI rows (`PCI-MSI`,
//! `PCI-MSIX-…`, `DMAR-MSI`) and event channels are not lines and have no
//! [`IrqLine::gsi`]. For an IO-APIC row the GSI is the pin column
//! (`IO-APIC   4-edge` is GSI 4; `0: IO-APIC   2-edge  timer` is ISA IRQ 0
//! on GSI 2) when the host has one IO-APIC, whose GSI base is 0, and for
//! the ISA IRQs 0–15, which sit on the first IO-APIC. With several
//! IO-APICs a pin is relative to its own IO-APIC, and for IRQs from 16 the
//! Linux IRQ number is used: x86 Linux numbers those lines by GSI on ACPI
//! hosts. Rows in the old one-token format (`IO-APIC-edge`) have no pin
//! column and use the IRQ number.

use std::path::Path;
use std::sync::Arc;

use super::read::{escape, lines};
use super::{HostError, IrqLine};
use crate::span::Span;

/// Parses `/proc/interrupts`.
pub fn parse(path: &Path, data: &[u8]) -> Result<Vec<IrqLine>, HostError> {
    let file = Arc::new(path.to_path_buf());
    let err = |line: u32, why: String| HostError::Parse {
        path: path.to_path_buf(),
        line,
        why,
    };
    let all = lines(path, data)?;
    let mut iter = all.iter();
    let header = iter
        .next()
        .ok_or_else(|| err(1, "empty: no `CPU0 …` header".into()))?;
    let header_text = String::from_utf8_lossy(header.text);
    let ncpu = header_text.split_whitespace().count();
    if ncpu == 0
        || !header_text.split_whitespace().all(|t| {
            t.len() > 3 && t.starts_with("CPU") && t[3..].bytes().all(|b| b.is_ascii_digit())
        })
    {
        return Err(err(
            header.no,
            "not the `CPU0 CPU1 …` header of /proc/interrupts".into(),
        ));
    }
    let mut out: Vec<IrqLine> = Vec::new();
    for line in iter {
        let text = line.text;
        let toks = tokens(text);
        let Some(&(ls, le)) = toks.first() else {
            continue;
        };
        let label = &text[ls..le];
        let Some(num) = label.strip_suffix(b":") else {
            return Err(err(
                line.no,
                format!("`{}` is not a row label (`N:` or `NMI:`)", escape(label)),
            ));
        };
        if !num.iter().all(u8::is_ascii_digit) || num.is_empty() {
            // NMI, LOC, ERR, MIS…: counters, not lines. Their label must
            // still look like one: upper-case letters.
            if num.is_empty() || !num.iter().all(|b| b.is_ascii_alphanumeric()) {
                return Err(err(
                    line.no,
                    format!("`{}` is not a row label", escape(label)),
                ));
            }
            continue;
        }
        let irq: u32 = std::str::from_utf8(num)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| err(line.no, format!("IRQ number `{}` too large", escape(num))))?;
        if toks.len() < 1 + ncpu {
            return Err(err(
                line.no,
                format!(
                    "{} count columns for {ncpu} CPUs (truncated?)",
                    toks.len() - 1
                ),
            ));
        }
        for &(s, e) in &toks[1..=ncpu] {
            if !text[s..e].iter().all(u8::is_ascii_digit) {
                return Err(err(
                    line.no,
                    format!("count `{}` is not a number", escape(&text[s..e])),
                ));
            }
        }
        let rest = &toks[1 + ncpu..];
        let (chip, hwirq, actions_at) = match rest {
            [] => (String::new(), None, text.len()),
            [(cs, ce)] => (escape(&text[*cs..*ce]), None, *ce),
            [(cs, ce), (ts, te), ..] => {
                let trig = &text[*ts..*te];
                match trigger(trig) {
                    Some(hw) => (escape(&text[*cs..*te]), hw, *te),
                    None => (escape(&text[*cs..*ce]), None, *ce),
                }
            }
        };
        let tail = String::from_utf8_lossy(&text[actions_at..]);
        let actions: Vec<String> = tail
            .trim()
            .split(", ")
            .map(|a| escape(a.trim().as_bytes()))
            .filter(|a| !a.is_empty())
            .collect();
        out.push(IrqLine {
            irq,
            chip,
            actions,
            hwirq,
            gsi: None,
            span: Span::new(file.clone(), line.no, 0),
        });
    }
    // The kernel prints rows in IRQ order; sorting keeps a hand-edited file
    // searchable by number (spans keep the file's own line numbers).
    out.sort_by_key(|r| r.irq);
    Ok(out)
}

/// Fills each row's [`IrqLine::gsi`] by the rule in the module doc.
/// `ioapics` is the number of IO-APICs the host map shows (0 if unknown).
pub fn assign_gsis(rows: &mut [IrqLine], ioapics: usize) {
    for r in rows.iter_mut() {
        r.gsi = gsi_of(r, ioapics);
    }
}

fn gsi_of(r: &IrqLine, ioapics: usize) -> Option<u32> {
    let chip = r.chip.as_str();
    let ioapic = chip.contains("IO-APIC");
    let xen_pirq = chip.starts_with("xen-pirq") && chip.contains("ioapic");
    let pic = chip.starts_with("XT-PIC");
    if xen_pirq || pic {
        return Some(r.irq);
    }
    if !ioapic {
        return None;
    }
    match r.hwirq {
        Some(pin) if r.irq < 16 || ioapics <= 1 => u32::try_from(pin).ok(),
        _ => Some(r.irq),
    }
}

/// The hardware-IRQ-and-trigger column: `2-edge`, `-ioapic-level` (no
/// number), `524288-edge`. `Some(hwirq)` when the token is one.
fn trigger(tok: &[u8]) -> Option<Option<u64>> {
    let dash = tok.iter().position(|&b| b == b'-')?;
    let (num, kind) = (&tok[..dash], &tok[dash + 1..]);
    if kind.is_empty() || !kind.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-') {
        return None;
    }
    if num.is_empty() {
        return Some(None);
    }
    if !num.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = std::str::from_utf8(num).ok()?.parse().ok()?;
    Some(Some(n))
}

/// Whitespace-separated tokens as byte ranges.
fn tokens(text: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < text.len() {
        while i < text.len() && text[i].is_ascii_whitespace() {
            i += 1;
        }
        let s = i;
        while i < text.len() && !text[i].is_ascii_whitespace() {
            i += 1;
        }
        if i > s {
            out.push((s, i));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Vec<IrqLine>, HostError> {
        parse(Path::new("proc/interrupts"), s.as_bytes())
    }

    fn row(r: &[IrqLine], irq: u32) -> &IrqLine {
        r.iter().find(|x| x.irq == irq).expect("a row")
    }

    #[test]
    fn modern_rows() {
        let mut r = p("           CPU0       CPU1       \n\
  0:         34          0   IO-APIC   2-edge      timer\n\
 26:          0          1  IO-APIC   4-edge      ttyS0\n\
 16:          1          0  IO-APIC  16-fasteoi   ehci_hcd:usb1, PCIe PME, i801_smbus\n\
 28:          0          0 PCI-MSIX-0000:00:01.0   0-edge      virtio0-config\n\
  7:          0          0  IO-APIC   7-fasteoi\n\
NMI:          0          0   Non-maskable interrupts\n\
ERR:          0\n")
        .expect("parses");
        let irqs: Vec<u32> = r.iter().map(|x| x.irq).collect();
        assert_eq!(irqs, [0, 7, 16, 26, 28], "sorted by IRQ number");
        assert_eq!(row(&r, 26).span.line, 3, "spans keep the file's lines");
        assert_eq!(row(&r, 0).chip, "IO-APIC   2-edge");
        assert_eq!(row(&r, 0).hwirq, Some(2));
        assert_eq!(row(&r, 0).actions, ["timer"]);
        assert_eq!(
            row(&r, 16).actions,
            ["ehci_hcd:usb1", "PCIe PME", "i801_smbus"]
        );
        assert_eq!(row(&r, 28).hwirq, Some(0));
        assert!(row(&r, 7).actions.is_empty());
        assign_gsis(&mut r, 1);
        assert_eq!(row(&r, 0).gsi, Some(2));
        assert_eq!(row(&r, 26).gsi, Some(4));
        assert_eq!(row(&r, 28).gsi, None);
        assign_gsis(&mut r, 3);
        assert_eq!(row(&r, 0).gsi, Some(2), "ISA IRQs sit on the first IO-APIC");
        assert_eq!(row(&r, 26).gsi, Some(26));
    }

    #[test]
    fn old_and_xen_rows() {
        let mut r = p("            CPU0       CPU1\n\
   0:        101          0   IO-APIC-edge      timer\n\
   1:         10          0  xen-pirq-ioapic-edge  i8042\n\
  42:    1632375          0  IR-PCI-MSI-edge      ahci\n\
 112:        347          0   xen-dyn-event     xenbus\n\
   9:          0          0  xen-pirq    -ioapic-level  acpi\n")
        .expect("parses");
        assign_gsis(&mut r, 1);
        assert_eq!(row(&r, 0).chip, "IO-APIC-edge");
        assert_eq!(row(&r, 0).gsi, Some(0));
        assert_eq!(row(&r, 1).gsi, Some(1));
        assert_eq!(row(&r, 1).actions, ["i8042"]);
        assert_eq!(row(&r, 42).gsi, None);
        assert_eq!(row(&r, 112).gsi, None);
        assert_eq!(row(&r, 9).chip, "xen-pirq    -ioapic-level");
        assert_eq!(row(&r, 9).gsi, Some(9));
        assert_eq!(row(&r, 9).actions, ["acpi"]);
    }

    #[test]
    fn xen_hvm_guest_rows() {
        // The shape of a Linux guest's table under Xen with pirqs (as
        // quoted in QEMU's Xen emulation commits).
        let mut r = p("            CPU0       CPU1\n\
   0:         65          0   IO-APIC   2-edge      timer\n\
   4:          0        846  xen-pirq   4-ioapic-edge  ttyS0\n\
   9:          0          0  xen-pirq   9-ioapic-level  acpi\n\
  24:       9600          0  xen-percpu    -virq      timer0\n\
  25:       2758          0  xen-percpu    -ipi       resched0\n\
  30:          5          0  xen-pirq    -msi       eth0\n")
        .expect("parses");
        assign_gsis(&mut r, 1);
        assert_eq!(row(&r, 4).gsi, Some(4));
        assert_eq!(row(&r, 4).hwirq, Some(4));
        assert_eq!(row(&r, 4).actions, ["ttyS0"]);
        assert_eq!(row(&r, 9).gsi, Some(9));
        assert_eq!(row(&r, 24).gsi, None);
        assert_eq!(row(&r, 24).actions, ["timer0"]);
        assert_eq!(row(&r, 30).gsi, None, "an MSI pirq is not a line");
    }

    #[test]
    fn refuses_what_is_not_the_table() {
        for (text, line) in [
            ("", 1),
            ("garbage here\n", 1),
            ("  CPU0\n  0:  1  IO-APIC 2-edge timer\n x\n", 3),
            ("  CPU0 CPU1\n  0:  1\n", 2),
            ("  CPU0\n  0:  1x  IO-APIC 2-edge timer\n", 2),
            ("  CPU0\n 99999999999:  1  IO-APIC 2-edge timer\n", 2),
            ("  CPU0\n  0:  1  IO-APIC 2-edge timer\n  1:  1  IO-", 3),
        ] {
            match p(text) {
                Err(HostError::Parse { line: l, .. }) => assert_eq!(l, line, "{text:?}"),
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }
}
