//! `bftembed quickstart`: the whole default pipeline on a fresh machine.

use super::embed::EncoderArgs;
use super::named_store;
use anyhow::{Context, Result};
use bftembed::genes::GeneCatalog;
use bftembed::models::{KnownModel, ModelCache, DEFAULT_EMBEDDING_MODEL};
use bftembed::profile::{
    write_profiles_with_metadata, CardTemplate, GeneCards, ProfileBuild, RefseqSummaries,
    CARD_TEMPLATE_METADATA_KEY,
};
use bftembed::store::{embed_into_store, resolve_row, GeneStore, IndexParams, SearchMode};
use clap::Args;
use std::path::PathBuf;

/// Which text describes each gene in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreText {
    /// Gene cards through profiles/card.toml: 18,930 protein-coding genes.
    Cards,
    /// NCBI RefSeq summaries: 15,137 genes.
    Refseq,
}

impl StoreText {
    /// The first part of the store's folder name.
    pub fn name(self) -> &'static str {
        match self {
            StoreText::Cards => "cards",
            StoreText::Refseq => "refseq",
        }
    }
}

#[derive(Debug, Args)]
pub struct QuickstartArgs {
    /// Where to build the store (default: stores/TEXT-MODEL under BFTEMBED_HOME; with the
    /// default text and model, the store every command uses without --store).
    #[arg(long)]
    store: Option<PathBuf>,
    /// The gene texts to embed.
    #[arg(long, value_enum, default_value_t = StoreText::Cards)]
    text: StoreText,
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
        None => named_store(args.text.name(), args.encoder.model_name())?,
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
        None => build(&args, &store_dir)?,
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

/// Writes the profiles beside `store_dir` and embeds them into it.
fn build(args: &QuickstartArgs, store_dir: &std::path::Path) -> Result<GeneStore> {
    let catalog = GeneCatalog::embedded()?;
    let (build, metadata) = match args.text {
        StoreText::Cards => {
            let template = CardTemplate::default_card()?;
            let toml = template.toml.clone();
            let build = GeneCards::embedded(template)?.all_cards(&catalog);
            (build, vec![(CARD_TEMPLATE_METADATA_KEY, toml)])
        }
        StoreText::Refseq => (
            RefseqSummaries::embedded()?.all_profiles(&catalog),
            Vec::new(),
        ),
    };
    report_skipped(&build);
    let profiles = profiles_path(store_dir);
    write_profiles_with_metadata(&profiles, &build.records, &metadata)?;
    eprintln!(
        "embedding {} {} texts with {} (resumes if interrupted)",
        build.records.len(),
        args.text.name(),
        args.encoder.model_name()
    );
    let embedder = args.encoder.open()?;
    embed_into_store(
        embedder.as_ref(),
        &build.records,
        store_dir,
        IndexParams::default(),
    )
    .with_context(|| format!("building store {}", store_dir.display()))
}

/// Genes without a text: how many, and a few of them.
fn report_skipped(build: &ProfileBuild) {
    if build.skipped.is_empty() {
        return;
    }
    let examples: Vec<&str> = build
        .skipped
        .iter()
        .take(5)
        .map(|s| s.symbol.as_str())
        .collect();
    eprintln!(
        "{} genes have no text and are left out ({}, ...; `bftembed profile --all` lists them)",
        build.skipped.len(),
        examples.join(", ")
    );
}

/// The profile table written beside a store (`STORE.profiles.parquet`).
fn profiles_path(store_dir: &std::path::Path) -> PathBuf {
    let name = store_dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "store".into());
    bftembed::fsutil::parent_dir(store_dir).join(format!("{name}.profiles.parquet"))
}
