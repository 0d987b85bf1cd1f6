//! Stimulus response from gene vectors: for every gene, its pseudo-bulk expression
//! change (treated minus control) in each cell type is predicted by ridge regression
//! on the gene's vector, trained on the other folds of genes. Scored by the Pearson
//! correlation of predicted and measured change over held-out genes, averaged over
//! cell types.

use super::regression::{self, GeneRegression};
use crate::error::{Error, Result};
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
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

/// A stimulus-response task on pseudo-bulk expression: genes × columns named
/// `<cell type>|<condition>`; the response of a gene in a cell type is treated minus
/// control. Ridge regression from the gene vector, cross-validated over genes.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpressionResponseSpec {
    /// The pseudo-bulk table (TSV, first column the gene).
    pub table: PathBuf,
    /// Cells behind each column (TSV: `<cell type>|<condition>`, count), to drop
    /// cell types with too few cells.
    pub sizes: Option<PathBuf>,
    /// The control condition's name.
    pub control: String,
    /// The treated condition's name.
    pub treated: String,
    /// Cell types need at least this many cells in both conditions.
    #[serde(default)]
    pub min_cells: usize,
    /// Genes need at least this mean expression in some column.
    #[serde(default)]
    pub min_expression: f64,
    /// Folds over genes.
    #[serde(default = "default_folds")]
    pub folds: usize,
    /// Ridge penalty on the standardised gene vectors.
    #[serde(default = "default_alpha")]
    pub ridge: f64,
    /// Seed for folds and the bootstrap.
    #[serde(default = "default_seed")]
    pub seed: u64,
}

/// Genes with their response per cell type.
pub(crate) struct ResponseTable {
    genes: Vec<String>,
    cell_types: Vec<String>,
    /// genes × cell types.
    response: Array2<f64>,
    total_genes: usize,
}

impl Task for ExpressionResponseSpec {
    const TABLE: &'static str = "expression_response";
    type Data = ResponseTable;
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
            finite(
                Self::TABLE,
                "min_expression",
                self.min_expression,
                self.min_expression >= 0.0,
                "must be 0 or more",
            ),
        ]
    }

    fn read(&self, task: &TaskContext, mapper: &mut SymbolMapper) -> Result<ResponseTable> {
        read_response(task, self, mapper)
    }

    /// The genes are features of a transcriptome-wide regression, not labelled items.
    fn genes(&self, _task: &TaskContext, _mapper: &mut SymbolMapper) -> Result<TaskGenes> {
        Ok(TaskGenes::default())
    }

    fn expression_genes(
        &self,
        task: &TaskContext,
        mapper: &mut SymbolMapper,
    ) -> Result<BTreeSet<String>> {
        Ok(self.read(task, mapper)?.genes.into_iter().collect())
    }

    fn scoring(&self, data: &ResponseTable) -> Scoring {
        Scoring {
            metric: "mean Pearson r".into(),
            total: data.total_genes,
            unit: "genes",
            interval: IntervalRule::Bootstrap {
                seed: self.seed ^ 0x7e5,
                of: "genes",
            },
            classes: None,
            order: OutcomeOrder::Items,
        }
    }

    fn layout(
        &self,
        _task: &TaskContext,
        data: &ResponseTable,
        store: StoreView,
        _state: &mut RunState,
    ) -> Result<Option<Layout<GeneRegression>>> {
        let symbols: Vec<&str> = data.genes.iter().map(String::as_str).collect();
        regression::layout(&symbols, &data.response, store, self.folds, self.seed).map(Some)
    }

    fn fit_fold(
        &self,
        _task: &TaskContext,
        data: &ResponseTable,
        _store: &GeneVectors,
        layout: &Layout<GeneRegression>,
        fold: &Fold,
    ) -> Result<Predictions> {
        regression::fit_fold(&layout.features, |i| &data.genes[i], fold, self.ridge)
    }

    fn finish(
        &self,
        data: &ResponseTable,
        _store: &GeneVectors,
        _layout: &Layout<GeneRegression>,
        _extra: &[Vec<f64>],
        score: &mut TaskScore,
        _first: bool,
    ) {
        let mut other = vec![("cell types".to_string(), data.cell_types.len() as f64)];
        if let Some(OutcomeKind::Columns { truth, predicted }) =
            score.outcomes.as_ref().map(|o| &o.kind)
        {
            for (t, name) in data.cell_types.iter().enumerate() {
                let a: Vec<f64> = predicted.iter().map(|row| row[t]).collect();
                let b: Vec<f64> = truth.iter().map(|row| row[t]).collect();
                other.push((format!("r {name}"), pearson(&a, &b)));
            }
        }
        score.other_metrics.extend(other);
    }
}

