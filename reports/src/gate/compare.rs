//! The comparisons: results against a baseline ([`compare`]), two
//! revisions side by side ([`compare_ab`]), and the within-run invariants.

use super::{
    host_differences_judged_same, host_mismatch, Finding, GateConfig, GateReport, Mode, Verdict,
};
use crate::goals;
use crate::names::Key;
use crate::schema::{Metric, Results};
use crate::stats;
use std::collections::{BTreeMap, BTreeSet};

/// Compares two exact values.
fn compare_exact(key: String, base: &Metric, cur: &Metric, cfg: &GateConfig) -> Finding {
    let ratio = if base.value == 0.0 {
        if cur.value == 0.0 {
            1.0
        } else {
            f64::INFINITY
        }
    } else {
        cur.value / base.value
    };
    let verdict = if cur.unit == "instructions" {
        if ratio > 1.0 + cfg.instruction_tolerance {
            Verdict::Regression
        } else if ratio < 1.0 - cfg.instruction_tolerance {
            Verdict::Improvement
        } else if ratio != 1.0 {
            Verdict::Changed
        } else {
            Verdict::Same
        }
    } else if ratio > 1.0 + cfg.exact_tolerance {
        Verdict::Regression
    } else if ratio < 1.0 {
        Verdict::Improvement
    } else {
        Verdict::Same
    };
    Finding {
        key,
        baseline: Some(base.value),
        current: Some(cur.value),
        ratio: Some(ratio),
        p: None,
        threshold: (cur.unit == "instructions").then_some(cfg.instruction_tolerance),
        verdict,
    }
}

/// Why a timing is not judged, if it is not: a comparison implementation,
/// or a baseline noise too large to gate on.
fn not_judged(base: &Metric, cur: &Metric, cfg: &GateConfig) -> Option<String> {
    if cfg
        .reference_impls
        .iter()
        .any(|(k, v)| cur.params.get(k.as_str()).and_then(|p| p.as_str()) == Some(*v))
    {
        return Some("comparison implementation, not gated".to_owned());
    }
    base.noise.filter(|n| *n > cfg.max_noise).map(|noise| {
        format!(
            "A/A noise {:.0} % > {:.0} %, not judged",
            noise * 100.0,
            cfg.max_noise * 100.0
        )
    })
}

/// Compares one metric with its baseline counterpart.
pub fn compare_metric(base: &Metric, cur: &Metric, cfg: &GateConfig) -> Finding {
    compare_metric_in(base, cur, cfg, None)
}

/// [`compare_metric`], given the baseline's exit a paired difference is part
/// of ([`exit_of`]), if it has one.
fn compare_metric_in(base: &Metric, cur: &Metric, cfg: &GateConfig, exit: Option<f64>) -> Finding {
    let key = cur.key();
    if base.deterministic && cur.deterministic {
        return compare_exact(key, base, cur, cfg);
    }
    if let Some(why) = not_judged(base, cur, cfg) {
        return info(key, base, cur, &why);
    }
    let (Some(bs), Some(cs)) = (cfg.test_samples(base), cfg.test_samples(cur)) else {
        return info(key, base, cur, "absolute time, not judged");
    };
    if bs.len() < 5 || cs.len() < 5 {
        return info(key, base, cur, "fewer than 5 samples, not judged");
    }
    if cfg.paired.contains(&&*cur.name) {
        let need = delta_needed(cfg, exit, None);
        let round = [(bs, cs)];
        return judge_delta(key, &round, need, cfg);
    }
    let (Some(mb), Some(mc)) = (stats::median(bs), stats::median(cs)) else {
        return info(key, base, cur, "samples hold NaN");
    };
    let ratio = mc / mb;
    let floor = cfg.effect_for(&cur.name, base.value);
    let effect = floor.max(cfg.noise_factor * base.noise.unwrap_or(0.0));
    let up = stats::mann_whitney_greater(bs, cs);
    let down = stats::mann_whitney_greater(cs, bs);
    let (verdict, p) = match (up, down) {
        (Some(u), _) if u.p_greater < cfg.alpha && ratio > 1.0 + effect => {
            (Verdict::Regression, Some(u.p_greater))
        }
        (_, Some(d)) if d.p_greater < cfg.alpha && ratio < 1.0 / (1.0 + effect) => {
            (Verdict::Improvement, Some(d.p_greater))
        }
        (Some(u), _) => (Verdict::Same, Some(u.p_greater)),
        (None, _) => (Verdict::Same, None),
    };
    Finding {
        key,
        baseline: Some(mb),
        current: Some(mc),
        ratio: ratio.is_finite().then_some(ratio),
        p,
        threshold: Some(effect),
        verdict,
    }
}

