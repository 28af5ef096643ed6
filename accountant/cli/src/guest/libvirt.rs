//! libvirt domain XML (`<domain>`), read with roxmltree.
//!
//! The host resources a domain names are its PCI functions:
//!
//! * `<devices><hostdev mode='subsystem' type='pci'>` (mode `subsystem` is
//!   libvirt's default) and its `<source><address domain= bus= slot=
//!   function=/>`;
//! * `<devices><interface type='hostdev'>` (an SR-IOV virtual function
//!   given to the guest as its NIC) and its `<source><address type='pci' …/>`.
//!
//! An `<address>` directly under `<hostdev>` is where the *guest* sees the
//! device, not a host resource; USB, SCSI and mediated (`mdev`) host
//! devices are not in the accountant's spaces; emulated devices
//! (`<serial type='pty'>`, `<controller>`) are the guest's own. None of these
//! is a request.
//!
//! Attribute numbers are read as libvirt reads them (`virStrToLong_*` with
//! base 0): `0x…` is hex, a leading `0` octal, else decimal; `domain`
//! defaults to 0.
//!
//! **Hostile input.** DTDs are refused (roxmltree's `allow_dtd = false`), so
//! no entity is ever expanded; the document is limited to
//! [`MAX_NODES`] nodes and [`super::MAX_CONFIG_BYTES`] bytes; roxmltree
//! parses without recursion.

use std::path::PathBuf;
use std::sync::Arc;

use roxmltree::{Document, Node, ParsingOptions};

use super::{Format, Functions, Guest, GuestError, LineIndex, Request, Want};
use crate::pci::Bdf;
use crate::span::Span;

/// Most XML nodes accepted in one domain file (a real one has a few hundred).
pub const MAX_NODES: u32 = 200_000;

/// `strtoul(s, 0)`: `0x` hex, leading `0` octal, else decimal; whole word.
fn number(s: &str) -> Option<u64> {
    let s = s.trim();
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()
    } else if s.len() > 1 && s.starts_with('0') {
        u64::from_str_radix(s.get(1..)?, 8).ok()
    } else {
        s.parse().ok()
    }
}

fn child<'a, 'i>(n: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    n.children().find(|c| c.has_tag_name(name))
}

