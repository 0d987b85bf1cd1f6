//! Expression matrices read a window of cells at a time, so that a matrix of a million
//! cells is never in memory at once: the gene and cell names are read first, then the
//! values of one window of consecutive cells after another. Every matrix reader is one
//! of these; reading a matrix whole is reading it as one window.
//!
//! What streams: an `.h5ad`'s dense or CSR matrix (only the rows of a window are read
//! from the file) and a MatrixMarket file whose entries are in cell order (10x writes
//! them so). A CSC matrix, a MatrixMarket file in gene order and a dense CSV/TSV are read
//! whole and then handed out by window; [`MatrixStream::note`] says so.

use super::matrix_source::MatrixValues;
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// The non-zero (gene, value) pairs of one cell, by gene.
pub type CellRow = Vec<(u32, f32)>;

/// Where the values of a matrix's rows come from.
pub(crate) trait RowSource {
    /// The non-zeros of the file's rows `start .. start + count`, which follow the rows
    /// of the previous call.
    fn rows(&mut self, start: usize, count: usize) -> Result<Vec<CellRow>>;
}

/// Rows already in memory, handed out once each.
pub(crate) struct RowsInMemory(pub Vec<CellRow>);

impl RowSource for RowsInMemory {
    fn rows(&mut self, start: usize, count: usize) -> Result<Vec<CellRow>> {
        let end = (start + count).min(self.0.len());
        Ok(self.0[start.min(end)..end]
            .iter_mut()
            .map(std::mem::take)
            .collect())
    }
}

/// One window of consecutive cells.
#[derive(Debug, Clone, PartialEq)]
pub struct CellWindow {
    /// Its number, from 0.
    pub index: usize,
    /// The position (in [`MatrixStream::cells`]) of its first cell.
    pub first_cell: usize,
    /// Per cell, its non-zero (gene, value) pairs, values normalised as the stream says.
    pub rows: Vec<CellRow>,
}

/// A matrix read window by window (cells × genes).
pub struct MatrixStream {
    /// Gene names (columns): symbols, or Ensembl ids for a 10x v3 features file.
    pub genes: Vec<String>,
    /// The symbol column of a 10x v3 features file, beside the ids in `genes`.
    pub gene_symbols: Option<Vec<String>>,
    /// The ids of the cells the stream yields, in order (after [`Self::keep_only`]).
    pub cells: Vec<String>,
    path: PathBuf,
    source: Box<dyn RowSource>,
    file_rows: usize,
    window: usize,
    next_row: usize,
    next_index: usize,
    yielded: usize,
    keep: Option<Vec<bool>>,
    values: Option<MatrixValues>,
    decided_from: usize,
    note: Option<String>,
    pending: Option<CellWindow>,
}

impl MatrixStream {
    /// A stream over `source`'s rows, one per cell of `cells`.
    pub(crate) fn new(
        path: &Path,
        genes: Vec<String>,
        cells: Vec<String>,
        source: Box<dyn RowSource>,
    ) -> Self {
        MatrixStream {
            genes,
            gene_symbols: None,
            file_rows: cells.len(),
            cells,
            path: path.to_path_buf(),
            source,
            window: usize::MAX,
            next_row: 0,
            next_index: 0,
            yielded: 0,
            keep: None,
            values: Some(MatrixValues::Normalized),
            decided_from: 0,
            note: None,
            pending: None,
        }
    }

    /// Records why the matrix is read whole rather than by window.
    pub(crate) fn with_note(mut self, note: Option<String>) -> Self {
        self.note = note;
        self
    }

    /// The matrix file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Why the matrix is held whole in memory despite the windows, if it is.
    pub fn note(&self) -> Option<&str> {
        self.note.as_deref()
    }

    /// Cells per window, counted in the file's rows (at least 1); call before reading.
    pub fn set_window(&mut self, cells: usize) {
        self.window = cells.max(1);
    }

    /// Cells per window, in the file's rows.
    pub fn window(&self) -> usize {
        self.window
    }

    /// How many windows the stream yields in all.
    pub fn window_count(&self) -> usize {
        self.file_rows.div_ceil(self.window).max(1)
    }

    /// What the values are: counts are log-normalised per cell as they are read; `None`
    /// decides from the first window (whole numbers are counts) and refuses a later
    /// window that contradicts it.
    pub fn set_values(&mut self, values: Option<MatrixValues>) {
        self.values = values;
    }

    /// What the values were taken to be, once the first window is read (or when set).
    pub fn values(&self) -> Option<MatrixValues> {
        self.values
    }

