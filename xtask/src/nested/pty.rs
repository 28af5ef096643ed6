//! Bochs' own pseudo-terminals, drained so that it never blocks writing
//! its display.
use super::Res;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Debian's Bochs (built with its debugger) draws the `term` display into
/// a pseudo-terminal it opens itself and that nobody reads: after some
/// 20 KiB of screen updates Bochs blocks writing to it, and the guest
/// stops dead in the middle of whatever test runs (seen as "hangs" of
/// tests that happened to be running then). A thread finds the terminals
/// Bochs opened (`/dev/ptmx` descriptors, `tty-index` in their fdinfo),
/// and reads and discards their other side until Bochs exits.
pub(super) fn drain_own_ptys(pid: u32) {
    use std::io::Read as _;
    std::thread::spawn(move || {
        let mut draining: Vec<(String, std::fs::File)> = Vec::new();
        let mut buf = [0u8; 4096];
        let proc_fd = PathBuf::from(format!("/proc/{pid}/fd"));
        while proc_fd.exists() {
            if let Ok(rd) = std::fs::read_dir(&proc_fd) {
                for e in rd.flatten() {
                    let is_ptmx =
                        std::fs::read_link(e.path()).is_ok_and(|l| l == Path::new("/dev/ptmx"));
                    let info = std::fs::read_to_string(format!(
                        "/proc/{pid}/fdinfo/{}",
                        e.file_name().to_string_lossy()
                    ))
                    .unwrap_or_default();
                    let index = info
                        .lines()
                        .find_map(|l| l.strip_prefix("tty-index:"))
                        .map(|i| i.trim().to_string());
                    if let (true, Some(i)) = (is_ptmx, index) {
                        let name = format!("/dev/pts/{i}");
                        if draining.iter().all(|(n, _)| *n != name) {
                            use std::os::unix::fs::OpenOptionsExt as _;
                            if let Ok(f) = std::fs::OpenOptions::new()
                                .read(true)
                                .write(true)
                                .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
                                .open(&name)
                            {
                                draining.push((name, f));
                            }
                        }
                    }
                }
            }
            for (_, f) in draining.iter_mut() {
                while matches!(f.read(&mut buf), Ok(n) if n > 0) {}
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
}

/// A pseudo-terminal for Bochs' standard streams (its `term` display, the
/// only one without X, refuses to start without a terminal), whose output
/// a thread reads and discards. Returns the terminal side.
pub(super) fn drained_pty() -> Res<std::os::fd::OwnedFd> {
    use std::io::Read as _;
    use std::os::fd::FromRawFd as _;
    let (mut m, mut s) = (-1, -1);
    // SAFETY: openpty stores two new descriptors in `m` and `s`; the name,
    // termios and window-size arguments may be null.
    let rc = unsafe {
        libc::openpty(
            &mut m,
            &mut s,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(format!("openpty: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: openpty succeeded, so both are open descriptors that nothing
    // else owns; each is wrapped exactly once.
    let (master, slave) = unsafe {
        (
            std::os::fd::OwnedFd::from_raw_fd(m),
            std::os::fd::OwnedFd::from_raw_fd(s),
        )
    };
    let mut master = std::fs::File::from(master);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        // Ends with EIO once Bochs, the last holder of the terminal side,
        // has exited.
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 {
                break;
            }
        }
    });
    Ok(slave)
}
