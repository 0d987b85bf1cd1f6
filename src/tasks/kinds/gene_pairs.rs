//! Gene-gene interaction: pairs labelled 0/1, features [a⊙b, |a−b|] of the two gene
//! vectors, a logistic probe, ROC-AUC on the test pairs.

use crate::error::{Error, Result};
use crate::tasks::checks::{at_least, finite, Check};
use crate::tasks::defaults::default_seed;
use crate::tasks::outcomes::{ItemOutcomes, OutcomeKind};
use crate::tasks::probe::logistic_scores;
use crate::tasks::resample::shuffle;
use crate::tasks::task::TaskContext;
use crate::tasks::task::{Fold, IntervalRule, Layout, OutcomeOrder, Predictions, RunState};
use crate::tasks::task::{Scoring, StoreView, Task, TaskGenes};
use crate::tasks::vectors::{GeneVectors, SymbolMapper};
use ndarray::Array2;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// How gene pairs are split into training and test sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PairSplit {
    /// The files' own train and test sets.
    Given,
    /// All pairs pooled; a random fraction of genes is held out, test pairs use only
    /// held-out genes and training pairs none of them.
    GeneDisjoint,
}

/// A gene-pair task: two files of "GENE_A GENE_B" lines and two of 0/1 labels.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenePairSpec {
    /// Training pairs.
    pub train_pairs: PathBuf,
    /// Training labels, line by line.
    pub train_labels: PathBuf,
    /// Test pairs.
    pub test_pairs: PathBuf,
    /// Test labels.
    pub test_labels: PathBuf,
    /// The split.
    pub split: PairSplit,
    /// For `gene_disjoint`: the fraction of genes held out.
    #[serde(default = "default_held_out")]
    pub held_out_genes: f64,
    /// Training pairs used at most (a seeded random subset), to bound time and memory.
    pub max_train_pairs: Option<usize>,
    /// Seed for subsets and splits.
    #[serde(default = "default_seed")]
    pub seed: u64,
}

fn default_held_out() -> f64 {
    0.2
}

/// A labelled gene pair (approved symbols).
pub(crate) struct Pair {
    a: String,
    b: String,
    label: bool,
}

/// The resolved pairs, training file first, and how many lines the files have.
pub(crate) struct Pairs {
    pairs: Vec<Pair>,
    train_len: usize,
    total: usize,
}

impl Task for GenePairSpec {
    const TABLE: &'static str = "gene_pairs";
    type Data = Pairs;
    type Features = ();

    fn checks(&self) -> Vec<Check> {
        let h = self.held_out_genes;
        let mut all = vec![finite(
            Self::TABLE,
            "held_out_genes",
            h,
            h > 0.0 && h < 1.0,
            "must be between 0 and 1 (exclusive)",
        )];
        if let Some(max) = self.max_train_pairs {
            all.push(at_least(Self::TABLE, "max_train_pairs", max, 1));
        }
        all
    }

    fn read(&self, task: &TaskContext, mapper: &mut SymbolMapper) -> Result<Pairs> {
        let (mut pairs, train_total) =
            read_pairs(task, &self.train_pairs, &self.train_labels, mapper)?;
        let train_len = pairs.len();
        let (test, test_total) = read_pairs(task, &self.test_pairs, &self.test_labels, mapper)?;
        pairs.extend(test);
        Ok(Pairs {
            pairs,
            train_len,
            total: train_total + test_total,
        })
    }

    fn genes(&self, task: &TaskContext, mapper: &mut SymbolMapper) -> Result<TaskGenes> {
        let data = self.read(task, mapper)?;
        let triples = |pairs: &[Pair]| -> Vec<(String, String, bool)> {
            pairs
                .iter()
                .map(|p| (p.a.clone(), p.b.clone(), p.label))
                .collect()
        };
        let (train, test) = data.pairs.split_at(data.train_len);
        Ok(TaskGenes {
            items: data
                .pairs
                .iter()
                .flat_map(|p| [p.a.clone(), p.b.clone()])
                .collect(),
            classes: None,
            pairs: Some((triples(train), triples(test))),
        })
    }

    fn scoring(&self, data: &Pairs) -> Scoring {
        Scoring {
            metric: "ROC-AUC".into(),
            total: data.total,
            unit: "pairs",
            interval: IntervalRule::Bootstrap {
                seed: self.seed ^ 0x5eed,
                of: "test items",
            },
            classes: None,
            order: OutcomeOrder::Folds,
        }
    }

    fn layout(
        &self,
        _task: &TaskContext,
        data: &Pairs,
        store: StoreView,
        _state: &mut RunState,
    ) -> Result<Option<Layout<()>>> {
        let vectors = store.vectors;
        let covered: Vec<usize> = (0..data.pairs.len())
            .filter(|&i| {
                let p = &data.pairs[i];
                vectors.get(&p.a).is_some() && vectors.get(&p.b).is_some()
            })
            .collect();
        let mut fold = match self.split {
            PairSplit::Given => Fold {
                train: covered
                    .iter()
                    .copied()
                    .filter(|&i| i < data.train_len)
                    .collect(),
                test: covered
                    .iter()
                    .copied()
                    .filter(|&i| i >= data.train_len)
                    .collect(),
            },
            PairSplit::GeneDisjoint => self.gene_disjoint(data, &covered),
        };
        if let Some(max) = self.max_train_pairs {
            if fold.train.len() > max {
                shuffle(&mut fold.train, self.seed.wrapping_add(1));
                fold.train.truncate(max);
            }
        }
        let own_covered = data
            .pairs
            .iter()
            .filter(|p| vectors.covers(&p.a) && vectors.covers(&p.b))
            .count();
        Ok(Some(Layout {
            features: (),
            covered: covered.len(),
            own_covered,
            folds: vec![fold],
        }))
    }

