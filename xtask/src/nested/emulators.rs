//! The emulators: QEMU TCG (AMD-V) and Bochs (VT-x) booted on the image
//! until the plan is done, watched for stalls.
use super::host::sh;
use super::image::{initramfs, Kernel};
use super::plan::{Backend, Built, Step};
use super::pty::{drain_own_ptys, drained_pty};
use super::results::{parse_log, Outcome};
use super::Res;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CMDLINE: &str = "console=ttyS0,115200 panic=-1 rdinit=/init mitigations=off";

/// Boots the back end's emulator until the plan is done, booting again for
/// the rest of the plan after a stall (the test running then is recorded
/// as hung).
pub(super) fn run_emulated(
    b: Backend,
    work: &Path,
    k: &Kernel,
    built: &Built,
    steps: &[Step],
    cpus: u32,
    stall: Duration,
) -> Res<Outcome> {
    let mut left: Vec<Step> = steps.to_vec();
    let mut text = String::new();
    let mut hung: Vec<String> = Vec::new();
    let mut boots = 0;
    while !left.is_empty() && boots < 3 {
        boots += 1;
        let img = initramfs(work, b, k, built, &left)?;
        let log = work.join(format!("{}-serial-{boots}.log", b.name()));
        let _ = std::fs::remove_file(&log);
        eprintln!(
            "xtask nested {}: boot {boots}, {} steps, serial log {}",
            b.name(),
            left.len(),
            log.display()
        );
        let mut child = match b {
            Backend::Svm => qemu(k, &img, &log, cpus)?,
            Backend::Vmx => bochs(work, k, &img, &log, cpus)?,
            Backend::Host => return Err("host is not emulated".into()),
        };
        let stalled = watch(&mut child, &log, stall);
        let part = std::fs::read_to_string(&log).unwrap_or_default();
        let o = parse_log(&part, &left, &[]);
        text.push_str(&part);
        let done = |s: &Step| o.results.contains_key(&s.id);
        if stalled {
            // The step that started and never finished is the hung one.
            let cur = part
                .lines()
                .filter_map(|l| l.trim_end_matches('\r').strip_prefix("NESTED start "))
                .next_back()
                .map(|s| s.trim().to_string());
            match cur {
                Some(c) if !o.results.contains_key(&c) => {
                    eprintln!(
                        "xtask nested {}: {c} hung (no output for {stall:?})",
                        b.name()
                    );
                    hung.push(c);
                }
                _ => break,
            }
        } else if !part.contains("NESTED end") {
            break;
        }
        left.retain(|s| !done(s) && !hung.contains(&s.id));
    }
    let mut o = parse_log(&text, steps, &hung);
    o.boots = boots;
    Ok(o)
}

