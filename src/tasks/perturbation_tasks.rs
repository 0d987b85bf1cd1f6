//! Genetic perturbation response from the perturbed gene's vector: the signatures of
//! the training perturbations whose target genes are nearest (cosine) vote, weighted
//! by similarity, for the genes of a held-out perturbation's signature. Scored by
//! precision at n, the size of the true signature, against the truth held out.

use super::gene_tasks::{task_error, TaskScore};
use super::outcomes::{unique_ids, ItemOutcomes, OutcomeKind};
use super::resample::{bootstrap_interval, shuffle};
use super::spec::{PerturbationSpec, TaskSpec};
use super::vectors::{GeneVectors, SymbolMapper};
use crate::error::{Error, Result};
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// One perturbation: the knocked-down gene and the genes that responded.
pub(super) struct Signature {
    pub(super) target: String,
    genes: Vec<String>,
}

pub(super) fn read_gmt(path: &Path, mapper: &mut SymbolMapper) -> Result<(Vec<Signature>, usize)> {
    let lines = crate::fsutil::read_utf8_lines(path)?;
    let mut out = Vec::new();
    let mut total = 0;
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() < 3 {
            return Err(Error::Parse {
                path: path.to_path_buf(),
                line: i + 1,
                message: "a GMT line needs a name, a description and at least one gene".into(),
            });
        }
        total += 1;
        let Some(target) = mapper.approved(fields[0].trim()) else {
            continue;
        };
        let genes: Vec<String> = fields[2..]
            .iter()
            .filter_map(|g| mapper.approved(g.trim()))
            .collect();
        if !genes.is_empty() {
            out.push(Signature { target, genes });
        }
    }
    if total == 0 {
        return Err(Error::bad_file(
            path,
            "the GMT file is empty (no signatures)",
        ));
    }
    Ok((out, total))
}

/// Runs a perturbation task for every set of vectors.
pub fn run_perturbations(
    spec: &TaskSpec,
    p: &PerturbationSpec,
    stores: &[&GeneVectors],
    mapper: &mut SymbolMapper,
) -> Result<Vec<TaskScore>> {
    let (train, train_total) = read_gmt(&spec.data_path(&p.train), mapper)?;
    let test = match &p.test {
        Some(t) => Some(read_gmt(&spec.data_path(t), mapper)?),
        None => None,
    };
    let total = test.as_ref().map(|(_, n)| *n).unwrap_or(train_total);
    let mut out = Vec::new();
    for vectors in stores {
        let known = |s: &&Signature| vectors.get(&s.target).is_some();
        let train_known: Vec<&Signature> = train.iter().filter(known).collect();
        // (training pool, queries) per round.
        let rounds: Vec<(Vec<&Signature>, Vec<&Signature>)> = match &test {
            Some((test, _)) => vec![(train_known.clone(), test.iter().filter(known).collect())],
            None => {
                let mut order: Vec<usize> = (0..train_known.len()).collect();
                shuffle(&mut order, p.seed);
                (0..p.folds)
                    .map(|f| {
                        let (mut pool, mut queries) = (Vec::new(), Vec::new());
                        for (n, &i) in order.iter().enumerate() {
                            if n % p.folds == f {
                                queries.push(train_known[i]);
                            } else {
                                pool.push(train_known[i]);
                            }
                        }
                        (pool, queries)
                    })
                    .collect()
            }
        };
        let mut precision = Vec::new();
        let mut query_ids = Vec::new();
        let mut prior_precision = Vec::new();
        let mut train_items = 0;
        for (pool, queries) in &rounds {
            if pool.is_empty() || queries.is_empty() {
                return Err(task_error(
                    spec,
                    vectors,
                    Error::InvalidArgument("no training or no test perturbations left".into()),
                ));
            }
            train_items = train_items.max(pool.len());
            let mut frequency: HashMap<&str, f64> = HashMap::new();
            for s in pool {
                for g in &s.genes {
                    *frequency.entry(g.as_str()).or_default() += 1.0;
                }
            }
            for q in queries {
                let qv = vectors.get(&q.target).unwrap_or(&[]);
                // Never let a perturbation of the same gene vote: that copies the answer
                // rather than using what the vectors know.
                let mut sims: Vec<(f64, &Signature)> = pool
                    .iter()
                    .filter(|s| s.target != q.target)
                    .map(|s| {
                        let v = vectors.get(&s.target).unwrap_or(&[]);
                        (qv.iter().zip(v).map(|(a, b)| (a * b) as f64).sum(), *s)
                    })
                    .collect();
                let k = p.neighbors.min(sims.len());
                if k == 0 {
                    continue;
                }
                sims.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
                let mut votes: HashMap<&str, f64> = HashMap::new();
                for (sim, s) in &sims[..k] {
                    for g in &s.genes {
                        *votes.entry(g.as_str()).or_default() += sim.max(0.0) + 1e-6;
                    }
                }
                let truth: HashSet<&str> = q.genes.iter().map(String::as_str).collect();
                precision.push(precision_at(&votes, &truth));
                query_ids.push(q.target.clone());
                prior_precision.push(precision_at(&frequency, &truth));
            }
        }
        if precision.is_empty() {
            return Err(task_error(
                spec,
                vectors,
                Error::InvalidArgument("no perturbation could be scored".into()),
            ));
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let interval = bootstrap_interval(precision.len(), p.seed ^ 0x9e2b, |idx| {
            Some(idx.iter().map(|&i| precision[i]).sum::<f64>() / idx.len() as f64)
        });
        out.push(TaskScore {
            store: vectors.name.clone(),
            items_total: total,
            items_covered: precision.len(),
            own_items_covered: test
                .as_ref()
                .map_or(&train, |(t, _)| t)
                .iter()
                .filter(|s| vectors.covers(&s.target))
                .count(),
            train_items,
            test_items: precision.len(),
            metric: "precision@n (n = signature size)".into(),
            value: mean(&precision),
            interval,
            interval_method: "bootstrap of perturbations, 200 resamples".into(),
            other_metrics: vec![("signature-frequency prior".into(), mean(&prior_precision))],
            roc: Vec::new(),
            confusion: None,
            map: None,
            outcomes: Some(ItemOutcomes {
                ids: unique_ids(query_ids),
                kind: OutcomeKind::Mean { values: precision },
            }),
        });
    }
    Ok(out)
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
