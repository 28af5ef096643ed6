//! Statistics for the gate: quantiles, a robust spread (MAD), the
//! Mann-Whitney U test and permutation tests of the median ratio (plain,
//! and stratified by round for A/B runs).
//!
//! Samples from two runs are compared as distributions: a regression is a
//! shift that is both significant (one-sided p below the threshold) and large
//! (median ratio beyond a minimum effect), so that thousands of samples do
//! not turn a 0.5 % wobble into an alarm.

/// The `q`-quantile (0..=1) of `v` by linear interpolation; `None` if `v` is
/// empty or holds a NaN.
pub fn quantile(v: &[f64], q: f64) -> Option<f64> {
    if v.is_empty() || v.iter().any(|x| x.is_nan()) {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    Some(quantile_sorted(&s, q))
}

/// The `q`-quantile of sorted, non-empty, NaN-free `s`.
fn quantile_sorted(s: &[f64], q: f64) -> f64 {
    let q = q.clamp(0.0, 1.0);
    let pos = q * (s.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let frac = pos - lo as f64;
    s[lo] + (s[hi] - s[lo]) * frac
}

/// The median of `v`.
pub fn median(v: &[f64]) -> Option<f64> {
    quantile(v, 0.5)
}

/// Result of a one-sided Mann-Whitney U test.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MannWhitney {
    /// U statistic of the second sample (`b`): the number of pairs where the
    /// `b` value exceeds the `a` value, ties counting one half.
    pub u: f64,
    /// Standardized statistic (with tie and continuity correction).
    pub z: f64,
    /// One-sided p-value for "`b` tends to be larger than `a`".
    pub p_greater: f64,
    /// Common-language effect size: probability that a random `b` exceeds a
    /// random `a` (0.5 = no difference).
    pub prob_superiority: f64,
}

/// One-sided Mann-Whitney U test of "`b` is stochastically greater than `a`"
/// using the normal approximation with tie correction (accurate for the
/// sample sizes the harness keeps, tens to thousands). `None` if either
/// sample has fewer than 2 values or a NaN.
pub fn mann_whitney_greater(a: &[f64], b: &[f64]) -> Option<MannWhitney> {
    if a.len() < 2 || b.len() < 2 || a.iter().chain(b).any(|x| x.is_nan()) {
        return None;
    }
    let n1 = a.len() as f64;
    let n2 = b.len() as f64;
    let mut all: Vec<(f64, bool)> = a
        .iter()
        .map(|&x| (x, false))
        .chain(b.iter().map(|&x| (x, true)))
        .collect();
    all.sort_by(|x, y| x.0.total_cmp(&y.0));
    // Midranks for ties, and the tie-correction term sum(t^3 - t).
    let mut rank_sum_b = 0.0;
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j + 1 < all.len() && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let t = (j - i + 1) as f64;
        let midrank = (i + j) as f64 / 2.0 + 1.0;
        for item in &all[i..=j] {
            if item.1 {
                rank_sum_b += midrank;
            }
        }
        tie_term += t * t * t - t;
        i = j + 1;
    }
    let u = rank_sum_b - n2 * (n2 + 1.0) / 2.0;
    let n = n1 + n2;
    let mean = n1 * n2 / 2.0;
    let var = n1 * n2 / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0)));
    let (z, p) = if var <= 0.0 {
        // Every value equal: no evidence of any shift.
        (0.0, 0.5)
    } else {
        let z = (u - mean - 0.5) / var.sqrt();
        (z, normal_sf(z))
    };
    Some(MannWhitney {
        u,
        z,
        p_greater: p,
        prob_superiority: u / (n1 * n2),
    })
}

