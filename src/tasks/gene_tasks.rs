//! The gene-level tasks: gene-pair interaction and two-class gene labels, each turned
//! into scores on held-out items that the metrics and the report read.

use super::metrics::{accuracy, average_precision, macro_f1, roc_auc, roc_curve};
use super::outcomes::{ItemOutcomes, OutcomeKind};
use super::probe::logistic_scores;
use super::resample::{bootstrap_interval, shuffle};
use super::spec::{GeneClassSpec, GenePairSpec, PairSplit, TaskSpec};
use super::vectors::{GeneVectors, SymbolMapper};
use crate::error::{Error, Result};
use ndarray::Array2;
use std::collections::HashSet;
use std::path::Path;

/// What one store scored on one task.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TaskScore {
    /// The vectors' name.
    pub store: String,
    /// Items in the task file (pairs, genes or cells).
    pub items_total: usize,
    /// Items scored: those the store covers (every gene of a pair; a cell with any
    /// known gene), and with several stores those that every store covers.
    pub items_covered: usize,
    /// Items the store covers by itself, scored or not.
    pub own_items_covered: usize,
    /// Training items used.
    pub train_items: usize,
    /// Test items scored (all folds together for cross-validation).
    pub test_items: usize,
    /// The task's main metric ("ROC-AUC", "macro-F1", ...).
    pub metric: String,
    /// Its value.
    pub value: f64,
    /// Its 95% interval (bootstrap over test items) or fold range.
    pub interval: (f64, f64),
    /// How the interval was made.
    pub interval_method: String,
    /// Further metrics, by name.
    pub other_metrics: Vec<(String, f64)>,
    /// The ROC curve for binary tasks (at most about 200 points), else empty.
    pub roc: Vec<(f64, f64)>,
    /// Class names and counts (rows: truth, columns: prediction), for multi-class tasks.
    pub confusion: Option<(Vec<String>, Vec<Vec<usize>>)>,
    /// A 2-D PCA map of the items coloured by class (first store only).
    pub map: Option<super::pca::ItemMap>,
    /// The per-item outcomes the main metric comes from (not written to report.json),
    /// for paired comparisons between stores.
    #[serde(skip)]
    pub outcomes: Option<super::outcomes::ItemOutcomes>,
}

impl TaskScore {
    /// A further metric by name.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.other_metrics
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
    }
}

/// A labelled gene pair (approved symbols).
pub(super) struct Pair {
    pub(super) a: String,
    pub(super) b: String,
    pub(super) label: bool,
}

pub(super) fn read_pairs(
    spec: &TaskSpec,
    pairs: &Path,
    labels: &Path,
    mapper: &mut SymbolMapper,
) -> Result<(Vec<Pair>, usize)> {
    let pairs_path = spec.data_path(pairs);
    let labels_path = spec.data_path(labels);
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
    let mut total = 0;
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
        total += 1;
        if let (Some(a), Some(b)) = (mapper.approved(a), mapper.approved(b)) {
            out.push(Pair { a, b, label });
        }
    }
    Ok((out, total))
}

/// Symmetric pair features: element-wise product and absolute difference. Pairs the
/// vectors lack are skipped (callers pass covered pairs only).
fn pair_features(pairs: &[&Pair], vectors: &GeneVectors) -> (Array2<f64>, Vec<bool>) {
    let d = vectors.dim();
    let rows: Vec<(&[f32], &[f32], bool)> = pairs
        .iter()
        .filter_map(|p| Some((vectors.get(&p.a)?, vectors.get(&p.b)?, p.label)))
        .collect();
    let mut x = Array2::<f64>::zeros((rows.len(), 2 * d));
    for (i, (a, b, _)) in rows.iter().enumerate() {
        let mut row = x.row_mut(i);
        for j in 0..d {
            row[j] = (a[j] * b[j]) as f64;
            row[d + j] = (a[j] - b[j]).abs() as f64;
        }
    }
    (x, rows.iter().map(|r| r.2).collect())
}

