//! `TraceHv` keeps the hypervisor in step with its accountant: after every op
//! of every conformance trace (accounting on), the domains with a VM are the
//! domains the accountant knows, each domain has a memslot over exactly
//! the device frames the accountant counts it mapping, and an interrupt
//! line raised reaches exactly the domains the accountant counts binding it. An op that changes VMs or
//! memslots but is left to `Control`'s default body (the accountant alone)
//! fails here, though its output line is the same (ARCHITECTURE.md, "Adding
//! an accountant operation").
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::Path;

use accountant::ops::{execute, parse_op, Op, Target};
use accountant::{DomId, Space, MAX_DOMID};
use hv::acct::Accounting;
use hv::exec::TraceHv;

/// The conformance traces, built into the test: `cargo xtask nested` runs
/// this binary inside a guest that has no source tree.
/// [`every_conformance_trace_is_built_in`] keeps the list whole.
const TRACES: &[(&str, &str)] = &[
    (
        "bad-input.trace",
        include_str!("../../spec/conformance/bad-input.trace"),
    ),
    (
        "default-deny.trace",
        include_str!("../../spec/conformance/default-deny.trace"),
    ),
    (
        "hypervisor.trace",
        include_str!("../../spec/conformance/hypervisor.trace"),
    ),
    (
        "ioports-disable.trace",
        include_str!("../../spec/conformance/ioports-disable.trace"),
    ),
    (
        "revocation.trace",
        include_str!("../../spec/conformance/revocation.trace"),
    ),
    (
        "seed-scenario.trace",
        include_str!("../../spec/conformance/seed-scenario.trace"),
    ),
    (
        "sharing.trace",
        include_str!("../../spec/conformance/sharing.trace"),
    ),
];

fn traces() -> &'static [(&'static str, &'static str)] {
    TRACES
}

/// A trace added to `spec/conformance/` must be added to [`TRACES`]. (Where
/// the source tree is absent, as in a nested guest, there is nothing to
/// compare; every host run of `cargo test` compares.)
#[test]
fn every_conformance_trace_is_built_in() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("spec/conformance");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!(
            "{}: not here (a guest without the source tree)",
            dir.display()
        );
        return;
    };
    let mut on_disk: Vec<String> = entries
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".trace"))
        .collect();
    on_disk.sort();
    let built_in: Vec<String> = TRACES.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(built_in, on_disk);
    for (name, text) in TRACES {
        assert_eq!(
            *text,
            std::fs::read_to_string(dir.join(name)).unwrap(),
            "{name}"
        );
    }
}

/// What a trace names: domains, I/O frames and interrupt lines (ranges of
/// at most 64 units).
#[derive(Default)]
struct Named {
    doms: BTreeSet<DomId>,
    frames: BTreeSet<u64>,
    lines: BTreeSet<u64>,
}

fn named(ops: &[Op]) -> Named {
    let mut n = Named::default();
    n.doms.insert(DomId::DOM0);
    for op in ops {
        let o = op.operands();
        if let Some(d) = o
            .dom
            .and_then(|n| n.get())
            .filter(|&n| n <= u64::from(MAX_DOMID))
        {
            n.doms.insert(DomId::new(d).unwrap());
        }
        if let Target::Range(s @ (Space::IoMem | Space::Irq), r) = o.target {
            if let Ok(r) = r.check(s) {
                if r.last() - r.first() < 64 {
                    let set = if s == Space::IoMem {
                        &mut n.frames
                    } else {
                        &mut n.lines
                    };
                    set.extend(r.first()..=r.last());
                }
            }
        }
    }
    n
}

