//! Deciding via the accountant: every op the judge writes runs through
//! [`accountant::ops::execute`]; its output line is the verdict. A refused
//! grant is split around the refused unit and asked again, and the table of
//! granted entries tells whose entry a refused unit falls in.

use accountant::ops::parse_op;
use accountant::{Mode, Space};

use super::units::range_text;
use super::{Entry, Judge, Origin, Owner, TraceLine, MAX_OPS_PER_REQUEST};

/// One refused piece: the accountant's code, the units it covers, the
/// other owner's origin, the op and its answer.
#[derive(Clone, Debug)]
pub(super) struct Refusal {
    pub(super) code: String,
    pub(super) first: u64,
    pub(super) last: u64,
    pub(super) other: Option<usize>,
    pub(super) op: String,
    pub(super) output: String,
}

/// A parsed `err CODE at 0xU (held|used|drained) by dN` line.
struct Answer {
    code: String,
    unit: Option<u64>,
    dom: Option<u32>,
    hypervisor: bool,
}

fn answer(line: &str) -> Option<Answer> {
    let mut w = line.split_whitespace();
    if w.next() != Some("err") {
        return None;
    }
    let code = w.next().unwrap_or("").to_string();
    let rest: Vec<&str> = w.collect();
    let unit = rest
        .iter()
        .position(|&t| t == "at")
        .and_then(|i| rest.get(i + 1))
        .and_then(|t| t.strip_prefix("0x"))
        .and_then(|h| u64::from_str_radix(h, 16).ok());
    let by = rest
        .iter()
        .position(|&t| t == "by")
        .and_then(|i| rest.get(i + 1));
    let dom = by
        .and_then(|t| t.strip_prefix('d'))
        .and_then(|n| n.parse().ok());
    let hypervisor = by == Some(&"the");
    Some(Answer {
        code,
        unit,
        dom,
        hypervisor,
    })
}

