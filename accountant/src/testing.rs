//! Helpers for tests of this crate and of the hypervisor's components
//! (feature `testing`, a dev-dependency feature: never in a product build).

/// A xorshift64 generator: the same sequence for the same seed on every
/// run, so a random test that fails names a step that fails again.
#[derive(Clone, Debug)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator from a non-zero seed (zero is replaced by a fixed one:
    /// xorshift would stay at zero).
    pub fn new(seed: u64) -> XorShift {
        XorShift(if seed == 0 {
            0x2545_f491_4f6c_dd1d
        } else {
            seed
        })
    }

    /// The next number below `n` (`n > 0`; 0 gives 0).
    pub fn below(&mut self, n: u64) -> u64 {
        let x = &mut self.0;
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        x.checked_rem(n).unwrap_or(0)
    }
}