/// Survival function of the standard normal distribution, `P(Z > z)`.
pub fn normal_sf(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// Complementary error function (W. J. Cody's rational Chebyshev
/// approximation as in Numerical Recipes `erfcc`; relative error below
/// 1.2e-7 everywhere, ample for p-values near 0.01).
pub fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// A small deterministic generator (SplitMix64) so permutation tests are
/// reproducible.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from a seed.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniform index below `n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// One-sided permutation test of "median(`b`) / median(`a`) is larger than
/// chance": the p-value is the fraction of `rounds` random relabellings whose
/// median ratio is at least the observed one (Firecracker's `ab_test.py`
/// approach). `None` for empty samples or NaN.
pub fn permutation_median_ratio(a: &[f64], b: &[f64], rounds: usize, seed: u64) -> Option<f64> {
    let observed = median(b)? / median(a)?;
    if !observed.is_finite() {
        return None;
    }
    let mut pool: Vec<f64> = a.iter().chain(b).copied().collect();
    let mut rng = SplitMix64::new(seed);
    let mut at_least = 0usize;
    for _ in 0..rounds {
        // Fisher-Yates shuffle, then split at a.len().
        for i in (1..pool.len()).rev() {
            let j = rng.below(i + 1);
            pool.swap(i, j);
        }
        let (pa, pb) = pool.split_at(a.len());
        let (Some(ma), Some(mb)) = (median(pa), median(pb)) else {
            return None;
        };
        if mb / ma >= observed {
            at_least += 1;
        }
    }
    Some((at_least as f64 + 1.0) / (rounds as f64 + 1.0))
}

/// The median of `v` in linear time (reorders `v`); `None` if empty or NaN.
fn median_in_place(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() || v.iter().any(|x| x.is_nan()) {
        return None;
    }
    let n = v.len();
    let (_, hi, _) = v.select_nth_unstable_by(n / 2, f64::total_cmp);
    let hi = *hi;
    if n % 2 == 1 {
        return Some(hi);
    }
    let lo = v[..n / 2].iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some((lo + hi) / 2.0)
}

/// The median absolute deviation of `v` from its median, scaled by 1.4826
/// so that it estimates the standard deviation of normal data: a spread
/// estimate that one wild run cannot inflate (the largest deviation can).
/// `None` if `v` is empty or holds a NaN.
pub fn mad_sigma(v: &[f64]) -> Option<f64> {
    let m = median(v)?;
    let dev: Vec<f64> = v.iter().map(|x| (x - m).abs()).collect();
    Some(1.4826 * median(&dev)?)
}

/// The outcome of [`stratified_permutation`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PermutationTest {
    /// Median of all A samples.
    pub median_a: f64,
    /// Median of all B samples.
    pub median_b: f64,
    /// `median_b / median_a`.
    pub ratio: f64,
    /// One-sided p for "B is larger": the fraction of relabellings whose
    /// ratio is at least the observed one (with the observed labelling
    /// counted, so never 0).
    pub p_greater: f64,
    /// One-sided p for "B is smaller".
    pub p_less: f64,
}

/// Permutation test of the median ratio of two sides measured in rounds
/// (`rounds[r] = (a samples, b samples)` of round `r`): each relabelling
/// shuffles labels only within a round, keeping each round's sizes, so a
/// disturbance that hit one round hits both sides' share of it equally and
/// cannot masquerade as a difference (Firecracker's `ab_test.py` approach
/// with the interleaving kept). `None` when a side is empty or a sample is
/// NaN. Deterministic for a seed.
pub fn stratified_permutation(
    rounds: &[(&[f64], &[f64])],
    permutations: usize,
    seed: u64,
) -> Option<PermutationTest> {
    let mut all_a: Vec<f64> = rounds.iter().flat_map(|r| r.0.iter().copied()).collect();
    let mut all_b: Vec<f64> = rounds.iter().flat_map(|r| r.1.iter().copied()).collect();
    let median_a = median_in_place(&mut all_a)?;
    let median_b = median_in_place(&mut all_b)?;
    let ratio = median_b / median_a;
    if !ratio.is_finite() {
        return None;
    }
    let mut pools: Vec<(Vec<f64>, usize)> = rounds
        .iter()
        .map(|(a, b)| (a.iter().chain(b.iter()).copied().collect(), a.len()))
        .collect();
    let mut rng = SplitMix64::new(seed);
    let (mut ge, mut le) = (0usize, 0usize);
    for _ in 0..permutations {
        all_a.clear();
        all_b.clear();
        for (pool, na) in &mut pools {
            for i in (1..pool.len()).rev() {
                let j = rng.below(i + 1);
                pool.swap(i, j);
            }
            let (pa, pb) = pool.split_at(*na);
            all_a.extend_from_slice(pa);
            all_b.extend_from_slice(pb);
        }
        let r = median_in_place(&mut all_b)? / median_in_place(&mut all_a)?;
        if r >= ratio {
            ge += 1;
        }
        if r <= ratio {
            le += 1;
        }
    }
    let p = |k: usize| (k as f64 + 1.0) / (permutations as f64 + 1.0);
    Some(PermutationTest {
        median_a,
        median_b,
        ratio,
        p_greater: p(ge),
        p_less: p(le),
    })
}

