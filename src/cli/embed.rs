//! `bftembed embed`: profiles into a store, or a text file into a vector table.

use anyhow::{bail, Context, Result};
use bftembed::device::parse_device;
use bftembed::embed::{
    embed_resumable, work_dir_for, write_text_vectors, EncoderSettings, SentenceEmbedder,
};
use bftembed::models::{ModelCache, DEFAULT_EMBEDDING_MODEL};
use bftembed::profile::read_profiles;
use bftembed::store::{embed_into_store, GeneStore, IndexParams};
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub struct EmbedArgs {
    /// Profile table to embed into a store (written by `bftembed profile`).
    #[arg(long, required_unless_present = "texts", conflicts_with = "texts")]
    profiles: Option<PathBuf>,
    /// Text file to embed, one text per line (output: Parquet with line, text, vector).
    #[arg(long)]
    texts: Option<PathBuf>,
    /// Output: a store folder (with --profiles) or a Parquet file (with --texts).
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    pub encoder: EncoderArgs,
    /// HNSW links per node.
    #[arg(long, default_value_t = IndexParams::default().max_nb_connection)]
    hnsw_m: usize,
    /// HNSW candidate list size while building.
    #[arg(long, default_value_t = IndexParams::default().ef_construction)]
    hnsw_ef_construction: usize,
}

/// Options shared by every command that runs the sentence encoder.
#[derive(Debug, Args, Clone)]
pub struct EncoderArgs {
    /// Embedding model: a known name or a Hugging Face-style folder.
    #[arg(long, default_value = DEFAULT_EMBEDDING_MODEL)]
    pub model: String,
    /// Texts per forward pass.
    #[arg(long, default_value_t = EncoderSettings::default().batch_size)]
    pub batch_size: usize,
    /// cpu, cuda, cuda:N, metal or auto.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

impl EncoderArgs {
    /// Loads the encoder these options name.
    pub fn load(&self) -> Result<SentenceEmbedder> {
        let cache = ModelCache::from_env()?;
        let model = cache.resolve(&self.model)?;
        let device = parse_device(&self.device)?;
        let embedder = SentenceEmbedder::load(&model, &device)
            .with_context(|| format!("loading embedding model {}", model.id))?;
        let settings = EncoderSettings {
            batch_size: self.batch_size.max(1),
            ..embedder.settings()
        };
        Ok(embedder.with_settings(settings)?)
    }
}

pub fn run(args: EmbedArgs) -> Result<()> {
    let params = IndexParams {
        max_nb_connection: args.hnsw_m,
        ef_construction: args.hnsw_ef_construction,
    };
    params.check()?;
    if let Some(profiles) = &args.profiles {
        let store = embed_profiles(profiles, &args.out, &args.encoder, params)?;
        eprintln!(
            "store {} holds {} genes ({} dimensions, model {})",
            store.path().display(),
            store.len(),
            store.dim(),
            store.manifest().model_id
        );
        Ok(())
    } else if let Some(texts) = &args.texts {
        embed_text_file(texts, &args.out, &args.encoder)
    } else {
        bail!("give --profiles or --texts")
    }
}

/// Embeds a profile table into a new store at `out` (resumable after a kill).
pub fn embed_profiles(
    profiles: &Path,
    out: &Path,
    encoder: &EncoderArgs,
    params: IndexParams,
) -> Result<GeneStore> {
    let records = read_profiles(profiles)?;
    let embedder = encoder.load()?;
    let store = embed_into_store(&embedder, &records, out, params)
        .with_context(|| format!("building store {}", out.display()))?;
    Ok(store)
}

fn embed_text_file(path: &Path, out: &Path, encoder: &EncoderArgs) -> Result<()> {
    let lines = bftembed::fsutil::read_utf8_lines(path)?;
    let (numbers, texts): (Vec<usize>, Vec<&str>) = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (i + 1, l.as_str()))
        .unzip();
    if texts.is_empty() {
        bail!("{}: no texts to embed (the file is empty)", path.display());
    }
    let embedder = encoder.load()?;
    let work = work_dir_for(out, &embedder, &texts);
    let vectors = embed_resumable(&embedder, &texts, &work)?;
    write_text_vectors(
        out,
        &numbers,
        &texts,
        &vectors,
        embedder.model_id(),
        embedder.weights_sha256(),
    )?;
    let _ = std::fs::remove_dir_all(&work);
    eprintln!("wrote {} vectors to {}", texts.len(), out.display());
    Ok(())
}
