//! `bftembed quickstart`: the whole default pipeline on a fresh machine.

use super::default_store;
use super::embed::EncoderArgs;
use anyhow::{Context, Result};
use bftembed::genes::GeneCatalog;
use bftembed::models::{KnownModel, ModelCache, DEFAULT_EMBEDDING_MODEL};
use bftembed::profile::{write_profiles, RefseqSummaries};
use bftembed::store::{embed_into_store, resolve_row, GeneStore, IndexParams, SearchMode};
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct QuickstartArgs {
    /// Where to build the store (default: the store every command uses without --store).
    #[arg(long)]
    store: Option<PathBuf>,
    /// Genes whose neighbours are shown, comma-separated.
    #[arg(long, default_value = "TP53,BRCA1,CD4,INS,MYOD1")]
    show: String,
    /// Neighbours shown per gene.
    #[arg(short = 'k', long, default_value_t = 10)]
    k: usize,
    /// Build the store again even if a valid one exists.
    #[arg(long)]
    rebuild: bool,
    #[command(flatten)]
    encoder: EncoderArgs,
}

pub fn run(args: QuickstartArgs) -> Result<()> {
    let cache = ModelCache::from_env()?;
    if let Some(known) = KnownModel::find(args.encoder.model_name()) {
        cache
            .fetch(known, false)
            .with_context(|| format!("fetching {}", known.name))?;
    }
    let store_dir = match &args.store {
        Some(p) => p.clone(),
        None => default_store()?,
    };
    let existing = if args.rebuild {
        None
    } else {
        GeneStore::open(&store_dir).ok()
    };
    let store = match existing {
        Some(store) => {
            eprintln!("using the existing store {}", store_dir.display());
            store
        }
        None => {
            let catalog = GeneCatalog::embedded()?;
            let build = RefseqSummaries::embedded()?.all_profiles(&catalog);
            let profiles = profiles_path(&store_dir);
            write_profiles(&profiles, &build.records)?;
            eprintln!(
                "embedding {} RefSeq gene summaries with {} (resumes if interrupted)",
                build.records.len(),
                args.encoder.model_name()
            );
            let embedder = args.encoder.open()?;
            embed_into_store(
                embedder.as_ref(),
                &build.records,
                &store_dir,
                IndexParams::default(),
            )
            .with_context(|| format!("building store {}", store_dir.display()))?
        }
    };
    if args.encoder.model_name() != DEFAULT_EMBEDDING_MODEL {
        eprintln!("note: built with model {}", args.encoder.model_name());
    }
    let catalog = GeneCatalog::embedded()?;
    println!("store: {} ({} genes)", store_dir.display(), store.len());
    for symbol in args
        .show
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let row = match resolve_row(&store, &catalog, symbol) {
            Ok(row) => row,
            Err(e) => {
                eprintln!("{symbol}: {e}");
                continue;
            }
        };
        let hits = store.neighbors_of_row(row, args.k, SearchMode::default())?;
        let names: Vec<String> = hits
            .iter()
            .map(|h| format!("{} {:.3}", h.symbol, h.score))
            .collect();
        println!("{:<8} {}", store.symbols()[row], names.join(", "));
    }
    Ok(())
}

/// The profile table written beside a store (`STORE.profiles.parquet`).
fn profiles_path(store_dir: &std::path::Path) -> PathBuf {
    let name = store_dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "store".into());
    bftembed::fsutil::parent_dir(store_dir).join(format!("{name}.profiles.parquet"))
}
