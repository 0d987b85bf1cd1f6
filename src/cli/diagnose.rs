//! `bftembed diagnose`: the uncertainty-structure analysis of a model on biomedical and
//! general text.

use anyhow::{Context, Result};
use bftembed::genes::GeneCatalog;
use bftembed::llm::{CausalLm, GgufPrecision};
use bftembed::models::ModelCache;
use bftembed::profile::{RefseqSummaries, RefseqTextStyle};
use bftembed::rng::SplitMix64;
use bftembed::train::diagnose::{
    summarize, token_probabilities, write_diagnosis, DiagnoseSettings,
};
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct DiagnoseArgs {
    /// Model: a registry name, a model folder (e.g. a training checkpoint) or a .gguf file.
    #[arg(long, default_value = bftembed::models::DEFAULT_GENERATOR_MODEL)]
    model: String,
    /// A plain-text corpus (paragraphs separated by blank lines); repeat for several.
    #[arg(long)]
    texts: Vec<PathBuf>,
    /// Also score this many RefSeq gene summaries (a seeded sample) as the biomedical corpus.
    #[arg(long, default_value_t = 200)]
    refseq: usize,
    /// Window length g in tokens.
    #[arg(long, default_value_t = 64)]
    window: usize,
    /// Low-confidence threshold on p.
    #[arg(long, default_value_t = 0.25)]
    threshold: f64,
    /// Run length that makes a window dense-low.
    #[arg(long, default_value_t = 4)]
    dense_run: usize,
    /// Paragraphs shorter than this many tokens (headings, list stubs) are skipped.
    #[arg(long, default_value_t = 16)]
    min_tokens: usize,
    /// Longest text scored, in tokens (longer ones are cut).
    #[arg(long, default_value_t = 512)]
    max_tokens: usize,
    /// Seed of the RefSeq sample.
    #[arg(long, default_value_t = 17)]
    seed: u64,
    /// Device: cpu, cuda[:N] or metal[:N].
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Folder for diagnosis.md, diagnosis.json and longest_runs.png.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: DiagnoseArgs) -> Result<()> {
    anyhow::ensure!(
        args.refseq > 0 || !args.texts.is_empty(),
        "nothing to score: give --texts FILE or --refseq N"
    );
    let mut corpora: Vec<(String, Vec<String>)> = Vec::new();
    if args.refseq > 0 {
        let catalog = GeneCatalog::embedded()?;
        let records = RefseqSummaries::embedded()?
            .with_style(RefseqTextStyle::SummaryOnly)
            .all_profiles(&catalog)
            .records;
        let order = SplitMix64::new(args.seed).permutation(records.len());
        let texts = order
            .into_iter()
            .take(args.refseq)
            .map(|i| records[i].text.clone());
        corpora.push(("RefSeq gene summaries".into(), texts.collect()));
    }
    for path in &args.texts {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let paragraphs = text
            .split("\n\n")
            .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|p| !p.is_empty())
            .collect();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        corpora.push((
            name.unwrap_or_else(|| path.display().to_string()),
            paragraphs,
        ));
    }
    let device = bftembed::device::parse_device(&args.device)?;
    let dir = ModelCache::from_env()?.resolve(&args.model)?;
    let lm = CausalLm::load(&dir, &device, GgufPrecision::Q8)?;
    let settings = DiagnoseSettings {
        window: args.window,
        threshold: args.threshold,
        dense_run: args.dense_run,
    };
    let mut summaries = Vec::new();
    for (name, texts) in &corpora {
        let bar =
            bftembed::progress::items_bar(texts.len() as u64, &format!("scoring {name}"), "texts");
        let mut probabilities = Vec::new();
        for text in texts {
            let mut tokens = lm.encode(text)?;
            tokens.truncate(args.max_tokens);
            if tokens.len() > args.min_tokens {
                probabilities.push(token_probabilities(&lm.model, &tokens)?);
            }
            bar.inc(1);
        }
        bar.finish_and_clear();
        anyhow::ensure!(
            !probabilities.is_empty(),
            "{name}: no text of more than {} tokens",
            args.min_tokens
        );
        summaries.push(summarize(name, &probabilities, &settings));
    }
    let markdown = write_diagnosis(&dir.id, &summaries, &settings, &args.out)?;
    println!("{markdown}");
    Ok(())
}
