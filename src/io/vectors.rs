//! Named vector tables from other tools, in and out: CSV/TSV (a name column, then one
//! column per dimension), Parquet (a name column and a list column), NumPy `.npy`
//! (a 2-D float matrix with the names in a text file, one per line) and a Python
//! pickle of a dict name -> list of floats (GenePT's published format).

use crate::error::{Error, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The formats vectors are read from and written to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VectorFormat {
    /// Comma-separated: a name column, then one column per dimension.
    Csv,
    /// Tab-separated, as CSV.
    Tsv,
    /// Parquet: a name column and a list (or fixed-size list) of floats.
    Parquet,
    /// NumPy `.npy` (float32 or float64, rows x dims) with a names file.
    Npy,
    /// A Python pickle of a dict name -> list of floats.
    Pickle,
}

impl VectorFormat {
    /// The format a file name suggests (`.csv`, `.tsv`, `.parquet`, `.npy`, `.pkl`,
    /// `.pickle`; a `.gz` after CSV/TSV allowed).
    pub fn from_path(path: &Path) -> Option<Self> {
        let name = path.file_name()?.to_string_lossy().to_lowercase();
        let name = name.strip_suffix(".gz").unwrap_or(&name);
        let ext = name.rsplit('.').next()?;
        match ext {
            "csv" => Some(VectorFormat::Csv),
            "tsv" | "txt" => Some(VectorFormat::Tsv),
            "parquet" => Some(VectorFormat::Parquet),
            "npy" => Some(VectorFormat::Npy),
            "pkl" | "pickle" => Some(VectorFormat::Pickle),
            _ => None,
        }
    }
}

/// Vectors with a name per row, as read from a file.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedVectors {
    /// One name per row, as the file gives it.
    pub names: Vec<String>,
    /// Dimension.
    pub dim: usize,
    /// Row-major values.
    pub values: Vec<f32>,
}

impl NamedVectors {
    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.dim..(i + 1) * self.dim]
    }

    fn check(self, path: &Path) -> Result<Self> {
        if self.names.is_empty() || self.dim == 0 {
            return Err(Error::bad_file(path, "holds no vectors"));
        }
        if let Some(i) = self.values.iter().position(|v| !v.is_finite()) {
            return Err(Error::bad_file(
                path,
                format!(
                    "{} has a value that is not a finite number",
                    self.names[i / self.dim]
                ),
            ));
        }
        Ok(self)
    }
}

/// Reads named vectors. `names_file` is needed for `.npy` (default: `FILE.genes.txt`
/// beside it); `name_column` and `vector_column` pick Parquet columns (defaults
/// `symbol` and `vector`) and the CSV/TSV name column (default: the first).
pub fn read_vectors(
    path: &Path,
    format: VectorFormat,
    names_file: Option<&Path>,
    name_column: Option<&str>,
    vector_column: Option<&str>,
) -> Result<NamedVectors> {
    let read = match format {
        VectorFormat::Csv | VectorFormat::Tsv => read_delimited(path, format, name_column),
        VectorFormat::Parquet => read_parquet_vectors(
            path,
            name_column.unwrap_or("symbol"),
            vector_column.unwrap_or("vector"),
        ),
        VectorFormat::Npy => {
            let names = names_file.map_or_else(|| default_names_file(path), Path::to_path_buf);
            read_npy(path, &names)
        }
        VectorFormat::Pickle => read_pickle(path),
    }?;
    read.check(path)
}

/// `FILE.genes.txt` for `FILE.npy`.
pub fn default_names_file(npy: &Path) -> PathBuf {
    let mut name = npy.as_os_str().to_owned();
    name.push(".genes.txt");
    PathBuf::from(name)
}

