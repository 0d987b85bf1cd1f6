//! The output of `bftembed embed --texts`: one row per input line, with its vector.

use super::matrix::Embeddings;
use crate::error::{Error, Result};
use crate::parquet_io::write_parquet;
use arrow::array::{ArrayRef, FixedSizeListArray, Float32Array, StringArray, UInt32Array};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
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
    let dim = vectors.dim() as i32;
    let item = Arc::new(Field::new("item", DataType::Float32, false));
    let schema = Arc::new(Schema::new(vec![
        Field::new("line", DataType::UInt32, false),
        Field::new("text", DataType::Utf8, false),
        Field::new("vector", DataType::FixedSizeList(item.clone(), dim), false),
    ]));
    let values = Float32Array::from(vectors.as_slice().to_vec());
    let list = FixedSizeListArray::try_new(item, dim, Arc::new(values), None)
        .map_err(|e| Error::bad_file(path, e.to_string()))?;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(UInt32Array::from_iter_values(
            lines.iter().map(|&l| l as u32),
        )),
        Arc::new(StringArray::from_iter_values(texts.iter())),
        Arc::new(list),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| Error::bad_file(path, e.to_string()))?;
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
