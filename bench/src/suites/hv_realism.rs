//! The hypervisor-realism metrics: interrupt binding through KVM's irqchip
//! against its bare `KVM_IRQFD` floor (paired per round); the port exit and
//! forced revoke with domains of two vCPUs (`vcpus=2`); and the port exit,
//! the accounting cost, the bind and the forced revoke beside a framebuffer
//! painter (`load` = `none` | `fb-paint`, `mapped_by=painter`: the painter
//! maps the pages under both loads and paints them under `fb-paint`).

use super::hv::{latency_metric, selected_steps, selects};
use super::{Ctx, Sink};
use hv::acct::Accounting;
use hv::workloads::{self as w, fb_load::Load, paired::VcpuState};
use reports::stats::quantile;
use reports::{Key, Metric, MetricName, Param, Percentiles};

/// A metric over per-round derived values (ratios, signed deltas), which an
/// HDR histogram of positive integers cannot hold.
fn derived_metric(name: MetricName, params: &[(Key, Param)], v: &[f64]) -> Option<Metric> {
    let q = |p: f64| quantile(v, p).map(|x| (x * 1e4).round() / 1e4);
    let p = Percentiles {
        p50: q(0.5)?,
        p90: q(0.9)?,
        p99: q(0.99)?,
        p999: q(0.999)?,
        max: q(1.0)?,
    };
    let mut m = Metric::new(name, params);
    m.set_summary(p, q(0.0)?, v.len() as u64);
    m.samples = v.to_vec();
    Some(m)
}

/// CPUs the samples were taken on, for the note (a spread is a warning).
fn cpus_note(cpus: &[u32]) -> String {
    let mut c: Vec<u32> = cpus.to_vec();
    c.sort_unstable();
    c.dedup();
    let list: Vec<String> = c
        .iter()
        .map(|x| {
            if *x == u32::MAX {
                "?".into()
            } else {
                x.to_string()
            }
        })
        .collect();
    if c.len() > 1 {
        format!("samples span CPUs {} (placement not fixed)", list.join(","))
    } else {
        format!("all samples on CPU {}", list.join(","))
    }
}

/// Rounds of the irq bind pairing (a round takes about 8 µs; 400 rounds
/// left `hv.bind_irq_delta`'s interval up to 90 ns wide in a quick run).
fn irq_rounds(quick: bool) -> usize {
    if quick {
        2000
    } else {
        4000
    }
}

/// The suite's parts: the metrics each emits, and its progress steps.
fn parts(quick: bool) -> [(&'static [MetricName], usize); 6] {
    let fb = fb_points(quick).len();
    [
        (&IRQ, 1),
        (&[MetricName::PioExit], 2 + 4 * fb),
        (
            &[MetricName::AccountingCost, MetricName::ExitHandler],
            2 * fb,
        ),
        (
            &[
                MetricName::Bind,
                MetricName::MemslotAdd,
                MetricName::BindOverFloor,
            ],
            2 * loaded_bind_points(quick).len(),
        ),
        (
            &[
                MetricName::RevokeForce,
                MetricName::MemslotDelete,
                MetricName::RevokeForceOverFloor,
            ],
            4 * loaded_revoke_points(quick).len(),
        ),
        (&[MetricName::RevokeForce], 2),
    ]
}

/// The interrupt-binding metrics.
const IRQ: [MetricName; 6] = [
    MetricName::BindIrq,
    MetricName::UnbindIrq,
    MetricName::IrqfdAssign,
    MetricName::IrqfdDeassign,
    MetricName::BindIrqOverFloor,
    MetricName::BindIrqDelta,
];

/// The metrics of the two-vCPU and loaded rows.
const REALISM: [MetricName; 9] = [
    MetricName::PioExit,
    MetricName::AccountingCost,
    MetricName::ExitHandler,
    MetricName::Bind,
    MetricName::MemslotAdd,
    MetricName::BindOverFloor,
    MetricName::RevokeForce,
    MetricName::MemslotDelete,
    MetricName::RevokeForceOverFloor,
];

/// The metric names this suite emits: [`IRQ`], then [`REALISM`].
pub const EMITS: &[MetricName] = &super::concat::<6, 9, 15>(IRQ, REALISM);

/// Steps this suite announces with `--only` (for the progress total).
pub fn steps_for(quick: bool, only: Option<&str>) -> usize {
    selected_steps(&parts(quick), only)
}

/// Framebuffer sizes of the loaded rows: 256 MiB; 4 GiB too in the full run.
fn fb_points(quick: bool) -> &'static [u64] {
    if quick {
        &[65_536]
    } else {
        &[65_536, 1_048_576]
    }
}

