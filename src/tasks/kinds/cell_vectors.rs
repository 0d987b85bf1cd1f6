//! GenePT cell vectors from gene vectors: the expression-weighted mean of a cell's gene
//! vectors (GenePT-w), or the store's text encoder on a "cell sentence" of its top
//! genes (GenePT-s). Computed once per run for every task that embeds the same cells.

use super::cell_labels::LabelledCell;
use super::cell_spec::{CellClassifier, CellEmbedding, CellTypeSpec};
use crate::cells::{approved_genes, cell_sentence, mean_vector, weighted_vector};
use crate::embed::TextEncoder;
use crate::error::{Error, Result};
use crate::io::ExpressionMatrix;
use crate::tasks::task::TaskContext;
use crate::tasks::task::{RunState, StoreView};
use crate::tasks::vectors::{GeneVectors, SymbolMapper};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// What decides a task's cell vectors: the settings that choose and embed the cells
/// (every cell setting but the classifier, its k and the folds), the folder the task's
/// paths are relative to, and the store.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct CellKey {
    base: PathBuf,
    spec: CellTypeSpec,
    store: String,
}

/// One vector per cell (`None` for a cell with no known gene), shared between tasks.
pub(crate) type SharedCellVectors = Arc<Vec<Option<Vec<f32>>>>;

/// Cell vectors already computed in this run.
pub(crate) type CellEmbeddingCache = HashMap<CellKey, SharedCellVectors>;

/// A task's expression matrix with its genes resolved.
pub(crate) struct CellInputs {
    /// The (log-normalised) matrix.
    pub(crate) matrix: ExpressionMatrix,
    /// The approved symbol of each matrix gene.
    approved: Vec<Option<String>>,
    /// The same names moved to other genes by a seeded permutation: the sentences a
    /// store without a text encoder (the random floor) is scored on.
    permuted: Vec<Option<String>>,
}

impl CellInputs {
    /// Resolves the matrix's genes; `seed` draws the permutation.
    pub(crate) fn new(matrix: ExpressionMatrix, mapper: &mut SymbolMapper, seed: u64) -> Self {
        let approved = approved_genes(&matrix.genes, matrix.gene_symbols.as_deref(), mapper);
        let permuted = permuted_names(&approved, seed);
        CellInputs {
            matrix,
            approved,
            permuted,
        }
    }

    /// Matrix genes the store has a vector for.
    pub(crate) fn known_genes(&self, vectors: &GeneVectors) -> usize {
        self.approved
            .iter()
            .filter(|g| g.as_ref().and_then(|g| vectors.get(g)).is_some())
            .count()
    }

    /// Whether the cell at `row` expresses a gene the store itself has.
    pub(crate) fn expresses_gene_of(&self, row: usize, vectors: &GeneVectors) -> bool {
        self.matrix.values[row].iter().any(|&(g, x)| {
            x > 0.0
                && self.approved[g as usize]
                    .as_deref()
                    .is_some_and(|s| vectors.covers(s))
        })
    }
}

/// The cell vectors of `cells` for the store, from the run's cache when another task
/// embedded the same cells; `None` when the task needs a text encoder and no store of
/// the run has one.
pub(crate) fn embedded_cells(
    spec: &CellTypeSpec,
    task: &TaskContext,
    inputs: &CellInputs,
    cells: &[LabelledCell],
    store: StoreView,
    state: &mut RunState,
) -> Result<Option<SharedCellVectors>> {
    let vectors = store.vectors;
    // GenePT-s needs a text encoder. A store without one (the random floor) is scored on
    // the same sentences with every gene name swapped for another by a fixed
    // permutation, read by the first store's encoder: the text analogue of random gene
    // vectors, which keeps which genes a cell expresses and drops what the names mean.
    let sentences = spec.embedding == CellEmbedding::Sentence;
    let encoder = vectors
        .encoder()
        .or_else(|| store.all.iter().find_map(|v| v.encoder()));
    if sentences && encoder.is_none() {
        return Ok(None);
    }
    let words = if sentences && vectors.encoder().is_none() {
        &inputs.permuted
    } else {
        &inputs.approved
    };
    if inputs.known_genes(vectors) == 0 {
        return Err(Error::InvalidArgument(format!(
            "none of the matrix's {} genes is in the store (are the gene names symbols? for an .h5ad whose var index holds Ensembl ids, name its symbol column with h5ad_gene_column)",
            inputs.matrix.genes.len()
        )));
    }
    let mut shared = spec.clone();
    (shared.classifier, shared.k, shared.folds) = (CellClassifier::Logistic, 0, 0);
    let key = CellKey {
        base: task.base.to_path_buf(),
        spec: shared,
        store: vectors.name.clone(),
    };
    let cache = state.get::<CellEmbeddingCache>();
    if let Some(hit) = cache.get(&key) {
        return Ok(Some(hit.clone()));
    }
    let embedded = Arc::new(embed_cells(spec, inputs, words, cells, vectors, encoder)?);
    cache.insert(key, embedded.clone());
    Ok(Some(embedded))
}

