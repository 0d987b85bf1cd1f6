//! What a task's main metric is computed from, item by item, so that two stores scored
//! on the same items can be compared with a paired test rather than by their separate
//! intervals (which overlap long before a difference stops being real).

use super::metrics::{macro_f1, pearson, roc_auc};
use crate::error::{Error, Result};
use crate::rng::SplitMix64;

/// Per-item outcomes behind a [`super::TaskScore`]'s main metric.
#[derive(Debug, Clone)]
pub struct ItemOutcomes {
    /// One identifier per test item (a pair `A|B`, a gene, a cell row, a perturbation),
    /// the same for every store that covers the item.
    pub ids: Vec<String>,
    /// The outcomes, in the order of `ids`.
    pub kind: OutcomeKind,
}

/// How the main metric is made from the items.
#[derive(Debug, Clone)]
pub enum OutcomeKind {
    /// ROC-AUC of scores against two-class truth.
    Binary {
        /// Truth per item.
        truth: Vec<bool>,
        /// Probe score per item.
        scores: Vec<f64>,
    },
    /// Macro-F1 of predicted classes.
    Classes {
        /// True class per item.
        truth: Vec<usize>,
        /// Predicted class per item.
        predicted: Vec<usize>,
    },
    /// The mean of one value per item (precision@n per perturbation).
    Mean {
        /// The value per item.
        values: Vec<f64>,
    },
    /// The mean over columns of the Pearson r between predicted and true values, items
    /// as rows (a gene's response in each cell type).
    Columns {
        /// True values, one row per item.
        truth: Vec<Vec<f64>>,
        /// Predicted values, one row per item.
        predicted: Vec<Vec<f64>>,
    },
}

impl ItemOutcomes {
    /// Number of items.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when there are no items.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The main metric over the items at `idx` (repeats allowed, as in a bootstrap);
    /// `None` where it is undefined (one class only, constant values).
    pub fn metric(&self, idx: &[usize]) -> Option<f64> {
        match &self.kind {
            OutcomeKind::Binary { truth, scores } => {
                let t: Vec<bool> = idx.iter().map(|&i| truth[i]).collect();
                let s: Vec<f64> = idx.iter().map(|&i| scores[i]).collect();
                roc_auc(&t, &s).ok()
            }
            OutcomeKind::Classes { truth, predicted } => {
                let t: Vec<usize> = idx.iter().map(|&i| truth[i]).collect();
                let p: Vec<usize> = idx.iter().map(|&i| predicted[i]).collect();
                macro_f1(&t, &p).ok()
            }
            OutcomeKind::Mean { values } => (!idx.is_empty())
                .then(|| idx.iter().map(|&i| values[i]).sum::<f64>() / idx.len() as f64),
            OutcomeKind::Columns { truth, predicted } => {
                // The same r as the task's own metric (0 for a constant column).
                let columns = truth.first().map_or(0, Vec::len);
                let rs: Vec<f64> = (0..columns)
                    .map(|c| {
                        let a: Vec<f64> = idx.iter().map(|&i| predicted[i][c]).collect();
                        let b: Vec<f64> = idx.iter().map(|&i| truth[i][c]).collect();
                        pearson(&a, &b)
                    })
                    .collect();
                (idx.len() >= 2 && !rs.is_empty()).then(|| rs.iter().sum::<f64>() / rs.len() as f64)
            }
        }
    }

    /// Adds another fold's outcomes (of the same kind) after these.
    pub(crate) fn append(&mut self, other: ItemOutcomes) -> Result<()> {
        match (&mut self.kind, other.kind) {
            (
                OutcomeKind::Binary { truth, scores },
                OutcomeKind::Binary {
                    truth: t,
                    scores: s,
                },
            ) => {
                truth.extend(t);
                scores.extend(s);
            }
            (
                OutcomeKind::Classes { truth, predicted },
                OutcomeKind::Classes {
                    truth: t,
                    predicted: p,
                },
            ) => {
                truth.extend(t);
                predicted.extend(p);
            }
            (
                OutcomeKind::Columns { truth, predicted },
                OutcomeKind::Columns {
                    truth: t,
                    predicted: p,
                },
            ) => {
                truth.extend(t);
                predicted.extend(p);
            }
            (OutcomeKind::Mean { values }, OutcomeKind::Mean { values: v }) => values.extend(v),
            _ => {
                return Err(Error::InvalidArgument(
                    "folds gave outcomes of different kinds".into(),
                ))
            }
        }
        self.ids.extend(other.ids);
        Ok(())
    }

