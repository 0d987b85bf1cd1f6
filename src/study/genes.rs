//! Which genes the study profiles: evaluation genes only (never trained on, so a
//! fine-tuned model cannot have memorised their summaries), drawn task by task so that
//! every task keeps items to score.

use crate::error::Result;
use crate::rng::SplitMix64;
use crate::tasks::{expression_genes, task_genes, SymbolMapper, TaskSpec};
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

/// Draws up to `per_task` of the `candidates` (the split's evaluation genes) from each
/// task's genes (the genes it scores
/// as items, or for cell and response tasks the genes of its matrix), seeded per task so
/// that adding a task leaves the other draws as they were. Pair tasks draw whole pairs
/// of both classes; class tasks draw the classes in turn, so that a small class keeps
/// enough genes for every fold.
pub fn select_study_genes(
    tasks: &[TaskSpec],
    candidates: &BTreeSet<String>,
    mapper: &mut SymbolMapper,
    per_task: usize,
    seed: u64,
) -> Result<StudyGenes> {
    let eval = candidates;
    let mut chosen = BTreeSet::new();
    let mut draws = Vec::new();
    for task in tasks {
        let mut rng = SplitMix64::new(seed ^ crate::fsutil::fnv1a(task.id.as_bytes()));
        let scored = task_genes(task, mapper)?;
        // Pair and class tasks draw so that both classes (or every class) stay scorable.
        let balanced = if let Some((train, test)) = scored.pairs {
            Some(draw_pairs(&[train, test], eval, per_task, &mut rng))
        } else {
            scored
                .classes
                .map(|labels| draw_classes(&labels, eval, per_task, &mut rng))
        };
        if let Some((drawn, candidates)) = balanced {
            draws.push(TaskDraw {
                task: task.id.clone(),
                candidates,
                drawn: drawn.len(),
            });
            chosen.extend(drawn);
            continue;
        }
        let mut genes = scored.items;
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

/// Evaluation genes of a class task, one class after another in turn (each class in a
/// seeded order) until `per_task` are drawn or every class is used up. Returns the
/// genes and how many evaluation genes the task has.
fn draw_classes(
    labels: &[(String, String)],
    eval: &BTreeSet<String>,
    per_task: usize,
    rng: &mut SplitMix64,
) -> (BTreeSet<String>, usize) {
    let mut by_class: std::collections::BTreeMap<&str, Vec<&String>> = Default::default();
    for (gene, class) in labels.iter().filter(|(g, _)| eval.contains(g)) {
        by_class.entry(class.as_str()).or_default().push(gene);
    }
    let candidates = by_class.values().map(Vec::len).sum();
    let mut queues: Vec<Vec<&String>> = by_class
        .into_values()
        .map(|genes| {
            let order = rng.permutation(genes.len());
            order.into_iter().rev().map(|i| genes[i]).collect()
        })
        .collect();
    let mut drawn = BTreeSet::new();
    while drawn.len() < per_task && queues.iter().any(|q| !q.is_empty()) {
        for queue in queues.iter_mut() {
            if drawn.len() >= per_task {
                break;
            }
            if let Some(gene) = queue.pop() {
                drawn.insert(gene.clone());
            }
        }
    }
    (drawn, candidates)
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

#[cfg(test)]
mod tests {
    use super::draw_classes;
    use crate::rng::SplitMix64;
    use std::collections::BTreeSet;

    #[test]
    fn classes_are_drawn_in_turn_so_a_small_class_keeps_its_genes() {
        let mut labels: Vec<(String, String)> = (0..90)
            .map(|i| (format!("BIG{i}"), "big".to_string()))
            .collect();
        labels.extend((0..6).map(|i| (format!("SMALL{i}"), "small".to_string())));
        labels.push(("TRAINED".into(), "small".into()));
        let eval: BTreeSet<String> = labels
            .iter()
            .map(|(g, _)| g.clone())
            .filter(|g| g != "TRAINED")
            .collect();
        let (drawn, candidates) = draw_classes(&labels, &eval, 20, &mut SplitMix64::new(3));
        assert_eq!((drawn.len(), candidates), (20, 96));
        let small = drawn.iter().filter(|g| g.starts_with("SMALL")).count();
        assert_eq!(small, 6, "every evaluation gene of the small class");
        assert!(!drawn.contains("TRAINED"));
        let again = draw_classes(&labels, &eval, 20, &mut SplitMix64::new(3)).0;
        assert_eq!(drawn, again, "seeded");
    }
}
