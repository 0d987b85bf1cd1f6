//! The teaching half of the acquisition arm: which genes are taught and which are never
//! taught, their cards, the split that says so, and one training run per objective and
//! seed under the shared budget of the arm's training config.

use super::super::config::{AcquisitionConfig, AcquisitionRun};
use super::super::genes::{select_study_genes, StudyGenes};
use super::super::run::{evaluation_genes, Setup};
use crate::error::{Error, Result};
use crate::fsutil::atomic_write_bytes;
use crate::models::ModelDir;
use crate::profile::{write_profiles, CardTemplate, GeneCards, ProfileRecord};
use crate::tasks::SymbolMapper;
use crate::train::split::{DataSplit, SplitRole};
use crate::train::{TrainConfig, CHECKPOINT_FOLDER};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The arm's genes and the cards taught (or, for never-taught genes, held out).
pub(super) struct TeachingSet {
    /// Genes whose cards are taught, as drawn per task.
    pub(super) taught: StudyGenes,
    /// As many genes drawn the same way from the rest, never taught.
    pub(super) untaught: StudyGenes,
    /// The card of every gene of both sets, taught first.
    pub(super) cards: Vec<ProfileRecord>,
    /// The table the cards are written to (the training runs read it).
    pub(super) cards_file: PathBuf,
    /// The split the training runs use.
    pub(super) split_file: PathBuf,
}

impl TeachingSet {
    /// Both sets' genes, taught first.
    pub(super) fn all_genes(&self) -> StudyGenes {
        let mut genes = self.taught.genes.clone();
        genes.extend(self.untaught.genes.iter().cloned());
        StudyGenes {
            genes,
            draws: Vec::new(),
        }
    }

    /// The cards of one set's genes.
    pub(super) fn cards_of(&self, genes: &StudyGenes) -> Vec<ProfileRecord> {
        let wanted: BTreeSet<&str> = genes.genes.iter().map(String::as_str).collect();
        self.cards
            .iter()
            .filter(|c| wanted.contains(c.symbol.as_str()))
            .cloned()
            .collect()
    }
}

