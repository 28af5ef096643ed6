//! The host's side of the emulated back ends: the Debian packages they
//! need, and running commands with their failures as messages.
use super::Res;
use std::path::Path;
use std::process::{Command, Stdio};

/// The Debian packages the emulated back ends use, with a file each
/// installs (present means installed).
const PACKAGES: &[(&str, &str)] = &[
    ("qemu-system-x86", "/usr/bin/qemu-system-x86_64"),
    ("bochs", "/usr/bin/bochs"),
    ("bochsbios", "/usr/share/bochs/BIOS-bochs-latest"),
    ("vgabios", "/usr/share/vgabios/vgabios.bin"),
    (
        "bochs-term",
        "/usr/lib/x86_64-linux-gnu/bochs/plugins/libbx_term_gui.so",
    ),
    ("busybox-static", "/bin/busybox"),
    ("isolinux", "/usr/lib/ISOLINUX/isolinux.bin"),
    (
        "syslinux-common",
        "/usr/lib/syslinux/modules/bios/ldlinux.c32",
    ),
    ("xorriso", "/usr/bin/xorriso"),
    ("cpio", "/usr/bin/cpio"),
];

pub(super) fn have(file: &str) -> bool {
    Path::new(file).exists()
}

pub(super) fn ensure_packages() -> Res<()> {
    let missing: Vec<&str> = PACKAGES
        .iter()
        .filter(|(_, f)| !have(f))
        .map(|(p, _)| *p)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if !root || !have("/usr/bin/apt-get") {
        return Err(format!(
            "the emulated back ends need these Debian packages: {} (run as root on Debian/Ubuntu to have them installed, or install them yourself)",
            missing.join(" ")
        ));
    }
    eprintln!("xtask nested: installing {}", missing.join(" "));
    sh(Command::new("apt-get").args(["update", "-qq"]))?;
    sh(Command::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing))?;
    let still: Vec<&str> = PACKAGES
        .iter()
        .filter(|(_, f)| !have(f))
        .map(|(p, _)| *p)
        .collect();
    if still.is_empty() {
        Ok(())
    } else {
        Err(format!("installed, yet missing: {}", still.join(" ")))
    }
}

/// Runs a command to completion, its output shown; an error unless it
/// succeeded.
pub(super) fn sh(cmd: &mut Command) -> Res<()> {
    let what = format!("{cmd:?}");
    match cmd.status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("{what}: {s}")),
        Err(e) => Err(format!("{what}: {e}")),
    }
}

/// Runs a command and returns its stdout.
pub(super) fn output(cmd: &mut Command) -> Res<String> {
    let what = format!("{cmd:?}");
    match cmd.stderr(Stdio::inherit()).output() {
        Ok(o) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout).into_owned()),
        Ok(o) => Err(format!("{what}: {}", o.status)),
        Err(e) => Err(format!("{what}: {e}")),
    }
}
