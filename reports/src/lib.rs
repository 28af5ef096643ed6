//! reports: the results schema, host metadata, the regression gate and the
//! self-contained HTML report of `cargo xtask bench`.
//!
//! Data flows one way (STYLE 3): the bench harness writes [`Results`]
//! (`results.json`); [`html::report`] turns results (and optionally a
//! baseline) into one HTML file through a serializable [`html::Context`];
//! [`gate::compare`] judges results against a baseline with
//! [`stats`]. Nothing here measures anything.
#![deny(missing_docs)]

pub mod charts;
pub mod format;
pub mod gate;
pub mod goals;
pub mod host;
pub mod html;
pub mod names;
pub mod schema;
pub mod stats;

pub use names::{Key, MetricName, Unit};
pub use schema::{
    CounterStatus, Host, LoadError, Metric, NotMeasured, Param, Percentiles, Placement, Reference,
    Results, RunInfo, SCHEMA,
};
