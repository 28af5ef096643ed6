//! Hostile input in bounded time and memory: huge numbers, endless and
//! over-long lines, control bytes in words, a byte-order mark; per-domain
//! quotas; teardown at a page limit; destroy and check proportional to what a
//! domain holds. Time bounds here are loose (they catch quadratic behaviour,
//! not speed, which the benchmarks measure).

use std::time::{Duration, Instant};

use accountant::trace::{quote, LineError, LineReader, ReadBytes, Replay, MAX_LINE, QUOTE_CHARS};
use accountant::{Accountant, BootOptions, DomId, ErrorCode, Mode, Space, TrackerKind, UnitRange};

fn replay(lines: &[&str]) -> Vec<String> {
    let mut rp = Replay::new(TrackerKind::SlabExtent);
    lines
        .iter()
        .filter_map(|l| match rp.feed(l) {
            Ok(o) => o,
            Err(e) => Some(format!("trace error {e}")),
        })
        .collect()
}

#[test]
fn a_million_digits_is_out_of_range_in_linear_time() {
    let digits = "9".repeat(1_000_000);
    let hex = format!("0x{}", "f".repeat(1_000_000));
    let t0 = Instant::now();
    let out = replay(&[
        "boot",
        &format!("create {digits}"),
        &format!("map 0 iomem {digits}"),
        &format!("map 0 iomem 5-{hex}"),
        &format!("map 0 iomem {hex}-5"),
        &format!("query iomem {digits}"),
    ]);
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "{:?} for 5 lines of 10^6 digits (quadratic parsing took minutes)",
        t0.elapsed()
    );
    assert_eq!(out[1], "err out-of-range (a number of more than 64 bits)");
    assert!(out[2].starts_with("err out-of-range"), "{}", out[2]);
    assert!(out[3].starts_with("err out-of-range"), "{}", out[3]);
    assert!(out[4].starts_with("err bad-range"), "{}", out[4]);
    assert!(out[5].starts_with("err out-of-range"), "{}", out[5]);
    assert!(
        out.iter().all(|l| l.len() < 200),
        "a detail echoed the number"
    );
}

#[test]
fn huge_numbers_compare_exactly_across_bases() {
    let two64 = "18446744073709551616"; // 2^64
    let cases = [
        // (first, last, bad-range?)
        (format!("{two64}1"), two64.to_string(), true),
        (two64.to_string(), "0x10000000000000000".to_string(), false),
        ("0x10000000000000001".to_string(), two64.to_string(), true),
        (two64.to_string(), "0x1ffffffffffffffff".to_string(), false),
        (
            format!("{}0", "9".repeat(30)),
            format!("0x{}", "f".repeat(25)),
            true,
        ),
        (
            format!("0x{}", "f".repeat(25)),
            format!("{}0", "9".repeat(30)),
            false,
        ),
    ];
    for (a, b, bad) in cases {
        let out = replay(&["boot", &format!("map 0 iomem {a}-{b}")]);
        let want = if bad {
            "err bad-range"
        } else {
            "err out-of-range"
        };
        assert!(out[1].starts_with(want), "{a}-{b}: {}", out[1]);
    }
}

#[test]
fn words_are_quoted_short_and_escaped() {
    assert_eq!(quote("abc"), "abc");
    assert_eq!(quote("a\u{0}\u{1b}[31m"), "a\\0\\u{1b}[31m");
    let long = "x".repeat(10_000);
    let q = quote(&long);
    assert!(
        q.starts_with(&"x".repeat(QUOTE_CHARS)) && q.ends_with("(10000 bytes)"),
        "{q}"
    );
    let mut rp = Replay::new(TrackerKind::SlabExtent);
    rp.feed("boot").expect("boots");
    let bad = format!("create 1{}\u{7}", "z".repeat(200_000));
    let e = rp.feed(&bad).expect_err("not a number");
    assert!(e.msg.len() < 200 && !e.msg.contains('\u{7}'), "{}", e.msg);
    let e = rp
        .feed(&format!("\u{1b}]0;{}", "y".repeat(1000)))
        .expect_err("no such op");
    assert!(e.msg.len() < 200 && !e.msg.contains('\u{1b}'), "{}", e.msg);
    // Words past the most any op takes are counted, not kept.
    let many = format!("check{}", " 1".repeat(1_000_000));
    let e = rp.feed(&many).expect_err("too many words");
    assert!(e.msg.contains("1000000"), "{}", e.msg);
}

struct Bytes<'a>(&'a [u8], usize);

