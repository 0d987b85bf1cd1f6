//! The one driver every task kind runs through: for each store, the kind's layout, then
//! fit and predict fold by fold, then the main metric with its interval and the
//! bookkeeping a report needs (coverage, training items, per-item outcomes). Also the
//! fold makers the kinds share.

use super::checks::Check;
use super::metrics::{accuracy, average_precision, macro_f1, roc_auc, roc_curve};
use super::outcomes::{ItemOutcomes, OutcomeKind};
use super::resample::{bootstrap_interval, shuffle, RESAMPLES};
use super::score::TaskScore;
use super::task::{Fold, IntervalRule, Layout, OutcomeOrder, Predictions, RunState, Scoring};
use super::task::{StoreView, Task, TaskContext, TaskGenes};
use super::vectors::{GeneVectors, SymbolMapper};
use crate::error::{Error, Result};
use rayon::prelude::*;
use std::collections::BTreeSet;

/// A task as the driver sees it: its id (for errors) and its context.
pub(crate) struct TaskRef<'a> {
    /// The task's id.
    pub(crate) id: &'a str,
    /// Its folder and probe settings.
    pub(crate) context: TaskContext<'a>,
}

/// The object-safe face of [`Task`], which [`super::TaskKind`] hands out per kind.
pub(crate) trait AnyTask {
    /// See [`Task::TABLE`].
    fn table(&self) -> &'static str;
    /// See [`Task::checks`].
    fn checks(&self) -> Vec<Check>;
    /// See [`Task::validate`].
    fn validate(&self) -> std::result::Result<(), String>;
    /// See [`Task::needs_text_encoder`].
    fn needs_text_encoder(&self) -> bool;
    /// See [`Task::genes`].
    fn genes(&self, task: &TaskContext, mapper: &mut SymbolMapper) -> Result<TaskGenes>;
    /// See [`Task::expression_genes`].
    fn expression_genes(
        &self,
        task: &TaskContext,
        mapper: &mut SymbolMapper,
    ) -> Result<BTreeSet<String>>;
    /// Scores every store (see [`run`]).
    fn run(
        &self,
        task: &TaskRef,
        stores: &[&GeneVectors],
        mapper: &mut SymbolMapper,
        state: &mut RunState,
    ) -> Result<Vec<TaskScore>>;
}

impl<T: Task> AnyTask for T {
    fn table(&self) -> &'static str {
        T::TABLE
    }
    fn checks(&self) -> Vec<Check> {
        Task::checks(self)
    }
    fn validate(&self) -> std::result::Result<(), String> {
        Task::validate(self)
    }
    fn needs_text_encoder(&self) -> bool {
        Task::needs_text_encoder(self)
    }
    fn genes(&self, task: &TaskContext, mapper: &mut SymbolMapper) -> Result<TaskGenes> {
        Task::genes(self, task, mapper)
    }
    fn expression_genes(
        &self,
        task: &TaskContext,
        mapper: &mut SymbolMapper,
    ) -> Result<BTreeSet<String>> {
        Task::expression_genes(self, task, mapper)
    }
    fn run(
        &self,
        task: &TaskRef,
        stores: &[&GeneVectors],
        mapper: &mut SymbolMapper,
        state: &mut RunState,
    ) -> Result<Vec<TaskScore>> {
        run(self, task, stores, mapper, state)
    }
}

/// Runs `kind` on every store; a store the kind cannot take is left out. An error in
/// reading the task's files names the file; one in scoring a store names the task and
/// the store.
pub(crate) fn run<T: Task>(
    kind: &T,
    task: &TaskRef,
    stores: &[&GeneVectors],
    mapper: &mut SymbolMapper,
    state: &mut RunState,
) -> Result<Vec<TaskScore>> {
    let ctx = &task.context;
    let data = kind.read(ctx, mapper)?;
    let scoring = kind.scoring(&data);
    // Layouts one store at a time (they share the run's caches), then the stores'
    // fits side by side: the probes are single-threaded, and a run has at least the
    // store and its random floor.
    let mut layouts = Vec::new();
    for &vectors in stores {
        let view = StoreView {
            vectors,
            all: stores,
        };
        let layout = kind
            .layout(ctx, &data, view, state)
            .map_err(|e| task_error(task.id, vectors, e))?;
        if let Some(layout) = layout {
            layouts.push((vectors, layout));
        }
    }
    let scored: Vec<_> = layouts
        .par_iter()
        .map(|(vectors, layout)| {
            score_store(kind, ctx, &data, &scoring, vectors, layout)
                .map_err(|e| task_error(task.id, vectors, e))
        })
        .collect();
    let mut out = Vec::new();
    for ((vectors, layout), result) in layouts.iter().zip(scored) {
        let (mut score, extra) = result?;
        kind.finish(&data, vectors, layout, &extra, &mut score, out.is_empty());
        out.push(score);
    }
    Ok(out)
}

