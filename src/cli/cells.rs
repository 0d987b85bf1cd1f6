//! `bftembed cells`: GenePT-w / GenePT-s vectors for every cell of an expression matrix,
//! to Parquet and into a copy of the `.h5ad`.

use super::default_store;
use super::matrix_args::MatrixArgs;
use anyhow::{bail, Context, Result};
use bftembed::cells::{
    make_cell_vectors, write_cells_parquet, CellColumns, CellMethod, CellSettings, CellVectors,
    StoreGenes,
};
use bftembed::embed::{work_dir_for, Embeddings};
use bftembed::genes::{GeneCatalog, SymbolMapper};
use bftembed::io::anndata_edit::{write_obsm_copy, ObsmEntry};
use bftembed::io::ExpressionMatrix;
use bftembed::models::ModelCache;
use bftembed::store::{
    build_cell_store, CellOrigin, CellRows, GeneStore, IndexParams, MetadataColumns, StoreModel,
};
use clap::Args;
use std::path::{Path, PathBuf};

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
    #[command(flatten)]
    matrix: MatrixArgs,
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
    /// Metadata columns to keep with each cell (from the .h5ad's obs or --metadata),
    /// comma-separated: into the table and the cell store.
    #[arg(long, value_delimiter = ',')]
    obs: Vec<String>,
    /// The Parquet table to write (cell, the obs columns, genept_w / genept_s).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also write a copy of the .h5ad with obsm["X_genept_w"] / obsm["X_genept_s"].
    #[arg(long)]
    h5ad_out: Option<PathBuf>,
    /// Also build a cell store (one method's vectors, the obs columns as metadata) that
    /// `bftembed neighbors --cell` and `bftembed annotate --reference` search.
    #[arg(long)]
    store_out: Option<PathBuf>,
    /// HNSW links per node of the cell store.
    #[arg(long, default_value_t = IndexParams::default().max_nb_connection)]
    hnsw_m: usize,
    /// HNSW candidate list size while building the cell store.
    #[arg(long, default_value_t = IndexParams::default().ef_construction)]
    hnsw_ef_construction: usize,
}

pub fn run(args: CellsArgs) -> Result<()> {
    check_outputs(&args)?;
    let store_path = match &args.store {
        Some(p) => p.clone(),
        None => default_store()?,
    };
    let store = GeneStore::open(&store_path)
        .with_context(|| format!("opening store {}", store_path.display()))?;
    let (matrix, obs) = args.matrix.read(&args.obs)?;
    let catalog = GeneCatalog::embedded()?;
    let mut mapper = SymbolMapper::new(&catalog);
    let genes = StoreGenes::of(&matrix, &store, &mut mapper);
    report_genes(&matrix, &genes, &mapper, &store_path)?;
    let settings = CellSettings {
        top_genes: args.top_genes,
        center_gene_vectors: args.center,
    };
    let anchor = output_anchor(&args);
    let mut made = Vec::new();
    let mut work = Vec::new();
    for method in methods(&args) {
        let (vectors, dir) = method_vectors(&matrix, &genes, &store, method, settings, anchor)?;
        report_missing(&vectors, &matrix.cells);
        made.push(vectors);
        work.extend(dir);
    }
    if let Some(out) = &args.out {
        let provenance = provenance(&args, &store, settings, &matrix, &genes);
        let columns = CellColumns {
            cells: &matrix.cells,
            obs: &obs,
        };
        write_cells_parquet(out, &columns, &made, &provenance)
            .with_context(|| format!("writing {}", out.display()))?;
        eprintln!("wrote {} cells to {}", matrix.cells.len(), out.display());
    }
    if let Some(copy) = &args.h5ad_out {
        write_h5ad_copy(args.matrix.path(), copy, &made)?;
        eprintln!("wrote {} with {}", copy.display(), obsm_keys(&made));
    }
    if let Some(dir) = &args.store_out {
        let origin = CellOrigin {
            method: made[0].method.name().to_string(),
            gene_store: store_path.display().to_string(),
            gene_store_vectors_sha256: store.manifest().vectors_sha256.clone(),
            top_genes: settings.top_genes,
            center_gene_vectors: settings.center_gene_vectors,
            metadata: Vec::new(),
            cells_without_vector: 0,
        };
        let params = IndexParams {
            max_nb_connection: args.hnsw_m,
            ef_construction: args.hnsw_ef_construction,
        };
        write_cell_store(dir, &matrix.cells, obs, &made[0], origin, &store, params)?;
    }
    // The outputs are safe: the saved chunks of the sentence embedding can go.
    for work in work {
        let _ = std::fs::remove_dir_all(work);
    }
    Ok(())
}

