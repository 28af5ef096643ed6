//! Thread placement: pinning a thread to a set of CPUs and asking which CPU
//! it runs on.
//!
//! Placement changes what KVM operations cost on this kind of host: a new
//! VM's SRCU structure stays small on a 2-CPU host, so its callbacks run on
//! CPU 0, and a memslot delete (two grace periods) costs a few microseconds
//! from CPU 0 and tens of microseconds from CPU 1. A measurement that lets
//! the scheduler move its thread mixes the two. The bench pins the measuring
//! thread and every vCPU thread, and records the CPU of every sample.

/// A set of CPUs, as `taskset -c` writes it (`0`, `1-3`, `0,2`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CpuSet(Vec<usize>);

/// A CPU list that does not parse, or names a CPU beyond what the kernel's
/// CPU mask can hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadCpuList(pub String);

impl std::fmt::Display for BadCpuList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "bad CPU list `{}` (want e.g. `0`, `1-3` or `0,2`)",
            self.0
        )
    }
}

impl std::error::Error for BadCpuList {}

/// Largest CPU number a `cpu_set_t` holds.
const MAX_CPU: usize = 1023;

impl CpuSet {
    /// Parses `0`, `1-3`, `0,2-3`; CPUs sorted, without duplicates, at least
    /// one, each ≤ 1023.
    pub fn parse(s: &str) -> Result<CpuSet, BadCpuList> {
        let bad = || BadCpuList(s.chars().take(64).collect());
        let mut v = Vec::new();
        for part in s.split(',') {
            let (a, b) = match part.split_once('-') {
                Some((a, b)) => (a, b),
                None => (part, part),
            };
            let a: usize = a.trim().parse().map_err(|_| bad())?;
            let b: usize = b.trim().parse().map_err(|_| bad())?;
            if a > b || b > MAX_CPU {
                return Err(bad());
            }
            v.extend(a..=b);
        }
        v.sort_unstable();
        v.dedup();
        if v.is_empty() {
            return Err(bad());
        }
        Ok(CpuSet(v))
    }

    /// One CPU.
    pub fn one(cpu: usize) -> CpuSet {
        CpuSet(vec![cpu.min(MAX_CPU)])
    }

    /// The set of `cpus` (sorted, without duplicates); `None` when empty.
    pub fn of(cpus: &[usize]) -> Option<CpuSet> {
        let mut v: Vec<usize> = cpus.iter().map(|c| (*c).min(MAX_CPU)).collect();
        v.sort_unstable();
        v.dedup();
        (!v.is_empty()).then_some(CpuSet(v))
    }

    /// The CPUs, ascending.
    pub fn cpus(&self) -> &[usize] {
        &self.0
    }

    /// Whether `cpu` is in the set.
    pub fn contains(&self, cpu: usize) -> bool {
        self.0.binary_search(&cpu).is_ok()
    }
}

impl std::fmt::Display for CpuSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        let mut i = 0;
        while i < self.0.len() {
            let mut j = i;
            while j + 1 < self.0.len() && self.0[j + 1] == self.0[j] + 1 {
                j += 1;
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if j == i {
                write!(f, "{}", self.0[i])?;
            } else {
                write!(f, "{}-{}", self.0[i], self.0[j])?;
            }
            i = j + 1;
        }
        Ok(())
    }
}

/// Pins the calling thread to `set`; the errno if the kernel refused (for
/// example a CPU that is offline or outside the process's cpuset).
pub fn pin_current(set: &CpuSet) -> Result<(), i32> {
    // SAFETY: `cpu_set_t` is plain data; all-zero is the empty set.
    let mut mask: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in set.cpus() {
        // SAFETY: `c <= MAX_CPU < CPU_SETSIZE` (checked by `CpuSet`), so the
        // bit is inside `mask`.
        unsafe { libc::CPU_SET(c, &mut mask) };
    }
    // SAFETY: `mask` is a valid, initialised `cpu_set_t` of the size passed;
    // pid 0 is the calling thread.
    let r = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mask) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }
}

/// The CPUs the calling thread may run on.
pub fn current_affinity() -> Option<CpuSet> {
    // SAFETY: as in `pin_current`.
    let mut mask: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `mask` is writable and of the size passed.
    let r =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut mask) };
    if r != 0 {
        return None;
    }
    // SAFETY: `c < CPU_SETSIZE`, inside `mask`.
    let v: Vec<usize> = (0..=MAX_CPU)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &mask) })
        .collect();
    (!v.is_empty()).then_some(CpuSet(v))
}

/// The CPU the calling thread is running on now (`sched_getcpu`).
pub fn current_cpu() -> Option<u32> {
    // SAFETY: no preconditions; returns -1 on failure.
    let c = unsafe { libc::sched_getcpu() };
    u32::try_from(c).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse_and_print() {
        assert_eq!(CpuSet::parse("0").map(|s| s.to_string()), Ok("0".into()));
        let s = CpuSet::parse("3,0-1,1").expect("valid");
        assert_eq!(s.cpus(), &[0, 1, 3]);
        assert_eq!(s.to_string(), "0-1,3");
        assert!(s.contains(3) && !s.contains(2));
        for bad in ["", "a", "2-1", "0,", "-1", "5000", "0-99999999999999999999"] {
            assert!(CpuSet::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            CpuSet::of(&[3, 1, 3]).map(|s| s.to_string()),
            Some("1,3".into())
        );
        assert_eq!(CpuSet::of(&[]), None);
    }

    #[test]
    fn pinning_moves_the_thread() {
        let Some(before) = current_affinity() else {
            return;
        };
        let target = before.cpus()[before.cpus().len() - 1];
        std::thread::spawn(move || {
            pin_current(&CpuSet::one(target)).expect("an allowed CPU");
            assert_eq!(current_affinity(), Some(CpuSet::one(target)));
            assert_eq!(current_cpu(), Some(target as u32));
        })
        .join()
        .expect("thread");
    }
}
