//! Multi-class gene classification (for example HGNC gene families): multinomial
//! logistic regression on the gene vectors, stratified k-fold cross-validation;
//! macro-F1, accuracy and one-vs-rest ROC-AUC averaged over classes.

use super::gene_tasks::{stratified_folds_by, task_error, TaskScore};
use super::metrics::roc_auc;
use super::outcomes::{ItemOutcomes, OutcomeKind};
use super::probe::Standardizer;
use super::resample::class_scores;
use super::spec::{GeneFamilySpec, TaskSpec};
use super::vectors::{GeneVectors, SymbolMapper};
use crate::csv_table::CsvTable;
use crate::error::{Error, Result};
use linfa::prelude::*;
use linfa_logistic::MultiLogisticRegression;
use ndarray::{Array1, Array2};
use std::collections::{HashMap, HashSet};

/// Runs a gene-family task for every set of vectors.
pub fn run_gene_families(
    spec: &TaskSpec,
    f: &GeneFamilySpec,
    stores: &[&GeneVectors],
    mapper: &mut SymbolMapper,
) -> Result<Vec<TaskScore>> {
    let path = spec.data_path(&f.labels);
    let mut table = CsvTable::open(&path)?;
    let symbol_col = table.column(&f.symbol_column)?;
    let class_col = table.column(&f.class_column)?;
    let wanted: HashMap<&str, usize> = f
        .classes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i))
        .collect();
    let mut classes_of: HashMap<String, HashSet<usize>> = HashMap::new();
    for record in table.records() {
        let record = record?;
        let class = record.get(class_col).unwrap_or("").trim();
        let Some(&c) = wanted.get(class) else {
            continue;
        };
        if let Some(symbol) = mapper.approved(record.get(symbol_col).unwrap_or("").trim()) {
            classes_of.entry(symbol).or_default().insert(c);
        }
    }
    for (c, name) in f.classes.iter().enumerate() {
        if !classes_of.values().any(|s| s.contains(&c)) {
            return Err(Error::bad_file(
                &path,
                format!("no gene has class '{name}' in column '{}'", f.class_column),
            ));
        }
    }
    // One class per gene: genes in several of the chosen classes are left out.
    let mut genes: Vec<(String, usize)> = classes_of
        .into_iter()
        .filter(|(_, s)| s.len() == 1)
        .filter_map(|(g, s)| s.into_iter().next().map(|c| (g, c)))
        .collect();
    genes.sort();
    let total = genes.len();
    let mut out = Vec::new();
    for vectors in stores {
        let covered: Vec<&(String, usize)> = genes
            .iter()
            .filter(|(g, _)| vectors.get(g).is_some())
            .collect();
        let labels: Vec<usize> = covered.iter().map(|(_, c)| *c).collect();
        let folds = stratified_folds_by(&labels, f.folds, f.seed)
            .map_err(|e| task_error(spec, vectors, e))?;
        let d = vectors.dim();
        let rows = |idx: &[usize]| {
            let mut x = Array2::<f64>::zeros((idx.len(), d));
            for (r, &i) in idx.iter().enumerate() {
                if let Some(v) = vectors.get(&covered[i].0) {
                    for j in 0..d {
                        x[(r, j)] = v[j] as f64;
                    }
                }
            }
            x
        };
        let k = f.classes.len();
        let mut ids = Vec::new();
        let mut truth = Vec::new();
        let mut predicted = Vec::new();
        let mut probabilities: Vec<Vec<f64>> = Vec::new();
        let mut train_items = 0;
        for fold in 0..f.folds {
            let test: Vec<usize> = (0..covered.len()).filter(|&i| folds[i] == fold).collect();
            let train: Vec<usize> = (0..covered.len()).filter(|&i| folds[i] != fold).collect();
            train_items = train_items.max(train.len());
            let xt = rows(&train);
            let scaler = Standardizer::fit(&xt);
            let y: Array1<usize> = train.iter().map(|&i| labels[i]).collect();
            let model = MultiLogisticRegression::default()
                .alpha(spec.probe.alpha)
                .max_iterations(spec.probe.max_iterations)
                .fit(&Dataset::new(scaler.transform(&xt), y))
                .map_err(|e| {
                    task_error(
                        spec,
                        vectors,
                        Error::InvalidArgument(format!("logistic regression failed: {e}")),
                    )
                })?;
            let xs = scaler.transform(&rows(&test));
            let p = model.predict_probabilities(&xs);
            let model_classes = model.classes().to_vec();
            for (r, &i) in test.iter().enumerate() {
                let mut full = vec![0f64; k];
                for (col, &c) in model_classes.iter().enumerate() {
                    full[c] = p[(r, col)];
                }
                let best = full
                    .iter()
                    .enumerate()
                    .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0)))
                    .map(|(c, _)| c)
                    .unwrap_or(0);
                ids.push(covered[i].0.clone());
                truth.push(labels[i]);
                predicted.push(best);
                probabilities.push(full);
            }
        }
        let ovr_auc = |idx: &[usize]| -> f64 {
            let aucs: Vec<f64> = (0..k)
                .filter_map(|c| {
                    let t: Vec<bool> = idx.iter().map(|&i| truth[i] == c).collect();
                    let s: Vec<f64> = idx.iter().map(|&i| probabilities[i][c]).collect();
                    roc_auc(&t, &s).ok()
                })
                .collect();
            aucs.iter().sum::<f64>() / aucs.len().max(1) as f64
        };
        let all: Vec<usize> = (0..truth.len()).collect();
        let scores = class_scores(&truth, &predicted, k, f.seed ^ 0xfa11)?;
        out.push(TaskScore {
            store: vectors.name.clone(),
            items_total: total,
            items_covered: covered.len(),
            own_items_covered: genes.iter().filter(|(g, _)| vectors.covers(g)).count(),
            train_items,
            test_items: truth.len(),
            metric: "macro-F1".into(),
            value: scores.macro_f1,
            interval: scores.interval,
            interval_method: "bootstrap of genes, 200 resamples".into(),
            other_metrics: vec![
                ("accuracy".into(), scores.accuracy),
                ("one-vs-rest ROC-AUC".into(), ovr_auc(&all)),
            ],
            roc: Vec::new(),
            confusion: Some((f.display_names(), scores.confusion)),
            map: out.is_empty().then(|| {
                let points: Vec<&[f32]> =
                    covered.iter().filter_map(|(g, _)| vectors.get(g)).collect();
                super::pca::ItemMap::project(&points, labels.clone(), f.display_names(), "genes")
            }),
            outcomes: Some(ItemOutcomes {
                ids,
                kind: OutcomeKind::Classes { truth, predicted },
            }),
        });
    }
    Ok(out)
}
