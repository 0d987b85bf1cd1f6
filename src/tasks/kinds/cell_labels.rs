//! Which cells of a cell-typing task's matrix are labelled, with which class and on
//! which side of a given split: from a metadata CSV or the `.h5ad`'s own `obs` table.

use super::cell_spec::CellTypeSpec;
use crate::error::{Error, Result};
use crate::io::csv_table::CsvTable;
use crate::io::{ExpressionMatrix, H5ad};
use crate::tasks::task::TaskContext;
use std::collections::HashMap;
use std::path::PathBuf;

/// A labelled cell ready for embedding.
pub(crate) struct LabelledCell {
    /// Its row in the matrix.
    pub(crate) row: usize,
    /// Its class index.
    pub(crate) label: usize,
    /// Its side of a given split (`None` without one).
    pub(crate) train: Option<bool>,
}

/// A cell's id, label and split value (`None` where the file has none).
type CellRecord = (String, Option<String>, Option<String>);

/// Cells of the matrix with a label (and split side), and the sorted class names.
pub(crate) fn read_labels(
    spec: &CellTypeSpec,
    task: &TaskContext,
    matrix: &ExpressionMatrix,
) -> Result<(Vec<LabelledCell>, Vec<String>)> {
    let row_of: HashMap<&str, usize> = matrix
        .cells
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i))
        .collect();
    let (path, records) = cell_records(spec, task)?;
    let mut raw = Vec::new();
    let mut in_matrix = 0;
    for (id, label, split) in records {
        let Some(&row) = row_of.get(id.as_str()) else {
            continue;
        };
        in_matrix += 1;
        let Some(label) = label else {
            continue;
        };
        let train = match (split.as_deref(), &spec.train_value, &spec.test_value) {
            (Some(v), Some(tr), _) if v == tr => Some(true),
            (Some(v), _, Some(te)) if v == te => Some(false),
            (Some(_), _, _) => continue,
            (None, _, _) if spec.split_column.is_some() => continue,
            (None, _, _) => None,
        };
        raw.push((row, label, train));
    }
    if raw.is_empty() {
        return Err(Error::bad_file(&path, no_labelled_cell(spec, in_matrix)));
    }
    let mut names: Vec<String> = raw.iter().map(|(_, l, _)| l.clone()).collect();
    names.sort();
    names.dedup();
    let index: HashMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let cells = raw
        .iter()
        .map(|(row, label, train)| LabelledCell {
            row: *row,
            label: index[label.as_str()],
            train: *train,
        })
        .collect();
    Ok((cells, names))
}

/// Why no cell could be used: no id matched the matrix, or the matching cells all
/// lack a label or a split value the task asks for.
fn no_labelled_cell(spec: &CellTypeSpec, in_matrix: usize) -> String {
    if in_matrix == 0 {
        return match &spec.cell_column {
            Some(c) => format!("no cell id in column '{c}' matches the matrix's cells"),
            None => "no cell of obs is in the matrix".into(),
        };
    }
    // validate() makes split_column, train_value and test_value go together.
    let split = match (&spec.split_column, &spec.train_value, &spec.test_value) {
        (Some(c), Some(train), Some(test)) => format!(" and a '{c}' of '{train}' or '{test}'"),
        _ => String::new(),
    };
    format!("{in_matrix} cells are in the matrix, but none has a label{split}")
}

/// Every cell's (id, label, split value), from the metadata CSV or the `.h5ad`'s
/// own `obs` table, with the file they came from.
fn cell_records(spec: &CellTypeSpec, task: &TaskContext) -> Result<(PathBuf, Vec<CellRecord>)> {
    let (Some(metadata), Some(cell_column)) = (&spec.metadata, &spec.cell_column) else {
        let path = task.data_path(&spec.matrix);
        let file = H5ad::open(&path)?;
        let ids = file.obs_names()?;
        let labels = file.obs_column(&spec.label_column)?;
        let splits = match &spec.split_column {
            Some(c) => file.obs_column(c)?,
            None => vec![None; ids.len()],
        };
        let records = ids
            .into_iter()
            .zip(labels)
            .zip(splits)
            .map(|((id, label), split)| (id, label, split))
            .collect();
        return Ok((path, records));
    };
    let path = task.data_path(metadata);
    let mut table = CsvTable::open(&path)?;
    let id_col = table.column(cell_column)?;
    let label_col = table.column(&spec.label_column)?;
    let split_col = match &spec.split_column {
        Some(c) => Some(table.column(c)?),
        None => None,
    };
    let mut records = Vec::new();
    for record in table.records() {
        let record = record?;
        let field = |c: usize| record.get(c).unwrap_or("").to_string();
        records.push((field(id_col), Some(field(label_col)), split_col.map(field)));
    }
    Ok((path, records))
}