    /// The outcomes of the items at `idx`, in that order.
    pub(crate) fn select(&self, idx: &[usize]) -> ItemOutcomes {
        fn pick<T: Clone>(v: &[T], idx: &[usize]) -> Vec<T> {
            idx.iter().map(|&i| v[i].clone()).collect()
        }
        let kind = match &self.kind {
            OutcomeKind::Binary { truth, scores } => OutcomeKind::Binary {
                truth: pick(truth, idx),
                scores: pick(scores, idx),
            },
            OutcomeKind::Classes { truth, predicted } => OutcomeKind::Classes {
                truth: pick(truth, idx),
                predicted: pick(predicted, idx),
            },
            OutcomeKind::Mean { values } => OutcomeKind::Mean {
                values: pick(values, idx),
            },
            OutcomeKind::Columns { truth, predicted } => OutcomeKind::Columns {
                truth: pick(truth, idx),
                predicted: pick(predicted, idx),
            },
        };
        ItemOutcomes {
            ids: pick(&self.ids, idx),
            kind,
        }
    }
}

/// `ids` with repeats told apart by their occurrence (`X`, `X#2`, `X#3`), so items
/// that share a name (two signatures of one gene) still pair up one to one.
pub(super) fn unique_ids(ids: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    ids.into_iter()
        .map(|id| {
            let n = seen.entry(id.clone()).or_default();
            *n += 1;
            if *n == 1 {
                id
            } else {
                format!("{id}#{n}")
            }
        })
        .collect()
}

/// A paired comparison of two stores on the items both were tested on.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PairedDifference {
    /// Items both stores were tested on.
    pub items: usize,
    /// Metric of the first store minus that of the second, on those items.
    pub difference: f64,
    /// 95% percentile interval of the difference over paired resamples.
    pub interval: (f64, f64),
    /// Two-sided bootstrap p-value: twice the smaller share of resampled differences on
    /// either side of zero (at least 1 / resamples).
    pub p_value: f64,
    /// Resamples where the metric was defined for both stores.
    pub resamples: usize,
}