/// The smallest growth (ns) of a paired difference that can fail: the
/// absolute floor [`GateConfig::delta_min_ns`], the fraction
/// [`GateConfig::delta_exit_fraction`] of the exit it is part of (when the
/// results hold it) and [`GateConfig::noise_factor`] times its measured
/// between-round spread (an A/B run's own rounds).
fn delta_needed(cfg: &GateConfig, exit_ns: Option<f64>, spread_ns: Option<f64>) -> f64 {
    let of_exit = exit_ns
        .filter(|e| e.is_finite() && *e > 0.0)
        .map_or(0.0, |e| cfg.delta_exit_fraction * e);
    let of_spread = spread_ns
        .filter(|s| s.is_finite())
        .map_or(0.0, |s| cfg.noise_factor * s);
    cfg.delta_min_ns.max(of_exit).max(of_spread)
}

/// The exit the paired difference `m` is part of, in `r`: the fastest round
/// trip (`min`) of the [`GateConfig::paired_exit`] metric with `m`'s
/// parameters and `accounting=off`, nothing else. Not its median: that is
/// corrected for coordinated omission and grew from 81 µs to 10 ms in quick
/// runs under a load of 18 on two CPUs, while the minimum stayed at 73–75 µs;
/// a threshold that grows with load would blind the gate.
fn exit_of(r: &Results, m: &Metric, cfg: &GateConfig) -> Option<f64> {
    r.metrics
        .iter()
        .find(|x| {
            x.name == cfg.paired_exit
                && x.params.len() == m.params.len() + 1
                && x.has(Key::Accounting, "off")
                && m.params.iter().all(|(k, v)| x.params.get(k) == Some(v))
        })
        .map(|x| x.min)
        .filter(|v| v.is_finite() && *v > 0.0)
}

/// The robust spread (ns) of a paired difference's per-round median within
/// one build: each round's median less its side's median over rounds, both
/// sides pooled. `None` with fewer than two rounds.
fn round_spread(rounds: &[(&[f64], &[f64])]) -> Option<f64> {
    if rounds.len() < 2 {
        return None;
    }
    let ma: Vec<f64> = rounds.iter().filter_map(|r| stats::median(r.0)).collect();
    let mb: Vec<f64> = rounds.iter().filter_map(|r| stats::median(r.1)).collect();
    let (ca, cb) = (stats::median(&ma)?, stats::median(&mb)?);
    let dev: Vec<f64> = ma
        .iter()
        .map(|x| x - ca)
        .chain(mb.iter().map(|x| x - cb))
        .collect();
    stats::mad_sigma(&dev)
}

/// Judges a paired difference (ns) on the change of its median over all
/// rounds (one-sided Mann-Whitney of the pooled samples): a regression
/// (improvement) needs p below `alpha` and growth (shrinkage) beyond `need`
/// ns, overall and in every round on its own.
fn judge_delta(key: String, rounds: &[(&[f64], &[f64])], need: f64, cfg: &GateConfig) -> Finding {
    let a: Vec<f64> = rounds.iter().flat_map(|r| r.0.iter().copied()).collect();
    let b: Vec<f64> = rounds.iter().flat_map(|r| r.1.iter().copied()).collect();
    let (ma, mb) = (stats::median(&a), stats::median(&b));
    let diff = match (ma, mb) {
        (Some(x), Some(y)) => y - x,
        _ => f64::NAN,
    };
    let per_round: Vec<f64> = rounds
        .iter()
        .map(|(ra, rb)| match (stats::median(ra), stats::median(rb)) {
            (Some(x), Some(y)) => y - x,
            _ => f64::NAN,
        })
        .collect();
    let every = |f: &dyn Fn(f64) -> bool| per_round.iter().all(|d| f(*d));
    let up = stats::mann_whitney_greater(&a, &b);
    let down = stats::mann_whitney_greater(&b, &a);
    let (verdict, p) = match (up, down) {
        (Some(u), _) if u.p_greater < cfg.alpha && diff > need && every(&|d| d > need) => {
            (Verdict::Regression, Some(u.p_greater))
        }
        (_, Some(d)) if d.p_greater < cfg.alpha && diff < -need && every(&|x| x < -need) => {
            (Verdict::Improvement, Some(d.p_greater))
        }
        (Some(u), _) => (Verdict::Same, Some(u.p_greater)),
        (None, _) => (
            Verdict::Info("fewer than 2 samples, not judged".to_owned()),
            None,
        ),
    };
    Finding {
        key,
        baseline: ma,
        current: mb,
        // A ratio of two differences near zero means nothing: none given.
        ratio: None,
        p,
        threshold: None,
        verdict,
    }
}

