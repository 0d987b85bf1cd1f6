//! The task kinds, one file each: its settings (the `[table]` of a task file) and its
//! [`Task`](super::task::Task) steps. A new kind is a new file here with its `mod` and
//! `pub use` lines below, a variant of [`TaskKind`](super::TaskKind) with its arm in
//! `TaskKind::task()`, and a line in `tasks/README.md`.

mod cell_labels;
mod cell_spec;
mod cell_types;
mod cell_vectors;
mod expression_response;
mod gene_classes;
mod gene_families;
mod gene_pairs;
mod gene_values;
mod perturbations;
mod regression;

pub use cell_spec::{CellClassifier, CellEmbedding, CellTypeSpec, ExpressionValues};
pub use expression_response::ExpressionResponseSpec;
pub use gene_classes::GeneClassSpec;
pub use gene_families::GeneFamilySpec;
pub use gene_pairs::{GenePairSpec, PairSplit};
pub use gene_values::{GeneValueSpec, ValueTransform};
pub use perturbations::PerturbationSpec;

use super::vectors::GeneVectors;
use ndarray::Array2;

/// The vectors of `symbols` as rows (zeros for a gene the store lacks; callers pass
/// covered genes).
fn gene_rows(vectors: &GeneVectors, symbols: &[&str]) -> Array2<f64> {
    let d = vectors.dim();
    let mut x = Array2::<f64>::zeros((symbols.len(), d));
    for (r, s) in symbols.iter().enumerate() {
        if let Some(v) = vectors.get(s) {
            for (j, value) in v.iter().enumerate() {
                x[(r, j)] = *value as f64;
            }
        }
    }
    x
}

/// The index of the largest value (the lower index on a tie).
fn argmax(values: &[f64]) -> usize {
    values
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0)))
        .map(|(i, _)| i)
        .unwrap_or(0)
}
