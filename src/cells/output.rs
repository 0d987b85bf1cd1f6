//! Cell vectors as a Parquet table: one row per cell with its id, the `obs` columns the
//! user asked for, and one vector column per method (null for a cell without a vector).

use super::CellVectors;
use crate::error::Result;
use crate::io::parquet::{
    optional_vector_column, optional_vector_field, record_batch, write_parquet,
};
use arrow::array::{ArrayRef, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
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
/// atomically, with `provenance` (JSON) under [`CELLS_METADATA_KEY`].
pub fn write_cells_parquet(
    path: &Path,
    columns: &CellColumns,
    vectors: &[CellVectors],
    provenance: &serde_json::Value,
) -> Result<()> {
    let mut fields = vec![Field::new("cell", DataType::Utf8, false)];
    let mut arrays: Vec<ArrayRef> = vec![Arc::new(StringArray::from_iter_values(
        columns.cells.iter(),
    ))];
    for (name, values) in columns.obs {
        fields.push(Field::new(name, DataType::Utf8, true));
        arrays.push(Arc::new(StringArray::from(values.clone())));
    }
    for v in vectors {
        fields.push(optional_vector_field(v.method.name(), v.dim));
        if let Some(bad) = v.rows.iter().flatten().find(|r| r.len() != v.dim) {
            return Err(crate::error::Error::bad_file(
                path,
                format!(
                    "a vector of {} values in a {}-wide column",
                    bad.len(),
                    v.dim
                ),
            ));
        }
        let valid = v.rows.iter().map(Option::is_some).collect();
        arrays.push(optional_vector_column(v.dim, v.dense(), valid, path)?);
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = record_batch(schema.clone(), arrays, path)?;
    write_parquet(
        path,
        schema,
        &[batch],
        &[(CELLS_METADATA_KEY, provenance.to_string())],
    )
}