/// Resamples of [`bootstrap_interval`]: 1,000, the usual count for a
/// percentile interval; a report bootstraps a few dozen statistics of up to
/// 1,200 samples each, and renders in well under a second.
pub const BOOTSTRAP_RESAMPLES: usize = 1000;

/// A 95 % percentile-bootstrap interval of a statistic of several samples:
/// each replicate resamples every group with replacement (independently)
/// and applies `stat` to the groups' medians. A fixed `seed`, so the same
/// samples give the same interval. `None` when a group has fewer than 3
/// finite values or `stat` fails on the observed medians.
pub fn bootstrap_interval(
    groups: &[&[f64]],
    stat: impl Fn(&[f64]) -> Option<f64>,
    seed: u64,
) -> Option<[f64; 2]> {
    let groups: Vec<Vec<f64>> = groups
        .iter()
        .map(|g| g.iter().copied().filter(|x| x.is_finite()).collect())
        .collect();
    if groups.iter().any(|g: &Vec<f64>| g.len() < 3) {
        return None;
    }
    let observed: Option<Vec<f64>> = groups.iter().map(|g| median(g)).collect();
    stat(&observed?)?;
    let mut rng = SplitMix64::new(seed);
    let mut buf = Vec::new();
    percentile_interval(|| {
        let meds: Option<Vec<f64>> = groups
            .iter()
            .map(|g| {
                buf.clear();
                buf.extend((0..g.len()).map(|_| g[rng.below(g.len())]));
                median_in_place(&mut buf)
            })
            .collect();
        stat(&meds?)
    })
}

/// The 95 % percentile interval of [`BOOTSTRAP_RESAMPLES`] bootstrap
/// replicates drawn by `replicate`; `None` when most replicates fail or are
/// not finite.
fn percentile_interval(mut replicate: impl FnMut() -> Option<f64>) -> Option<[f64; 2]> {
    let mut reps: Vec<f64> = (0..BOOTSTRAP_RESAMPLES)
        .filter_map(|_| replicate().filter(|x| x.is_finite()))
        .collect();
    if reps.len() < BOOTSTRAP_RESAMPLES / 2 {
        return None;
    }
    reps.sort_by(f64::total_cmp);
    Some([quantile(&reps, 0.025)?, quantile(&reps, 0.975)?])
}

/// The medians of `blocks` consecutive, equal blocks of `v` (the last
/// takes the remainder): per-round values of one long, time-ordered series
/// whose neighbouring samples are not independent (a guest's loop of port
/// exits), so a bootstrap resamples rounds, not samples.
pub fn block_medians(v: &[f64], blocks: usize) -> Vec<f64> {
    let blocks = blocks.clamp(1, v.len().max(1));
    let size = v.len() / blocks;
    if size == 0 {
        return Vec::new();
    }
    (0..blocks)
        .filter_map(|b| {
            let end = if b + 1 == blocks {
                v.len()
            } else {
                (b + 1) * size
            };
            median(&v[b * size..end])
        })
        .collect()
}

