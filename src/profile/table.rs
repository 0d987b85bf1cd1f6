//! The profile table: `symbol`, `entrez_id`, `source`, `text`, one row per entity,
//! stored as Parquet.

use crate::error::{Error, Result};
use crate::io::parquet::{optional_u32s, read_parquet, record_batch, strings, write_parquet};
use arrow::array::{ArrayRef, StringArray, UInt32Array};
use arrow::datatypes::{DataType, Field, Schema};
use std::path::Path;
use std::sync::Arc;

/// One profile: a text describing one gene.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileRecord {
    /// Approved gene symbol (or entity name).
    pub symbol: String,
    /// NCBI Gene id, where known.
    pub entrez_id: Option<u32>,
    /// Where the text came from (`refseq`, a model id, ...).
    pub source: String,
    /// The profile text.
    pub text: String,
}

const FORMAT_KEY: &str = "bftembed.format";
const FORMAT_VALUE: &str = "profiles/1";

/// The profile columns (symbol, entrez_id, source, text) as schema fields and arrays,
/// for tables that carry profiles plus more (the store's vector table).
pub fn profile_columns(records: &[ProfileRecord]) -> (Vec<Field>, Vec<ArrayRef>) {
    let fields = vec![
        Field::new("symbol", DataType::Utf8, false),
        Field::new("entrez_id", DataType::UInt32, true),
        Field::new("source", DataType::Utf8, false),
        Field::new("text", DataType::Utf8, false),
    ];
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
            records.iter().map(|r| &r.text),
        )),
    ];
    (fields, columns)
}

/// Writes profiles to a Parquet file atomically.
pub fn write_profiles(path: &Path, records: &[ProfileRecord]) -> Result<()> {
    write_profiles_with_metadata(path, records, &[])
}

/// Writes profiles with extra file-level metadata (how a model made them, say).
pub fn write_profiles_with_metadata(
    path: &Path,
    records: &[ProfileRecord],
    metadata: &[(&str, String)],
) -> Result<()> {
    let (fields, columns) = profile_columns(records);
    let schema = Arc::new(Schema::new(fields));
    let batch = record_batch(schema.clone(), columns, path)?;
    let mut all = vec![(FORMAT_KEY, FORMAT_VALUE.to_string())];
    all.extend(metadata.iter().cloned());
    write_parquet(path, schema, &[batch], &all)
}

/// The file-level metadata of a profile table.
pub fn read_profile_metadata(path: &Path) -> Result<Vec<(String, String)>> {
    Ok(read_parquet(path)?.metadata)
}

/// Reads a profile table; missing columns or an empty table are errors naming the file.
pub fn read_profiles(path: &Path) -> Result<Vec<ProfileRecord>> {
    let contents = read_parquet(path)?;
    let mut out = Vec::with_capacity(contents.num_rows());
    for batch in &contents.batches {
        let symbols = strings(batch, "symbol", path)?;
        let entrez = optional_u32s(batch, "entrez_id", path)?;
        let sources = strings(batch, "source", path)?;
        let texts = strings(batch, "text", path)?;
        for i in 0..batch.num_rows() {
            out.push(ProfileRecord {
                symbol: symbols[i].clone(),
                entrez_id: entrez[i],
                source: sources[i].clone(),
                text: texts[i].clone(),
            });
        }
    }
    if out.is_empty() {
        return Err(Error::bad_file(path, "the profile table has no rows"));
    }
    for (i, r) in out.iter().enumerate() {
        if r.symbol.trim().is_empty() {
            return Err(Error::Parse {
                path: path.to_path_buf(),
                line: i + 1,
                message: "row has an empty symbol".into(),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.parquet");
        let records = vec![
            ProfileRecord {
                symbol: "TP53".into(),
                entrez_id: Some(7157),
                source: "refseq".into(),
                text: "tumor protein p53".into(),
            },
            ProfileRecord {
                symbol: "NEWGENE".into(),
                entrez_id: None,
                source: "model".into(),
                text: "α-β ünïcode".into(),
            },
        ];
        write_profiles(&path, &records).unwrap();
        assert_eq!(read_profiles(&path).unwrap(), records);
    }
}
