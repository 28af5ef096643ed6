//! `cargo xtask capi [--check]`: builds libioacct (the accountant as a
//! freestanding C library) and the C programs into `target/capi/`:
//!
//! * `libioacct.a`: cargo's staticlib (feature `freestanding`, profile
//!   `capi-lib` with `panic = "abort"`), partially linked (`ld -r
//!   --gc-sections` from the exported `ioacct_*` functions) so that only
//!   the reachable code of the Rust sysroot stays, every symbol but the
//!   exports made local (`objcopy --keep-global-symbols`), and archived
//!   again. Its `nm -u` must list only the compiler's memory intrinsics
//!   ([`ALLOWED_UNDEFINED`]); the task fails otherwise. `libioacct.so` is
//!   cargo's cdylib of the same build.
//! * `ioacct-replay TRACE`: SPEC section 3's replay through the C API
//!   (`accountant/capi/c/replay.c`), built with the system `cc` against the
//!   static library and the header alone.
//! * `ioacct-test`: the C test of the seed scenario, the teardown callback
//!   and bad arguments (`accountant/capi/c/test.c`); the task runs it.
//!   `ioacct-test-shared` is the same test linked against `libioacct.so`
//!   (found beside it through its `$ORIGIN` run path).
//! * `ioacct-count OP:TRACKER:UNITS...`: one `ioacct_map` or `ioacct_bind`
//!   per case from C through the static library, for callgrind to count
//!   (`accountant/capi/c/count.c`; the bench's `accountant.instructions`
//!   rows `op=map-capi` and `op=bind-capi`). The task runs it once natively.
//!
//! With `--check`, also: the C replay against the Rust replay, full output
//! lines and exit status, on every conformance trace and on random traces
//! ([`random_trace`]); the shared-library test; valgrind memcheck (0 errors,
//! 0 definite or indirect leaks) on both C tests and the C replay of every
//! conformance trace; and the
//! C programs rebuilt with `-fsanitize=address,undefined` and run the same
//! way. Exit 0 when all passed, 1 when a check failed, 2 when a tool is
//! missing or a build failed.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use accountant::trace::{LineError, LineReader, ReadBytes, Replay};
use accountant::TrackerKind;

use crate::report;

/// `cargo xtask capi`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Exit status: 0 built (and, with --check, every check passed), \
1 a check failed, 2 a build failed or a tool (cc, ld, objcopy, ar, nm, valgrind) is missing."
)]
pub struct Args {
    /// Also compare the C replay with the Rust replay (conformance and
    /// random traces), and run the C programs under valgrind memcheck and
    /// built with AddressSanitizer and UBSan.
    #[arg(long)]
    check: bool,
    /// Random traces to compare with `--check` (each a few hundred ops).
    #[arg(long, value_name = "N", default_value_t = 300)]
    random: u64,
    /// Seed of the first random trace (trace i uses seed + i).
    #[arg(long, value_name = "SEED", default_value_t = 1)]
    seed: u64,
}

/// What `nm -u` of the static library may list: the compiler's memory
/// intrinsics. The hooks are function pointers, so they are not symbols.
pub const ALLOWED_UNDEFINED: [&str; 5] = ["bcmp", "memcmp", "memcpy", "memmove", "memset"];

/// The build products.
pub struct Built {
    /// `target/capi`.
    pub dir: PathBuf,
    /// `target/capi/ioacct-replay`.
    pub replay: PathBuf,
    /// `target/capi/ioacct-test`.
    pub test: PathBuf,
    /// `target/capi/ioacct-test-shared`: the same test against `libioacct.so`.
    pub test_shared: PathBuf,
    /// `target/capi/ioacct-count`.
    pub count: PathBuf,
}

/// The C harness of the instruction counts: its file name in `target/capi/`.
pub const COUNT: &str = "ioacct-count";

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| report::root().join("target"))
}

