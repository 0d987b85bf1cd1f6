//! The shape every task kind has. A kind reads its items once, then for each store says
//! which items the store covers, how they split into folds, and how to fit on one
//! fold's training items and predict its test items; the driver (`cv.rs`) runs that
//! for every kind alike (stores, folds, coverage, intervals, per-item outcomes), so a kind
//! is one file with its settings and these steps.
//!
//! This module names no kind: kinds depend on it, never the other way round.

use super::checks::Check;
use super::outcomes::ItemOutcomes;
use super::probe::ProbeSpec;
use super::score::TaskScore;
use super::vectors::{GeneVectors, SymbolMapper};
use crate::error::Result;
use std::any::{Any, TypeId};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// One task kind's steps (the settings struct of a `[table]` implements it).
/// Kinds, their data and their features are `Sync`: a run fits stores and folds on
/// several threads.
pub(crate) trait Task: Sync {
    /// The kind's table name in task files.
    const TABLE: &'static str;
    /// The items and their truth, read from the task's files once per run.
    type Data: Sync;
    /// What one store makes of the items: their features, or what builds them.
    type Features: Sync;

    /// The settings' numbers with their allowed ranges, checked when the file is read.
    fn checks(&self) -> Vec<Check> {
        Vec::new()
    }

    /// Rules between settings (keys that go together), checked when the file is read.
    fn validate(&self) -> std::result::Result<(), String> {
        Ok(())
    }

    /// Reads the items (symbols mapped to approved ones).
    fn read(&self, task: &TaskContext, mapper: &mut SymbolMapper) -> Result<Self::Data>;

    /// The genes the kind scores as items, with their classes or pairs.
    fn genes(&self, task: &TaskContext, mapper: &mut SymbolMapper) -> Result<TaskGenes>;

    /// The genes the kind reads as features or predicts over the whole transcriptome
    /// (an expression matrix's genes); empty for most kinds.
    fn expression_genes(
        &self,
        _task: &TaskContext,
        _mapper: &mut SymbolMapper,
    ) -> Result<BTreeSet<String>> {
        Ok(BTreeSet::new())
    }

    /// Whether the kind embeds text with the store's encoder (cell sentences), so that
    /// the stores must be opened with it.
    fn needs_text_encoder(&self) -> bool {
        false
    }

    /// How the kind's outcomes are named and summarised.
    fn scoring(&self, data: &Self::Data) -> Scoring;

    /// One store's covered items, features and folds; `None` when the store cannot
    /// take the task at all (cell sentences with no text encoder in the run).
    fn layout(
        &self,
        task: &TaskContext,
        data: &Self::Data,
        store: StoreView,
        state: &mut RunState,
    ) -> Result<Option<Layout<Self::Features>>>;

    /// Fits on one fold's training items and predicts its test items.
    fn fit_fold(
        &self,
        task: &TaskContext,
        data: &Self::Data,
        store: &GeneVectors,
        layout: &Layout<Self::Features>,
        fold: &Fold,
    ) -> Result<Predictions>;

    /// Adds the kind's further metrics (from the predictions' `extra` rows) and, for
    /// the first store scored, a map of the items.
    fn finish(
        &self,
        _data: &Self::Data,
        _store: &GeneVectors,
        _layout: &Layout<Self::Features>,
        _extra: &[Vec<f64>],
        _score: &mut TaskScore,
        _first: bool,
    ) {
    }
}

/// A task's labelled pairs as (gene, gene, interacts): training file, then test file.
pub type LabelledPairs = (Vec<(String, String, bool)>, Vec<(String, String, bool)>);

/// The genes a task scores as items, so that training data can leave them out and a
/// caller drawing genes can keep every class (or whole pairs) scorable.
#[derive(Debug, Clone, Default)]
pub struct TaskGenes {
    /// Approved symbols of every gene scored as an item (pair members, classified
    /// genes, perturbed genes, genes whose number is predicted).
    pub items: BTreeSet<String>,
    /// For class and family tasks: (approved symbol, class name), sorted by symbol;
    /// genes with more than one of the task's classes are left out, as the task leaves
    /// them out.
    pub classes: Option<Vec<(String, String)>>,
    /// For pair tasks: the labelled pairs.
    pub pairs: Option<LabelledPairs>,
}

