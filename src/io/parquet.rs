//! Reading and writing Arrow record batches as Parquet files, with column look-ups
//! that fail with the file and column named.

use crate::error::{Error, Result};
use arrow::array::{Array, ArrayRef, FixedSizeListArray, Float32Array, StringArray, UInt32Array};
use arrow::datatypes::{DataType, Field, SchemaRef};
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use std::path::Path;
use std::sync::Arc;

/// Writes batches to `path` atomically, with `metadata` as file-level key-value pairs.
pub fn write_parquet(
    path: &Path,
    schema: SchemaRef,
    batches: &[RecordBatch],
    metadata: &[(&str, String)],
) -> Result<()> {
    write_row_groups(
        path,
        schema,
        batches.iter().cloned().map(Ok),
        metadata,
        false,
    )
}

/// [`write_parquet`] for batches made one at a time (each is a row group, written before
/// the next is made), so a table bigger than memory can be written.
pub fn write_parquet_batches(
    path: &Path,
    schema: SchemaRef,
    batches: impl Iterator<Item = Result<RecordBatch>>,
    metadata: &[(&str, String)],
) -> Result<()> {
    write_row_groups(path, schema, batches, metadata, true)
}

/// Writes the batches; `group_each` closes a row group after each.
fn write_row_groups(
    path: &Path,
    schema: SchemaRef,
    batches: impl Iterator<Item = Result<RecordBatch>>,
    metadata: &[(&str, String)],
    group_each: bool,
) -> Result<()> {
    crate::fsutil::atomic_write(path, |file| {
        let props = WriterProperties::builder()
            .set_compression(parquet::basic::Compression::SNAPPY)
            .build();
        let err = |e: parquet::errors::ParquetError| Error::bad_file(path, e.to_string());
        let mut writer = ArrowWriter::try_new(
            file.try_clone().map_err(|e| Error::io(path, e))?,
            schema,
            Some(props),
        )
        .map_err(err)?;
        for (k, v) in metadata {
            writer.append_key_value_metadata(parquet::file::metadata::KeyValue::new(
                k.to_string(),
                v.clone(),
            ));
        }
        for batch in batches {
            writer.write(&batch?).map_err(err)?;
            if group_each {
                // The writer's buffer then never holds more than one batch.
                writer.flush().map_err(err)?;
            }
        }
        writer.close().map_err(err)?;
        Ok(())
    })
}

/// A Parquet file read whole: its batches and its file-level key-value metadata.
pub struct ParquetContents {
    /// The record batches in file order.
    pub batches: Vec<RecordBatch>,
    /// File-level key-value metadata.
    pub metadata: Vec<(String, String)>,
}

impl ParquetContents {
    /// A metadata value by key.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Total rows.
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum()
    }
}

