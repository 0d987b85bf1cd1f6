//! Cell vectors for matrices of any size: the matrix is read a window of cells at a
//! time, and each window's vectors are saved in a work folder as soon as they are made,
//! so memory holds one window of expression values and a killed run resumes at the
//! first window it had not saved. The outputs are then written from the saved windows
//! (Parquet one window at a time; an `.h5ad` copy or a cell store from all of them).

use super::{
    make_cell_vectors, missing_encoder, CellMethod, CellSettings, CellVectors, StoreGenes,
};
use crate::embed::TextEncoder;
use crate::error::{Error, Result};
use crate::io::{CellWindow, MatrixStream};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The first bytes of a saved window.
const MAGIC: &[u8; 8] = b"BFTCELL1";

/// What to make of each window.
pub struct CellJob<'a> {
    /// The matrix's genes as the gene store sees them.
    pub genes: &'a StoreGenes<'a>,
    /// The gene vectors' length.
    pub gene_dim: usize,
    /// The recipes, in output order.
    pub methods: &'a [CellMethod],
    /// Their settings.
    pub settings: CellSettings,
    /// The gene store's text encoder, needed by GenePT-s.
    pub encoder: Option<&'a dyn TextEncoder>,
}

/// The saved vectors of every window of a run.
pub struct WindowedCells {
    dir: PathBuf,
    methods: Vec<(CellMethod, usize)>,
    window_cells: Vec<usize>,
    missing: Vec<Vec<usize>>,
    resumed: usize,
}

