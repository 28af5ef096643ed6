//! The guest image: Debian's kernel and the KVM modules it loads, and the
//! initramfs that holds them, the init script, the plan and the binaries.
use super::host::{output, sh};
use super::plan::{Backend, Built, Step};
use super::runner::write_plan;
use super::Res;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The kernel modules loaded in the guest (their dependencies are found in
/// each module's `depends=` and loaded first).
const MODULES: &[&str] = &["kvm-amd", "kvm-intel"];

/// The guest kernel and the modules it loads, in load order.
pub(super) struct Kernel {
    pub(super) vmlinuz: PathBuf,
    pub(super) modules: Vec<PathBuf>,
}

pub(super) fn fetch_kernel(work: &Path) -> Res<Kernel> {
    let cache = work.join("cache");
    std::fs::create_dir_all(&cache).map_err(|e| e.to_string())?;
    let deps = output(Command::new("apt-cache").args(["depends", "linux-image-amd64"]))?;
    let pkg = deps
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .map(str::trim)
        .find(|p| p.starts_with("linux-image-") && p.ends_with("-amd64"))
        .map(str::to_string)
        .ok_or("apt-cache names no linux-image-*-amd64 for linux-image-amd64 (apt-get update?)")?;
    let has_deb = |dir: &Path| -> Option<PathBuf> {
        std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("{pkg}_")) && n.ends_with(".deb"))
            })
    };
    let deb = match has_deb(&cache) {
        Some(d) => d,
        None => {
            eprintln!("xtask nested: apt-get download {pkg}");
            sh(Command::new("apt-get")
                .current_dir(&cache)
                .args(["download", &pkg]))?;
            has_deb(&cache).ok_or("apt-get download left no .deb")?
        }
    };
    let tree = cache.join(&pkg);
    if !tree.join("boot").exists() {
        sh(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tree))?;
    }
    let boot = std::fs::read_dir(tree.join("boot")).map_err(|e| e.to_string())?;
    let vmlinuz = boot
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-"))
        })
        .ok_or("no boot/vmlinuz-* in the kernel package")?;
    let mut all = BTreeMap::new();
    collect_modules(&tree.join("lib/modules"), &mut all);
    let mut order = Vec::new();
    for m in MODULES {
        add_module(m, &all, &mut order, 0)?;
    }
    Ok(Kernel {
        vmlinuz,
        modules: order,
    })
}

/// Module name (with `_`) → path, for every uncompressed `.ko` below `dir`.
fn collect_modules(dir: &Path, out: &mut BTreeMap<String, PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect_modules(&p, out);
        } else if let Some(n) = p.file_name().and_then(|n| n.to_str()) {
            if let Some(stem) = n.strip_suffix(".ko") {
                out.insert(stem.replace('-', "_"), p.clone());
            }
        }
    }
}

