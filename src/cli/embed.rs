//! `bftembed embed`: profiles into a store, or a text file into a vector table.

use anyhow::{bail, Context, Result};
use bftembed::device::parse_device;
use bftembed::embed::{
    embed_resumable, work_dir_for, write_text_vectors, EncoderPrecision, EncoderSettings,
    RemoteEncoder, RemoteSettings, SentenceEmbedder, TextEncoder,
};
use bftembed::models::{ModelCache, DEFAULT_EMBEDDING_MODEL};
use bftembed::profile::read_profiles;
use bftembed::store::{embed_into_store, GeneStore, IndexParams};
use clap::Args;
use std::path::{Path, PathBuf};
use std::time::Duration;

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

/// Who turns texts into vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EmbedBackend {
    /// A sentence encoder on this machine (known name or Hugging Face-style folder).
    Local,
    /// An OpenAI-compatible embeddings server (--endpoint): OpenAI, TEI, vLLM, Infinity,
    /// `bftembed serve`.
    Openai,
}

/// Options shared by every command that embeds texts.
#[derive(Debug, Args, Clone)]
pub struct EncoderArgs {
    /// Embedding model: a known name, a Hugging Face-style folder or a hub repository
    /// (default all-mpnet-base-v2); with --backend openai, the model name the server
    /// knows.
    #[arg(long)]
    pub model: Option<String>,
    /// Texts per forward pass (with --backend openai: texts per request).
    #[arg(long, default_value_t = EncoderSettings::default().batch_size)]
    pub batch_size: usize,
    /// cpu, cuda, cuda:N, metal or auto.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Who embeds the texts.
    #[arg(long, value_enum, default_value_t = EmbedBackend::Local)]
    pub backend: EmbedBackend,
    /// With --backend openai: the server's base URL, such as http://host:8000/v1
    /// (the key, if it wants one, from OPENAI_API_KEY).
    #[arg(long)]
    pub endpoint: Option<String>,
    /// With --backend openai: the vector length to ask for, for models that can
    /// shorten their vectors (text-embedding-3-*).
    #[arg(long)]
    pub dimensions: Option<usize>,
    /// With --backend openai: requests in flight at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// With --backend openai: retries per request on 429, 5xx and connection failures.
    #[arg(long, default_value_t = 5)]
    pub max_retries: u32,
    /// With --backend openai: seconds a request may take.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    /// Arithmetic of the local encoder's dense layers: f32 (the vectors
    /// sentence-transformers gives), bf16 (AMX tiles of Intel Xeons from Sapphire Rapids
    /// on: about twice as fast, vectors within 1e-4 in cosine of f32's), or auto (bf16
    /// where the CPU has AMX, else f32). Recorded in the store.
    #[arg(long, default_value = "auto", value_parser = parse_precision)]
    pub precision: Precision,
}

/// `--precision`, parsed once: a precision, or the fastest this machine runs.
#[derive(Debug, Clone, Copy)]
pub enum Precision {
    /// bf16 where the CPU has AMX tiles, else f32.
    Auto,
    /// This precision, refused where the machine cannot run it.
    Exactly(EncoderPrecision),
}

fn parse_precision(name: &str) -> std::result::Result<Precision, String> {
    match name {
        "auto" => Ok(Precision::Auto),
        name => EncoderPrecision::parse(name)
            .map(Precision::Exactly)
            .map_err(|e| format!("{e}, or auto")),
    }
}

impl EncoderArgs {
    /// The model name given, or the default local encoder.
    pub fn model_name(&self) -> &str {
        self.model.as_deref().unwrap_or(DEFAULT_EMBEDDING_MODEL)
    }

    /// Opens the encoder these options name: loads the local model, or connects to the
    /// server (one probe request, so a wrong endpoint, model or key fails here).
    pub fn open(&self) -> Result<Box<dyn TextEncoder>> {
        match self.backend {
            EmbedBackend::Local => {
                if self.endpoint.is_some() || self.dimensions.is_some() {
                    bail!("--endpoint and --dimensions need --backend openai");
                }
                Ok(Box::new(self.load_local()?))
            }
            EmbedBackend::Openai => {
                if matches!(self.precision, Precision::Exactly(EncoderPrecision::Bf16)) {
                    bail!("--precision is the local encoder's; the server decides its own");
                }
                let endpoint = self
                    .endpoint
                    .as_deref()
                    .context("--backend openai needs --endpoint URL")?;
                let model = self.model.as_deref().context(
                    "--backend openai needs --model NAME (the model name the server knows)",
                )?;
                let mut settings = RemoteSettings::new(endpoint, model);
                settings.batch_size = self.batch_size;
                settings.dimensions = self.dimensions;
                settings.http.concurrency = self.concurrency.max(1);
                settings.http.max_retries = self.max_retries;
                settings.http.request_timeout = Duration::from_secs(self.timeout.max(1));
                let encoder = RemoteEncoder::connect(settings)
                    .with_context(|| format!("connecting to the embeddings server {endpoint}"))?;
                Ok(Box::new(encoder))
            }
        }
    }

    fn load_local(&self) -> Result<SentenceEmbedder> {
        let cache = ModelCache::from_env()?;
        let model = cache.resolve(self.model_name())?;
        let device = parse_device(&self.device)?;
        let precision = match self.precision {
            Precision::Auto => EncoderPrecision::fastest(&device),
            Precision::Exactly(precision) => precision,
        };
        let embedder = SentenceEmbedder::load_with(&model, &device, precision)
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
    let embedder = encoder.open()?;
    let store = embed_into_store(embedder.as_ref(), &records, out, params)
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
    let embedder = encoder.open()?;
    let work = work_dir_for(out, embedder.as_ref(), &texts);
    let vectors = embed_resumable(embedder.as_ref(), &texts, &work)?;
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