/// The store being scored, and every store of the run (a store without a text encoder
/// borrows another's for cell sentences).
#[derive(Clone, Copy)]
pub(crate) struct StoreView<'a> {
    /// The store.
    pub(crate) vectors: &'a GeneVectors,
    /// All stores of the run, the floor last.
    pub(crate) all: &'a [&'a GeneVectors],
}

/// What kinds keep across the tasks of one run (cell vectors that several cell tasks
/// share, say): one value per type, made on first use, so that this module needs to
/// know no kind's types.
#[derive(Default)]
pub(crate) struct RunState {
    shared: HashMap<TypeId, Box<dyn Any>>,
}

impl RunState {
    /// The run's value of type `T` (its default the first time).
    pub(crate) fn get<T: Default + 'static>(&mut self) -> &mut T {
        self.shared
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Box::new(T::default()))
            .downcast_mut::<T>()
            .expect("a RunState value is stored under its own type id")
    }
}

/// What a kind needs from its task file besides its own table.
pub(crate) struct TaskContext<'a> {
    /// The folder the task file is in; relative data paths start here.
    pub(crate) base: &'a Path,
    /// The probe's settings.
    pub(crate) probe: &'a ProbeSpec,
}

impl TaskContext<'_> {
    /// A data path from the task file, relative to the file's folder.
    pub(crate) fn data_path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }
}

/// One store's view of a task's items.
pub(crate) struct Layout<F> {
    /// The kind's features for the covered items.
    pub(crate) features: F,
    /// Items scored (with several stores, those every store covers).
    pub(crate) covered: usize,
    /// Items the store covers by itself.
    pub(crate) own_covered: usize,
    /// The folds (or the one given split); indices are the kind's own.
    pub(crate) folds: Vec<Fold>,
}

/// Training and test items of one fold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fold {
    /// Training items.
    pub(crate) train: Vec<usize>,
    /// Test items.
    pub(crate) test: Vec<usize>,
}

/// What one fold predicted.
pub(crate) struct Predictions {
    /// Per test item, the outcome the main metric is made from.
    pub(crate) outcomes: ItemOutcomes,
    /// Per test item, the layout's index of the item (for [`OutcomeOrder::Items`]).
    pub(crate) items: Vec<usize>,
    /// Per test item, values the kind's further metrics need (class probabilities, a
    /// baseline's score); empty rows when it needs none.
    pub(crate) extra: Vec<Vec<f64>>,
}

impl Predictions {
    /// Predictions of `items` with no further values.
    pub(crate) fn new(outcomes: ItemOutcomes, items: Vec<usize>) -> Self {
        let extra = vec![Vec::new(); items.len()];
        Predictions {
            outcomes,
            items,
            extra,
        }
    }
}

/// How a kind's outcomes become a score.
pub(crate) struct Scoring {
    /// The main metric's name.
    pub(crate) metric: String,
    /// Items in the task's files.
    pub(crate) total: usize,
    /// What the items are called in messages ("cells", "genes", ...).
    pub(crate) unit: &'static str,
    /// How the interval is made.
    pub(crate) interval: IntervalRule,
    /// Class names, for class outcomes (confusion matrix rows).
    pub(crate) classes: Option<Vec<String>>,
    /// In which order the outcomes are listed (which the bootstrap resamples).
    pub(crate) order: OutcomeOrder,
}

/// How a score's interval is made.
pub(crate) enum IntervalRule {
    /// 95% percentile bootstrap over test items, with the seed given and the items
    /// named in the report.
    Bootstrap {
        /// Seed of the resamples.
        seed: u64,
        /// What is resampled ("test items", "genes").
        of: &'static str,
    },
    /// The lowest and highest per-fold value.
    FoldRange,
}

/// The order of the outcomes of all folds together.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutcomeOrder {
    /// Fold after fold, as predicted.
    Folds,
    /// By the layout's item index.
    Items,
}
