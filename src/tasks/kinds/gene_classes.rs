//! Two-class gene labels from a CSV file (dosage-sensitive transcription factors, say):
//! a logistic probe on the gene vector, stratified k-fold cross-validation, ROC-AUC with
//! the range over folds.

use super::{gene_map, gene_rows, labelled_gene_layout};
use crate::error::Result;
use crate::io::csv_table::CsvTable;
use crate::tasks::checks::{at_least, Check};
use crate::tasks::defaults::{default_folds, default_seed};
use crate::tasks::outcomes::{ItemOutcomes, OutcomeKind};
use crate::tasks::probe::logistic_scores;
use crate::tasks::task::TaskContext;
use crate::tasks::task::{Fold, IntervalRule, Layout, OutcomeOrder, Predictions, RunState};
use crate::tasks::task::{Scoring, StoreView, Task, TaskGenes};
use crate::tasks::vectors::{GeneVectors, SymbolMapper};
use crate::tasks::TaskScore;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// A two-class gene task from a CSV file, scored by stratified k-fold cross-validation.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneClassSpec {
    /// The CSV file (optionally gzipped).
    pub labels: PathBuf,
    /// Column holding gene symbols.
    pub symbol_column: String,
    /// Column deciding the class.
    pub label_column: String,
    /// Value of `label_column` that marks the positive class; any other is negative.
    pub positive_value: String,
    /// Name of the positive class, for reports.
    pub positive_name: String,
    /// Name of the negative class.
    pub negative_name: String,
    /// Number of folds.
    #[serde(default = "default_folds")]
    pub folds: usize,
    /// Seed for the folds.
    #[serde(default = "default_seed")]
    pub seed: u64,
}

/// The labelled genes.
pub(crate) struct LabelledGenes {
    /// Approved symbol and class, first row of a gene wins.
    genes: Vec<(String, bool)>,
    /// Every class each gene has in the file.
    classes_of: BTreeMap<String, BTreeSet<bool>>,
    /// Rows in the file.
    total: usize,
}

impl Task for GeneClassSpec {
    const TABLE: &'static str = "gene_classes";
    type Data = LabelledGenes;
    /// Indices of the covered genes.
    type Features = Vec<usize>;

    fn checks(&self) -> Vec<Check> {
        vec![at_least(Self::TABLE, "folds", self.folds, 2)]
    }

    fn read(&self, task: &TaskContext, mapper: &mut SymbolMapper) -> Result<LabelledGenes> {
        let path = task.data_path(&self.labels);
        let mut table = CsvTable::open(&path)?;
        let symbol_col = table.column(&self.symbol_column)?;
        let label_col = table.column(&self.label_column)?;
        let mut data = LabelledGenes {
            genes: Vec::new(),
            classes_of: BTreeMap::new(),
            total: 0,
        };
        for record in table.records() {
            let record = record?;
            let symbol = record.get(symbol_col).unwrap_or("").trim();
            let label = record.get(label_col).unwrap_or("").trim() == self.positive_value;
            data.total += 1;
            if let Some(approved) = mapper.approved(symbol) {
                let classes = data.classes_of.entry(approved.clone()).or_default();
                if classes.is_empty() {
                    data.genes.push((approved, label));
                }
                classes.insert(label);
            }
        }
        Ok(data)
    }

    fn genes(&self, task: &TaskContext, mapper: &mut SymbolMapper) -> Result<TaskGenes> {
        let data = self.read(task, mapper)?;
        let name = |positive: bool| {
            if positive {
                self.positive_name.clone()
            } else {
                self.negative_name.clone()
            }
        };
        Ok(TaskGenes {
            items: data.classes_of.keys().cloned().collect(),
            classes: Some(
                data.classes_of
                    .iter()
                    .filter(|(_, c)| c.len() == 1)
                    .filter_map(|(g, c)| c.iter().next().map(|&l| (g.clone(), name(l))))
                    .collect(),
            ),
            pairs: None,
        })
    }

    fn scoring(&self, data: &LabelledGenes) -> Scoring {
        Scoring {
            metric: "ROC-AUC".into(),
            total: data.total,
            unit: "genes",
            interval: IntervalRule::FoldRange,
            classes: None,
            order: OutcomeOrder::Folds,
        }
    }

    fn layout(
        &self,
        _task: &TaskContext,
        data: &LabelledGenes,
        store: StoreView,
        _state: &mut RunState,
    ) -> Result<Option<Layout<Vec<usize>>>> {
        labelled_gene_layout(&data.genes, store, self.folds, self.seed).map(Some)
    }

    fn fit_fold(
        &self,
        task: &TaskContext,
        data: &LabelledGenes,
        store: &GeneVectors,
        layout: &Layout<Vec<usize>>,
        fold: &Fold,
    ) -> Result<Predictions> {
        let gene = |i: usize| &data.genes[layout.features[i]];
        let symbols =
            |idx: &[usize]| -> Vec<&str> { idx.iter().map(|&i| gene(i).0.as_str()).collect() };
        let labels = |idx: &[usize]| -> Vec<bool> { idx.iter().map(|&i| gene(i).1).collect() };
        let scores = logistic_scores(
            task.probe,
            &gene_rows(store, &symbols(&fold.train)),
            &labels(&fold.train),
            &gene_rows(store, &symbols(&fold.test)),
        )?;
        Ok(Predictions::new(
            ItemOutcomes {
                ids: fold.test.iter().map(|&i| gene(i).0.clone()).collect(),
                kind: OutcomeKind::Binary {
                    truth: labels(&fold.test),
                    scores,
                },
            },
            fold.test.clone(),
        ))
    }

    fn finish(
        &self,
        data: &LabelledGenes,
        store: &GeneVectors,
        layout: &Layout<Vec<usize>>,
        _extra: &[Vec<f64>],
        score: &mut TaskScore,
        first: bool,
    ) {
        if first {
            score.map = Some(gene_map(
                store,
                &data.genes,
                &layout.features,
                |l: &bool| *l as usize,
                vec![self.negative_name.clone(), self.positive_name.clone()],
            ));
        }
    }
}