/// Fits and predicts every fold of one store and summarises the outcomes.
fn score_store<T: Task>(
    kind: &T,
    task: &TaskContext,
    data: &T::Data,
    scoring: &Scoring,
    vectors: &GeneVectors,
    layout: &Layout<T::Features>,
) -> Result<(TaskScore, Vec<Vec<f64>>)> {
    if layout
        .folds
        .iter()
        .any(|fold| fold.train.is_empty() || fold.test.is_empty())
    {
        return Err(Error::InvalidArgument(format!(
            "the split leaves no training or no test {}",
            scoring.unit
        )));
    }
    // Folds are fitted in parallel, collected whole, then merged (or the first error
    // taken) in fold order: the same outcome as one after the other, whichever thread
    // finishes first.
    let fitted = layout
        .folds
        .par_iter()
        .map(|fold| kind.fit_fold(task, data, vectors, layout, fold))
        .collect::<Vec<_>>()
        .into_iter()
        .collect::<Result<Vec<Predictions>>>()?;
    let mut merged: Option<Predictions> = None;
    let mut fold_values = Vec::new();
    let mut train_items = 0;
    for (n, (fold, predicted)) in layout.folds.iter().zip(fitted).enumerate() {
        train_items = train_items.max(fold.train.len());
        if matches!(scoring.interval, IntervalRule::FoldRange) {
            let all: Vec<usize> = (0..predicted.outcomes.len()).collect();
            fold_values.push(predicted.outcomes.metric(&all).ok_or_else(|| {
                Error::InvalidArgument(format!("fold {}: {} is undefined", n + 1, scoring.metric))
            })?);
        }
        merged = Some(match merged {
            None => predicted,
            Some(so_far) => append(so_far, predicted)?,
        });
    }
    let mut merged =
        merged.ok_or_else(|| Error::InvalidArgument("the task has no folds".into()))?;
    if merged.outcomes.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "no {} could be scored",
            scoring.unit
        )));
    }
    if scoring.order == OutcomeOrder::Items {
        merged = in_item_order(merged);
    }
    let mut score = summarise(merged.outcomes, scoring, &fold_values)?;
    score.store = vectors.name.clone();
    score.items_covered = layout.covered;
    score.own_items_covered = layout.own_covered;
    score.train_items = train_items;
    Ok((score, merged.extra))
}

fn append(mut a: Predictions, b: Predictions) -> Result<Predictions> {
    a.outcomes.append(b.outcomes)?;
    a.items.extend(b.items);
    a.extra.extend(b.extra);
    Ok(a)
}

fn in_item_order(p: Predictions) -> Predictions {
    let mut order: Vec<usize> = (0..p.items.len()).collect();
    order.sort_by_key(|&i| p.items[i]);
    Predictions {
        outcomes: p.outcomes.select(&order),
        items: order.iter().map(|&i| p.items[i]).collect(),
        extra: order.iter().map(|&i| p.extra[i].clone()).collect(),
    }
}

/// The main metric, its interval and the metrics every kind of outcome carries.
fn summarise(outcomes: ItemOutcomes, scoring: &Scoring, fold_values: &[f64]) -> Result<TaskScore> {
    let n = outcomes.len();
    let all: Vec<usize> = (0..n).collect();
    let mut score = TaskScore::new(&scoring.metric, scoring.total, n);
    match &outcomes.kind {
        OutcomeKind::Binary { truth, scores } => {
            let predicted: Vec<bool> = scores.iter().map(|&s| s >= 0.5).collect();
            score.value = roc_auc(truth, scores)?;
            score.other_metrics = vec![
                ("PR-AUC".into(), average_precision(truth, scores)?),
                ("accuracy".into(), accuracy(truth, &predicted)?),
                ("macro-F1".into(), macro_f1(truth, &predicted)?),
            ];
            score.roc = thinned_roc(truth, scores)?;
        }
        OutcomeKind::Classes { truth, predicted } => {
            let mut names = scoring.classes.clone().unwrap_or_default();
            // Sized to hold every label, named or not.
            let largest = truth
                .iter()
                .chain(predicted)
                .copied()
                .max()
                .map_or(0, |m| m + 1);
            while names.len() < largest {
                names.push(format!("class {}", names.len()));
            }
            let mut confusion = vec![vec![0usize; names.len()]; names.len()];
            for (&t, &p) in truth.iter().zip(predicted) {
                confusion[t][p] += 1;
            }
            score.value = macro_f1(truth, predicted)?;
            score.other_metrics = vec![("accuracy".into(), accuracy(truth, predicted)?)];
            score.confusion = Some((names, confusion));
        }
        OutcomeKind::Mean { .. } | OutcomeKind::Columns { .. } => {
            score.value = outcomes.metric(&all).ok_or_else(|| {
                Error::InvalidArgument(format!("{} is undefined", scoring.metric))
            })?;
        }
    }
    (score.interval, score.interval_method) = match scoring.interval {
        IntervalRule::Bootstrap { seed, of } => (
            bootstrap_interval(n, seed, |idx| outcomes.metric(idx)),
            format!("bootstrap of {of}, {RESAMPLES} resamples"),
        ),
        IntervalRule::FoldRange => (
            (
                fold_values.iter().cloned().fold(f64::INFINITY, f64::min),
                fold_values
                    .iter()
                    .cloned()
                    .fold(f64::NEG_INFINITY, f64::max),
            ),
            format!("range over {} folds", fold_values.len()),
        ),
    };
    score.outcomes = Some(outcomes);
    Ok(score)
}