#[derive(Clone, Copy)]
pub(super) enum Kind {
    Reserve,
    Grant(Mode),
    Map,
    Bind,
}
impl Judge<'_> {
    /// Runs one op; `origin` (or `text` without one) says why, for the kept trace.
    pub(super) fn run_op(&mut self, op: &str, origin: Option<usize>, text: &str) -> String {
        let output = match parse_op(op) {
            Ok(parsed) => self.acct.execute(&parsed),
            // The judge writes every op itself: a parse failure is a bug, reported as the op's answer.
            Err(e) => format!("err bad-op {e}"),
        };
        self.ops += 1;
        if self.input.keep_trace {
            self.trace.push(TraceLine {
                op: op.to_string(),
                output: output.clone(),
                why: origin.map_or_else(|| text.to_string(), |o| self.why_of(o)),
            });
        }
        output
    }

    pub(super) fn origin(&mut self, o: Origin) -> usize {
        self.origins.push(o);
        self.origins.len() - 1
    }

    fn why_of(&self, origin: usize) -> String {
        let o = &self.origins[origin];
        match &o.span {
            Some(s) => format!("{s} {}", o.what),
            None => o.what.clone(),
        }
    }

    /// The entry of `owner` in `space` covering `unit`.
    pub(super) fn lookup(&mut self, space: Space, owner: Owner, unit: u64) -> Option<Entry> {
        if owner == Owner::Ram {
            let i = self
                .ram
                .partition_point(|&(a, _)| a <= unit)
                .checked_sub(1)?;
            let (a, b) = self.ram[i];
            if unit > b {
                return None;
            }
            let origin = match self.ram_origin.get(&i) {
                Some(&o) => o,
                None => {
                    // The map's own RAM entry covering the frame, else its deepest name.
                    let addr = unit.saturating_mul(4096);
                    let ram_entry = self.input.host.and_then(|h| {
                        h.iomem.iter().flatten().find(|r| {
                            r.name == "System RAM" && r.start <= addr | 0xfff && addr <= r.end
                        })
                    });
                    let (name, span) = match ram_entry {
                        Some(r) => (r.name.clone(), Some(r.span.clone())),
                        None => self
                            .input
                            .host
                            .and_then(|h| h.name_of(Space::IoMem, unit))
                            .unwrap_or_else(|| ("System RAM".to_string(), None)),
                    };
                    let o = self.origin(Origin {
                        owner: Owner::Ram,
                        span,
                        what: name,
                        device: None,
                        intx: false,
                    });
                    self.ram_origin.insert(i, o);
                    o
                }
            };
            return Some(Entry {
                first: a,
                last: b,
                origin,
            });
        }
        let entries = self.table.get(&(space, owner))?;
        if let Some(maxes) = self.sorted.get(&(space, owner)) {
            let mut i = entries.partition_point(|e| e.first <= unit);
            while i > 0 {
                i -= 1;
                if maxes[i] < unit {
                    return None;
                }
                if entries[i].last >= unit {
                    return Some(entries[i]);
                }
            }
            return None;
        }
        entries
            .iter()
            .rev()
            .find(|e| e.first <= unit && unit <= e.last)
            .copied()
    }

    /// Sorts `owner`'s entries for stabbing queries (after they stop changing).
    pub(super) fn seal(&mut self, owner: Owner) {
        for space in Space::ALL {
            if let Some(v) = self.table.get_mut(&(space, owner)) {
                v.sort_by_key(|e| e.first);
                let mut m = 0;
                let maxes = v
                    .iter()
                    .map(|e| {
                        m = m.max(e.last);
                        m
                    })
                    .collect();
                self.sorted.insert((space, owner), maxes);
            }
        }
    }

    fn holder(&self, dom: u32, kind: Kind) -> Owner {
        match kind {
            Kind::Reserve => Owner::Hv,
            _ if dom == 0 => Owner::Dom0,
            _ => Owner::Guest(dom as usize),
        }
    }

    /// Applies one op kind to `first..=last`, splitting around refusals.
    pub(super) fn apply(
        &mut self,
        kind: Kind,
        dom: u32,
        space: Space,
        first: u64,
        last: u64,
        origin: usize,
    ) -> Vec<Refusal> {
        let holder = self.holder(dom, kind);
        let mut refused = Vec::new();
        let mut work = vec![(first, last)];
        let mut ops = 0;
        while let Some((lo, hi)) = work.pop() {
            ops += 1;
            if ops > MAX_OPS_PER_REQUEST {
                break;
            }
            let r = range_text(lo, hi);
            let op = match kind {
                Kind::Reserve => format!("reserve {space} {r}"),
                Kind::Grant(m) => format!("grant {dom} {space} {r} {}", m.name()),
                Kind::Map => format!("map {dom} iomem {r}"),
                Kind::Bind => format!("bind {dom} irq {r}"),
            };
            let out = self.run_op(&op, Some(origin), "");
            let Some(a) = answer(&out) else {
                self.table.entry((space, holder)).or_default().push(Entry {
                    first: lo,
                    last: hi,
                    origin,
                });
                continue;
            };
            let Some(u) = a.unit.filter(|u| (lo..=hi).contains(u)) else {
                // No unit to split at (out-of-range, bad-range): the whole piece is refused.
                refused.push(Refusal {
                    code: a.code,
                    first: lo,
                    last: hi,
                    other: None,
                    op,
                    output: out,
                });
                continue;
            };
            let other_owner = match (a.code.as_str(), a.dom) {
                ("reserved", _) => Some(Owner::Hv),
                ("not-io-memory", _) => Some(Owner::Ram),
                (_, Some(0)) => Some(Owner::Dom0),
                (_, Some(d)) => Some(Owner::Guest(d as usize)),
                (_, None) if a.hypervisor => Some(Owner::Hv),
                _ => None,
            };
            let other = other_owner.and_then(|o| self.lookup(space, o, u));
            let end = other.map_or(u, |e| e.last.min(hi));
            refused.push(Refusal {
                code: a.code,
                first: u,
                last: end,
                other: other.map(|e| e.origin),
                op,
                output: out,
            });
            if let Some(after) = end.checked_add(1).filter(|&n| n <= hi) {
                work.push((after, hi));
            }
            if u > lo {
                work.push((lo, u - 1));
            }
        }
        refused
    }
}