/// A cell type's name with its control and treated column indices.
type PairedColumn = (String, usize, usize);

/// The cell types with both a control and a treated column (each with at least
/// `min_cells` cells when sizes are given).
fn paired_columns(
    path: &std::path::Path,
    header: &[&str],
    sizes: &HashMap<String, usize>,
    r: &ExpressionResponseSpec,
) -> Result<Vec<PairedColumn>> {
    let mut types = Vec::new();
    for (i, name) in header.iter().enumerate().skip(1) {
        let Some((cell_type, condition)) = name.rsplit_once('|') else {
            return Err(Error::bad_file(
                path,
                format!("column '{name}' is not '<cell type>|<condition>'"),
            ));
        };
        if condition != r.control {
            continue;
        }
        let treated = format!("{cell_type}|{}", r.treated);
        let Some(j) = header.iter().position(|h| *h == treated) else {
            continue;
        };
        let enough =
            |col: &str| sizes.is_empty() || sizes.get(col).copied().unwrap_or(0) >= r.min_cells;
        if enough(name) && enough(&treated) {
            types.push((cell_type.to_string(), i, j));
        }
    }
    if types.is_empty() {
        return Err(Error::bad_file(
            path,
            format!(
                "no cell type has both '{}' and '{}' columns with {} cells",
                r.control, r.treated, r.min_cells
            ),
        ));
    }
    Ok(types)
}

/// Cells per `<cell type>|<condition>` column: a header line, then name, tab, count.
fn read_sizes(path: &std::path::Path) -> Result<HashMap<String, usize>> {
    let mut sizes = HashMap::new();
    for (i, line) in crate::fsutil::read_utf8_lines(path)?
        .iter()
        .enumerate()
        .skip(1)
    {
        if line.trim().is_empty() {
            continue;
        }
        let parsed = line
            .split_once('\t')
            .and_then(|(k, v)| Some((k.to_string(), v.trim().parse::<usize>().ok()?)));
        let Some((name, count)) = parsed else {
            return Err(Error::Parse {
                path: path.to_path_buf(),
                line: i + 1,
                message: format!("expected '<cell type>|<condition><TAB>cells', found '{line}'"),
            });
        };
        sizes.insert(name, count);
    }
    if sizes.is_empty() {
        // An empty table would keep every cell type, whatever min_cells says.
        return Err(Error::bad_file(path, "no group sizes in the file"));
    }
    Ok(sizes)
}

/// The table's genes (those above `min_expression`) with their response in every cell
/// type that has both conditions (with enough cells).
fn read_response(
    task: &TaskContext,
    r: &ExpressionResponseSpec,
    mapper: &mut SymbolMapper,
) -> Result<ResponseTable> {
    let path = task.data_path(&r.table);
    let lines = crate::fsutil::read_utf8_lines(&path)?;
    let header: Vec<&str> = lines
        .first()
        .ok_or_else(|| Error::bad_file(&path, "the table is empty"))?
        .split('\t')
        .collect();
    let sizes: HashMap<String, usize> = match &r.sizes {
        Some(s) => read_sizes(&task.data_path(s))?,
        None => HashMap::new(),
    };
    let types = paired_columns(&path, &header, &sizes, r)?;
    let mut genes = Vec::new();
    let mut rows = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    for (n, line) in lines.iter().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() != header.len() {
            return Err(Error::Parse {
                path: path.clone(),
                line: n + 1,
                message: format!("{} fields, the header has {}", fields.len(), header.len()),
            });
        }
        let value = |i: usize| -> Result<f64> {
            let v: f64 = fields[i].trim().parse().unwrap_or(f64::NAN);
            if !v.is_finite() {
                return Err(Error::Parse {
                    path: path.clone(),
                    line: n + 1,
                    message: format!("'{}' is not a finite number", fields[i]),
                });
            }
            Ok(v)
        };
        let mut max_expr = 0f64;
        let mut response = Vec::with_capacity(types.len());
        for (_, c, t) in &types {
            let (c, t) = (value(*c)?, value(*t)?);
            max_expr = max_expr.max(c).max(t);
            response.push(t - c);
        }
        if max_expr < r.min_expression {
            continue;
        }
        total += 1;
        if let Some(symbol) = mapper.approved(fields[0].trim()) {
            if seen.insert(symbol.clone()) {
                genes.push(symbol);
                rows.extend(response);
            }
        }
    }
    let response = Array2::from_shape_vec((genes.len(), types.len()), rows)
        .map_err(|e| Error::bad_file(&path, e.to_string()))?;
    Ok(ResponseTable {
        genes,
        cell_types: types.into_iter().map(|t| t.0).collect(),
        response,
        total_genes: total,
    })
}
