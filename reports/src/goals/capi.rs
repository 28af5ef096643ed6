//! The C API's goals' evaluators: libioacct's port check against the Rust
//! one, timed and counted.

use super::evaluators::worst_pair;
use super::Measured;
use crate::names::{Key, MetricName};
use crate::schema::{Metric, Results};

/// radix-bound-capi (`ioacct_port_check8` called from a C loop, per check)
/// over radix-bound (the Rust check, inlined), the worst grant count: the
/// point and its interval are the same statistic, the worst ratio of
/// medians over grant counts, the interval recomputing it over resampled
/// rounds of the sweep.
pub(super) fn capi_check_vs_bound(r: &Results, limit: f64) -> Option<Measured> {
    worst_pair(r, "radix-bound-capi", "radix-bound")
        .map(|w| w.measured(limit, |x, y| format!("C {x} vs Rust {y}")))
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