fn read_delimited(
    path: &Path,
    format: VectorFormat,
    name_column: Option<&str>,
) -> Result<NamedVectors> {
    let delimiter = if format == VectorFormat::Tsv {
        b'\t'
    } else {
        b','
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .from_reader(crate::fsutil::open_maybe_gz(path)?);
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| Error::bad_file(path, format!("unreadable header: {e}")))?
        .iter()
        .map(String::from)
        .collect();
    let name_at = match name_column {
        None => 0,
        Some(name) => headers.iter().position(|h| h == name).ok_or_else(|| {
            Error::bad_file(
                path,
                format!("no column '{name}' (columns: {})", headers.join(", ")),
            )
        })?,
    };
    let dim = headers.len().saturating_sub(1);
    let mut out = NamedVectors {
        names: Vec::new(),
        dim,
        values: Vec::new(),
    };
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record = record.map_err(|e| Error::Parse {
            path: path.to_path_buf(),
            line,
            message: e.to_string(),
        })?;
        for (c, field) in record.iter().enumerate() {
            if c == name_at {
                out.names.push(field.trim().to_string());
                continue;
            }
            let value = field.trim().parse::<f32>().map_err(|_| Error::Parse {
                path: path.to_path_buf(),
                line,
                message: format!("column '{}': '{field}' is not a number", headers[c]),
            })?;
            out.values.push(value);
        }
    }
    Ok(out)
}

fn read_parquet_vectors(
    path: &Path,
    name_column: &str,
    vector_column: &str,
) -> Result<NamedVectors> {
    use arrow::array::{Array, Float32Array, Float64Array, ListArray};
    let contents = crate::io::parquet::read_parquet(path)?;
    let mut out = NamedVectors {
        names: Vec::new(),
        dim: 0,
        values: Vec::new(),
    };
    for batch in &contents.batches {
        out.names
            .extend(crate::io::parquet::strings(batch, name_column, path)?);
        let column = batch
            .column_by_name(vector_column)
            .ok_or_else(|| Error::bad_file(path, format!("no column '{vector_column}'")))?;
        if column
            .as_any()
            .downcast_ref::<arrow::array::FixedSizeListArray>()
            .is_some()
        {
            let (dim, values) = crate::io::parquet::f32_vectors(batch, vector_column, path)?;
            out.dim = dim;
            out.values.extend(values);
            continue;
        }
        let list = column.as_any().downcast_ref::<ListArray>().ok_or_else(|| {
            Error::bad_file(
                path,
                format!("column '{vector_column}' is not a list of floats"),
            )
        })?;
        for row in 0..list.len() {
            let item = list.value(row);
            let values: Vec<f32> = if let Some(a) = item.as_any().downcast_ref::<Float32Array>() {
                a.values().to_vec()
            } else if let Some(a) = item.as_any().downcast_ref::<Float64Array>() {
                a.values().iter().map(|&v| v as f32).collect()
            } else {
                return Err(Error::bad_file(
                    path,
                    format!(
                        "column '{vector_column}' holds {}, not floats",
                        item.data_type()
                    ),
                ));
            };
            let row = out.values.len() / out.dim.max(1);
            push_row(&mut out, values, path, row)?;
        }
    }
    Ok(out)
}

/// Appends one row, refusing a length that differs from the rows before it.
fn push_row(out: &mut NamedVectors, values: Vec<f32>, path: &Path, row: usize) -> Result<()> {
    if out.dim == 0 {
        out.dim = values.len();
    }
    if values.len() != out.dim {
        let name = out.names.get(row).cloned().unwrap_or_default();
        return Err(Error::bad_file(
            path,
            format!(
                "{name} has {} values, the rows before it {}",
                values.len(),
                out.dim
            ),
        ));
    }
    out.values.extend(values);
    Ok(())
}

fn read_npy(path: &Path, names_file: &Path) -> Result<NamedVectors> {
    use ndarray::Array2;
    use ndarray_npy::ReadNpyExt;
    let open = || std::fs::File::open(path).map_err(|e| Error::io(path, e));
    let matrix: Array2<f32> = match Array2::<f32>::read_npy(open()?) {
        Ok(m) => m,
        Err(_) => Array2::<f64>::read_npy(open()?)
            .map_err(|e| {
                Error::bad_file(
                    path,
                    format!("not a 2-D float32 or float64 .npy array: {e}"),
                )
            })?
            .mapv(|v| v as f32),
    };
    let names: Vec<String> = crate::fsutil::read_utf8_lines(names_file)?
        .into_iter()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    if names.len() != matrix.nrows() {
        return Err(Error::bad_file(
            names_file,
            format!(
                "{} names for the {} rows of {}",
                names.len(),
                matrix.nrows(),
                path.display()
            ),
        ));
    }
    let dim = matrix.ncols();
    Ok(NamedVectors {
        names,
        dim,
        values: matrix.iter().copied().collect(),
    })
}

