//! How far predicted labels agree with known ones: accuracy, macro-F1 and the confusion
//! matrix, over every query cell with a true label (a cell left unlabelled counts as
//! wrong, under [`UNANNOTATED`]).

use super::Prediction;
use crate::error::{Error, Result};
use crate::tasks::metrics::{accuracy, macro_f1};
use serde::Serialize;

/// The predicted label of a cell that got none (no vector, or no labelled neighbour).
pub const UNANNOTATED: &str = "(none)";

/// Predicted against true labels.
#[derive(Debug, Clone, Serialize)]
pub struct Agreement {
    /// Cells with a true label (the ones scored).
    pub cells: usize,
    /// Of those, how many got a label.
    pub annotated: usize,
    /// Share of scored cells whose label is right.
    pub accuracy: f64,
    /// Unweighted mean F1 over the classes in the truth or the predictions
    /// (scikit-learn's default; [`UNANNOTATED`] is a class when it occurs).
    pub macro_f1: f64,
    /// True classes (rows of the confusion matrix), sorted.
    pub true_classes: Vec<String>,
    /// Predicted classes (columns), sorted.
    pub predicted_classes: Vec<String>,
    /// Cells by true class (row) and predicted class (column).
    pub confusion: Vec<Vec<usize>>,
    /// True classes no reference cell carries: their cells cannot be labelled right.
    pub missing_from_reference: Vec<String>,
}

/// Scores `predicted` against `truth` (one each per query cell; cells without a true
/// label are left out). `reference_classes` are the labels the reference can give.
pub fn agreement(
    truth: &[Option<String>],
    predicted: &[Option<Prediction>],
    reference_classes: &[String],
) -> Result<Agreement> {
    if truth.len() != predicted.len() {
        return Err(Error::InvalidArgument(format!(
            "{} true labels for {} predictions",
            truth.len(),
            predicted.len()
        )));
    }
    let (t, p): (Vec<&str>, Vec<&str>) = truth
        .iter()
        .zip(predicted)
        .filter_map(|(t, p)| {
            let p = p.as_ref().map_or(UNANNOTATED, |p| p.label.as_str());
            t.as_deref().map(|t| (t, p))
        })
        .unzip();
    if t.is_empty() {
        return Err(Error::InvalidArgument(
            "no query cell has a true label to score against".into(),
        ));
    }
    let classes = |labels: &[&str]| {
        let mut c: Vec<String> = labels.iter().map(|s| s.to_string()).collect();
        c.sort();
        c.dedup();
        c
    };
    let (true_classes, predicted_classes) = (classes(&t), classes(&p));
    let mut confusion = vec![vec![0; predicted_classes.len()]; true_classes.len()];
    for (a, b) in t.iter().zip(&p) {
        let row = true_classes.binary_search_by(|c| c.as_str().cmp(a));
        let col = predicted_classes.binary_search_by(|c| c.as_str().cmp(b));
        if let (Ok(r), Ok(c)) = (row, col) {
            confusion[r][c] += 1;
        }
    }
    Ok(Agreement {
        cells: t.len(),
        annotated: p.iter().filter(|l| **l != UNANNOTATED).count(),
        accuracy: accuracy(&t, &p)?,
        macro_f1: macro_f1(&t, &p)?,
        missing_from_reference: true_classes
            .iter()
            .filter(|c| !reference_classes.contains(c))
            .cloned()
            .collect(),
        true_classes,
        predicted_classes,
        confusion,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn predicted(label: &str) -> Option<Prediction> {
        Some(Prediction {
            label: label.into(),
            vote_share: 1.0,
            nearest_similarity: 1.0,
        })
    }

    #[test]
    fn scores_labelled_cells_and_counts_unannotated_ones_as_wrong() {
        let truth = vec![
            Some("B".into()),
            Some("T".into()),
            Some("T".into()),
            None,
            Some("NK".into()),
        ];
        let pred = vec![
            predicted("B"),
            predicted("T"),
            None,
            predicted("B"),
            predicted("T"),
        ];
        let a = agreement(&truth, &pred, &["B".into(), "T".into()]).unwrap();
        assert_eq!((a.cells, a.annotated), (4, 3));
        assert!((a.accuracy - 0.5).abs() < 1e-12);
        assert_eq!(a.true_classes, ["B", "NK", "T"]);
        assert_eq!(a.predicted_classes, [UNANNOTATED, "B", "T"]);
        assert_eq!(
            a.confusion,
            vec![vec![0, 1, 0], vec![0, 0, 1], vec![1, 0, 1]]
        );
        assert_eq!(a.missing_from_reference, ["NK"]);
        // F1: B 1, T 0.5, NK 0, (none) 0 -> 0.375.
        assert!((a.macro_f1 - 0.375).abs() < 1e-12, "{}", a.macro_f1);
    }
}
