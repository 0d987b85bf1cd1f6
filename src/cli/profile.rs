//! `bftembed profile`: write the profile table for genes, cell types or perturbations.

use anyhow::{bail, Context, Result};
use bftembed::device::parse_device;
use bftembed::genes::{read_gene_list, GeneCatalog};
use bftembed::models::{ModelCache, DEFAULT_GENERATOR_MODEL};
use bftembed::profile::{
    gene_subjects, read_cell_types, read_gene_sets, read_perturbations, write_profiles,
    write_profiles_with_metadata, AnswerBackend, CardTemplate, GeneCards, GenerationSettings,
    Generator, LocalBackend, OpenAiBackend, OpenAiSettings, ProfileBuild, ProfileJob,
    PromptTemplate, RefseqSummaries, RefseqTextStyle, Subject, SubjectKind,
    CARD_TEMPLATE_METADATA_KEY,
};
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, ValueEnum)]
pub enum Source {
    /// NCBI RefSeq gene summaries (release 220), shipped with bftembed (genes only).
    Refseq,
    /// Gene cards: HGNC names, symbols, locus type and groups, chromosome, RefSeq
    /// summary and GO terms, written through profiles/card.toml (genes only).
    Card,
    /// A language model answers the prompt template for each gene, cell type or
    /// perturbation.
    Model,
}

#[derive(Debug, Clone, Copy, PartialEq, ValueEnum)]
pub enum Backend {
    /// A model on this machine (GGUF file or Hugging Face folder).
    Local,
    /// An OpenAI-compatible chat-completions server (--endpoint).
    Openai,
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
    #[arg(long, group = "subjects")]
    genes: Option<PathBuf>,
    /// Profile every gene the source has (cards: every protein-coding gene).
    #[arg(long, group = "subjects")]
    all: bool,
    /// Cell types: per line a name, a tab, then marker genes (comma or space separated).
    #[arg(long, group = "subjects")]
    cell_types: Option<PathBuf>,
    /// Perturbations: per line a target gene and, after a tab, what is done to it
    /// (default knockdown).
    #[arg(long, group = "subjects")]
    perturbations: Option<PathBuf>,
    /// Gene sets to name (GMT: per line a name, a description, then the genes, tab
    /// separated); the model names each set's main biological process.
    #[arg(long, group = "subjects")]
    gene_sets: Option<PathBuf>,
    /// Where the profile text comes from (default: refseq for genes, model otherwise).
    #[arg(long, value_enum)]
    source: Option<Source>,
    /// Who runs the model.
    #[arg(long, value_enum, default_value = "local")]
    backend: Backend,
    /// With --backend openai: the server's base URL, such as http://host:8000/v1.
    #[arg(long)]
    endpoint: Option<String>,
    /// With --backend openai: requests in flight at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// With --backend openai: retries per request on 429, 5xx and connection failures.
    #[arg(long, default_value_t = 5)]
    max_retries: u32,
    /// With --backend openai: seconds a request may take.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// With --backend local: prompts generated together.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// How RefSeq texts are written: `named` ("SYMBOL (name). summary") or `summary` only.
    #[arg(long, value_enum, default_value = "named")]
    text: TextStyle,
    /// Generator model: a known name, a folder with a .gguf file or a Hugging Face
    /// folder; with --backend openai, the model name the server knows.
    #[arg(long, default_value = DEFAULT_GENERATOR_MODEL)]
    model: String,
    /// Prompt template (default: the shipped profiles/gene.toml, cell_type.toml or
    /// perturbation.toml); with --source card, the card template (default
    /// profiles/card.toml).
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
    let kind = if args.cell_types.is_some() {
        SubjectKind::CellType
    } else if args.perturbations.is_some() {
        SubjectKind::Perturbation
    } else if args.gene_sets.is_some() {
        SubjectKind::GeneSet
    } else {
        SubjectKind::Gene
    };
    if args.genes.is_none() && !args.all && kind == SubjectKind::Gene {
        bail!(
            "say what to profile: --genes FILE, --all, --cell-types FILE, --perturbations FILE or --gene-sets FILE"
        );
    }
    let default_source = if kind == SubjectKind::Gene && args.backend == Backend::Local {
        Source::Refseq
    } else {
        Source::Model
    };
    let source = args.source.unwrap_or(default_source);
    if source != Source::Model && kind != SubjectKind::Gene {
        bail!(
            "RefSeq summaries and gene cards describe genes only; use --source model for {}s",
            kind.label()
        )
    }
    if source != Source::Model && args.backend == Backend::Openai {
        bail!("--backend openai needs --source model")
    }
    match source {
        Source::Refseq => refseq_profiles(&args, &catalog),
        Source::Card => card_profiles(&args, &catalog),
        Source::Model => model_profiles(&args, &catalog, kind),
    }
}

fn refseq_profiles(args: &ProfileArgs, catalog: &GeneCatalog) -> Result<()> {
    let style = match args.text {
        TextStyle::Named => RefseqTextStyle::NamedSummary,
        TextStyle::Summary => RefseqTextStyle::SummaryOnly,
    };
    let summaries = RefseqSummaries::embedded()?.with_style(style);
    let build = if args.all {
        summaries.all_profiles(catalog)
    } else {
        summaries.profiles_for(&listed_genes(args, catalog)?, catalog)
    };
    report_and_write(build, args, &[])
}

/// The `--genes` list, with its repeated and case-only names reported.
fn listed_genes(args: &ProfileArgs, catalog: &GeneCatalog) -> Result<bftembed::genes::GeneList> {
    let path = args
        .genes
        .as_ref()
        .context("--genes or --all is required")?;
    let list = read_gene_list(path)?;
    report_duplicates(&list, path);
    report_case_only(&list, catalog);
    Ok(list)
}

