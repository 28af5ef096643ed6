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

/// Port-exit counters that contradict the host's virtualization kind (see
/// [`check_exit_path`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitPathError {
    /// No port exit was counted at all: nothing was exercised.
    NoPortExits,
    /// On VT-x or AMD-V a port access took the PVM #GP fallback.
    TrappedOnHardware {
        /// The host kind.
        kind: VirtKind,
        /// Trapped port exits counted.
        trapped: u64,
    },
    /// On PVM no port access took the #GP fallback, so the counters do not
    /// come from the path PVM must use.
    NoTrapOnPvm {
        /// Native port exits counted.
        native: u64,
    },
}

impl std::fmt::Display for ExitPathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitPathError::NoPortExits => write!(f, "no port exit was counted"),
            ExitPathError::TrappedOnHardware { kind, trapped } => write!(
                f,
                "{trapped} port exit(s) took the PVM #GP fallback on {}",
                kind.name()
            ),
            ExitPathError::NoTrapOnPvm { native } => write!(
                f,
                "no port exit took the #GP fallback on pvm ({native} native)"
            ),
        }
    }
}

impl std::error::Error for ExitPathError {}

/// Checks that the port exits counted on a host of `kind` took the path that
/// host must use: on VT-x and AMD-V native exits only (`native > 0`,
/// `trapped == 0`), on PVM the #GP fallback (`trapped > 0`); on an
/// unrecognised host only that some port exit happened.
pub fn check_exit_path(kind: VirtKind, native: u64, trapped: u64) -> Result<(), ExitPathError> {
    match kind {
        _ if native == 0 && trapped == 0 => Err(ExitPathError::NoPortExits),
        VirtKind::VtX | VirtKind::AmdV if trapped > 0 => {
            Err(ExitPathError::TrappedOnHardware { kind, trapped })
        }
        VirtKind::Pvm if trapped == 0 => Err(ExitPathError::NoTrapOnPvm { native }),
        _ => Ok(()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_combination_of_facts() {
        // (kvm_pvm module, vmx flag, svm flag) -> kind: the PVM module is
        // authoritative (a PVM host may still show the L0 CPU's flags);
        // then VT-x, then AMD-V.
        let table = [
            ((false, false, false), VirtKind::Unknown),
            ((false, false, true), VirtKind::AmdV),
            ((false, true, false), VirtKind::VtX),
            ((false, true, true), VirtKind::VtX),
            ((true, false, false), VirtKind::Pvm),
            ((true, false, true), VirtKind::Pvm),
            ((true, true, false), VirtKind::Pvm),
            ((true, true, true), VirtKind::Pvm),
        ];
        for ((pvm, vmx, svm), want) in table {
            assert_eq!(classify(pvm, vmx, svm), want, "{pvm} {vmx} {svm}");
        }
        assert_eq!(
            [
                VirtKind::Pvm,
                VirtKind::VtX,
                VirtKind::AmdV,
                VirtKind::Unknown
            ]
            .map(VirtKind::name),
            ["pvm", "vt-x", "amd-v", "unknown"]
        );
    }

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

    #[test]
    fn the_exit_path_must_match_the_host() {
        use VirtKind::*;
        assert_eq!(check_exit_path(VtX, 5, 0), Ok(()));
        assert_eq!(check_exit_path(AmdV, 1, 0), Ok(()));
        assert_eq!(check_exit_path(Pvm, 0, 9), Ok(()));
        assert_eq!(check_exit_path(Unknown, 0, 9), Ok(()));
        assert_eq!(
            check_exit_path(VtX, 5, 1),
            Err(ExitPathError::TrappedOnHardware {
                kind: VtX,
                trapped: 1
            })
        );
        assert_eq!(
            check_exit_path(AmdV, 0, 3),
            Err(ExitPathError::TrappedOnHardware {
                kind: AmdV,
                trapped: 3
            })
        );
        assert_eq!(
            check_exit_path(Pvm, 4, 0),
            Err(ExitPathError::NoTrapOnPvm { native: 4 })
        );
        for k in [VtX, AmdV, Pvm, Unknown] {
            assert_eq!(check_exit_path(k, 0, 0), Err(ExitPathError::NoPortExits));
        }
    }
}
