//! AnnData `.h5ad` files, the format single-cell users keep their data in, read without
//! the HDF5 C library: an expression matrix (`X`, `raw/X` or `layers/NAME`; dense, CSR
//! or CSC) with its gene names, and the `obs` table's cell ids and columns (strings,
//! categoricals, numbers).
//!
//! Two on-disk layouts are read. The current one (anndata 0.8 and later) marks every
//! element with an `encoding-type` attribute: `obs`/`var` are groups of columns named by
//! `_index`, categoricals are `codes` + `categories`. The older one (anndata before 0.7,
//! still common in published files such as scanpy's `pbmc68k_reduced`) stores `obs` and
//! `var` as compound tables, categories in `uns/<column>_categories`, and the raw matrix
//! as `raw.X` beside `raw.var`.

use super::anndata_rows::{csc_note, csc_rows, CsrRows, DenseRows, Place};
use super::expression::ExpressionMatrix;
use super::matrix_stream::{MatrixStream, RowSource};
use crate::error::{Error, Result};
use hdf5_pure::{AttrValue, Dataset, Datatype, File};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// An open `.h5ad` file.
pub struct H5ad {
    path: PathBuf,
    file: File,
}

/// Where a matrix and the table naming its columns live in the file.
struct MatrixLocation {
    matrix: String,
    var: String,
}

