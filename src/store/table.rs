//! The store's vector table (`vectors.parquet`).

use crate::embed::Embeddings;
use crate::error::{Error, Result};
use crate::io::parquet::{
    f32_vectors, optional_u32s, read_parquet, record_batch, strings, vector_column, vector_field,
    write_parquet, ParquetContents,
};
use crate::profile::{profile_columns, ProfileRecord};
use arrow::array::StringArray;
use arrow::datatypes::{DataType, Field, Schema};
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
    let (mut fields, mut columns) = profile_columns(records);
    fields.push(Field::new("model_id", DataType::Utf8, false));
    columns.push(Arc::new(StringArray::from_iter_values(
        records.iter().map(|_| model_id),
    )));
    fields.push(vector_field("vector", vectors.dim()));
    columns.push(vector_column(vectors.dim(), vectors.as_slice(), path)?);
    let schema = Arc::new(Schema::new(fields));
    let batch = record_batch(schema.clone(), columns, path)?;
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
    for batch in &contents.batches {
        rows.symbols.extend(strings(batch, "symbol", path)?);
        rows.entrez_ids
            .extend(optional_u32s(batch, "entrez_id", path)?);
        rows.sources.extend(strings(batch, "source", path)?);
        rows.texts.extend(strings(batch, "text", path)?);
    }
    rows.vectors = vectors_of(&contents, path)?;
    Ok(rows)
}

/// Only the `vector` column of a store's table (gene or cell store alike).
pub fn read_vector_column(path: &Path) -> Result<Embeddings> {
    vectors_of(&read_parquet(path)?, path)
}

/// The `vector` column of every batch, as one matrix.
pub(crate) fn vectors_of(contents: &ParquetContents, path: &Path) -> Result<Embeddings> {
    let mut values = Vec::new();
    let mut dim = None;
    for batch in &contents.batches {
        let (d, v) = f32_vectors(batch, "vector", path)?;
        if dim.is_some_and(|old| old != d) {
            return Err(Error::bad_file(path, "vectors of different dimensions"));
        }
        dim = Some(d);
        values.extend(v);
    }
    let dim = dim.ok_or_else(|| Error::bad_file(path, "the table has no rows"))?;
    Ok(Embeddings::new(dim, values))
}