/// Reads a whole Parquet file; a truncated or foreign file is reported by name.
pub fn read_parquet(path: &Path) -> Result<ParquetContents> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let bad = |e: parquet::errors::ParquetError| {
        Error::bad_file(path, format!("not a readable Parquet file ({e})"))
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(bad)?;
    let metadata = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .map(|kv| {
            kv.iter()
                .map(|e| (e.key.clone(), e.value.clone().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    let reader = builder.build().map_err(bad)?;
    let mut batches = Vec::new();
    for batch in reader {
        batches.push(batch.map_err(|e| Error::bad_file(path, format!("unreadable rows ({e})")))?);
    }
    Ok(ParquetContents { batches, metadata })
}

fn column<'a>(batch: &'a RecordBatch, name: &str, path: &Path) -> Result<&'a ArrayRef> {
    batch
        .column_by_name(name)
        .ok_or_else(|| Error::bad_file(path, format!("no column '{name}'")))
}

/// A UTF-8 column as owned strings (nulls become empty strings).
pub fn strings(batch: &RecordBatch, name: &str, path: &Path) -> Result<Vec<String>> {
    Ok(optional_strings(batch, name, path)?
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect())
}

/// A nullable UTF-8 column.
pub fn optional_strings(
    batch: &RecordBatch,
    name: &str,
    path: &Path,
) -> Result<Vec<Option<String>>> {
    let col = column(batch, name, path)?;
    let arr = col
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| Error::bad_file(path, format!("column '{name}' is not text")))?;
    Ok((0..arr.len())
        .map(|i| (!arr.is_null(i)).then(|| arr.value(i).to_string()))
        .collect())
}

/// A nullable u32 column.
pub fn optional_u32s(batch: &RecordBatch, name: &str, path: &Path) -> Result<Vec<Option<u32>>> {
    let col = column(batch, name, path)?;
    let arr = col
        .as_any()
        .downcast_ref::<UInt32Array>()
        .ok_or_else(|| Error::bad_file(path, format!("column '{name}' is not uint32")))?;
    Ok((0..arr.len())
        .map(|i| (!arr.is_null(i)).then(|| arr.value(i)))
        .collect())
}

/// A `FixedSizeList<f32>` column flattened row-major; returns (dim, values).
pub fn f32_vectors(batch: &RecordBatch, name: &str, path: &Path) -> Result<(usize, Vec<f32>)> {
    let col = column(batch, name, path)?;
    let list = col
        .as_any()
        .downcast_ref::<FixedSizeListArray>()
        .ok_or_else(|| {
            Error::bad_file(path, format!("column '{name}' is not a fixed-size list"))
        })?;
    let dim = list.value_length() as usize;
    if list.null_count() > 0 {
        return Err(Error::bad_file(
            path,
            format!("column '{name}' has missing vectors"),
        ));
    }
    let values = list
        .values()
        .as_any()
        .downcast_ref::<Float32Array>()
        .ok_or_else(|| Error::bad_file(path, format!("column '{name}' does not hold f32")))?;
    let start = list.offset() * dim;
    let end = start + list.len() * dim;
    Ok((dim, values.values()[start..end].to_vec()))
}

/// The schema field of a `dim`-wide f32 vector column.
pub fn vector_field(name: &str, dim: usize) -> Field {
    let item = Arc::new(Field::new("item", DataType::Float32, false));
    Field::new(name, DataType::FixedSizeList(item, dim as i32), false)
}

/// A `FixedSizeList<f32>` column from row-major values.
pub fn vector_column(dim: usize, values: &[f32], path: &Path) -> Result<ArrayRef> {
    let item = Arc::new(Field::new("item", DataType::Float32, false));
    let values = Float32Array::from(values.to_vec());
    let list = FixedSizeListArray::try_new(item, dim as i32, Arc::new(values), None)
        .map_err(|e| Error::bad_file(path, e.to_string()))?;
    Ok(Arc::new(list))
}

/// The schema field of a `dim`-wide f32 vector column whose rows may be missing.
pub fn optional_vector_field(name: &str, dim: usize) -> Field {
    let item = Arc::new(Field::new("item", DataType::Float32, false));
    Field::new(name, DataType::FixedSizeList(item, dim as i32), true)
}

/// A `FixedSizeList<f32>` column from row-major `values`, null where `valid` is false
/// (Arrow still keeps a slot of `dim` values under each null).
pub fn optional_vector_column(
    dim: usize,
    values: Vec<f32>,
    valid: Vec<bool>,
    path: &Path,
) -> Result<ArrayRef> {
    let item = Arc::new(Field::new("item", DataType::Float32, false));
    let list = FixedSizeListArray::try_new(
        item,
        dim as i32,
        Arc::new(Float32Array::from(values)),
        Some(arrow::buffer::NullBuffer::from(valid)),
    )
    .map_err(|e| Error::bad_file(path, e.to_string()))?;
    Ok(Arc::new(list))
}

/// Assembles a record batch; a column that does not fit the schema names the file.
pub fn record_batch(schema: SchemaRef, columns: Vec<ArrayRef>, path: &Path) -> Result<RecordBatch> {
    RecordBatch::try_new(schema, columns).map_err(|e| Error::bad_file(path, e.to_string()))
}
