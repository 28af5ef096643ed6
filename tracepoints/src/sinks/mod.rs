//! Consumers of drained records: `tracing` events, Chrome trace JSON for
//! Perfetto, and per-kind latency histograms.

pub mod chrome;
pub mod histogram;
pub mod tracing;
