//! `cargo xtask ab REV_A [REV_B] [--rounds N] [--quick] [--only PREFIX]
//! [--confirm N] [--cpus LIST] [--env-a VAR=VALUE] [--env-b VAR=VALUE]
//! [--alpha P] [--min-effect F|N%] [--format md|json]`: two revisions
//! measured side by side on this host in one session.
//!
//! 1. Each revision is checked out in a git worktree under `target/ab/`
//!    (`REV_B` defaults to the working tree itself, uncommitted changes
//!    included) and its `ioacct-bench` is built in release mode, each tree
//!    into a target directory of its own ([`target_for`]). One shared
//!    directory is wrong: cargo hashes a workspace crate by its path
//!    relative to the workspace root, so the two trees' `accountant`, `hv`
//!    and `reports` are one unit there, and the side built second silently
//!    links the first side's code. Each binary is copied to
//!    `target/ab/bin/ioacct-bench-TREE`.
//! 2. The binaries run interleaved, A B B A A B …, `--rounds N` rounds
//!    (default 2; each round runs both sides once), so a disturbance on the
//!    shared machine lands on both sides alike.
//! 3. Every metric both sides emit is judged on the within-run samples of
//!    all rounds with a permutation test that relabels samples only within a
//!    round (`reports::gate::compare_ab`, p < 0.01) and the gate's minimum
//!    effects, widened by the committed baseline's noise where it has one;
//!    counts are compared exactly. A metric on one side only is listed.
//! 4. A timing regression is re-measured `--confirm N` times (default 1):
//!    both sides again, interleaved, only the regressed families. It stands
//!    only if it reproduces every time; otherwise it is layout noise (its
//!    operation's instruction count unchanged) or "not reproduced".
//!
//! Writes `target/ab/a.json` and `target/ab/b.json` (each side's first
//! round; every round is kept as `target/ab/{a,b}-rN.json`) and
//! `target/ab/report.html` (B's report with A as its baseline, labelled).
//! Prints the same verdict as `cargo xtask gate`.
//!
//! Options the two binaries do not both accept (`--cpus` on an older
//! revision) are passed only to the side that does, and said so.
//! `--env-b IOACCT_INJECT_PORT_CHECK_SLOWDOWN=10` sets an environment
//! variable for side B only: that one adds a calibrated 10 % spin inside
//! every timed port-check batch (bench harness), which the A/B run must
//! catch.
//!
//! `cargo xtask ab --files A1[,A2…] B1[,B2…]` judges results files already
//! measured (the r-th file of each side is round r) the same way, without
//! building, running or confirming.
//!
//! Exit status: 0 pass, 1 regression, 2 bad usage, 4 side A could not be
//! built or run (CI then falls back to `cargo xtask gate`), 5 side B could
//! not be built or run.
use crate::benchbin::{self, BenchBin, BenchRun};
use crate::judge::{print_report, Format, JudgeArgs};
use crate::report;
use reports::gate::{compare_ab, GateConfig, GateReport, Verdict};
use reports::Results;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// Exit status when side A cannot be built or run.
const EXIT_A_BROKEN: u8 = 4;
/// Exit status when side B cannot be built or run.
const EXIT_B_BROKEN: u8 = 5;

