//! Cell typing on GenePT-style cell embeddings (see [`super::cell_vectors`]): a
//! multinomial logistic probe or a kNN vote on the cell vectors, over a given
//! train/test split or stratified folds; macro-F1 with a bootstrap over test cells.

use super::cell_labels::{self, LabelledCell};
use super::cell_spec::{CellClassifier, CellEmbedding, CellTypeSpec};
use super::cell_vectors::{self, CellInputs, SharedCellVectors};
use crate::error::{Error, Result};
use crate::io::{ExpressionMatrix, MatrixSource};
use crate::tasks::checks::{at_least, Check};
use crate::tasks::outcomes::{ItemOutcomes, OutcomeKind};
use crate::tasks::pca::ItemMap;
use crate::tasks::probe::Standardizer;
use crate::tasks::task::TaskContext;
use crate::tasks::task::{Fold, IntervalRule, Layout, OutcomeOrder, Predictions, RunState};
use crate::tasks::task::{Scoring, StoreView, Task, TaskGenes};
use crate::tasks::vectors::{GeneVectors, SymbolMapper};
use crate::tasks::{cv, TaskScore};
use linfa::prelude::*;
use linfa_logistic::MultiLogisticRegression;
use ndarray::{Array1, Array2};
use std::collections::BTreeSet;

/// The matrix, its genes, and the labelled cells.
pub(crate) struct LabelledCells {
    inputs: CellInputs,
    cells: Vec<LabelledCell>,
    class_names: Vec<String>,
}

/// One store's cell vectors and the cells they cover.
pub(crate) struct CellFeatures {
    embedded: SharedCellVectors,
    /// Indices of the embedded cells.
    covered: Vec<usize>,
    /// Their class indices.
    labels: Vec<usize>,
    /// Matrix genes the store has.
    known: usize,
}

impl Task for CellTypeSpec {
    const TABLE: &'static str = "cell_types";
    type Data = LabelledCells;
    type Features = CellFeatures;

    fn checks(&self) -> Vec<Check> {
        vec![
            at_least(Self::TABLE, "folds", self.folds, 2),
            at_least(Self::TABLE, "top_genes", self.top_genes, 1),
            at_least(Self::TABLE, "k", self.k, 1),
        ]
    }

    fn validate(&self) -> std::result::Result<(), String> {
        let split = [&self.split_column, &self.train_value, &self.test_value]
            .iter()
            .filter(|v| v.is_some())
            .count();
        let h5ad = self.matrix.to_string_lossy().ends_with(".h5ad");
        let mtx = self.matrix.to_string_lossy().contains(".mtx");
        let rules = [
            (
                split != 0 && split != 3,
                "split_column, train_value and test_value go together",
            ),
            (
                self.disjoint_genes && split == 0,
                "disjoint_genes needs a train/test split (split_column, train_value, test_value)",
            ),
            (
                (self.h5ad_matrix.is_some() || self.h5ad_gene_column.is_some()) && !h5ad,
                "h5ad_matrix and h5ad_gene_column are for an .h5ad matrix",
            ),
            (
                self.metadata.is_none() && !h5ad,
                "cell labels need a metadata CSV (only an .h5ad carries its own obs table)",
            ),
            (
                self.metadata.is_some() != self.cell_column.is_some(),
                "metadata and cell_column go together (the CSV and its cell id column)",
            ),
            (
                mtx && (self.genes.is_none() || self.cells.is_none()),
                "a .mtx matrix needs genes and cells files",
            ),
        ];
        match rules.iter().find(|(broken, _)| *broken) {
            Some((_, rule)) => Err(rule.to_string()),
            None => Ok(()),
        }
    }

    fn read(&self, task: &TaskContext, mapper: &mut SymbolMapper) -> Result<LabelledCells> {
        let inputs = CellInputs::new(self.read_matrix(task)?, mapper, self.seed);
        let (cells, class_names) = cell_labels::read_labels(self, task, &inputs.matrix)?;
        Ok(LabelledCells {
            inputs,
            cells,
            class_names,
        })
    }

    /// Cell tasks score cells, not genes.
    fn genes(&self, _task: &TaskContext, _mapper: &mut SymbolMapper) -> Result<TaskGenes> {
        Ok(TaskGenes::default())
    }

    fn expression_genes(
        &self,
        task: &TaskContext,
        mapper: &mut SymbolMapper,
    ) -> Result<BTreeSet<String>> {
        let matrix = self.read_matrix(task)?;
        Ok(
            crate::cells::approved_genes(&matrix.genes, matrix.gene_symbols.as_deref(), mapper)
                .into_iter()
                .flatten()
                .collect(),
        )
    }

    fn needs_text_encoder(&self) -> bool {
        self.embedding == CellEmbedding::Sentence
    }

    fn scoring(&self, data: &LabelledCells) -> Scoring {
        Scoring {
            metric: "macro-F1".into(),
            total: data.cells.len(),
            unit: "cells",
            interval: IntervalRule::Bootstrap {
                seed: self.seed ^ 0xce11,
                of: "test cells",
            },
            classes: Some(data.class_names.clone()),
            order: OutcomeOrder::Folds,
        }
    }