/// Appends `name` after its dependencies (from the module's `depends=`).
fn add_module(
    name: &str,
    all: &BTreeMap<String, PathBuf>,
    order: &mut Vec<PathBuf>,
    depth: u32,
) -> Res<()> {
    let key = name.replace('-', "_");
    let path = all
        .get(&key)
        .ok_or_else(|| format!("module {name} not in the kernel package"))?;
    if order.contains(path) {
        return Ok(());
    }
    if depth > 16 {
        return Err(format!("module dependencies too deep at {name}"));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let deps = modinfo_depends(&bytes);
    for d in deps.split(',').filter(|d| !d.is_empty()) {
        add_module(d, all, order, depth + 1)?;
    }
    order.push(path.clone());
    Ok(())
}

/// The `depends=` value of a module's `.modinfo` strings.
fn modinfo_depends(ko: &[u8]) -> String {
    let key = b"depends=";
    let mut i = 0;
    while i + key.len() <= ko.len() {
        if &ko[i..i + key.len()] == key && (i == 0 || ko[i - 1] == 0) {
            let start = i + key.len();
            let end = ko[start..]
                .iter()
                .position(|&c| c == 0)
                .map_or(ko.len(), |p| start + p);
            return String::from_utf8_lossy(&ko[start..end]).into_owned();
        }
        i += 1;
    }
    String::new()
}

const INIT: &str = include_str!("../../nested/init");

/// Builds an uncompressed initramfs (a Bochs guest would take minutes to
/// decompress one) holding busybox, the binaries, their libraries, the
/// modules, the plan and the init script.
pub(super) fn initramfs(
    work: &Path,
    b: Backend,
    k: &Kernel,
    built: &Built,
    steps: &[Step],
) -> Res<PathBuf> {
    let dir = work.join(format!("{}-root", b.name()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| e.to_string())?;
    }
    for d in ["bin", "x", "modules", "proc", "sys", "dev", "tmp"] {
        std::fs::create_dir_all(dir.join(d)).map_err(|e| e.to_string())?;
    }
    let copy = |from: &Path, to: &Path| -> Res<()> {
        if let Some(p) = to.parent() {
            std::fs::create_dir_all(p).map_err(|e| e.to_string())?;
        }
        std::fs::copy(from, to)
            .map(|_| ())
            .map_err(|e| format!("{} → {}: {e}", from.display(), to.display()))
    };
    copy(Path::new("/bin/busybox"), &dir.join("bin/busybox"))?;
    let mut bins: Vec<(PathBuf, String)> = built
        .tests
        .iter()
        .map(|t| (t.path.clone(), format!("t-{}", t.name)))
        .collect();
    bins.push((built.xtask.clone(), "xtask".into()));
    bins.push((built.bench.clone(), "ioacct-bench".into()));
    let mut libs = std::collections::BTreeSet::new();
    for (from, name) in &bins {
        let to = dir.join("x").join(name);
        // Debug info is most of a test binary; symbols stay for backtraces.
        sh(Command::new("objcopy")
            .arg("--strip-debug")
            .arg(from)
            .arg(&to))?;
        let ldd = output(Command::new("ldd").arg(from))?;
        for l in ldd.lines() {
            if let Some(p) = l.split_whitespace().find(|w| w.starts_with('/')) {
                libs.insert(PathBuf::from(p));
            }
        }
    }
    for l in &libs {
        let real = std::fs::canonicalize(l).map_err(|e| format!("{}: {e}", l.display()))?;
        let rel = l.strip_prefix("/").map_err(|e| e.to_string())?;
        copy(&real, &dir.join(rel))?;
    }
    let mut order = String::new();
    for m in &k.modules {
        let n = m
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or("module name")?;
        copy(m, &dir.join("modules").join(n))?;
        order.push_str(n);
        order.push('\n');
    }
    std::fs::write(dir.join("modules/order"), order).map_err(|e| e.to_string())?;
    write_plan(&dir.join("plan"), steps)?;
    let init = dir.join("init");
    std::fs::write(&init, INIT).map_err(|e| e.to_string())?;
    sh(Command::new("chmod").arg("755").arg(&init))?;
    let img = work.join(format!("{}-initrd.cpio", b.name()));
    let f = std::fs::File::create(&img).map_err(|e| e.to_string())?;
    let mut cpio = Command::new("cpio")
        .args(["-o", "-H", "newc", "--quiet"])
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(f)
        .spawn()
        .map_err(|e| format!("cpio: {e}"))?;
    let list = output(Command::new("find").arg(".").current_dir(&dir))?;
    if let Some(mut stdin) = cpio.stdin.take() {
        stdin
            .write_all(list.as_bytes())
            .map_err(|e| format!("cpio: {e}"))?;
    }
    let s = cpio.wait().map_err(|e| format!("cpio: {e}"))?;
    if !s.success() {
        return Err(format!("cpio: {s}"));
    }
    Ok(img)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modinfo_depends_is_read_from_the_strings() {
        let ko = b"\x7fELF...\0license=GPL\0depends=kvm,ccp\0vermagic=6.1\0";
        assert_eq!(modinfo_depends(ko), "kvm,ccp");
        assert_eq!(modinfo_depends(b"\0depends=\0"), "");
        assert_eq!(modinfo_depends(b"nothing here"), "");
    }
}