/// Runs `cmd`, failing with its name and stderr when it fails.
fn run_cmd(cmd: &mut Command) -> Result<std::process::Output, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("{:?}: {e}", cmd.get_program()))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(out)
}

/// binutils' `ar` and `nm` load every plugin in `bfd-plugins`; some hosts
/// have LLVM 14's there, which aborts on rustc's objects. gcc's own LTO
/// plugin, named explicitly, is used instead when gcc has one.
fn plugin_args() -> Vec<String> {
    let out = Command::new(cc())
        .arg("-print-file-name=liblto_plugin.so")
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let p = String::from_utf8_lossy(&o.stdout).trim().to_string();
            if Path::new(&p).is_absolute() && Path::new(&p).exists() {
                vec!["--plugin".to_string(), p]
            } else {
                Vec::new()
            }
        }
        _ => Vec::new(),
    }
}

fn cc() -> String {
    std::env::var("CC").unwrap_or_else(|_| "cc".to_string())
}

/// The undefined symbols of an archive, as `nm -u` lists them.
pub fn undefined(lib: &Path) -> Result<Vec<String>, String> {
    let out = run_cmd(Command::new("nm").args(plugin_args()).arg("-u").arg(lib))?;
    let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            match (w.next(), w.next()) {
                (Some("U" | "w"), Some(sym)) => Some(sym.to_string()),
                _ => None,
            }
        })
        .collect();
    v.sort();
    v.dedup();
    Ok(v)
}