/// Bind sizes measured beside the painter.
fn loaded_bind_points(quick: bool) -> &'static [u64] {
    if quick {
        &[1]
    } else {
        &[1, 4096]
    }
}

/// Forced-revoke sizes (and rounds) measured beside the painter, each with
/// the vCPU parked and running.
fn loaded_revoke_points(quick: bool) -> &'static [(u64, usize)] {
    if quick {
        &[(1, 30)]
    } else {
        &[(1, 100), (4096, 40)]
    }
}

/// `hv.bind_irq`, `hv.unbind_irq`, their floors `hv.irqfd_assign` /
/// `hv.irqfd_deassign`, `hv.bind_irq_over_floor` and `hv.bind_irq_delta`
/// (paired per round); `hv.pio_exit` and `hv.revoke_force` with `vcpus=2`;
/// `hv.pio_exit`, `hv.accounting_cost`, `hv.bind` and `hv.revoke_force`
/// beside a framebuffer painter (`load` = `none` | `fb-paint`).
pub fn hv_realism(cx: &mut Ctx, sink: &mut Sink) {
    if !std::path::Path::new("/dev/kvm").exists() {
        for name in EMITS {
            sink.skip(*name, "/dev/kvm is absent on this host");
        }
        return;
    }
    let run: [fn(&mut Ctx, &mut Sink); 6] = [
        irq_bind,
        exits,
        loaded_cost,
        loaded_binds,
        loaded_revokes,
        smp_revokes,
    ];
    for ((names, _), part) in parts(cx.quick).iter().zip(run) {
        if selects(cx.only.as_deref(), names) {
            part(cx, sink);
        }
    }
}

fn irq_bind(cx: &mut Ctx, sink: &mut Sink) {
    let rounds = irq_rounds(cx.quick);
    cx.progress.step(&format!(
        "hv.bind_irq paired with KVM_IRQFD, {rounds} rounds"
    ));
    match w::irq::bind_irq(rounds) {
        Ok(r) => {
            let params = irq_params();
            let note = |what: &str, cpus: &[u32]| {
                format!(
                    "{what}; paired per round with the bare KVM_IRQFD step on the same thread, \
                     alternating order; {}",
                    cpus_note(cpus)
                )
            };
            for (name, v, what) in [
                (
                    MetricName::BindIrq,
                    &r.bind.step,
                    "Hypervisor::bind of one line (accountant bind + irqfd assign)",
                ),
                (
                    MetricName::IrqfdAssign,
                    &r.bind.floor,
                    "bare KVM_IRQFD assign",
                ),
                (
                    MetricName::UnbindIrq,
                    &r.unbind.step,
                    "Hypervisor::unbind of one line (accountant unbind + irqfd deassign)",
                ),
                (
                    MetricName::IrqfdDeassign,
                    &r.unbind.floor,
                    "bare KVM_IRQFD deassign",
                ),
            ] {
                if let Some(mut m) = latency_metric(name, &params, v, false, None) {
                    m.note = Some(note(what, &r.bind.cpu));
                    sink.metrics.push(m);
                }
            }
            for (name, v) in [
                (MetricName::BindIrqOverFloor, r.bind.ratios()),
                (MetricName::BindIrqDelta, w::irq::deltas(&r.bind)),
            ] {
                if let Some(mut m) = derived_metric(name, &params, &v) {
                    m.note = Some(note(
                        "per round, hv.bind_irq against hv.irqfd_assign",
                        &r.bind.cpu,
                    ));
                    sink.metrics.push(m);
                }
            }
        }
        Err(e) => {
            for name in IRQ {
                sink.skip(name, format!("irqfd binding not measured: {e}"));
            }
        }
    }
}

