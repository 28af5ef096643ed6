//! `hv.*`: the hypervisor workloads on real guests (`hv::workloads`).
//!
//! * Guest-timed port exits (`hv.pio_exit`, accounting on and off, 0 /
//!   256 MiB / 4 GiB of framebuffer tracked) beside a bare exit
//!   (`hv.bare_exit`): the round trip a guest sees.
//! * The accounting's own cost per exit (`hv.accounting_cost`): the exit
//!   handler with accounting on minus off, paired per round, from the
//!   handler probe (tracepoints off on both sides), and the two sides'
//!   handler times (`hv.exit_handler`).
//! * Bind, unmap and forced revoke, each paired per round with the bare
//!   memslot add or delete it contains, on the same VM with its vCPU in the
//!   same state, alternating which goes first: `hv.bind` / `hv.memslot_add`
//!   → `hv.bind_over_floor`; `hv.unmap` / `hv.memslot_delete` →
//!   `hv.unmap_over_floor`; `hv.revoke_force` / `hv.memslot_delete` →
//!   `hv.revoke_force_over_floor`, with the vCPU parked in a blocking
//!   hypercall and running in guest mode.
//!
//! Every sample records the CPU of the thread that took it (the vCPU's for
//! guest-timed exits, the control thread's otherwise).

use super::{Ctx, Sink};
use crate::harness;
use hv::acct::Accounting;
use hv::workloads::fb_load::Load;
use hv::workloads::{self as w, paired};
use reports::{Key, Metric, MetricName, Param};

/// Guest-timed PIO exits per configuration (quick / full).
fn exit_samples(quick: bool) -> usize {
    if quick {
        20_000
    } else {
        200_000
    }
}

/// Framebuffer MMIO tracked during port exits: none, 256 MiB (the default
/// framebuffer) and 4 GiB.
pub const TRACKED_PAGES: [u64; 3] = [0, 65_536, 1_048_576];

/// Sizes of the bind sweep.
pub fn bind_points(quick: bool) -> &'static [u64] {
    if quick {
        &[1, 16, 256, 4096, 65_536]
    } else {
        &[1, 4, 16, 64, 256, 1024, 4096, 16_384, 65_536, 262_144]
    }
}

/// One point of the unmap / forced-revoke sweep.
#[derive(Clone, Copy, Debug)]
pub struct DeletePoint {
    /// Pages mapped, touched and removed.
    pub pages: u64,
    /// Paired rounds.
    pub rounds: usize,
    /// Also measure `hv.unmap` and the revoke with the vCPU running (not only
    /// the revoke with the vCPU parked).
    pub all_states: bool,
}

const fn dp(pages: u64, rounds: usize, all_states: bool) -> DeletePoint {
    DeletePoint {
        pages,
        rounds,
        all_states,
    }
}

/// The unmap / forced-revoke sweep. Every round paints every page twice (once
/// per side), at tens of microseconds per first touch under shadow paging,
/// so the large sizes get few rounds, and framebuffer scale (65,536 pages and
/// more) is left to the full run.
pub fn delete_points(quick: bool) -> &'static [DeletePoint] {
    const QUICK: [DeletePoint; 2] = [dp(1, 200, true), dp(4096, 10, true)];
    const FULL: [DeletePoint; 5] = [
        dp(1, 400, true),
        dp(64, 60, true),
        dp(4096, 40, true),
        dp(65_536, 10, true),
        dp(262_144, 4, false),
    ];
    if quick {
        &QUICK
    } else {
        &FULL
    }
}

/// Rounds of the accounting-cost pairing and port exits per round and side.
pub(super) fn cost_plan(quick: bool) -> (usize, u64) {
    if quick {
        (30, 200)
    } else {
        (100, 500)
    }
}

/// CPUs the placement probe visits: every CPU the process may use, at
/// most four.
pub fn probe_cpus() -> Vec<usize> {
    crate::ALLOWED
        .get()
        .cloned()
        .or_else(hv::affinity::current_affinity)
        .map(|s| s.cpus().iter().copied().take(4).collect())
        .unwrap_or_default()
}

