//! Argument definitions and dispatch for the `bftembed` binary.

mod annotate;
mod cell_lookup;
mod cells;
mod diagnose;
mod embed;
mod eval;
mod lookup;
mod matrix_args;
mod models;
mod profile;
mod quickstart;
mod serve;
mod study;
mod train;
mod vectors;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Gene vectors from biomedical text: profile genes, embed the profiles, search them.
#[derive(Debug, Parser)]
#[command(name = "bftembed", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Fetch, list and locate pretrained models.
    Models {
        #[command(subcommand)]
        action: models::ModelsAction,
    },
    /// Write one profile text per gene, cell type or perturbation into a profile table
    /// (Parquet), from RefSeq summaries, a local model or an OpenAI-compatible server.
    Profile(profile::ProfileArgs),
    /// Embed a profile table into a store, or a text file (one text per line) into Parquet.
    Embed(embed::EmbedArgs),
    /// The genes nearest to a gene in a gene store, or the cells nearest to a cell (or to
    /// each of a file of cells) in a cell store.
    Neighbors(lookup::NeighborsArgs),
    /// The genes nearest to a free-text query (embedded with the store's own model).
    Search(lookup::SearchArgs),
    /// GenePT-w / GenePT-s vectors for every cell of an expression matrix (.h5ad, 10x,
    /// CSV/TSV) from a gene store: to Parquet, and into a copy of the .h5ad's obsm.
    Cells(cells::CellsArgs),
    /// Label query cells by a vote of their nearest cells in a labelled cell store (or
    /// cross-validate the store on itself); accuracy, macro-F1 and confusion where the
    /// true labels are known.
    Annotate(annotate::AnnotateArgs),
    /// Rebuild a store's HNSW index from its stored vectors.
    Reindex(lookup::ReindexArgs),
    /// Check every byte of a store against its manifest (opening a large store checks
    /// only sizes and file ends).
    Verify(lookup::VerifyArgs),
    /// The random-vector floor as a gene store: the genes of a store, each with a random
    /// unit vector from a seed, so any pipeline can be run on the floor too.
    RandomStore(vectors::RandomStoreArgs),
    /// Build a store from vectors made elsewhere (CSV/TSV, Parquet, .npy, or GenePT's
    /// pickle); names are resolved through HGNC.
    Import(vectors::ImportArgs),
    /// Write a store's vectors out as TSV, CSV, Parquet or .npy.
    Export(vectors::ExportArgs),
    /// Fetch the models, build the default gene store (gene cards embedded with
    /// all-mpnet-base-v2) and show the neighbours of a few well-known genes.
    Quickstart(quickstart::QuickstartArgs),
    /// Probe tasks (tasks/*.toml) on one or more stores beside a random floor; writes
    /// report.md, report.json and report.html with ROC plots.
    Eval(eval::EvalArgs),
    /// Serve the local models over OpenAI-compatible HTTP (/v1/chat/completions,
    /// /v1/embeddings, /v1/models).
    Serve(serve::ServeArgs),
    /// Fine-tune a causal LM with SFT, DFT, BFT or BFT-v3 as train/NAME.toml describes;
    /// checkpoints are Hugging Face folders `bftembed profile --model` loads.
    Train(train::TrainArgs),
    /// Write the training split: genes the tasks score are kept out, a share of the rest
    /// (and of the GO terms) held out.
    TrainSplit(train::TrainSplitArgs),
    /// Compare finished training runs: held-out loss table and one loss plot.
    TrainReport(train::TrainReportArgs),
    /// Score a run's checkpoint (or, with --base, its base model) on held-out gene
    /// summaries and GO definitions separately.
    TrainEval(train::TrainEvalArgs),
    /// The uncertainty-structure diagnostic: per-window low-confidence runs of a model on
    /// RefSeq gene summaries against general text.
    Diagnose(diagnose::DiagnoseArgs),
    /// The study: profiles from the base model and each fine-tuned checkpoint, a store
    /// each beside the NCBI summaries, every task, paired tests, profile accuracy and
    /// gene-set naming, in one report (train/study.toml).
    Study(study::StudyArgs),
}

/// Runs one parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Models { action } => models::run(action),
        Command::Profile(args) => profile::run(args),
        Command::Embed(args) => embed::run(args),
        Command::Neighbors(args) => lookup::neighbors(args),
        Command::Search(args) => lookup::search(args),
        Command::Reindex(args) => lookup::reindex(args),
        Command::Verify(args) => lookup::verify(args),
        Command::Annotate(args) => annotate::run(args),
        Command::RandomStore(args) => vectors::random_store(args),
        Command::Import(args) => vectors::import(args),
        Command::Export(args) => vectors::export(args),
        Command::Quickstart(args) => quickstart::run(args),
        Command::Cells(args) => cells::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Train(args) => {
            bftembed::alloc_tuning::tune_allocator_for_training();
            train::run(args)
        }
        Command::TrainSplit(args) => train::split(args),
        Command::TrainReport(args) => train::report(args),
        Command::TrainEval(args) => train::eval(args),
        Command::Diagnose(args) => diagnose::run(args),
        Command::Study(args) => {
            bftembed::alloc_tuning::tune_allocator_for_training();
            study::run(args)
        }
    }
}

/// The store used when `--store` is not given: the one `bftembed quickstart` builds
/// with its defaults (gene cards embedded with the default encoder).
pub fn default_store() -> Result<PathBuf> {
    named_store(
        quickstart::StoreText::Cards.name(),
        bftembed::models::DEFAULT_EMBEDDING_MODEL,
    )
}

/// `stores/TEXT-MODEL` under BFTEMBED_HOME, where `quickstart` builds a store of `text`
/// embedded with `model` (a known name, a folder or a hub repository: its last part).
pub fn named_store(text: &str, model: &str) -> Result<PathBuf> {
    let last = model
        .trim_end_matches(['/', '\\'])
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(model);
    let model: String = last
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    Ok(bftembed::models::bftembed_home()?
        .join("stores")
        .join(format!("{text}-{model}")))
}