fn exits(cx: &mut Ctx, sink: &mut Sink) {
    let n = if cx.quick { 5_000 } else { 50_000 };
    let smp_cpus = cx.placement.for_vcpus(2);
    for (acc, word) in [(Accounting::On, "on"), (Accounting::Off, "off")] {
        cx.progress
            .step(&format!("hv.pio_exit vcpus=2 accounting={word} n={n}"));
        let params = smp_pio_params(word);
        match w::smp::pio_exit(acc, 2, n, &cx.placement) {
            Ok(v) => {
                if let Some(mut m) = latency_metric(MetricName::PioExit, &params, &v, true, None) {
                    m.note = Some(format!(
                        "vCPU 0's guest-timed round trip of `in al, 0x300` while vCPU 1 of the \
                         same domain runs the same loop; percentiles corrected for coordinated \
                         omission; {}",
                        each_words(&smp_cpus)
                    ));
                    sink.metrics.push(m);
                }
            }
            Err(e) => sink.skip(
                MetricName::PioExit,
                format!("vcpus=2 accounting={word}: {e}"),
            ),
        }
    }
    // The port loop beside a painter streaming over the mapped framebuffer
    // (256 MiB; 4 GiB too in the full run), against no load, same placement.
    for &fb in fb_points(cx.quick) {
        for load in [Load::None, Load::FbPaint] {
            for (acc, word) in [(Accounting::On, "on"), (Accounting::Off, "off")] {
                cx.progress.step(&format!(
                    "hv.pio_exit load={} accounting={word} fb_pages={fb} n={n}",
                    load.name()
                ));
                match w::fb_load::pio_exit(acc, load, fb, n, &cx.placement) {
                    Ok((v, pl)) => {
                        // `painter`: the framebuffer is mapped by a painter
                        // domain (running or not), which tells these rows from
                        // the dom0-mapped ones of the `hv` suite.
                        let params = loaded_pio_params(word, fb, load);
                        if let Some(mut m) =
                            latency_metric(MetricName::PioExit, &params, &v, true, None)
                        {
                            m.note = Some(format!(
                                "guest-timed `in al, 0x300` with load {} ({} framebuffer pages \
                                 mapped, streamed over for {} ms); measured vCPU on CPU {}, \
                                 painter vCPU on CPU {}, control thread on CPU {}",
                                load.name(),
                                pl.painted_pages,
                                pl.painter_ms,
                                cpus_words(pl.measured_vcpu.as_ref()),
                                cpus_words(pl.painter_vcpu.as_ref()),
                                pl.control.map_or("?".into(), |c| c.to_string()),
                            ));
                            if let Some([one]) = pl.measured_vcpu.as_ref().map(|c| c.cpus()) {
                                m.cpus = vec![*one as u32; m.samples.len()];
                            }
                            sink.metrics.push(m);
                        }
                    }
                    Err(e) => sink.skip(
                        MetricName::PioExit,
                        format!("load={} accounting={word}: {e}", load.name()),
                    ),
                }
            }
        }
    }
}

/// `hv.accounting_cost` and its `hv.exit_handler` rows with the tracked
/// framebuffer mapped by a painter, idle and painting.
fn loaded_cost(cx: &mut Ctx, sink: &mut Sink) {
    for &fb in fb_points(cx.quick) {
        for load in [Load::None, Load::FbPaint] {
            super::hv::cost_step(cx, sink, fb, Some(load));
        }
    }
}

/// Paired `hv.bind` beside an idle and a painting painter.
fn loaded_binds(cx: &mut Ctx, sink: &mut Sink) {
    let rounds = super::hv::bind_rounds(cx.quick);
    for &pages in loaded_bind_points(cx.quick) {
        for load in [Load::None, Load::FbPaint] {
            super::hv::bind_step(cx, sink, pages, rounds, Some(load));
        }
    }
}

/// Paired `hv.revoke_force` (vCPU parked and running) beside an idle and a
/// painting painter.
fn loaded_revokes(cx: &mut Ctx, sink: &mut Sink) {
    for &(pages, rounds) in loaded_revoke_points(cx.quick) {
        for state in [VcpuState::Parked, VcpuState::Running] {
            for load in [Load::None, Load::FbPaint] {
                super::hv::revoke(cx, sink, pages, rounds, state, Some(load));
            }
        }
    }
}