/// A 95 % percentile-bootstrap interval of a statistic of several series
/// taken in `rounds` interleaved passes: each series is cut into `rounds`
/// consecutive, equal blocks (the last takes the remainder), and each
/// replicate draws `rounds` block indices with replacement — **the same
/// indices for every series**, because block `i` of every series was taken
/// in the same pass and shares its disturbances — then applies `stat` to the
/// medians of the series rebuilt from those blocks. Resampling single
/// samples instead would treat neighbouring batches as independent and give
/// an interval too narrow. The point estimate this interval belongs to is
/// `stat` of the whole series' medians. A fixed `seed`, so the same samples
/// give the same interval. `None` for fewer than 3 rounds, a series shorter
/// than `rounds` or holding a non-finite value, or when `stat` fails on the
/// observed medians or on most replicates.
pub fn bootstrap_rounds(
    groups: &[&[f64]],
    rounds: usize,
    stat: impl Fn(&[f64]) -> Option<f64>,
    seed: u64,
) -> Option<[f64; 2]> {
    if rounds < 3
        || groups.is_empty()
        || groups
            .iter()
            .any(|g| g.len() < rounds || g.iter().any(|x| !x.is_finite()))
    {
        return None;
    }
    let observed: Option<Vec<f64>> = groups.iter().map(|g| median(g)).collect();
    stat(&observed?)?;
    // Block `b` of a series of `len` samples: `b * size .. end`.
    let block = |len: usize, b: usize| {
        let size = len / rounds;
        let end = if b + 1 == rounds { len } else { (b + 1) * size };
        b * size..end
    };
    let mut rng = SplitMix64::new(seed);
    let mut pick = vec![0usize; rounds];
    let mut buf = Vec::new();
    percentile_interval(|| {
        pick.iter_mut().for_each(|p| *p = rng.below(rounds));
        let meds: Option<Vec<f64>> = groups
            .iter()
            .map(|g| {
                buf.clear();
                for &b in &pick {
                    buf.extend_from_slice(&g[block(g.len(), b)]);
                }
                median_in_place(&mut buf)
            })
            .collect();
        stat(&meds?)
    })
}