/// Builds the library and the C programs (see the module docs).
pub fn build() -> Result<Built, String> {
    let root = report::root();
    let target = target_dir();
    let dir = target.join("capi");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    run_cmd(
        Command::new(cargo)
            .current_dir(&root)
            .args([
                "build",
                "--quiet",
                "-p",
                "libioacct",
                "--features",
                "freestanding",
            ])
            .args(["--profile", "capi-lib"])
            .stderr(Stdio::inherit()),
    )?;
    let raw = target.join("capi-lib/libioacct.a");
    // The exported functions: the roots of the partial link.
    let defined = run_cmd(
        Command::new("nm")
            .args(plugin_args())
            .args(["--defined-only", "-g"])
            .arg(&raw),
    )?;
    let mut exports: Vec<String> = String::from_utf8_lossy(&defined.stdout)
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            match w.as_slice() {
                [_, "T", sym] if sym.starts_with("ioacct_") => Some((*sym).to_string()),
                _ => None,
            }
        })
        .collect();
    exports.sort();
    exports.dedup();
    if exports.len() < 10 {
        return Err(format!(
            "{}: only {} ioacct_* exports",
            raw.display(),
            exports.len()
        ));
    }
    // Everything is made in a directory of this process's own, then renamed
    // into target/capi/: two builds at once (parallel tests) never see each
    // other's half-written files.
    let tmp = dir.join(format!(".build-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    let made = link_and_compile(&root, &target, &tmp, &raw, &exports);
    let moved = made.and_then(|()| {
        for f in [
            "exports.txt",
            "libioacct.o",
            "libioacct.a",
            "libioacct.so",
            "ioacct-replay",
            "ioacct-test",
            "ioacct-test-shared",
            COUNT,
        ] {
            std::fs::rename(tmp.join(f), dir.join(f)).map_err(|e| format!("{f}: {e}"))?;
        }
        Ok(())
    });
    let _ = std::fs::remove_dir_all(&tmp);
    moved?;
    let lib = dir.join("libioacct.a");
    println!(
        "capi: {} ({} exports); nm -u: {}",
        lib.display(),
        exports.len(),
        undefined(&lib)?.join(" ")
    );
    let replay = dir.join("ioacct-replay");
    let test = dir.join("ioacct-test");
    let test_shared = dir.join("ioacct-test-shared");
    let count = dir.join(COUNT);
    Ok(Built {
        dir,
        replay,
        test,
        test_shared,
        count,
    })
}

/// The partial link, the archive, its `nm -u` check and the C programs,
/// all into `out`.
fn link_and_compile(
    root: &Path,
    target: &Path,
    out: &Path,
    raw: &Path,
    exports: &[String],
) -> Result<(), String> {
    let keep = out.join("exports.txt");
    std::fs::write(&keep, exports.join("\n") + "\n").map_err(|e| e.to_string())?;
    let linked = out.join("libioacct-linked.o");
    let obj = out.join("libioacct.o");
    let mut ld = Command::new("ld");
    ld.args(["-r", "--gc-sections"]);
    for e in exports {
        ld.arg("-u").arg(e);
    }
    run_cmd(ld.arg("--whole-archive").arg(raw).arg("-o").arg(&linked))?;
    run_cmd(
        Command::new("objcopy")
            .arg("--strip-unneeded")
            .arg(format!("--keep-global-symbols={}", keep.display()))
            .arg(&linked)
            .arg(&obj),
    )?;
    let _ = std::fs::remove_file(&linked);
    let lib = out.join("libioacct.a");
    run_cmd(
        Command::new("ar")
            .args(plugin_args())
            .arg("rcs")
            .arg(&lib)
            .arg(&obj),
    )?;
    std::fs::copy(
        target.join("capi-lib/libioacct.so"),
        out.join("libioacct.so"),
    )
    .map_err(|e| format!("libioacct.so: {e}"))?;
    let und = undefined(&lib)?;
    let extra: Vec<&String> = und
        .iter()
        .filter(|s| !ALLOWED_UNDEFINED.contains(&s.as_str()))
        .collect();
    if !extra.is_empty() {
        return Err(format!(
            "{}: nm -u lists {extra:?} beyond the memory intrinsics {ALLOWED_UNDEFINED:?}",
            lib.display()
        ));
    }
    compile(root, &lib, "replay.c", &out.join("ioacct-replay"), &[])?;
    compile(root, &lib, "test.c", &out.join("ioacct-test"), &[])?;
    compile(root, &lib, "count.c", &out.join(COUNT), &[])?;
    // Against the shared library: `-L` and `-l` (so the program names
    // `libioacct.so`, not this build directory), found at run time beside
    // the program.
    let shared = [
        "-L",
        &out.to_string_lossy(),
        "-lioacct",
        "-Wl,-rpath,$ORIGIN",
        "-Wl,--no-as-needed",
    ]
    .map(str::to_owned);
    let shared: Vec<&str> = shared.iter().map(String::as_str).collect();
    let so = out.join("libioacct.so");
    compile(
        root,
        &so,
        "test.c",
        &out.join("ioacct-test-shared"),
        &shared,
    )
}

/// `cc` one C program against the header and one library alone (`lib` is
/// the static archive, or the shared library with `extra` naming it).
fn compile(root: &Path, lib: &Path, src: &str, out: &Path, extra: &[&str]) -> Result<(), String> {
    let capi = root.join("accountant/capi");
    let is_shared = lib.extension().is_some_and(|e| e == "so");
    run_cmd(
        Command::new(cc())
            .args([
                "-std=c11",
                "-D_POSIX_C_SOURCE=200809L",
                "-O2",
                "-g",
                "-pthread",
            ])
            .args(["-Wall", "-Wextra", "-Werror"])
            .arg("-I")
            .arg(capi.join("include"))
            .arg(capi.join("c").join(src))
            .args((!is_shared).then_some(lib))
            .args(extra)
            .arg("-o")
            .arg(out),
    )
    .map(|_| ())
}

struct Source(std::fs::File);

impl ReadBytes for Source {
    type Error = std::io::Error;
    fn read_bytes(&mut self, buf: &mut [u8]) -> Result<usize, std::io::Error> {
        std::io::Read::read(&mut self.0, buf)
    }
}

/// What a replay printed: its stdout lines, its exit status, and the line
/// number of the error that stopped it.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Output lines.
    pub lines: Vec<String>,
    /// Exit status.
    pub status: i32,
    /// For status 2: the malformed line's number.
    pub bad_line: Option<usize>,
}

