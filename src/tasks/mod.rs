//! The evaluation stage: simple probes on labelled biology, run on every store side by
//! side with a random-vector floor, written up as a report.
//!
//! Task files (`tasks/*.toml`) say what to load and how to split it; see [`TaskSpec`].
//! Gene symbols in task files are mapped to approved HGNC symbols, and the genes a
//! store lacks are counted in the report's coverage, not dropped silently.

mod checks;
mod cv;
mod defaults;
mod kinds;
pub(crate) mod metrics;
mod outcomes;
mod pca;
mod probe;
mod report;
mod resample;
mod score;
mod spec;
mod spec_file;
mod task;
mod vectors;

// Every kind's settings (`GenePairSpec`, ...), so a new kind needs no line here.
pub use kinds::*;
pub use metrics::{accuracy, average_precision, macro_f1, pearson, roc_auc, roc_curve};
pub use outcomes::{paired_bootstrap, ItemOutcomes, OutcomeKind, PairedDifference};
pub use pca::ItemMap;
pub use probe::{logistic_scores, ProbeSpec};
pub use report::{EvalReport, FailedTask, StoreInfo, TaskResult, READS_LABELS_MARK};
pub use score::TaskScore;
pub use spec::{TaskKind, TaskSpec};
pub use task::{LabelledPairs, TaskGenes};
pub use vectors::{GeneVectors, SymbolMapper, RANDOM_FLOOR_NAME};

use crate::error::Result;
use crate::genes::GeneCatalog;

/// Seed of the random floor's vectors.
pub const RANDOM_FLOOR_SEED: u64 = 20_231_128;

/// Runs every task on every set of vectors plus a random floor shaped like the first
/// set, and returns the report; the first task that cannot be scored stops the run.
pub fn evaluate(
    tasks: &[TaskSpec],
    stores: Vec<(GeneVectors, String)>,
    catalog: &GeneCatalog,
) -> Result<EvalReport> {
    let (report, mut failed) = run_tasks(tasks, stores, catalog, false)?;
    match failed.pop() {
        Some((_, e)) => Err(e),
        None => Ok(report),
    }
}

/// Like [`evaluate`], but a task that cannot be scored (too few items of a class among
/// the genes given, say) is left out of the report and returned beside it with its
/// error, and the other tasks still run.
pub fn evaluate_each(
    tasks: &[TaskSpec],
    stores: Vec<(GeneVectors, String)>,
    catalog: &GeneCatalog,
) -> Result<(EvalReport, Vec<(String, crate::error::Error)>)> {
    run_tasks(tasks, stores, catalog, true)
}

/// Runs tasks with one symbol mapper and one cell-embedding cache, so tasks that share a
/// matrix embed its cells once; failures are collected when `keep_going`, otherwise the
/// first one ends the run.
fn run_tasks(
    tasks: &[TaskSpec],
    stores: Vec<(GeneVectors, String)>,
    catalog: &GeneCatalog,
    keep_going: bool,
) -> Result<(EvalReport, Vec<(String, crate::error::Error)>)> {
    let common_items = stores.len() > 1;
    let all = compared_vectors(stores)?;
    let refs: Vec<&GeneVectors> = all.iter().map(|(v, _)| v).collect();
    let mut mapper = SymbolMapper::new(catalog);
    let mut state = task::RunState::default();
    let mut results = Vec::new();
    let mut failed = Vec::new();
    let bar = crate::progress::items_bar(tasks.len() as u64, "evaluating", "tasks");
    for task in tasks {
        bar.set_message(format!("task {}", task.id));
        let scores = task
            .kind
            .task()
            .run(&task.task_ref(), &refs, &mut mapper, &mut state);
        bar.inc(1);
        match scores {
            Ok(mut scores) => {
                if !common_items {
                    // A lone store's own coverage is what it was scored on.
                    for s in &mut scores {
                        s.own_items_covered = s.items_covered;
                    }
                }
                for s in &mut scores {
                    if let Some(v) = refs.iter().find(|v| v.name == s.store) {
                        s.label_text = task.label_text_in(v.text_parts());
                    }
                }
                results.push(TaskResult {
                    id: task.id.clone(),
                    title: task.title.clone(),
                    label_sources: task
                        .label_sources
                        .iter()
                        .map(|f| f.name().to_string())
                        .collect(),
                    scores,
                });
            }
            Err(e) => {
                failed.push((task.id.clone(), e));
                if !keep_going {
                    break;
                }
            }
        }
    }
    bar.finish_and_clear();
    let report = EvalReport {
        bftembed_version: env!("CARGO_PKG_VERSION").to_string(),
        created_unix: crate::fsutil::unix_now(),
        stores: all
            .iter()
            .map(|(v, origin)| StoreInfo {
                name: v.name.clone(),
                origin: origin.clone(),
                genes: v.own_len(),
                genes_scored: v.len(),
            })
            .collect(),
        common_items,
        case_only_genes: mapper.case_only().clone(),
        tasks: results,
        failed: failed
            .iter()
            .map(|(id, e)| FailedTask {
                id: id.clone(),
                error: e.to_string(),
            })
            .collect(),
    };
    Ok((report, failed))
}

/// The genes a task scores as items (with their classes or pairs), so that training
/// data can leave them out and a caller drawing genes can keep every class scorable.
pub fn task_genes(spec: &TaskSpec, mapper: &mut SymbolMapper) -> Result<TaskGenes> {
    spec.kind.task().genes(&spec.context(), mapper)
}

/// The genes a cell-level or expression-response task reads: the expression matrix's
/// genes (GenePT-w features) or the genes whose response is predicted; empty for other
/// tasks, since no training set could avoid nearly the whole transcriptome.
pub fn expression_genes(
    spec: &TaskSpec,
    mapper: &mut SymbolMapper,
) -> Result<std::collections::BTreeSet<String>> {
    spec.kind.task().expression_genes(&spec.context(), mapper)
}

/// The vectors a report compares: every store, restricted to the genes all of them
/// have when there are several (so each is scored on the same items), and the random
/// floor for those genes. Two stores with one name are refused: reports, caches and
/// paired tests find a store by its name.
fn compared_vectors(stores: Vec<(GeneVectors, String)>) -> Result<Vec<(GeneVectors, String)>> {
    let mut origin_of: std::collections::HashMap<&str, &str> = Default::default();
    origin_of.insert(RANDOM_FLOOR_NAME, "the random floor");
    for (v, origin) in &stores {
        if let Some(other) = origin_of.insert(&v.name, origin) {
            return Err(crate::error::Error::InvalidArgument(format!(
                "two stores are both named '{}' ({other} and {origin}); give each a distinct name",
                v.name
            )));
        }
    }
    let mut all = if stores.len() > 1 {
        let mut common: std::collections::HashSet<String> =
            stores[0].0.symbols().cloned().collect();
        for (v, _) in &stores[1..] {
            common.retain(|s| v.covers(s));
        }
        stores
            .into_iter()
            .map(|(v, origin)| (v.restricted_to(&common), origin))
            .collect()
    } else {
        stores
    };
    if let Some((first, _)) = all.first() {
        let floor = GeneVectors::random_like(first, RANDOM_FLOOR_SEED);
        all.push((
            floor,
            format!("random unit vectors (seed {RANDOM_FLOOR_SEED})"),
        ));
    }
    Ok(all)
}
