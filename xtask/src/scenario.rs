//! `cargo xtask scenario`: the original proposal's scenario on real guests.
//!
//! * `scenario seed [--accounting on|off]` narrates it (both modes when no
//!   flag is given): dom0's driver maps device A's page and talks on its
//!   ports; a driver domain is granted the same; dom0's permission is
//!   revoked; the hypervisor's own devices are asked for. Device A's
//!   counters and the records in its page are the evidence. Exits 1 if the
//!   accounting-on run shows any double access or either run's port exits
//!   took the wrong path for the host (native on VT-x/AMD-V, the #GP
//!   fallback on PVM), 2 if it could not run.
//! * `scenario trace FILE [--accounting on|off]` applies an accountant trace
//!   (SPEC section 3) through the hypervisor's control plane, each `create`
//!   starting a real VM, prints one line per op and compares it with the
//!   `#=>` expectation when the line has one (exit 1 on a mismatch).
use accountant::trace::{parse_op, Op};
use accountant::{DomId, Mode, Space, UnitRange};
use hv::acct::Accounting;
use hv::exit::StopReason;
use hv::hv::{Config, HvError, Hypervisor};
use hv::platform::{self, DEVICE_A_FRAME, DEVICE_A_IRQ};
use hv::programs::{self, SI_PROGRESS, SI_STATUS, SI_STOP};
use std::process::ExitCode;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: cargo xtask scenario seed [--accounting on|off]
       cargo xtask scenario trace FILE [--accounting on|off]";

/// Runs the task.
pub fn run(args: &[String]) -> ExitCode {
    let mut modes = vec![Accounting::Off, Accounting::On];
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--accounting" {
            match it.next().and_then(|m| Accounting::from_name(m)) {
                Some(m) => modes = vec![m],
                None => {
                    eprintln!("scenario: --accounting takes on or off\n{USAGE}");
                    return ExitCode::from(2);
                }
            }
        } else {
            rest.push(a.as_str());
        }
    }
    match rest.as_slice() {
        ["seed"] => seed(&modes),
        ["trace", file] => trace(file, modes.last().copied().unwrap_or_default()),
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn dom(n: u64) -> DomId {
    DomId::new(n).expect("small literal domain ids are valid")
}

fn mem(f: u64) -> UnitRange {
    UnitRange::one(Space::IoMem, f).expect("platform frames are valid")
}

fn range(s: Space, a: u64, b: u64) -> UnitRange {
    UnitRange::new(s, a, b).expect("platform ranges are valid")
}

fn outcome<T>(r: &Result<T, HvError>) -> String {
    match r {
        Ok(_) => "ok".to_string(),
        Err(HvError::Acct(e)) => format!("err {} ({e})", e.code()),
        Err(e) => format!("failed: {e}"),
    }
}

/// Lets domain `d` make `turns` more loop turns (or gives up after 10 s).
fn run_for(hv: &Hypervisor, d: DomId, turns: u64) {
    let start = hv.read_guest_u64(d, SI_PROGRESS).unwrap_or(0);
    let end = Instant::now() + Duration::from_secs(10);
    while hv.read_guest_u64(d, SI_PROGRESS).unwrap_or(0) < start + turns && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(1));
    }
}

struct Evidence {
    ports: u64,
    page_seq: u64,
}

fn evidence(hv: &Hypervisor, d: u16) -> Evidence {
    Evidence {
        ports: hv
            .device_a_counters()
            .get(&d)
            .map_or(0, |c| c.port_accesses()),
        page_seq: hv.platform().device_a.page_record(d).1,
    }
}

fn seed(modes: &[Accounting]) -> ExitCode {
    let mut code = ExitCode::SUCCESS;
    for &m in modes {
        match seed_one(m) {
            Ok((double, path_ok)) => {
                if (double && m == Accounting::On) || !path_ok {
                    code = ExitCode::from(1);
                }
            }
            Err(e) => {
                eprintln!("scenario seed (accounting {}): {e}", m.name());
                return ExitCode::from(2);
            }
        }
    }
    code
}

