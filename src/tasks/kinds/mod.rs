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

pub use cell_spec::{CellClassifier, CellEmbedding, CellTypeSpec};
pub use expression_response::ExpressionResponseSpec;
pub use gene_classes::GeneClassSpec;
pub use gene_families::GeneFamilySpec;
pub use gene_pairs::{GenePairSpec, PairSplit};
pub use gene_values::{GeneValueSpec, ValueTransform};
pub use perturbations::PerturbationSpec;

use super::pca::ItemMap;
use super::task::{Layout, StoreView};
use super::vectors::GeneVectors;
use crate::error::Result;
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

/// The genes of a labelled-gene task (symbol, class) the store has, as indices, in
/// stratified folds by class (what the two gene-classification kinds lay out).
fn labelled_gene_layout<L: Ord + Clone + std::fmt::Debug>(
    genes: &[(String, L)],
    store: StoreView,
    folds: usize,
    seed: u64,
) -> Result<Layout<Vec<usize>>> {
    let covered: Vec<usize> = (0..genes.len())
        .filter(|&i| store.vectors.get(&genes[i].0).is_some())
        .collect();
    let labels: Vec<L> = covered.iter().map(|&i| genes[i].1.clone()).collect();
    Ok(Layout {
        covered: covered.len(),
        own_covered: genes
            .iter()
            .filter(|(g, _)| store.vectors.covers(g))
            .count(),
        folds: super::cv::stratified(&labels, folds, seed)?,
        features: covered,
    })
}

/// The covered genes (indices into `genes`) on the first two principal components of
/// their vectors, coloured by class.
fn gene_map<L>(
    store: &GeneVectors,
    genes: &[(String, L)],
    covered: &[usize],
    class: impl Fn(&L) -> usize,
    names: Vec<String>,
) -> ItemMap {
    let genes: Vec<&(String, L)> = covered.iter().map(|&i| &genes[i]).collect();
    let rows: Vec<&[f32]> = genes.iter().filter_map(|(g, _)| store.get(g)).collect();
    let labels = genes.iter().map(|(_, l)| class(l)).collect();
    ItemMap::project(&rows, labels, names, "genes")
}
