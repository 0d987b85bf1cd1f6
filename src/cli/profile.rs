//! `bftembed profile`: write the profile table for a gene list.

use anyhow::{bail, Context, Result};
use bftembed::genes::{read_gene_list, GeneCatalog};
use bftembed::profile::{write_profiles, ProfileBuild, RefseqSummaries, RefseqTextStyle};
use clap::{Args, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Source {
    /// NCBI RefSeq gene summaries (release 220), shipped with bftembed.
    Refseq,
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
    };
    report_and_write(build, &args)
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