/// Paired bootstrap of `a`'s metric minus `b`'s over the items both hold (matched by
/// id): each resample draws the same items for both, so what the two stores share
/// (item difficulty) cancels. `None` when they share no items or the metric is never
/// defined; an error-free `None` is a "cannot compare", never a zero.
pub fn paired_bootstrap(
    a: &ItemOutcomes,
    b: &ItemOutcomes,
    resamples: usize,
    seed: u64,
) -> Option<PairedDifference> {
    if std::mem::discriminant(&a.kind) != std::mem::discriminant(&b.kind) {
        return None;
    }
    let position: std::collections::HashMap<&str, usize> = b
        .ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let (ia, ib): (Vec<usize>, Vec<usize>) = a
        .ids
        .iter()
        .enumerate()
        .filter_map(|(i, id)| Some((i, *position.get(id.as_str())?)))
        .unzip();
    if ia.is_empty() {
        return None;
    }
    let (a, b) = (a.select(&ia), b.select(&ib));
    let all: Vec<usize> = (0..ia.len()).collect();
    let difference = a.metric(&all)? - b.metric(&all)?;
    let mut rng = SplitMix64::new(seed);
    let n = ia.len();
    let mut diffs = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        let idx: Vec<usize> = (0..n).map(|_| rng.below(n)).collect();
        if let (Some(x), Some(y)) = (a.metric(&idx), b.metric(&idx)) {
            diffs.push(x - y);
        }
    }
    if diffs.is_empty() {
        return None;
    }
    let below = diffs.iter().filter(|&&d| d <= 0.0).count() as f64;
    let above = diffs.iter().filter(|&&d| d >= 0.0).count() as f64;
    let count = diffs.len() as f64;
    let p_value = (2.0 * below.min(above) / count).clamp(1.0 / count, 1.0);
    let interval = super::resample::percentile_interval(&mut diffs);
    Some(PairedDifference {
        items: ia.len(),
        difference,
        interval,
        p_value,
        resamples: count as usize,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binary(ids: &[&str], truth: &[bool], scores: &[f64]) -> ItemOutcomes {
        ItemOutcomes {
            ids: ids.iter().map(|s| s.to_string()).collect(),
            kind: OutcomeKind::Binary {
                truth: truth.to_vec(),
                scores: scores.to_vec(),
            },
        }
    }

    #[test]
    fn identical_outcomes_differ_by_exactly_zero() {
        let ids: Vec<String> = (0..40).map(|i| i.to_string()).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let truth: Vec<bool> = (0..40).map(|i| i % 3 == 0).collect();
        let scores: Vec<f64> = (0..40).map(|i| ((i * 7) % 11) as f64).collect();
        let a = binary(&ids, &truth, &scores);
        let d = paired_bootstrap(&a, &a, 200, 1).expect("comparable");
        assert_eq!(d.difference, 0.0);
        assert_eq!(d.interval, (0.0, 0.0));
        assert_eq!(d.p_value, 1.0);
    }

    #[test]
    fn a_perfect_probe_beats_a_noisy_one_and_items_match_by_id() {
        let n = 60;
        let ids: Vec<String> = (0..n).map(|i| format!("g{i}")).collect();
        let truth: Vec<bool> = (0..n).map(|i| i % 2 == 0).collect();
        let perfect: Vec<f64> = truth.iter().map(|&t| if t { 1.0 } else { 0.0 }).collect();
        let noisy: Vec<f64> = (0..n).map(|i| ((i * 37) % 17) as f64).collect();
        let a = binary(
            &ids.iter().map(String::as_str).collect::<Vec<_>>(),
            &truth,
            &perfect,
        );
        // b lists the same items in reverse order, plus one a lacks.
        let mut b_ids: Vec<&str> = ids.iter().rev().map(String::as_str).collect();
        b_ids.push("extra");
        let mut b_truth: Vec<bool> = truth.iter().rev().copied().collect();
        b_truth.push(true);
        let mut b_scores: Vec<f64> = noisy.iter().rev().copied().collect();
        b_scores.push(0.0);
        let b = binary(&b_ids, &b_truth, &b_scores);
        let d = paired_bootstrap(&a, &b, 500, 3).expect("comparable");
        assert_eq!(d.items, n);
        let auc_b = roc_auc(&truth, &noisy).unwrap();
        assert!((d.difference - (1.0 - auc_b)).abs() < 1e-12);
        assert!(d.interval.0 > 0.0, "{d:?}");
        assert!(d.p_value <= 2.0 / 500.0 + 1e-12, "{d:?}");
    }

    #[test]
    fn disjoint_items_cannot_be_compared() {
        let a = binary(&["x", "y"], &[true, false], &[1.0, 0.0]);
        let b = binary(&["z", "w"], &[true, false], &[1.0, 0.0]);
        assert!(paired_bootstrap(&a, &b, 100, 1).is_none());
    }

    #[test]
    fn column_metric_is_the_mean_pearson_r() {
        let o = ItemOutcomes {
            ids: vec!["a".into(), "b".into(), "c".into()],
            kind: OutcomeKind::Columns {
                truth: vec![vec![1.0, 3.0], vec![2.0, 2.0], vec![3.0, 1.0]],
                predicted: vec![vec![1.0, 1.0], vec![2.0, 2.0], vec![3.0, 3.0]],
            },
        };
        assert!((o.metric(&[0, 1, 2]).unwrap() - 0.0).abs() < 1e-12);
    }
}