/// `cargo xtask ab`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Exit status: 0 pass (also after confirmation), 1 a regression, 2 bad usage, 4 side A could not be built or run, 5 side B could not.\n\nSide B only: --env-b IOACCT_INJECT_PORT_CHECK_SLOWDOWN=10 slows every timed port-check batch of B by 10 % (bench harness), which the run must catch."
)]
pub struct Args {
    /// Revision A (the reference), e.g. the baseline's commit; with --files, A's results files, comma-separated, one per round.
    rev_a: String,
    /// Revision B [default: the working tree, uncommitted changes included]; with --files, B's results files.
    rev_b: Option<String>,
    /// Interleaved rounds (1 to 50); each runs both sides once, A B then B A.
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=50))]
    rounds: u8,
    /// Run the quick benchmark on both sides.
    #[arg(long)]
    quick: bool,
    /// Measure and judge only the metrics whose name starts with PREFIX.
    #[arg(long, value_name = "PREFIX")]
    only: Option<String>,
    /// Re-measure both sides N times (0 to 5) for each timing regression; it stands only if it reproduces every time.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=5))]
    confirm: u8,
    /// CPUs for the measuring and vCPU threads, passed to each side whose harness accepts --cpus.
    #[arg(long, value_name = "LIST")]
    cpus: Option<String>,
    /// An environment variable for side A only (repeatable).
    #[arg(long = "env-a", value_name = "VAR=VALUE", value_parser = env_pair)]
    env_a: Vec<(String, String)>,
    /// An environment variable for side B only (repeatable), e.g. IOACCT_INJECT_PORT_CHECK_SLOWDOWN=10.
    #[arg(long = "env-b", value_name = "VAR=VALUE", value_parser = env_pair)]
    env_b: Vec<(String, String)>,
    #[command(flatten)]
    judge: JudgeArgs,
    /// Judge results files already measured (REV_A and REV_B are comma-separated files) instead of building and running.
    #[arg(long)]
    files: bool,
}

fn env_pair(v: &str) -> Result<(String, String), String> {
    match v.split_once('=') {
        Some((k, val)) if !k.is_empty() => Ok((k.to_owned(), val.to_owned())),
        _ => Err(format!("expected VAR=VALUE, not `{v}`")),
    }
}

/// The options, checked.
struct Opts {
    files: bool,
    rev_a: String,
    rev_b: Option<String>,
    rounds: usize,
    quick: bool,
    only: Option<String>,
    confirm: usize,
    cpus: Option<String>,
    env_a: Vec<(String, String)>,
    env_b: Vec<(String, String)>,
    cfg: GateConfig,
    format: Format,
}

impl From<Args> for Opts {
    fn from(a: Args) -> Opts {
        let cfg = a.judge.config();
        Opts {
            files: a.files,
            rev_a: a.rev_a,
            rev_b: a.rev_b,
            rounds: usize::from(a.rounds),
            quick: a.quick,
            only: a.only,
            confirm: usize::from(a.confirm),
            cpus: a.cpus,
            env_a: a.env_a,
            env_b: a.env_b,
            cfg,
            format: a.judge.format,
        }
    }
}

/// One side of the comparison, once built.
struct Side {
    /// `A` or `B`.
    label: &'static str,
    /// What the user named, and the commit it resolved to.
    rev: String,
    /// The copied release binary and the tree it was built from (and runs
    /// in).
    bin: BenchBin,
    /// Extra environment for this side.
    env: Vec<(String, String)>,
}

