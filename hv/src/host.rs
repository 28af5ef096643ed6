//! What kind of KVM this host offers, recorded with every result.

use std::path::Path;

/// The virtualization under `/dev/kvm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VirtKind {
    /// PVM (`kvm_pvm` module): software virtualization with shadow paging,
    /// usually nested; guest code runs natively only at CPL3 in long mode.
    Pvm,
    /// Intel VT-x (`vmx` in CPUID).
    VtX,
    /// AMD-V (`svm` in CPUID).
    AmdV,
    /// None of the above was recognised.
    Unknown,
}

impl VirtKind {
    /// `pvm`, `vt-x`, `amd-v`, `unknown`.
    pub fn name(self) -> &'static str {
        match self {
            VirtKind::Pvm => "pvm",
            VirtKind::VtX => "vt-x",
            VirtKind::AmdV => "amd-v",
            VirtKind::Unknown => "unknown",
        }
    }
}

/// The host as measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostInfo {
    /// The virtualization kind.
    pub kind: VirtKind,
    /// `/sys/module/kvm_pvm` exists.
    pub kvm_pvm_module: bool,
    /// CPUID advertises VMX.
    pub cpu_vmx: bool,
    /// CPUID advertises SVM.
    pub cpu_svm: bool,
    /// CPU model name.
    pub cpu_model: String,
    /// CPU vendor id.
    pub cpu_vendor: String,
    /// Kernel release.
    pub kernel: String,
    /// Whether `/dev/kvm` exists.
    pub dev_kvm: bool,
}

fn cpuinfo_field(text: &str, key: &str) -> Option<String> {
    text.lines()
        .find(|l| l.split(':').next().is_some_and(|k| k.trim() == key))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

/// Classifies from the raw facts (separate for testing).
pub fn classify(kvm_pvm_module: bool, vmx: bool, svm: bool) -> VirtKind {
    if kvm_pvm_module {
        VirtKind::Pvm
    } else if vmx {
        VirtKind::VtX
    } else if svm {
        VirtKind::AmdV
    } else {
        VirtKind::Unknown
    }
}

/// Detects the host from `/proc/cpuinfo`, `/sys/module` and `uname`.
pub fn detect() -> HostInfo {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let flags = cpuinfo_field(&cpuinfo, "flags").unwrap_or_default();
    let has = |f: &str| flags.split_whitespace().any(|x| x == f);
    let kvm_pvm_module = Path::new("/sys/module/kvm_pvm").exists();
    let (cpu_vmx, cpu_svm) = (has("vmx"), has("svm"));
    HostInfo {
        kind: classify(kvm_pvm_module, cpu_vmx, cpu_svm),
        kvm_pvm_module,
        cpu_vmx,
        cpu_svm,
        cpu_model: cpuinfo_field(&cpuinfo, "model name").unwrap_or_default(),
        cpu_vendor: cpuinfo_field(&cpuinfo, "vendor_id").unwrap_or_default(),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
        dev_kvm: Path::new("/dev/kvm").exists(),
    }
}

/// For tests and tools that need `/dev/kvm`: `true` when it can be opened.
/// When it cannot: under `CI=true` this panics (a missing `/dev/kvm` must
/// fail CI), elsewhere it prints that `what` is skipped and returns `false`.
#[allow(clippy::panic)]
pub fn require_kvm(what: &str) -> bool {
    match kvm_ioctls::Kvm::new() {
        Ok(_) => true,
        Err(e) => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!(
                    "{what}: /dev/kvm unavailable (errno {}) under CI=true",
                    e.errno()
                );
            }
            eprintln!(
                "{what}: skipped, /dev/kvm unavailable (errno {})",
                e.errno()
            );
            false
        }
    }
}

/// Pins the calling thread to host CPU `cpu`; the errno if the kernel
/// refuses (no such CPU, or not in the process's allowed set).
pub fn pin_current_thread(cpu: usize) -> Result<(), i32> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(libc::EINVAL);
    }
    // SAFETY: `cpu_set_t` is a plain bitmask for which all-zero is valid;
    // `CPU_SET` is given an index below `CPU_SETSIZE` (checked above), and
    // `sched_setaffinity(0, ..)` reads exactly `size_of::<cpu_set_t>()`
    // bytes of the set, for the calling thread.
    let r = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }
}

/// The host CPU the calling thread runs on (`sched_getcpu`), if known.
pub fn current_cpu() -> Option<u32> {
    // SAFETY: `sched_getcpu` takes no arguments and only returns a value.
    let c = unsafe { libc::sched_getcpu() };
    u32::try_from(c).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pvm_wins_over_cpu_flags() {
        assert_eq!(classify(true, true, false), VirtKind::Pvm);
        assert_eq!(classify(false, true, false), VirtKind::VtX);
        assert_eq!(classify(false, false, true), VirtKind::AmdV);
        assert_eq!(classify(false, false, false), VirtKind::Unknown);
        assert_eq!(
            cpuinfo_field("vendor_id\t: GenuineIntel\nflags\t\t: fpu vmx\n", "flags").as_deref(),
            Some("fpu vmx")
        );
    }
}