impl ReadBytes for Bytes<'_> {
    type Error = ();
    fn read_bytes(&mut self, buf: &mut [u8]) -> Result<usize, ()> {
        let n = buf.len().min(self.0.len()).min(self.1);
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

/// An endless source of one byte.
struct Endless(u8, u64);

impl ReadBytes for Endless {
    type Error = ();
    fn read_bytes(&mut self, buf: &mut [u8]) -> Result<usize, ()> {
        buf.fill(self.0);
        self.1 += buf.len() as u64;
        Ok(buf.len())
    }
}

#[test]
fn lines_stream_with_a_limit() {
    let text = b"\xef\xbb\xbfboot\r\n# comment\n\ncheck\nquery ioport 1";
    for chunk in [1, 3, 4096] {
        let mut r = LineReader::new(Bytes(text, chunk));
        let mut rp = Replay::new(TrackerKind::SlabExtent);
        let mut out = Vec::new();
        while let Some(line) = r.next_line().expect("no error") {
            out.push(rp.feed_bytes(line).expect("well formed"));
        }
        assert_eq!(out.len(), 5);
        assert_eq!(out[0].as_deref(), Some("ok"), "the BOM is skipped");
        assert_eq!(out[3].as_deref(), Some("ok"));
        assert!(out[4].as_deref().is_some_and(|s| s.starts_with("state")));
    }
    // A BOM anywhere but before the first line is not skipped.
    let mut rp = Replay::new(TrackerKind::SlabExtent);
    rp.feed("boot").expect("boots");
    assert!(rp.feed_bytes(b"\xef\xbb\xbfcheck").is_err());
    // A line of exactly MAX_LINE bytes is a line; one more byte is not.
    let mut exact = vec![b'#'; MAX_LINE];
    exact.push(b'\n');
    let mut r = LineReader::new(Bytes(&exact, 1 << 16));
    assert_eq!(
        r.next_line().map(|l| l.map(<[u8]>::len)),
        Ok(Some(MAX_LINE))
    );
    assert_eq!(r.next_line().map(|l| l.map(<[u8]>::len)), Ok(None));
    let mut src = Endless(0, 0);
    let mut r = LineReader::new(&mut src);
    match r.next_line() {
        Err(e @ LineError::TooLong { .. }) => {
            let te = e.trace_error().expect("a malformed line");
            assert_eq!(te.line, 1);
            assert!(
                te.msg.contains("\\0\\0") && te.msg.len() < 300,
                "{}",
                te.msg
            );
        }
        other => panic!("{:?}", other.map(|l| l.map(<[u8]>::len))),
    }
    drop(r);
    // It stopped reading at the limit (one chunk past it at most).
    assert!(
        src.1 <= (MAX_LINE + (64 << 10)) as u64,
        "read {} bytes",
        src.1
    );
}

impl ReadBytes for &mut Endless {
    type Error = ();
    fn read_bytes(&mut self, buf: &mut [u8]) -> Result<usize, ()> {
        buf.fill(self.0);
        self.1 += buf.len() as u64;
        Ok(buf.len())
    }
}

fn r(space: Space, a: u64, b: u64) -> UnitRange {
    UnitRange::new(space, a, b).expect("valid")
}

#[test]
fn quotas_refuse_maps_and_change_nothing() {
    let opts = BootOptions::parse("quota_frames=100 quota_records=3").expect("valid");
    for kind in TrackerKind::ALL {
        let mut a = Accountant::boot(&opts, kind).expect("boots");
        let d0 = DomId::DOM0;
        a.map(d0, r(Space::IoMem, 0x1000, 0x1031))
            .expect("50 frames");
        a.map(d0, r(Space::IoMem, 0x1000, 0x1031))
            .expect("100 frames");
        let e = a.map(d0, r(Space::IoMem, 0x2000, 0x2000)).expect_err("101");
        assert_eq!(e.code(), ErrorCode::Quota);
        assert_eq!(e.to_string(), "quota d0 frames limit 100");
        assert_eq!(a.quota_usage(d0), Some((100, 1)));
        a.unmap(d0, r(Space::IoMem, 0x1000, 0x1031))
            .expect("mapped");
        // Runs: three are allowed, a fourth is not.
        a.map(d0, r(Space::IoMem, 0x3000, 0x3000)).expect("run 2");
        a.map(d0, r(Space::IoMem, 0x3002, 0x3002)).expect("run 3");
        let e = a
            .map(d0, r(Space::IoMem, 0x3004, 0x3004))
            .expect_err("run 4");
        assert_eq!(e.code(), ErrorCode::Quota, "{e}");
        // Filling a gap joins runs: allowed.
        a.map(d0, r(Space::IoMem, 0x3001, 0x3001))
            .expect("joins 2 and 3");
        assert_eq!(a.quota_usage(d0), Some((53, 2)));
        // An unmap in the middle never fails, even past the records quota.
        a.unmap(d0, r(Space::IoMem, 0x1010, 0x1010)).expect("unmap");
        a.unmap(d0, r(Space::IoMem, 0x1020, 0x1020)).expect("unmap");
        assert_eq!(a.quota_usage(d0), Some((51, 4)));
        assert_eq!(a.quota_refusals(), 2);
        // Other domains have their own counts.
        let d1 = DomId::new(1).expect("valid");
        a.create(d1).expect("fresh");
        a.grant(d1, r(Space::IoMem, 0x8000, 0x80ff), Mode::Exclusive, false)
            .expect("free");
        a.map(d1, r(Space::IoMem, 0x8000, 0x8063))
            .expect("100 frames");
        assert_eq!(a.quota_usage(d1), Some((100, 1)));
        // A teardown gives the counts back.
        a.destroy(d1).expect("exists");
        assert_eq!(a.quota_usage(d1), None);
        assert_eq!(a.check_invariants(), Ok(()));
    }
}

#[test]
fn teardown_succeeds_at_the_page_limit() {
    for kind in TrackerKind::ALL {
        let mut rp = Replay::with_page_limit(kind, Some(1));
        let mut feed = |l: &str| {
            rp.feed(l)
                .map(Option::unwrap_or_default)
                .unwrap_or_else(|e| e.to_string())
        };
        for l in [
            "boot io_default=none",
            "create 1",
            "grant 1 iomem 0x0-0xfffff exclusive",
        ] {
            assert_eq!(feed(l), "ok", "{l}");
        }
        // Fill the page source: runs of 8 frames with a gap.
        let mut k = 0u64;
        loop {
            let o = feed(&format!("map 1 iomem {:#x}-{:#x}", k * 16, k * 16 + 7));
            if o != "ok" {
                assert!(o.starts_with("err no-memory"), "{kind:?}: {o}");
                break;
            }
            k += 1;
        }
        assert!(k > 2, "{kind:?}: only {k} maps before the limit");
        let mut tail = Vec::new();
        // Unmap the middle of extents, revoke (pending), end the drain, force
        // a revoke, destroy: all `ok`/`pending`, and check passes.
        for j in 0..k.min(40) {
            tail.push(format!("unmap 1 iomem {:#x}", j * 16 + 3));
        }
        tail.push("revoke 1 iomem 0x0-0xf".into());
        tail.push("unmap 1 iomem 0x0-0x2".into());
        tail.push("unmap 1 iomem 0x4-0x7".into());
        tail.push("revoke 1 iomem 0x10-0xfffff force".into());
        tail.push("check".into());
        tail.push("destroy 1".into());
        tail.push("check".into());
        let got: Vec<String> = tail.iter().map(|l| feed(l)).collect();
        for (l, g) in tail.iter().zip(&got) {
            let want = if l.starts_with("revoke 1 iomem 0x0-0xf") {
                "pending"
            } else {
                "ok"
            };
            assert!(g.starts_with(want), "{kind:?}: `{l}` -> `{g}`");
        }
    }
}

/// The records quota's bound as SPEC states it ("Boot options"): only an
/// unmap takes a domain past its records quota, by at most 2 records per
/// unmap; a map never adds a record past the quota; and records never
/// exceed frames mapped, so the frames quota bounds them whatever the
/// unmaps. Random maps and unmaps over 64 frames with a quota of 3 runs.
#[test]
fn records_quota_bound_as_stated() {
    let opts = BootOptions::parse("quota_frames=200 quota_records=3").expect("valid");
    let d0 = DomId::DOM0;
    let mut past = 0u64;
    for kind in TrackerKind::ALL {
        let mut a = Accountant::boot(&opts, kind).expect("boots");
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let first = 0x5000 + x % 64;
            let last = (first + (x >> 8) % 8).min(0x5000 + 63);
            let range = r(Space::IoMem, first, last);
            let (_, before) = a.quota_usage(d0).expect("domain 0");
            let unmap = (x >> 20).is_multiple_of(2);
            let res = if unmap {
                a.unmap(d0, range)
            } else {
                a.map(d0, range)
            };
            let (frames, after) = a.quota_usage(d0).expect("domain 0");
            assert!(after <= frames, "{after} records over {frames} frames");
            assert!(frames <= 200);
            match (unmap, res) {
                (true, Ok(())) => {
                    assert!(after <= before + 2, "unmap {range:?}: {before} -> {after}")
                }
                (false, Ok(())) => {
                    assert!(after <= before.max(3), "map {range:?}: {before} -> {after}")
                }
                (_, Err(e)) => {
                    assert_eq!(after, before, "a refused op changes nothing: {e}");
                    assert!(
                        matches!(e.code(), ErrorCode::Quota | ErrorCode::NotMapped),
                        "{e}"
                    );
                }
            }
            past = past.max(after.saturating_sub(3));
        }
        assert_eq!(a.check_invariants(), Ok(()));
    }
    assert!(
        past > 0,
        "the run never went past the quota: it tests nothing"
    );
}
