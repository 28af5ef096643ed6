//! Host identity: when two hosts' timings are comparable.

use crate::schema::Host;

/// The part of a kernel release that identifies the kernel a timing ran
/// on: the release without a trailing build counter `-vN`
/// (`6.18.44-fc-v1045` → `6.18.44-fc`).
///
/// The rule rests on what was measured on this project's PVM hosts. Their
/// kernels differ only in that counter (`-v1045` when the baseline was
/// taken, `-v1252` and `-v1272` on later machines): each machine runs the
/// next build of one source tree by one compiler (`/proc/version`: GCC
/// 15.3.0, binutils 2.46). Code the bench measures that did not change
/// between the baseline's commit and a run on `-v1252` — the flat bitmap
/// port check (`bench/src/peers.rs`) — gave normalised medians within
/// 2.5 % of the baseline's at all five grant counts (1.648 against 1.680
/// at one grant), inside its 5 % minimum effect, under a load average of
/// about 12; absolute speed differed by 12 % (1.179 against 1.336 ns per
/// reference unit), which normalisation cancels. Any other difference —
/// version, flavour, a counter in another form — still makes another host:
/// no measurement says such a counter only counts builds.
pub fn kernel_identity(release: &str) -> &str {
    match release.rsplit_once('-') {
        Some((head, tail))
            if !head.is_empty()
                && tail.len() > 1
                && tail.starts_with('v')
                && tail[1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            head
        }
        _ => release,
    }
}

/// How two hosts differ in what makes timings comparable: CPU model,
/// vendor, virtualization, kernel (by [`kernel_identity`]) and CPU count
/// (empty when they match).
pub fn host_mismatch(baseline: &Host, current: &Host) -> Vec<String> {
    let mut out = Vec::new();
    let mut field = |what: &str, a: &str, b: &str| {
        if a != b {
            out.push(format!("{what} `{a}` in the baseline, `{b}` here"));
        }
    };
    field("CPU model", &baseline.cpu_model, &current.cpu_model);
    field("vendor", &baseline.cpu_vendor, &current.cpu_vendor);
    field(
        "virtualization",
        &baseline.virtualization,
        &current.virtualization,
    );
    if kernel_identity(&baseline.kernel) != kernel_identity(&current.kernel) {
        field("kernel", &baseline.kernel, &current.kernel);
    }
    field(
        "CPU count",
        &baseline.cpus.to_string(),
        &current.cpus.to_string(),
    );
    out
}

/// Differences between the hosts that [`host_mismatch`] does not count
/// (a kernel build counter), named so a reader sees them.
pub fn host_differences_judged_same(baseline: &Host, current: &Host) -> Vec<String> {
    let (a, b) = (&baseline.kernel, &current.kernel);
    if a != b && kernel_identity(a) == kernel_identity(b) {
        vec![format!(
            "Kernel `{a}` in the baseline, `{b}` here: the same release `{}` but for its build \
             counter, judged as the same host.",
            kernel_identity(a)
        )]
    } else {
        Vec::new()
    }
}
