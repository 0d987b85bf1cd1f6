//! `bftembed cells`: GenePT-w / GenePT-s vectors for every cell of an expression matrix,
//! to Parquet and into a copy of the `.h5ad`.

use super::default_store;
use super::matrix_args::{kept, MatrixArgs};
use anyhow::{bail, Context, Result};
use bftembed::cells::{
    make_cells_windowed, work_dir_for_cells, write_cells_parquet, CellColumns, CellJob, CellMethod,
    CellSettings, CellVectors, StoreGenes, WindowedCells,
};
use bftembed::embed::{Embeddings, TextEncoder};
use bftembed::genes::{GeneCatalog, SymbolMapper};
use bftembed::io::anndata_edit::{write_obsm_copy, ObsmEntry};
use bftembed::io::MatrixStream;
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
    let (mut stream, obs) = args.matrix.open(&args.obs)?;
    let settings = CellSettings {
        top_genes: args.top_genes,
        center_gene_vectors: args.center,
    };
    let run = CellRun {
        matrix: &args.matrix,
        store: &store,
        methods: &methods(&args),
        settings,
        anchor: output_anchor(&args),
    };
    let (made, genes_with_vectors) = run.make(&mut stream)?;
    let cells = &stream.cells;
    if let Some(out) = &args.out {
        let provenance = provenance(&args, &store, settings, &stream, genes_with_vectors, &made);
        let columns = CellColumns { cells, obs: &obs };
        write_cells_parquet(out, &columns, &made, &provenance)
            .with_context(|| format!("writing {}", out.display()))?;
        eprintln!("wrote {} cells to {}", cells.len(), out.display());
    }
    if let Some(copy) = &args.h5ad_out {
        write_h5ad_copy(args.matrix.path(), copy, &made)?;
        eprintln!("wrote {} with {}", copy.display(), obsm_keys(&made));
    }
    if let Some(dir) = &args.store_out {
        let origin = CellOrigin {
            method: made.methods()[0].0.name().to_string(),
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
        let vectors = made.all(made.methods()[0].0)?;
        write_cell_store(dir, cells, obs, &vectors, origin, &store, params)?;
    }
    // The outputs are safe: the saved windows can go.
    made.remove();
    Ok(())
}

/// What `cells` and `annotate` share: one matrix's cell vectors, made window by window
/// from a gene store (saved beside `anchor`, so a killed run resumes), with what could
/// not be matched reported.
pub(super) struct CellRun<'a> {
    pub matrix: &'a MatrixArgs,
    pub store: &'a GeneStore,
    pub methods: &'a [CellMethod],
    pub settings: CellSettings,
    pub anchor: &'a Path,
}

impl CellRun<'_> {
    /// The saved windows of every cell's vectors, and how many matrix genes have a
    /// vector in the store.
    pub fn make(&self, stream: &mut MatrixStream) -> Result<(WindowedCells, usize)> {
        let catalog = GeneCatalog::embedded()?;
        let mut mapper = SymbolMapper::new(&catalog);
        let symbols = stream.gene_symbols.as_deref();
        let genes = StoreGenes::of(&stream.genes, symbols, self.store, &mut mapper);
        report_genes(stream.genes.len(), &genes, &mapper, self.store.path())?;
        let encoder = match self.methods.contains(&CellMethod::Sentence) {
            true => Some(self.encoder()?),
            false => None,
        };
        let job = CellJob {
            genes: &genes,
            gene_dim: self.store.dim(),
            methods: self.methods,
            settings: self.settings,
            encoder: encoder.as_deref(),
        };
        let work = work_dir_for_cells(self.anchor, self.matrix.path(), &self.recipe(&job))?;
        let made = make_cells_windowed(stream, &job, &work)?;
        if made.resumed() > 0 {
            eprintln!(
                "resumed: {} of {} windows were saved by an interrupted run",
                made.resumed(),
                made.window_count()
            );
        }
        for &(method, _) in made.methods() {
            report_missing(method, made.missing(method), &stream.cells);
        }
        Ok((made, genes.known()))
    }

    fn encoder(&self) -> Result<Box<dyn TextEncoder>> {
        let encoder = self
            .store
            .encoder(&ModelCache::from_env()?, &candle_core::Device::Cpu)
            .with_context(|| {
                format!(
                    "GenePT-s needs the text encoder of {}",
                    self.store.path().display()
                )
            })?;
        eprintln!("cell sentences are embedded with {}", encoder.model_id());
        Ok(encoder)
    }

    /// Everything that decides the vectors, for the work folder's key.
    fn recipe(&self, job: &CellJob) -> Vec<String> {
        let mut recipe = self.matrix.recipe();
        recipe.push(format!("store={}", self.store.manifest().vectors_sha256));
        recipe.extend(self.methods.iter().map(|m| m.name().to_string()));
        recipe.push(format!("{:?}", self.settings));
        if let Some(encoder) = job.encoder {
            recipe.extend(encoder.fingerprint_parts());
        }
        recipe
    }
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
fn report_genes(
    matrix_genes: usize,
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
            matrix_genes,
            store.display()
        );
    }
    eprintln!(
        "{} of {matrix_genes} matrix genes have a vector in the store",
        genes.known(),
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

/// Reports the cells a method could not make a vector for (they express no known gene).
fn report_missing(method: CellMethod, missing: &[usize], cells: &[String]) {
    if missing.is_empty() {
        return;
    }
    let examples: Vec<&str> = missing.iter().take(5).map(|&c| cells[c].as_str()).collect();
    eprintln!(
        "{}: {} of {} cells express no gene the store has and get no vector (null in the \
         table, zeros in obsm): {}{}",
        method.name(),
        missing.len(),
        cells.len(),
        examples.join(", "),
        if missing.len() > 5 { ", ..." } else { "" }
    );
}

fn provenance(
    args: &CellsArgs,
    store: &GeneStore,
    settings: CellSettings,
    stream: &MatrixStream,
    genes_with_vectors: usize,
    made: &WindowedCells,
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
        "matrix_genes": stream.genes.len(),
        "genes_with_vectors": genes_with_vectors,
        "windows": made.window_count(),
        "bftembed_version": env!("CARGO_PKG_VERSION"),
    })
}

fn obsm_keys(made: &WindowedCells) -> String {
    made.methods()
        .iter()
        .map(|(m, _)| format!("obsm[\"{}\"]", m.obsm_key()))
        .collect::<Vec<_>>()
        .join(" and ")
}

/// The copy of the .h5ad with one obsm entry per method (zeros for cells without a
/// vector, which the table marks as null and the run reported).
fn write_h5ad_copy(input: &Path, output: &Path, made: &WindowedCells) -> Result<()> {
    let all: Vec<CellVectors> = made
        .methods()
        .iter()
        .map(|&(m, _)| made.all(m))
        .collect::<bftembed::Result<_>>()?;
    let keys: Vec<String> = all.iter().map(|v| v.method.obsm_key()).collect();
    let values: Vec<Vec<f32>> = all.iter().map(CellVectors::dense).collect();
    let entries: Vec<ObsmEntry> = all
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
