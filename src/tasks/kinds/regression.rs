//! What the per-gene regression kinds share (`expression_response`, `gene_values`):
//! the genes a store covers with their vectors and targets, shuffled folds over them,
//! and ridge regression fitted on one fold's genes and predicting the others.

use super::gene_rows;
use crate::error::{Error, Result};
use crate::tasks::cv;
use crate::tasks::outcomes::{ItemOutcomes, OutcomeKind};
use crate::tasks::probe::ridge_fold;
use crate::tasks::task::{Fold, Layout, Predictions, StoreView};
use ndarray::{Array2, Axis};

/// One store's covered genes, their vectors and targets.
pub(crate) struct GeneRegression {
    /// Indices (into the kind's genes) of the covered genes.
    pub(crate) covered: Vec<usize>,
    /// Their vectors, one row per covered gene.
    x: Array2<f64>,
    /// Their targets, one row per covered gene.
    y: Array2<f64>,
}

/// The genes of `symbols` the store covers, with the rows of `targets` (one per gene)
/// and `folds` shuffled folds; too few genes for the folds is an error.
pub(crate) fn layout(
    symbols: &[&str],
    targets: &Array2<f64>,
    store: StoreView,
    folds: usize,
    seed: u64,
) -> Result<Layout<GeneRegression>> {
    let covered: Vec<usize> = (0..symbols.len())
        .filter(|&i| store.vectors.get(symbols[i]).is_some())
        .collect();
    if covered.len() < 2 * folds {
        return Err(Error::InvalidArgument(format!(
            "only {} genes are covered, too few for {folds} folds",
            covered.len()
        )));
    }
    let rows: Vec<&str> = covered.iter().map(|&i| symbols[i]).collect();
    Ok(Layout {
        covered: covered.len(),
        own_covered: symbols.iter().filter(|s| store.vectors.covers(s)).count(),
        folds: cv::shuffled(covered.len(), folds, seed)?,
        features: GeneRegression {
            x: gene_rows(store.vectors, &rows),
            y: targets.select(Axis(0), &covered),
            covered,
        },
    })
}

/// Ridge (penalty `alpha`) on the fold's training genes, predictions for its test genes,
/// named by `symbol` of the gene's index.
pub(crate) fn fit_fold<'a>(
    features: &GeneRegression,
    symbol: impl Fn(usize) -> &'a str,
    fold: &Fold,
    alpha: f64,
) -> Result<Predictions> {
    let f = features;
    let p = ridge_fold(&f.x, &f.y, &fold.train, &fold.test, alpha)?;
    Ok(Predictions::new(
        ItemOutcomes {
            ids: fold
                .test
                .iter()
                .map(|&i| symbol(f.covered[i]).to_string())
                .collect(),
            kind: OutcomeKind::Columns {
                truth: fold.test.iter().map(|&i| f.y.row(i).to_vec()).collect(),
                predicted: p.rows().into_iter().map(|r| r.to_vec()).collect(),
            },
        },
        fold.test.clone(),
    ))
}