/// The Rust replay of `path` (what `cargo xtask replay` prints), in-process.
pub fn rust_replay(path: &Path, tracker: TrackerKind, page_limit: Option<u64>) -> Outcome {
    let mut o = Outcome {
        lines: Vec::new(),
        status: 0,
        bad_line: None,
    };
    let Ok(f) = std::fs::File::open(path) else {
        o.status = 2;
        return o;
    };
    let mut replay = Replay::with_page_limit(tracker, page_limit);
    let mut lines = LineReader::new(Source(f));
    loop {
        let fed = match lines.next_line() {
            Ok(Some(l)) => replay.feed_bytes(l),
            Ok(None) => break,
            Err(LineError::Read(_)) => {
                o.status = 2;
                break;
            }
            Err(e) => match e.trace_error() {
                Some(te) => Err(te),
                None => {
                    o.status = 2;
                    break;
                }
            },
        };
        match fed {
            Ok(None) => {}
            Ok(Some(out)) => o.lines.push(out),
            Err(e) => {
                o.status = 2;
                o.bad_line = Some(e.line);
                break;
            }
        }
    }
    o
}

/// The C replay of `path`, run as `prefix… replay path args…`.
pub fn c_replay(
    prefix: &[String],
    replay: &Path,
    path: &Path,
    args: &[String],
) -> Result<Outcome, String> {
    let mut cmd = match prefix.split_first() {
        Some((p, rest)) => {
            let mut c = Command::new(p);
            c.args(rest).arg(replay);
            c
        }
        None => Command::new(replay),
    };
    let out = cmd
        .arg(path)
        .args(args)
        .output()
        .map_err(|e| format!("{}: {e}", replay.display()))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let status = out.status.code().unwrap_or(-1);
    // `FILE:LINE: message`, as the Rust replay prints it.
    let bad_line = (status == 2)
        .then(|| {
            let p = format!("{}:", path.display());
            stderr.lines().find_map(|l| {
                l.strip_prefix(&p)
                    .and_then(|r| r.split(':').next())
                    .and_then(|n| n.parse().ok())
            })
        })
        .flatten();
    if status != 0 && status != 2 {
        return Err(format!("exit status {status}: {}", stderr.trim()));
    }
    Ok(Outcome {
        lines: String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect(),
        status,
        bad_line,
    })
}

/// The first difference between two outcomes, if any.
pub fn diff(rust: &Outcome, c: &Outcome) -> Option<String> {
    for (i, (r, c)) in rust.lines.iter().zip(&c.lines).enumerate() {
        if r != c {
            return Some(format!("output line {}: Rust `{r}`, C `{c}`", i + 1));
        }
    }
    if rust.lines.len() != c.lines.len() {
        return Some(format!(
            "{} output lines from Rust, {} from C",
            rust.lines.len(),
            c.lines.len()
        ));
    }
    if rust.status != c.status || rust.bad_line != c.bad_line {
        return Some(format!(
            "Rust exit {} (line {:?}), C exit {} (line {:?})",
            rust.status, rust.bad_line, c.status, c.bad_line
        ));
    }
    None
}

/// A small deterministic generator (SplitMix64), so a failing seed replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a>(&mut self, v: &[&'a str]) -> &'a str {
        v[self.below(v.len() as u64) as usize]
    }
}

/// A number in or near `space_max`'s space: mostly small, sometimes an edge
/// (the last unit, one past it, `u64::MAX`, a number of more than 64 bits).
fn number(r: &mut Rng, base: u64, span: u64, max: u64) -> String {
    match r.below(40) {
        0 => format!("{max:#x}"),
        1 => format!("{}", max + 1),
        2 => "18446744073709551615".to_string(),
        3 => "0x1_0000_0000_0000_0000".replace('_', ""),
        4 => "99999999999999999999999".to_string(),
        _ => {
            let v = base + r.below(span);
            if r.below(2) == 0 {
                format!("{v:#x}")
            } else {
                v.to_string()
            }
        }
    }
}

