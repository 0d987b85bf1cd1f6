//! Multi-class gene classification (HGNC gene families, GO processes): multinomial
//! logistic regression on the gene vectors, stratified k-fold cross-validation;
//! macro-F1, accuracy and one-vs-rest ROC-AUC averaged over classes.

use super::{argmax, gene_map, gene_rows, labelled_gene_layout};
use crate::error::{Error, Result};
use crate::io::csv_table::CsvTable;
use crate::tasks::checks::{at_least, Check};
use crate::tasks::defaults::{default_folds, default_seed};
use crate::tasks::metrics::roc_auc;
use crate::tasks::outcomes::{ItemOutcomes, OutcomeKind};
use crate::tasks::probe::Standardizer;
use crate::tasks::task::TaskContext;
use crate::tasks::task::{Fold, IntervalRule, Layout, OutcomeOrder, Predictions, RunState};
use crate::tasks::task::{Scoring, StoreView, Task, TaskGenes};
use crate::tasks::vectors::{GeneVectors, SymbolMapper};
use crate::tasks::TaskScore;
use linfa::prelude::*;
use linfa_logistic::MultiLogisticRegression;
use ndarray::Array1;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;

/// A multi-class gene task: genes labelled by a class column, restricted to the listed
/// classes; a gene in more than one of them is left out. Stratified k-fold CV.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneFamilySpec {
    /// CSV or TSV (by extension, gzip allowed).
    pub labels: PathBuf,
    /// Column holding gene symbols.
    pub symbol_column: String,
    /// Column holding the class.
    pub class_column: String,
    /// The classes to tell apart.
    pub classes: Vec<String>,
    /// Names shown in reports for `classes`, in the same order (for classes stored as
    /// ids, such as GO terms).
    pub class_names: Option<Vec<String>>,
    /// Number of folds.
    #[serde(default = "default_folds")]
    pub folds: usize,
    /// Seed for the folds and the bootstrap.
    #[serde(default = "default_seed")]
    pub seed: u64,
}

impl GeneFamilySpec {
    /// The classes as reports show them: `class_names` when given, else the values.
    pub fn display_names(&self) -> Vec<String> {
        self.class_names
            .clone()
            .unwrap_or_else(|| self.classes.clone())
    }
}

/// The genes with exactly one of the task's classes.
pub(crate) struct FamilyGenes {
    /// (approved symbol, class index), sorted.
    genes: Vec<(String, usize)>,
    /// Every gene with any of the classes, also those with several.
    mentioned: BTreeSet<String>,
    /// Classes some gene has together with another.
    multi: HashSet<usize>,
}

impl Task for GeneFamilySpec {
    const TABLE: &'static str = "gene_families";
    type Data = FamilyGenes;
    /// Indices of the covered genes.
    type Features = Vec<usize>;

    fn checks(&self) -> Vec<Check> {
        vec![
            at_least(Self::TABLE, "folds", self.folds, 2),
            at_least(Self::TABLE, "classes", self.classes.len(), 2),
        ]
    }

    fn validate(&self) -> std::result::Result<(), String> {
        match &self.class_names {
            Some(names) if names.len() != self.classes.len() => {
                Err("class_names needs one name per entry of classes".into())
            }
            _ if self.classes.iter().collect::<HashSet<_>>().len() != self.classes.len() => {
                Err("classes lists a class twice".into())
            }
            _ => Ok(()),
        }
    }

    fn read(&self, task: &TaskContext, mapper: &mut SymbolMapper) -> Result<FamilyGenes> {
        let data = self.read_classes(task, mapper)?;
        for (c, name) in self.classes.iter().enumerate() {
            if !data.genes.iter().any(|(_, gc)| *gc == c) && !data.multi.contains(&c) {
                return Err(Error::bad_file(
                    task.data_path(&self.labels),
                    format!(
                        "no gene has class '{name}' in column '{}'",
                        self.class_column
                    ),
                ));
            }
        }
        Ok(data)
    }

    fn genes(&self, task: &TaskContext, mapper: &mut SymbolMapper) -> Result<TaskGenes> {
        let data = self.read_classes(task, mapper)?;
        Ok(TaskGenes {
            classes: Some(
                data.genes
                    .iter()
                    .map(|(g, c)| (g.clone(), self.classes[*c].clone()))
                    .collect(),
            ),
            items: data.mentioned,
            pairs: None,
        })
    }

    fn scoring(&self, data: &FamilyGenes) -> Scoring {
        Scoring {
            metric: "macro-F1".into(),
            total: data.genes.len(),
            unit: "genes",
            interval: IntervalRule::Bootstrap {
                seed: self.seed ^ 0xfa11,
                of: "genes",
            },
            classes: Some(self.display_names()),
            order: OutcomeOrder::Folds,
        }
    }

