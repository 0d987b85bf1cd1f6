//! Task files (`tasks/*.toml`): what data, which split, which probe. Adding a task is
//! adding a file; a typo in a key is an error naming the key and its line.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// One evaluation task as written in its file.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// Short identifier used in reports.
    pub id: String,
    /// One line a reader understands.
    pub title: String,
    /// Gene-pair classification (interaction or not).
    pub gene_pairs: Option<GenePairSpec>,
    /// Gene classification into two classes.
    pub gene_classes: Option<GeneClassSpec>,
    /// Gene classification into several named classes.
    pub gene_families: Option<GeneFamilySpec>,
    /// Cell typing from cell embeddings built from gene vectors.
    pub cell_types: Option<CellTypeSpec>,
    /// Predicting a genetic perturbation's response signature from its target gene.
    pub perturbations: Option<PerturbationSpec>,
    /// Predicting each gene's expression response to a stimulus from its vector.
    pub expression_response: Option<ExpressionResponseSpec>,
    /// The probe's settings.
    #[serde(default)]
    pub probe: ProbeSpec,
    /// The folder the task file is in; relative data paths start here.
    #[serde(skip)]
    pub base: PathBuf,
}

/// How gene pairs are split into training and test sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PairSplit {
    /// The files' own train and test sets.
    Given,
    /// All pairs pooled; a random fraction of genes is held out, test pairs use only
    /// held-out genes and training pairs none of them.
    GeneDisjoint,
}

/// A gene-pair task: two files of "GENE_A GENE_B" lines and two of 0/1 labels.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenePairSpec {
    /// Training pairs.
    pub train_pairs: PathBuf,
    /// Training labels, line by line.
    pub train_labels: PathBuf,
    /// Test pairs.
    pub test_pairs: PathBuf,
    /// Test labels.
    pub test_labels: PathBuf,
    /// The split.
    pub split: PairSplit,
    /// For `gene_disjoint`: the fraction of genes held out.
    #[serde(default = "default_held_out")]
    pub held_out_genes: f64,
    /// Training pairs used at most (a seeded random subset), to bound time and memory.
    pub max_train_pairs: Option<usize>,
    /// Seed for subsets and splits.
    #[serde(default = "default_seed")]
    pub seed: u64,
}

/// A two-class gene task from a CSV file, scored by stratified k-fold cross-validation.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneClassSpec {
    /// The CSV file (optionally gzipped).
    pub labels: PathBuf,
    /// Column holding gene symbols.
    pub symbol_column: String,
    /// Column deciding the class.
    pub label_column: String,
    /// Value of `label_column` that marks the positive class; any other is negative.
    pub positive_value: String,
    /// Name of the positive class, for reports.
    pub positive_name: String,
    /// Name of the negative class.
    pub negative_name: String,
    /// Number of folds.
    #[serde(default = "default_folds")]
    pub folds: usize,
    /// Seed for the folds.
    #[serde(default = "default_seed")]
    pub seed: u64,
}

/// A multi-class gene task: genes labelled by a class column, restricted to the listed
/// classes; a gene in more than one of them is left out. Stratified k-fold CV.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneFamilySpec {
    /// CSV or TSV (by extension, gzip allowed).
    pub labels: PathBuf,
    /// Column holding gene symbols.
    pub symbol_column: String,
    /// Column holding the class.
    pub class_column: String,
    /// The classes to tell apart.
    pub classes: Vec<String>,
    /// Names shown in reports for `classes`, in the same order (for classes stored as
    /// ids, such as GO terms).
    pub class_names: Option<Vec<String>>,
    /// Number of folds.
    #[serde(default = "default_folds")]
    pub folds: usize,
    /// Seed for the folds and the bootstrap.
    #[serde(default = "default_seed")]
    pub seed: u64,
}

/// What the expression values are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpressionValues {
    /// Raw counts: normalised to 10,000 per cell and log1p-transformed first.
    Counts,
    /// Already log-normalised.
    LogNormalized,
}

/// How a cell becomes a vector (GenePT's two ways).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CellEmbedding {
    /// GenePT-w: expression-weighted mean of the gene vectors, normalised.
    Weighted,
    /// GenePT-s: the store's text encoder embeds a "cell sentence" of the top genes.
    Sentence,
}

/// Which classifier reads the cell vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CellClassifier {
    /// Multinomial logistic regression on standardised vectors.
    Logistic,
    /// k nearest training cells by cosine, similarity-weighted vote.
    Knn,
}

/// A cell-typing task.
#[derive(Debug, Clone, serde::Deserialize)]
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
    pub values: ExpressionValues,
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
fn default_k() -> usize {
    10
}

/// A perturbation-response task: GMT files whose sets are named by the perturbed gene
/// and hold its response signature.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerturbationSpec {
    /// Signatures to learn from (and to cross-validate on when `test` is absent).
    pub train: PathBuf,
    /// Signatures to predict, for example from another cell line.
    pub test: Option<PathBuf>,
    /// Folds over perturbations when there is no `test` file.
    #[serde(default = "default_folds")]
    pub folds: usize,
    /// Training perturbations whose signatures vote for a held-out one.
    #[serde(default = "default_k")]
    pub neighbors: usize,
    /// Seed for the folds and the bootstrap.
    #[serde(default = "default_seed")]
    pub seed: u64,
}

