//! The output of `bftembed embed --texts`: one row per input line, with its vector.

use super::matrix::Embeddings;
use crate::error::Result;
use crate::io::parquet::{record_batch, vector_column, vector_field, write_parquet};
use arrow::array::{ArrayRef, StringArray, UInt32Array};
use arrow::datatypes::{DataType, Field, Schema};
use std::path::Path;
use std::sync::Arc;

/// Writes `line`, `text`, `vector` rows to a Parquet file atomically, recording the model.
pub fn write_text_vectors(
    path: &Path,
    lines: &[usize],
    texts: &[&str],
    vectors: &Embeddings,
    model_id: &str,
    model_sha256: &str,
) -> Result<()> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("line", DataType::UInt32, false),
        Field::new("text", DataType::Utf8, false),
        vector_field("vector", vectors.dim()),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(UInt32Array::from_iter_values(
            lines.iter().map(|&l| l as u32),
        )),
        Arc::new(StringArray::from_iter_values(texts.iter())),
        vector_column(vectors.dim(), vectors.as_slice(), path)?,
    ];
    let batch = record_batch(schema.clone(), columns, path)?;
    write_parquet(
        path,
        schema,
        &[batch],
        &[
            ("bftembed.model_id", model_id.to_string()),
            ("bftembed.model_sha256", model_sha256.to_string()),
        ],
    )
}
