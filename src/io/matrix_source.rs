//! Where an expression matrix is and how to read it, shared by the cell tasks and the
//! `cells` command: an AnnData `.h5ad`, a 10x MatrixMarket file with its genes and cells
//! files, or a dense CSV/TSV; counts log-normalised, normalised values taken as they are.

use super::anndata::H5ad;
use super::expression::ExpressionMatrix;
use super::matrix_market::stream_matrix_market;
use super::matrix_stream::MatrixStream;
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// What the matrix's values are (task files write `counts` or `log_normalized`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatrixValues {
    /// Raw counts: normalised to 10,000 per cell and log1p'd on reading.
    Counts,
    /// Already normalised (and usually logged): used as they are.
    #[serde(rename = "log_normalized")]
    Normalized,
}

/// An expression matrix file and what is needed to read it.
#[derive(Debug, Clone)]
pub struct MatrixSource {
    /// The `.h5ad`, the `.mtx`/`.mtx.gz`, or the dense CSV/TSV.
    pub path: PathBuf,
    /// The genes (features) file of a MatrixMarket matrix; by default the 10x one beside
    /// it (`features.tsv[.gz]` or `genes.tsv[.gz]`).
    pub genes: Option<PathBuf>,
    /// The cells (barcodes) file of a MatrixMarket matrix; by default `barcodes.tsv[.gz]`
    /// beside it.
    pub cells: Option<PathBuf>,
    /// Which matrix of an `.h5ad`: `X` (the default), `raw/X` or `layers/NAME`.
    pub h5ad_matrix: Option<String>,
    /// The `.h5ad`'s `var` column holding gene symbols, when its index holds other ids.
    pub h5ad_gene_column: Option<String>,
    /// What the values are.
    pub values: MatrixValues,
}

impl MatrixSource {
    /// A source with every option at its default.
    pub fn new(path: &Path, values: MatrixValues) -> Self {
        MatrixSource {
            path: path.to_path_buf(),
            genes: None,
            cells: None,
            h5ad_matrix: None,
            h5ad_gene_column: None,
            values,
        }
    }

    /// Whether the file is an `.h5ad`.
    pub fn is_h5ad(&self) -> bool {
        self.path.to_string_lossy().ends_with(".h5ad")
    }

    /// Whether the file is a MatrixMarket matrix.
    pub fn is_matrix_market(&self) -> bool {
        self.path.to_string_lossy().contains(".mtx")
    }

    /// Reads the matrix (cells × genes, non-zeros only), log-normalising counts.
    pub fn read(&self) -> Result<ExpressionMatrix> {
        ExpressionMatrix::read_stream(self.stream()?)
    }

    /// The matrix as a stream of cell windows (one window until
    /// [`MatrixStream::set_window`]), its values taken as `values` says.
    pub fn stream(&self) -> Result<MatrixStream> {
        let mut stream = if self.is_h5ad() {
            H5ad::open(&self.path)?.stream(
                self.h5ad_matrix.as_deref().unwrap_or("X"),
                self.h5ad_gene_column.as_deref(),
            )?
        } else if self.is_matrix_market() {
            let genes = self.beside(&self.genes, &["features.tsv", "genes.tsv"])?;
            let cells = self.beside(&self.cells, &["barcodes.tsv"])?;
            stream_matrix_market(&self.path, &genes, &cells)?
        } else {
            ExpressionMatrix::stream_dense(&self.path)?
        };
        stream.set_values(Some(self.values));
        Ok(stream)
    }

    /// The given file, or the first 10x-named one (plain or gzipped) in the matrix's
    /// folder.
    fn beside(&self, given: &Option<PathBuf>, names: &[&str]) -> Result<PathBuf> {
        if let Some(path) = given {
            return Ok(path.clone());
        }
        let folder = crate::fsutil::parent_dir(&self.path);
        names
            .iter()
            .flat_map(|n| [folder.join(n), folder.join(format!("{n}.gz"))])
            .find(|p| p.is_file())
            .ok_or_else(|| {
                Error::bad_file(
                    &self.path,
                    format!(
                        "a MatrixMarket matrix needs its {} file: none of {} (plain or .gz) \
                         is beside it; name it",
                        names[0].trim_end_matches(".tsv"),
                        names.join(", ")
                    ),
                )
            })
    }
}
