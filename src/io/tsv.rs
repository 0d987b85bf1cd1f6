//! Tab-separated tables with a header row, as the shipped data files are.

use crate::error::{Error, Result};
use std::io::Read;
use std::path::Path;

/// Decompresses a gzipped text compiled into the binary; `name` labels errors.
pub fn gunzip_embedded(bytes: &[u8], name: &str) -> Result<String> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut text)
        .map_err(|e| Error::io(format!("<embedded {name}>"), e))?;
    Ok(text)
}

/// The header row of a TSV text, for looking columns up by name.
pub struct TsvHeader<'a> {
    path: &'a Path,
    names: Vec<&'a str>,
}

impl TsvHeader<'_> {
    /// The index of a column; a missing one is an error naming the file and column.
    pub fn column(&self, name: &str) -> Result<usize> {
        self.names
            .iter()
            .position(|h| *h == name)
            .ok_or_else(|| Error::bad_file(self.path, format!("no column '{name}' in the header")))
    }
}

/// Splits a TSV text into its header and the remaining lines.
pub fn split_header<'a>(
    text: &'a str,
    path: &'a Path,
) -> Result<(TsvHeader<'a>, std::str::Lines<'a>)> {
    let mut lines = text.lines();
    let names = lines
        .next()
        .ok_or_else(|| Error::bad_file(path, "empty file"))?
        .split('\t')
        .collect();
    Ok((TsvHeader { path, names }, lines))
}
