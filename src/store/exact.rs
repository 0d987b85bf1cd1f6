//! Brute-force nearest neighbours: one dot product per stored vector, so recall is 1.
//! It is the reference that HNSW recall is measured against.

use super::distance::dot;
use crate::embed::Embeddings;
use rayon::prelude::*;

/// The `k` rows of `vectors` with the highest dot product with `query`, best first,
/// skipping `exclude`. Returns (row, score) pairs.
pub fn exact_top_k(
    vectors: &Embeddings,
    query: &[f32],
    k: usize,
    exclude: Option<usize>,
) -> Vec<(usize, f32)> {
    let mut scored: Vec<(usize, f32)> = (0..vectors.len())
        .into_par_iter()
        .with_min_len(1024)
        .filter(|&i| Some(i) != exclude)
        .map(|i| (i, dot(vectors.row(i), query)))
        .collect();
    let by_score = |a: &(usize, f32), b: &(usize, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if scored.len() > k {
        scored.select_nth_unstable_by(k, by_score);
        scored.truncate(k);
    }
    scored.sort_by(by_score);
    scored
}
