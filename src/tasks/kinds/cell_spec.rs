//! The settings of a cell-typing task (`[cell_types]`): the matrix and its labels, how
//! cells become vectors, and which classifier reads them.

use crate::io::MatrixValues;
use crate::tasks::defaults::{default_folds, default_k, default_seed};
use std::path::PathBuf;

/// How a cell becomes a vector (GenePT's two ways).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CellEmbedding {
    /// GenePT-w: expression-weighted mean of the gene vectors, normalised.
    Weighted,
    /// GenePT-s: the store's text encoder embeds a "cell sentence" of the top genes.
    Sentence,
}

/// Which classifier reads the cell vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CellClassifier {
    /// Multinomial logistic regression on standardised vectors.
    Logistic,
    /// k nearest training cells by cosine, similarity-weighted vote.
    Knn,
}

/// A cell-typing task.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CellTypeSpec {
    /// `.mtx`/`.mtx.gz` (genes × cells, with `genes` and `cells`), an AnnData `.h5ad`,
    /// or a dense CSV/TSV of cells × genes.
    pub matrix: PathBuf,
    /// Which matrix of an `.h5ad`: `X` (the default), `raw/X` or `layers/NAME`.
    pub h5ad_matrix: Option<String>,
    /// The `.h5ad`'s `var` column holding gene symbols, when its index holds other ids
    /// (CELLxGENE files: `feature_name`); default the index.
    pub h5ad_gene_column: Option<String>,
    /// Gene names, one per matrix row (MatrixMarket only).
    pub genes: Option<PathBuf>,
    /// Cell ids, one per matrix column (MatrixMarket only).
    pub cells: Option<PathBuf>,
    /// Counts or log-normalised values.
    pub values: MatrixValues,
    /// CSV with one row per cell; for an `.h5ad`, leave it out to use the file's own
    /// `obs` table.
    pub metadata: Option<PathBuf>,
    /// Metadata column with the cell id (with `metadata`).
    pub cell_column: Option<String>,
    /// Metadata column with the cell type.
    pub label_column: String,
    /// Metadata column that splits train from test (with `train_value`, `test_value`);
    /// without it, stratified k-fold cross-validation.
    pub split_column: Option<String>,
    /// Training cells have this value in `split_column`.
    pub train_value: Option<String>,
    /// Test cells have this value.
    pub test_value: Option<String>,
    /// Folds when there is no split column.
    #[serde(default = "default_folds")]
    pub folds: usize,
    /// GenePT-w or GenePT-s.
    pub embedding: CellEmbedding,
    /// GenePT-w only: subtract the mean of the matrix genes' vectors first. Text
    /// embeddings share a large common direction, which the weighted mean otherwise
    /// keeps and which carries nothing about the cell.
    #[serde(default)]
    pub center_gene_vectors: bool,
    /// Embed training cells from one half of the genes and test cells from the other
    /// (halves by a seeded hash of the approved symbol; needs a train/test split). A
    /// probe can then only carry over through what the vectors know about genes:
    /// random vectors for the two halves are unrelated, so they score at chance.
    #[serde(default)]
    pub disjoint_genes: bool,
    /// Genes in a cell sentence.
    #[serde(default = "default_top_genes")]
    pub top_genes: usize,
    /// The classifier.
    pub classifier: CellClassifier,
    /// Neighbours for `knn`.
    #[serde(default = "default_k")]
    pub k: usize,
    /// Seed for folds and the bootstrap.
    #[serde(default = "default_seed")]
    pub seed: u64,
}

fn default_top_genes() -> usize {
    100
}