    /// Yields only the cells whose `keep` is true (one flag per cell of the file).
    pub fn keep_only(&mut self, keep: Vec<bool>) -> Result<()> {
        if keep.len() != self.file_rows || self.next_row > 0 {
            return Err(Error::InvalidArgument(format!(
                "{}: a cell filter needs one flag per cell ({}), before any window is read",
                self.path.display(),
                self.file_rows
            )));
        }
        let mut flags = keep.iter();
        self.cells.retain(|_| *flags.next().unwrap_or(&false));
        self.keep = Some(keep);
        Ok(())
    }

    /// Reads the first window now (so that what the values are is known), keeping it
    /// for the next [`Self::next_window`].
    pub fn peek(&mut self) -> Result<Option<&CellWindow>> {
        if self.pending.is_none() {
            self.pending = self.read_window()?;
        }
        Ok(self.pending.as_ref())
    }

    /// The next window, `None` after the last.
    pub fn next_window(&mut self) -> Result<Option<CellWindow>> {
        match self.pending.take() {
            Some(window) => Ok(Some(window)),
            None => self.read_window(),
        }
    }

    /// Every remaining cell's row, in order.
    pub fn read_all(mut self) -> Result<Vec<CellRow>> {
        let mut rows = Vec::with_capacity(self.cells.len());
        while let Some(window) = self.next_window()? {
            rows.extend(window.rows);
        }
        Ok(rows)
    }

    fn read_window(&mut self) -> Result<Option<CellWindow>> {
        if self.next_row >= self.file_rows && self.next_index > 0 {
            return Ok(None);
        }
        let count = self.window.min(self.file_rows - self.next_row);
        let mut rows = self.source.rows(self.next_row, count)?;
        if let Some(keep) = &self.keep {
            let mut flags = keep[self.next_row..self.next_row + count].iter();
            rows.retain(|_| *flags.next().unwrap_or(&false));
        }
        let window = CellWindow {
            index: self.next_index,
            first_cell: self.yielded,
            rows,
        };
        self.next_row += count;
        self.next_index += 1;
        self.yielded += window.rows.len();
        self.normalise(window).map(Some)
    }

    /// Decides (or checks) whether the values are counts, and log-normalises counts.
    fn normalise(&mut self, mut window: CellWindow) -> Result<CellWindow> {
        let whole = |w: &CellWindow| w.rows.iter().flatten().all(|&(_, x)| x.fract() == 0.0);
        match self.values {
            None => {
                self.decided_from = window.rows.len();
                self.values = Some(if whole(&window) {
                    MatrixValues::Counts
                } else {
                    MatrixValues::Normalized
                });
            }
            Some(MatrixValues::Counts) if self.decided_from > 0 && !whole(&window) => {
                return Err(self.contradiction(&window));
            }
            _ => {}
        }
        if self.values == Some(MatrixValues::Counts) {
            window.rows.iter_mut().for_each(log_normalize);
        }
        Ok(window)
    }

    /// The first value below zero in `window`, as (cell, gene, value).
    pub fn first_negative(&self, window: &CellWindow) -> Option<(&str, &str, f32)> {
        window.rows.iter().enumerate().find_map(|(c, row)| {
            let &(g, x) = row.iter().find(|(_, x)| *x < 0.0)?;
            Some((
                self.cells[window.first_cell + c].as_str(),
                self.genes[g as usize].as_str(),
                x,
            ))
        })
    }

    fn contradiction(&self, window: &CellWindow) -> Error {
        let (c, (g, x)) = window
            .rows
            .iter()
            .enumerate()
            .find_map(|(c, row)| Some((c, *row.iter().find(|(_, x)| x.fract() != 0.0)?)))
            .unwrap_or((0, (0, f32::NAN)));
        Error::bad_file(
            &self.path,
            format!(
                "the first {} cells hold only whole numbers and were read as counts, but cell \
                 {} has {x} for {}: say what the values are (counts or normalised)",
                self.decided_from,
                self.cells[window.first_cell + c],
                self.genes[g as usize]
            ),
        )
    }
}

/// Library-size normalisation to 10,000 then log1p, of one cell (for raw counts).
pub fn log_normalize(row: &mut CellRow) {
    let total: f32 = row.iter().map(|(_, v)| v).sum();
    if total > 0.0 {
        for (_, v) in row.iter_mut() {
            *v = (*v * 1e4 / total).ln_1p();
        }
    }
}
