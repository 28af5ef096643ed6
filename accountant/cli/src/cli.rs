//! The command line: `ioacct check` and `ioacct capture`.
//!
//! Exit status: 0 clean; 1 findings (warnings only with `--werror`); 2 a
//! usage error or an input that could not be read (a guest file, the host
//! map, a policy file), named with its line where there is one.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::guest::{self, Guest};
use crate::host::{capture, HostMap, HvReserve};
use crate::judge::{self, Input};
use crate::report::{self, Summary};
use crate::rules::Severity;
use crate::share::Shares;

/// Exit status: no findings.
pub const EXIT_CLEAN: i32 = 0;
/// Exit status: findings.
pub const EXIT_FINDINGS: i32 = 1;
/// Exit status: usage error or unreadable input.
pub const EXIT_USAGE: i32 = 2;

/// ioacct: guest configurations against a host's resource map, judged by the accountant.
#[derive(Debug, Parser)]
#[command(name = "ioacct", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check guest configurations (xl.cfg, libvirt domain XML) against the host.
    Check(CheckArgs),
    /// Write a snapshot of the live host's map into DIR (new or empty), to check elsewhere with --host DIR.
    Capture {
        /// The snapshot directory.
        dir: PathBuf,
    },
}

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// As a compiler prints diagnostics.
    Text,
    /// JSON (spec/check-output.schema.json).
    Json,
    /// SARIF 2.1.0.
    Sarif,
}

/// `ioacct check` options.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Guest configuration files: one domain each (xl.cfg, or libvirt XML when it starts with `<`).
    pub configs: Vec<PathBuf>,
    /// Read the host map from a snapshot directory (same relative paths as /proc and /sys) instead of the live host.
    #[arg(long, value_name = "DIR", conflicts_with = "no_host")]
    pub host: Option<PathBuf>,
    /// Compare the configurations with each other alone (no host map, no hypervisor reservations).
    #[arg(long)]
    pub no_host: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    /// Write the trace the accountant ran (SPEC section 3, with each op's output as a `#=>` comment).
    #[arg(long, value_name = "FILE")]
    pub emit_trace: Option<PathBuf>,
    /// Warnings fail the check too (exit 1).
    #[arg(long)]
    pub werror: bool,
    /// Declare a resource shared: SPACE:RANGE, e.g. irq:16, ioport:0x2f8-0x2ff, iomem:0xfe000-0xfe00f, pci:01:00.0 (repeatable).
    #[arg(long, value_name = "SPACE:RANGE")]
    pub share: Vec<String>,
    /// Read sharing declarations from a policy file (`share SPACE RANGE` per line).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// What the hypervisor keeps: `default`, `none`, or a list of lapic,ioapic,hpet,pic,pit,elcr,pci-conf,console[=PORT].
    #[arg(long, value_name = "LIST", default_value = "default")]
    pub hv_reserve: String,
    /// Also print the accountant's answer behind each finding.
    #[arg(long, short)]
    pub verbose: bool,
}

/// Runs the command line `args` (program name first); returns the exit status.
pub fn run<I, T>(args: I, out: &mut dyn Write, err: &mut dyn Write) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                EXIT_USAGE
            } else {
                EXIT_CLEAN
            };
            let text = e.render().to_string();
            let _ = if e.use_stderr() {
                err.write_all(text.as_bytes())
            } else {
                out.write_all(text.as_bytes())
            };
            return code;
        }
    };
    match cli.command {
        Command::Capture { dir } => match capture(&dir) {
            Ok(s) => {
                let _ = writeln!(
                    out,
                    "ioacct capture: {} files, {} PCI functions written to {}",
                    s.files,
                    s.devices,
                    dir.display()
                );
                for g in &s.gaps {
                    let _ = writeln!(out, "note: {}: {}", g.path.display(), g.why);
                }
                EXIT_CLEAN
            }
            Err(e) => {
                let _ = writeln!(err, "ioacct capture: error: {e}");
                EXIT_USAGE
            }
        },
        Command::Check(a) => check(&a, out, err),
    }
}

fn usage(err: &mut dyn Write, msg: impl std::fmt::Display) -> i32 {
    let _ = writeln!(err, "ioacct check: error: {msg}");
    EXIT_USAGE
}

/// `ioacct check`.
pub fn check(a: &CheckArgs, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let hv = match HvReserve::parse(&a.hv_reserve) {
        Ok(h) => h,
        Err(e) => return usage(err, format_args!("--hv-reserve: {e}")),
    };
    let mut shares = Shares::default();
    for s in &a.share {
        if let Err(e) = shares.declare_arg(s) {
            return usage(err, e);
        }
    }
    if let Some(p) = &a.policy {
        if let Err(e) = shares.read_policy(p) {
            return usage(err, e);
        }
    }
    let mut guests: Vec<Guest> = Vec::with_capacity(a.configs.len());
    for c in &a.configs {
        match guest::load(c) {
            Ok(g) => guests.push(g),
            Err(e) => return usage(err, e),
        }
    }
    let host = if a.no_host {
        None
    } else {
        let read = match &a.host {
            Some(dir) => HostMap::read_dir(dir),
            None => HostMap::read_live(),
        };
        match read {
            Ok(h) => Some(h),
            Err(e) => return usage(err, format_args!("the host map: {e}")),
        }
    };
    // Declared-shared PCI functions share their resources too.
    if let Some(h) = &host {
        for b in shares.pci.clone() {
            if let Some(r) = h.function_resources(&b) {
                for (f, l) in r.frames {
                    shares.ranges.push((accountant::Space::IoMem, f, l));
                }
                for (f, l) in r.ports {
                    shares.ranges.push((accountant::Space::IoPort, f, l));
                }
                if let Some(n) = r.line {
                    shares
                        .ranges
                        .push((accountant::Space::Irq, u64::from(n), u64::from(n)));
                }
            }
        }
    }
    let outcome = match judge::check(Input {
        guests: &guests,
        host: host.as_ref(),
        hv: &hv,
        shares: &shares,
        keep_trace: a.emit_trace.is_some(),
    }) {
        Ok(o) => o,
        Err(e) => return usage(err, e),
    };
    if let Some(path) = &a.emit_trace {
        if let Err(e) = std::fs::write(path, outcome.trace_text()) {
            return usage(err, format_args!("--emit-trace {}: {e}", path.display()));
        }
    }
    let summary = Summary::of(&outcome.findings, guests.len(), outcome.ops);
    let text = match a.format {
        OutputFormat::Text => report::text(&outcome.findings, &guests, &summary, a.verbose),
        OutputFormat::Json => report::json(&outcome.findings, &summary),
        OutputFormat::Sarif => report::sarif(&outcome.findings),
    };
    if out.write_all(text.as_bytes()).is_err() {
        return EXIT_USAGE;
    }
    let failing = outcome
        .findings
        .iter()
        .any(|f| f.rule.severity() == Severity::Error || a.werror);
    if failing {
        EXIT_FINDINGS
    } else {
        EXIT_CLEAN
    }
}