impl H5ad {
    /// Opens a file; anything that is not HDF5 is refused with the path in the error.
    pub fn open(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(Error::bad_file(path, "no such file"));
        }
        let is_hdf5 = hdf5_pure::is_hdf5(path).map_err(|e| Error::io(path, e))?;
        if !is_hdf5 {
            return Err(Error::bad_file(
                path,
                "not an HDF5 file (an .h5ad file is HDF5; is it truncated or another format?)",
            ));
        }
        check_complete(path)?;
        // Streaming: metadata and chunks are read as they are needed, so a file bigger
        // than memory opens (File::open would read it whole).
        let file = File::open_streaming(path).map_err(|e| Error::bad_file(path, e.to_string()))?;
        Ok(H5ad {
            path: path.to_path_buf(),
            file,
        })
    }

    /// The expression matrix under `key` (`X`, `raw/X` or `layers/NAME`) as cells ×
    /// genes, with the cell ids of `obs` and the gene names of the matching `var`: its
    /// index, or its column `gene_column` (files whose index holds Ensembl ids keep the
    /// symbols in a column, `feature_name` in CELLxGENE's).
    pub fn matrix(&self, key: &str, gene_column: Option<&str>) -> Result<ExpressionMatrix> {
        ExpressionMatrix::read_stream(self.stream(key, gene_column)?)
    }

    /// The same matrix as [`Self::matrix`], read a window of cells at a time: a dense or
    /// CSR matrix reads only each window's rows from the file (a CSC one is read whole,
    /// as [`MatrixStream::note`] says).
    pub fn stream(&self, key: &str, gene_column: Option<&str>) -> Result<MatrixStream> {
        let location = self.locate(key)?;
        let genes = match gene_column {
            None => self.frame_index(&location.var)?,
            Some(column) => self
                .frame_column(&location.var, column)?
                .into_iter()
                .map(Option::unwrap_or_default)
                .collect(),
        };
        let cells = self.obs_names()?;
        let (rows, note) = self.row_source(&location.matrix, cells.len(), genes.len())?;
        Ok(MatrixStream::new(&self.path, genes, cells, rows).with_note(note))
    }

    /// The cell ids (`obs` index).
    pub fn obs_names(&self) -> Result<Vec<String>> {
        self.frame_index("obs")
    }

    /// The names of the `obs` columns.
    pub fn obs_columns(&self) -> Result<Vec<String>> {
        self.frame_columns("obs")
    }

    /// `obs`'s columns in the order anndata shows them (its `column-order` attribute);
    /// empty when obs has none or the file predates the attribute.
    pub fn obs_column_order(&self) -> Vec<String> {
        match self.attributes("obs").remove("column-order") {
            Some(AttrValue::VarLenStringArray(v) | AttrValue::StringArray(v)) => v,
            Some(AttrValue::VarLenAsciiStringArray(v) | AttrValue::AsciiStringArray(v)) => v,
            _ => Vec::new(),
        }
    }

    /// One `obs` column as text per cell: categories by name, numbers printed; `None`
    /// where a categorical value is missing.
    pub fn obs_column(&self, column: &str) -> Result<Vec<Option<String>>> {
        self.frame_column("obs", column)
    }

    /// An `obsm` entry (such as `X_pca` or `X_genept_w`) as `(columns, row-major
    /// values)`, one row per cell; refused unless it is a cells × columns array.
    pub fn obsm(&self, key: &str) -> Result<(usize, Vec<f32>)> {
        let path = format!("obsm/{key}");
        let dataset = self.dataset(&path)?;
        let shape = dataset.shape().map_err(|e| self.error(&path, e))?;
        let cells = self.obs_names()?.len() as u64;
        if shape.len() != 2 || shape[0] != cells {
            return Err(self.bad(
                &path,
                &format!("is {shape:?}, not {cells} cells by some columns"),
            ));
        }
        let values = dataset.read_f32().map_err(|e| self.error(&path, e))?;
        Ok((shape[1] as usize, values))
    }

    /// Whether `path` in the file is a dataset (not a group, not absent).
    pub fn has_dataset(&self, path: &str) -> bool {
        self.file.dataset(path).is_ok()
    }

    fn frame_columns(&self, frame: &str) -> Result<Vec<String>> {
        if let Ok(group) = self.file.group(frame) {
            let mut names = group.datasets().map_err(|e| self.error(frame, e))?;
            names.extend(group.groups().map_err(|e| self.error(frame, e))?);
            let index = self.attr_string(frame, "_index");
            names.retain(|n| Some(n) != index.as_ref());
            names.sort();
            return Ok(names);
        }
        match self.dataset(frame)?.datatype() {
            Ok(Datatype::Compound { members, .. }) => Ok(members
                .into_iter()
                .map(|m| m.name)
                .filter(|n| n != "index")
                .collect()),
            _ => Err(self.bad(frame, "is neither a dataframe group nor a compound table")),
        }
    }

    fn frame_column(&self, frame: &str, column: &str) -> Result<Vec<Option<String>>> {
        let known = self.frame_columns(frame)?;
        if !known.iter().any(|c| c == column) {
            return Err(Error::bad_file(
                &self.path,
                format!(
                    "{frame} has no column '{column}' (it has: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        }
        let key = format!("{frame}/{column}");
        if self.file.group(frame).is_ok() {
            if self.file.group(&key).is_ok() {
                let codes = self.integers(&format!("{key}/codes"))?;
                let categories = self.strings(&format!("{key}/categories"))?;
                return self.decode_categories(&key, &codes, &categories);
            }
            return self.column_text(&self.dataset(&key)?, &key);
        }
        self.legacy_column(frame, column)
    }

    fn locate(&self, key: &str) -> Result<MatrixLocation> {
        let key = key.trim_matches('/');
        let exists = |p: &str| self.file.group(p).is_ok() || self.file.dataset(p).is_ok();
        let location = match key {
            "X" => MatrixLocation {
                matrix: "X".into(),
                var: "var".into(),
            },
            "raw/X" if exists("raw/X") => MatrixLocation {
                matrix: "raw/X".into(),
                var: "raw/var".into(),
            },
            "raw/X" if exists("raw.X") => MatrixLocation {
                matrix: "raw.X".into(),
                var: "raw.var".into(),
            },
            "raw/X" => MatrixLocation {
                matrix: "raw/X".into(),
                var: "raw/var".into(),
            },
            k if k.starts_with("layers/") => MatrixLocation {
                matrix: k.into(),
                var: "var".into(),
            },
            other => {
                return Err(Error::bad_file(
                    &self.path,
                    format!("'{other}' is not a matrix key; use X, raw/X or layers/NAME"),
                ))
            }
        };
        if !exists(&location.matrix) {
            let mut layers = self
                .file
                .group("layers")
                .and_then(|g| {
                    g.datasets().map(|mut d| {
                        d.extend(g.groups().unwrap_or_default());
                        d
                    })
                })
                .unwrap_or_default();
            layers.sort();
            return Err(Error::bad_file(
                &self.path,
                format!(
                    "there is no matrix '{key}' (layers here: {})",
                    if layers.is_empty() {
                        "none".to_string()
                    } else {
                        layers.join(", ")
                    }
                ),
            ));
        }
        Ok(location)
    }

    /// The rows of the matrix at `key` (a dense dataset, or a CSR / CSC group whose
    /// encoding and shape are checked before its arrays are read), and why it is held
    /// whole when it is.
    fn row_source(
        &self,
        key: &str,
        cells: usize,
        genes: usize,
    ) -> Result<(Box<dyn RowSource>, Option<String>)> {
        let place = Place {
            path: self.path.clone(),
            key: key.to_string(),
        };
        // A dense matrix is one dataset; a sparse one is a group of arrays.
        if let Ok(dataset) = self.file.dataset(key) {
            let shape = dataset.shape().map_err(|e| self.error(key, e))?;
            if shape != [cells as u64, genes as u64] {
                return Err(self.bad(
                    key,
                    &format!("is {shape:?} but obs has {cells} cells and var {genes} genes"),
                ));
            }
            return Ok((
                Box::new(DenseRows {
                    place,
                    dataset,
                    genes,
                }),
                None,
            ));
        }
        let by_cell = self.sparse_by_cell(key)?;
        self.check_sparse_shape(key, cells, genes)?;
        let indptr = self.integers(&format!("{key}/indptr"))?;
        let outer = if by_cell { cells } else { genes };
        if indptr.len() != outer + 1 {
            return Err(self.bad(
                key,
                &format!("has {} pointers for {outer} rows", indptr.len()),
            ));
        }
        let data = self.dataset(&format!("{key}/data"))?;
        let indices = self.dataset(&format!("{key}/indices"))?;
        if by_cell {
            let rows = CsrRows::new(place, [data, indices], indptr, genes)?;
            return Ok((Box::new(rows), None));
        }
        let data = data.read_f32().map_err(|e| self.error(key, e))?;
        let indices = indices.read_i64().map_err(|e| self.error(key, e))?;
        let rows = csc_rows(&place, data, indices, indptr, cells)?;
        Ok((Box::new(rows), Some(csc_note(&self.path, key))))
    }

    /// Whether a sparse group is CSR (true) or CSC (false), from the current
    /// `encoding-type` attribute or the older h5sparse `h5sparse_format`.
    fn sparse_by_cell(&self, key: &str) -> Result<bool> {
        let format = self
            .attr_string(key, "encoding-type")
            .or_else(|| self.attr_string(key, "h5sparse_format"))
            .unwrap_or_default();
        match format.as_str() {
            "csr_matrix" | "csr" => Ok(true),
            "csc_matrix" | "csc" => Ok(false),
            other => Err(self.bad(
                key,
                &format!("is a group of encoding '{other}', not a CSR or CSC matrix"),
            )),
        }
    }

    /// Checks a sparse group's recorded shape (`shape`, or h5sparse's `h5sparse_shape`)
    /// against obs and var; a group that records none is taken as it is.
    fn check_sparse_shape(&self, key: &str, cells: usize, genes: usize) -> Result<()> {
        let shape = self
            .attr_integers(key, "shape")
            .or_else(|| self.attr_integers(key, "h5sparse_shape"));
        if let Some(shape) = shape {
            if shape != [cells as i64, genes as i64] {
                return Err(self.bad(
                    key,
                    &format!("is {shape:?} but obs has {cells} cells and var {genes} genes"),
                ));
            }
        }
        Ok(())
    }

    /// The row names of a dataframe (`obs`, `var`, `raw/var`, or a legacy table).
    fn frame_index(&self, frame: &str) -> Result<Vec<String>> {
        if self.file.group(frame).is_ok() {
            let index = self
                .attr_string(frame, "_index")
                .ok_or_else(|| self.bad(frame, "has no _index attribute"))?;
            return self.strings(&format!("{frame}/{index}"));
        }
        let table = self.dataset(frame)?;
        self.compound_field(&table, frame, "index")?
            .ok_or_else(|| self.bad(frame, "has no 'index' field"))
    }

    fn legacy_column(&self, frame: &str, column: &str) -> Result<Vec<Option<String>>> {
        let table = self.dataset(frame)?;
        let Ok(Datatype::Compound { size, members }) = table.datatype() else {
            return Err(self.bad(frame, "is not a compound table"));
        };
        let member = members
            .iter()
            .find(|m| m.name == column)
            .ok_or_else(|| self.bad(frame, &format!("has no field '{column}'")))?;
        let raw = table.read_raw().map_err(|e| self.error(frame, e))?;
        let categories_key = format!("uns/{column}_categories");
        match &member.datatype {
            Datatype::String { .. } => Ok(field_strings(
                &raw,
                size as usize,
                member.byte_offset as usize,
                &member.datatype,
            )
            .into_iter()
            .map(Some)
            .collect()),
            Datatype::FixedPoint { .. } | Datatype::FloatingPoint { .. } => {
                let numbers = field_numbers(
                    &raw,
                    size as usize,
                    member.byte_offset as usize,
                    &member.datatype,
                )
                .ok_or_else(|| {
                    self.bad(frame, &format!("field '{column}' is not a plain number"))
                })?;
                if self.file.dataset(&categories_key).is_ok() {
                    let categories = self.strings(&categories_key)?;
                    let codes: Vec<i64> = numbers.iter().map(|&v| v as i64).collect();
                    return self.decode_categories(
                        &format!("{frame}/{column}"),
                        &codes,
                        &categories,
                    );
                }
                Ok(numbers.into_iter().map(|v| Some(v.to_string())).collect())
            }
            _ => Err(self.bad(
                frame,
                &format!("field '{column}' has a type this reader skips"),
            )),
        }
    }

    fn decode_categories(
        &self,
        key: &str,
        codes: &[i64],
        categories: &[String],
    ) -> Result<Vec<Option<String>>> {
        codes
            .iter()
            .map(|&c| match c {
                -1 => Ok(None),
                c if c >= 0 && (c as usize) < categories.len() => {
                    Ok(Some(categories[c as usize].clone()))
                }
                c => Err(self.bad(
                    key,
                    &format!("has code {c} but {} categories", categories.len()),
                )),
            })
            .collect()
    }

    fn column_text(&self, dataset: &Dataset, key: &str) -> Result<Vec<Option<String>>> {
        let datatype = dataset.datatype().map_err(|e| self.error(key, e))?;
        match datatype {
            Datatype::String { .. } | Datatype::VariableLength { .. } => {
                Ok(self.strings(key)?.into_iter().map(Some).collect())
            }
            Datatype::FixedPoint { .. }
            | Datatype::FloatingPoint { .. }
            | Datatype::Enumeration { .. } => Ok(dataset
                .read_f64()
                .map_err(|e| self.error(key, e))?
                .into_iter()
                .map(|v| Some(v.to_string()))
                .collect()),
            _ => Err(self.bad(key, "has a type this reader skips")),
        }
    }

    /// A named field of every record of a compound table, as text; `None` when the
    /// table has no such field.
    fn compound_field(
        &self,
        table: &Dataset,
        key: &str,
        name: &str,
    ) -> Result<Option<Vec<String>>> {
        let Ok(Datatype::Compound { size, members }) = table.datatype() else {
            return Err(self.bad(key, "is neither a dataframe group nor a compound table"));
        };
        let Some(member) = members.iter().find(|m| m.name == name) else {
            return Ok(None);
        };
        if !matches!(member.datatype, Datatype::String { .. }) {
            return Err(self.bad(key, &format!("field '{name}' is not text")));
        }
        let raw = table.read_raw().map_err(|e| self.error(key, e))?;
        Ok(Some(field_strings(
            &raw,
            size as usize,
            member.byte_offset as usize,
            &member.datatype,
        )))
    }

    fn dataset(&self, key: &str) -> Result<Dataset> {
        self.file.dataset(key).map_err(|e| self.error(key, e))
    }

    fn strings(&self, key: &str) -> Result<Vec<String>> {
        self.dataset(key)?
            .read_string()
            .map_err(|e| self.error(key, e))
    }

    fn integers(&self, key: &str) -> Result<Vec<i64>> {
        self.dataset(key)?
            .read_i64()
            .map_err(|e| self.error(key, e))
    }

    fn attributes(&self, key: &str) -> HashMap<String, AttrValue> {
        match self.file.group(key) {
            Ok(g) => g.attrs().unwrap_or_default(),
            Err(_) => self
                .file
                .dataset(key)
                .and_then(|d| d.attrs())
                .unwrap_or_default(),
        }
    }

    fn attr_string(&self, key: &str, name: &str) -> Option<String> {
        match self.attributes(key).remove(name)? {
            AttrValue::String(s) | AttrValue::AsciiString(s) => Some(s),
            AttrValue::StringSized { value, .. } | AttrValue::AsciiStringSized { value, .. } => {
                Some(value)
            }
            AttrValue::VarLenString(s) => Some(s),
            _ => None,
        }
    }

    fn attr_integers(&self, key: &str, name: &str) -> Option<Vec<i64>> {
        match self.attributes(key).remove(name)? {
            AttrValue::I64Array(v) => Some(v),
            AttrValue::I32Array(v) => Some(v.into_iter().map(i64::from).collect()),
            AttrValue::U64Array(v) => Some(v.into_iter().map(|x| x as i64).collect()),
            AttrValue::U32Array(v) => Some(v.into_iter().map(i64::from).collect()),
            _ => None,
        }
    }

    fn error(&self, key: &str, e: hdf5_pure::Error) -> Error {
        self.bad(key, &format!("cannot be read: {e}"))
    }

    fn bad(&self, key: &str, message: &str) -> Error {
        Error::bad_file(&self.path, format!("'{key}' {message}"))
    }
}

/// One fixed-length text field of every record of a compound table (legacy `obs`/`var`
/// index and string columns).
fn field_strings(raw: &[u8], record: usize, offset: usize, datatype: &Datatype) -> Vec<String> {
    let width = datatype.type_size() as usize;
    raw.chunks_exact(record.max(1))
        .map(|r| {
            let bytes = &r[offset.min(r.len())..(offset + width).min(r.len())];
            let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
            String::from_utf8_lossy(&bytes[..end])
                .trim_end()
                .to_string()
        })
        .collect()
}

/// One numeric field of every record of a compound table; `None` for a width or byte
/// order no numpy dtype writes.
fn field_numbers(
    raw: &[u8],
    record: usize,
    offset: usize,
    datatype: &Datatype,
) -> Option<Vec<f64>> {
    let (size, big_endian) = match datatype {
        Datatype::FixedPoint {
            size, byte_order, ..
        }
        | Datatype::FloatingPoint {
            size, byte_order, ..
        } => (
            *size as usize,
            *byte_order == hdf5_pure::DatatypeByteOrder::BigEndian,
        ),
        _ => return None,
    };
    let signed = matches!(datatype, Datatype::FixedPoint { layout, .. } if layout.signed);
    let float = matches!(datatype, Datatype::FloatingPoint { .. });
    raw.chunks_exact(record.max(1))
        .map(|r| {
            let mut bytes: Vec<u8> = r.get(offset..offset + size)?.to_vec();
            if big_endian {
                bytes.reverse();
            }
            let mut word = [0u8; 8];
            word[..size.min(8)].copy_from_slice(&bytes[..size.min(8)]);
            let bits = u64::from_le_bytes(word);
            Some(match (float, size, signed) {
                (true, 4, _) => f32::from_bits(bits as u32) as f64,
                (true, 8, _) => f64::from_bits(bits),
                (false, 1..=8, true) => {
                    let shift = 64 - 8 * size as u32;
                    ((bits << shift) as i64 >> shift) as f64
                }
                (false, 1..=8, false) => bits as f64,
                _ => return None,
            })
        })
        .collect()
}

/// Refuses an HDF5 file shorter than the end-of-file address its superblock records:
/// a cut-short download otherwise reads as a file with missing groups.
fn check_complete(path: &Path) -> Result<()> {
    use std::io::Read as _;
    let mut head = [0u8; 96];
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let read = file.read(&mut head).map_err(|e| Error::io(path, e))?;
    let Some(recorded) = superblock_end_of_file(&head[..read]) else {
        return Ok(());
    };
    let actual = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if actual < recorded {
        return Err(Error::bad_file(
            path,
            format!(
                "the HDF5 file is truncated: {actual} bytes, but its superblock records {recorded}"
            ),
        ));
    }
    Ok(())
}

/// The end-of-file address of a superblock at the start of the file (versions 0-3), or
/// `None` when the layout is not one of those.
fn superblock_end_of_file(head: &[u8]) -> Option<u64> {
    if !head.starts_with(b"\x89HDF\r\n\x1a\n") {
        return None;
    }
    let version = *head.get(8)?;
    let (offsets_size, at) = match version {
        // Versions 0 and 1: after 16 (+4 for version 1) bytes of fields, base address
        // and free-space address precede the end-of-file address.
        0 | 1 => {
            let size = *head.get(13)? as usize;
            (size, 24 + if version == 1 { 4 } else { 0 } + 2 * size)
        }
        // Versions 2 and 3: base and superblock-extension addresses precede it.
        2 | 3 => {
            let size = *head.get(9)? as usize;
            (size, 12 + 2 * size)
        }
        _ => return None,
    };
    if !(1..=8).contains(&offsets_size) {
        return None;
    }
    let bytes = head.get(at..at + offsets_size)?;
    let mut value = 0u64;
    for (i, b) in bytes.iter().enumerate() {
        value |= (*b as u64) << (8 * i);
    }
    // An undefined address (all ones) says nothing.
    (value != u64::MAX >> (64 - 8 * offsets_size as u32)).then_some(value)
}
