//! Reference mapping: new cells are labelled by a vote among their nearest cells in a
//! labelled cell store (GenePT's recipe: GenePT-w vectors, cosine k-NN over a reference),
//! and, where their true labels are known, scored by accuracy, macro-F1 and a confusion
//! matrix. The same vote, leaving each fold out in turn, cross-validates a reference on
//! itself.

mod agreement;
mod plot;

pub use agreement::{agreement, Agreement, UNANNOTATED};
pub use plot::plot_confusion;

use crate::error::{Error, Result};
use crate::rng::SplitMix64;
use crate::store::{CellNeighbor, CellStore, SearchMode};
use rayon::prelude::*;
use std::collections::BTreeMap;

/// The label a cell was given.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// The winning label.
    pub label: String,
    /// Its share of the similarity-weighted vote (0 to 1).
    pub vote_share: f32,
    /// Cosine similarity to the nearest reference cell.
    pub nearest_similarity: f32,
}

/// How the vote is taken.
#[derive(Debug, Clone, Copy)]
pub struct VoteSettings {
    /// Reference cells that vote.
    pub k: usize,
    /// How they are found.
    pub mode: SearchMode,
}

/// The reference's labels, checked: the column exists and labels at least one cell.
fn reference_labels<'a>(reference: &'a CellStore, label: &str) -> Result<&'a [Option<String>]> {
    let labels = reference.metadata_column(label)?;
    if labels.iter().all(Option::is_none) {
        return Err(Error::store(
            reference.path(),
            format!("no reference cell has a '{label}'"),
        ));
    }
    Ok(labels)
}

/// Labels each query vector (`None`: a cell without a vector, which gets no label) by
/// the similarity-weighted vote of its `k` nearest reference cells that carry a
/// `label`, using every core for the batch.
pub fn annotate(
    reference: &CellStore,
    label: &str,
    queries: &[Option<Vec<f32>>],
    settings: VoteSettings,
) -> Result<Vec<Option<Prediction>>> {
    let labels = reference_labels(reference, label)?;
    queries
        .par_iter()
        .map(|query| match query {
            Some(q) => {
                let hits = reference.search_vector(q, settings.k, settings.mode)?;
                Ok(vote(&hits, labels))
            }
            None => Ok(None),
        })
        .collect()
}

/// Labels every reference cell by the vote of its `k` nearest cells in the other folds
/// (`folds` random folds from `seed`): the reference mapped onto itself, each cell
/// unseen by its voters. Returns the predictions in row order.
pub fn cross_validate(
    reference: &CellStore,
    label: &str,
    folds: usize,
    seed: u64,
    settings: VoteSettings,
) -> Result<Vec<Option<Prediction>>> {
    if folds < 2 || folds > reference.len() {
        return Err(Error::InvalidArgument(format!(
            "cross-validation needs between 2 and {} folds (the store's cells); got {folds}",
            reference.len()
        )));
    }
    let labels = reference_labels(reference, label)?;
    let mut fold = vec![0; reference.len()];
    for (i, row) in SplitMix64::new(seed)
        .permutation(reference.len())
        .into_iter()
        .enumerate()
    {
        fold[row] = i % folds;
    }
    (0..reference.len())
        .into_par_iter()
        .map(|row| {
            let hits = other_fold_neighbors(reference, row, &fold, settings)?;
            Ok(vote(&hits, labels))
        })
        .collect()
}

/// The `k` nearest cells to `row` outside its fold: asks for more neighbours until `k`
/// of them are from other folds (or the store has no more).
fn other_fold_neighbors(
    reference: &CellStore,
    row: usize,
    fold: &[usize],
    settings: VoteSettings,
) -> Result<Vec<CellNeighbor>> {
    let most = reference.len() - 1;
    let mut want = (settings.k * 2).min(most);
    loop {
        let hits: Vec<CellNeighbor> = reference
            .neighbors_of_row(row, want, settings.mode)?
            .into_iter()
            .filter(|h| fold[h.row] != fold[row])
            .take(settings.k)
            .collect();
        if hits.len() == settings.k || want == most {
            return Ok(hits);
        }
        want = (want * 2).min(most);
    }
}

/// The similarity-weighted vote of `hits` (negative similarities count zero); ties go
/// to the label that sorts first. `None` when no hit carries a label.
fn vote(hits: &[CellNeighbor], labels: &[Option<String>]) -> Option<Prediction> {
    let mut weights: BTreeMap<&str, f32> = BTreeMap::new();
    for hit in hits {
        if let Some(label) = &labels[hit.row] {
            *weights.entry(label).or_default() += hit.score.max(0.0);
        }
    }
    let total: f32 = weights.values().sum();
    let (label, weight) = weights
        .into_iter()
        .fold(None, |best: Option<(&str, f32)>, (l, w)| match best {
            Some((_, bw)) if bw >= w => best,
            _ => Some((l, w)),
        })?;
    Some(Prediction {
        label: label.to_string(),
        vote_share: if total > 0.0 { weight / total } else { 0.0 },
        nearest_similarity: hits.first().map_or(0.0, |h| h.score),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(row: usize, score: f32) -> CellNeighbor {
        CellNeighbor {
            row,
            cell: format!("c{row}"),
            score,
        }
    }

    #[test]
    fn the_vote_weighs_neighbours_by_similarity_and_skips_unlabelled_ones() {
        let labels = vec![
            Some("B".to_string()),
            Some("T".to_string()),
            None,
            Some("T".into()),
        ];
        // One close B outweighs two distant Ts.
        let p = vote(
            &[hit(0, 0.9), hit(1, 0.3), hit(2, 0.8), hit(3, 0.3)],
            &labels,
        )
        .unwrap();
        assert_eq!(p.label, "B");
        assert!((p.vote_share - 0.6).abs() < 1e-6, "{p:?}");
        assert_eq!(p.nearest_similarity, 0.9);
        assert!(vote(&[hit(2, 0.9)], &labels).is_none());
        // A tie goes to the label that sorts first.
        assert_eq!(
            vote(&[hit(1, 0.5), hit(0, 0.5)], &labels).unwrap().label,
            "B"
        );
    }
}