/// Returns whether a double access was observed, and whether the port exits
/// took the path this host must use (`hv::host::check_exit_path`).
fn seed_one(m: Accounting) -> Result<(bool, bool), HvError> {
    let hv = Hypervisor::boot(Config {
        accounting: m,
        ..Config::default()
    })?;
    let h = hv.host();
    println!(
        "=== seed scenario, accounting {} — host: {} ({}; kvm_pvm module {}, vmx {}, svm {}), kernel {}",
        m.name(),
        h.kind.name(),
        h.cpu_model,
        h.kvm_pvm_module,
        h.cpu_vmx,
        h.cpu_svm,
        h.kernel
    );
    println!("boot {}", platform::SEED_BOOT);
    let (d0, d1) = (dom(0), dom(1));
    let page = mem(DEVICE_A_FRAME);
    let ports = range(Space::IoPort, 0x300, 0x307);
    let irq = range(Space::Irq, DEVICE_A_IRQ as u64, DEVICE_A_IRQ as u64);

    println!("\n1. dom0's driver maps device A's page (frame {DEVICE_A_FRAME:#x}) and talks on ports 0x300-0x307");
    hv.create_domain(d0, &programs::driver(0)?)?;
    run_for(&hv, d0, 200);
    let status = hv.read_guest_u64(d0, SI_STATUS).unwrap_or(u64::MAX);
    let e0 = evidence(&hv, 0);
    println!(
        "   dom0 MAP_IOMEM hypercall: status {status}; device A has seen {} port accesses from dom0; dom0's record in the page is at seq {}",
        e0.ports, e0.page_seq
    );

    println!("\n2. a driver domain (d1) is created and granted the same");
    hv.create_domain_paused(d1, &programs::driver(0)?, hv::layout::DEFAULT_RAM)?;
    let g_page = hv.grant(d1, page, Mode::Exclusive, false);
    println!(
        "   grant d1 iomem {DEVICE_A_FRAME:#x} exclusive        → {}",
        outcome(&g_page)
    );
    if g_page.is_err() {
        let g = hv.grant(d1, page, Mode::Exclusive, true);
        let td = g.as_ref().map(|t| t.len()).unwrap_or(0);
        println!(
            "   grant d1 iomem {DEVICE_A_FRAME:#x} exclusive force  → {} ({td} use(s) torn down; dom0's memslots now {:?})",
            outcome(&g),
            hv.io_slots(d0)
        );
    }
    println!(
        "   grant d1 ioport 0x300-0x307 exclusive → {}",
        outcome(&hv.grant(d1, ports, Mode::Exclusive, false))
    );
    let g_irq = hv.grant(d1, irq, Mode::Exclusive, false);
    println!(
        "   grant d1 irq 11 exclusive             → {}",
        outcome(&g_irq)
    );
    let granted = (evidence(&hv, 0), Instant::now());
    hv.start(d1)?;
    run_for(&hv, d1, 200);
    run_for(&hv, d0, 200);
    let s1 = hv.read_guest_u64(d1, SI_STATUS).unwrap_or(u64::MAX);
    let (a0, a1) = (evidence(&hv, 0), evidence(&hv, 1));
    println!("   d1 MAP_IOMEM hypercall: status {s1}");
    println!(
        "   since d1's exclusive grant: device A saw {} port accesses from dom0 and {} from d1; page records advanced dom0 +{}, d1 +{}",
        a0.ports - granted.0.ports,
        a1.ports,
        a0.page_seq - granted.0.page_seq,
        a1.page_seq
    );
    let d0_stats = hv.stats(d0).unwrap_or_default();
    println!(
        "   dom0 at the hypervisor: {} port accesses denied, {} page accesses denied",
        d0_stats.denied_ports, d0_stats.denied_mmio
    );

    println!("\n3. dom0's permission for the page and ports is revoked");
    let r_page = hv.revoke(d0, page, false);
    println!(
        "   revoke d0 iomem {DEVICE_A_FRAME:#x}        → {}",
        outcome(&r_page)
    );
    let r_ports = hv.revoke(d0, ports, false);
    println!("   revoke d0 ioport 0x300-0x307 → {}", outcome(&r_ports));
    let revoked = evidence(&hv, 0);
    run_for(&hv, d0, 200);
    let after = evidence(&hv, 0);
    println!(
        "   after the revocations dom0's page record advanced +{} and device A saw +{} port accesses from dom0",
        after.page_seq - revoked.page_seq,
        after.ports - revoked.ports
    );

    println!("\n4. the hypervisor's own devices are asked for");
    let mut handed_out = 0;
    for (what, r) in [
        ("iomem 0xfee00 (local APIC)", mem(platform::LAPIC_FRAME)),
        ("iomem 0xfec00 (IO-APIC)", mem(platform::IOAPIC_FRAME)),
        (
            "ioport 0x3f8-0x3ff (UART console)",
            range(Space::IoPort, 0x3f8, 0x3ff),
        ),
        ("irq 2 (cascade)", range(Space::Irq, 2, 2)),
    ] {
        let g = hv.grant(d1, r, Mode::Exclusive, true);
        handed_out += g.is_ok() as u32;
        println!("   grant d1 {what:34} force → {}", outcome(&g));
    }

    for d in [d0, d1] {
        hv.write_guest_u64(d, SI_STOP, 1);
    }
    for d in [d0, d1] {
        let r = hv.wait(d, Duration::from_secs(10));
        if r != Some(StopReason::Done(0)) {
            println!("   {d} stopped: {r:?}");
        }
    }
    let fin = (evidence(&hv, 0), evidence(&hv, 1));
    let double_ports = fin.0.ports - granted.0.ports;
    let double_page = fin.0.page_seq - granted.0.page_seq;
    let double = (double_ports > 0 || double_page > 0) && fin.1.ports + fin.1.page_seq > 0;
    println!("\nevidence (device A counters, page records):");
    for (d, c) in hv.device_a_counters() {
        println!(
            "   d{d}: {} port reads, {} port writes; page record seq {}",
            c.port_reads,
            c.port_writes,
            hv.platform().device_a.page_record(d).1
        );
    }
    if double {
        println!(
            "verdict: DOUBLE ACCESS — after d1 was granted device A exclusively, dom0 still reached it ({double_ports} port accesses, {double_page} page writes landed)"
        );
    } else {
        println!("verdict: no double access — once d1 held device A, nothing from dom0 reached it");
    }
    let (native, trapped) = [d0, d1]
        .iter()
        .filter_map(|&d| hv.stats(d))
        .fold((0, 0), |(n, t), s| {
            (n + s.native_port_exits, t + s.trapped_port_exits)
        });
    let path = hv::host::check_exit_path(h.kind, native, trapped);
    println!(
        "exit path on {}: {native} native port exits, {trapped} pvm-trapped — {}",
        h.kind.name(),
        match &path {
            Ok(()) => "as this host must".to_string(),
            Err(e) => format!("WRONG: {e}"),
        }
    );
    if handed_out > 0 {
        println!("verdict: {handed_out} of the hypervisor's own resources were handed to d1");
    } else {
        println!("verdict: the hypervisor's own devices could not be handed out");
    }
    if m == Accounting::On {
        if let Err(v) = hv.check_invariants() {
            println!("verdict: accountant invariant violated: {v:?}");
            return Ok((true, path.is_ok()));
        }
    }
    println!();
    Ok((
        double || (m == Accounting::On && handed_out > 0),
        path.is_ok(),
    ))
}