/// Waits for the emulator to exit; kills it and returns `true` when the log
/// has had nothing but heartbeats for `stall`.
pub(super) fn watch(child: &mut std::process::Child, log: &Path, stall: Duration) -> bool {
    let mut last_len = 0;
    let mut last_work = 0;
    let mut last_change = Instant::now();
    let booted = Instant::now();
    let mut shown = 0usize;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        let len = std::fs::metadata(log).map(|m| m.len()).unwrap_or(0);
        if len != last_len {
            last_len = len;
            let text = std::fs::read(log).unwrap_or_default();
            let text = String::from_utf8_lossy(&text);
            let mut work = 0;
            let mut marks = Vec::new();
            for l in text.lines() {
                if l.starts_with("NESTED heartbeat") {
                    continue;
                }
                work += l.len() + 1;
                if l.starts_with("NESTED ") {
                    marks.push(l.trim_end());
                }
            }
            if work != last_work {
                last_work = work;
                last_change = Instant::now();
            }
            // Done: a Bochs guest's few seconds before powering off are
            // minutes of wall time; the serial log is complete already.
            if marks.contains(&"NESTED end") {
                std::thread::sleep(Duration::from_secs(3));
                kill_group(child);
                return false;
            }
            // Progress: echo the runner's lines as they come, with the
            // wall time since the emulator started.
            for l in marks.iter().skip(shown) {
                eprintln!("  [{:>5.0} s] {l}", booted.elapsed().as_secs_f64());
            }
            shown = marks.len();
        }
        if last_change.elapsed() > stall {
            kill_group(child);
            return true;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Kills the emulator's whole process group.
fn kill_group(child: &mut std::process::Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: the child was spawned as the leader of its own process
        // group (`process_group(0)`) and has not been reaped (we still hold
        // it), so `-pid` names only that group.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.wait();
}

pub(super) fn qemu(k: &Kernel, img: &Path, log: &Path, cpus: u32) -> Res<std::process::Child> {
    Command::new("qemu-system-x86_64")
        .args(["-accel", "tcg,thread=multi", "-cpu", "max", "-m", "3G"])
        .arg("-smp")
        .arg(cpus.to_string())
        .arg("-kernel")
        .arg(&k.vmlinuz)
        .arg("-initrd")
        .arg(img)
        .args(["-append", CMDLINE])
        .args(["-display", "none", "-monitor", "none", "-no-reboot"])
        .arg("-serial")
        .arg(format!("file:{}", log.display()))
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("qemu-system-x86_64: {e}"))
}

/// Bochs boots from an ISO (isolinux); its debugger-enabled build stops at
/// a prompt unless its command file says `c`, and its `term` display needs
/// a terminal ([`drained_pty`]).
pub(super) fn bochs(
    work: &Path,
    k: &Kernel,
    img: &Path,
    log: &Path,
    cpus: u32,
) -> Res<std::process::Child> {
    let iso_dir = work.join("vmx-iso");
    if iso_dir.exists() {
        std::fs::remove_dir_all(&iso_dir).map_err(|e| e.to_string())?;
    }
    std::fs::create_dir_all(iso_dir.join("isolinux")).map_err(|e| e.to_string())?;
    let cp = |from: &Path, to: &str| {
        std::fs::copy(from, iso_dir.join(to))
            .map(|_| ())
            .map_err(|e| format!("{}: {e}", from.display()))
    };
    cp(
        Path::new("/usr/lib/ISOLINUX/isolinux.bin"),
        "isolinux/isolinux.bin",
    )?;
    cp(
        Path::new("/usr/lib/syslinux/modules/bios/ldlinux.c32"),
        "isolinux/ldlinux.c32",
    )?;
    cp(&k.vmlinuz, "vmlinuz")?;
    cp(img, "initrd")?;
    std::fs::write(
        iso_dir.join("isolinux/isolinux.cfg"),
        format!("DEFAULT linux\nPROMPT 0\nLABEL linux\n  KERNEL /vmlinuz\n  APPEND initrd=/initrd {CMDLINE}\n"),
    )
    .map_err(|e| e.to_string())?;
    let iso = work.join("vmx.iso");
    let _ = std::fs::remove_file(&iso);
    sh(Command::new("xorriso")
        .stderr(Stdio::null())
        .args(["-as", "mkisofs", "-quiet", "-o"])
        .arg(&iso)
        .args([
            "-b",
            "isolinux/isolinux.bin",
            "-c",
            "isolinux/boot.cat",
            "-no-emul-boot",
            "-boot-load-size",
            "4",
            "-boot-info-table",
        ])
        .arg(&iso_dir))?;
    let rc = work.join("bochsrc");
    std::fs::write(
        &rc,
        format!(
            "megs: 2048
cpu: model=corei7_skylake_x, count={cpus}
romimage: file=/usr/share/bochs/BIOS-bochs-latest
vgaromimage: file=/usr/share/vgabios/vgabios.bin
ata0-master: type=cdrom, path={iso}, status=inserted
boot: cdrom
com1: enabled=1, mode=file, dev={log}
display_library: term
clock: sync=none, time0=local
log: {blog}
panic: action=fatal
error: action=report
info: action=ignore
debug: action=ignore
",
            iso = iso.display(),
            log = log.display(),
            blog = work.join("bochs.log").display(),
        ),
    )
    .map_err(|e| e.to_string())?;
    let cmds = work.join("bochs.cmds");
    std::fs::write(&cmds, "c\n").map_err(|e| e.to_string())?;
    let tty = drained_pty()?;
    let (tin, tout) = (
        tty.try_clone().map_err(|e| format!("pty: {e}"))?,
        tty.try_clone().map_err(|e| format!("pty: {e}"))?,
    );
    let child = Command::new("bochs")
        .arg("-q")
        .arg("-f")
        .arg(&rc)
        .arg("-rc")
        .arg(&cmds)
        .env("TERM", "xterm")
        .env("COLUMNS", "80")
        .env("LINES", "25")
        .process_group(0)
        .stdin(Stdio::from(tin))
        .stdout(Stdio::from(tout))
        .stderr(Stdio::from(tty))
        .spawn()
        .map_err(|e| format!("bochs: {e}"))?;
    drain_own_ptys(child.id());
    Ok(child)
}