/// Where cell-sentence vectors are kept between runs: `$BFTEMBED_HOME/cache/cell-sentences`
/// (safe to delete; each folder is named by a hash of bftembed's version, the encoder and
/// the sentences).
fn sentence_cache_root() -> Result<PathBuf> {
    Ok(crate::models::bftembed_home()?
        .join("cache")
        .join("cell-sentences"))
}

/// Approved symbols moved to other genes by a seeded permutation (each name used once).
fn permuted_names(approved: &[Option<String>], seed: u64) -> Vec<Option<String>> {
    let named: Vec<usize> = (0..approved.len())
        .filter(|&i| approved[i].is_some())
        .collect();
    let mut order = named.clone();
    crate::tasks::resample::shuffle(&mut order, seed ^ 0x5e17);
    let mut out = vec![None; approved.len()];
    for (&to, &from) in named.iter().zip(&order) {
        out[to] = approved[from].clone();
    }
    out
}

/// One unit vector per cell (GenePT-w from `vectors`, or GenePT-s: the cell's top genes
/// by expression, written as `words`, through `encoder`), `None` for a cell with no
/// known gene.
fn embed_cells(
    spec: &CellTypeSpec,
    inputs: &CellInputs,
    words: &[Option<String>],
    cells: &[LabelledCell],
    vectors: &GeneVectors,
    encoder: Option<&dyn TextEncoder>,
) -> Result<Vec<Option<Vec<f32>>>> {
    let approved = &inputs.approved;
    // With disjoint genes, training cells see only half 0 and test cells only half 1.
    let half: Vec<u64> = approved
        .iter()
        .map(|g| {
            // A high bit: FNV-1a's lowest bit is only the parity of the bytes.
            g.as_ref().map_or(2, |g| {
                crate::fsutil::fnv1a(format!("{}:{g}", spec.seed).as_bytes()) >> 40 & 1
            })
        })
        .collect();
    let uses = |cell: &LabelledCell, gene: u32| -> bool {
        match (spec.disjoint_genes, cell.train) {
            (true, Some(train)) => half[gene as usize] == u64::from(!train),
            _ => true,
        }
    };
    match spec.embedding {
        CellEmbedding::Weighted => Ok(weighted(spec, inputs, cells, vectors, uses)),
        CellEmbedding::Sentence => {
            let encoder = encoder.ok_or_else(|| {
                Error::InvalidArgument("no text encoder for cell sentences".into())
            })?;
            let sentences: Vec<Option<String>> = cells
                .iter()
                .map(|c| {
                    let row = &inputs.matrix.values[c.row];
                    cell_sentence(row, words, spec.top_genes, |g| {
                        approved[g as usize].is_some() && uses(c, g)
                    })
                })
                .collect();
            let texts: Vec<&str> = sentences.iter().flatten().map(String::as_str).collect();
            // Kept between runs: the same cells, words and encoder give the same vectors,
            // and embedding cell sentences is most of what eval costs.
            let cache = crate::embed::cache_dir_for(&sentence_cache_root()?, encoder, &texts);
            crate::cells::sentence_vectors(&sentences, encoder, &cache)
        }
    }
}

/// GenePT-w: each cell's expression-weighted mean of the (optionally centred) vectors of
/// the genes it uses, normalised.
fn weighted(
    spec: &CellTypeSpec,
    inputs: &CellInputs,
    cells: &[LabelledCell],
    vectors: &GeneVectors,
    uses: impl Fn(&LabelledCell, u32) -> bool,
) -> Vec<Option<Vec<f32>>> {
    let d = vectors.dim();
    let gene_vector: Vec<Option<&[f32]>> = inputs
        .approved
        .iter()
        .map(|g| g.as_ref().and_then(|g| vectors.get(g)))
        .collect();
    let centre = if spec.center_gene_vectors {
        mean_vector(&gene_vector, d)
    } else {
        vec![0f32; d]
    };
    cells
        .iter()
        .map(|c| {
            let row = &inputs.matrix.values[c.row];
            weighted_vector(row, &gene_vector, &centre, |g| uses(c, g))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::permuted_names;

    #[test]
    fn permuted_names_use_every_name_once_and_keep_unnamed_genes() {
        let approved: Vec<Option<String>> = ["CD3E", "", "MS4A1", "LYZ", "NKG7", "", "GNLY"]
            .iter()
            .map(|s| (!s.is_empty()).then(|| s.to_string()))
            .collect();
        let permuted = permuted_names(&approved, 7);
        assert_eq!(permuted, permuted_names(&approved, 7), "seeded");
        assert_eq!((permuted[1].clone(), permuted[5].clone()), (None, None));
        let mut before: Vec<_> = approved.iter().flatten().collect();
        let mut after: Vec<_> = permuted.iter().flatten().collect();
        before.sort();
        after.sort();
        assert_eq!(before, after);
        assert_ne!(permuted, approved);
    }
}