/// A work folder beside `output` for the windows of one run, named by a hash of
/// `recipe` (everything that decides the vectors, in the caller's words) and of the
/// matrix file's path, size and modification time, so that only the same run on the
/// same file resumes from it.
pub fn work_dir_for_cells(output: &Path, matrix: &Path, recipe: &[String]) -> Result<PathBuf> {
    let meta = std::fs::metadata(matrix).map_err(|e| Error::io(matrix, e))?;
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let absolute = std::fs::canonicalize(matrix).map_err(|e| Error::io(matrix, e))?;
    let mut h = Sha256::new();
    let identity = [
        env!("CARGO_PKG_VERSION").to_string(),
        absolute.display().to_string(),
        meta.len().to_string(),
        modified.to_string(),
    ];
    for part in identity.iter().chain(recipe) {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    Ok(crate::fsutil::job_sibling(output, "cells", h, ""))
}

/// Makes every window's vectors, saving each in `work_dir` and reusing the windows an
/// interrupted run saved there. The caller removes `work_dir` (with
/// [`WindowedCells::remove`]) once its outputs are written.
pub fn make_cells_windowed(
    stream: &mut MatrixStream,
    job: &CellJob,
    work_dir: &Path,
) -> Result<WindowedCells> {
    let dims = job
        .methods
        .iter()
        .map(|&m| match (m, job.encoder) {
            (CellMethod::Weighted, _) => Ok((m, job.gene_dim)),
            (CellMethod::Sentence, Some(encoder)) => Ok((m, encoder.dim())),
            (CellMethod::Sentence, None) => Err(missing_encoder()),
        })
        .collect::<Result<Vec<_>>>()?;
    let mut cells = WindowedCells {
        dir: work_dir.to_path_buf(),
        methods: dims,
        window_cells: Vec::new(),
        missing: vec![Vec::new(); job.methods.len()],
        resumed: 0,
    };
    let bar = crate::progress::items_bar(stream.cells.len() as u64, "cell vectors", "cells");
    while let Some(window) = stream.next_window()? {
        if let Some((cell, gene, x)) = stream.first_negative(&window) {
            return Err(Error::bad_file(
                stream.path(),
                format!(
                    "cell {cell} has {x} for {gene}: the values are scaled or centred, and \
                     GenePT weighs genes by expression; use counts or log-normalised values \
                     (for a scanpy file, often raw/X or a layer)"
                ),
            ));
        }
        let made = match cells.saved(window.index, window.rows.len()) {
            Some(saved) => {
                cells.resumed += 1;
                saved
            }
            None => cells.make(&window, job, &bar)?,
        };
        for (m, vectors) in made.iter().enumerate() {
            let missing = vectors.rows.iter().enumerate().filter(|(_, v)| v.is_none());
            cells.missing[m].extend(missing.map(|(i, _)| window.first_cell + i));
        }
        cells.window_cells.push(window.rows.len());
        // A GenePT-s window moved the bar sentence by sentence; a cell without a
        // sentence, or a window read back, did not.
        bar.set_position((window.first_cell + window.rows.len()) as u64);
    }
    bar.finish_and_clear();
    Ok(cells)
}

impl WindowedCells {
    /// The recipes and their vectors' lengths, in output order.
    pub fn methods(&self) -> &[(CellMethod, usize)] {
        &self.methods
    }

    /// How many windows there are.
    pub fn window_count(&self) -> usize {
        self.window_cells.len()
    }

    /// How many windows an earlier run had saved.
    pub fn resumed(&self) -> usize {
        self.resumed
    }

    /// How many cells there are in all.
    pub fn cell_count(&self) -> usize {
        self.window_cells.iter().sum()
    }

    /// The positions of the cells a recipe made no vector for (no gene of the store).
    pub fn missing(&self, method: CellMethod) -> &[usize] {
        let m = self.methods.iter().position(|(x, _)| *x == method);
        m.map_or(&[], |m| &self.missing[m])
    }

    /// One window's vectors, one entry per recipe.
    pub fn window(&self, index: usize) -> Result<Vec<CellVectors>> {
        let cells = *self
            .window_cells
            .get(index)
            .ok_or_else(|| Error::InvalidArgument(format!("there is no cell window {index}")))?;
        self.saved(index, cells)
            .ok_or_else(|| self.missing_window(index, self.methods[0].0))
    }

    /// Every cell's vectors of one recipe, in order.
    pub fn all(&self, method: CellMethod) -> Result<CellVectors> {
        let m = self
            .methods
            .iter()
            .position(|(x, _)| *x == method)
            .ok_or_else(|| Error::InvalidArgument(format!("no {} vectors", method.name())))?;
        let dim = self.methods[m].1;
        let mut rows = Vec::with_capacity(self.cell_count());
        for (index, &cells) in self.window_cells.iter().enumerate() {
            let saved = self
                .saved_one(index, cells, method, dim)
                .ok_or_else(|| self.missing_window(index, method))?;
            rows.extend(saved.rows);
        }
        Ok(CellVectors { method, dim, rows })
    }

    /// Removes the work folder (once the outputs are safely written).
    pub fn remove(self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    fn window_path(&self, index: usize, method: CellMethod) -> PathBuf {
        self.dir
            .join(format!("window-{index:06}.{}.bin", method.name()))
    }

    /// Makes one window's vectors and saves them, each recipe's file atomically.
    fn make(
        &self,
        window: &CellWindow,
        job: &CellJob,
        bar: &indicatif::ProgressBar,
    ) -> Result<Vec<CellVectors>> {
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        let mut made = Vec::with_capacity(self.methods.len());
        for &(method, _) in &self.methods {
            let vectors = make_cell_vectors(
                &window.rows,
                job.genes,
                job.gene_dim,
                method,
                job.settings,
                job.encoder,
                Some(bar),
            )?;
            let path = self.window_path(window.index, method);
            crate::fsutil::atomic_write_bytes(&path, &encode(&vectors))?;
            made.push(vectors);
        }
        Ok(made)
    }

    /// A window's saved vectors, when every recipe's file is there whole.
    fn saved(&self, index: usize, cells: usize) -> Option<Vec<CellVectors>> {
        self.methods
            .iter()
            .map(|&(method, dim)| self.saved_one(index, cells, method, dim))
            .collect()
    }

    fn missing_window(&self, index: usize, method: CellMethod) -> Error {
        Error::bad_file(
            self.window_path(index, method),
            "a saved window is missing or damaged",
        )
    }

    /// One recipe's saved vectors of a window, when its file is there whole.
    fn saved_one(
        &self,
        index: usize,
        cells: usize,
        method: CellMethod,
        dim: usize,
    ) -> Option<CellVectors> {
        let bytes = std::fs::read(self.window_path(index, method)).ok()?;
        decode(&bytes, method, cells, dim)
    }
}

/// A window's vectors of one recipe as bytes: the magic, cells and length (u64 each),
/// one byte per cell (1 when it has a vector), then every vector (zeros where none),
/// little-endian f32.
fn encode(vectors: &CellVectors) -> Vec<u8> {
    let cells = vectors.rows.len();
    let mut bytes = Vec::with_capacity(24 + cells * (1 + 4 * vectors.dim));
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&(cells as u64).to_le_bytes());
    bytes.extend_from_slice(&(vectors.dim as u64).to_le_bytes());
    bytes.extend(vectors.rows.iter().map(|r| u8::from(r.is_some())));
    bytes.extend(vectors.dense().iter().flat_map(|x| x.to_le_bytes()));
    bytes
}

/// The vectors [`encode`] wrote, when the bytes are whole and of the expected shape.
fn decode(bytes: &[u8], method: CellMethod, cells: usize, dim: usize) -> Option<CellVectors> {
    let word = |at: usize| -> Option<u64> {
        Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
    };
    if bytes.get(..8)? != MAGIC || word(8)? != cells as u64 || word(16)? != dim as u64 {
        return None;
    }
    let (flags, values) = bytes.get(24..)?.split_at_checked(cells)?;
    if values.len() != cells * dim * 4 {
        return None;
    }
    let rows = flags
        .iter()
        .zip(values.chunks_exact(4 * dim.max(1)))
        .map(|(&flag, v)| {
            (flag == 1).then(|| {
                v.chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect()
            })
        })
        .collect::<Vec<_>>();
    (rows.len() == cells || dim == 0).then_some(CellVectors { method, dim, rows })
}