fn card_profiles(args: &ProfileArgs, catalog: &GeneCatalog) -> Result<()> {
    let template = match &args.template {
        Some(path) => CardTemplate::read(path)?,
        None => CardTemplate::default_card()?,
    };
    let toml = template.toml.clone();
    let cards = GeneCards::embedded(template)?;
    let build = if args.all {
        cards.all_cards(catalog)
    } else {
        cards.cards_for(&listed_genes(args, catalog)?, catalog)
    };
    report_and_write(build, args, &[(CARD_TEMPLATE_METADATA_KEY, toml)])
}

fn report_case_only(list: &bftembed::genes::GeneList, catalog: &GeneCatalog) {
    let found = bftembed::genes::CaseOnlyMatches::in_list(list, catalog);
    if let Some(warning) = found.warning(&format!("names in {}", list.path.display())) {
        eprintln!("warning: {warning}");
    }
}

fn report_duplicates(list: &bftembed::genes::GeneList, path: &std::path::Path) {
    for dup in &list.duplicates {
        eprintln!(
            "note: {}:{}: {} is listed again; skipped",
            path.display(),
            dup.line,
            dup.symbol
        );
    }
}

fn model_profiles(args: &ProfileArgs, catalog: &GeneCatalog, kind: SubjectKind) -> Result<()> {
    if args.all {
        bail!("--all is for --source refseq; give --genes with --source model");
    }
    let (subjects, skipped): (Vec<Subject>, _) = match kind {
        SubjectKind::Gene => {
            let path = args.genes.as_ref().context("--genes is required")?;
            let list = read_gene_list(path)?;
            report_duplicates(&list, path);
            report_case_only(&list, catalog);
            gene_subjects(&list, catalog)
        }
        SubjectKind::CellType => {
            let path = args
                .cell_types
                .as_ref()
                .context("--cell-types is required")?;
            (read_cell_types(path, catalog)?, Vec::new())
        }
        SubjectKind::Perturbation => {
            let path = args
                .perturbations
                .as_ref()
                .context("--perturbations is required")?;
            (read_perturbations(path, catalog)?, Vec::new())
        }
        SubjectKind::GeneSet => {
            let path = args.gene_sets.as_ref().context("--gene-sets is required")?;
            (read_gene_sets(path)?, Vec::new())
        }
    };
    let template = match &args.template {
        Some(t) => PromptTemplate::read(t, kind.fields())?,
        None => PromptTemplate::default_for(kind)?,
    };
    if subjects.is_empty() {
        return report_and_write(
            ProfileBuild {
                records: Vec::new(),
                skipped,
            },
            args,
            &[],
        );
    }
    let backend = open_backend(args)?;
    let settings = GenerationSettings {
        max_new_tokens: args.max_new_tokens,
        temperature: args.temperature,
        top_p: args.top_p,
        seed: args.seed,
    };
    let job = ProfileJob {
        backend: backend.as_ref(),
        template: &template,
        settings,
        kind,
    };
    let journal = job.journal_path(&args.out);
    if journal.exists() {
        eprintln!("resuming from {}", journal.display());
    }
    let records = job.run(&subjects, &journal)?;
    report_and_write(ProfileBuild { records, skipped }, args, &job.metadata())?;
    // The table is safely written; the answers it holds need no journal now.
    let _ = std::fs::remove_file(journal);
    Ok(())
}

fn open_backend(args: &ProfileArgs) -> Result<Box<dyn AnswerBackend>> {
    Ok(match args.backend {
        Backend::Local => {
            let model = ModelCache::from_env()?.resolve(&args.model)?;
            let generator = Generator::load(&model, &parse_device(&args.device)?)
                .with_context(|| format!("loading generator {}", model.id))?;
            Box::new(LocalBackend {
                generator,
                batch_size: args.batch_size,
            })
        }
        Backend::Openai => {
            let endpoint = args
                .endpoint
                .as_ref()
                .context("--backend openai needs --endpoint URL")?;
            let mut settings = OpenAiSettings::new(endpoint, &args.model);
            settings.concurrency = args.concurrency;
            settings.max_retries = args.max_retries;
            settings.request_timeout = Duration::from_secs(args.timeout.max(1));
            Box::new(OpenAiBackend::new(settings)?)
        }
    })
}

fn report_and_write(
    build: ProfileBuild,
    args: &ProfileArgs,
    metadata: &[(&str, String)],
) -> Result<()> {
    // A whole-genome build skips hundreds of name-only genes: a count and examples.
    let shown = if args.all { 20 } else { usize::MAX };
    for s in build.skipped.iter().take(shown) {
        let place = match &args.genes {
            Some(p) if s.line > 0 => format!("{}:{}: ", p.display(), s.line),
            _ => String::new(),
        };
        eprintln!("skipped: {place}{}: {}", s.symbol, s.reason);
    }
    if build.skipped.len() > shown {
        eprintln!("skipped: ... and {} more", build.skipped.len() - shown);
    }
    if build.records.is_empty() {
        bail!(
            "nothing got a profile, so {} was not written",
            args.out.display()
        );
    }
    if metadata.is_empty() {
        write_profiles(&args.out, &build.records)
    } else {
        write_profiles_with_metadata(&args.out, &build.records, metadata)
    }
    .with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!(
        "wrote {} profiles to {} ({} skipped)",
        build.records.len(),
        args.out.display(),
        build.skipped.len()
    );
    Ok(())
}
