//! Which genes the study profiles: evaluation genes only (never trained on, so a
//! fine-tuned model cannot have memorised their summaries), drawn task by task so that
//! every task keeps items to score.

use crate::error::Result;
use crate::tasks::{expression_genes, labelled_genes, labelled_pairs, SymbolMapper, TaskSpec};
use crate::train::split::{DataSplit, SplitRole};
use crate::train::SplitMix64;
use std::collections::BTreeSet;

/// How many genes one task contributed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TaskDraw {
    /// The task.
    pub task: String,
    /// Its genes that are evaluation genes.
    pub candidates: usize,
    /// Of those, drawn for the study.
    pub drawn: usize,
}

/// The study's genes and how they were drawn.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StudyGenes {
    /// Approved symbols, sorted.
    pub genes: Vec<String>,
    /// Per task, in task order.
    pub draws: Vec<TaskDraw>,
}

/// Draws up to `per_task` evaluation genes from each task's genes (the genes it scores
/// as items, or for cell and response tasks the genes of its matrix), seeded per task so
/// that adding a task leaves the other draws as they were.
pub fn select_study_genes(
    tasks: &[TaskSpec],
    split: &DataSplit,
    mapper: &mut SymbolMapper,
    per_task: usize,
    seed: u64,
) -> Result<StudyGenes> {
    let eval: BTreeSet<String> = split.genes_with(SplitRole::Eval).into_iter().collect();
    let mut chosen = BTreeSet::new();
    let mut draws = Vec::new();
    for task in tasks {
        let mut rng = SplitMix64::new(seed ^ crate::fsutil::fnv1a(task.id.as_bytes()));
        if let Some((train, test)) = labelled_pairs(task, mapper)? {
            let (drawn, candidates) = draw_pairs(&[train, test], &eval, per_task, &mut rng);
            draws.push(TaskDraw {
                task: task.id.clone(),
                candidates,
                drawn: drawn.len(),
            });
            chosen.extend(drawn);
            continue;
        }
        let mut genes = labelled_genes(task, mapper)?;
        genes.extend(expression_genes(task, mapper)?);
        let candidates: Vec<&String> = genes.iter().filter(|g| eval.contains(*g)).collect();
        let order = rng.permutation(candidates.len());
        let drawn: Vec<&String> = order
            .iter()
            .take(per_task)
            .map(|&i| candidates[i])
            .collect();
        chosen.extend(drawn.iter().map(|g| g.to_string()));
        draws.push(TaskDraw {
            task: task.id.clone(),
            candidates: candidates.len(),
            drawn: drawn.len(),
        });
    }
    Ok(StudyGenes {
        genes: chosen.into_iter().collect(),
        draws,
    })
}

/// Genes of whole pairs whose both genes are evaluation genes: an equal share of the
/// budget from each file (training, test), positives and negatives alternating, so a
/// small draw still has pairs of both classes on both sides of the split. Returns the
/// genes and how many evaluation genes the pairs hold.
fn draw_pairs(
    files: &[Vec<(String, String, bool)>],
    eval: &BTreeSet<String>,
    per_task: usize,
    rng: &mut SplitMix64,
) -> (BTreeSet<String>, usize) {
    let mut drawn = BTreeSet::new();
    let mut candidates = BTreeSet::new();
    for (f, pairs) in files.iter().enumerate() {
        let usable: Vec<&(String, String, bool)> = pairs
            .iter()
            .filter(|(a, b, _)| eval.contains(a) && eval.contains(b))
            .collect();
        candidates.extend(usable.iter().flat_map(|(a, b, _)| [a.clone(), b.clone()]));
        let budget = per_task * (f + 1) / files.len();
        let order = rng.permutation(usable.len());
        let (mut positives, mut negatives): (Vec<usize>, Vec<usize>) =
            order.into_iter().partition(|&i| usable[i].2);
        positives.reverse();
        negatives.reverse();
        let mut take_positive = true;
        while drawn.len() < budget {
            let next = if take_positive {
                positives.pop().or_else(|| negatives.pop())
            } else {
                negatives.pop().or_else(|| positives.pop())
            };
            let Some(i) = next else { break };
            drawn.insert(usable[i].0.clone());
            drawn.insert(usable[i].1.clone());
            take_positive = !take_positive;
        }
    }
    (drawn, candidates.len())
}