fn info(key: String, base: &Metric, cur: &Metric, why: &str) -> Finding {
    Finding {
        key,
        baseline: Some(base.value),
        current: Some(cur.value),
        ratio: (base.value != 0.0).then(|| cur.value / base.value),
        p: None,
        threshold: None,
        verdict: Verdict::Info(why.to_owned()),
    }
}

/// Permutations of the A/B test: the smallest p it can give is 1/1000.
pub const PERMUTATIONS: usize = 999;

/// Compares one metric measured by both sides of an A/B run: `a[r]` and
/// `b[r]` are its measurements in round `r` (rounds where a side lacks it
/// are left out). The test relabels samples within each round only; a
/// regression (improvement) also needs every round's own median ratio
/// beyond the minimum effect.
pub fn compare_paired(
    a: &[&Metric],
    b: &[&Metric],
    cfg: &GateConfig,
    noise: Option<f64>,
) -> Option<Finding> {
    compare_rounds(a, b, cfg, noise, None)
}

/// [`compare_paired`], given side A's exit a paired difference is part of
/// ([`exit_of`]), if it has one.
fn compare_rounds(
    a: &[&Metric],
    b: &[&Metric],
    cfg: &GateConfig,
    noise: Option<f64>,
    exit: Option<f64>,
) -> Option<Finding> {
    let (first_a, first_b) = (a.first()?, b.first()?);
    let key = first_b.key();
    if first_a.deterministic && first_b.deterministic {
        // Counts: every round must agree with itself; compare the last.
        let la = a.last()?;
        let lb = b.last()?;
        return Some(compare_exact(key, la, lb, cfg));
    }
    let mut base = (*first_a).clone();
    base.noise = noise;
    if let Some(why) = not_judged(&base, first_b, cfg) {
        return Some(info(key, first_a, first_b, &why));
    }
    let mut rounds = Vec::new();
    for (ma, mb) in a.iter().zip(b) {
        match (cfg.test_samples(ma), cfg.test_samples(mb)) {
            (Some(sa), Some(sb)) => rounds.push((sa, sb)),
            _ => return Some(info(key, first_a, first_b, "absolute time, not judged")),
        }
    }
    let na: usize = rounds.iter().map(|r| r.0.len()).sum();
    let nb: usize = rounds.iter().map(|r| r.1.len()).sum();
    if na < 5 || nb < 5 {
        return Some(info(
            key,
            first_a,
            first_b,
            "fewer than 5 samples, not judged",
        ));
    }
    if cfg.paired.contains(&&*first_b.name) {
        let need = delta_needed(cfg, exit, round_spread(&rounds));
        return Some(judge_delta(key, &rounds, need, cfg));
    }
    let Some(t) = stats::stratified_permutation(&rounds, PERMUTATIONS, 0x00ab_7e57) else {
        return Some(info(key, first_a, first_b, "samples hold NaN"));
    };
    let floor = cfg.effect_for(&first_b.name, first_a.value);
    let effect = floor.max(cfg.noise_factor * noise.unwrap_or(0.0));
    let ratio = t.ratio;
    // Each round on its own must show the change too: a neighbour's burst
    // that slows one side's run (memory-bound operations moved 2.6× between
    // two A/A runs under a load of 15 on two cores) lands in one round only.
    let per_round: Vec<f64> = rounds
        .iter()
        .filter_map(|(sa, sb)| Some(stats::median(sb)? / stats::median(sa)?))
        .collect();
    let lo = per_round.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = per_round.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (verdict, p) = if t.p_greater < cfg.alpha && ratio > 1.0 + effect && lo > 1.0 + effect {
        (Verdict::Regression, t.p_greater)
    } else if t.p_less < cfg.alpha && ratio < 1.0 / (1.0 + effect) && hi < 1.0 / (1.0 + effect) {
        (Verdict::Improvement, t.p_less)
    } else {
        (Verdict::Same, t.p_greater)
    };
    Some(Finding {
        key,
        baseline: Some(t.median_a),
        current: Some(t.median_b),
        ratio: ratio.is_finite().then_some(ratio),
        p: Some(p),
        threshold: Some(effect),
        verdict,
    })
}