fn range_word(r: &mut Rng, space: &str) -> String {
    let (base, span, max) = match space {
        "ioport" => (0x300, 0x40, 0xffff),
        "iomem" => (0xfeb00, 0x14, 0xff_ffff_ffff),
        _ => (0, 12, 1023),
    };
    match r.below(8) {
        0 | 1 => number(r, base, span, max),
        2 => format!(
            "{}-{}",
            number(r, base, span, max),
            number(r, base, span, max)
        ),
        _ => {
            let a = base + r.below(span);
            format!("{a:#x}-{:#x}", a + r.below(4))
        }
    }
}

/// A random trace of about `ops` ops: a random boot line (reservations,
/// RAM, default deny, dom0 grants, small quotas), then grants, revokes,
/// maps, binds, accesses, reservations, domain churn, queries and checks
/// over a few domains and a small window of each space, with edge values,
/// and now and then a malformed line.
pub fn random_trace(seed: u64, ops: usize) -> String {
    let mut r = Rng(seed);
    let mut t = String::from("boot");
    if r.below(3) == 0 {
        t.push_str(" io_default=none");
    }
    if r.below(2) == 0 {
        t.push_str(" ram=0x0-0x7ffff,0xfeb12-0xfeb13");
    }
    if r.below(2) == 0 {
        t.push_str(" reserve_ioports=0x3f8-0x3ff,0x330 reserve_iomem=0xfeb10 reserve_irqs=2");
    }
    if r.below(3) == 0 {
        t.push_str(" dom0_ioports=0x310-0x31f dom0_iomem=0xfeb08 dom0_irqs=5");
    }
    if r.below(3) == 0 {
        t.push_str(" dom0_ioports_disable=0x320-0x327");
    }
    if r.below(3) == 0 {
        t.push_str(&format!(
            " quota_frames={} quota_records={}",
            1 + r.below(40),
            1 + r.below(6)
        ));
    }
    t.push('\n');
    let spaces = ["ioport", "iomem", "irq"];
    for _ in 0..ops {
        let d = if r.below(30) == 0 {
            number(&mut r, 0, 5, 32751)
        } else {
            r.below(5).to_string()
        };
        let line = match r.below(100) {
            0..=5 => format!("create {d}"),
            6..=8 => format!("destroy {d}"),
            9..=22 => {
                let s = r.pick(&spaces);
                let mode = r.pick(&["exclusive", "shared"]);
                let force = if r.below(4) == 0 { " force" } else { "" };
                format!("grant {d} {s} {} {mode}{force}", range_word(&mut r, s))
            }
            23..=32 => {
                let s = r.pick(&spaces);
                let force = if r.below(3) == 0 { " force" } else { "" };
                let w = range_word(&mut r, s);
                // Now and then a use of the same range right after: a
                // revoke that left it draining is then refused.
                let again = match (s, r.below(2)) {
                    ("iomem", 0) => format!("\nmap {d} iomem {w}"),
                    ("irq", 0) => format!("\nbind {d} irq {w}"),
                    (_, 0) => format!("\ngrant {} {s} {w} shared", r.below(5)),
                    _ => String::new(),
                };
                format!("revoke {d} {s} {w}{force}{again}")
            }
            33..=44 => format!("map {d} iomem {}", range_word(&mut r, "iomem")),
            45..=52 => format!("unmap {d} iomem {}", range_word(&mut r, "iomem")),
            53..=58 => format!("bind {d} irq {}", range_word(&mut r, "irq")),
            59..=63 => format!("unbind {d} irq {}", range_word(&mut r, "irq")),
            64..=78 => {
                let w = r.pick(&["", " 1", " 2", " 4", " 3", " 0", " 8"]);
                format!(
                    "access {d} ioport {}{w}",
                    number(&mut r, 0x300, 0x40, 0xffff)
                )
            }
            79..=83 => {
                let s = r.pick(&spaces);
                let op = r.pick(&["reserve", "unreserve", "hvmap", "hvunmap"]);
                format!("{op} {s} {}", range_word(&mut r, s))
            }
            84..=90 => {
                let s = r.pick(&spaces);
                let u = range_word(&mut r, s);
                let u = u.split('-').next().unwrap_or("0").to_string();
                format!("query {s} {u}")
            }
            91..=95 => "check".to_string(),
            96 => "# a comment".to_string(),
            97 => String::new(),
            98 if r.below(8) == 0 => r
                .pick(&[
                    "frobnicate 1",
                    "map 1 irq 3",
                    "grant 1 ioport",
                    "access 1 iomem 3",
                ])
                .to_string(),
            _ => format!("access {d} ioport {}", r.below(0x10000)),
        };
        t.push_str(&line);
        t.push('\n');
    }
    t
}