/// A distribution-free 95 % interval of the median of `v`, from its order
/// statistics: `[s(k), s(n-1-k)]` of the sorted values with the largest `k`
/// whose coverage `1 − 2·P(Binomial(n, ½) ≤ k)` is still at least 95 %.
/// It needs no resampling and assumes only independent rounds, which suits a
/// handful of long rounds (a bootstrap of 3 values has nothing to resample).
/// `None` below 6 values: the widest interval of 5, their whole range,
/// covers the median with only 1 − 2/2⁵ ≈ 94 %, and of 3 values with 75 %.
/// Also `None` when a value is not finite.
pub fn median_interval(v: &[f64]) -> Option<[f64; 2]> {
    if v.iter().any(|x| !x.is_finite()) {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    // P(Binomial(n, ½) ≤ k), in logs so that large n does not underflow.
    let half_ln = -(n as f64) * std::f64::consts::LN_2;
    let mut ln_choose = 0.0f64;
    let mut cdf = 0.0f64;
    let mut best = None;
    for k in 0..n / 2 {
        if k > 0 {
            ln_choose += ((n - k + 1) as f64 / k as f64).ln();
        }
        cdf += (ln_choose + half_ln).exp();
        if 1.0 - 2.0 * cdf >= 0.95 {
            best = Some(k);
        } else {
            break;
        }
    }
    best.map(|k| [s[k], s[n - 1 - k]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate() {
        let v = [4.0, 1.0, 3.0, 2.0];
        assert_eq!(quantile(&v, 0.0), Some(1.0));
        assert_eq!(quantile(&v, 1.0), Some(4.0));
        assert_eq!(median(&v), Some(2.5));
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[1.0, f64::NAN], 0.5), None);
    }

    #[test]
    fn normal_tail_values() {
        assert!((normal_sf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_sf(2.326_347_87) - 0.01).abs() < 1e-6);
        assert!((normal_sf(-1.959_963_98) - 0.975).abs() < 1e-6);
    }

    #[test]
    fn mann_whitney_detects_shift_and_not_identity() {
        let a: Vec<f64> = (0..100).map(|i| 100.0 + f64::from(i % 10)).collect();
        let same = mann_whitney_greater(&a, &a).expect("two samples of 100");
        assert!(same.p_greater > 0.4, "{same:?}");
        let b: Vec<f64> = a.iter().map(|x| x * 1.1).collect();
        let up = mann_whitney_greater(&a, &b).expect("two samples of 100");
        assert!(up.p_greater < 1e-6, "{up:?}");
        let down = mann_whitney_greater(&b, &a).expect("two samples of 100");
        assert!(down.p_greater > 0.99, "{down:?}");
    }

    #[test]
    fn mann_whitney_exact_small_case() {
        // a = {1,2}, b = {3,4}: U_b = 4 (all pairs), mean 2, var = 4/12*5.
        let r = mann_whitney_greater(&[1.0, 2.0], &[3.0, 4.0]).expect("sizes 2");
        assert_eq!(r.u, 4.0);
        assert_eq!(r.prob_superiority, 1.0);
        let z = (4.0 - 2.0 - 0.5) / (4.0f64 / 12.0 * 5.0).sqrt();
        assert!((r.z - z).abs() < 1e-12);
    }

    #[test]
    fn all_ties_give_no_evidence() {
        let r = mann_whitney_greater(&[1.0; 5], &[1.0; 5]).expect("sizes 5");
        assert_eq!(r.p_greater, 0.5);
    }

    #[test]
    fn permutation_test_separates() {
        let a: Vec<f64> = (0..40).map(|i| 10.0 + f64::from(i % 7) * 0.1).collect();
        let b: Vec<f64> = a.iter().map(|x| x * 1.2).collect();
        let p = permutation_median_ratio(&a, &b, 999, 1).expect("non-empty");
        assert!(p < 0.01, "{p}");
        let p0 = permutation_median_ratio(&a, &a, 999, 1).expect("non-empty");
        assert!(p0 > 0.2, "{p0}");
    }

    #[test]
    fn linear_median_matches_sorting() {
        for n in 1..30usize {
            let v: Vec<f64> = (0..n).map(|i| ((i * 7919) % 31) as f64).collect();
            let mut w = v.clone();
            assert_eq!(median_in_place(&mut w), median(&v), "n={n}");
        }
    }

    #[test]
    fn mad_ignores_one_wild_run() {
        let v = [1.0, 1.01, 0.99, 1.0, 1.02, 0.98, 3.0];
        let s = mad_sigma(&v).expect("non-empty");
        assert!(s < 0.04, "{s}");
        assert_eq!(mad_sigma(&[]), None);
    }

    #[test]
    fn stratified_permutation_separates_and_keeps_rounds() {
        let base: Vec<f64> = (0..60).map(|i| 10.0 + f64::from(i % 7) * 0.1).collect();
        let slow: Vec<f64> = base.iter().map(|x| x * 1.1).collect();
        // Round 2 is 50 % slower for both sides: a shared disturbance.
        let base2: Vec<f64> = base.iter().map(|x| x * 1.5).collect();
        let slow2: Vec<f64> = slow.iter().map(|x| x * 1.5).collect();
        let t =
            stratified_permutation(&[(&base, &slow), (&base2, &slow2)], 999, 3).expect("non-empty");
        assert!(t.p_greater < 0.01 && t.ratio > 1.05, "{t:?}");
        assert!(t.p_less > 0.5, "{t:?}");
        let aa =
            stratified_permutation(&[(&base, &base), (&base2, &base2)], 999, 3).expect("non-empty");
        assert!(aa.p_greater > 0.1 && aa.p_less > 0.1, "{aa:?}");
        assert_eq!(stratified_permutation(&[(&[], &base)], 9, 1), None);
    }

    #[test]
    fn bootstrap_interval_brackets_the_statistic_and_narrows_with_samples() {
        let mut rng = SplitMix64::new(7);
        let mut noisy = |n: usize, c: f64| -> Vec<f64> {
            (0..n)
                .map(|_| c * (1.0 + (rng.next_u64() % 1000) as f64 / 5000.0))
                .collect()
        };
        let (a, b) = (noisy(40, 100.0), noisy(40, 200.0));
        let ratio = |m: &[f64]| Some(m[1] / m[0]);
        let [lo, hi] = bootstrap_interval(&[&a, &b], ratio, 1).expect("interval");
        let observed = median(&b).unwrap_or(0.0) / median(&a).unwrap_or(1.0);
        assert!(lo <= observed && observed <= hi, "{lo} {observed} {hi}");
        assert!(lo > 1.8 && hi < 2.2, "{lo} {hi}");
        let (a2, b2) = (noisy(400, 100.0), noisy(400, 200.0));
        let [lo2, hi2] = bootstrap_interval(&[&a2, &b2], ratio, 1).expect("interval");
        assert!(hi2 - lo2 < hi - lo, "more samples, narrower");
        // The same samples, the same interval.
        assert_eq!(bootstrap_interval(&[&a, &b], ratio, 1), Some([lo, hi]));
        assert_eq!(bootstrap_interval(&[&a[..2], &b], ratio, 1), None);
        assert_eq!(bootstrap_interval(&[&a], |_| None, 1), None);
    }

    #[test]
    fn block_medians_split_in_time_order() {
        let v: Vec<f64> = (0..10).map(f64::from).collect();
        assert_eq!(block_medians(&v, 2), vec![2.0, 7.0]);
        assert_eq!(block_medians(&v, 3), vec![1.0, 4.0, 7.5]);
        assert_eq!(block_medians(&v, 100).len(), 10);
        assert!(block_medians(&[], 4).is_empty());
    }

    #[test]
    fn median_interval_takes_the_order_statistics_binomial_coverage_allows() {
        // 20 values: P(Bin(20, ½) ≤ 5) = 21,700 / 2²⁰ ≈ 0.0207 (coverage
        // 95.9 %), ≤ 6 ≈ 0.0577 (88.5 %): the 6th and 15th smallest.
        let v: Vec<f64> = (0..20).rev().map(f64::from).collect();
        assert_eq!(median_interval(&v), Some([5.0, 14.0]));
        // 6 values: the whole range covers 1 − 2/64 ≈ 96.9 %.
        assert_eq!(
            median_interval(&[3.0, 1.0, 6.0, 2.0, 5.0, 4.0]),
            Some([1.0, 6.0])
        );
        // 5 or 3 values cannot give 95 %.
        assert_eq!(median_interval(&[1.0, 2.0, 3.0, 4.0, 5.0]), None);
        assert_eq!(median_interval(&[1.0, 2.0, 3.0]), None);
        assert_eq!(median_interval(&[1.0, f64::NAN, 3.0, 4.0, 5.0, 6.0]), None);
        // Large n does not underflow: the interval narrows around the median.
        let big: Vec<f64> = (0..5001).map(f64::from).collect();
        let [lo, hi] = median_interval(&big).expect("interval");
        assert!(lo < 2500.0 && hi > 2500.0 && hi - lo < 160.0, "{lo} {hi}");
    }

    #[test]
    fn bootstrap_rounds_resamples_the_same_rounds_in_every_series() {
        // Two series of 10 rounds × 5 samples; each round's disturbance
        // scales both alike, so the ratio of their medians is exactly 2 in
        // every pass: a paired bootstrap sees no spread at all.
        let load = [1.0, 1.5, 0.8, 2.0, 1.1, 0.9, 1.7, 1.2, 1.0, 1.3];
        let a: Vec<f64> = load
            .iter()
            .flat_map(|l| (0..5).map(move |i| 2.0 * l * (1.0 + 0.001 * f64::from(i))))
            .collect();
        let b: Vec<f64> = a.iter().map(|x| x / 2.0).collect();
        let ratio = |m: &[f64]| Some(m[0] / m[1]);
        let [lo, hi] = bootstrap_rounds(&[&a, &b], 10, ratio, 7).expect("interval");
        assert!(
            (lo - 2.0).abs() < 1e-12 && (hi - 2.0).abs() < 1e-12,
            "{lo} {hi}"
        );
        // Resampled independently, the same series give a wide interval.
        let [lo, hi] = bootstrap_interval(&[&a, &b], ratio, 7).expect("interval");
        assert!(hi - lo > 0.2, "{lo} {hi}");
        // One series' median: the interval spans the rounds' spread.
        let [lo, hi] = bootstrap_rounds(&[&a], 10, |m| Some(m[0]), 7).expect("interval");
        assert!(lo < 2.4 && hi > 2.4 && lo >= 1.6 && hi <= 4.0, "{lo} {hi}");
        // Too few rounds, a series shorter than the rounds, a NaN: none.
        assert_eq!(bootstrap_rounds(&[&a], 2, |m| Some(m[0]), 7), None);
        assert_eq!(bootstrap_rounds(&[&a[..5]], 10, |m| Some(m[0]), 7), None);
        let mut c = a.clone();
        c[3] = f64::NAN;
        assert_eq!(bootstrap_rounds(&[&c], 10, |m| Some(m[0]), 7), None);
    }
}