/// Compares two revisions run interleaved: `a[r]`, `b[r]` are the results
/// of round `r` of each side. Metrics present on one side only are listed
/// ([`Verdict::OneSide`]), never failures; `noise` (the committed
/// baseline, when there is one) widens minimum effects like [`compare`].
/// Within-run invariants are checked on B's first round.
pub fn compare_ab(
    a: &[Results],
    b: &[Results],
    cfg: &GateConfig,
    only: Option<&str>,
    noise: Option<&Results>,
) -> GateReport {
    let (ma, order_a) = index_rounds(a, only);
    let (mb, order_b) = index_rounds(b, only);
    let noise_of: BTreeMap<String, f64> = noise
        .map(|r| {
            r.metrics
                .iter()
                .filter_map(|m| m.noise.map(|n| (m.key(), n)))
                .collect()
        })
        .unwrap_or_default();
    let mut findings = Vec::new();
    for k in &order_b {
        let vb = &mb[k];
        match ma.get(k) {
            Some(va) => {
                let exit = va
                    .first()
                    .filter(|m| cfg.paired.contains(&&*m.name))
                    .and_then(|m| a.iter().find_map(|r| exit_of(r, m, cfg)));
                findings.extend(compare_rounds(va, vb, cfg, noise_of.get(k).copied(), exit))
            }
            None => findings.push(one_side(k, None, vb.first().map(|m| m.value), "B only")),
        }
    }
    for k in order_a.iter().filter(|k| !mb.contains_key(*k)) {
        findings.push(one_side(k, ma[k].first().map(|m| m.value), None, "A only"));
    }
    if only.is_none() {
        if let Some(first) = b.first() {
            findings.extend(invariants(first));
        }
    }
    GateReport {
        mode: Mode::Ab,
        findings,
        missing_fails: false,
        ..report_frame(cfg)
    }
}

/// Each metric key of `side` (selected by `only`) with its measurement in
/// every round that has it, and the keys in first-seen order.
fn index_rounds<'r>(
    side: &'r [Results],
    only: Option<&str>,
) -> (BTreeMap<String, Vec<&'r Metric>>, Vec<String>) {
    let mut map: BTreeMap<String, Vec<&Metric>> = BTreeMap::new();
    let mut order = Vec::new();
    for r in side {
        for m in r
            .metrics
            .iter()
            .filter(|m| only.is_none_or(|p| m.name.starts_with(p)))
        {
            let k = m.key();
            if !map.contains_key(&k) {
                order.push(k.clone());
            }
            map.entry(k).or_default().push(m);
        }
    }
    (map, order)
}

fn one_side(key: &str, a: Option<f64>, b: Option<f64>, which: &str) -> Finding {
    Finding {
        key: key.to_owned(),
        baseline: a,
        current: b,
        ratio: None,
        p: None,
        threshold: None,
        verdict: Verdict::OneSide(which.to_owned()),
    }
}

fn report_frame(cfg: &GateConfig) -> GateReport {
    GateReport {
        mode: Mode::Baseline,
        findings: Vec::new(),
        alpha: cfg.alpha,
        min_effect: cfg.min_effect,
        noise_factor: cfg.noise_factor,
        headline: cfg.headline,
        headline_min_effect: cfg.headline_min_effect,
        missing_fails: !cfg.allow_missing,
        host_mismatch: Vec::new(),
        cross_host: cfg.cross_host,
        counts_only: cfg.counts_only,
        notes: Vec::new(),
        confirmations: 0,
    }
}

