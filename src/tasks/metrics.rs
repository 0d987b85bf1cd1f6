//! Classification metrics, computed as scikit-learn computes them (checked against it
//! on a committed fixture): ROC-AUC with tied scores counted half, average precision
//! (PR-AUC) as the step-wise sum over thresholds, accuracy and macro-F1.

use crate::error::{Error, Result};

/// ROC-AUC of `scores` for binary `labels` (the probability that a random positive
/// outranks a random negative, ties counting one half). Errors when a class is absent.
pub fn roc_auc(labels: &[bool], scores: &[f64]) -> Result<f64> {
    check_binary(labels, scores)?;
    let mut order = ranked(scores);
    order.reverse();
    // Ascending average ranks over tied groups (1-based), then Mann-Whitney U.
    let mut ranks = vec![0f64; scores.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let average = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            ranks[k] = average;
        }
        i = j + 1;
    }
    let positives = labels.iter().filter(|&&l| l).count() as f64;
    let negatives = labels.len() as f64 - positives;
    let rank_sum: f64 = ranks
        .iter()
        .zip(labels)
        .filter(|(_, &l)| l)
        .map(|(r, _)| r)
        .sum();
    Ok((rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives))
}

/// Average precision: sum over score thresholds (high to low) of precision times the
/// gain in recall, as scikit-learn's `average_precision_score`.
pub fn average_precision(labels: &[bool], scores: &[f64]) -> Result<f64> {
    check_binary(labels, scores)?;
    let total_pos = labels.iter().filter(|&&l| l).count() as f64;
    let points = threshold_points(labels, scores);
    let mut ap = 0.0;
    let mut last_recall = 0.0;
    for (tp, fp) in points {
        let recall = tp / total_pos;
        let precision = tp / (tp + fp);
        ap += (recall - last_recall) * precision;
        last_recall = recall;
    }
    Ok(ap)
}

/// Points of the ROC curve, (false positive rate, true positive rate), from (0, 0).
pub fn roc_curve(labels: &[bool], scores: &[f64]) -> Result<Vec<(f64, f64)>> {
    check_binary(labels, scores)?;
    let total_pos = labels.iter().filter(|&&l| l).count() as f64;
    let total_neg = labels.len() as f64 - total_pos;
    let mut out = vec![(0.0, 0.0)];
    out.extend(
        threshold_points(labels, scores)
            .into_iter()
            .map(|(tp, fp)| (fp / total_neg, tp / total_pos)),
    );
    Ok(out)
}

/// Fraction of predictions equal to the truth.
pub fn accuracy<T: PartialEq>(truth: &[T], predicted: &[T]) -> Result<f64> {
    check_lengths(truth.len(), predicted.len())?;
    let right = truth.iter().zip(predicted).filter(|(a, b)| a == b).count();
    Ok(right as f64 / truth.len() as f64)
}

/// Unweighted mean over classes (those in the truth or the predictions) of F1; a class
/// with no true or predicted member scores 0, as scikit-learn's default.
pub fn macro_f1<T: PartialEq + Clone + Ord>(truth: &[T], predicted: &[T]) -> Result<f64> {
    check_lengths(truth.len(), predicted.len())?;
    let mut classes: Vec<T> = truth.iter().chain(predicted).cloned().collect();
    classes.sort();
    classes.dedup();
    let mut total = 0.0;
    for c in &classes {
        let tp = truth
            .iter()
            .zip(predicted)
            .filter(|(t, p)| *t == c && *p == c)
            .count() as f64;
        let fp = truth
            .iter()
            .zip(predicted)
            .filter(|(t, p)| *t != c && *p == c)
            .count() as f64;
        let fn_ = truth
            .iter()
            .zip(predicted)
            .filter(|(t, p)| *t == c && *p != c)
            .count() as f64;
        if tp > 0.0 {
            total += 2.0 * tp / (2.0 * tp + fp + fn_);
        }
    }
    Ok(total / classes.len() as f64)
}

/// Indices sorted by descending score.
fn ranked(scores: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    order
}

/// Cumulative (true positives, false positives) at each distinct score, high to low.
fn threshold_points(labels: &[bool], scores: &[f64]) -> Vec<(f64, f64)> {
    let order = ranked(scores);
    let mut out = Vec::new();
    let (mut tp, mut fp) = (0.0, 0.0);
    for (i, &k) in order.iter().enumerate() {
        if labels[k] {
            tp += 1.0;
        } else {
            fp += 1.0;
        }
        let last_of_group = i + 1 == order.len() || scores[order[i + 1]] != scores[k];
        if last_of_group {
            out.push((tp, fp));
        }
    }
    out
}

fn check_lengths(a: usize, b: usize) -> Result<()> {
    if a != b || a == 0 {
        return Err(Error::InvalidArgument(format!(
            "metric inputs differ in length or are empty ({a} vs {b})"
        )));
    }
    Ok(())
}

fn check_binary(labels: &[bool], scores: &[f64]) -> Result<()> {
    check_lengths(labels.len(), scores.len())?;
    if labels.iter().all(|&l| l) || labels.iter().all(|&l| !l) {
        return Err(Error::InvalidArgument(format!(
            "ROC and PR curves need both classes; all {} items are {}",
            labels.len(),
            if labels[0] { "positive" } else { "negative" }
        )));
    }
    if let Some(i) = scores.iter().position(|s| !s.is_finite()) {
        return Err(Error::InvalidArgument(format!("score {i} is not finite")));
    }
    Ok(())
}

/// Pearson correlation; 0 when either side is constant.
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    if saa == 0.0 || sbb == 0.0 {
        0.0
    } else {
        sab / (saa * sbb).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_cases() {
        let labels = [true, false, true, false];
        assert_eq!(roc_auc(&labels, &[0.9, 0.1, 0.8, 0.2]).unwrap(), 1.0);
        assert_eq!(roc_auc(&labels, &[0.1, 0.9, 0.2, 0.8]).unwrap(), 0.0);
        assert_eq!(roc_auc(&labels, &[0.5, 0.5, 0.5, 0.5]).unwrap(), 0.5);
        assert!(roc_auc(&[true, true], &[0.1, 0.2]).is_err());
        assert_eq!(macro_f1(&[0, 0, 1], &[0, 0, 1]).unwrap(), 1.0);
    }
}
