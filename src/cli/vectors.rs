//! `bftembed import` and `bftembed export`: vectors from other tools into a store, and a
//! store's vectors out.

use anyhow::{Context, Result};
use bftembed::genes::GeneCatalog;
use bftembed::io::vectors::{read_vectors, write_vectors, VectorFormat};
use bftembed::store::{import_store, store_vectors, GeneStore, IndexParams};
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};

/// A vector file format, as typed on the command line.
#[derive(Debug, Clone, Copy, PartialEq, ValueEnum)]
pub enum FormatArg {
    /// A name column, then one column per dimension, comma separated.
    Csv,
    /// As csv, tab separated.
    Tsv,
    /// A name column and a list column.
    Parquet,
    /// A NumPy 2-D float array, names in a text file.
    Npy,
    /// A Python pickle of a dict name -> list of floats (GenePT's format).
    Pickle,
}

impl From<FormatArg> for VectorFormat {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Csv => VectorFormat::Csv,
            FormatArg::Tsv => VectorFormat::Tsv,
            FormatArg::Parquet => VectorFormat::Parquet,
            FormatArg::Npy => VectorFormat::Npy,
            FormatArg::Pickle => VectorFormat::Pickle,
        }
    }
}

fn format_of(path: &Path, given: Option<FormatArg>) -> Result<VectorFormat> {
    match given {
        Some(f) => Ok(f.into()),
        None => VectorFormat::from_path(path).with_context(|| {
            format!(
                "cannot tell the format of {} from its name; give --format csv|tsv|parquet|npy|pickle",
                path.display()
            )
        }),
    }
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The vector file.
    #[arg(long)]
    vectors: PathBuf,
    /// Its format (default: from the file name).
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// With npy: the names, one per line (default: FILE.genes.txt).
    #[arg(long)]
    genes: Option<PathBuf>,
    /// The name column (CSV/TSV default: the first; Parquet: symbol).
    #[arg(long)]
    name_column: Option<String>,
    /// With parquet: the vector column.
    #[arg(long)]
    vector_column: Option<String>,
    /// The store folder to write.
    #[arg(long)]
    out: PathBuf,
}

pub fn import(args: ImportArgs) -> Result<()> {
    let format = format_of(&args.vectors, args.format)?;
    let vectors = read_vectors(
        &args.vectors,
        format,
        args.genes.as_deref(),
        args.name_column.as_deref(),
        args.vector_column.as_deref(),
    )?;
    let catalog = GeneCatalog::embedded()?;
    let report = import_store(
        &vectors,
        &args.vectors,
        &catalog,
        &args.out,
        IndexParams::default(),
    )
    .with_context(|| format!("importing {}", args.vectors.display()))?;
    for (from, to) in &report.renamed {
        eprintln!("renamed: {from} -> {to} (HGNC)");
    }
    for s in &report.skipped {
        eprintln!("skipped: {}: {}", s.name, s.reason);
    }
    eprintln!(
        "store {} holds {} genes ({} dimensions) from {}; {} names skipped",
        args.out.display(),
        report.store.len(),
        report.store.dim(),
        args.vectors.display(),
        report.skipped.len()
    );
    Ok(())
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The store folder.
    #[arg(long)]
    store: PathBuf,
    /// Output format.
    #[arg(long, value_enum)]
    format: FormatArg,
    /// Output file (npy also writes FILE.genes.txt).
    #[arg(long)]
    out: PathBuf,
}

pub fn export(args: ExportArgs) -> Result<()> {
    let store = GeneStore::open(&args.store)
        .with_context(|| format!("opening store {}", args.store.display()))?;
    let vectors = store_vectors(&store);
    write_vectors(&args.out, args.format.into(), &vectors)
        .with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!(
        "wrote {} vectors ({} dimensions) to {}",
        vectors.names.len(),
        vectors.dim,
        args.out.display()
    );
    Ok(())
}

#[derive(Debug, Args)]
pub struct RandomStoreArgs {
    /// The gene store whose genes (and dimension) the floor takes.
    #[arg(long)]
    like: PathBuf,
    /// Seed of the random vectors.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The floor store to write.
    #[arg(long)]
    out: PathBuf,
}

pub fn random_store(args: RandomStoreArgs) -> Result<()> {
    let like = GeneStore::open(&args.like)
        .with_context(|| format!("opening store {}", args.like.display()))?;
    let floor = bftembed::store::random_store(&like, args.seed, &args.out, IndexParams::default())
        .with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!(
        "wrote the random floor {} ({} genes, dimension {}, seed {})",
        args.out.display(),
        floor.len(),
        floor.dim(),
        args.seed
    );
    Ok(())
}