    fn layout(
        &self,
        task: &TaskContext,
        data: &LabelledCells,
        store: StoreView,
        state: &mut RunState,
    ) -> Result<Option<Layout<CellFeatures>>> {
        let Some(embedded) =
            cell_vectors::embedded_cells(self, task, &data.inputs, &data.cells, store, state)?
        else {
            return Ok(None);
        };
        let covered: Vec<usize> = (0..data.cells.len())
            .filter(|&i| embedded[i].is_some())
            .collect();
        let labels: Vec<usize> = covered.iter().map(|&i| data.cells[i].label).collect();
        let folds = match self.split_column {
            Some(_) => {
                let train: Vec<bool> = covered
                    .iter()
                    .map(|&i| data.cells[i].train.unwrap_or(false))
                    .collect();
                vec![cv::given(&train)]
            }
            None => cv::stratified(&labels, self.folds, self.seed)?,
        };
        Ok(Some(Layout {
            covered: covered.len(),
            own_covered: self.own_covered(data, store.vectors, covered.len()),
            features: CellFeatures {
                known: data.inputs.known_genes(store.vectors),
                embedded,
                covered,
                labels,
            },
            folds,
        }))
    }

    fn fit_fold(
        &self,
        task: &TaskContext,
        data: &LabelledCells,
        store: &GeneVectors,
        layout: &Layout<CellFeatures>,
        fold: &Fold,
    ) -> Result<Predictions> {
        let f = &layout.features;
        let rows = |idx: &[usize]| -> Array2<f64> {
            let d = store.dim();
            let mut x = Array2::zeros((idx.len(), d));
            for (r, &i) in idx.iter().enumerate() {
                if let Some(v) = &f.embedded[f.covered[i]] {
                    for j in 0..d {
                        x[(r, j)] = v[j] as f64;
                    }
                }
            }
            x
        };
        let train_y: Vec<usize> = fold.train.iter().map(|&i| f.labels[i]).collect();
        let predicted = self.classify(task, &rows(&fold.train), &train_y, &rows(&fold.test))?;
        Ok(Predictions::new(
            ItemOutcomes {
                ids: fold
                    .test
                    .iter()
                    .map(|&i| format!("row {}", data.cells[f.covered[i]].row))
                    .collect(),
                kind: OutcomeKind::Classes {
                    truth: fold.test.iter().map(|&i| f.labels[i]).collect(),
                    predicted,
                },
            },
            fold.test.clone(),
        ))
    }

    fn finish(
        &self,
        data: &LabelledCells,
        _store: &GeneVectors,
        layout: &Layout<CellFeatures>,
        _extra: &[Vec<f64>],
        score: &mut TaskScore,
        first: bool,
    ) {
        let f = &layout.features;
        score
            .other_metrics
            .push(("genes known".into(), f.known as f64));
        if first {
            let rows: Vec<&[f32]> = f
                .covered
                .iter()
                .filter_map(|&i| f.embedded[i].as_deref())
                .collect();
            score.map = Some(ItemMap::project(
                &rows,
                f.labels.clone(),
                data.class_names.clone(),
                "cells",
            ));
        }
    }
}

impl CellTypeSpec {
    /// Cells the store covers by itself: for GenePT-w those with an expressed gene the
    /// store has; a cell sentence names genes whether or not the store has them.
    fn own_covered(&self, data: &LabelledCells, vectors: &GeneVectors, covered: usize) -> usize {
        match self.embedding {
            CellEmbedding::Sentence => covered,
            CellEmbedding::Weighted => data
                .cells
                .iter()
                .filter(|c| data.inputs.expresses_gene_of(c.row, vectors))
                .count(),
        }
    }

    /// The task's expression matrix, log-normalised when it holds counts.
    fn read_matrix(&self, task: &TaskContext) -> Result<ExpressionMatrix> {
        let mut source = MatrixSource::new(&task.data_path(&self.matrix), self.values);
        source.genes = self.genes.as_deref().map(|p| task.data_path(p));
        source.cells = self.cells.as_deref().map(|p| task.data_path(p));
        source.h5ad_matrix = self.h5ad_matrix.clone();
        source.h5ad_gene_column = self.h5ad_gene_column.clone();
        source.read()
    }

    /// Predicted classes of the test rows.
    fn classify(
        &self,
        task: &TaskContext,
        train_x: &Array2<f64>,
        train_y: &[usize],
        test_x: &Array2<f64>,
    ) -> Result<Vec<usize>> {
        match self.classifier {
            CellClassifier::Logistic => {
                let scaler = Standardizer::fit(train_x);
                let data = Dataset::new(scaler.transform(train_x), Array1::from(train_y.to_vec()));
                let model = MultiLogisticRegression::default()
                    .alpha(task.probe.alpha)
                    .max_iterations(task.probe.max_iterations)
                    .fit(&data)
                    .map_err(|e| {
                        Error::InvalidArgument(format!("logistic regression failed: {e}"))
                    })?;
                Ok(model.predict(&scaler.transform(test_x)).to_vec())
            }
            CellClassifier::Knn => Ok(knn_vote(train_x, train_y, test_x, self.k)),
        }
    }
}

/// The class of each test row by a similarity-weighted vote of its `k` most similar
/// training rows (rows are unit vectors, so the dot product is the cosine).
fn knn_vote(
    train_x: &Array2<f64>,
    train_y: &[usize],
    test_x: &Array2<f64>,
    k: usize,
) -> Vec<usize> {
    let classes = train_y.iter().max().map(|m| m + 1).unwrap_or(0);
    test_x
        .rows()
        .into_iter()
        .map(|q| {
            let mut sims: Vec<(f64, usize)> = train_x
                .rows()
                .into_iter()
                .zip(train_y)
                .map(|(r, &y)| (r.dot(&q), y))
                .collect();
            let k = k.min(sims.len());
            sims.select_nth_unstable_by(k.saturating_sub(1), |a, b| b.0.total_cmp(&a.0));
            let mut votes = vec![0f64; classes];
            for (s, y) in &sims[..k] {
                votes[*y] += s.max(0.0) + 1e-9;
            }
            super::argmax(&votes)
        })
        .collect()
}
