//! Genetic perturbation response from the perturbed gene's vector: the signatures of
//! the training perturbations whose target genes are nearest (cosine) vote, weighted
//! by similarity, for the genes of a held-out perturbation's signature. Scored by
//! precision at n, the size of the true signature, against the truth held out.

use crate::error::Result;
use crate::io::read_gmt;
use crate::tasks::checks::{at_least, Check};
use crate::tasks::defaults::{default_folds, default_k, default_seed};
use crate::tasks::outcomes::{unique_ids, ItemOutcomes, OutcomeKind};
use crate::tasks::task::TaskContext;
use crate::tasks::task::{Fold, IntervalRule, Layout, OutcomeOrder, Predictions, RunState};
use crate::tasks::task::{Scoring, StoreView, Task, TaskGenes};
use crate::tasks::vectors::{GeneVectors, SymbolMapper};
use crate::tasks::{cv, TaskScore};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// A perturbation-response task: GMT files whose sets are named by the perturbed gene
/// and hold its response signature.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerturbationSpec {
    /// Signatures to learn from (and to cross-validate on when `test` is absent).
    pub train: PathBuf,
    /// Signatures to predict, for example from another cell line.
    pub test: Option<PathBuf>,
    /// Folds over perturbations when there is no `test` file.
    #[serde(default = "default_folds")]
    pub folds: usize,
    /// Training perturbations whose signatures vote for a held-out one.
    #[serde(default = "default_k")]
    pub neighbors: usize,
    /// Seed for the folds and the bootstrap.
    #[serde(default = "default_seed")]
    pub seed: u64,
}

/// One perturbation: the knocked-down gene and the genes that responded.
pub(crate) struct Signature {
    target: String,
    genes: Vec<String>,
}

/// The resolved signatures, training file first, then the test file's.
pub(crate) struct Signatures {
    signatures: Vec<Signature>,
    train_len: usize,
    /// Signatures in the file the queries come from.
    total: usize,
}

impl Task for PerturbationSpec {
    const TABLE: &'static str = "perturbations";
    type Data = Signatures;
    type Features = ();

    fn checks(&self) -> Vec<Check> {
        vec![
            at_least(Self::TABLE, "folds", self.folds, 2),
            at_least(Self::TABLE, "neighbors", self.neighbors, 1),
        ]
    }

    fn read(&self, task: &TaskContext, mapper: &mut SymbolMapper) -> Result<Signatures> {
        let (mut signatures, train_total) = read_signatures(&task.data_path(&self.train), mapper)?;
        let train_len = signatures.len();
        let mut total = train_total;
        if let Some(test) = &self.test {
            let (test, test_total) = read_signatures(&task.data_path(test), mapper)?;
            signatures.extend(test);
            total = test_total;
        }
        Ok(Signatures {
            signatures,
            train_len,
            total,
        })
    }

    fn genes(&self, task: &TaskContext, mapper: &mut SymbolMapper) -> Result<TaskGenes> {
        let data = self.read(task, mapper)?;
        Ok(TaskGenes {
            items: data.signatures.into_iter().map(|s| s.target).collect(),
            ..TaskGenes::default()
        })
    }

    fn scoring(&self, data: &Signatures) -> Scoring {
        Scoring {
            metric: "precision@n (n = signature size)".into(),
            total: data.total,
            unit: "perturbations",
            interval: IntervalRule::Bootstrap {
                seed: self.seed ^ 0x9e2b,
                of: "perturbations",
            },
            classes: None,
            order: OutcomeOrder::Folds,
        }
    }

    fn layout(
        &self,
        _task: &TaskContext,
        data: &Signatures,
        store: StoreView,
        _state: &mut RunState,
    ) -> Result<Option<Layout<()>>> {
        let known = |i: &usize| store.vectors.get(&data.signatures[*i].target).is_some();
        let train: Vec<usize> = (0..data.train_len).filter(known).collect();
        let (mut folds, queries) = if self.test.is_some() {
            let test = (data.train_len..data.signatures.len())
                .filter(known)
                .collect();
            (
                vec![Fold { train, test }],
                &data.signatures[data.train_len..],
            )
        } else {
            let folds = cv::shuffled(train.len(), self.folds, self.seed)?
                .into_iter()
                .map(|f| Fold {
                    train: f.train.iter().map(|&i| train[i]).collect(),
                    test: f.test.iter().map(|&i| train[i]).collect(),
                })
                .collect();
            (folds, &data.signatures[..data.train_len])
        };
        // A query scores only if a training perturbation of another gene can vote.
        let target = |i: usize| &data.signatures[i].target;
        for fold in &mut folds {
            let pool = &fold.train;
            fold.test
                .retain(|&q| pool.iter().any(|&p| target(p) != target(q)));
        }
        let covered = folds.iter().map(|f| f.test.len()).sum();
        Ok(Some(Layout {
            features: (),
            covered,
            own_covered: queries
                .iter()
                .filter(|s| store.vectors.covers(&s.target))
                .count(),
            folds,
        }))
    }

