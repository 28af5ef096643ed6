//! Forwarding records to the `tracing` crate as `TRACE` events.
//!
//! Each kind has its own target, `tracepoints::<kind name>`
//! (`tracepoints::grant`, `tracepoints::port_check`, `tracepoints::vm_exit`,
//! `tracepoints::lost_records`, ...), so `RUST_LOG` can pick kinds:
//!
//! ```text
//! RUST_LOG=tracepoints=trace                 # everything
//! RUST_LOG=tracepoints::map=trace,tracepoints::bind=trace
//! ```
//!
//! Fields: `domain`, `space`, `first`, `last`, `mode`, `outcome`, `width`,
//! `forced`, `duration_ns` (0 for instants), `thread`, `extra`, `value`,
//! `tsc`; `first`, `last` and `value` (ports, frames, data) in hex. The
//! event message is the kind name.
//!
//! To see events as they happen, interleaved with what a tool prints for
//! each operation, drain and [`forward`] after every operation (as
//! `cargo xtask replay` and `scenario` do) rather than once at the end.
//!
//! Two ways in: [`forward`] replays drained records (after a
//! [`crate::Collector`] drain), or [`install_live`] makes every emitted
//! record a `tracing` event immediately, with no rings (simple, but each
//! event then costs what the subscriber costs). A binary that has no
//! subscriber yet calls [`install_fmt_subscriber`].

use ::tracing::{event, Level};

use crate::clock::Calibration;
use crate::record::with_kind_table;
use crate::{Kind, Record};

/// Shows a number as `0x…` in a `tracing` field.
struct Hex(u64);

impl core::fmt::Display for Hex {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// One `event!` per kind, each with its own static target
/// `tracepoints::<kind name>`, from the kind table
/// ([`crate::record::with_kind_table`]).
macro_rules! per_kind {
    ($r:ident, $cal:ident, $($(#[$doc:meta])* $kind:ident = $raw:literal, $name:literal, $layer:literal;)*) => {
        match $r.kind {
            $(Kind::$kind => event!(
                target: concat!("tracepoints::", $name),
                Level::TRACE,
                domain = $r.domain,
                space = $r.space.name(),
                first = %Hex($r.first),
                last = %Hex($r.last),
                mode = $r.mode.name(),
                outcome = $r.outcome.name(),
                width = $r.width,
                forced = $r.is_forced(),
                duration_ns = $cal.ticks_to_ns($r.duration),
                thread = $r.thread,
                extra = $r.extra,
                value = %Hex($r.value),
                tsc = $r.tsc,
                "{}",
                $r.kind.name()
            ),)*
        }
    };
}

/// Emits one `tracing` event for `record`; durations are converted with
/// `cal`.
pub fn forward_one(record: &Record, cal: &Calibration) {
    with_kind_table!(per_kind, record, cal);
}

/// Emits one `tracing` event per record, in slice order.
pub fn forward(records: &[Record], cal: &Calibration) {
    for r in records {
        forward_one(r, cal);
    }
}

fn live_sink(record: &Record) {
    forward_one(record, &Calibration::global());
}

/// Registers a sink that turns every emitted record into a `tracing` event
/// at once, instead of the rings (replaces the current sink; calibrates the
/// clock now so the first event is not delayed). Does not switch tracing on.
pub fn install_live() {
    let _ = Calibration::global();
    crate::set_sink(live_sink);
}

/// Installs a global `tracing-subscriber` formatter filtered by `RUST_LOG`
/// (so `RUST_LOG=tracepoints=trace` prints every event). It writes to
/// **stderr**, so a tool whose stdout is its result (`cargo xtask replay`)
/// keeps that output clean, with colours only when stderr is a terminal.
/// Fails if the process already has a global subscriber.
pub fn install_fmt_subscriber() -> Result<(), Box<dyn std::error::Error + Send + Sync + 'static>> {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init()
}
