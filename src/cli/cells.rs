//! `bftembed cells`: GenePT-w / GenePT-s vectors for every cell of an expression matrix,
//! to Parquet and into a copy of the `.h5ad`.

use super::default_store;
use anyhow::{bail, Context, Result};
use bftembed::cells::{
    cell_sentences, sentence_vectors, weighted_cells, write_cells_parquet, CellColumns, CellMethod,
    CellSettings, CellVectors, StoreGenes,
};
use bftembed::embed::work_dir_for;
use bftembed::genes::{GeneCatalog, SymbolMapper};
use bftembed::io::anndata_obsm::{write_obsm_copy, ObsmEntry};
use bftembed::io::{ExpressionMatrix, H5ad, MatrixSource, MatrixValues};
use bftembed::models::ModelCache;
use bftembed::store::GeneStore;
use clap::Args;
use std::path::{Path, PathBuf};

/// What the matrix's values are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ValuesArg {
    /// Decide from the values: whole numbers are counts.
    Auto,
    /// Raw counts: normalised to 10,000 per cell and log1p'd first.
    Counts,
    /// Already normalised (log1p of normalised counts): used as they are.
    Normalized,
}

/// Which GenePT vectors to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MethodArg {
    /// GenePT-w: expression-weighted mean of the gene vectors.
    W,
    /// GenePT-s: the store's encoder on each cell's top genes as a sentence.
    S,
    /// Both.
    Both,
}

#[derive(Debug, Args)]
pub struct CellsArgs {
    /// The expression matrix: an AnnData .h5ad, a 10x .mtx/.mtx.gz, or a dense CSV/TSV
    /// (cells in rows, a header of genes).
    #[arg(long)]
    matrix: PathBuf,
    /// A MatrixMarket matrix's genes/features file (default: the 10x one beside it).
    #[arg(long)]
    genes: Option<PathBuf>,
    /// A MatrixMarket matrix's barcodes file (default: barcodes.tsv[.gz] beside it).
    #[arg(long)]
    barcodes: Option<PathBuf>,
    /// Which matrix of an .h5ad: X, raw/X or layers/NAME.
    #[arg(long, default_value = "X")]
    h5ad_matrix: String,
    /// The .h5ad var column with gene symbols, when var's index holds other ids.
    #[arg(long)]
    gene_column: Option<String>,
    /// What the values are.
    #[arg(long, value_enum, default_value_t = ValuesArg::Auto)]
    values: ValuesArg,
    /// Gene store whose vectors (and, for GenePT-s, encoder) make the cell vectors
    /// (default: the one `bftembed quickstart` builds).
    #[arg(long)]
    store: Option<PathBuf>,
    /// GenePT-w, GenePT-s or both.
    #[arg(long, value_enum, default_value_t = MethodArg::W)]
    method: MethodArg,
    /// GenePT-s: genes per cell sentence.
    #[arg(long, default_value_t = CellSettings::default().top_genes)]
    top_genes: usize,
    /// GenePT-w: subtract the mean gene vector before averaging.
    #[arg(long)]
    center: bool,
    /// .h5ad obs columns to copy into the table, comma-separated.
    #[arg(long, value_delimiter = ',')]
    obs: Vec<String>,
    /// The Parquet table to write (cell, the obs columns, genept_w / genept_s).
    #[arg(long)]
    out: PathBuf,
    /// Also write a copy of the .h5ad with obsm["X_genept_w"] / obsm["X_genept_s"].
    #[arg(long)]
    h5ad_out: Option<PathBuf>,
}

