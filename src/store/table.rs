//! The store's vector table (`vectors.parquet`).

use crate::embed::Embeddings;
use crate::error::{Error, Result};
use crate::parquet_io::{f32_vectors, optional_u32s, read_parquet, strings, write_parquet};
use crate::profile::ProfileRecord;
use arrow::array::{ArrayRef, FixedSizeListArray, Float32Array, StringArray, UInt32Array};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use std::path::Path;
use std::sync::Arc;

/// The rows of a store, column by column.
#[derive(Debug, Clone)]
pub struct StoreRows {
    /// Gene symbols.
    pub symbols: Vec<String>,
    /// Entrez ids.
    pub entrez_ids: Vec<Option<u32>>,
    /// Profile sources.
    pub sources: Vec<String>,
    /// Profile texts.
    pub texts: Vec<String>,
    /// The vectors, one row per gene.
    pub vectors: Embeddings,
}

/// Writes the vector table.
pub fn write_table(
    path: &Path,
    records: &[ProfileRecord],
    vectors: &Embeddings,
    model_id: &str,
) -> Result<()> {
    let dim = vectors.dim();
    let item = Arc::new(Field::new("item", DataType::Float32, false));
    let schema = Arc::new(Schema::new(vec![
        Field::new("symbol", DataType::Utf8, false),
        Field::new("entrez_id", DataType::UInt32, true),
        Field::new("source", DataType::Utf8, false),
        Field::new("model_id", DataType::Utf8, false),
        Field::new("text", DataType::Utf8, false),
        Field::new(
            "vector",
            DataType::FixedSizeList(item.clone(), dim as i32),
            false,
        ),
    ]));
    let values = Float32Array::from(vectors.as_slice().to_vec());
    let list = FixedSizeListArray::try_new(item, dim as i32, Arc::new(values), None)
        .map_err(|e| Error::bad_file(path, e.to_string()))?;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            records.iter().map(|r| &r.symbol),
        )),
        Arc::new(UInt32Array::from(
            records.iter().map(|r| r.entrez_id).collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from_iter_values(
            records.iter().map(|r| &r.source),
        )),
        Arc::new(StringArray::from_iter_values(
            records.iter().map(|_| model_id),
        )),
        Arc::new(StringArray::from_iter_values(
            records.iter().map(|r| &r.text),
        )),
        Arc::new(list),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| Error::bad_file(path, e.to_string()))?;
    write_parquet(path, schema, &[batch], &[])
}

/// Reads the vector table.
pub fn read_table(path: &Path) -> Result<StoreRows> {
    let contents = read_parquet(path)?;
    let mut rows = StoreRows {
        symbols: Vec::new(),
        entrez_ids: Vec::new(),
        sources: Vec::new(),
        texts: Vec::new(),
        vectors: Embeddings::empty(1),
    };
    let mut values = Vec::new();
    let mut dim = None;
    for batch in &contents.batches {
        rows.symbols.extend(strings(batch, "symbol", path)?);
        rows.entrez_ids
            .extend(optional_u32s(batch, "entrez_id", path)?);
        rows.sources.extend(strings(batch, "source", path)?);
        rows.texts.extend(strings(batch, "text", path)?);
        let (d, v) = f32_vectors(batch, "vector", path)?;
        if dim.is_some_and(|old| old != d) {
            return Err(Error::bad_file(path, "vectors of different dimensions"));
        }
        dim = Some(d);
        values.extend(v);
    }
    let dim = dim.ok_or_else(|| Error::bad_file(path, "the table has no rows"))?;
    rows.vectors = Embeddings::new(dim, values);
    Ok(rows)
}