fn tracker_of(i: u64) -> (TrackerKind, &'static str) {
    match i % 3 {
        0 => (TrackerKind::SlabExtent, "slab-extent"),
        1 => (TrackerKind::SlabPage, "slab-page"),
        _ => (TrackerKind::XmallocPage, "xmalloc-page"),
    }
}

/// The conformance traces, sorted.
fn conformance_traces() -> Result<Vec<PathBuf>, String> {
    let dir = report::root().join("spec/conformance");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "trace"))
        .collect();
    v.sort();
    Ok(v)
}

const VALGRIND: [&str; 6] = [
    "valgrind",
    "-q",
    "--error-exitcode=1",
    "--leak-check=full",
    "--errors-for-leak-kinds=definite,indirect",
    "--show-leak-kinds=definite,indirect",
];

/// Cases `run` gives the counting harness: one of each op and tracker.
const COUNT_SMOKE: [&str; 4] = [
    "map:slab-extent:4096",
    "map:slab-page:1",
    "map:xmalloc-page:64",
    "bind:slab-extent:1",
];

fn run_test(
    prefix: &[&str],
    test: &Path,
    env: &[(&str, &str)],
    args: &[&str],
) -> Result<(), String> {
    let mut cmd = match prefix.split_first() {
        Some((p, rest)) => {
            let mut c = Command::new(p);
            c.args(rest).arg(test);
            c
        }
        None => Command::new(test),
    };
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .args(args)
        .output()
        .map_err(|e| format!("{}: {e}", test.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} {}: {}\n{}{}",
            prefix.join(" "),
            test.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The `--check` part; returns the failures.
fn check(b: &Built, args: &Args) -> Result<Vec<String>, String> {
    let mut failed = Vec::new();
    let traces = conformance_traces()?;
    // 1. The C replay prints what the Rust replay prints.
    for t in &traces {
        let rust = rust_replay(t, TrackerKind::SlabExtent, None);
        match c_replay(&[], &b.replay, t, &[]) {
            Ok(c) => {
                if let Some(d) = diff(&rust, &c) {
                    failed.push(format!("{}: {d}", t.display()));
                }
            }
            Err(e) => failed.push(format!("{}: {e}", t.display())),
        }
    }
    println!(
        "capi: C replay = Rust replay on {} conformance traces",
        traces.len()
    );
    let dir = b.dir.join("random");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let mut random = Vec::new();
    for i in 0..args.random {
        let seed = args.seed.wrapping_add(i);
        let path = dir.join(format!("random-{seed}.trace"));
        std::fs::write(&path, random_trace(seed, 200 + (seed % 300) as usize))
            .map_err(|e| e.to_string())?;
        let (tracker, name) = tracker_of(seed);
        let limit = (seed % 5 == 0).then_some(seed % 7);
        let mut cargs = vec!["--tracker".to_string(), name.to_string()];
        if let Some(l) = limit {
            cargs.extend(["--page-limit".to_string(), l.to_string()]);
        }
        let rust = rust_replay(&path, tracker, limit);
        match c_replay(&[], &b.replay, &path, &cargs) {
            Ok(c) => match diff(&rust, &c) {
                Some(d) => failed.push(format!("{} ({cargs:?}): {d}", path.display())),
                None => {
                    let _ = std::fs::remove_file(&path);
                }
            },
            Err(e) => failed.push(format!("{}: {e}", path.display())),
        }
        random.push((path, cargs));
    }
    println!(
        "capi: C replay = Rust replay on {} random traces (seeds {}..{})",
        args.random,
        args.seed,
        args.seed.wrapping_add(args.random)
    );
    // 2. valgrind memcheck.
    let vg: Vec<String> = VALGRIND.iter().map(|s| s.to_string()).collect();
    // valgrind runs one thread at a time: the lock-free test's vCPU threads
    // get few slices, so it runs fewer rounds there.
    // The shared library: the same test, linked against libioacct.so.
    if let Err(e) = run_test(&[], &b.test_shared, &[], &[]) {
        failed.push(format!("shared library: {e}"));
    }
    println!("capi: {} passed", b.test_shared.display());
    for test in [&b.test, &b.test_shared] {
        if let Err(e) = run_test(&VALGRIND, test, &[("IOACCT_TEST_ROUNDS", "50")], &[]) {
            failed.push(format!("valgrind: {e}"));
        }
    }
    for t in &traces {
        match c_replay(&vg, &b.replay, t, &[]) {
            Ok(o) if o.status == 0 => {}
            Ok(o) => failed.push(format!("valgrind {}: exit {}", t.display(), o.status)),
            Err(e) => failed.push(format!("valgrind {}: {e}", t.display())),
        }
    }
    println!(
        "capi: valgrind memcheck on ioacct-test, ioacct-test-shared and {} conformance replays",
        traces.len()
    );
    // 3. AddressSanitizer and UBSan on the C side.
    let san = b.dir.join("sanitize");
    std::fs::create_dir_all(&san).map_err(|e| e.to_string())?;
    let root = report::root();
    let lib = b.dir.join("libioacct.a");
    let flags = [
        "-fsanitize=address,undefined",
        "-fno-sanitize-recover=all",
        "-fno-omit-frame-pointer",
    ];
    let (st, sr) = (san.join("ioacct-test"), san.join("ioacct-replay"));
    compile(&root, &lib, "test.c", &st, &flags)?;
    compile(&root, &lib, "replay.c", &sr, &flags)?;
    let env = [
        ("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0"),
        ("UBSAN_OPTIONS", "print_stacktrace=1"),
    ];
    if let Err(e) = run_test(&[], &st, &env, &[]) {
        failed.push(format!("sanitizers: {e}"));
    }
    let mut all: Vec<(PathBuf, Vec<String>)> =
        traces.iter().map(|t| (t.clone(), Vec::new())).collect();
    all.extend(random.into_iter().take(20).filter(|(p, _)| p.exists()));
    for (t, a) in &all {
        let mut cmd = Command::new(&sr);
        cmd.arg(t).args(a).envs(env);
        match cmd.output() {
            Ok(o) if o.status.code() == Some(0) || o.status.code() == Some(2) => {
                let err = String::from_utf8_lossy(&o.stderr);
                if err.contains("Sanitizer") || err.contains("runtime error") {
                    failed.push(format!("sanitizers {}: {err}", t.display()));
                }
            }
            Ok(o) => failed.push(format!(
                "sanitizers {}: {}: {}",
                t.display(),
                o.status,
                String::from_utf8_lossy(&o.stderr)
            )),
            Err(e) => failed.push(format!("sanitizers {}: {e}", t.display())),
        }
    }
    println!(
        "capi: ASan+UBSan on ioacct-test and {} replays",
        traces.len()
    );
    Ok(failed)
}

/// Runs the task.
pub fn run(args: Args) -> ExitCode {
    let b = match build() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("xtask capi: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = run_test(&[], &b.test, &[], &[]) {
        eprintln!("xtask capi: {e}");
        return ExitCode::FAILURE;
    }
    println!("capi: {} passed", b.test.display());
    // The counting harness must do what its cases name before callgrind
    // counts it (the bench runs it).
    if let Err(e) = run_test(&[], &b.count, &[], &COUNT_SMOKE) {
        eprintln!("xtask capi: {e}");
        return ExitCode::FAILURE;
    }
    if !args.check {
        return ExitCode::SUCCESS;
    }
    match check(&b, &args) {
        Err(e) => {
            eprintln!("xtask capi: {e}");
            ExitCode::from(2)
        }
        Ok(failed) if failed.is_empty() => {
            println!("capi: every check passed");
            ExitCode::SUCCESS
        }
        Ok(failed) => {
            for f in failed.iter().take(30) {
                eprintln!("FAIL {f}");
            }
            eprintln!("xtask capi: {} checks failed", failed.len());
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_traces_are_deterministic_and_replay() {
        let a = random_trace(7, 300);
        assert_eq!(a, random_trace(7, 300));
        assert_ne!(a, random_trace(8, 300));
        let mut r = Replay::new(TrackerKind::SlabExtent);
        let mut outs = 0;
        for l in a.lines() {
            match r.feed(l) {
                Ok(Some(_)) => outs += 1,
                Ok(None) => {}
                Err(_) => break,
            }
        }
        assert!(outs > 10, "the trace boots and runs ops ({outs})");
    }

    #[test]
    fn random_traces_reach_every_kind_of_answer() {
        let mut seen = std::collections::BTreeSet::new();
        for seed in 1..=60 {
            let mut r = Replay::new(TrackerKind::SlabExtent);
            for l in random_trace(seed, 400).lines() {
                match r.feed(l) {
                    Ok(Some(out)) => {
                        let k: Vec<&str> = out.split_whitespace().take(2).collect();
                        seen.insert(match k.as_slice() {
                            ["err", code] => format!("err {code}"),
                            ["ok", "torn"] => "ok torn".to_string(),
                            [first, ..] => (*first).to_string(),
                            [] => String::new(),
                        });
                    }
                    Ok(None) => {}
                    Err(_) => {
                        seen.insert("malformed".to_string());
                        break;
                    }
                }
            }
        }
        for want in [
            "ok",
            "ok torn",
            "pending",
            "allow",
            "deny",
            "state",
            "malformed",
            "err conflict",
            "err in-use",
            "err draining",
            "err reserved",
            "err not-granted",
            "err not-mapped",
            "err bad-range",
            "err out-of-range",
            "err no-such-domain",
            "err quota",
            "err not-io-memory",
            "err domain-exists",
        ] {
            assert!(seen.contains(want), "{want} never answered; saw {seen:?}");
        }
    }

    #[test]
    fn diff_names_the_first_difference() {
        let o = |l: &[&str], s| Outcome {
            lines: l.iter().map(|s| s.to_string()).collect(),
            status: s,
            bad_line: None,
        };
        assert_eq!(diff(&o(&["ok", "deny"], 0), &o(&["ok", "deny"], 0)), None);
        let d = diff(&o(&["ok", "deny"], 0), &o(&["ok", "allow"], 0));
        assert!(d.is_some_and(|d| d.starts_with("output line 2")));
        assert!(diff(&o(&["ok"], 0), &o(&["ok"], 2)).is_some());
        assert!(diff(&o(&["ok"], 0), &o(&["ok", "ok"], 0)).is_some());
    }
}
