//! One number per gene (an essentiality or knockdown-impact score, an expression level)
//! predicted from the gene's vector: ridge regression on the standardised vectors,
//! k-fold cross-validation over genes, scored by the Pearson r of predicted and true
//! values on the held-out genes (Spearman's rho beside it).

use super::regression::{self, GeneRegression};
use crate::error::{Error, Result};
use crate::io::csv_table::CsvTable;
use crate::tasks::checks::{at_least, finite, Check};
use crate::tasks::defaults::{default_alpha, default_folds, default_seed};
use crate::tasks::metrics::pearson;
use crate::tasks::outcomes::OutcomeKind;
use crate::tasks::task::TaskContext;
use crate::tasks::task::{Fold, IntervalRule, Layout, OutcomeOrder, Predictions, RunState};
use crate::tasks::task::{Scoring, StoreView, Task, TaskGenes};
use crate::tasks::vectors::{GeneVectors, SymbolMapper};
use crate::tasks::TaskScore;
use ndarray::Array2;
use std::path::PathBuf;

/// How the values are transformed before fitting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueTransform {
    /// As written (`"none"`).
    #[default]
    #[serde(rename = "none")]
    AsWritten,
    /// ln(1 + x), for counts (values must be above -1).
    Log1p,
}

/// A per-gene regression task: a CSV/TSV table with a symbol column and a number column.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneValueSpec {
    /// The table (CSV, or TSV by its name; gzip allowed).
    pub table: PathBuf,
    /// Column holding gene symbols.
    pub symbol_column: String,
    /// Column holding the number.
    pub value_column: String,
    /// Transform of the values.
    #[serde(default)]
    pub transform: ValueTransform,
    /// Folds over genes.
    #[serde(default = "default_folds")]
    pub folds: usize,
    /// Ridge penalty on the standardised gene vectors.
    #[serde(default = "default_alpha")]
    pub ridge: f64,
    /// Seed for the folds and the bootstrap.
    #[serde(default = "default_seed")]
    pub seed: u64,
}

/// The genes with their (transformed) values, first row of a gene wins.
pub(crate) struct GeneValues {
    genes: Vec<(String, f64)>,
    /// Rows in the table.
    total: usize,
}

impl Task for GeneValueSpec {
    const TABLE: &'static str = "gene_values";
    type Data = GeneValues;
    type Features = GeneRegression;

    fn checks(&self) -> Vec<Check> {
        vec![
            at_least(Self::TABLE, "folds", self.folds, 2),
            finite(
                Self::TABLE,
                "ridge",
                self.ridge,
                self.ridge > 0.0,
                "must be above 0",
            ),
        ]
    }

    fn read(&self, task: &TaskContext, mapper: &mut SymbolMapper) -> Result<GeneValues> {
        let path = task.data_path(&self.table);
        let mut table = CsvTable::open(&path)?;
        let symbol_col = table.column(&self.symbol_column)?;
        let value_col = table.column(&self.value_column)?;
        let mut data = GeneValues {
            genes: Vec::new(),
            total: 0,
        };
        let mut seen = std::collections::HashSet::new();
        for record in table.records() {
            let record = record?;
            let line = record.position().map_or(0, |p| p.line() as usize);
            let raw = record.get(value_col).unwrap_or("").trim();
            let value = self.value(raw).ok_or_else(|| Error::Parse {
                path: path.clone(),
                line,
                message: format!(
                    "'{raw}' in column '{}' is not a finite number{}",
                    self.value_column,
                    match self.transform {
                        ValueTransform::Log1p => " above -1 (transform = \"log1p\")",
                        ValueTransform::AsWritten => "",
                    }
                ),
            })?;
            data.total += 1;
            if let Some(symbol) = mapper.approved(record.get(symbol_col).unwrap_or("").trim()) {
                if seen.insert(symbol.clone()) {
                    data.genes.push((symbol, value));
                }
            }
        }
        if data.total == 0 {
            return Err(Error::bad_file(&path, "the table has no rows"));
        }
        Ok(data)
    }

    fn genes(&self, task: &TaskContext, mapper: &mut SymbolMapper) -> Result<TaskGenes> {
        Ok(TaskGenes {
            items: self
                .read(task, mapper)?
                .genes
                .into_iter()
                .map(|g| g.0)
                .collect(),
            ..TaskGenes::default()
        })
    }

    fn scoring(&self, data: &GeneValues) -> Scoring {
        Scoring {
            metric: "Pearson r".into(),
            total: data.total,
            unit: "genes",
            interval: IntervalRule::Bootstrap {
                seed: self.seed ^ 0x7a1,
                of: "genes",
            },
            classes: None,
            order: OutcomeOrder::Items,
        }
    }

    fn layout(
        &self,
        _task: &TaskContext,
        data: &GeneValues,
        store: StoreView,
        _state: &mut RunState,
    ) -> Result<Option<Layout<GeneRegression>>> {
        let symbols: Vec<&str> = data.genes.iter().map(|g| g.0.as_str()).collect();
        let values = Array2::from_shape_fn((data.genes.len(), 1), |(r, _)| data.genes[r].1);
        regression::layout(&symbols, &values, store, self.folds, self.seed).map(Some)
    }

    fn fit_fold(
        &self,
        _task: &TaskContext,
        data: &GeneValues,
        _store: &GeneVectors,
        layout: &Layout<GeneRegression>,
        fold: &Fold,
    ) -> Result<Predictions> {
        regression::fit_fold(&layout.features, |i| &data.genes[i].0, fold, self.ridge)
    }

    fn finish(
        &self,
        _data: &GeneValues,
        _store: &GeneVectors,
        _layout: &Layout<GeneRegression>,
        _extra: &[Vec<f64>],
        score: &mut TaskScore,
        _first: bool,
    ) {
        if let Some(OutcomeKind::Columns { truth, predicted }) =
            score.outcomes.as_ref().map(|o| &o.kind)
        {
            let t: Vec<f64> = truth.iter().map(|r| r[0]).collect();
            let p: Vec<f64> = predicted.iter().map(|r| r[0]).collect();
            score
                .other_metrics
                .push(("Spearman rho".into(), pearson(&ranks(&p), &ranks(&t))));
        }
    }
}

impl GeneValueSpec {
    /// The transformed value, `None` when it is not a finite number (or not above -1
    /// for log1p).
    fn value(&self, raw: &str) -> Option<f64> {
        let v: f64 = raw.parse().ok().filter(|v: &f64| v.is_finite())?;
        match self.transform {
            ValueTransform::AsWritten => Some(v),
            ValueTransform::Log1p => (v > -1.0).then(|| v.ln_1p()),
        }
    }
}

/// Ranks (1-based, ties given their mean rank), for Spearman's rho.
fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut out = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        let mean_rank = (start + end + 1) as f64 / 2.0;
        for &i in &order[start..end] {
            out[i] = mean_rank;
        }
        start = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::ranks;

    #[test]
    fn ties_share_their_mean_rank() {
        assert_eq!(ranks(&[3.0, 1.0, 3.0, 2.0]), [3.5, 1.0, 3.5, 2.0]);
    }
}