/// The suite's parts: the metrics each emits, and its progress steps.
fn parts(quick: bool) -> [(&'static [MetricName], usize); 5] {
    [
        (
            &[
                MetricName::BareExit,
                MetricName::PioExit,
                MetricName::PortExit,
            ],
            1 + 2 * TRACKED_PAGES.len(),
        ),
        (
            &[
                MetricName::AccountingCost,
                MetricName::ExitHandler,
                MetricName::PortExit,
            ],
            TRACKED_PAGES.len(),
        ),
        (
            &[
                MetricName::Bind,
                MetricName::MemslotAdd,
                MetricName::BindOverFloor,
            ],
            bind_points(quick).len(),
        ),
        (
            &[
                MetricName::HvUnmap,
                MetricName::MemslotDelete,
                MetricName::UnmapOverFloor,
                MetricName::RevokeForce,
                MetricName::RevokeForceOverFloor,
            ],
            delete_points(quick)
                .iter()
                .map(|p| if p.all_states { 3 } else { 1 })
                .sum::<usize>(),
        ),
        (&[MetricName::MemslotDelete], probe_cpus().len()),
    ]
}

pub(super) fn selects(only: Option<&str>, names: &[MetricName]) -> bool {
    only.is_none_or(|o| {
        names
            .iter()
            .any(|n| n.as_str().starts_with(o) || o.starts_with(n.as_str()))
    })
}

/// Steps this suite announces with `--only` (for the progress total).
pub fn steps_for(quick: bool, only: Option<&str>) -> usize {
    selected_steps(&parts(quick), only)
}

/// The progress steps of the parts (metric names, steps) that `only`
/// selects.
pub(super) fn selected_steps(parts: &[(&[MetricName], usize)], only: Option<&str>) -> usize {
    parts
        .iter()
        .filter(|(names, _)| selects(only, names))
        .map(|(_, n)| n)
        .sum()
}

/// The metric names this suite emits.
pub const EMITS: &[MetricName] = &[
    MetricName::BareExit,
    MetricName::PioExit,
    MetricName::PortExit,
    MetricName::ExitHandler,
    MetricName::AccountingCost,
    MetricName::Bind,
    MetricName::MemslotAdd,
    MetricName::BindOverFloor,
    MetricName::HvUnmap,
    MetricName::MemslotDelete,
    MetricName::UnmapOverFloor,
    MetricName::RevokeForce,
    MetricName::RevokeForceOverFloor,
];

/// Runs the suite.
pub fn hv(cx: &mut Ctx, sink: &mut Sink) {
    if !std::path::Path::new("/dev/kvm").exists() {
        for name in EMITS {
            sink.skip(*name, "/dev/kvm is absent on this host");
        }
        return;
    }
    let run: [fn(&mut Ctx, &mut Sink); 5] =
        [exits, accounting_cost, binds, deletes, placement_probe];
    for ((names, _), part) in parts(cx.quick).iter().zip(run) {
        if selects(cx.only.as_deref(), names) {
            part(cx, sink);
        }
    }
}

fn exits(cx: &mut Ctx, sink: &mut Sink) {
    let n = exit_samples(cx.quick);
    let setup = cx.placement.clone();
    let vcpu_cpu = setup.vcpu_cpus.as_ref().map(|c| c.cpus()[0] as u32);
    cx.progress.step(&format!("hv.bare_exit n={n}"));
    let bare = match w::bare_exit(n, &setup) {
        Ok(v) => {
            let m = latency_metric(MetricName::BareExit, &[], &v, true, None);
            sink.metrics.extend(m.map(|m| on_cpu(m, vcpu_cpu)));
            median_u64(&v)
        }
        Err(e) => {
            sink.skip(
                MetricName::BareExit,
                format!("bare KVM exit loop failed: {e}"),
            );
            None
        }
    };
    for tracked in TRACKED_PAGES {
        for (acc, word) in [(Accounting::On, "on"), (Accounting::Off, "off")] {
            cx.progress.step(&format!(
                "hv.pio_exit accounting={word} mmio_tracked_pages={tracked} n={n}"
            ));
            let params = pio_params(word, tracked);
            match w::pio_exit(acc, tracked, n, &setup) {
                Ok(v) => {
                    if let Some(mut m) =
                        latency_metric(MetricName::PioExit, &params, &v, true, bare)
                    {
                        m.note = Some(
                            "guest-timed (lfence; rdtsc) round trip of `in al, 0x300`; \
                             percentiles corrected for coordinated omission; normalized by \
                             the same run's bare-exit median"
                                .into(),
                        );
                        push_with_exit_row(sink, on_cpu(m, vcpu_cpu), None);
                    }
                }
                Err(e) => sink.skip(
                    MetricName::PioExit,
                    format!("accounting={word} tracked={tracked}: {e}"),
                ),
            }
        }
    }
}

fn accounting_cost(cx: &mut Ctx, sink: &mut Sink) {
    for tracked in TRACKED_PAGES {
        cost_step(cx, sink, tracked, None);
    }
}

/// One `hv.accounting_cost` step with `tracked` framebuffer pages tracked,
/// alone (`beside` = `None`: domain 0 maps them; params `load=none`) or
/// beside a painter that maps them (`load`, `mapped_by=painter`), with the
/// `hv.exit_handler` rows of both sides.
pub(super) fn cost_step(cx: &mut Ctx, sink: &mut Sink, tracked: u64, beside: Option<Load>) {
    let (rounds, per) = cost_plan(cx.quick);
    let load = beside.unwrap_or(Load::None);
    cx.progress.step(&format!(
        "hv.accounting_cost mmio_tracked_pages={tracked} load={}{} ({rounds} rounds x {per} \
         exits x 2)",
        load.name(),
        if beside.is_some() {
            " mapped_by=painter"
        } else {
            ""
        }
    ));
    let c = match paired::accounting_cost(tracked, rounds, per, beside, &cx.placement) {
        Ok(c) => c,
        Err(e) => {
            for name in [MetricName::AccountingCost, MetricName::ExitHandler] {
                sink.skip(
                    name,
                    format!("mmio_tracked_pages={tracked} load={}: {e}", load.name()),
                );
            }
            return;
        }
    };
    let params = cost_params(tracked, beside);
    let painter = match beside {
        Some(l) => format!(
            "; beside a painter domain mapping the tracked pages ({}; its vCPU on CPU {:?} / \
             {:?})",
            if l == Load::FbPaint {
                "streaming writes over them"
            } else {
                "idle"
            },
            c.painter_cpu.0,
            c.painter_cpu.1
        ),
        None => String::new(),
    };
    let deltas = c.deltas();
    if let Some(mut m) = value_metric(MetricName::AccountingCost, &params, &deltas, &c.cpu) {
        m.note = Some(format!(
            "per round: median exit-handler time with accounting on minus off ({per} port \
             exits each side, alternating order, tracepoints off on both sides; handler \
             timed by the hv handler probe); vCPU threads on CPU {:?} / {:?}; {} exits not \
             recorded{painter}",
            c.vcpu_cpu.0, c.vcpu_cpu.1, c.dropped
        ));
        sink.metrics.push(m);
    }
    for (word, all, cpu) in [
        ("on", &c.all_on, c.vcpu_cpu.0),
        ("off", &c.all_off, c.vcpu_cpu.1),
    ] {
        let p = handler_params(word, &params);
        if let Some(mut m) = latency_metric(MetricName::ExitHandler, &p, all, false, None) {
            m.note = Some(format!(
                "hypervisor side: the exit handler of `in al, 0x300` (port check and device A) \
                 timed by the handler probe, tracepoints off{painter}"
            ));
            let m = on_cpu(m, cpu);
            if beside.is_some() {
                // The per-port exit table shows the unloaded hypervisor side.
                sink.metrics.push(m);
            } else {
                push_with_exit_row(sink, m, Some("hypervisor"));
            }
        }
    }
}

fn binds(cx: &mut Ctx, sink: &mut Sink) {
    let rounds = bind_rounds(cx.quick);
    for &pages in bind_points(cx.quick) {
        bind_step(cx, sink, pages, rounds, None);
    }
}

/// Paired rounds of each bind point. A round of the largest point takes
/// about 0.1 ms, so rounds are cheap; what they buy is the ratio's interval:
/// 40 rounds gave `hv.bind_over_floor` at 1 page a 95 % interval about
/// ±0.03 wide (as wide as the distance from its target), 400 about ±0.01.
pub(super) fn bind_rounds(quick: bool) -> usize {
    if quick {
        400
    } else {
        2000
    }
}

/// Params of a paired step: its own, then `load` and `mapped_by=painter`
/// when it ran beside a painter.
fn with_load(mut params: Vec<(Key, Param)>, beside: Option<Load>) -> Vec<(Key, Param)> {
    if let Some(l) = beside {
        params.push((Key::Load, Param::from(l.name())));
        params.push((Key::MappedBy, Param::from("painter")));
    }
    params
}

/// The words of a paired step's note about the painter beside it.
fn painter_words(beside: Option<Load>, p: &paired::Paired) -> String {
    match beside {
        Some(Load::FbPaint) => format!(
            "; a painter domain streams writes over 256 MiB of mapped framebuffer beside it \
             (its vCPU on CPU {:?})",
            p.painter_cpu
        ),
        Some(Load::None) => "; an idle painter domain maps 256 MiB of framebuffer beside it".into(),
        None => String::new(),
    }
}

/// One paired `hv.bind` step of `pages` pages, alone or beside a painter.
pub(super) fn bind_step(
    cx: &mut Ctx,
    sink: &mut Sink,
    pages: u64,
    rounds: usize,
    beside: Option<Load>,
) {
    let params = with_load(vec![(Key::Pages, Param::from(pages))], beside);
    cx.progress.step(&format!(
        "hv.bind pages={pages}{} ({rounds} paired rounds)",
        beside.map_or(String::new(), |l| format!(" load={}", l.name()))
    ));
    match paired::bind(pages, rounds, beside, &cx.placement) {
        Ok(p) => push_pairs(
            sink,
            &p,
            BIND_PAIR,
            &params,
            &format!(
                "bare memslot add of the same frames on the same VM{}",
                painter_words(beside, &p)
            ),
        ),
        Err(e) => sink.skip(MetricName::Bind, format!("{pages} pages: {e}")),
    }
}

fn deletes(cx: &mut Ctx, sink: &mut Sink) {
    let setup = cx.placement.clone();
    for point in delete_points(cx.quick) {
        let (pages, rounds) = (point.pages, point.rounds);
        if !point.all_states {
            revoke(cx, sink, pages, rounds, paired::VcpuState::Parked, None);
            continue;
        }
        cx.progress
            .step(&format!("hv.unmap pages={pages} ({rounds} paired rounds)"));
        let params = unmap_params(pages);
        match paired::unmap(pages, rounds, &setup) {
            Ok(p) => push_pairs(
                sink,
                &p,
                UNMAP_PAIR,
                &params,
                "bare memslot delete of the same touched frames on the same VM",
            ),
            Err(e) => sink.skip(MetricName::HvUnmap, format!("{pages} pages: {e}")),
        }
        for state in [paired::VcpuState::Parked, paired::VcpuState::Running] {
            revoke(cx, sink, pages, rounds, state, None);
        }
    }
}

/// Why placement matters, measured: the bare memslot delete of one touched
/// page with the control thread on each CPU in turn (the vCPU parked, on its
/// usual CPU). `hv.memslot_delete` with `paired_with=placement` and
/// `control_cpu`.
fn placement_probe(cx: &mut Ctx, sink: &mut Sink) {
    let rounds = if cx.quick { 16 } else { 60 };
    let home = hv::affinity::current_affinity();
    for cpu in probe_cpus() {
        cx.progress.step(&format!(
            "hv.memslot_delete pages=1 control_cpu={cpu} (placement probe, {rounds} rounds)"
        ));
        if let Err(errno) = hv::affinity::pin_current(&hv::affinity::CpuSet::one(cpu)) {
            sink.skip(
                MetricName::MemslotDelete,
                format!("placement probe: CPU {cpu} refused (errno {errno})"),
            );
            continue;
        }
        let params = placement_params(cpu);
        match paired::unmap(1, rounds, &cx.placement) {
            Ok(p) => sink.metrics.extend(
                latency_metric(MetricName::MemslotDelete, &params, &p.floor, false, None).map(
                    |mut m| {
                        m.cpus = p.cpu.clone();
                        m.note = Some(format!(
                            "bare memslot delete of 1 touched page with the control thread \
                             pinned to CPU {cpu} (vCPU parked on CPU {:?})",
                            p.vcpu_cpu
                        ));
                        m
                    },
                ),
            ),
            Err(e) => sink.skip(
                MetricName::MemslotDelete,
                format!("placement probe on CPU {cpu}: {e}"),
            ),
        }
    }
    // Back to the measuring CPU for whatever runs next.
    if let Some(h) = cx.placement_home.as_ref().or(home.as_ref()) {
        let _ = hv::affinity::pin_current(h);
    }
}

/// One paired `hv.revoke_force` step, alone or beside a painter.
pub(super) fn revoke(
    cx: &mut Ctx,
    sink: &mut Sink,
    pages: u64,
    rounds: usize,
    state: paired::VcpuState,
    beside: Option<Load>,
) {
    cx.progress.step(&format!(
        "hv.revoke_force pages={pages} vcpu_state={}{} ({rounds} paired rounds)",
        state.name(),
        beside.map_or(String::new(), |l| format!(" load={}", l.name()))
    ));
    let params = revoke_params(pages, state, beside);
    match paired::revoke_force(pages, rounds, state, beside, &cx.placement) {
        Ok(p) => push_pairs(
            sink,
            &p,
            REVOKE_PAIR,
            &params,
            &format!(
                "bare memslot delete of the same touched frames on the same VM, vCPU in the same \
                 state{}",
                painter_words(beside, &p)
            ),
        ),
        Err(e) => sink.skip(
            MetricName::RevokeForce,
            format!("{pages} pages {}: {e}", state.name()),
        ),
    }
}

/// Pushes the floor, the step and their per-round ratio. The floor and step
/// keep the params (the floor also says what it was paired with); the ratio
/// drops `paired_with`, which its name already says.
fn push_pairs(
    sink: &mut Sink,
    p: &paired::Paired,
    (floor, step, ratio): (MetricName, MetricName, MetricName),
    params: &[(Key, Param)],
    floor_words: &str,
) {
    let own = own_params(params);
    let with_cpus = |mut m: Metric| {
        m.cpus = p.cpu.clone();
        m
    };
    sink.metrics.extend(
        latency_metric(floor, params, &p.floor, false, None).map(|mut m| {
            m.note = Some(format!("{floor_words}; paired per round with {step}"));
            with_cpus(m)
        }),
    );
    sink.metrics.extend(
        latency_metric(step, &own, &p.step, false, None).map(|mut m| {
            m.note = Some(format!(
                "paired per round with {floor} ({floor_words}), alternating order"
            ));
            with_cpus(m)
        }),
    );
    let ratios = p.ratios();
    if let Some(mut m) = value_metric(ratio, &own, &ratios, &p.cpu) {
        m.norm_samples = m.samples.clone();
        m.note = Some(format!(
            "{step} / {floor} per round ({} rounds, the same thread, VM and vCPU state; floor \
             first in even rounds); vCPU thread on CPU {:?}",
            ratios.len(),
            p.vcpu_cpu
        ));
        sink.metrics.push(m);
    }
}

/// A metric whose samples are per-round values (ratios, deltas): headline the
/// median, with a 95 % bootstrap interval of it.
fn value_metric(
    name: MetricName,
    params: &[(Key, Param)],
    v: &[f64],
    cpus: &[u32],
) -> Option<Metric> {
    let mut sorted: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let q = |p: f64| sorted[((sorted.len() - 1) as f64 * p).round() as usize];
    let mut m = Metric::new(name, params);
    let p = reports::Percentiles {
        p50: reports::stats::median(&sorted).unwrap_or(0.0),
        p90: q(0.9),
        p99: q(0.99),
        p999: q(0.999),
        max: q(1.0),
    };
    m.set_summary(p, q(0.0), sorted.len() as u64);
    m.samples = v.iter().map(|x| harness::round4(*x)).collect();
    m.cpus = cpus.to_vec();
    m.ci95 = harness::bootstrap_median_ci(v, 0xc195);
    Some(m)
}

/// Marks every sample of `m` as taken on `cpu` (guest-timed samples: the
/// pinned vCPU thread's CPU).
fn on_cpu(mut m: Metric, cpu: Option<u32>) -> Metric {
    if let Some(c) = cpu {
        m.cpus = vec![c; m.samples.len()];
    }
    m
}

/// Pushes a port-0x300 latency metric and its row of the per-port exit
/// table (`hv.port_exit`: the same percentiles without the samples), tagged
/// with `side` when it is not what the guest saw.
fn push_with_exit_row(sink: &mut Sink, m: Metric, side: Option<&str>) {
    let row = exit_row(&m, side);
    sink.metrics.push(m);
    sink.metrics.push(row);
}

/// The `hv.port_exit` row of a port-0x300 latency metric: the same
/// percentiles without the samples, tagged with `side` when it is not what
/// the guest saw.
fn exit_row(m: &Metric, side: Option<&str>) -> Metric {
    let mut row = m.clone();
    row.name = MetricName::PortExit.as_str().into();
    row.params
        .insert(Key::Port.as_str().into(), Param::from(0x300u64));
    if let Some(side) = side {
        row.params
            .insert(Key::Side.as_str().into(), Param::from(side));
    }
    row.samples.clear();
    row.norm_samples.clear();
    row.spectrum.clear();
    row.cpus.clear();
    row
}

/// The params of a guest-timed `hv.pio_exit` of the dom0-mapped rows.
fn pio_params(word: &str, tracked: u64) -> [(Key, Param); 3] {
    [
        (Key::Accounting, Param::from(word)),
        (Key::MmioTrackedPages, Param::from(tracked)),
        (Key::Load, Param::from("none")),
    ]
}

/// The params of `hv.accounting_cost` with `tracked` pages, alone or beside
/// a painter.
fn cost_params(tracked: u64, beside: Option<Load>) -> Vec<(Key, Param)> {
    let mut params = vec![
        (Key::MmioTrackedPages, Param::from(tracked)),
        (Key::Load, Param::from(beside.unwrap_or(Load::None).name())),
    ];
    if beside.is_some() {
        params.push((Key::MappedBy, Param::from("painter")));
    }
    params
}

/// The params of one side's `hv.exit_handler` row of a cost step.
fn handler_params(word: &'static str, cost: &[(Key, Param)]) -> Vec<(Key, Param)> {
    let mut p = cost.to_vec();
    p.insert(0, (Key::Accounting, Param::from(word)));
    p
}

/// The params of the paired unmap step.
fn unmap_params(pages: u64) -> [(Key, Param); 3] {
    [
        (Key::Pages, Param::from(pages)),
        (Key::VcpuState, Param::from("parked")),
        (Key::PairedWith, Param::from("unmap")),
    ]
}

/// The params of the placement probe on `cpu`.
fn placement_params(cpu: usize) -> [(Key, Param); 4] {
    [
        (Key::Pages, Param::from(1u64)),
        (Key::VcpuState, Param::from("parked")),
        (Key::PairedWith, Param::from("placement")),
        (Key::ControlCpu, Param::from(cpu as u64)),
    ]
}

/// The params of a paired forced revoke, alone or beside a painter.
fn revoke_params(pages: u64, state: paired::VcpuState, beside: Option<Load>) -> Vec<(Key, Param)> {
    with_load(
        vec![
            (Key::Pages, Param::from(pages)),
            (Key::VcpuState, Param::from(state.name())),
            (Key::PairedWith, Param::from("revoke_force")),
        ],
        beside,
    )
}

/// A paired step's own params: the floor's without `paired_with`, which the
/// step's and the ratio's names already say.
fn own_params(params: &[(Key, Param)]) -> Vec<(Key, Param)> {
    params
        .iter()
        .filter(|(k, _)| *k != Key::PairedWith)
        .cloned()
        .collect()
}

/// The keys [`push_pairs`] emits for a paired step with `params`.
pub(super) fn pair_keys(
    (floor, step, ratio): (MetricName, MetricName, MetricName),
    params: &[(Key, Param)],
) -> [String; 3] {
    let own = own_params(params);
    [
        super::key(floor, params),
        super::key(step, &own),
        super::key(ratio, &own),
    ]
}

/// The floor, step and ratio of a paired bind.
pub(super) const BIND_PAIR: (MetricName, MetricName, MetricName) = (
    MetricName::MemslotAdd,
    MetricName::Bind,
    MetricName::BindOverFloor,
);
/// The floor, step and ratio of a paired unmap.
const UNMAP_PAIR: (MetricName, MetricName, MetricName) = (
    MetricName::MemslotDelete,
    MetricName::HvUnmap,
    MetricName::UnmapOverFloor,
);
/// The floor, step and ratio of a paired forced revoke.
pub(super) const REVOKE_PAIR: (MetricName, MetricName, MetricName) = (
    MetricName::MemslotDelete,
    MetricName::RevokeForce,
    MetricName::RevokeForceOverFloor,
);

/// The keys of one [`cost_step`].
pub(super) fn cost_keys(tracked: u64, beside: Option<Load>) -> Vec<String> {
    let params = cost_params(tracked, beside);
    let mut v = vec![super::key(MetricName::AccountingCost, &params)];
    for word in ["on", "off"] {
        let m = Metric::new(MetricName::ExitHandler, &handler_params(word, &params));
        if beside.is_none() {
            v.push(exit_row(&m, Some("hypervisor")).key());
        }
        v.push(m.key());
    }
    v
}

/// The keys of one [`bind_step`].
pub(super) fn bind_keys(pages: u64, beside: Option<Load>) -> [String; 3] {
    pair_keys(
        BIND_PAIR,
        &with_load(vec![(Key::Pages, Param::from(pages))], beside),
    )
}

/// The keys of one [`revoke`].
pub(super) fn revoke_keys(
    pages: u64,
    state: paired::VcpuState,
    beside: Option<Load>,
) -> [String; 3] {
    pair_keys(REVOKE_PAIR, &revoke_params(pages, state, beside))
}

/// The keys this suite emits on a host with `/dev/kvm`, the placement probe
/// visiting `probe` (every CPU the run may use, at most four).
pub fn keys(quick: bool, probe: &[usize]) -> Vec<String> {
    let mut v = vec![super::key(MetricName::BareExit, &[])];
    for tracked in TRACKED_PAGES {
        for word in ["on", "off"] {
            let m = Metric::new(MetricName::PioExit, &pio_params(word, tracked));
            v.push(m.key());
            v.push(exit_row(&m, None).key());
        }
    }
    for tracked in TRACKED_PAGES {
        v.extend(cost_keys(tracked, None));
    }
    for &pages in bind_points(quick) {
        v.extend(bind_keys(pages, None));
    }
    for point in delete_points(quick) {
        if point.all_states {
            v.extend(pair_keys(UNMAP_PAIR, &unmap_params(point.pages)));
            for state in [paired::VcpuState::Parked, paired::VcpuState::Running] {
                v.extend(revoke_keys(point.pages, state, None));
            }
        } else {
            v.extend(revoke_keys(point.pages, paired::VcpuState::Parked, None));
        }
    }
    for &cpu in probe {
        v.push(super::key(
            MetricName::MemslotDelete,
            &placement_params(cpu),
        ));
    }
    v
}

/// Keeps at most `max` evenly strided values.
fn strided(v: &[u64], max: usize) -> Vec<u64> {
    let step = v.len().div_ceil(max.max(1)).max(1);
    v.iter().step_by(step).copied().collect()
}

fn median_u64(v: &[u64]) -> Option<f64> {
    let f: Vec<f64> = v.iter().map(|x| *x as f64).collect();
    reports::stats::median(&f)
}

/// A latency metric from raw per-operation samples (ns). With `co`, the
/// main percentiles are corrected for coordinated omission (the guest loop is
/// closed: a stalled access delays the ones behind it) using the
/// uncorrected median as the expected interval; the uncorrected ones are
/// kept. With `norm_by`, the kept samples are also divided by that
/// same-run baseline median (a within-run ratio for the gate).
pub fn latency_metric(
    name: MetricName,
    params: &[(Key, Param)],
    samples: &[u64],
    co: bool,
    norm_by: Option<f64>,
) -> Option<Metric> {
    let mut raw = hdrhistogram::Histogram::<u64>::new(3).ok()?;
    for &v in samples {
        raw.record(v.max(1)).ok()?;
    }
    let (up, umin, uspec) = harness::summarize_hist(&raw, 1.0)?;
    let (p, min, spectrum) = if co {
        let mut h = hdrhistogram::Histogram::<u64>::new(3).ok()?;
        let interval = raw.value_at_quantile(0.5).max(1);
        for &v in samples {
            h.record_correct(v.max(1), interval).ok()?;
        }
        harness::summarize_hist(&h, 1.0)?
    } else {
        (up, umin, uspec)
    };
    let mut m = Metric::new(name, params);
    m.set_summary(p, min, samples.len() as u64);
    m.spectrum = spectrum;
    if co {
        m.uncorrected = Some(up);
    }
    let kept = strided(samples, 2000);
    m.samples = kept.iter().map(|v| *v as f64).collect();
    if let Some(b) = norm_by.filter(|b| *b > 0.0) {
        m.norm_samples = kept
            .iter()
            .map(|v| harness::round4(*v as f64 / b))
            .collect();
    }
    Some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_metric_corrects_stalls() {
        // 999 fast accesses and one stall of 1000 intervals: uncorrected the
        // stall is one sample; corrected it also stands for the accesses it
        // delayed, which moves the upper percentiles.
        let mut v = vec![100u64; 999];
        v.push(100_000);
        let m = latency_metric(MetricName::PioExit, &[], &v, true, Some(50.0)).expect("non-empty");
        let raw = m.uncorrected.expect("corrected metrics keep the raw ones");
        assert!(raw.p99 < 110.0, "{raw:?}");
        assert!(m.p99 > 10_000.0, "{m:?}");
        assert_eq!(m.count, 1000);
        assert_eq!(m.samples.len(), 1000);
        assert_eq!(m.norm_samples[0], 2.0);
        let plain = latency_metric(MetricName::Bind, &[], &v, false, None).expect("non-empty");
        assert!(plain.uncorrected.is_none() && plain.norm_samples.is_empty());
        assert!(plain.p99 < 110.0);
    }

    #[test]
    fn strided_bounds_kept_samples() {
        let v: Vec<u64> = (0..10_001).collect();
        let s = strided(&v, 2000);
        assert!(s.len() <= 2000 && s.len() > 1000, "{}", s.len());
        assert_eq!(s[0], 0);
    }

    #[test]
    fn value_metrics_headline_the_median_with_an_interval() {
        let v = [1.0, 1.2, 1.1, 0.9, 1.05, 1.02, 0.98];
        let m = value_metric(MetricName::BindOverFloor, &[], &v, &[0; 7]).expect("values");
        assert_eq!(m.value, 1.02);
        assert_eq!(m.min, 0.9);
        assert_eq!(m.max, 1.2);
        assert_eq!(m.unit, "ratio");
        let [lo, hi] = m.ci95.expect("an interval");
        assert!(
            lo <= m.value && m.value <= hi && lo >= 0.9 && hi <= 1.2,
            "{lo} {hi}"
        );
        assert!(value_metric(MetricName::BindOverFloor, &[], &[f64::NAN], &[]).is_none());
    }
}
