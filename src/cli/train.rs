//! `bftembed train`, `bftembed train-split` and `bftembed train-report`.

use anyhow::{Context, Result};
use bftembed::genes::GeneCatalog;
use bftembed::profile::RefseqSummaries;
use bftembed::tasks::{task_genes, SymbolMapper, TaskSpec};
use bftembed::train::{compare_runs, split::DataSplit, TrainConfig};
use clap::Args;
use std::collections::BTreeSet;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// A run config (train/NAME.toml); repeat to train several runs in turn.
    #[arg(long, required = true)]
    config: Vec<PathBuf>,
    /// Continue runs from their last checkpoint (runs already finished are skipped).
    #[arg(long)]
    resume: bool,
    /// Output folder, instead of the config's `out` (only with a single --config).
    #[arg(long)]
    out: Option<PathBuf>,
    /// After the runs, write comparison.md and loss.png for all of them into this folder.
    #[arg(long)]
    compare: Option<PathBuf>,
}

pub fn run(args: TrainArgs) -> Result<()> {
    bftembed::device::pin_cpu_thread_count();
    // Every config is read and checked before any run starts.
    let mut configs = args
        .config
        .iter()
        .map(|p| TrainConfig::read(p).with_context(|| format!("reading {}", p.display())))
        .collect::<Result<Vec<_>>>()?;
    if let Some(out) = &args.out {
        anyhow::ensure!(configs.len() == 1, "--out needs exactly one --config");
        configs[0].out = std::path::absolute(out)?;
    }
    let mut outs = Vec::new();
    for config in &configs {
        let summary = bftembed::train::run(config, args.resume)
            .with_context(|| format!("training run '{}'", config.name))?;
        let (ce, acc) = summary.final_heldout;
        let before = summary
            .base_heldout
            .map(|(c, a)| format!("{c:.4} / {a:.4} -> "))
            .unwrap_or_default();
        println!(
            "{}: {} steps ({}), held-out CE / token accuracy {before}{ce:.4} / {acc:.4}, {:.0} tokens/s; checkpoint {}",
            summary.name,
            summary.steps,
            summary.objective,
            summary.tokens_per_second,
            summary.out.join(bftembed::train::CHECKPOINT_FOLDER).display()
        );
        outs.push(summary.out);
    }
    if let Some(dir) = args.compare {
        let refs: Vec<&std::path::Path> = outs.iter().map(|p| p.as_path()).collect();
        let markdown = compare_runs(&refs, &dir)?;
        println!("{markdown}");
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct TrainSplitArgs {
    /// Task files (or a folder of them) whose scored genes are kept out of training.
    #[arg(long, default_value = "tasks")]
    tasks: PathBuf,
    /// GO terms TSV whose terms get train / held-out roles too.
    #[arg(long)]
    go_terms: Option<PathBuf>,
    /// Share of the remaining genes and GO terms held out for held-out loss.
    #[arg(long, default_value_t = 0.03)]
    heldout: f64,
    /// Seed of the held-out choice.
    #[arg(long, default_value_t = 17)]
    seed: u64,
    /// The split file to write (TSV, gzipped when it ends in .gz).
    #[arg(long)]
    out: PathBuf,
}

pub fn split(args: TrainSplitArgs) -> Result<()> {
    let catalog = GeneCatalog::embedded()?;
    let mut mapper = SymbolMapper::new(&catalog);
    let mut eval = BTreeSet::new();
    for spec in TaskSpec::read_all(&args.tasks)? {
        let genes = task_genes(&spec, &mut mapper)
            .with_context(|| format!("reading the genes of task '{}'", spec.id))?
            .items;
        if !genes.is_empty() {
            println!("{}: {} scored genes", spec.id, genes.len());
        }
        eval.extend(genes);
    }
    let genes: BTreeSet<String> = RefseqSummaries::embedded()?
        .all_profiles(&catalog)
        .records
        .into_iter()
        .map(|r| r.symbol)
        .collect();
    let mut go_terms = BTreeSet::new();
    if let Some(path) = &args.go_terms {
        for pair in bftembed::train::data::go_pairs(path, "", "{term}")? {
            if let Some(id) = pair.key.strip_prefix("go:") {
                go_terms.insert(id.to_string());
            }
        }
    }
    let split = DataSplit::build(&genes, &go_terms, &eval, args.heldout, args.seed)?;
    split.write(&args.out)?;
    let counts = split.counts();
    println!(
        "{}: {:?} ({} task genes in all, {} of them with a RefSeq summary)",
        args.out.display(),
        counts,
        eval.len(),
        genes.intersection(&eval).count()
    );
    Ok(())
}

#[derive(Debug, Args)]
pub struct TrainReportArgs {
    /// Training output folders to compare.
    #[arg(long, required = true)]
    runs: Vec<PathBuf>,
    /// Folder for comparison.md and loss.png.
    #[arg(long)]
    out: PathBuf,
}

pub fn report(args: TrainReportArgs) -> Result<()> {
    let refs: Vec<&std::path::Path> = args.runs.iter().map(|p| p.as_path()).collect();
    println!("{}", compare_runs(&refs, &args.out)?);
    Ok(())
}

#[derive(Debug, Args)]
pub struct TrainEvalArgs {
    /// The run's config: its split, data and output folder.
    #[arg(long)]
    config: PathBuf,
    /// Score the config's base model instead of the run's checkpoint.
    #[arg(long)]
    base: bool,
    /// Held-out pairs of each kind to score (seeded sample; all when fewer).
    #[arg(long, default_value_t = 200)]
    pairs: usize,
}

pub fn eval(args: TrainEvalArgs) -> Result<()> {
    let config = TrainConfig::read(&args.config)?;
    let out = config.out_dir();
    let cache = bftembed::models::ModelCache::from_env()?;
    let (model, file) = if args.base {
        let local = config.path(std::path::Path::new(&config.base_model));
        let spec = if local.exists() {
            local.to_string_lossy().into_owned()
        } else {
            config.base_model.clone()
        };
        (cache.resolve(&spec)?, bftembed::train::HELDOUT_BASE_FILE)
    } else {
        let checkpoint = out.join(bftembed::train::CHECKPOINT_FOLDER);
        let dir = bftembed::models::ModelDir::from_folder(&checkpoint).with_context(|| {
            format!(
                "no checkpoint of run '{}' at {}",
                config.name,
                checkpoint.display()
            )
        })?;
        (dir, bftembed::train::HELDOUT_FILE)
    };
    let scores = bftembed::train::evaluate_heldout(&config, &model, args.pairs)?;
    let json = serde_json::to_string_pretty(&scores)?;
    bftembed::fsutil::atomic_write_bytes(&out.join(file), json.as_bytes())?;
    println!("{json}");
    Ok(())
}
