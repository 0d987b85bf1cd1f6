//! `bftembed eval`: probe tasks on one or more stores, with a random floor, as a report.

use anyhow::{Context, Result};
use bftembed::genes::GeneCatalog;
use bftembed::models::ModelCache;
use bftembed::store::GeneStore;
use bftembed::tasks::{evaluate, CellEmbedding, GeneVectors, TaskSpec};
use candle_core::Device;
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// A store to evaluate; repeat for side-by-side comparison (default: the quickstart store).
    #[arg(long)]
    store: Vec<PathBuf>,
    /// A task file or a folder of them.
    #[arg(long, default_value = "tasks")]
    tasks: PathBuf,
    /// Folder for report.md, report.json, report.html and the plots.
    #[arg(long)]
    report: PathBuf,
}

pub fn run(args: EvalArgs) -> Result<()> {
    let tasks = TaskSpec::read_all(&args.tasks)?;
    let paths = if args.store.is_empty() {
        vec![super::default_store()?]
    } else {
        args.store.clone()
    };
    let needs_encoder = tasks.iter().any(|t| {
        t.cell_types
            .as_ref()
            .is_some_and(|c| c.embedding == CellEmbedding::Sentence)
    });
    let mut stores = Vec::new();
    for path in &paths {
        let store =
            GeneStore::open(path).with_context(|| format!("opening store {}", path.display()))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| path.display().to_string());
        let origin = format!("{} (model {})", path.display(), store.manifest().model_id);
        let mut vectors = GeneVectors::from_store(&store, &name);
        if needs_encoder {
            let encoder = store
                .encoder(&ModelCache::from_env()?, &Device::Cpu)
                .with_context(|| format!("loading the text encoder of {}", path.display()))?;
            vectors = vectors.with_encoder(Arc::new(encoder));
        }
        stores.push((vectors, origin));
    }
    let catalog = GeneCatalog::embedded()?;
    let report = evaluate(&tasks, stores, &catalog)?;
    report.write(&args.report)?;
    print!("{}", summary(&report));
    eprintln!(
        "report written to {}",
        args.report.join("report.md").display()
    );
    Ok(())
}

fn summary(report: &bftembed::tasks::EvalReport) -> String {
    let mut out = String::new();
    for task in &report.tasks {
        out.push_str(&format!("{}\n", task.id));
        for s in &task.scores {
            out.push_str(&format!(
                "  {:<32} {} {:.3} [{:.3}, {:.3}]  covered {}/{}\n",
                s.store,
                s.metric,
                s.value,
                s.interval.0,
                s.interval.1,
                s.items_covered,
                s.items_total
            ));
        }
    }
    out
}