/// Parses a libvirt domain XML text into a guest's requests.
pub fn parse(file: Arc<PathBuf>, text: String) -> Result<Guest, GuestError> {
    let lines = LineIndex::new(&text);
    let span = |at: usize| {
        let (l, c) = lines.line_col(at);
        Span::new(file.clone(), l, c)
    };
    let opts = ParsingOptions {
        allow_dtd: false,
        nodes_limit: MAX_NODES,
        ..ParsingOptions::default()
    };
    let doc = Document::parse_with_options(&text, opts).map_err(|e| {
        let p = e.pos();
        GuestError::Syntax {
            span: Span::new(file.clone(), p.row, p.col),
            why: format!("invalid XML: {e}"),
        }
    })?;
    let root = doc.root_element();
    if !root.has_tag_name("domain") {
        return Err(GuestError::Syntax {
            span: span(root.range().start),
            why: format!(
                "not a libvirt domain: the root element is <{}>, not <domain>",
                root.tag_name().name().escape_default()
            ),
        });
    }
    let name = child(root, "name")
        .and_then(|n| n.text())
        .map(|t| t.trim().to_string());
    let mut requests = Vec::new();
    for devices in root.children().filter(|n| n.has_tag_name("devices")) {
        for dev in devices.children().filter(|n| n.is_element()) {
            let pci = match dev.tag_name().name() {
                "hostdev" => {
                    dev.attribute("mode").unwrap_or("subsystem") == "subsystem"
                        && dev.attribute("type") == Some("pci")
                }
                "interface" => dev.attribute("type") == Some("hostdev"),
                _ => false,
            };
            if !pci {
                continue;
            }
            let Some(addr) = child(dev, "source").and_then(|s| child(s, "address")) else {
                return Err(GuestError::Syntax {
                    span: span(dev.range().start),
                    why: format!("<{}> without <source><address …/>", dev.tag_name().name()),
                });
            };
            if addr.attribute("type").is_some_and(|t| t != "pci") {
                continue;
            }
            let at = span(addr.range().start);
            let field = |name: &str, default: Option<u64>, max: u64| -> Result<u64, GuestError> {
                let v = match addr.attribute(name) {
                    Some(s) => number(s).ok_or_else(|| GuestError::Syntax {
                        span: at.clone(),
                        why: format!("<address {name}='{}'>: not a number", s.escape_default()),
                    })?,
                    None => default.ok_or_else(|| GuestError::Syntax {
                        span: at.clone(),
                        why: format!("<address> without `{name}`"),
                    })?,
                };
                if v > max {
                    return Err(GuestError::Syntax {
                        span: at.clone(),
                        why: format!("<address {name}=…>: {v:#x} is beyond {max:#x}"),
                    });
                }
                Ok(v)
            };
            let seg = field("domain", Some(0), 0xffff)?;
            let bus = field("bus", None, 0xff)?;
            let slot = field("slot", None, 0x1f)?;
            let func = field("function", Some(0), 7)?;
            // Each field was checked against its maximum above: the casts cannot truncate.
            let bdf = Bdf::new(seg as u16, bus as u8, slot as u8, func as u8).map_err(|e| {
                GuestError::Syntax {
                    span: at.clone(),
                    why: e.to_string(),
                }
            })?;
            requests.push(Request {
                want: Want::Pci(Functions::One(bdf)),
                span: at,
                text: bdf.to_string(),
            });
        }
    }
    Ok(Guest::new(file, Format::Libvirt, name, requests, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guest(text: &str) -> Result<Guest, GuestError> {
        parse(Arc::new(PathBuf::from("t.xml")), text.to_string())
    }

    #[test]
    fn hostdevs_hex_and_decimal() {
        let g = guest(
            "<domain type='xen'>\n  <name>nic</name>\n  <devices>\n    <hostdev mode='subsystem' type='pci' managed='yes'>\n      <source>\n        <address domain='0x0000' bus='0x06' slot='0x12' function='0x5'/>\n      </source>\n      <address type='pci' domain='0' bus='0' slot='7' function='0'/>\n    </hostdev>\n    <interface type='hostdev'><source><address type='pci' domain='0' bus='3' slot='16' function='1'/></source></interface>\n    <serial type='pty'><target port='0'/></serial>\n    <hostdev mode='subsystem' type='usb'><source><vendor id='0x1234'/></source></hostdev>\n  </devices>\n</domain>\n",
        )
        .expect("valid");
        assert_eq!(g.name.as_deref(), Some("nic"));
        let w: Vec<String> = g.requests.iter().map(|r| r.text.clone()).collect();
        assert_eq!(w, ["0000:06:12.5", "0000:03:10.1"]);
        assert_eq!((g.requests[0].span.line, g.requests[0].span.col), (6, 9));
    }

    #[test]
    fn hostile_xml_is_refused_in_bounded_time() {
        let bomb = "<?xml version='1.0'?>\n<!DOCTYPE d [<!ENTITY a 'aaaaaaaaaa'><!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;'>]>\n<domain><name>&b;</name></domain>\n";
        match guest(bomb) {
            Err(GuestError::Syntax { span, why }) => {
                assert!(span.line <= 2 && why.contains("DTD"), "{span}: {why}")
            }
            other => panic!("{other:?}"),
        }
        let deep = format!(
            "<domain>{}{}</domain>",
            "<a>".repeat(300_000),
            "</a>".repeat(300_000)
        );
        assert!(matches!(guest(&deep), Err(GuestError::Syntax { .. })));
        let huge = format!("<domain><name a='{}'/></domain>", "x".repeat(3 << 20));
        assert!(guest(&huge).is_ok());
        assert!(matches!(
            guest("<domain><devices>"),
            Err(GuestError::Syntax { .. })
        ));
        assert!(matches!(
            guest("<network/>"),
            Err(GuestError::Syntax { .. })
        ));
    }

    #[test]
    fn bad_addresses_are_errors() {
        for a in [
            "bus='0x100' slot='0'",
            "bus='1' slot='0x20'",
            "bus='1' slot='1' function='8'",
            "slot='1'",
            "bus='zz' slot='1'",
        ] {
            let t = format!("<domain><devices><hostdev mode='subsystem' type='pci'><source><address {a}/></source></hostdev></devices></domain>");
            assert!(matches!(guest(&t), Err(GuestError::Syntax { .. })), "{a}");
        }
        assert_eq!(number("010"), Some(8));
        assert_eq!(number("0x1f"), Some(31));
        assert_eq!(number("0"), Some(0));
    }
}
