//! The study's acquisition arm: does BFT make a model acquire more of what it is taught
//! than SFT and DFT? Every objective teaches the same base model the cards of the same
//! taught genes under one budget; then every model (the base included) is asked the
//! profile prompt about those genes, closed book, and about as many genes it was never
//! taught. The profiles are scored against the cards (recall, specificity, GO facts),
//! on the tasks the genes carry, and the cards' token probabilities are diagnosed before
//! and after training. The hypotheses and decision rule are in docs/STUDY.md.

mod measures;
mod report;
mod scores;
mod teach;

pub use measures::{gap_closed, go_recall, holm};
pub use report::{AcquisitionReport, PrimaryTest, ProbeRow, RecallRow, RunRecord};

use super::genes::StudyGenes;
use super::report::ModelRecord;
use super::run::{symbol_texts, Setup, SymbolTexts};
use super::stages::answers;
use crate::embed::SentenceEmbedder;
use crate::error::Result;
use crate::models::ModelDir;
use crate::profile::{ProfileRecord, SubjectKind};
use crate::tasks::TaskSpec;
use std::path::PathBuf;
use teach::{teaching_set, train_runs, TeachingSet};

/// The name of the base model's profiles in the arm's tables.
pub const BASE_MODEL: &str = "base";
/// The name of the cards' store (the ceiling of the probe tasks).
pub const CARDS_STORE: &str = "cards";

/// One model of the arm: the base or a trained run.
pub(super) struct ArmModel {
    /// `base` or `objective-sSEED`.
    pub(super) name: String,
    /// Its objective (`base` for the base model).
    pub(super) objective: String,
    /// Its weights.
    pub(super) dir: ModelDir,
    /// Its profiles of the taught and never-taught genes.
    pub(super) records: Vec<ProfileRecord>,
}

/// Runs the acquisition arm when the config has one: teach, ask, score, and write the
/// report into `OUT/acquisition`.
pub(super) fn run_acquisition(
    setup: &Setup,
    embedder: &SentenceEmbedder,
    encoder: &ModelDir,
) -> Result<Option<AcquisitionReport>> {
    let Some(acquisition) = &setup.config.acquisition else {
        return Ok(None);
    };
    let dir = setup.out.join("acquisition");
    let tasks = acquisition
        .tasks
        .iter()
        .map(|t| TaskSpec::read(&setup.config.path(t)))
        .collect::<Result<Vec<_>>>()?;
    let set = teaching_set(setup, acquisition, &tasks, &dir)?;
    let steps = match (&setup.config.quick.acquisition, setup.options.quick) {
        (Some(q), true) => Some(q.steps),
        _ => None,
    };
    let runs = train_runs(setup, acquisition, &set, &dir, steps)?;
    let training = crate::train::TrainConfig::read(&setup.config.path(&acquisition.training))?;
    let base = crate::train::base_model_dir(&training)?;
    let mut models = vec![(BASE_MODEL.to_string(), BASE_MODEL.to_string(), base)];
    models.extend(
        runs.iter()
            .map(|r| (r.name.clone(), r.objective.clone(), r.model.clone())),
    );
    let models = profiles(setup, &set, models, &dir.join("profiles"))?;
    let scored = scores::score(setup, embedder, &tasks, &set, &models, &dir)?;
    let report = AcquisitionReport::assemble(setup, encoder, &set, &runs, &models, scored);
    report.write(&dir)?;
    Ok(Some(report))
}

/// Asks every model the study's gene prompt about the taught and never-taught genes
/// (cached per model, as the held-out arm's profiles are).
fn profiles(
    setup: &Setup,
    set: &TeachingSet,
    models: Vec<(String, String, ModelDir)>,
    dir: &std::path::Path,
) -> Result<Vec<ArmModel>> {
    let template = setup.gene_prompt()?;
    let ask = setup.ask(&template);
    let genes = set.all_genes();
    let list_file = dir.join("genes.txt");
    std::fs::create_dir_all(dir).map_err(|e| crate::error::Error::io(dir, e))?;
    let listing = format!(
        "# acquisition arm: taught genes, then never-taught genes\n{}\n",
        genes.genes.join("\n")
    );
    crate::fsutil::atomic_write_bytes(&list_file, listing.as_bytes())?;
    let list = crate::genes::read_gene_list(&list_file)?;
    let subjects = super::run::study_subjects(&list, &setup.catalog, &genes)?;
    let mut out = Vec::new();
    for (name, objective, model) in models {
        eprintln!("study: acquisition arm: profiles from {name}");
        let file: PathBuf = dir.join(format!("{name}.parquet"));
        let records: Vec<ProfileRecord> =
            answers(&model, &subjects, SubjectKind::Gene, &ask, &file)?;
        out.push(ArmModel {
            name,
            objective,
            dir: model,
            records,
        });
    }
    Ok(out)
}

impl ArmModel {
    /// (symbol, text) of its profiles of `genes`.
    pub(super) fn texts_of(&self, genes: &StudyGenes) -> SymbolTexts {
        let wanted: std::collections::HashSet<&str> =
            genes.genes.iter().map(String::as_str).collect();
        symbol_texts(&self.records)
            .into_iter()
            .filter(|(s, _)| wanted.contains(s.as_str()))
            .collect()
    }

    /// Its record for the report.
    pub(super) fn record(&self) -> ModelRecord {
        ModelRecord {
            name: self.name.clone(),
            id: self.dir.id.clone(),
            weights_sha256: self.dir.weights_sha256.clone(),
        }
    }
}