/// Metric names whose absence in `current` is explained by a missing tool
/// (an entry in `not_measured` naming valgrind or callgrind).
fn tool_missing(current: &Results) -> BTreeSet<String> {
    current
        .not_measured
        .iter()
        .filter(|n| n.reason.contains("valgrind") || n.reason.contains("callgrind"))
        .map(|n| n.name.clone())
        .collect()
}

/// The note printed once when instruction counts could not be made.
pub fn valgrind_note(current: &Results) -> Option<String> {
    let names = tool_missing(current);
    (!names.is_empty()).then(|| {
        format!(
            "Instruction counts not made ({}): valgrind is not installed or failed; \
             timings judged alone.",
            names.into_iter().collect::<Vec<_>>().join(", ")
        )
    })
}

/// Compares `current` with `baseline`, keeping only metrics whose name starts
/// with `only` when given (the A/A demonstration gates the port check alone),
/// and adds the within-run invariants of `current`. On a host mismatch
/// (unless `cfg.cross_host`) timings are listed, not judged.
pub fn compare(
    baseline: &Results,
    current: &Results,
    cfg: &GateConfig,
    only: Option<&str>,
) -> GateReport {
    let selected = |m: &&Metric| only.is_none_or(|p| m.name.starts_with(p));
    let mismatch = host_mismatch(&baseline.host, &current.host);
    let judge_timings = !cfg.counts_only && (mismatch.is_empty() || cfg.cross_host);
    let unjudged = if cfg.counts_only {
        "timing, not judged (--counts-only)"
    } else {
        "host mismatch, not judged"
    };
    let base: BTreeMap<String, &Metric> = baseline
        .metrics
        .iter()
        .filter(selected)
        .map(|m| (m.key(), m))
        .collect();
    let untooled = tool_missing(current);
    let mut findings = Vec::new();
    let mut seen = BTreeSet::new();
    for cur in current.metrics.iter().filter(selected) {
        let key = cur.key();
        if let Some(b) = base.get(&key) {
            if judge_timings || (b.deterministic && cur.deterministic) {
                let exit = cfg
                    .paired
                    .contains(&&*b.name)
                    .then(|| exit_of(baseline, b, cfg))
                    .flatten();
                findings.push(compare_metric_in(b, cur, cfg, exit));
            } else {
                findings.push(info(key.clone(), b, cur, unjudged));
            }
            seen.insert(key);
        }
    }
    for (key, b) in &base {
        if !seen.contains(key) {
            findings.push(Finding {
                key: key.clone(),
                baseline: Some(b.value),
                current: None,
                ratio: None,
                p: None,
                threshold: None,
                verdict: if untooled.contains(&b.name) {
                    Verdict::Info("not counted here: valgrind missing".to_owned())
                } else {
                    Verdict::Missing
                },
            });
        }
    }
    if only.is_none() {
        findings.extend(invariants(current));
    }
    let mut g = GateReport {
        findings,
        host_mismatch: mismatch,
        ..report_frame(cfg)
    };
    g.notes
        .extend(host_differences_judged_same(&baseline.host, &current.host));
    g.notes.extend(valgrind_note(current));
    g
}

pub use crate::goals::RADIX_FLATNESS_LIMIT;

/// The invariants of [`crate::goals::GOALS`] (properties that hold within
/// one run, whatever the machine), judged on `r`: a broken one is a
/// regression. Goals whose metrics are absent are not listed.
pub fn invariants(r: &Results) -> Vec<Finding> {
    goals::evaluate(r)
        .into_iter()
        .filter(|e| e.goal.kind == goals::Kind::Invariant)
        .filter_map(|e| {
            let m = e.measured.clone()?;
            Some(Finding {
                key: format!(
                    "invariant {}: {} {} {} ({})",
                    e.goal.id,
                    e.goal.what,
                    e.goal.bound.symbol(),
                    m.limit,
                    m.detail
                ),
                baseline: Some(m.limit),
                current: Some(m.value),
                ratio: e.ratio(),
                p: None,
                threshold: None,
                verdict: if e.met() == Some(true) {
                    Verdict::Same
                } else {
                    Verdict::Regression
                },
            })
        })
        .collect()
}
