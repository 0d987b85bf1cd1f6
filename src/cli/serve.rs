//! `bftembed serve`: OpenAI-compatible endpoints over the local models.

use anyhow::{Context, Result};
use bftembed::device::parse_device;
use bftembed::embed::SentenceEmbedder;
use bftembed::models::{ModelCache, DEFAULT_EMBEDDING_MODEL, DEFAULT_GENERATOR_MODEL};
use bftembed::profile::Generator;
use bftembed::serve::{start, ServeModels};
use clap::Args;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Chat model for /v1/chat/completions: a known name, a GGUF folder or a Hugging
    /// Face folder; `none` serves embeddings only.
    #[arg(long, default_value = DEFAULT_GENERATOR_MODEL)]
    model: String,
    /// Embedding model for /v1/embeddings; `none` serves chat only.
    #[arg(long, default_value = DEFAULT_EMBEDDING_MODEL)]
    embedding_model: String,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port (0 picks a free one and prints it).
    #[arg(long, default_value_t = 8000)]
    port: u16,
    /// Most chat requests generated together.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// Request threads.
    #[arg(long, default_value_t = 16)]
    threads: usize,
    /// cpu, cuda, cuda:N, metal or auto.
    #[arg(long, default_value = "cpu")]
    device: String,
}

pub fn run(args: ServeArgs) -> Result<()> {
    let cache = ModelCache::from_env()?;
    let device = parse_device(&args.device)?;
    let generator = if args.model == "none" {
        None
    } else {
        let dir = cache.resolve(&args.model)?;
        Some(
            Generator::load(&dir, &device)
                .with_context(|| format!("loading chat model {}", dir.id))?,
        )
    };
    let embedder = if args.embedding_model == "none" {
        None
    } else {
        let dir = cache.resolve(&args.embedding_model)?;
        Some(
            SentenceEmbedder::load(&dir, &device)
                .with_context(|| format!("loading embedding model {}", dir.id))?,
        )
    };
    let addr = format!("{}:{}", args.host, args.port);
    let server = start(
        ServeModels {
            generator,
            embedder,
            max_batch: args.batch_size,
        },
        &addr,
        args.threads,
    )?;
    // Scripts read this line to learn the port when --port 0 was given.
    println!("listening on http://{}/v1", server.addr());
    // wait() returns only when the server stops; an error means the generation thread
    // died, and the process exits non-zero with it so that a supervisor can restart it.
    server.wait().context("bftembed serve stopped")?;
    Ok(())
}