    fn layout(
        &self,
        _task: &TaskContext,
        data: &FamilyGenes,
        store: StoreView,
        _state: &mut RunState,
    ) -> Result<Option<Layout<Vec<usize>>>> {
        labelled_gene_layout(&data.genes, store, self.folds, self.seed).map(Some)
    }

    fn fit_fold(
        &self,
        task: &TaskContext,
        data: &FamilyGenes,
        store: &GeneVectors,
        layout: &Layout<Vec<usize>>,
        fold: &Fold,
    ) -> Result<Predictions> {
        let gene = |i: usize| &data.genes[layout.features[i]];
        let symbols =
            |idx: &[usize]| -> Vec<&str> { idx.iter().map(|&i| gene(i).0.as_str()).collect() };
        let xt = gene_rows(store, &symbols(&fold.train));
        let scaler = Standardizer::fit(&xt);
        let y: Array1<usize> = fold.train.iter().map(|&i| gene(i).1).collect();
        let model = MultiLogisticRegression::default()
            .alpha(task.probe.alpha)
            .max_iterations(task.probe.max_iterations)
            .fit(&Dataset::new(scaler.transform(&xt), y))
            .map_err(|e| Error::InvalidArgument(format!("logistic regression failed: {e}")))?;
        let p =
            model.predict_probabilities(&scaler.transform(&gene_rows(store, &symbols(&fold.test))));
        let model_classes = model.classes().to_vec();
        let mut predicted = Vec::with_capacity(fold.test.len());
        let mut probabilities = Vec::with_capacity(fold.test.len());
        for r in 0..fold.test.len() {
            let mut full = vec![0f64; self.classes.len()];
            for (col, &c) in model_classes.iter().enumerate() {
                full[c] = p[(r, col)];
            }
            predicted.push(argmax(&full));
            probabilities.push(full);
        }
        Ok(Predictions {
            outcomes: ItemOutcomes {
                ids: fold.test.iter().map(|&i| gene(i).0.clone()).collect(),
                kind: OutcomeKind::Classes {
                    truth: fold.test.iter().map(|&i| gene(i).1).collect(),
                    predicted,
                },
            },
            items: fold.test.clone(),
            extra: probabilities,
        })
    }

    fn finish(
        &self,
        data: &FamilyGenes,
        store: &GeneVectors,
        layout: &Layout<Vec<usize>>,
        extra: &[Vec<f64>],
        score: &mut TaskScore,
        first: bool,
    ) {
        if let Some(OutcomeKind::Classes { truth, .. }) = score.outcomes.as_ref().map(|o| &o.kind) {
            let auc = one_vs_rest_auc(truth, extra, self.classes.len());
            score
                .other_metrics
                .push(("one-vs-rest ROC-AUC".into(), auc));
        }
        if first {
            score.map = Some(gene_map(
                store,
                &data.genes,
                &layout.features,
                |c: &usize| *c,
                self.display_names(),
            ));
        }
    }
}

impl GeneFamilySpec {
    /// The genes with their classes, without requiring every class to have a gene (so
    /// that which genes a task scores can be asked of any label file).
    fn read_classes(&self, task: &TaskContext, mapper: &mut SymbolMapper) -> Result<FamilyGenes> {
        let path = task.data_path(&self.labels);
        let mut table = CsvTable::open(&path)?;
        let symbol_col = table.column(&self.symbol_column)?;
        let class_col = table.column(&self.class_column)?;
        let wanted: HashMap<&str, usize> = self
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
        let mentioned = classes_of.keys().cloned().collect();
        let multi = classes_of
            .values()
            .filter(|s| s.len() > 1)
            .flatten()
            .copied()
            .collect();
        // One class per gene: genes in several of the chosen classes are left out.
        let mut genes: Vec<(String, usize)> = classes_of
            .into_iter()
            .filter(|(_, s)| s.len() == 1)
            .filter_map(|(g, s)| s.into_iter().next().map(|c| (g, c)))
            .collect();
        genes.sort();
        Ok(FamilyGenes {
            genes,
            mentioned,
            multi,
        })
    }
}

/// ROC-AUC of each class against the rest, averaged over the classes where it is
/// defined.
fn one_vs_rest_auc(truth: &[usize], probabilities: &[Vec<f64>], classes: usize) -> f64 {
    let aucs: Vec<f64> = (0..classes)
        .filter_map(|c| {
            let t: Vec<bool> = truth.iter().map(|&y| y == c).collect();
            let s: Vec<f64> = probabilities.iter().map(|p| p[c]).collect();
            roc_auc(&t, &s).ok()
        })
        .collect();
    aucs.iter().sum::<f64>() / aucs.len().max(1) as f64
}
