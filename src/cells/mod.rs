//! Cells as vectors, the GenePT way: a cell's vector is made from the vectors of the
//! genes it expresses. GenePT-w is their expression-weighted mean; GenePT-s embeds a
//! "cell sentence" (the names of its most expressed genes) with the gene store's own
//! text encoder. Used by the `cells` command (vectors out to Parquet and AnnData) and by
//! the cell tasks of `eval`.

mod genept;
mod output;
mod windowed;

pub use genept::{cell_sentence, mean_vector, weighted_vector};
pub use output::{write_cells_parquet, CellColumns, CELLS_METADATA_KEY};
pub use windowed::{make_cells_windowed, work_dir_for_cells, CellJob, WindowedCells};

use crate::embed::{embed_resumable, Embeddings, TextEncoder};
use crate::error::{Error, Result};
use crate::genes::SymbolMapper;
use crate::io::CellRow;
use crate::store::GeneStore;
use rayon::prelude::*;
use std::path::Path;

/// How a cell vector is made from gene vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CellMethod {
    /// GenePT-w: expression-weighted mean of the gene vectors.
    Weighted,
    /// GenePT-s: the store's encoder on the cell's top genes written as a sentence.
    Sentence,
}

impl CellMethod {
    /// The column name in tables (`genept_w`, `genept_s`).
    pub fn name(self) -> &'static str {
        match self {
            CellMethod::Weighted => "genept_w",
            CellMethod::Sentence => "genept_s",
        }
    }

    /// The method whose [`name`](Self::name) this is.
    pub fn from_name(name: &str) -> Option<Self> {
        [CellMethod::Weighted, CellMethod::Sentence]
            .into_iter()
            .find(|m| m.name() == name)
    }

    /// The AnnData `obsm` key scanpy users look for (`X_genept_w`, `X_genept_s`).
    pub fn obsm_key(self) -> String {
        format!("X_{}", self.name())
    }
}

/// One method's vectors for every cell of a matrix, in row order.
#[derive(Debug, Clone)]
pub struct CellVectors {
    /// How they were made.
    pub method: CellMethod,
    /// Their length.
    pub dim: usize,
    /// One per cell; `None` for a cell that expresses no gene the store has.
    pub rows: Vec<Option<Vec<f32>>>,
}

impl CellVectors {
    /// The vectors as a `cells × dim` row-major matrix, zeros for cells without one
    /// (AnnData's obsm cannot hold a missing row; Parquet keeps them under its nulls).
    pub fn dense(&self) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.rows.len() * self.dim);
        for row in &self.rows {
            match row {
                Some(v) => out.extend_from_slice(v),
                None => out.extend(std::iter::repeat_n(0.0, self.dim)),
            }
        }
        out
    }
}

/// The approved symbol of each matrix gene: by its name (symbol or Ensembl id), else by
/// the 10x features file's symbol column (`symbols`); `None` for a name HGNC does not
/// know or finds ambiguous.
pub fn approved_genes(
    names: &[String],
    symbols: Option<&[String]>,
    mapper: &mut SymbolMapper,
) -> Vec<Option<String>> {
    (0..names.len())
        .map(|i| {
            mapper
                .approved(&names[i])
                .or_else(|| mapper.approved(symbols?.get(i)?))
        })
        .collect()
}

/// A matrix's genes as a gene store sees them.
pub struct StoreGenes<'a> {
    /// Per matrix gene, its approved symbol when the store has a vector for it (the
    /// words of GenePT-s sentences).
    pub symbols: Vec<Option<String>>,
    /// Per matrix gene, the store's vector.
    pub vectors: Vec<Option<&'a [f32]>>,
    /// Matrix genes HGNC does not resolve.
    pub unresolved: Vec<String>,
    /// Approved symbols of the matrix genes the store has no vector for.
    pub not_in_store: Vec<String>,
}

impl<'a> StoreGenes<'a> {
    /// Resolves a matrix's genes (`names`, and a 10x features file's `symbols`) and
    /// finds their vectors in `store`.
    pub fn of(
        names: &[String],
        symbols: Option<&[String]>,
        store: &'a GeneStore,
        mapper: &mut SymbolMapper,
    ) -> Self {
        let approved = approved_genes(names, symbols, mapper);
        let mut genes = StoreGenes {
            symbols: Vec::with_capacity(approved.len()),
            vectors: Vec::with_capacity(approved.len()),
            unresolved: Vec::new(),
            not_in_store: Vec::new(),
        };
        for (name, symbol) in names.iter().zip(approved) {
            let row = symbol.as_deref().and_then(|s| store.row_of(s));
            match (&symbol, row) {
                (None, _) => genes.unresolved.push(name.clone()),
                (Some(symbol), None) => genes.not_in_store.push(symbol.clone()),
                _ => {}
            }
            genes.vectors.push(row.map(|r| store.vector(r)));
            genes.symbols.push(symbol.filter(|_| row.is_some()));
        }
        genes
    }

