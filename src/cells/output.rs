//! Cell vectors as a Parquet table: one row per cell with its id, the `obs` columns the
//! user asked for, and one vector column per method (null for a cell without a vector),
//! written one window of cells (one row group) at a time.

use super::{CellVectors, WindowedCells};
use crate::error::{Error, Result};
use crate::io::parquet::{
    optional_vector_column, optional_vector_field, record_batch, write_parquet_batches,
};
use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use std::path::Path;
use std::sync::Arc;

/// The file-level metadata key under which the table records how it was made (JSON).
pub const CELLS_METADATA_KEY: &str = "bftembed.cells";

/// What goes into a cells table besides the vectors.
pub struct CellColumns<'a> {
    /// Cell ids, in matrix row order.
    pub cells: &'a [String],
    /// Named `obs` columns, one value per cell.
    pub obs: &'a [(String, Vec<Option<String>>)],
}

/// Writes `cell`, the obs columns and one vector column per method to `path`
/// atomically, a window of cells at a time, with `provenance` (JSON) under
/// [`CELLS_METADATA_KEY`].
pub fn write_cells_parquet(
    path: &Path,
    columns: &CellColumns,
    vectors: &WindowedCells,
    provenance: &serde_json::Value,
) -> Result<()> {
    if vectors.cell_count() != columns.cells.len() {
        return Err(Error::InvalidArgument(format!(
            "{} cell ids for {} cells with vectors",
            columns.cells.len(),
            vectors.cell_count()
        )));
    }
    if let Some((name, values)) = columns
        .obs
        .iter()
        .find(|(_, v)| v.len() != columns.cells.len())
    {
        return Err(Error::InvalidArgument(format!(
            "obs column {name} has {} values for {} cells",
            values.len(),
            columns.cells.len()
        )));
    }
    let mut fields = vec![Field::new("cell", DataType::Utf8, false)];
    for (name, _) in columns.obs {
        fields.push(Field::new(name, DataType::Utf8, true));
    }
    for &(method, dim) in vectors.methods() {
        fields.push(optional_vector_field(method.name(), dim));
    }
    let schema = Arc::new(Schema::new(fields));
    let mut first = 0;
    let batches = (0..vectors.window_count()).map(|w| {
        let made = vectors.window(w)?;
        let cells = made.first().map_or(0, |v| v.rows.len());
        let batch = window_batch(path, schema.clone(), columns, first..first + cells, &made);
        first += cells;
        batch
    });
    let provenance = [(CELLS_METADATA_KEY, provenance.to_string())];
    write_parquet_batches(path, schema.clone(), batches, &provenance)
}

/// The rows `cells` of the table: ids, obs values and each method's vectors.
fn window_batch(
    path: &Path,
    schema: SchemaRef,
    columns: &CellColumns,
    cells: std::ops::Range<usize>,
    made: &[CellVectors],
) -> Result<RecordBatch> {
    let mut arrays: Vec<ArrayRef> = vec![Arc::new(StringArray::from_iter_values(
        columns.cells[cells.clone()].iter(),
    ))];
    for (_, values) in columns.obs {
        arrays.push(Arc::new(StringArray::from(values[cells.clone()].to_vec())));
    }
    for v in made {
        let valid = v.rows.iter().map(Option::is_some).collect();
        arrays.push(optional_vector_column(v.dim, v.dense(), valid, path)?);
    }
    record_batch(schema, arrays, path)
}