    fn fit_fold(
        &self,
        _task: &TaskContext,
        data: &Signatures,
        store: &GeneVectors,
        _layout: &Layout<()>,
        fold: &Fold,
    ) -> Result<Predictions> {
        let pool: Vec<&Signature> = fold.train.iter().map(|&i| &data.signatures[i]).collect();
        let mut frequency: HashMap<&str, f64> = HashMap::new();
        for s in &pool {
            for g in &s.genes {
                *frequency.entry(g.as_str()).or_default() += 1.0;
            }
        }
        let (mut ids, mut precision, mut items, mut prior) = (vec![], vec![], vec![], vec![]);
        for &q in &fold.test {
            let query = &data.signatures[q];
            let Some(votes) = self.votes(query, &pool, store) else {
                continue;
            };
            let truth: HashSet<&str> = query.genes.iter().map(String::as_str).collect();
            precision.push(precision_at(&votes, &truth));
            prior.push(vec![precision_at(&frequency, &truth)]);
            ids.push(query.target.clone());
            items.push(q);
        }
        Ok(Predictions {
            outcomes: ItemOutcomes {
                ids,
                kind: OutcomeKind::Mean { values: precision },
            },
            items,
            extra: prior,
        })
    }

    fn finish(
        &self,
        _data: &Signatures,
        _store: &GeneVectors,
        _layout: &Layout<()>,
        extra: &[Vec<f64>],
        score: &mut TaskScore,
        _first: bool,
    ) {
        let prior = extra.iter().map(|p| p[0]).sum::<f64>() / extra.len().max(1) as f64;
        score
            .other_metrics
            .push(("signature-frequency prior".into(), prior));
        // Two signatures of one gene (in different folds) still pair up one to one.
        if let Some(outcomes) = &mut score.outcomes {
            outcomes.ids = unique_ids(std::mem::take(&mut outcomes.ids));
        }
    }
}

impl PerturbationSpec {
    /// The votes of the query's nearest training perturbations for response genes;
    /// `None` when no training perturbation of another gene is left to vote.
    fn votes<'a>(
        &self,
        query: &Signature,
        pool: &[&'a Signature],
        store: &GeneVectors,
    ) -> Option<HashMap<&'a str, f64>> {
        let qv = store.get(&query.target).unwrap_or(&[]);
        // Never let a perturbation of the same gene vote: that copies the answer
        // rather than using what the vectors know.
        let mut sims: Vec<(f64, &Signature)> = pool
            .iter()
            .filter(|s| s.target != query.target)
            .map(|s| {
                let v = store.get(&s.target).unwrap_or(&[]);
                (qv.iter().zip(v).map(|(a, b)| (a * b) as f64).sum(), *s)
            })
            .collect();
        let k = self.neighbors.min(sims.len());
        if k == 0 {
            return None;
        }
        sims.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
        let mut votes: HashMap<&str, f64> = HashMap::new();
        for (sim, s) in &sims[..k] {
            for g in &s.genes {
                *votes.entry(g.as_str()).or_default() += sim.max(0.0) + 1e-6;
            }
        }
        Some(votes)
    }
}

/// The signatures of a GMT file whose target and at least one gene resolve, and how
/// many signatures the file has.
fn read_signatures(path: &Path, mapper: &mut SymbolMapper) -> Result<(Vec<Signature>, usize)> {
    let sets = read_gmt(path)?;
    let total = sets.len();
    let mut out = Vec::new();
    for set in sets {
        let Some(target) = mapper.approved(&set.name) else {
            continue;
        };
        let genes: Vec<String> = set
            .genes
            .iter()
            .filter_map(|g| mapper.approved(g))
            .collect();
        if !genes.is_empty() {
            out.push(Signature { target, genes });
        }
    }
    Ok((out, total))
}

/// Fraction of the `truth.len()` highest-scored genes that are in `truth` (ties broken
/// by name, so results are reproducible).
fn precision_at(scores: &HashMap<&str, f64>, truth: &HashSet<&str>) -> f64 {
    let mut ranked: Vec<(&str, f64)> = scores.iter().map(|(g, s)| (*g, *s)).collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    let n = truth.len();
    let hits = ranked
        .iter()
        .take(n)
        .filter(|(g, _)| truth.contains(g))
        .count();
    hits as f64 / n as f64
}
