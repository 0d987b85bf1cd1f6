//! `bftembed eval`: probe tasks on one or more stores, with a random floor, as a report.

use anyhow::{bail, Context, Result};
use bftembed::genes::GeneCatalog;
use bftembed::models::ModelCache;
use bftembed::store::GeneStore;
use bftembed::tasks::{evaluate_each, GeneVectors, TaskSpec, RANDOM_FLOOR_NAME};
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
    let labels = store_labels(&paths)?;
    let needs_encoder = tasks.iter().any(|t| t.kind.needs_text_encoder());
    let mut stores = Vec::new();
    for (path, name) in paths.iter().zip(&labels) {
        let store =
            GeneStore::open(path).with_context(|| format!("opening store {}", path.display()))?;
        let origin = format!("{} (model {})", path.display(), store.manifest().model_id);
        let mut vectors = GeneVectors::from_store(&store, name);
        if needs_encoder {
            let encoder = store
                .encoder(&ModelCache::from_env()?, &Device::Cpu)
                .with_context(|| format!("loading the text encoder of {}", path.display()))?;
            vectors = vectors.with_encoder(Arc::from(encoder));
        }
        stores.push((vectors, origin));
    }
    let catalog = GeneCatalog::embedded()?;
    let (report, failed) = evaluate_each(&tasks, stores, &catalog)?;
    if report.tasks.is_empty() {
        // Nothing was scored: a report would hold only the errors printed here.
        let errors: Vec<String> = failed
            .iter()
            .map(|(id, e)| format!("task {id}: {e}"))
            .collect();
        bail!(
            "no task could be scored; no report written\n{}",
            errors.join("\n")
        );
    }
    report.write(&args.report)?;
    print!("{}", summary(&report));
    if let Some(w) = report.case_only_genes.warning("gene names") {
        eprintln!("warning: {w}");
    }
    eprintln!(
        "report written to {}",
        args.report.join("report.md").display()
    );
    if !failed.is_empty() {
        for (id, e) in &failed {
            eprintln!("task {id} failed: {e}");
        }
        bail!(
            "{} of {} tasks could not be scored (listed in the report)",
            failed.len(),
            tasks.len()
        );
    }
    Ok(())
}

/// A readable name per store that no other store (nor the random floor) shares: the
/// folder's name, or as many trailing path components as it takes to tell stores apart.
/// The same folder given twice is refused.
fn store_labels(paths: &[PathBuf]) -> Result<Vec<String>> {
    let full: Vec<PathBuf> = paths
        .iter()
        .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
        .collect();
    for (i, a) in full.iter().enumerate() {
        if let Some(j) = full[..i].iter().position(|b| b == a) {
            bail!(
                "--store {} and --store {} are the same store; give each store once",
                paths[j].display(),
                paths[i].display()
            );
        }
    }
    // Labels follow the paths as given (made absolute, links kept), so a store reached
    // through a link is named by the link.
    let given: Vec<PathBuf> = paths
        .iter()
        .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()))
        .collect();
    let parts: Vec<Vec<String>> = given
        .iter()
        .map(|p| {
            p.components()
                .map(|c| c.as_os_str().to_string_lossy().to_string())
                .filter(|c| c != "/")
                .collect()
        })
        .collect();
    let label = |i: usize, depth: usize| -> String {
        let p = &parts[i];
        p[p.len().saturating_sub(depth)..].join("/")
    };
    let mut depth = vec![1; paths.len()];
    loop {
        let labels: Vec<String> = (0..paths.len()).map(|i| label(i, depth[i])).collect();
        let clash: Vec<usize> = (0..paths.len())
            .filter(|&i| {
                labels[i] == RANDOM_FLOOR_NAME
                    || labels
                        .iter()
                        .enumerate()
                        .any(|(j, l)| j != i && *l == labels[i])
            })
            .filter(|&i| depth[i] < parts[i].len())
            .collect();
        if clash.is_empty() {
            return Ok(labels);
        }
        for i in clash {
            depth[i] += 1;
        }
    }
}

fn summary(report: &bftembed::tasks::EvalReport) -> String {
    let mut out = String::new();
    if let Some(note) = report.common_items_note() {
        out.push_str(&format!("{note}\n"));
    }
    for task in &report.tasks {
        out.push_str(&format!("{}\n", task.id));
        for s in &task.scores {
            let mark = if s.label_text.is_empty() {
                ""
            } else {
                bftembed::tasks::READS_LABELS_MARK
            };
            out.push_str(&format!(
                "  {:<32} {} {:.3} [{:.3}, {:.3}]{mark}  scored {}/{}, own coverage {}/{}\n",
                s.store,
                s.metric,
                s.value,
                s.interval.0,
                s.interval.1,
                s.items_covered,
                s.items_total,
                s.own_items_covered,
                s.items_total
            ));
        }
    }
    if let Some(note) = report.reading_note() {
        out.push_str(&format!("{note}\n"));
    }
    out
}