/// A stimulus-response task on pseudo-bulk expression: genes × columns named
/// `<cell type>|<condition>`; the response of a gene in a cell type is treated minus
/// control. Ridge regression from the gene vector, cross-validated over genes.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpressionResponseSpec {
    /// The pseudo-bulk table (TSV, first column the gene).
    pub table: PathBuf,
    /// Cells behind each column (TSV: `<cell type>|<condition>`, count), to drop
    /// cell types with too few cells.
    pub sizes: Option<PathBuf>,
    /// The control condition's name.
    pub control: String,
    /// The treated condition's name.
    pub treated: String,
    /// Cell types need at least this many cells in both conditions.
    #[serde(default)]
    pub min_cells: usize,
    /// Genes need at least this mean expression in some column.
    #[serde(default)]
    pub min_expression: f64,
    /// Folds over genes.
    #[serde(default = "default_folds")]
    pub folds: usize,
    /// Ridge penalty on the standardised gene vectors.
    #[serde(default = "default_alpha")]
    pub ridge: f64,
    /// Seed for folds and the bootstrap.
    #[serde(default = "default_seed")]
    pub seed: u64,
}

/// Logistic-regression probe settings (features are standardised first).
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeSpec {
    /// L2 penalty.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// L-BFGS iterations at most.
    #[serde(default = "default_iterations")]
    pub max_iterations: u64,
}

impl Default for ProbeSpec {
    fn default() -> Self {
        ProbeSpec {
            alpha: default_alpha(),
            max_iterations: default_iterations(),
        }
    }
}

fn default_held_out() -> f64 {
    0.2
}
fn default_seed() -> u64 {
    17
}
fn default_folds() -> usize {
    5
}
fn default_alpha() -> f64 {
    1.0
}
fn default_iterations() -> u64 {
    100
}

impl GeneFamilySpec {
    /// The classes as reports show them: `class_names` when given, else the values.
    pub fn display_names(&self) -> Vec<String> {
        self.class_names
            .clone()
            .unwrap_or_else(|| self.classes.clone())
    }
}

impl TaskSpec {
    /// Reads and checks a task file.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut spec: TaskSpec =
            toml::from_str(&text).map_err(|e| Error::bad_file(path, e.to_string()))?;
        spec.base = crate::fsutil::parent_dir(path);
        super::spec_check::check_numbers(&spec, &text, path)?;
        let kinds = spec.gene_pairs.is_some() as u8
            + spec.gene_classes.is_some() as u8
            + spec.gene_families.is_some() as u8
            + spec.cell_types.is_some() as u8
            + spec.perturbations.is_some() as u8
            + spec.expression_response.is_some() as u8;
        if kinds != 1 {
            return Err(Error::bad_file(
                path,
                "a task needs exactly one of the tables [gene_pairs], [gene_classes], [gene_families], [cell_types], [perturbations] or [expression_response]",
            ));
        }
        if let Some(c) = &spec.cell_types {
            let split = [&c.split_column, &c.train_value, &c.test_value]
                .iter()
                .filter(|v| v.is_some())
                .count();
            if split != 0 && split != 3 {
                return Err(Error::bad_file(
                    path,
                    "split_column, train_value and test_value go together",
                ));
            }
            if c.disjoint_genes && split == 0 {
                return Err(Error::bad_file(
                    path,
                    "disjoint_genes needs a train/test split (split_column, train_value, test_value)",
                ));
            }
            let h5ad = c.matrix.to_string_lossy().ends_with(".h5ad");
            if (c.h5ad_matrix.is_some() || c.h5ad_gene_column.is_some()) && !h5ad {
                return Err(Error::bad_file(
                    path,
                    "h5ad_matrix and h5ad_gene_column are for an .h5ad matrix",
                ));
            }
            if c.metadata.is_none() && !h5ad {
                return Err(Error::bad_file(
                    path,
                    "cell labels need a metadata CSV (only an .h5ad carries its own obs table)",
                ));
            }
            if c.metadata.is_some() != c.cell_column.is_some() {
                return Err(Error::bad_file(
                    path,
                    "metadata and cell_column go together (the CSV and its cell id column)",
                ));
            }
            let mtx = c.matrix.to_string_lossy().contains(".mtx");
            if mtx && (c.genes.is_none() || c.cells.is_none()) {
                return Err(Error::bad_file(
                    path,
                    "a .mtx matrix needs genes and cells files",
                ));
            }
        }
        if let Some(f) = &spec.gene_families {
            if f.class_names
                .as_ref()
                .is_some_and(|n| n.len() != f.classes.len())
            {
                return Err(Error::bad_file(
                    path,
                    "class_names needs one name per entry of classes",
                ));
            }
        }
        Ok(spec)
    }

    /// Every `*.toml` task in a folder, sorted by file name; a single file is read
    /// alone.
    pub fn read_all(path: &Path) -> Result<Vec<Self>> {
        if path.is_file() {
            return Ok(vec![Self::read(path)?]);
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| Error::io(path, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("toml"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(Error::bad_file(path, "no *.toml task files here"));
        }
        files.iter().map(|f| Self::read(f)).collect()
    }

    /// A data path from the task file, relative to the file's folder.
    pub fn data_path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }
}
