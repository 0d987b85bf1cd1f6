//! The acquisition arm's measures that the held-out arm has no use for: how much of its
//! card a profile recalls, per-gene outcomes pooled over seeds, the share of the gap to
//! the cards a model closes on a task, and Holm's correction of the pre-registered tests.

use super::super::facts::GoKnowledge;
use crate::tasks::{ItemOutcomes, OutcomeKind};
use std::collections::{BTreeSet, HashMap};

/// Of the GO process names a card states, the share the profile states too; `None` when
/// the card names none (nothing to recall).
pub fn go_recall(go: &GoKnowledge, card: &str, profile: &str) -> Option<f64> {
    let taught: BTreeSet<&str> = go.terms_in(card).into_iter().collect();
    if taught.is_empty() {
        return None;
    }
    let said: BTreeSet<&str> = go.terms_in(profile).into_iter().collect();
    Some(taught.intersection(&said).count() as f64 / taught.len() as f64)
}

/// Per-gene values as paired-test outcomes (the metric is their mean).
pub fn mean_outcomes(values: &[(String, f64)]) -> ItemOutcomes {
    ItemOutcomes {
        ids: values.iter().map(|(id, _)| id.clone()).collect(),
        kind: OutcomeKind::Mean {
            values: values.iter().map(|(_, v)| *v).collect(),
        },
    }
}

/// The per-item mean of several runs' outcomes (the seeds of one objective), over the
/// items every run has; `None` when a run's outcomes are not per-item means.
pub fn pooled(runs: &[&ItemOutcomes]) -> Option<ItemOutcomes> {
    let mut sums: HashMap<&str, (f64, usize)> = HashMap::new();
    for run in runs {
        let OutcomeKind::Mean { values } = &run.kind else {
            return None;
        };
        for (id, v) in run.ids.iter().zip(values) {
            let e = sums.entry(id.as_str()).or_insert((0.0, 0));
            e.0 += v;
            e.1 += 1;
        }
    }
    let first = runs.first()?;
    let values: Vec<(String, f64)> = first
        .ids
        .iter()
        .filter_map(|id| {
            let (sum, n) = sums.get(id.as_str())?;
            (*n == runs.len()).then(|| (id.clone(), sum / *n as f64))
        })
        .collect();
    Some(mean_outcomes(&values))
}

/// The share of the gap between the base model's score (0) and the cards' (1) that a
/// model's score closes; `None` when the gap is too small to divide by.
pub fn gap_closed(model: f64, base: f64, cards: f64) -> Option<f64> {
    let gap = cards - base;
    (gap.abs() > 1e-9 && model.is_finite()).then(|| (model - base) / gap)
}

/// Holm's step-down adjustment of p-values (family-wise error), in the input order.
pub fn holm(p_values: &[f64]) -> Vec<f64> {
    let m = p_values.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p_values[a].total_cmp(&p_values[b]));
    let mut adjusted = vec![0.0; m];
    let mut running: f64 = 0.0;
    for (rank, &i) in order.iter().enumerate() {
        let scaled = ((m - rank) as f64 * p_values[i]).min(1.0);
        running = running.max(scaled);
        adjusted[i] = running;
    }
    adjusted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holm_matches_its_definition() {
        // p sorted 0.01, 0.02, 0.04 -> 0.03, 0.04, 0.04 (monotone step-down).
        let adjusted = holm(&[0.04, 0.01, 0.02]);
        let expected = [0.04, 0.03, 0.04];
        for (a, e) in adjusted.iter().zip(expected) {
            assert!((a - e).abs() < 1e-12, "{adjusted:?}");
        }
        assert_eq!(holm(&[0.6, 0.7]), vec![1.0, 1.0]);
    }

    #[test]
    fn seeds_pool_per_gene_over_the_genes_every_seed_has() {
        let a = mean_outcomes(&[("A".into(), 1.0), ("B".into(), 0.0), ("C".into(), 0.5)]);
        let b = mean_outcomes(&[("B".into(), 1.0), ("A".into(), 0.0)]);
        let p = pooled(&[&a, &b]).unwrap();
        assert_eq!(p.ids, vec!["A", "B"]);
        let OutcomeKind::Mean { values } = p.kind else {
            panic!("means")
        };
        assert_eq!(values, vec![0.5, 0.5]);
    }

    #[test]
    fn gap_closed_is_relative_to_base_and_cards() {
        assert_eq!(gap_closed(0.75, 0.5, 1.0), Some(0.5));
        let below = gap_closed(0.4, 0.5, 1.0).unwrap();
        assert!((below + 0.2).abs() < 1e-12, "{below}");
        assert_eq!(gap_closed(0.7, 0.5, 0.5), None);
    }
}