fn git(root: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new("git")
        .current_dir(root)
        .args(args)
        .output()
        .map_err(|e| format!("git: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// `rev` and the full commit it names.
fn resolve(root: &Path, rev: &str) -> Result<(String, String), String> {
    let sha = git(
        root,
        &["rev-parse", "--verify", &format!("{rev}^{{commit}}")],
    )?;
    Ok((rev.to_owned(), sha))
}

/// The tree to build for `rev`: the working tree itself for `None`, else a
/// detached worktree of the commit under `target/ab/`.
fn checkout(root: &Path, dir: &Path, rev: Option<&str>) -> Result<(String, PathBuf), String> {
    let Some(rev) = rev else {
        let head = git(root, &["rev-parse", "--short=12", "HEAD"]).unwrap_or_default();
        return Ok((format!("working tree (HEAD {head})"), root.to_path_buf()));
    };
    let sha = git(
        root,
        &["rev-parse", "--verify", &format!("{rev}^{{commit}}")],
    )?;
    let short: String = sha.chars().take(12).collect();
    let tree = dir.join(format!("wt-{short}"));
    if tree.join(".git").exists() {
        if git(&tree, &["rev-parse", "HEAD"])? == sha {
            return Ok((format!("{rev} ({short})"), tree));
        }
        git(
            root,
            &["worktree", "remove", "--force", &tree.to_string_lossy()],
        )?;
    }
    // A stale registration (directory deleted by hand) would block the add.
    let _ = git(root, &["worktree", "prune"]);
    git(
        root,
        &["worktree", "add", "--detach", &tree.to_string_lossy(), &sha],
    )?;
    Ok((format!("{rev} ({short})"), tree))
}

/// A tree's directory name (`wt-SHA`, or the working tree's), which names
/// its target directory and its binary.
fn tree_name(tree: &Path) -> String {
    tree.file_name()
        .map_or_else(|| "tree".to_owned(), |n| n.to_string_lossy().into_owned())
}

/// The target directory `tree`'s build uses: the working tree's own
/// `target/`, and `target/ab/target-TREE` for a checked-out revision — never
/// one shared by two trees (see the module docs).
fn target_for(root: &Path, dir: &Path, tree: &Path) -> PathBuf {
    if tree == root {
        return root.join("target");
    }
    let name = tree_name(tree);
    dir.join(format!("target-{name}"))
}

/// Builds the bench binary of `tree` into its own target directory and
/// copies it to `target/ab/bin/ioacct-bench-TREE`.
fn build(root: &Path, dir: &Path, tree: &Path, label: &str) -> Result<PathBuf, String> {
    eprintln!("ab: building side {label} in {}", tree.display());
    // Named for the tree, not the side: another A/B session may be running
    // one of these binaries right now.
    let bin = dir
        .join("bin")
        .join(format!("ioacct-bench-{}", tree_name(tree)));
    benchbin::build(tree, &target_for(root, dir, tree), &bin, true)
}

fn prepare(
    root: &Path,
    dir: &Path,
    label: &'static str,
    rev: Option<&str>,
    env: &[(String, String)],
) -> Result<Side, String> {
    let (rev, tree) = checkout(root, dir, rev)?;
    let bin = BenchBin::at(build(root, dir, &tree, label)?, tree)?;
    Ok(Side {
        label,
        rev,
        bin,
        env: env.to_vec(),
    })
}

impl Side {
    /// Runs this side's bench once into `out`.
    fn run(&self, a: &Opts, only: Option<&str>, out: &Path) -> Result<Results, String> {
        let run = BenchRun {
            quick: a.quick,
            only,
            cpus: a.cpus.as_deref(),
            progress: false,
            // Knobs reach a side only when asked for that side.
            env: &self.env,
        };
        self.bin
            .run(&run, out)
            .map_err(|e| format!("side {}: {e}", self.label))
    }
}

/// Runs `rounds` interleaved rounds (A B, then B A, …) into `dir` with file
/// names starting with `tag`.
fn interleave(
    a: &Opts,
    sides: [&Side; 2],
    rounds: usize,
    only: Option<&str>,
    dir: &Path,
    tag: &str,
) -> Result<(Vec<Results>, Vec<Results>), (u8, String)> {
    let (mut ra, mut rb) = (Vec::new(), Vec::new());
    for r in 0..rounds {
        let order = if r % 2 == 0 {
            [sides[0], sides[1]]
        } else {
            [sides[1], sides[0]]
        };
        for s in order {
            eprintln!("ab: round {}/{rounds}: side {} ({})", r + 1, s.label, s.rev);
            let out = dir.join(format!("{tag}{}-r{}.json", s.label.to_lowercase(), r + 1));
            let res = s.run(a, only, &out).map_err(|e| {
                let code = if s.label == "A" {
                    EXIT_A_BROKEN
                } else {
                    EXIT_B_BROKEN
                };
                (code, e)
            })?;
            if s.label == "A" {
                ra.push(res);
            } else {
                rb.push(res);
            }
        }
    }
    Ok((ra, rb))
}

/// Runs the task.
pub fn run(args: Args) -> ExitCode {
    let a = Opts::from(args);
    let root = report::root();
    if a.files {
        return judge_files(&root, &a);
    }
    let dir = root.join("target/ab");
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("xtask ab: {}: {e}", dir.display());
        return ExitCode::from(2);
    }
    // Resolve both revisions before building: a commit made during the
    // build must not change what "HEAD" means for side B.
    let rev_b = match a.rev_b.as_deref().map(|r| resolve(&root, r)).transpose() {
        Ok(r) => r,
        Err(e) => {
            println!("## A/B: side B could not be built: {e}");
            return ExitCode::from(EXIT_B_BROKEN);
        }
    };
    let side_a = match prepare(&root, &dir, "A", Some(&a.rev_a), &a.env_a) {
        Ok(s) => s,
        Err(e) => {
            println!("## A/B: side A ({}) could not be built: {e}", a.rev_a);
            return ExitCode::from(EXIT_A_BROKEN);
        }
    };
    let side_b = match prepare(
        &root,
        &dir,
        "B",
        rev_b.as_ref().map(|(_, sha)| sha.as_str()),
        &a.env_b,
    ) {
        Ok(s) => s,
        Err(e) => {
            let b = a.rev_b.as_deref().unwrap_or("working tree");
            println!("## A/B: side B ({b}) could not be built: {e}");
            return ExitCode::from(EXIT_B_BROKEN);
        }
    };
    let (ra, rb) = match interleave(
        &a,
        [&side_a, &side_b],
        a.rounds,
        a.only.as_deref(),
        &dir,
        "",
    ) {
        Ok(v) => v,
        Err((code, e)) => {
            println!("## A/B: could not run: {e}");
            return ExitCode::from(code);
        }
    };
    let committed = Results::load(&root.join("bench/baseline.json")).ok();
    let mut g = compare_ab(&ra, &rb, &a.cfg, a.only.as_deref(), committed.as_ref());
    describe(&mut g, &a, [&side_a, &side_b], &rb);
    confirm(&a, [&side_a, &side_b], &dir, &committed, &mut g);
    if let Err(e) = write_outputs(&dir, &ra, &rb, [&side_a, &side_b]) {
        g.notes.push(format!("Could not write the A/B files: {e}"));
    }
    print_report(&g, a.format);
    ExitCode::from(g.outcome().exit_code())
}

/// `--files A1[,A2…] B1[,B2…]`: judges results already measured (round r
/// of each side = the r-th file), with no build, run or confirmation.
fn judge_files(root: &Path, a: &Opts) -> ExitCode {
    let load = |list: &str| -> Result<Vec<Results>, String> {
        list.split(',')
            .map(|f| Results::load(Path::new(f)).map_err(|e| e.to_string()))
            .collect()
    };
    let Some(rev_b) = a.rev_b.as_deref() else {
        eprintln!("xtask ab: --files needs the files of side A and of side B");
        return ExitCode::from(2);
    };
    let (ra, rb) = match (load(&a.rev_a), load(rev_b)) {
        (Ok(x), Ok(y)) if x.len() == y.len() => (x, y),
        (Ok(_), Ok(_)) => {
            eprintln!("xtask ab: both sides need the same number of rounds");
            return ExitCode::from(2);
        }
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("xtask ab: {e}");
            return ExitCode::from(2);
        }
    };
    let committed = Results::load(&root.join("bench/baseline.json")).ok();
    let mut g = compare_ab(&ra, &rb, &a.cfg, a.only.as_deref(), committed.as_ref());
    g.notes.push(format!(
        "A = {}, B = {} ({} round(s) judged from files; no confirmation).",
        a.rev_a,
        rev_b,
        ra.len()
    ));
    print_report(&g, a.format);
    ExitCode::from(g.outcome().exit_code())
}

/// The notes that say what was compared.
fn describe(g: &mut GateReport, a: &Opts, sides: [&Side; 2], rb: &[Results]) {
    g.notes.push(format!(
        "A = {}, B = {}{}; {} interleaved round(s) of `ioacct-bench{}{}`, same host.",
        sides[0].rev,
        sides[1].rev,
        if sides[1].env.is_empty() && sides[0].env.is_empty() {
            String::new()
        } else {
            format!(" (environment: A {:?}, B {:?})", sides[0].env, sides[1].env)
        },
        a.rounds,
        if a.quick { " --quick" } else { "" },
        a.only
            .as_deref()
            .map(|o| format!(" --only {o}"))
            .unwrap_or_default(),
    ));
    if a.cpus.is_some() {
        for s in sides.iter().filter(|s| !s.bin.accepts("--cpus")) {
            g.notes.push(format!(
                "Side {}'s harness has no --cpus: it ran with its own placement.",
                s.label
            ));
        }
    }
    let one_side = g
        .findings
        .iter()
        .filter(|f| matches!(f.verdict, Verdict::OneSide(_)))
        .count();
    if one_side > 0 {
        g.notes.push(format!(
            "{one_side} metric(s) emitted by one side only: listed, not judged."
        ));
    }
    if let Some(n) = rb.first().and_then(reports::gate::valgrind_note) {
        g.notes.push(n);
    }
}

/// Re-measures the families of timing regressions on both sides, interleaved
/// as the run was ([`reports::gate::confirm`]); clears the ones that do not
/// reproduce in every confirmation.
fn confirm(
    a: &Opts,
    sides: [&Side; 2],
    dir: &Path,
    committed: &Option<Results>,
    g: &mut GateReport,
) {
    let what = "of both sides for the alarmed families";
    reports::gate::confirm(g, a.confirm, what, |round, i, name| {
        eprintln!("ab: confirmation {round}: {name}");
        let tag = format!("confirm{round}-{i}-");
        let (ca, cb) = interleave(a, sides, 2, Some(name), dir, &tag).map_err(|(_, e)| {
            format!("Confirmation of `{name}` could not run ({e}): it stands.")
        })?;
        Ok(compare_ab(&ca, &cb, &a.cfg, Some(name), committed.as_ref()))
    });
}

/// `a.json`, `b.json` (first rounds) and the labelled HTML report.
fn write_outputs(
    dir: &Path,
    ra: &[Results],
    rb: &[Results],
    sides: [&Side; 2],
) -> Result<(), String> {
    let (Some(a), Some(b)) = (ra.first(), rb.first()) else {
        return Err("no rounds".to_owned());
    };
    for (name, r) in [("a.json", a), ("b.json", b)] {
        let p = dir.join(name);
        std::fs::write(&p, r.to_json()).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    let mut context = reports::html::Context::build(b, Some(a));
    context.comparison_title = format!(
        "Comparison with baseline — A/B run: baseline = side A, {}; results = side B, {}",
        sides[0].rev, sides[1].rev
    );
    let html = reports::html::render(&context);
    let p = dir.join("report.html");
    std::fs::write(&p, html).map_err(|e| format!("{}: {e}", p.display()))?;
    eprintln!(
        "ab: {} {} {}",
        dir.join("a.json").display(),
        dir.join("b.json").display(),
        p.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_tree_builds_in_a_target_directory_of_its_own() {
        let root = Path::new("/r");
        let dir = root.join("target/ab");
        let a = target_for(root, &dir, &dir.join("wt-aaaa"));
        let b = target_for(root, &dir, &dir.join("wt-bbbb"));
        let w = target_for(root, &dir, root);
        assert_eq!(w, root.join("target"));
        assert!(a != b && a != w && b != w);
        assert_eq!(a, dir.join("target-wt-aaaa"));
    }
}