    fn fit_fold(
        &self,
        task: &TaskContext,
        data: &Pairs,
        store: &GeneVectors,
        _layout: &Layout<()>,
        fold: &Fold,
    ) -> Result<Predictions> {
        let (train_x, train_y) = pair_features(&data.pairs, &fold.train, store);
        let (test_x, test_y) = pair_features(&data.pairs, &fold.test, store);
        let scores = logistic_scores(task.probe, &train_x, &train_y, &test_x)?;
        let ids = fold
            .test
            .iter()
            .map(|&i| format!("{}|{}", data.pairs[i].a, data.pairs[i].b))
            .collect();
        Ok(Predictions::new(
            ItemOutcomes {
                ids,
                kind: OutcomeKind::Binary {
                    truth: test_y,
                    scores,
                },
            },
            fold.test.clone(),
        ))
    }
}

impl GenePairSpec {
    /// Holds out a seeded fraction of the covered pairs' genes: test pairs have both
    /// genes held out, training pairs neither (pairs across the cut are dropped).
    fn gene_disjoint(&self, data: &Pairs, covered: &[usize]) -> Fold {
        let mut genes: Vec<&str> = covered
            .iter()
            .flat_map(|&i| [data.pairs[i].a.as_str(), data.pairs[i].b.as_str()])
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        genes.sort_unstable();
        shuffle(&mut genes, self.seed);
        let held = (genes.len() as f64 * self.held_out_genes).round() as usize;
        let held: HashSet<&str> = genes[..held].iter().copied().collect();
        let side = |i: &usize| {
            let p = &data.pairs[*i];
            (held.contains(p.a.as_str()), held.contains(p.b.as_str()))
        };
        Fold {
            train: covered
                .iter()
                .copied()
                .filter(|i| side(i) == (false, false))
                .collect(),
            test: covered
                .iter()
                .copied()
                .filter(|i| side(i) == (true, true))
                .collect(),
        }
    }
}

/// The resolved pairs of a pairs file and its labels file, and the pairs in the files.
fn read_pairs(
    task: &TaskContext,
    pairs: &Path,
    labels: &Path,
    mapper: &mut SymbolMapper,
) -> Result<(Vec<Pair>, usize)> {
    let pairs_path = task.data_path(pairs);
    let labels_path = task.data_path(labels);
    let texts = crate::fsutil::read_utf8_lines(&pairs_path)?;
    let labels = crate::fsutil::read_utf8_lines(&labels_path)?;
    let texts: Vec<&String> = texts.iter().filter(|l| !l.trim().is_empty()).collect();
    let labels: Vec<&String> = labels.iter().filter(|l| !l.trim().is_empty()).collect();
    if texts.len() != labels.len() {
        return Err(Error::bad_file(
            &labels_path,
            format!(
                "{} labels for {} pairs in {}",
                labels.len(),
                texts.len(),
                pairs_path.display()
            ),
        ));
    }
    let mut out = Vec::with_capacity(texts.len());
    for (i, (text, label)) in texts.iter().zip(&labels).enumerate() {
        let mut genes = text.split_whitespace();
        let (Some(a), Some(b), None) = (genes.next(), genes.next(), genes.next()) else {
            return Err(Error::Parse {
                path: pairs_path.clone(),
                line: i + 1,
                message: "expected two gene symbols".into(),
            });
        };
        let label = match label.trim() {
            "1" => true,
            "0" => false,
            other => {
                return Err(Error::Parse {
                    path: labels_path.clone(),
                    line: i + 1,
                    message: format!("label '{other}' is not 0 or 1"),
                })
            }
        };
        if let (Some(a), Some(b)) = (mapper.approved(a), mapper.approved(b)) {
            out.push(Pair { a, b, label });
        }
    }
    Ok((out, texts.len()))
}

/// Symmetric pair features: element-wise product and absolute difference, for the
/// pairs at `idx` (all covered by `vectors`), with their labels.
fn pair_features(pairs: &[Pair], idx: &[usize], vectors: &GeneVectors) -> (Array2<f64>, Vec<bool>) {
    let d = vectors.dim();
    let mut x = Array2::<f64>::zeros((idx.len(), 2 * d));
    for (row, &i) in idx.iter().enumerate() {
        let (Some(a), Some(b)) = (vectors.get(&pairs[i].a), vectors.get(&pairs[i].b)) else {
            continue;
        };
        let mut row = x.row_mut(row);
        for j in 0..d {
            row[j] = (a[j] * b[j]) as f64;
            row[d + j] = (a[j] - b[j]).abs() as f64;
        }
    }
    (x, idx.iter().map(|&i| pairs[i].label).collect())
}