/// Refuses outputs that cannot be written, before any work.
fn check_outputs(args: &CellsArgs) -> Result<()> {
    args.matrix.check()?;
    let input = args.matrix.path();
    if args.out.is_none() && args.h5ad_out.is_none() && args.store_out.is_none() {
        bail!("nothing to write: name --out (Parquet), --h5ad-out or --store-out");
    }
    if args.h5ad_out.is_some() && !args.matrix.source().is_h5ad() {
        bail!("--h5ad-out needs an .h5ad --matrix");
    }
    if args.h5ad_out.as_deref() == Some(input) {
        bail!("--h5ad-out must differ from --matrix: the input is never edited");
    }
    if args.h5ad_out.is_some() {
        bftembed::io::anndata_edit::check_obsm_writable(input)?;
    }
    if args.store_out.is_some() && args.method == MethodArg::Both {
        bail!("a cell store holds one recipe's vectors: with --store-out, choose --method w or s");
    }
    Ok(())
}

/// The output the sentence embedding's resumable work folder is named after.
fn output_anchor(args: &CellsArgs) -> &Path {
    [&args.out, &args.store_out, &args.h5ad_out]
        .into_iter()
        .flatten()
        .next()
        .map(PathBuf::as_path)
        .unwrap_or(Path::new("cells"))
}

/// The values whose `keep` is true, in order.
fn kept<T>(values: Vec<T>, keep: &[bool]) -> Vec<T> {
    values
        .into_iter()
        .zip(keep)
        .filter_map(|(v, &k)| k.then_some(v))
        .collect()
}

/// Builds the cell store from the cells that have a vector, their metadata beside them.
fn write_cell_store(
    dir: &Path,
    cells: &[String],
    metadata: MetadataColumns,
    vectors: &CellVectors,
    origin: CellOrigin,
    store: &GeneStore,
    params: IndexParams,
) -> Result<()> {
    let keep: Vec<bool> = vectors.rows.iter().map(Option::is_some).collect();
    let metadata = metadata
        .into_iter()
        .map(|(name, values)| (name, kept(values, &keep)))
        .collect();
    let values: Vec<f32> = vectors.rows.iter().flatten().flatten().copied().collect();
    let rows = CellRows {
        cells: kept(cells.to_vec(), &keep),
        metadata,
        vectors: Embeddings::new(vectors.dim, values),
    };
    let origin = CellOrigin {
        cells_without_vector: keep.iter().filter(|k| !**k).count(),
        ..origin
    };
    let built = build_cell_store(dir, &rows, origin, &StoreModel::of_store(store), params)
        .with_context(|| format!("building the cell store {}", dir.display()))?;
    eprintln!(
        "built the cell store {} ({} cells, {})",
        dir.display(),
        built.len(),
        vectors.method.name()
    );
    Ok(())
}

/// Says how many matrix genes the store knows, and refuses a matrix it knows none of.
pub(super) fn report_genes(
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

/// One method's vectors for every cell, and the work folder of a GenePT-s embedding
/// (removed by the caller once the outputs are written).
pub(super) fn method_vectors(
    matrix: &ExpressionMatrix,
    genes: &StoreGenes,
    store: &GeneStore,
    method: CellMethod,
    settings: CellSettings,
    anchor: &Path,
) -> Result<(CellVectors, Option<PathBuf>)> {
    if method == CellMethod::Weighted {
        let vectors = make_cell_vectors(matrix, genes, store.dim(), method, settings, None)?;
        return Ok((vectors, None));
    }
    let encoder = store
        .encoder(&ModelCache::from_env()?, &candle_core::Device::Cpu)
        .with_context(|| {
            format!(
                "GenePT-s needs the text encoder of {}",
                store.path().display()
            )
        })?;
    let sentences = bftembed::cells::cell_sentences(matrix, genes, settings)?;
    let texts: Vec<&str> = sentences.iter().flatten().map(String::as_str).collect();
    let work = work_dir_for(anchor, encoder.as_ref(), &texts);
    eprintln!(
        "embedding {} cell sentences with {} (resumes if interrupted)",
        texts.len(),
        encoder.model_id()
    );
    let vectors = make_cell_vectors(
        matrix,
        genes,
        store.dim(),
        method,
        settings,
        Some((encoder.as_ref(), &work)),
    )?;
    Ok((vectors, Some(work)))
}

/// Reports the cells a method could not make a vector for (they express no known gene).
pub(super) fn report_missing(vectors: &CellVectors, cells: &[String]) {
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
    store: &GeneStore,
    settings: CellSettings,
    matrix: &ExpressionMatrix,
    genes: &StoreGenes,
) -> serde_json::Value {
    let source = args.matrix.source();
    serde_json::json!({
        "matrix": args.matrix.path().display().to_string(),
        "h5ad_matrix": source.is_h5ad().then(|| args.matrix.h5ad_matrix().to_string()),
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