/// Draws the taught and never-taught genes from the split's evaluation genes (the tasks'
/// labelled genes that no compared checkpoint trained on), writes their cards and the
/// arm's split into `dir`. Genes without a card leave their set.
pub(super) fn teaching_set(
    setup: &Setup,
    acquisition: &AcquisitionConfig,
    tasks: &[crate::tasks::TaskSpec],
    dir: &Path,
) -> Result<TeachingSet> {
    eprintln!("study: acquisition arm: drawing taught and never-taught genes");
    let eval = evaluation_genes(&setup.config)?;
    let mut mapper = SymbolMapper::new(&setup.catalog);
    let (per_task, seed) = (acquisition.per_task, acquisition.seed);
    let mut taught = select_study_genes(tasks, &eval, &mut mapper, per_task, seed)?;
    let rest: BTreeSet<String> = eval
        .into_iter()
        .filter(|g| taught.genes.binary_search(g).is_err())
        .collect();
    let mut untaught = select_study_genes(tasks, &rest, &mut mapper, per_task, seed ^ 0x5eed)?;
    let template = CardTemplate::read(&setup.config.path(&acquisition.card_template))?;
    let writer = GeneCards::embedded(template)?;
    let mut cards = Vec::new();
    for set in [&mut taught, &mut untaught] {
        set.genes.retain(|symbol| {
            let card = setup.catalog.by_symbol(symbol).map(|g| writer.card(g));
            match card {
                Some(Ok(card)) => {
                    cards.push(card);
                    true
                }
                _ => {
                    eprintln!("note: {symbol} has no card and is left out of the acquisition arm");
                    false
                }
            }
        });
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let cards_file = dir.join("cards.parquet");
    write_profiles(&cards_file, &cards)?;
    let split_file = dir.join("split.tsv");
    let roles = taught
        .genes
        .iter()
        .map(|g| (g.as_str(), SplitRole::Train))
        .chain(
            untaught
                .genes
                .iter()
                .map(|g| (g.as_str(), SplitRole::Heldout)),
        );
    DataSplit::of_genes(roles).write(&split_file)?;
    Ok(TeachingSet {
        taught,
        untaught,
        cards,
        cards_file,
        split_file,
    })
}

/// One trained model of the arm.
pub(super) struct TrainedRun {
    /// `objective-sSEED`.
    pub(super) name: String,
    /// Its objective (`bft`, ...), which groups runs of several seeds.
    pub(super) objective: String,
    /// Its checkpoint.
    pub(super) model: ModelDir,
    /// Held-out cross-entropy on never-taught cards before and after training.
    pub(super) heldout_ce: (Option<f64>, f64),
}

/// Trains every run (or continues it, or finds it done) and returns its checkpoint.
/// `steps` overrides the training config's (for `--quick`).
pub(super) fn train_runs(
    setup: &Setup,
    acquisition: &AcquisitionConfig,
    set: &TeachingSet,
    dir: &Path,
    steps: Option<usize>,
) -> Result<Vec<TrainedRun>> {
    let mut trained = Vec::new();
    for run in &acquisition.runs {
        let config = run_config(setup, acquisition, run, set, dir, steps)?;
        eprintln!("study: acquisition arm: training {}", config.name);
        let summary = crate::train::run(&config, true)?;
        trained.push(TrainedRun {
            name: run.name(),
            objective: run.objective.clone(),
            model: ModelDir::from_folder(&config.out_dir().join(CHECKPOINT_FOLDER))?,
            heldout_ce: (
                summary.base_heldout.map(|(ce, _)| ce),
                summary.final_heldout.0,
            ),
        });
    }
    Ok(trained)
}

/// The training config of one run: the arm's shared config with the run's name, folder,
/// seed and objective, the arm's split and cards, and the study's gene prompt; written
/// to `dir/runs/NAME.toml` (a file `bftembed train` runs too) and read back, so it is
/// checked as any training config is. A folder trained with other settings is refused.
fn run_config(
    setup: &Setup,
    acquisition: &AcquisitionConfig,
    run: &AcquisitionRun,
    set: &TeachingSet,
    dir: &Path,
    steps: Option<usize>,
) -> Result<TrainConfig> {
    let source = setup.config.path(&acquisition.training);
    let shared = TrainConfig::read(&source)?;
    let text = std::fs::read_to_string(&source).map_err(|e| Error::io(&source, e))?;
    let mut table: toml::Table =
        toml::from_str(&text).map_err(|e| Error::bad_file(&source, e.to_string()))?;
    let name = run.name();
    let out = dir.join("runs").join(&name);
    let path_value = |p: &Path| toml::Value::String(p.to_string_lossy().into_owned());
    table.insert("name".into(), toml::Value::String(name.clone()));
    table.insert("out".into(), path_value(&out));
    table.insert("seed".into(), toml::Value::Integer(run.seed as i64));
    // A base given as a path stays the same file once the config moves.
    let base = shared.path(Path::new(&shared.base_model));
    if base.exists() {
        table.insert("base_model".into(), path_value(&base));
    }
    let section = |table: &mut toml::Table, key: &str| -> Result<toml::Table> {
        match table.remove(key) {
            Some(toml::Value::Table(t)) => Ok(t),
            _ => Err(Error::bad_file(&source, format!("no [{key}] table"))),
        }
    };
    let mut objective = section(&mut table, "objective")?;
    objective.insert("kind".into(), toml::Value::String(run.objective.clone()));
    table.insert("objective".into(), toml::Value::Table(objective));
    let mut data = section(&mut table, "data")?;
    for key in ["go_terms", "summaries", "max_go_pairs", "max_train_pairs"] {
        data.remove(key);
    }
    data.insert("split".into(), path_value(&set.split_file));
    data.insert("answers".into(), path_value(&set.cards_file));
    if let Some(t) = &setup.config.generation.template {
        data.insert("gene_template".into(), path_value(&setup.config.path(t)));
    }
    table.insert("data".into(), toml::Value::Table(data));
    if let Some(steps) = steps {
        let mut r = section(&mut table, "run")?;
        r.insert("steps".into(), toml::Value::Integer(steps as i64));
        let every = toml::Value::Integer(steps.max(1) as i64);
        r.insert("eval_every".into(), every.clone());
        r.insert("checkpoint_every".into(), every);
        table.insert("run".into(), toml::Value::Table(r));
    }
    // The cards are named by path; their checksum in the header makes a new draw of
    // genes a different config, which `refuse_other_settings` catches.
    let card_texts: Vec<&str> = set
        .cards
        .iter()
        .flat_map(|c| [c.symbol.as_str(), c.text.as_str()])
        .collect();
    let written = format!(
        "# Written by `bftembed study` from {} for the acquisition run {name}.\n# Teaching cards: {}\n{}",
        source.display(),
        super::super::cache::fingerprint(&card_texts),
        toml::to_string(&table).map_err(|e| Error::bad_file(&source, e.to_string()))?
    );
    let file = dir.join("runs").join(format!("{name}.toml"));
    std::fs::create_dir_all(dir.join("runs")).map_err(|e| Error::io(dir, e))?;
    refuse_other_settings(&out, &written)?;
    atomic_write_bytes(&file, written.as_bytes())?;
    TrainConfig::read(&file)
}

/// A run folder whose recorded config differs from `written` was trained with other
/// settings (or another draw of genes): continuing it would mix two experiments.
fn refuse_other_settings(out: &Path, written: &str) -> Result<()> {
    let recorded = out.join("config.toml");
    match std::fs::read_to_string(&recorded) {
        Ok(old) if old != written => Err(Error::bad_file(
            &recorded,
            "this acquisition run was trained with other settings or genes; remove its folder to train it again",
        )),
        _ => Ok(()),
    }
}
