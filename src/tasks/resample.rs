//! Seeded resampling shared by the tasks: shuffles for splits and folds, and
//! percentile bootstrap intervals over test items.

use crate::rng::SplitMix64;

/// Bootstrap resamples drawn per interval.
pub const RESAMPLES: usize = 200;

/// Seeded Fisher-Yates shuffle.
pub fn shuffle<T>(items: &mut [T], seed: u64) {
    SplitMix64::new(seed).shuffle(items);
}

/// The 95% percentile interval of `stat` over [`RESAMPLES`] resamples (with
/// replacement) of `n` items; resamples where `stat` is undefined are skipped.
pub fn bootstrap_interval(
    n: usize,
    seed: u64,
    mut stat: impl FnMut(&[usize]) -> Option<f64>,
) -> (f64, f64) {
    let mut rng = SplitMix64::new(seed);
    let mut values: Vec<f64> = (0..RESAMPLES)
        .filter_map(|_| {
            let idx: Vec<usize> = (0..n).map(|_| rng.below(n.max(1))).collect();
            stat(&idx)
        })
        .collect();
    percentile_interval(&mut values)
}

/// The 2.5% and 97.5% points of values (sorted in place).
pub fn percentile_interval(values: &mut [f64]) -> (f64, f64) {
    if values.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    values.sort_by(f64::total_cmp);
    let pick = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    (pick(0.025), pick(0.975))
}