    /// How many matrix genes have a vector.
    pub fn known(&self) -> usize {
        self.vectors.iter().flatten().count()
    }
}

/// Settings of the two recipes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CellSettings {
    /// GenePT-s: genes named per cell sentence.
    pub top_genes: usize,
    /// GenePT-w: subtract the mean gene vector first.
    pub center_gene_vectors: bool,
}

impl Default for CellSettings {
    fn default() -> Self {
        CellSettings {
            top_genes: 100,
            center_gene_vectors: false,
        }
    }
}

/// Every cell's GenePT-w vector, in row order; `None` for a cell that expresses no gene
/// the store has.
pub fn weighted_cells(
    rows: &[CellRow],
    genes: &StoreGenes,
    dim: usize,
    settings: CellSettings,
) -> Vec<Option<Vec<f32>>> {
    let centre = if settings.center_gene_vectors {
        mean_vector(&genes.vectors, dim)
    } else {
        vec![0.0; dim]
    };
    // Each cell is its own sum: the same result on any number of threads.
    rows.par_iter()
        .map(|row| weighted_vector(row, &genes.vectors, &centre, |_| true))
        .collect()
}

/// Every cell's GenePT-s sentence, in row order; `None` for a cell that expresses no
/// gene the store has.
pub fn cell_sentences(
    rows: &[CellRow],
    genes: &StoreGenes,
    settings: CellSettings,
) -> Result<Vec<Option<String>>> {
    if settings.top_genes == 0 {
        return Err(Error::InvalidArgument(
            "a cell sentence needs at least one gene (top genes must be >= 1)".into(),
        ));
    }
    Ok(rows
        .iter()
        .map(|row| cell_sentence(row, &genes.symbols, settings.top_genes, |_| true))
        .collect())
}

/// The GenePT-s vectors of `sentences` through `encoder`, `None` where a cell has no
/// sentence. Finished chunks are saved in `work_dir`, so a killed run resumes (the
/// caller removes it once the output is written; [`crate::embed::work_dir_for`] names
/// one that changes with the texts and the encoder).
pub fn sentence_vectors(
    sentences: &[Option<String>],
    encoder: &dyn TextEncoder,
    work_dir: &Path,
) -> Result<Vec<Option<Vec<f32>>>> {
    let texts: Vec<&str> = sentences.iter().flatten().map(String::as_str).collect();
    Ok(beside_sentences(
        sentences,
        &embed_resumable(encoder, &texts, work_dir)?,
    ))
}

/// The rows of `embedded` (one per sentence there is) placed beside `sentences`.
fn beside_sentences(sentences: &[Option<String>], embedded: &Embeddings) -> Vec<Option<Vec<f32>>> {
    let mut next = 0;
    sentences
        .iter()
        .map(|s| {
            s.as_ref().map(|_| {
                next += 1;
                embedded.row(next - 1).to_vec()
            })
        })
        .collect()
}

/// One recipe's vectors for every cell of `rows`. GenePT-w needs only the gene vectors;
/// GenePT-s needs the store's text encoder (and advances `bar` by one per sentence it
/// embeds). For a whole matrix with saving and resuming, see [`make_cells_windowed`].
pub fn make_cell_vectors(
    rows: &[CellRow],
    genes: &StoreGenes,
    gene_dim: usize,
    method: CellMethod,
    settings: CellSettings,
    encoder: Option<&dyn TextEncoder>,
    bar: Option<&indicatif::ProgressBar>,
) -> Result<CellVectors> {
    let (dim, rows) = match (method, encoder) {
        (CellMethod::Weighted, _) => (gene_dim, weighted_cells(rows, genes, gene_dim, settings)),
        (CellMethod::Sentence, Some(encoder)) => {
            let sentences = cell_sentences(rows, genes, settings)?;
            let texts: Vec<&str> = sentences.iter().flatten().map(String::as_str).collect();
            let embedded = encoder.embed_documents(&texts, bar)?;
            (encoder.dim(), beside_sentences(&sentences, &embedded))
        }
        (CellMethod::Sentence, None) => return Err(missing_encoder()),
    };
    Ok(CellVectors { method, dim, rows })
}

/// The error for GenePT-s asked for without the gene store's text encoder.
fn missing_encoder() -> Error {
    Error::InvalidArgument("GenePT-s cell vectors need the gene store's text encoder".into())
}
