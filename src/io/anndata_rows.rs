//! The rows (cells) of an `.h5ad` matrix, read a window at a time: a dense dataset by
//! its rows, a CSR group by the pointer range of its rows, so that only a window's
//! values come off the disk. A CSC group keeps each cell's values spread over the whole
//! file and is read whole. Every pointer and index is checked before use, so a damaged
//! file is an error naming the array rather than a panic.

use super::matrix_stream::{CellRow, RowSource, RowsInMemory};
use crate::error::{Error, Result};
use hdf5_pure::Dataset;
use std::path::{Path, PathBuf};

/// A matrix in the file, for error messages.
#[derive(Clone)]
pub(super) struct Place {
    pub path: PathBuf,
    pub key: String,
}

impl Place {
    pub fn bad(&self, message: &str) -> Error {
        Error::bad_file(&self.path, format!("'{}' {message}", self.key))
    }

    pub fn error(&self, e: hdf5_pure::Error) -> Error {
        self.bad(&format!("cannot be read: {e}"))
    }
}

/// The rows of a dense cells × genes dataset.
pub(super) struct DenseRows {
    pub place: Place,
    pub dataset: Dataset,
    pub genes: usize,
}

impl RowSource for DenseRows {
    fn rows(&mut self, start: usize, count: usize) -> Result<Vec<CellRow>> {
        let values = self
            .dataset
            .read_f32_rows(start as u64, count as u64)
            .map_err(|e| self.place.error(e))?;
        if values.len() != count * self.genes {
            return Err(self.place.bad(&format!(
                "gave {} values for {count} rows of {} genes",
                values.len(),
                self.genes
            )));
        }
        Ok(values
            .chunks(self.genes.max(1))
            .map(|row| {
                row.iter()
                    .enumerate()
                    .filter(|(_, v)| **v != 0.0)
                    .map(|(g, v)| (g as u32, *v))
                    .collect()
            })
            .collect())
    }
}

/// The rows of a CSR group (`data`, `indices`, `indptr`), the pointers read once.
pub(super) struct CsrRows {
    place: Place,
    data: Dataset,
    indices: Dataset,
    indptr: Vec<i64>,
    genes: usize,
}

impl CsrRows {
    /// Checks the pointers (one per cell and one more, non-decreasing, inside `data`)
    /// and the two arrays' lengths before any value is read.
    pub fn new(place: Place, arrays: [Dataset; 2], indptr: Vec<i64>, genes: usize) -> Result<Self> {
        let [data, indices] = arrays;
        let length = |d: &Dataset| -> Result<u64> {
            let shape = d.shape().map_err(|e| place.error(e))?;
            Ok(shape.first().copied().unwrap_or(0))
        };
        let (values, inner) = (length(&data)?, length(&indices)?);
        if values != inner {
            return Err(place.bad(&format!("has {inner} indices for {values} values")));
        }
        check_pointers(&place, &indptr, values)?;
        Ok(CsrRows {
            place,
            data,
            indices,
            indptr,
            genes,
        })
    }
}

impl RowSource for CsrRows {
    fn rows(&mut self, start: usize, count: usize) -> Result<Vec<CellRow>> {
        let (first, last) = (self.indptr[start], self.indptr[start + count]);
        let n = (last - first) as u64;
        let values = self
            .data
            .read_f32_rows(first as u64, n)
            .map_err(|e| self.place.error(e))?;
        let genes = self
            .indices
            .read_i64_rows(first as u64, n)
            .map_err(|e| self.place.error(e))?;
        if values.len() as u64 != n || genes.len() as u64 != n {
            return Err(self.place.bad("ends before its pointers say (truncated?)"));
        }
        let mut rows = Vec::with_capacity(count);
        for cell in start..start + count {
            let (a, b) = (
                (self.indptr[cell] - first) as usize,
                (self.indptr[cell + 1] - first) as usize,
            );
            let mut row = Vec::with_capacity(b - a);
            for (&g, &x) in genes[a..b].iter().zip(&values[a..b]) {
                if g < 0 || g as usize >= self.genes {
                    return Err(self
                        .place
                        .bad(&format!("has index {g} outside 0..{}", self.genes)));
                }
                if x != 0.0 {
                    row.push((g as u32, x));
                }
            }
            // CSR indices need not be sorted (scipy keeps whatever order it was given);
            // every reader hands out a cell's values by gene.
            if !row.is_sorted_by_key(|(g, _)| *g) {
                row.sort_by_key(|(g, _)| *g);
            }
            rows.push(row);
        }
        Ok(rows)
    }
}

/// Refuses pointers that are negative, decreasing or past the `values` stored.
fn check_pointers(place: &Place, indptr: &[i64], values: u64) -> Result<()> {
    if indptr.first().is_some_and(|&p| p < 0) {
        return Err(place.bad("has a negative first pointer"));
    }
    if let Some(o) = indptr.windows(2).position(|w| w[1] < w[0]) {
        return Err(place.bad(&format!("has a bad pointer at row {o}")));
    }
    if indptr.last().is_some_and(|&p| p as u64 > values) {
        return Err(place.bad(&format!(
            "has pointers past its {values} values (truncated?)"
        )));
    }
    Ok(())
}

/// The rows of a CSC group (each pointer range is a gene), read whole: per cell, its
/// non-zeros sorted by gene.
pub(super) fn csc_rows(
    place: &Place,
    data: Vec<f32>,
    indices: Vec<i64>,
    indptr: Vec<i64>,
    cells: usize,
) -> Result<RowsInMemory> {
    let genes = indptr.len().saturating_sub(1);
    if indices.len() != data.len() {
        return Err(place.bad(&format!(
            "has {} indices for {} values",
            indices.len(),
            data.len()
        )));
    }
    check_pointers(place, &indptr, data.len() as u64)?;
    let mut rows = vec![Vec::new(); cells];
    for gene in 0..genes {
        for k in indptr[gene] as usize..indptr[gene + 1] as usize {
            let cell = indices[k];
            if cell < 0 || cell as usize >= cells {
                return Err(place.bad(&format!("has index {cell} outside 0..{cells}")));
            }
            if data[k] != 0.0 {
                rows[cell as usize].push((gene as u32, data[k]));
            }
        }
    }
    Ok(RowsInMemory(rows))
}

/// Why a CSC matrix is held whole (for [`super::MatrixStream::note`]).
pub(super) fn csc_note(path: &Path, key: &str) -> String {
    format!(
        "{}: '{key}' is stored by gene (CSC), so it is read whole; stored by cell (CSR, \
         adata.X = adata.X.tocsr() in Python) it is read a window of cells at a time",
        path.display()
    )
}