/// Runs a gene-pair task for every set of vectors.
pub fn run_gene_pairs(
    spec: &TaskSpec,
    pairs_spec: &GenePairSpec,
    stores: &[&GeneVectors],
    mapper: &mut SymbolMapper,
) -> Result<Vec<TaskScore>> {
    let (train, train_total) = read_pairs(
        spec,
        &pairs_spec.train_pairs,
        &pairs_spec.train_labels,
        mapper,
    )?;
    let (test, test_total) = read_pairs(
        spec,
        &pairs_spec.test_pairs,
        &pairs_spec.test_labels,
        mapper,
    )?;
    let total = train_total + test_total;
    let mut out = Vec::new();
    for vectors in stores {
        let covered = |p: &&Pair| vectors.get(&p.a).is_some() && vectors.get(&p.b).is_some();
        let (mut train_set, test_set): (Vec<&Pair>, Vec<&Pair>) = match pairs_spec.split {
            PairSplit::Given => (
                train.iter().filter(covered).collect(),
                test.iter().filter(covered).collect(),
            ),
            PairSplit::GeneDisjoint => {
                let all: Vec<&Pair> = train.iter().chain(&test).filter(covered).collect();
                let mut genes: Vec<&str> = all
                    .iter()
                    .flat_map(|p| [p.a.as_str(), p.b.as_str()])
                    .collect::<HashSet<_>>()
                    .into_iter()
                    .collect();
                genes.sort_unstable();
                shuffle(&mut genes, pairs_spec.seed);
                let held = (genes.len() as f64 * pairs_spec.held_out_genes).round() as usize;
                let held: HashSet<&str> = genes[..held].iter().copied().collect();
                let test = all
                    .iter()
                    .filter(|p| held.contains(p.a.as_str()) && held.contains(p.b.as_str()))
                    .copied()
                    .collect();
                let train = all
                    .iter()
                    .filter(|p| !held.contains(p.a.as_str()) && !held.contains(p.b.as_str()))
                    .copied()
                    .collect();
                (train, test)
            }
        };
        let covered_count = match pairs_spec.split {
            PairSplit::Given => train_set.len() + test_set.len(),
            PairSplit::GeneDisjoint => train.iter().chain(&test).filter(covered).count(),
        };
        if let Some(max) = pairs_spec.max_train_pairs {
            if train_set.len() > max {
                shuffle(&mut train_set, pairs_spec.seed.wrapping_add(1));
                train_set.truncate(max);
            }
        }
        let (train_x, train_y) = pair_features(&train_set, vectors);
        let (test_x, test_y) = pair_features(&test_set, vectors);
        let scores = logistic_scores(&spec.probe, &train_x, &train_y, &test_x)
            .map_err(|e| task_error(spec, vectors, e))?;
        let ids = test_set
            .iter()
            .map(|p| format!("{}|{}", p.a, p.b))
            .collect();
        let mut score = score_binary(ids, &test_y, &scores, pairs_spec.seed)
            .map_err(|e| task_error(spec, vectors, e))?;
        score.store = vectors.name.clone();
        score.items_total = total;
        score.items_covered = covered_count;
        score.own_items_covered = train
            .iter()
            .chain(&test)
            .filter(|p| vectors.covers(&p.a) && vectors.covers(&p.b))
            .count();
        score.train_items = train_set.len();
        out.push(score);
    }
    Ok(out)
}

/// Runs a two-class gene task (stratified k-fold) for every set of vectors.
pub fn run_gene_classes(
    spec: &TaskSpec,
    class_spec: &GeneClassSpec,
    stores: &[&GeneVectors],
    mapper: &mut SymbolMapper,
) -> Result<Vec<TaskScore>> {
    let path = spec.data_path(&class_spec.labels);
    let mut table = crate::csv_table::CsvTable::open(&path)?;
    let symbol_col = table.column(&class_spec.symbol_column)?;
    let label_col = table.column(&class_spec.label_column)?;
    let mut genes: Vec<(String, bool)> = Vec::new();
    let mut total = 0;
    let mut seen = HashSet::new();
    for record in table.records() {
        let record = record?;
        let symbol = record.get(symbol_col).unwrap_or("").trim();
        let label = record.get(label_col).unwrap_or("").trim() == class_spec.positive_value;
        total += 1;
        if let Some(approved) = mapper.approved(symbol) {
            if seen.insert(approved.clone()) {
                genes.push((approved, label));
            }
        }
    }
    let mut out = Vec::new();
    for vectors in stores {
        let covered: Vec<&(String, bool)> = genes
            .iter()
            .filter(|(s, _)| vectors.get(s).is_some())
            .collect();
        let folds = stratified_folds(
            &covered.iter().map(|(_, l)| *l).collect::<Vec<_>>(),
            class_spec.folds,
            class_spec.seed,
        )
        .map_err(|e| task_error(spec, vectors, e))?;
        let d = vectors.dim();
        let features = |items: &[&&(String, bool)]| {
            let mut x = Array2::<f64>::zeros((items.len(), d));
            for (i, (s, _)) in items.iter().map(|p| &***p).enumerate() {
                if let Some(v) = vectors.get(s) {
                    for (j, value) in v.iter().enumerate() {
                        x[(i, j)] = *value as f64;
                    }
                }
            }
            x
        };
        let mut all_ids = Vec::new();
        let mut all_truth = Vec::new();
        let mut all_scores = Vec::new();
        let mut fold_aucs = Vec::new();
        let mut train_items = 0;
        for fold in 0..class_spec.folds {
            let test: Vec<&&(String, bool)> = covered
                .iter()
                .zip(&folds)
                .filter(|(_, &f)| f == fold)
                .map(|(g, _)| g)
                .collect();
            let train: Vec<&&(String, bool)> = covered
                .iter()
                .zip(&folds)
                .filter(|(_, &f)| f != fold)
                .map(|(g, _)| g)
                .collect();
            let train_y: Vec<bool> = train.iter().map(|g| g.1).collect();
            let test_y: Vec<bool> = test.iter().map(|g| g.1).collect();
            let scores =
                logistic_scores(&spec.probe, &features(&train), &train_y, &features(&test))
                    .map_err(|e| task_error(spec, vectors, e))?;
            fold_aucs.push(roc_auc(&test_y, &scores).map_err(|e| task_error(spec, vectors, e))?);
            train_items = train_items.max(train.len());
            all_ids.extend(test.iter().map(|g| g.0.clone()));
            all_truth.extend(test_y);
            all_scores.extend(scores);
        }
        let mut score = score_binary(all_ids, &all_truth, &all_scores, class_spec.seed)
            .map_err(|e| task_error(spec, vectors, e))?;
        let lo = fold_aucs.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = fold_aucs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        score.interval = (lo, hi);
        score.interval_method = format!("range over {} folds", class_spec.folds);
        score.store = vectors.name.clone();
        score.items_total = total;
        score.items_covered = covered.len();
        score.own_items_covered = genes.iter().filter(|(s, _)| vectors.covers(s)).count();
        score.train_items = train_items;
        if out.is_empty() {
            let rows: Vec<&[f32]> = covered.iter().filter_map(|(s, _)| vectors.get(s)).collect();
            score.map = Some(super::pca::ItemMap::project(
                &rows,
                covered.iter().map(|(_, l)| *l as usize).collect(),
                vec![
                    class_spec.negative_name.clone(),
                    class_spec.positive_name.clone(),
                ],
                "genes",
            ));
        }
        out.push(score);
    }
    Ok(out)
}