/// Checks the hypervisor against its accountant; returns how many
/// (domain, frame) memslots and (domain, line) bindings it found.
fn in_step(hv: &TraceHv, named: &Named, at: &str) -> usize {
    let mut found = 0;
    for &line in &named.lines {
        let binders =
            hv.0.query(Space::Irq, line)
                .unwrap()
                .map_or(0, |info| info.uses.iter().filter(|&&(_, n)| n > 0).count());
        let raised = hv.0.raise_irq(u32::try_from(line).unwrap());
        assert_eq!(raised, binders, "{at}: irq {line}: raised to vs binders");
        found += raised;
    }
    let (doms, frames) = (&named.doms, &named.frames);
    let known: BTreeSet<DomId> = hv.0.on_accountant(|a| Ok(a.domains().collect())).unwrap();
    for &d in doms {
        let has_vm = hv.0.vcpu_exits(d).is_some();
        assert_eq!(has_vm, known.contains(&d), "{at}: {d} VM vs accountant");
        if !has_vm {
            continue;
        }
        let slots = hv.0.io_slots(d);
        // The counters' lock-free copy of the slot count follows the table.
        let counted = hv.0.stats(d).map(|s| s.io_slots);
        assert_eq!(counted, Some(slots.len()), "{at}: {d} slot count in stats");
        // Only frames with device memory behind them get a memslot.
        for &f in frames
            .iter()
            .filter(|&&f| hv.0.platform().backing_mem(f).is_some())
        {
            // RAM is no I/O memory (`not-io-memory`): never used.
            let uses =
                hv.0.query(Space::IoMem, f)
                    .unwrap()
                    .is_ok_and(|info| info.uses.iter().any(|&(u, n)| u == d && n > 0));
            let slot = slots.iter().any(|&(a, b)| a <= f && f <= b);
            assert_eq!(slot, uses, "{at}: {d} frame {f:#x}: memslot vs uses");
            found += usize::from(slot);
        }
    }
    found
}

#[test]
fn trace_hv_keeps_vms_and_memslots_in_step_with_the_accountant() {
    if !hv::host::require_kvm("trace_hv_keeps_vms_and_memslots_in_step_with_the_accountant") {
        return;
    }
    let (mut checked, mut slots) = (0, 0);
    for (t, text) in traces() {
        let lines: Vec<(usize, &str)> = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.split('#').next().unwrap_or("").trim()))
            .filter(|(_, code)| !code.is_empty())
            .collect();
        let ops: Vec<Op> = lines.iter().filter_map(|(_, c)| parse_op(c).ok()).collect();
        let named = named(&ops);
        let Some(((_, boot), rest)) = lines.split_first() else {
            continue;
        };
        let opts = boot.strip_prefix("boot").unwrap();
        let Ok(mut hv) = TraceHv::boot(opts, Accounting::On) else {
            continue; // a trace whose boot line is refused (bad-input)
        };
        for (n, code) in rest {
            let Ok(op) = parse_op(code) else {
                break; // a malformed line ends the run
            };
            execute(&mut hv, &op);
            slots += in_step(&hv, &named, &format!("{t}:{n} `{code}`"));
            checked += 1;
        }
    }
    assert!(checked > 100, "{checked} ops checked");
    assert!(slots > 20, "{slots} memslots and bindings seen");
}

/// The check above is not vacuous: the conformance traces map frames and
/// bind lines.
#[test]
fn the_traces_map_io_memory() {
    let all: Vec<Op> = traces()
        .iter()
        .flat_map(|(_, text)| {
            text.lines()
                .filter_map(|l| parse_op(l.split('#').next().unwrap_or("").trim()).ok())
                .collect::<Vec<_>>()
        })
        .collect();
    let maps = all.iter().filter(|o| matches!(o, Op::Map(..))).count();
    let binds = all.iter().filter(|o| matches!(o, Op::Bind(..))).count();
    let n = named(&all);
    assert!(
        maps >= 5 && n.frames.len() >= 5,
        "{maps} maps, {} frames",
        n.frames.len()
    );
    assert!(
        binds >= 3 && n.lines.len() >= 3,
        "{binds} binds, {} lines",
        n.lines.len()
    );
}
