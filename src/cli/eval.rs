//! `bftembed eval`: probe tasks on one or more stores, with a random floor, as a report.

use anyhow::{Context, Result};
use bftembed::genes::GeneCatalog;
use bftembed::store::GeneStore;
use bftembed::tasks::{evaluate, GeneVectors, TaskSpec};
use clap::Args;
use std::path::PathBuf;

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
    let mut stores = Vec::new();
    for path in &paths {
        let store =
            GeneStore::open(path).with_context(|| format!("opening store {}", path.display()))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| path.display().to_string());
        let origin = format!("{} (model {})", path.display(), store.manifest().model_id);
        stores.push((GeneVectors::from_store(&store, &name), origin));
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
                "  {:<32} ROC-AUC {:.3} [{:.3}, {:.3}]  PR-AUC {:.3}  covered {}/{}\n",
                s.store,
                s.roc_auc,
                s.roc_auc_interval.0,
                s.roc_auc_interval.1,
                s.pr_auc,
                s.items_covered,
                s.items_total
            ));
        }
    }
    out
}
