//! A finding: a rule, where it applies, and the other owner.

use accountant::Space;

use crate::rules::Rule;
use crate::span::Span;

/// A secondary place: the other owner, or the host map's entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// Where, when it is in a file.
    pub span: Option<Span>,
    /// What is there ("first granted here", "the host's `serial`").
    pub message: String,
}

/// The resource a finding is about, in accountant units.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resource {
    /// The space.
    pub space: Space,
    /// First unit.
    pub first: u64,
    /// Last unit, inclusive.
    pub last: u64,
    /// The host's own name for it (`serial`, `0000:00:19.0 e1000e`), where known.
    pub host_name: Option<String>,
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The rule.
    pub rule: Rule,
    /// The one-line message.
    pub message: String,
    /// Where the finding is (the request that was refused); `None` for a
    /// finding about the host as a whole.
    pub primary: Option<Span>,
    /// The label at the primary place.
    pub label: String,
    /// Other places.
    pub notes: Vec<Note>,
    /// The resource, where there is one.
    pub resource: Option<Resource>,
    /// The accountant's answer behind the finding (`grant 2 ioport 0x3f8-0x3ff
    /// exclusive` → `err conflict at 0x3f8 held by d1`), if the accountant gave it.
    pub verdict: Option<String>,
}