fn trace(file: &str, m: Accounting) -> ExitCode {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("scenario trace: {file}: {e}");
            return ExitCode::from(2);
        }
    };
    let mut hv: Option<Hypervisor> = None;
    let mut mismatches = 0;
    for (i, line) in text.lines().enumerate() {
        let (code, comment) = match line.split_once('#') {
            Some((c, k)) => (c.trim(), Some(k)),
            None => (line.trim(), None),
        };
        if code.is_empty() {
            continue;
        }
        let op = match parse_op(code) {
            Ok(op) => op,
            Err(e) => {
                eprintln!("{file}: line {}: {e}", i + 1);
                return ExitCode::from(2);
            }
        };
        let out = match (&op, &hv) {
            (Op::Boot(_), None) => {
                let line = code.trim_start().strip_prefix("boot").unwrap_or("").trim();
                match boot_for_trace(line, m) {
                    Ok(h) => {
                        hv = Some(h);
                        "ok".to_string()
                    }
                    Err(e) => {
                        eprintln!("{file}: line {}: {e}", i + 1);
                        return ExitCode::from(2);
                    }
                }
            }
            (_, None) | (Op::Boot(_), Some(_)) => {
                eprintln!("{file}: line {}: a trace starts with one `boot`", i + 1);
                return ExitCode::from(2);
            }
            (op, Some(h)) => apply(h, op),
        };
        let expect = comment
            .and_then(|c| c.trim_start().strip_prefix("=>"))
            .map(|e| e.split_whitespace().take(2).collect::<Vec<_>>());
        let got: Vec<&str> = out.split_whitespace().take(2).collect();
        let ok = match &expect {
            Some(e) if e.first() == Some(&"err") => got == *e,
            Some(e) => got.first() == e.first(),
            None => true,
        };
        if ok {
            println!("{out}");
        } else {
            mismatches += 1;
            println!(
                "{out}    <-- line {}: expected {}",
                i + 1,
                expect.unwrap_or_default().join(" ")
            );
        }
    }
    if mismatches > 0 {
        eprintln!("scenario trace: {mismatches} line(s) differ from their expectation");
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn boot_for_trace(line: &str, m: Accounting) -> Result<Hypervisor, HvError> {
    let hv = Hypervisor::boot(Config {
        accounting: m,
        boot_line: line.to_string(),
        fb_bytes: 16 << 20,
        ..Config::default()
    })?;
    hv.create_domain(DomId::DOM0, &programs::idle()?)?;
    Ok(hv)
}

fn err(e: &HvError) -> String {
    match e {
        HvError::Acct(e) => format!("err {} {e}", e.code()),
        e => format!("err hypervisor {e}"),
    }
}

fn res(r: Result<(), HvError>) -> String {
    r.map_or_else(|e| err(&e), |_| "ok".to_string())
}

fn apply(hv: &Hypervisor, op: &Op) -> String {
    let did = |n: &accountant::num::Num| DomId::new(n.saturated()).map_err(HvError::Acct);
    let r = |sp: Space, rr: &accountant::num::RawRange| rr.check(sp).map_err(HvError::Acct);
    match op {
        Op::Boot(_) => "err hypervisor booted twice".to_string(),
        Op::Create(n) => res(did(n).and_then(|d| hv.create_domain(d, &programs::idle()?))),
        Op::Destroy(n) => res(did(n).and_then(|d| hv.destroy_domain(d).map(|_| ()))),
        Op::Reserve(s, rr) => res(r(*s, rr).and_then(|x| hv.reserve(x))),
        Op::Unreserve(s, rr) => res(r(*s, rr).and_then(|x| hv.unreserve(x))),
        Op::HvMap(s, rr) => res(r(*s, rr).and_then(|x| hv.hvmap(x))),
        Op::HvUnmap(s, rr) => res(r(*s, rr).and_then(|x| hv.hvunmap(x))),
        Op::Grant {
            dom,
            space,
            range,
            mode,
            force,
        } => match did(dom).and_then(|d| Ok((d, r(*space, range)?))) {
            Ok((d, x)) => match hv.grant(d, x, *mode, *force) {
                Ok(td) if td.is_empty() => "ok".to_string(),
                Ok(td) => format!("ok {}", accountant::model::describe_teardown(&td)),
                Err(e) => err(&e),
            },
            Err(e) => err(&e),
        },
        Op::Revoke {
            dom,
            space,
            range,
            force,
        } => match did(dom).and_then(|d| Ok((d, r(*space, range)?))) {
            Ok((d, x)) => match hv.revoke(d, x, *force) {
                Ok(rv) if rv.pending => "pending".to_string(),
                Ok(rv) if rv.teardown.is_empty() => "ok".to_string(),
                Ok(rv) => format!("ok {}", accountant::model::describe_teardown(&rv.teardown)),
                Err(e) => err(&e),
            },
            Err(e) => err(&e),
        },
        Op::Map(n, rr) => res(did(n).and_then(|d| hv.map(d, r(Space::IoMem, rr)?))),
        Op::Unmap(n, rr) => res(did(n).and_then(|d| hv.unmap(d, r(Space::IoMem, rr)?))),
        Op::Bind(n, rr) => res(did(n).and_then(|d| hv.bind(d, r(Space::Irq, rr)?))),
        Op::Unbind(n, rr) => res(did(n).and_then(|d| hv.unbind(d, r(Space::Irq, rr)?))),
        Op::Access { dom, port, width } => {
            match did(dom).and_then(|d| hv.access(d, port.saturated(), width.saturated())) {
                Ok(true) => "allow".to_string(),
                Ok(false) => "deny".to_string(),
                Err(e) => err(&e),
            }
        }
        Op::Query(s, u) => match hv.query(*s, u.saturated()) {
            Some(Ok(i)) => format!("state {i:?}"),
            Some(Err(e)) => err(&HvError::Acct(e)),
            None => "state (accounting off: no accountant state)".to_string(),
        },
        Op::Check => match hv.check_invariants() {
            Ok(()) => "ok".to_string(),
            Err(v) => format!("err invariant {v:?}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_arguments_exit_2_without_running_anything() {
        let s = |v: &[&str]| run(&v.iter().map(|x| x.to_string()).collect::<Vec<_>>());
        assert_eq!(s(&[]), ExitCode::from(2));
        assert_eq!(s(&["seed", "--accounting"]), ExitCode::from(2));
        assert_eq!(s(&["seed", "--accounting", "maybe"]), ExitCode::from(2));
        assert_eq!(s(&["nope"]), ExitCode::from(2));
        assert_eq!(s(&["trace", "/nonexistent/file.trace"]), ExitCode::from(2));
    }
}