fn read_pickle(path: &Path) -> Result<NamedVectors> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let options = serde_pickle::DeOptions::new();
    let map: HashMap<String, Vec<f64>> =
        serde_pickle::from_reader(std::io::BufReader::new(file), options).map_err(|e| {
            Error::bad_file(
                path,
                format!(
                    "not a pickled dict of name -> list of floats ({e}); pickles of NumPy \
                     arrays need NumPy to read, so save such vectors as .npy instead"
                ),
            )
        })?;
    let mut entries: Vec<(String, Vec<f64>)> = map.into_iter().collect();
    // A dict has no order bftembed could keep; sorting makes the store reproducible.
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = NamedVectors {
        names: Vec::with_capacity(entries.len()),
        dim: 0,
        values: Vec::new(),
    };
    for (row, (name, values)) in entries.into_iter().enumerate() {
        out.names.push(name);
        push_row(
            &mut out,
            values.into_iter().map(|v| v as f32).collect(),
            path,
            row,
        )?;
    }
    Ok(out)
}

/// Writes named vectors atomically: TSV/CSV with a `symbol` header and `d0..dN`
/// columns, Parquet with `symbol` and a fixed-size `vector` list, `.npy` (float32)
/// with `FILE.genes.txt` beside it.
pub fn write_vectors(path: &Path, format: VectorFormat, vectors: &NamedVectors) -> Result<()> {
    match format {
        VectorFormat::Csv | VectorFormat::Tsv => write_delimited(path, format, vectors),
        VectorFormat::Parquet => write_parquet_vectors(path, vectors),
        VectorFormat::Npy => write_npy(path, vectors),
        VectorFormat::Pickle => Err(Error::InvalidArgument(
            "bftembed does not write pickles; export as npy, parquet or tsv".into(),
        )),
    }
}

fn write_delimited(path: &Path, format: VectorFormat, vectors: &NamedVectors) -> Result<()> {
    let sep = if format == VectorFormat::Tsv {
        '\t'
    } else {
        ','
    };
    let mut text = String::from("symbol");
    for d in 0..vectors.dim {
        text.push_str(&format!("{sep}d{d}"));
    }
    text.push('\n');
    for (i, name) in vectors.names.iter().enumerate() {
        text.push_str(name);
        for v in vectors.row(i) {
            // Rust's shortest round-trip form: reading it back gives the same f32.
            text.push_str(&format!("{sep}{v}"));
        }
        text.push('\n');
    }
    crate::fsutil::atomic_write_bytes(path, text.as_bytes())
}

fn write_parquet_vectors(path: &Path, vectors: &NamedVectors) -> Result<()> {
    use crate::io::parquet::{record_batch, vector_column, vector_field, write_parquet};
    use arrow::array::{ArrayRef, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    let schema = std::sync::Arc::new(Schema::new(vec![
        Field::new("symbol", DataType::Utf8, false),
        vector_field("vector", vectors.dim),
    ]));
    let names: ArrayRef = std::sync::Arc::new(StringArray::from_iter_values(&vectors.names));
    let columns = vec![names, vector_column(vectors.dim, &vectors.values, path)?];
    let batch = record_batch(schema.clone(), columns, path)?;
    write_parquet(path, schema, &[batch], &[])
}

fn write_npy(path: &Path, vectors: &NamedVectors) -> Result<()> {
    use ndarray_npy::WriteNpyExt;
    let matrix =
        ndarray::Array2::from_shape_vec((vectors.names.len(), vectors.dim), vectors.values.clone())
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
    let mut bytes = Vec::new();
    matrix
        .write_npy(&mut bytes)
        .map_err(|e| Error::bad_file(path, e.to_string()))?;
    let names = default_names_file(path);
    crate::fsutil::atomic_write_bytes(&names, (vectors.names.join("\n") + "\n").as_bytes())?;
    crate::fsutil::atomic_write_bytes(path, &bytes)
}
