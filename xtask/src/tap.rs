//! Tracepoints for the tasks that run operations (`replay`, `scenario`):
//! with `--trace OUT.json` the records are kept and written as Chrome trace
//! JSON (Perfetto); with `RUST_LOG` set they are printed on stderr through
//! `tracing`, drained after every operation so that each op's events appear
//! next to its result line.
use std::io::Write;
use std::path::{Path, PathBuf};

use tracepoints::sinks::chrome::{self, Options, Run};
use tracepoints::{Collector, Record};

/// A running tap: the collector, and the records drained so far, per run.
pub struct Tap {
    collector: Collector,
    log: bool,
    out: Option<PathBuf>,
    runs: Vec<(Option<String>, Vec<Record>)>,
}

/// The hypervisor's name for hypercall `n` (its ABI, `hv::hypercall::op`).
fn hypercall_name(n: u64) -> Option<&'static str> {
    use hv::hypercall::op;
    Some(match n {
        op::MAP_IOMEM => "MAP_IOMEM",
        op::UNMAP_IOMEM => "UNMAP_IOMEM",
        op::BIND_IRQ => "BIND_IRQ",
        op::UNBIND_IRQ => "UNBIND_IRQ",
        op::QUERY => "QUERY",
        op::BLOCK => "BLOCK",
        op::DOMID => "DOMID",
        _ => return None,
    })
}

impl Tap {
    /// Starts recording when `out` is given or `RUST_LOG` is set; `None`
    /// (tracepoints stay off) otherwise. `task` prefixes messages.
    pub fn start(out: Option<&Path>, task: &str) -> Option<Tap> {
        let log = std::env::var_os("RUST_LOG").is_some();
        if out.is_none() && !log {
            return None;
        }
        if log {
            if let Err(e) = tracepoints::sinks::tracing::install_fmt_subscriber() {
                eprintln!("{task}: RUST_LOG: {e}");
            }
        }
        let collector = Collector::install();
        // Allocate this thread's ring now: made on the first record, it
        // would put a gap of milliseconds after that record.
        let _ = collector.current_thread();
        tracepoints::enable();
        Some(Tap {
            collector,
            log,
            out: out.map(Path::to_path_buf),
            runs: vec![(None, Vec::new())],
        })
    }

    /// Whether events are printed as they happen (stdout should then be
    /// flushed after each result line).
    pub fn logs(&self) -> bool {
        self.log
    }

    /// Drains what every thread recorded since the last call: prints it
    /// (with `RUST_LOG`) and keeps it (with `--trace`).
    pub fn pump(&mut self) {
        let records = self.collector.drain_sorted();
        if records.is_empty() {
            return;
        }
        if self.log {
            let _ = std::io::stdout().flush();
            tracepoints::sinks::tracing::forward(&records, self.collector.calibration());
        }
        if self.out.is_some() {
            if let Some((_, v)) = self.runs.last_mut() {
                v.extend(records);
            }
        }
    }

    /// Starts a new run, named `label` in the trace (`d1 · accounting on`),
    /// when one file holds several (drains the current one first).
    pub fn next_run(&mut self, label: &str) {
        self.pump();
        match self.runs.last_mut() {
            Some((l, v)) if v.is_empty() => *l = Some(label.to_string()),
            _ => self.runs.push((Some(label.to_string()), Vec::new())),
        }
    }

    /// Stops recording and writes the trace file, if one was asked for; a
    /// message on failure.
    pub fn finish(mut self, task: &str) -> Result<(), String> {
        self.pump();
        tracepoints::disable();
        let Some(path) = &self.out else {
            return Ok(());
        };
        let runs: Vec<Run<'_>> = self
            .runs
            .iter()
            .map(|(l, v)| Run {
                records: v,
                label: l.as_deref(),
            })
            .collect();
        let opts = Options {
            hypercall_name: Some(hypercall_name),
            thread_name: None,
        };
        let n: usize = self.runs.iter().map(|(_, v)| v.len()).sum();
        std::fs::File::create(path)
            .map_err(|e| e.to_string())
            .and_then(|f| {
                chrome::export_runs(&runs, self.collector.calibration(), opts, f)
                    .map_err(|e| e.to_string())
            })
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let st = self.collector.stats();
        let lost = st.lost_ring_full + st.lost_no_ring + st.lost_no_sink;
        eprintln!(
            "{task}: {n} events written to {} ({lost} lost); open it in https://ui.perfetto.dev",
            path.display()
        );
        Ok(())
    }
}
