//! Output: as a compiler prints it (text, rendered by codespan-reporting),
//! a documented JSON (`spec/check-output.schema.json`), or SARIF 2.1.0.
//!
//! Text: one `FILE:LINE:COL: error[CODE]: MESSAGE` line per finding, a
//! `note:` line at the other owner's file and line, the accountant's answer
//! as a note, and a summary line last.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use codespan_reporting::diagnostic::{Diagnostic, Label, Severity as CsSeverity};
use codespan_reporting::files::SimpleFiles;
use codespan_reporting::term::{self, Config, DisplayStyle};
use serde::Serialize;
use serde_sarif::sarif;

use crate::finding::Finding;
use crate::guest::{read_capped, Guest, LineIndex};
use crate::rules::{Rule, Severity};
use crate::span::Span;

/// Largest host-map file quoted in diagnostics.
const MAX_QUOTED_BYTES: u64 = 16 << 20;

/// The counts of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Findings of error severity.
    pub errors: usize,
    /// Findings of warning severity.
    pub warnings: usize,
    /// Guest files checked.
    pub guests: usize,
    /// Ops in the judge's trace.
    pub trace_ops: usize,
}

impl Summary {
    /// Counts `findings`.
    pub fn of(findings: &[Finding], guests: usize, trace_ops: usize) -> Summary {
        let errors = findings
            .iter()
            .filter(|f| f.rule.severity() == Severity::Error)
            .count();
        Summary {
            errors,
            warnings: findings.len() - errors,
            guests,
            trace_ops,
        }
    }

    /// The summary line.
    pub fn line(&self) -> String {
        let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
        format!(
            "ioacct check: {}, {} in {} (the accountant answered {})",
            plural(self.errors, "error"),
            plural(self.warnings, "warning"),
            plural(self.guests, "guest file"),
            plural(self.trace_ops, "op"),
        )
    }
}

/// Source texts for diagnostics: the guests' files, and host-map files read on demand.
struct Sources {
    files: SimpleFiles<String, String>,
    ids: HashMap<PathBuf, Option<usize>>,
}

impl Sources {
    fn new(guests: &[Guest]) -> Sources {
        let mut s = Sources {
            files: SimpleFiles::new(),
            ids: HashMap::new(),
        };
        for g in guests {
            let id = s.files.add(g.file.display().to_string(), g.source.clone());
            s.ids.insert(g.file.to_path_buf(), Some(id));
        }
        s
    }

    fn id(&mut self, path: &Path) -> Option<usize> {
        if let Some(id) = self.ids.get(path) {
            return *id;
        }
        let text = read_capped(path, MAX_QUOTED_BYTES)
            .ok()
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        let id = text.map(|t| self.files.add(path.display().to_string(), t));
        self.ids.insert(path.to_path_buf(), id);
        id
    }

    /// A label range for `span`: the token there (a quoted string whole).
    fn label(&mut self, span: &Span) -> Option<(usize, std::ops::Range<usize>)> {
        let id = self.id(&span.file)?;
        let src = self.files.get(id).ok()?.source();
        let lines = LineIndex::new(src);
        let start_of_line = lines.offset_of_line(span.line)?;
        let line_text = src.get(start_of_line..)?.split('\n').next()?;
        let col = span.col.max(1) as usize - 1;
        let rel = line_text
            .char_indices()
            .nth(col)
            .map_or(line_text.len(), |(i, _)| i);
        let rest = line_text.get(rel..)?;
        let len = match rest.chars().next() {
            Some(q @ ('"' | '\'')) => rest.get(1..)?.find(q).map_or(rest.len(), |i| i + 2),
            Some(_) if span.col == 0 => rest.len(),
            Some('<') => rest.find('>').map_or(rest.len(), |i| i + 1),
            Some(_) => rest
                .find(|c: char| c.is_whitespace() || c == ',' || c == ']')
                .unwrap_or(rest.len()),
            None => 0,
        };
        let a = start_of_line + rel;
        Some((id, a..a + len.max(1).min(rest.len().max(1))))
    }
}

fn cs_severity(r: Rule) -> CsSeverity {
    match r.severity() {
        Severity::Error => CsSeverity::Error,
        Severity::Warning => CsSeverity::Warning,
    }
}

/// Renders findings as a compiler does, then the summary line.
pub fn text(findings: &[Finding], guests: &[Guest], summary: &Summary, verbose: bool) -> String {
    let mut sources = Sources::new(guests);
    let config = Config {
        display_style: DisplayStyle::Short,
        ..Config::default()
    };
    let mut out = String::new();
    for f in findings {
        let mut diags = Vec::new();
        let mut d = Diagnostic::new(cs_severity(f.rule))
            .with_code(f.rule.code())
            .with_message(&f.message);
        let mut unplaced = Vec::new();
        match f.primary.as_ref().map(|s| (s, sources.label(s))) {
            Some((_, Some((id, r)))) => {
                d = d.with_labels(vec![Label::primary(id, r).with_message(&f.label)])
            }
            Some((s, None)) => unplaced.push(format!("at {s}")),
            None => {}
        }
        diags.push(d);
        for n in &f.notes {
            let mut nd = Diagnostic::note().with_message(&n.message);
            match n.span.as_ref().map(|s| (s, sources.label(s))) {
                Some((_, Some((id, r)))) => nd = nd.with_labels(vec![Label::primary(id, r)]),
                Some((s, None)) => nd = nd.with_message(format!("{s}: {}", n.message)),
                None => {}
            }
            diags.push(nd);
        }
        for u in unplaced {
            diags.push(Diagnostic::note().with_message(u));
        }
        if verbose {
            if let Some(v) = &f.verdict {
                diags.push(Diagnostic::note().with_message(format!("the accountant: {v}")));
            }
        }
        for d in diags {
            match term::emit_into_string(&config, &sources.files, &d) {
                Ok(s) => out.push_str(&s),
                Err(e) => out.push_str(&format!("{}: (could not render: {e})\n", f.message)),
            }
        }
    }
    out.push_str(&summary.line());
    out.push('\n');
    out
}

