//! The C API's goals' evaluators: libioacct's port check against the Rust
//! one, timed and counted.

use super::evaluators::{radix_points, worst_ratio};
use super::fmt_ns;
use super::{interval_of, judged_samples, Measured};
use crate::names::{Key, MetricName};
use crate::schema::{Metric, Results};

/// radix-bound-capi (`ioacct_port_check8` called from a C loop, per check)
/// over radix-bound (the Rust check, inlined), the worst grant count.
pub(super) fn capi_check_vs_bound(r: &Results, limit: f64) -> Option<Measured> {
    let c = radix_points(r, "radix-bound-capi");
    let b = radix_points(r, "radix-bound");
    // Each grant count's (C, Rust) samples, in turn.
    let pairs: Vec<&[f64]> = c
        .iter()
        .filter_map(|x| {
            let y = b
                .iter()
                .find(|y| y.int(Key::Grants) == x.int(Key::Grants))?;
            Some([judged_samples(x), judged_samples(y)])
        })
        .flatten()
        .collect();
    c.iter()
        .filter_map(|x| {
            let g = x.int(Key::Grants)?;
            let y = b.iter().find(|y| y.int(Key::Grants) == Some(g))?;
            (y.p50 > 0.0).then(|| (x.p50 / y.p50, g, x.p50, y.p50))
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(ratio, g, x, y)| Measured {
            value: ratio,
            limit,
            detail: format!("worst at {g} grants: C {} vs Rust {}", fmt_ns(x), fmt_ns(y)),
            interval: interval_of(&pairs, worst_ratio),
        })
}

/// Instructions of map and bind through the C API (counted from C through
/// the freestanding static library, the product) over the same call in
/// Rust (same tracker and size), the worst pair.
pub(super) fn capi_instructions_vs_rust(r: &Results, limit: f64) -> Option<Measured> {
    let all: Vec<&Metric> = r.named(MetricName::Instructions).collect();
    all.iter()
        .filter_map(|c| {
            let rust_op = match c.text(Key::Op)? {
                "map-capi" => "map",
                "bind-capi" => "bind",
                _ => return None,
            };
            let (t, u) = (c.text(Key::Tracker)?, c.int(Key::Units)?);
            let rust = all.iter().find(|m| {
                m.text(Key::Op) == Some(rust_op)
                    && m.text(Key::Tracker) == Some(t)
                    && m.int(Key::Units) == Some(u)
            })?;
            (rust.value > 0.0).then(|| (c.value / rust.value, rust_op, t, u, c.value, rust.value))
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(ratio, op, t, u, c, rust)| Measured {
            value: ratio,
            limit,
            detail: format!("worst: {op} {t} {u} units, C {c:.0} vs Rust {rust:.0} instructions"),
            interval: None,
        })
}