fn smp_revokes(cx: &mut Ctx, sink: &mut Sink) {
    let reps = if cx.quick { 15 } else { 60 };
    let smp_cpus = cx.placement.for_vcpus(2);
    for pages in SMP_REVOKE_PAGES {
        cx.progress
            .step(&format!("hv.revoke_force vcpus=2 pages={pages}"));
        let params = smp_revoke_params(pages);
        match w::smp::revoke_force(pages, 2, reps, &cx.placement) {
            Ok(v) => {
                if let Some(mut m) =
                    latency_metric(MetricName::RevokeForce, &params, &v, false, None)
                {
                    m.note = Some(format!(
                        "forced revoke of mapped frames both vCPUs painted; both keep running \
                         (quiesce covers both); {}",
                        each_words(&smp_cpus)
                    ));
                    sink.metrics.push(m);
                }
            }
            Err(e) => sink.skip(
                MetricName::RevokeForce,
                format!("vcpus=2 pages={pages}: {e}"),
            ),
        }
    }
}

/// The params of every interrupt-binding metric.
fn irq_params() -> [(Key, Param); 1] {
    [(Key::Delivery, Param::from("irqchip"))]
}

/// The params of `hv.pio_exit` with two vCPUs.
fn smp_pio_params(word: &str) -> [(Key, Param); 3] {
    [
        (Key::Accounting, Param::from(word)),
        (Key::MmioTrackedPages, Param::from(0u64)),
        (Key::Vcpus, Param::from(2u64)),
    ]
}

/// The params of `hv.pio_exit` beside a painter.
fn loaded_pio_params(word: &str, fb: u64, load: Load) -> [(Key, Param); 4] {
    [
        (Key::Accounting, Param::from(word)),
        (Key::MmioTrackedPages, Param::from(fb)),
        (Key::Load, Param::from(load.name())),
        (Key::MappedBy, Param::from("painter")),
    ]
}

/// Pages of the two-vCPU forced revokes.
const SMP_REVOKE_PAGES: [u64; 2] = [1, 4096];

/// The params of a two-vCPU forced revoke.
fn smp_revoke_params(pages: u64) -> [(Key, Param); 3] {
    [
        (Key::Pages, Param::from(pages)),
        (Key::Vcpus, Param::from(2u64)),
        (Key::VcpuState, Param::from("running")),
    ]
}

/// The keys this suite emits on a host with `/dev/kvm`.
pub fn keys(quick: bool) -> Vec<String> {
    let key = super::key;
    let mut v: Vec<String> = IRQ.iter().map(|n| key(*n, &irq_params())).collect();
    for word in ["on", "off"] {
        v.push(key(MetricName::PioExit, &smp_pio_params(word)));
    }
    let loads = [Load::None, Load::FbPaint];
    for &fb in fb_points(quick) {
        for load in loads {
            for word in ["on", "off"] {
                v.push(key(MetricName::PioExit, &loaded_pio_params(word, fb, load)));
            }
        }
    }
    for &fb in fb_points(quick) {
        for load in loads {
            v.extend(super::hv::cost_keys(fb, Some(load)));
        }
    }
    for &pages in loaded_bind_points(quick) {
        for load in loads {
            v.extend(super::hv::bind_keys(pages, Some(load)));
        }
    }
    for &(pages, _) in loaded_revoke_points(quick) {
        for state in [VcpuState::Parked, VcpuState::Running] {
            for load in loads {
                v.extend(super::hv::revoke_keys(pages, state, Some(load)));
            }
        }
    }
    for pages in SMP_REVOKE_PAGES {
        v.push(key(MetricName::RevokeForce, &smp_revoke_params(pages)));
    }
    v
}

/// A CPU set for a note (`unpinned` when there is none).
fn cpus_words(c: Option<&hv::affinity::CpuSet>) -> String {
    c.map_or("unpinned".into(), |c| c.to_string())
}

/// Per-vCPU CPU sets for a note: `vCPU 0 on 1, vCPU 1 on 0`.
fn each_words(each: &[hv::affinity::CpuSet]) -> String {
    if each.is_empty() {
        return "unpinned".into();
    }
    each.iter()
        .enumerate()
        .map(|(i, c)| format!("vCPU {i} on {c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_metrics_keep_signed_values() {
        let m =
            derived_metric(MetricName::BindIrqDelta, &[], &[-20.0, 10.0, 30.0]).expect("values");
        assert_eq!((m.p50, m.min, m.max, m.count), (10.0, -20.0, 30.0, 3));
        assert!(derived_metric(MetricName::BindIrqDelta, &[], &[]).is_none());
        assert!(cpus_note(&[1, 1]).contains("CPU 1"));
        assert!(cpus_note(&[0, 1]).contains("span"));
    }
}