/// The ROC curve with at most about 200 points (and always its last).
fn thinned_roc(truth: &[bool], scores: &[f64]) -> Result<Vec<(f64, f64)>> {
    let curve = roc_curve(truth, scores)?;
    let step = curve.len().div_ceil(200).max(1);
    let mut roc: Vec<(f64, f64)> = curve.iter().step_by(step).copied().collect();
    if roc.last() != curve.last() {
        roc.extend(curve.last().copied());
    }
    Ok(roc)
}

/// An error of one task on one store.
pub(crate) fn task_error(task: &str, vectors: &GeneVectors, e: Error) -> Error {
    let message = match e {
        Error::InvalidArgument(m) => m,
        other => other.to_string(),
    };
    Error::Task {
        task: task.to_string(),
        store: vectors.name.clone(),
        message,
    }
}

/// `k` folds, each class spread evenly over them (every class needs `k` items).
pub(crate) fn stratified<T: Ord + Clone + std::fmt::Debug>(
    labels: &[T],
    k: usize,
    seed: u64,
) -> Result<Vec<Fold>> {
    let assignment = stratified_folds_by(labels, k, seed)?;
    Ok((0..k).map(|f| split_by(&assignment, |a| a != f)).collect())
}

/// `k` folds of a seeded random order of `n` items; each fold lists its items in that
/// order.
pub(crate) fn shuffled(n: usize, k: usize, seed: u64) -> Result<Vec<Fold>> {
    at_least_two_folds(k)?;
    let mut order: Vec<usize> = (0..n).collect();
    shuffle(&mut order, seed);
    Ok((0..k)
        .map(|f| {
            let (mut train, mut test) = (Vec::new(), Vec::new());
            for (position, &i) in order.iter().enumerate() {
                if position % k == f {
                    test.push(i);
                } else {
                    train.push(i);
                }
            }
            Fold { train, test }
        })
        .collect())
}

/// Task files are checked for this when read; a spec built in code is checked here.
fn at_least_two_folds(k: usize) -> Result<()> {
    if k < 2 {
        return Err(Error::InvalidArgument(format!(
            "{k} folds: cross-validation needs at least 2"
        )));
    }
    Ok(())
}

/// One fold from a train/test flag per item.
pub(crate) fn given(is_train: &[bool]) -> Fold {
    split_by(is_train, |t| t)
}

fn split_by<A: Copy>(assignment: &[A], is_train: impl Fn(A) -> bool) -> Fold {
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (i, &a) in assignment.iter().enumerate() {
        if is_train(a) {
            train.push(i);
        } else {
            test.push(i);
        }
    }
    Fold { train, test }
}

/// Fold number per item for any class labels, each class spread evenly over folds;
/// each fold must see every class.
pub(crate) fn stratified_folds_by<T: Ord + Clone + std::fmt::Debug>(
    labels: &[T],
    k: usize,
    seed: u64,
) -> Result<Vec<usize>> {
    at_least_two_folds(k)?;
    let mut folds = vec![0; labels.len()];
    let mut classes: Vec<T> = labels.to_vec();
    classes.sort();
    classes.dedup();
    match classes.as_slice() {
        [] => {
            return Err(Error::InvalidArgument(
                "the store covers none of the task's items".into(),
            ))
        }
        [only] => {
            return Err(Error::InvalidArgument(format!(
                "all {} items the store covers are in one class ({only:?}); a probe needs two",
                labels.len()
            )))
        }
        _ => {}
    }
    for (c, class) in classes.iter().enumerate() {
        let mut idx: Vec<usize> = (0..labels.len()).filter(|&i| &labels[i] == class).collect();
        if idx.len() < k {
            return Err(Error::InvalidArgument(format!(
                "class {class:?} has {} items, too few for {k} folds",
                idx.len()
            )));
        }
        shuffle(&mut idx, seed ^ c as u64);
        for (n, i) in idx.into_iter().enumerate() {
            folds[i] = n % k;
        }
    }
    Ok(folds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffled_folds_cover_every_item_once_as_test() {
        let folds = shuffled(23, 5, 3).unwrap();
        assert!(shuffled(23, 0, 3).is_err());
        let mut seen: Vec<usize> = folds.iter().flat_map(|f| f.test.clone()).collect();
        seen.sort();
        assert_eq!(seen, (0..23).collect::<Vec<_>>());
        for f in &folds {
            assert_eq!(f.train.len() + f.test.len(), 23);
        }
    }

    #[test]
    fn stratified_folds_keep_every_class_in_every_fold() {
        let labels: Vec<usize> = (0..30).map(|i| i % 3).collect();
        for f in stratified(&labels, 5, 9).unwrap() {
            let mut classes: Vec<usize> = f.test.iter().map(|&i| labels[i]).collect();
            classes.dedup();
            classes.sort();
            classes.dedup();
            assert_eq!(classes, [0, 1, 2]);
        }
        assert!(stratified(&[true, true, false], 2, 1).is_err());
    }
}
