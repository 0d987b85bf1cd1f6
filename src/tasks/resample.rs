//! Seeded resampling shared by the tasks: shuffles for splits and folds, and
//! percentile bootstrap intervals over test items.

use super::vectors::next_u64;

/// Bootstrap resamples drawn per interval.
pub const RESAMPLES: usize = 200;

/// Seeded Fisher-Yates shuffle.
pub fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut state = seed;
    for i in (1..items.len()).rev() {
        let j = (next_u64(&mut state) % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

/// The 95% percentile interval of `stat` over [`RESAMPLES`] resamples (with
/// replacement) of `n` items; resamples where `stat` is undefined are skipped.
pub fn bootstrap_interval(
    n: usize,
    seed: u64,
    mut stat: impl FnMut(&[usize]) -> Option<f64>,
) -> (f64, f64) {
    let mut state = seed;
    let mut values: Vec<f64> = (0..RESAMPLES)
        .filter_map(|_| {
            let idx: Vec<usize> = (0..n)
                .map(|_| (next_u64(&mut state) % n.max(1) as u64) as usize)
                .collect();
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

/// Macro-F1 with its bootstrap interval, accuracy and the confusion matrix of
/// multi-class predictions (class indices below `classes`).
pub struct ClassScores {
    /// Macro-F1.
    pub macro_f1: f64,
    /// Its bootstrap interval.
    pub interval: (f64, f64),
    /// Accuracy.
    pub accuracy: f64,
    /// Counts, rows truth, columns prediction.
    pub confusion: Vec<Vec<usize>>,
}

/// Scores multi-class predictions.
pub fn class_scores(
    truth: &[usize],
    predicted: &[usize],
    classes: usize,
    seed: u64,
) -> crate::Result<ClassScores> {
    let interval = bootstrap_interval(truth.len(), seed, |idx| {
        let t: Vec<usize> = idx.iter().map(|&i| truth[i]).collect();
        let p: Vec<usize> = idx.iter().map(|&i| predicted[i]).collect();
        super::metrics::macro_f1(&t, &p).ok()
    });
    let mut confusion = vec![vec![0usize; classes]; classes];
    for (&t, &p) in truth.iter().zip(predicted) {
        confusion[t][p] += 1;
    }
    Ok(ClassScores {
        macro_f1: super::metrics::macro_f1(truth, predicted)?,
        interval,
        accuracy: super::metrics::accuracy(truth, predicted)?,
        confusion,
    })
}
