//! Random and mutated trace text into the parser and the replay: never a
//! panic; a malformed line is a `TraceError` naming its line.

use accountant::ops::{parse_op, Keyword};
use accountant::trace::Replay;
use accountant::TrackerKind;
use proptest::prelude::*;

const SEED: &[&str] = &[
    "boot ram=0x0-0xff reserve_ioports=0x3f8-0x3ff io_default=none dom0_iomem=0x100-0x1ff",
    "create 1",
    "destroy 1",
    "grant 1 ioport 0x100-0x200 exclusive",
    "grant 1 iomem 0xfeb00 shared force",
    "revoke 1 irq 9 force",
    "map 0 iomem 0x300-0x3ff",
    "unmap 0 iomem 0x3fe-0x400",
    "bind 3 irq 9",
    "unbind 3 irq 9",
    "access 1 ioport 0xffff 2",
    "reserve iomem 0xfed00",
    "unreserve ioport 0x3f8",
    "hvmap iomem 0xfed00",
    "hvunmap iomem 0xfed00",
    "query iomem 0xfeb00",
    "check",
];

#[derive(Clone, Debug)]
enum Mutation {
    Delete(usize),
    Insert(usize, char),
    Replace(usize, char),
    SwapWords(usize, usize),
    DropWord(usize),
    Duplicate(usize),
}

fn mutate(line: &str, m: &Mutation) -> String {
    let chars: Vec<char> = line.chars().collect();
    let n = chars.len().max(1);
    let mut words: Vec<&str> = line.split_whitespace().collect();
    let wn = words.len().max(1);
    match m {
        Mutation::Delete(i) => chars
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i % n)
            .map(|(_, c)| *c)
            .collect(),
        Mutation::Insert(i, c) => {
            let mut v = chars.clone();
            v.insert(i % (chars.len() + 1), *c);
            v.into_iter().collect()
        }
        Mutation::Replace(i, c) => {
            let mut v = chars.clone();
            if let Some(x) = v.get_mut(i % n) {
                *x = *c;
            }
            v.into_iter().collect()
        }
        Mutation::SwapWords(i, j) => {
            if !words.is_empty() {
                words.swap(i % wn, j % wn);
            }
            words.join(" ")
        }
        Mutation::DropWord(i) => {
            if !words.is_empty() {
                words.remove(i % wn);
            }
            words.join(" ")
        }
        Mutation::Duplicate(i) => {
            if let Some(w) = words.get(i % wn).copied() {
                words.insert(i % wn, w);
            }
            words.join(" ")
        }
    }
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let ch = prop_oneof![
        Just('-'),
        Just(','),
        Just('x'),
        Just('0'),
        Just('9'),
        Just('f'),
        Just(' '),
        Just('#'),
        Just('='),
        Just('\u{0}'),
        Just('é'),
        any::<char>()
    ];
    prop_oneof![
        any::<usize>().prop_map(Mutation::Delete),
        (any::<usize>(), ch.clone()).prop_map(|(i, c)| Mutation::Insert(i, c)),
        (any::<usize>(), ch).prop_map(|(i, c)| Mutation::Replace(i, c)),
        (any::<usize>(), any::<usize>()).prop_map(|(i, j)| Mutation::SwapWords(i, j)),
        any::<usize>().prop_map(Mutation::DropWord),
        any::<usize>().prop_map(Mutation::Duplicate),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,80}") {
        let _ = parse_op(&s);
        let mut rp = Replay::new(TrackerKind::SlabExtent);
        let _ = rp.feed("boot");
        let _ = rp.feed(&s);
    }

    #[test]
    fn mutated_lines_never_panic(picks in proptest::collection::vec((0..SEED.len(), proptest::collection::vec(mutation(), 0..4)), 1..30)) {
        let mut rp = Replay::new(TrackerKind::SlabExtent);
        prop_assert!(rp.feed("boot").is_ok());
        for (n, (i, ms)) in picks.iter().enumerate() {
            let line = ms.iter().fold(SEED[*i].to_string(), |l, m| mutate(&l, m));
            match rp.feed(&line) {
                Ok(Some(out)) => {
                    let first = out.split_whitespace().next().unwrap_or("");
                    prop_assert!(["ok", "pending", "allow", "deny", "err", "state"].contains(&first), "`{}` -> `{}`", line, out);
                }
                Ok(None) => {}
                Err(e) => prop_assert_eq!(e.line, n + 2, "error names the line"),
            }
        }
        let a = rp.accountant().expect("booted");
        prop_assert!(a.check_invariants().is_ok());
    }
}

#[test]
fn malformed_lines_are_refused_with_their_number() {
    let mut rp = Replay::new(TrackerKind::SlabExtent);
    assert_eq!(
        rp.feed("create 1").map_err(|e| e.line),
        Err(1),
        "first op must be boot"
    );
    let mut rp = Replay::new(TrackerKind::SlabExtent);
    assert!(rp.feed("# comment").is_ok());
    assert_eq!(rp.feed("boot").ok().flatten().as_deref(), Some("ok"));
    for bad in [
        "frobnicate 1 2 3",
        "create",
        "create 1 2",
        "create x",
        "map 0 ioport 0x10",
        "bind 0 iomem 3",
        "access 0 irq 3",
        "grant 1 ioport 0x10 sometimes",
        "revoke 1 ioport 0x10 now",
        "grant 1 ports 0x10 exclusive",
        "boot",
        "check please",
        "access 0 ioport 0x10 1 2",
        "map 0 iomem 0x10-",
        "map 0 iomem -0x10",
    ] {
        assert!(rp.feed(bad).is_err(), "`{bad}` must be refused");
    }
    // Huge numbers are the op's out-of-range, not a malformed line.
    assert_eq!(
        rp.feed("grant 99999999999999999999999999 ioport 1 shared")
            .ok()
            .flatten()
            .as_deref()
            .map(|s| s.split_whitespace().take(2).collect::<Vec<_>>().join(" ")),
        Some("err out-of-range".to_string())
    );
    let mut rp = Replay::new(TrackerKind::SlabExtent);
    assert!(
        rp.feed("boot reserve_ioports=0x10 dom0_ioports=0x10")
            .is_err(),
        "boot grant on a reserved unit"
    );
}

/// Every keyword of the table is an op the parser knows (so a keyword
/// cannot be listed without its parser, nor the other way round), and a
/// word outside the table is not.
#[test]
fn every_keyword_parses_and_nothing_else_is_an_op() {
    for &kw in Keyword::ALL {
        assert_eq!(Keyword::from_word(kw.word()), Some(kw));
        let bare = parse_op(kw.word()).err().unwrap_or_default();
        assert!(!bare.starts_with("unknown op"), "{}: {bare}", kw.word());
    }
    for line in SEED {
        let word = line.split_whitespace().next().unwrap_or_default();
        assert!(Keyword::from_word(word).is_some(), "{line}");
    }
    assert_eq!(
        parse_op("hv_map iomem 1"),
        Err("unknown op `hv_map`".to_string())
    );
}