pub fn run(args: CellsArgs) -> Result<()> {
    let source = matrix_source(&args);
    if !source.is_h5ad() && (args.h5ad_out.is_some() || !args.obs.is_empty()) {
        bail!("--h5ad-out and --obs need an .h5ad --matrix");
    }
    if args.h5ad_out.as_deref() == Some(args.matrix.as_path()) {
        bail!("--h5ad-out must differ from --matrix: the input is never edited");
    }
    if args.h5ad_out.is_some() {
        bftembed::io::anndata_obsm::check_obsm_writable(&args.matrix)?;
    }
    let store_path = match &args.store {
        Some(p) => p.clone(),
        None => default_store()?,
    };
    let store = GeneStore::open(&store_path)
        .with_context(|| format!("opening store {}", store_path.display()))?;
    let matrix = read_matrix(&args, &source)?;
    let obs = obs_columns(&args)?;
    let catalog = GeneCatalog::embedded()?;
    let mut mapper = SymbolMapper::new(&catalog);
    let genes = StoreGenes::of(&matrix, &store, &mut mapper);
    report_genes(&matrix, &genes, &mapper, &store_path)?;
    let settings = CellSettings {
        top_genes: args.top_genes,
        center_gene_vectors: args.center,
    };
    let (made, work) = make_vectors(&args, &matrix, &genes, &store, settings)?;
    for vectors in &made {
        report_missing(vectors, &matrix.cells);
    }
    let provenance = provenance(&args, &source, &store, settings, &matrix, &genes);
    let columns = CellColumns {
        cells: &matrix.cells,
        obs: &obs,
    };
    write_cells_parquet(&args.out, &columns, &made, &provenance)
        .with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!(
        "wrote {} cells to {}",
        matrix.cells.len(),
        args.out.display()
    );
    if let Some(copy) = &args.h5ad_out {
        write_h5ad_copy(&args.matrix, copy, &made)?;
        eprintln!("wrote {} with {}", copy.display(), obsm_keys(&made));
    }
    // The outputs are safe: the saved chunks of the sentence embedding can go.
    for work in work {
        let _ = std::fs::remove_dir_all(work);
    }
    Ok(())
}

/// The matrix file as the flags describe it; `--values auto` reads the values as they
/// are and [`read_matrix`] decides after looking at them.
fn matrix_source(args: &CellsArgs) -> MatrixSource {
    let values = match args.values {
        ValuesArg::Counts => MatrixValues::Counts,
        ValuesArg::Auto | ValuesArg::Normalized => MatrixValues::Normalized,
    };
    let mut source = MatrixSource::new(&args.matrix, values);
    source.genes = args.genes.clone();
    source.cells = args.barcodes.clone();
    source.h5ad_matrix = Some(args.h5ad_matrix.clone());
    source.h5ad_gene_column = args.gene_column.clone();
    source
}

/// The matrix, its values normalised as `--values` says (or as they look).
fn read_matrix(args: &CellsArgs, source: &MatrixSource) -> Result<ExpressionMatrix> {
    let mut matrix = source.read()?;
    if let Some((cell, gene, x)) = matrix.first_negative() {
        bail!(
            "{}: cell {cell} has {x} for {gene}: the values are scaled or centred, and GenePT \
             weighs genes by expression; use counts or log-normalised values (for a scanpy \
             file, often --h5ad-matrix raw/X or a layer)",
            args.matrix.display()
        );
    }
    if args.values == ValuesArg::Auto && matrix.looks_like_counts() {
        eprintln!("the values are whole numbers: read as counts and log-normalised (--values to say otherwise)");
        matrix.log_normalize();
    }
    Ok(matrix)
}

/// The requested obs columns of an .h5ad, each checked to exist.
fn obs_columns(args: &CellsArgs) -> Result<Vec<(String, Vec<Option<String>>)>> {
    if args.obs.is_empty() {
        return Ok(Vec::new());
    }
    let file = H5ad::open(&args.matrix)?;
    let known = file.obs_columns()?;
    args.obs
        .iter()
        .map(|name| {
            if !known.contains(name) {
                bail!(
                    "{}: obs has no column '{name}' (it has: {})",
                    args.matrix.display(),
                    known.join(", ")
                );
            }
            Ok((name.clone(), file.obs_column(name)?))
        })
        .collect()
}

/// Says how many matrix genes the store knows, and refuses a matrix it knows none of.
fn report_genes(
    matrix: &ExpressionMatrix,
    genes: &StoreGenes,
    mapper: &SymbolMapper,
    store: &Path,
) -> Result<()> {
    let examples = |names: &[String]| names.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if genes.known() == 0 {
        bail!(
            "none of the matrix's {} genes is in the store {} (are they symbols or Ensembl \
             ids? for an .h5ad whose var index holds other ids, name the symbol column with \
             --gene-column)",
            matrix.genes.len(),
            store.display()
        );
    }
    eprintln!(
        "{} of {} matrix genes have a vector in the store",
        genes.known(),
        matrix.genes.len()
    );
    if !genes.unresolved.is_empty() {
        eprintln!(
            "  {} are not HGNC genes or are ambiguous ({}, ...)",
            genes.unresolved.len(),
            examples(&genes.unresolved)
        );
    }
    if !genes.not_in_store.is_empty() {
        eprintln!(
            "  {} are genes the store has no vector for ({}, ...)",
            genes.not_in_store.len(),
            examples(&genes.not_in_store)
        );
    }
    if let Some(warning) = mapper.case_only().warning("matrix genes") {
        eprintln!("warning: {warning}");
    }
    Ok(())
}

