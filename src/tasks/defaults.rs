//! The defaults task files share: the seed, the number of folds, the penalty and the
//! number of neighbours.

/// The default seed of every kind's splits and resamples.
pub(crate) fn default_seed() -> u64 {
    17
}
/// The default number of cross-validation folds.
pub(crate) fn default_folds() -> usize {
    5
}
/// The default penalty (L2 of the logistic probe, ridge of the regressions).
pub(crate) fn default_alpha() -> f64 {
    1.0
}
/// The default number of neighbours (kNN cells, voting perturbations).
pub(crate) fn default_k() -> usize {
    10
}