/// Fold number per item, classes spread evenly over folds; each fold must see both
/// classes.
pub fn stratified_folds(labels: &[bool], k: usize, seed: u64) -> Result<Vec<usize>> {
    stratified_folds_by(labels, k, seed)
}

/// Fold number per item for any class labels, each class spread evenly over folds.
pub fn stratified_folds_by<T: Ord + Clone + std::fmt::Debug>(
    labels: &[T],
    k: usize,
    seed: u64,
) -> Result<Vec<usize>> {
    let mut folds = vec![0; labels.len()];
    let mut classes: Vec<T> = labels.to_vec();
    classes.sort();
    classes.dedup();
    match classes.as_slice() {
        [] => {
            return Err(Error::InvalidArgument(
                "the store covers none of the task's items".into(),
            ))
        }
        [only] => {
            return Err(Error::InvalidArgument(format!(
                "all {} items the store covers are in one class ({only:?}); a probe needs two",
                labels.len()
            )))
        }
        _ => {}
    }
    for (c, class) in classes.iter().enumerate() {
        let mut idx: Vec<usize> = (0..labels.len()).filter(|&i| &labels[i] == class).collect();
        if idx.len() < k {
            return Err(Error::InvalidArgument(format!(
                "class {class:?} has {} items, too few for {k} folds",
                idx.len()
            )));
        }
        shuffle(&mut idx, seed ^ c as u64);
        for (n, i) in idx.into_iter().enumerate() {
            folds[i] = n % k;
        }
    }
    Ok(folds)
}

pub(crate) fn task_error(spec: &TaskSpec, vectors: &GeneVectors, e: Error) -> Error {
    let message = match e {
        Error::InvalidArgument(m) => m,
        other => other.to_string(),
    };
    Error::Task {
        task: spec.id.clone(),
        store: vectors.name.clone(),
        message,
    }
}

/// Metrics of binary scores, with a bootstrap interval for ROC-AUC.
fn score_binary(ids: Vec<String>, truth: &[bool], scores: &[f64], seed: u64) -> Result<TaskScore> {
    let predicted: Vec<bool> = scores.iter().map(|&s| s >= 0.5).collect();
    let auc = roc_auc(truth, scores)?;
    let interval = bootstrap_interval(truth.len(), seed ^ 0x5eed, |idx| {
        let t: Vec<bool> = idx.iter().map(|&i| truth[i]).collect();
        let s: Vec<f64> = idx.iter().map(|&i| scores[i]).collect();
        roc_auc(&t, &s).ok()
    });
    let curve = roc_curve(truth, scores)?;
    let step = curve.len().div_ceil(200).max(1);
    let mut roc: Vec<(f64, f64)> = curve.iter().step_by(step).copied().collect();
    if roc.last() != curve.last() {
        roc.extend(curve.last().copied());
    }
    Ok(TaskScore {
        store: String::new(),
        items_total: 0,
        items_covered: 0,
        own_items_covered: 0,
        train_items: 0,
        test_items: truth.len(),
        metric: "ROC-AUC".into(),
        value: auc,
        interval,
        interval_method: "bootstrap of test items, 200 resamples".into(),
        other_metrics: vec![
            ("PR-AUC".into(), average_precision(truth, scores)?),
            ("accuracy".into(), accuracy(truth, &predicted)?),
            ("macro-F1".into(), macro_f1(truth, &predicted)?),
        ],
        roc,
        confusion: None,
        map: None,
        outcomes: Some(ItemOutcomes {
            ids,
            kind: OutcomeKind::Binary {
                truth: truth.to_vec(),
                scores: scores.to_vec(),
            },
        }),
    })
}
