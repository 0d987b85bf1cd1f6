//! CSV/TSV tables (task labels, cell metadata, gene-set and annotation files): opened (gzip allowed) with their header,
//! and columns found by name with an error that lists the columns there are.

use crate::error::{Error, Result};
use std::io::Read;
use std::path::Path;

/// A CSV file opened at its first record.
pub struct CsvTable {
    reader: csv::Reader<Box<dyn Read>>,
    headers: Vec<String>,
    path: std::path::PathBuf,
}

impl CsvTable {
    /// Opens a CSV file (tab-separated when its name says `.tsv`) and reads its header.
    pub fn open(path: &Path) -> Result<Self> {
        let tab = path.to_string_lossy().contains(".tsv");
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(if tab { b'\t' } else { b',' })
            .from_reader(crate::fsutil::open_maybe_gz(path)?);
        let headers = reader
            .headers()
            .map_err(|e| Error::bad_file(path, format!("unreadable CSV header: {e}")))?
            .iter()
            .map(String::from)
            .collect();
        Ok(CsvTable {
            reader,
            headers,
            path: path.to_path_buf(),
        })
    }

    /// The remaining records; a malformed one is an error naming the file and its line.
    pub fn records(&mut self) -> impl Iterator<Item = Result<csv::StringRecord>> + '_ {
        let path = self.path.clone();
        self.reader.records().enumerate().map(move |(i, r)| {
            r.map_err(|e| Error::Parse {
                path: path.clone(),
                line: i + 2,
                message: e.to_string(),
            })
        })
    }

    /// The index of a named column.
    pub fn column(&self, name: &str) -> Result<usize> {
        self.headers.iter().position(|h| h == name).ok_or_else(|| {
            Error::bad_file(
                &self.path,
                format!("no column '{name}' (columns: {})", self.headers.join(", ")),
            )
        })
    }
}