fn methods(args: &CellsArgs) -> Vec<CellMethod> {
    match args.method {
        MethodArg::W => vec![CellMethod::Weighted],
        MethodArg::S => vec![CellMethod::Sentence],
        MethodArg::Both => vec![CellMethod::Weighted, CellMethod::Sentence],
    }
}

fn make_vectors(
    args: &CellsArgs,
    matrix: &ExpressionMatrix,
    genes: &StoreGenes,
    store: &GeneStore,
    settings: CellSettings,
) -> Result<(Vec<CellVectors>, Vec<PathBuf>)> {
    let mut out = Vec::new();
    let mut work_dirs = Vec::new();
    for method in methods(args) {
        match method {
            CellMethod::Weighted => {
                out.push(CellVectors {
                    method,
                    dim: store.dim(),
                    rows: weighted_cells(matrix, genes, store.dim(), settings),
                });
            }
            CellMethod::Sentence => {
                let encoder = store
                    .encoder(&ModelCache::from_env()?, &candle_core::Device::Cpu)
                    .with_context(|| {
                        format!(
                            "GenePT-s needs the text encoder of {}",
                            store.path().display()
                        )
                    })?;
                let sentences = cell_sentences(matrix, genes, settings)?;
                let texts: Vec<&str> = sentences.iter().flatten().map(String::as_str).collect();
                let work = work_dir_for(&args.out, encoder.as_ref(), &texts);
                eprintln!(
                    "embedding {} cell sentences with {} (resumes if interrupted)",
                    texts.len(),
                    encoder.model_id()
                );
                out.push(CellVectors {
                    method,
                    dim: encoder.dim(),
                    rows: sentence_vectors(&sentences, encoder.as_ref(), &work)?,
                });
                work_dirs.push(work);
            }
        }
    }
    Ok((out, work_dirs))
}

/// Reports the cells a method could not make a vector for (they express no known gene).
fn report_missing(vectors: &CellVectors, cells: &[String]) {
    let method = vectors.method;
    let missing: Vec<&str> = cells
        .iter()
        .zip(&vectors.rows)
        .filter(|(_, v)| v.is_none())
        .map(|(c, _)| c.as_str())
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "{}: {} of {} cells express no gene the store has and get no vector (null in \
             the table, zeros in obsm): {}{}",
            method.name(),
            missing.len(),
            cells.len(),
            missing
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
            if missing.len() > 5 { ", ..." } else { "" }
        );
    }
}

fn provenance(
    args: &CellsArgs,
    source: &MatrixSource,
    store: &GeneStore,
    settings: CellSettings,
    matrix: &ExpressionMatrix,
    genes: &StoreGenes,
) -> serde_json::Value {
    serde_json::json!({
        "matrix": args.matrix.display().to_string(),
        "h5ad_matrix": source.is_h5ad().then(|| args.h5ad_matrix.clone()),
        "store": store.path().display().to_string(),
        "store_model": store.manifest().model_id,
        "methods": methods(args).iter().map(|m| m.name()).collect::<Vec<_>>(),
        "top_genes": settings.top_genes,
        "center_gene_vectors": settings.center_gene_vectors,
        "matrix_genes": matrix.genes.len(),
        "genes_with_vectors": genes.known(),
        "bftembed_version": env!("CARGO_PKG_VERSION"),
    })
}

fn obsm_keys(made: &[CellVectors]) -> String {
    made.iter()
        .map(|v| format!("obsm[\"{}\"]", v.method.obsm_key()))
        .collect::<Vec<_>>()
        .join(" and ")
}

/// The copy of the .h5ad with one obsm entry per method (zeros for cells without a
/// vector, which the table marks as null and the run reported).
fn write_h5ad_copy(input: &Path, output: &Path, made: &[CellVectors]) -> Result<()> {
    let keys: Vec<String> = made.iter().map(|v| v.method.obsm_key()).collect();
    let values: Vec<Vec<f32>> = made.iter().map(CellVectors::dense).collect();
    let entries: Vec<ObsmEntry> = made
        .iter()
        .zip(&keys)
        .zip(&values)
        .map(|((v, key), values)| ObsmEntry {
            key,
            dim: v.dim,
            values,
        })
        .collect();
    write_obsm_copy(input, output, &entries)
        .with_context(|| format!("writing {}", output.display()))
}