/// A place in JSON output.
#[derive(Serialize)]
struct JsonLocation {
    file: String,
    line: u32,
    column: u32,
}

#[derive(Serialize)]
struct JsonNote {
    location: Option<JsonLocation>,
    message: String,
}

#[derive(Serialize)]
struct JsonResource {
    space: String,
    first: u64,
    last: u64,
    host_name: Option<String>,
}

#[derive(Serialize)]
struct JsonFinding {
    code: &'static str,
    rule: &'static str,
    severity: Severity,
    message: String,
    location: Option<JsonLocation>,
    label: String,
    notes: Vec<JsonNote>,
    resource: Option<JsonResource>,
    verdict: Option<String>,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    format: &'static str,
    version: u32,
    summary: &'a Summary,
    findings: Vec<JsonFinding>,
}

fn loc(s: &Span) -> JsonLocation {
    JsonLocation {
        file: s.file.display().to_string(),
        line: s.line,
        column: s.col,
    }
}

/// The JSON report (schema: `spec/check-output.schema.json`).
pub fn json(findings: &[Finding], summary: &Summary) -> String {
    let report = JsonReport {
        format: "ioacct-check",
        version: 1,
        summary,
        findings: findings
            .iter()
            .map(|f| JsonFinding {
                code: f.rule.code(),
                rule: f.rule.name(),
                severity: f.rule.severity(),
                message: f.message.clone(),
                location: f.primary.as_ref().map(loc),
                label: f.label.clone(),
                notes: f
                    .notes
                    .iter()
                    .map(|n| JsonNote {
                        location: n.span.as_ref().map(loc),
                        message: n.message.clone(),
                    })
                    .collect(),
                resource: f.resource.as_ref().map(|r| JsonResource {
                    space: r.space.name().to_string(),
                    first: r.first,
                    last: r.last,
                    host_name: r.host_name.clone(),
                }),
                verdict: f.verdict.clone(),
            })
            .collect(),
    };
    let mut s =
        serde_json::to_string_pretty(&report).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    s.push('\n');
    s
}

fn sarif_location(s: &Span, message: Option<&str>) -> sarif::Location {
    let uri = s.file.display().to_string().replace('\\', "/");
    let region = if s.col == 0 {
        sarif::Region::builder()
            .start_line(i64::from(s.line))
            .build()
    } else {
        sarif::Region::builder()
            .start_line(i64::from(s.line))
            .start_column(i64::from(s.col))
            .build()
    };
    let phys = sarif::PhysicalLocation::builder()
        .artifact_location(sarif::ArtifactLocation::builder().uri(uri).build())
        .region(region)
        .build();
    match message {
        Some(m) => sarif::Location::builder()
            .physical_location(phys)
            .message(sarif::Message::builder().text(m).build())
            .build(),
        None => sarif::Location::builder().physical_location(phys).build(),
    }
}

/// The SARIF 2.1.0 log.
pub fn sarif(findings: &[Finding]) -> String {
    let rules: Vec<sarif::ReportingDescriptor> = Rule::ALL
        .iter()
        .map(|r| {
            sarif::ReportingDescriptor::builder()
                .id(r.code())
                .name(r.name())
                .short_description(
                    sarif::MultiformatMessageString::builder()
                        .text(r.summary())
                        .build(),
                )
                .build()
        })
        .collect();
    let results: Vec<sarif::Result> = findings
        .iter()
        .map(|f| {
            let level = match f.rule.severity() {
                Severity::Error => sarif::ResultLevel::Error,
                Severity::Warning => sarif::ResultLevel::Warning,
            };
            let rule_index = Rule::ALL.iter().position(|r| *r == f.rule).unwrap_or(0);
            let related: Vec<sarif::Location> = f
                .notes
                .iter()
                .filter_map(|n| n.span.as_ref().map(|s| sarif_location(s, Some(&n.message))))
                .collect();
            let b = sarif::Result::builder()
                .rule_id(f.rule.code())
                .rule_index(rule_index as i64)
                .level(level)
                .message(sarif::Message::builder().text(f.message.clone()).build());
            match (&f.primary, related.is_empty()) {
                (Some(p), false) => b
                    .locations(vec![sarif_location(p, None)])
                    .related_locations(related)
                    .build(),
                (Some(p), true) => b.locations(vec![sarif_location(p, None)]).build(),
                (None, false) => b.related_locations(related).build(),
                (None, true) => b.build(),
            }
        })
        .collect();
    let driver = sarif::ToolComponent::builder()
        .name("ioacct")
        .version(env!("CARGO_PKG_VERSION"))
        .rules(rules)
        .build();
    let run = sarif::Run::builder()
        .tool(sarif::Tool::builder().driver(driver).build())
        .results(results)
        .build();
    let log = sarif::Sarif::builder()
        .schema("https://json.schemastore.org/sarif-2.1.0.json")
        .version(serde_json::json!("2.1.0"))
        .runs(vec![run])
        .build();
    let mut s =
        serde_json::to_string_pretty(&log).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    s.push('\n');
    s
}
