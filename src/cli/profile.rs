//! `bftembed profile`: write the profile table for a gene list.

use anyhow::{bail, Context, Result};
use bftembed::device::parse_device;
use bftembed::genes::{read_gene_list, GeneCatalog};
use bftembed::models::{ModelCache, DEFAULT_GENERATOR_MODEL};
use bftembed::profile::{
    genes_to_profile, journal_path, profile_with_model, write_profiles, GenerationSettings,
    GgufGenerator, ProfileBuild, PromptTemplate, RefseqSummaries, RefseqTextStyle, GENE_FIELDS,
};
use clap::{Args, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Source {
    /// NCBI RefSeq gene summaries (release 220), shipped with bftembed.
    Refseq,
    /// A local GGUF language model answers the prompt template for each gene.
    Model,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TextStyle {
    /// "SYMBOL (full name). summary", as on the NCBI Gene page.
    Named,
    /// The summary text alone.
    Summary,
}

#[derive(Debug, Args)]
pub struct ProfileArgs {
    /// Gene list: one symbol (or alias, or Entrez id) per line, `#` comments allowed.
    #[arg(long, required_unless_present = "all", conflicts_with = "all")]
    genes: Option<PathBuf>,
    /// Profile every gene the source has.
    #[arg(long)]
    all: bool,
    /// Where the profile text comes from.
    #[arg(long, value_enum, default_value = "refseq")]
    source: Source,
    /// How RefSeq texts are written: `named` ("SYMBOL (name). summary") or `summary` only.
    #[arg(long, value_enum, default_value = "named")]
    text: TextStyle,
    /// Generator model for `--source model`: a known name or a folder with a .gguf file.
    #[arg(long, default_value = DEFAULT_GENERATOR_MODEL)]
    model: String,
    /// Prompt template for `--source model` (default: the shipped profiles/gene.toml).
    #[arg(long)]
    template: Option<PathBuf>,
    /// Most tokens per generated profile.
    #[arg(long, default_value_t = GenerationSettings::default().max_new_tokens)]
    max_new_tokens: usize,
    /// Sampling temperature; 0 is greedy (deterministic).
    #[arg(long, default_value_t = 0.0)]
    temperature: f64,
    /// Nucleus sampling threshold (with --temperature > 0).
    #[arg(long)]
    top_p: Option<f64>,
    /// Sampling seed.
    #[arg(long, default_value_t = GenerationSettings::default().seed)]
    seed: u64,
    /// cpu, cuda, cuda:N, metal or auto.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Output profile table (Parquet).
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: ProfileArgs) -> Result<()> {
    let catalog = GeneCatalog::embedded()?;
    let build = match args.source {
        Source::Refseq => {
            let style = match args.text {
                TextStyle::Named => RefseqTextStyle::NamedSummary,
                TextStyle::Summary => RefseqTextStyle::SummaryOnly,
            };
            let summaries = RefseqSummaries::embedded()?.with_style(style);
            if args.all {
                summaries.all_profiles(&catalog)
            } else {
                let path = args
                    .genes
                    .as_ref()
                    .context("--genes or --all is required")?;
                let list = read_gene_list(path)?;
                for dup in &list.duplicates {
                    eprintln!(
                        "note: {}:{}: {} is listed again; skipped",
                        path.display(),
                        dup.line,
                        dup.symbol
                    );
                }
                summaries.profiles_for(&list, &catalog)
            }
        }
        Source::Model => {
            let (build, journal) = model_profiles(&args, &catalog)?;
            report_and_write(build, &args)?;
            // The table is safely written; the answers it holds need no journal now.
            if let Some(journal) = journal {
                let _ = std::fs::remove_file(journal);
            }
            return Ok(());
        }
    };
    report_and_write(build, &args)
}

/// Generated profiles, and the journal that can be removed once they are written.
fn model_profiles(
    args: &ProfileArgs,
    catalog: &GeneCatalog,
) -> Result<(ProfileBuild, Option<PathBuf>)> {
    if args.all {
        bail!("--all is for --source refseq; give --genes with --source model");
    }
    let path = args.genes.as_ref().context("--genes is required")?;
    let list = read_gene_list(path)?;
    let template = match &args.template {
        Some(t) => PromptTemplate::read(t, GENE_FIELDS)?,
        None => PromptTemplate::default_gene()?,
    };
    let (genes, skipped) = genes_to_profile(&list, catalog);
    if genes.is_empty() {
        let build = ProfileBuild {
            records: Vec::new(),
            skipped,
        };
        return Ok((build, None));
    }
    let model = ModelCache::from_env()?.resolve(&args.model)?;
    let mut generator = GgufGenerator::load(&model, &parse_device(&args.device)?)
        .with_context(|| format!("loading generator {}", model.id))?;
    let settings = GenerationSettings {
        max_new_tokens: args.max_new_tokens,
        temperature: args.temperature,
        top_p: args.top_p,
        seed: args.seed,
    };
    let journal = journal_path(&args.out, &model.weights_sha256, &template, &settings);
    if journal.exists() {
        eprintln!("resuming from {}", journal.display());
    }
    let source = format!("{}:{}", model.id, template.id);
    let records = profile_with_model(
        &mut generator,
        &template,
        settings,
        &genes,
        &journal,
        &source,
    )?;
    Ok((ProfileBuild { records, skipped }, Some(journal)))
}

fn report_and_write(build: ProfileBuild, args: &ProfileArgs) -> Result<()> {
    for s in &build.skipped {
        let place = match &args.genes {
            Some(p) if s.line > 0 => format!("{}:{}: ", p.display(), s.line),
            _ => String::new(),
        };
        eprintln!("skipped: {place}{}: {}", s.symbol, s.reason);
    }
    if build.records.is_empty() {
        bail!(
            "no gene got a profile, so {} was not written",
            args.out.display()
        );
    }
    write_profiles(&args.out, &build.records)
        .with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!(
        "wrote {} profiles to {} ({} genes skipped)",
        build.records.len(),
        args.out.display(),
        build.skipped.len()
    );
    Ok(())
}
