//! The study end to end: genes, profiles from every model, a store each beside the NCBI
//! reference, every task on every store, paired tests, profile accuracy and gene-set
//! naming, then one report. Every expensive stage is cached (see [`super::cache`]).
//! [`run_study`] runs the stages in order; the ones that make profiles and stores are
//! here, the ones that score them in [`super::scoring`].

use super::acquisition::{run_acquisition, AcquisitionReport};
use super::config::{StudyConfig, StudyModel, NCBI_STORE};
use super::genes::{select_study_genes, StudyGenes};
use super::report::{ModelRecord, PairedRow, StudyReport};
use super::scoring::{
    check_profiles, gene_set_naming, incompleteness, probe_tasks, Accuracy, Naming, Probes,
};
use super::stages::{answers, store, AskSettings};
use crate::device::parse_device;
use crate::embed::SentenceEmbedder;
use crate::error::{Error, Result};
use crate::fsutil::atomic_write_bytes;
use crate::genes::{read_gene_list, GeneCatalog, GeneList};
use crate::models::{ModelCache, ModelDir};
use crate::profile::{
    gene_subjects, write_profiles, GenerationSettings, ProfileBuild, ProfileRecord, PromptTemplate,
    RefseqSummaries, Subject, SubjectKind,
};
use crate::store::GeneStore;
use crate::tasks::{paired_bootstrap, ItemOutcomes, SymbolMapper, TaskSpec};
use crate::train::split::{DataSplit, SplitRole};
use candle_core::Device;
use std::path::PathBuf;

/// Which arms of the study a run makes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StudyArm {
    /// Both: the held-out arm, then the acquisition arm when the file has one.
    #[default]
    Both,
    /// Only the held-out arm (genes no model was taught).
    Heldout,
    /// Only the acquisition arm (the file must have an `[acquisition]` section).
    Acquisition,
}

/// How a study run is made.
#[derive(Debug, Clone, Default)]
pub struct StudyOptions {
    /// Use the config's `[quick]` settings, with outputs in `OUT/quick`.
    pub quick: bool,
    /// The source revision the run came from (recorded in the report).
    pub commit: Option<String>,
    /// The arms to run.
    pub arm: StudyArm,
}

/// The reports of the arms a run made.
#[derive(Debug, Clone)]
pub struct StudyResults {
    /// The held-out arm's report (`OUT/study.md`).
    pub heldout: Option<StudyReport>,
    /// The acquisition arm's report (`OUT/acquisition/acquisition.md`).
    pub acquisition: Option<AcquisitionReport>,
}

/// Where a study run writes: `OUT` or, for `--quick`, `OUT/quick`.
pub fn study_dir(config: &StudyConfig, quick: bool) -> PathBuf {
    let out = config.out_dir();
    if quick {
        out.join("quick")
    } else {
        out
    }
}

/// Runs the study (or its quick version): the arms `options` asks for, each writing its
/// report into the run's folder.
pub fn run_study(config: &StudyConfig, options: &StudyOptions) -> Result<StudyResults> {
    if options.arm == StudyArm::Acquisition && config.acquisition.is_none() {
        return Err(Error::InvalidArgument(
            "the study file has no [acquisition] section, so there is no acquisition arm to run"
                .into(),
        ));
    }
    let setup = Setup::new(config, options)?;
    let encoder = setup.cache.resolve(&setup.config.embedding.model)?;
    let embedder = SentenceEmbedder::load(&encoder, &setup.device)?;
    let heldout = match options.arm {
        StudyArm::Acquisition => None,
        _ => Some(heldout_arm(&setup, &encoder, &embedder)?),
    };
    let acquisition = match options.arm {
        StudyArm::Heldout => None,
        _ => run_acquisition(&setup, &embedder, &encoder)?,
    };
    Ok(StudyResults {
        heldout,
        acquisition,
    })
}

/// The held-out arm: genes no model was taught, profiled by every model of the file.
fn heldout_arm(
    setup: &Setup,
    encoder: &ModelDir,
    embedder: &SentenceEmbedder,
) -> Result<StudyReport> {
    let resolved = resolve_models(setup)?;
    let (mut genes, list) = draw_genes(setup)?;
    let reference = reference_profiles(setup, embedder, &list, &mut genes)?;
    let profiles = model_profiles(setup, embedder, &list, &genes, resolved)?;
    // Models first, reference last: the report's tables read base -> fine-tuned -> NCBI.
    let mut stores = profiles.stores;
    stores.push(reference.store);
    let mut probes = probe_tasks(setup, &genes, &stores)?;
    let accuracy = check_profiles(
        setup,
        embedder,
        &list,
        &genes,
        &profiles.texts,
        &reference.texts,
    )?;
    let naming = gene_set_naming(setup, embedder, &profiles.dirs)?;
    // Every task is scored on every store and on the random baseline beside them.
    let expected = stores.len() + 1;
    let missing = incompleteness(&probes.eval, &probes.coverage, expected);
    probes.problems.extend(missing);
    write_report(
        setup,
        encoder,
        genes,
        profiles.models,
        probes,
        accuracy,
        naming,
    )
}

/// What every stage reads: the run's settings, where it writes, and what is loaded once
/// for the whole run.
pub(super) struct Setup {
    /// The study file, with `[quick]` applied for a quick run.
    pub(super) config: StudyConfig,
    /// How the run was asked for (quick, commit), for the report.
    pub(super) options: StudyOptions,
    /// The run's folder (see [`study_dir`]).
    pub(super) out: PathBuf,
    /// Where the models and the encoder run.
    pub(super) device: Device,
    /// The gene catalogue shipped with bftembed.
    pub(super) catalog: GeneCatalog,
    /// The probe tasks, read before any work so a bad task file fails at once.
    pub(super) tasks: Vec<TaskSpec>,
    /// Where models and the encoder are found.
    pub(super) cache: ModelCache,
}

impl Setup {
    /// Applies `--quick`, makes the run's folder, and loads the device, the catalogue, the
    /// tasks and the model cache.
    fn new(config: &StudyConfig, options: &StudyOptions) -> Result<Self> {
        let config = if options.quick {
            config.clone().quick()
        } else {
            config.clone()
        };
        let out = study_dir(&config, options.quick);
        std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
        let device = parse_device(&config.device)?;
        let catalog = GeneCatalog::embedded()?;
        let tasks = config
            .tasks
            .iter()
            .map(|t| TaskSpec::read(&config.path(t)))
            .collect::<Result<Vec<_>>>()?;
        let cache = ModelCache::from_env()?;
        Ok(Self {
            config,
            options: options.clone(),
            out,
            device,
            catalog,
            tasks,
            cache,
        })
    }

    /// The gene prompt every model is asked with.
    pub(super) fn gene_prompt(&self) -> Result<PromptTemplate> {
        match &self.config.generation.template {
            Some(t) => PromptTemplate::read(&self.config.path(t), SubjectKind::Gene.fields()),
            None => PromptTemplate::default_for(SubjectKind::Gene),
        }
    }

    /// How every model is asked: `template`, the config's decoding and batch, the device.
    pub(super) fn ask<'a>(&'a self, template: &'a PromptTemplate) -> AskSettings<'a> {
        let g = &self.config.generation;
        AskSettings {
            template,
            generation: GenerationSettings {
                max_new_tokens: g.max_new_tokens,
                temperature: g.temperature,
                top_p: g.top_p,
                seed: g.seed,
            },
            batch_size: g.batch_size,
            device: &self.device,
        }
    }

    /// The model the paired tests centre on.
    pub(super) fn focus(&self) -> &str {
        self.config.comparison.focus.as_str()
    }

    /// Where the profile tables go, one per model and one for the reference.
    fn profiles_dir(&self) -> PathBuf {
        self.out.join("profiles")
    }

    /// Where the stores go, one per profile table.
    fn stores_dir(&self) -> PathBuf {
        self.out.join("stores")
    }

    /// One paired row, the focus model against `other`, bootstrapped with the config's
    /// resamples and seed so every section of the report is resampled alike.
    pub(super) fn paired_row(
        &self,
        section: &str,
        item: &str,
        metric: &str,
        other: &str,
        focus_items: &ItemOutcomes,
        other_items: &ItemOutcomes,
    ) -> PairedRow {
        let comparison = &self.config.comparison;
        PairedRow {
            section: section.into(),
            item: item.into(),
            metric: metric.into(),
            focus: self.focus().to_string(),
            other: other.to_string(),
            result: paired_bootstrap(
                focus_items,
                other_items,
                comparison.resamples,
                comparison.seed,
            ),
        }
    }
}

/// Finds (and checksums) every model, by name.
fn resolve_models(setup: &Setup) -> Result<Vec<(String, ModelDir)>> {
    // Every model is found before any work, so a missing checkpoint fails at once
    // rather than after the reference store is built.
    setup
        .config
        .models
        .iter()
        .map(|m| {
            Ok((
                m.name.clone(),
                resolve_model(&setup.cache, &setup.config, m)?,
            ))
        })
        .collect()
}

/// One model: a named model from the cache, or a trained folder (which must exist).
fn resolve_model(cache: &ModelCache, config: &StudyConfig, m: &StudyModel) -> Result<ModelDir> {
    match (&m.model, &m.folder) {
        (Some(name), _) => cache.resolve(name),
        (None, Some(folder)) => {
            let path = config.path(folder);
            if !path.is_dir() {
                return Err(Error::InvalidArgument(format!(
                    "model '{}': no folder at {} (train it first: see train/compare.sh)",
                    m.name,
                    path.display()
                )));
            }
            ModelDir::from_folder(&path)
        }
        (None, None) => Err(Error::InvalidArgument(format!(
            "model '{}' names neither a model nor a folder",
            m.name
        ))),
    }
}

/// Draws the study genes from the split's evaluation genes and writes them to
/// `genes.txt`, which is read back as the gene list every later stage profiles.
fn draw_genes(setup: &Setup) -> Result<(StudyGenes, GeneList)> {
    eprintln!("study: choosing genes");
    let config = &setup.config;
    let mut mapper = SymbolMapper::new(&setup.catalog);
    let genes = select_study_genes(
        &setup.tasks,
        &evaluation_genes(&setup.config)?,
        &mut mapper,
        config.genes.per_task,
        config.genes.seed,
    )?;
    let genes_file = setup.out.join("genes.txt");
    let listing = format!(
        "# study genes: evaluation genes of the split, drawn per task (see report.json)\n{}\n",
        genes.genes.join("\n")
    );
    atomic_write_bytes(&genes_file, listing.as_bytes())?;
    let list = read_gene_list(&genes_file)?;
    Ok((genes, list))
}

/// The split's evaluation genes: the genes no training pair of the compared checkpoints
/// holds, and the only ones either arm draws from.
pub(super) fn evaluation_genes(config: &StudyConfig) -> Result<std::collections::BTreeSet<String>> {
    let split = DataSplit::read(&config.path(&config.split))?;
    Ok(split.genes_with(SplitRole::Eval).into_iter().collect())
}

/// The NCBI reference, as the reference stage leaves it for the later ones.
struct Reference {
    /// Its store, named [`NCBI_STORE`].
    store: (String, GeneStore),
    /// (symbol, text) of every reference profile, for the factual check.
    texts: SymbolTexts,
}

/// Writes a profile per study gene from its RefSeq summary and builds their store;
/// study genes without a summary are dropped from `genes`.
fn reference_profiles(
    setup: &Setup,
    embedder: &SentenceEmbedder,
    list: &GeneList,
    genes: &mut StudyGenes,
) -> Result<Reference> {
    eprintln!("study: NCBI reference store");
    let reference = RefseqSummaries::embedded()?.profiles_for(list, &setup.catalog);
    if !reference.skipped.is_empty() {
        drop_unsummarised(&reference, genes);
    }
    let profiles_dir = setup.profiles_dir();
    let reference_file = profiles_dir.join(format!("{NCBI_STORE}.parquet"));
    std::fs::create_dir_all(&profiles_dir).map_err(|e| Error::io(&profiles_dir, e))?;
    write_profiles(&reference_file, &reference.records)?;
    let built = store(
        embedder,
        &reference.records,
        Some(&reference_file),
        &setup.stores_dir().join(NCBI_STORE),
    )?;
    Ok(Reference {
        store: (NCBI_STORE.to_string(), built),
        texts: symbol_texts(&reference.records),
    })
}

/// Notes the study genes the reference skipped and keeps only those it profiled.
fn drop_unsummarised(reference: &ProfileBuild, genes: &mut StudyGenes) {
    // Study genes come from the split, which lists genes with a summary; a gene
    // dropping out here means the split and the shipped summaries disagree.
    let names: Vec<&str> = reference
        .skipped
        .iter()
        .map(|s| s.symbol.as_str())
        .collect();
    eprintln!(
        "note: {} study genes have no RefSeq summary and are left out: {}",
        names.len(),
        names.join(", ")
    );
    let keep: std::collections::HashSet<&str> = reference
        .records
        .iter()
        .map(|r| r.symbol.as_str())
        .collect();
    genes.genes.retain(|g| keep.contains(g.as_str()));
}

/// What the profile stage leaves for the later ones, per model in the config's order.
struct ModelProfiles {
    /// Name, id and checksum, for the report.
    models: Vec<ModelRecord>,
    /// The model itself, for gene-set naming.
    dirs: Vec<(String, ModelDir)>,
    /// (symbol, text) of every profile, for profile accuracy.
    texts: Vec<(String, SymbolTexts)>,
    /// The store of its profiles.
    stores: Vec<(String, GeneStore)>,
}

/// Asks every model for a profile of each study gene (cached per model) and builds a
/// store of each model's profiles.
fn model_profiles(
    setup: &Setup,
    embedder: &SentenceEmbedder,
    list: &GeneList,
    genes: &StudyGenes,
    resolved: Vec<(String, ModelDir)>,
) -> Result<ModelProfiles> {
    let template = setup.gene_prompt()?;
    let ask = setup.ask(&template);
    let subjects = study_subjects(list, &setup.catalog, genes)?;
    let (profiles_dir, stores_dir) = (setup.profiles_dir(), setup.stores_dir());
    let mut profiles = ModelProfiles {
        models: Vec::new(),
        dirs: Vec::new(),
        texts: Vec::new(),
        stores: Vec::new(),
    };
    for (name, dir) in resolved {
        eprintln!("study: profiles from {name} ({})", dir.id);
        let file = profiles_dir.join(format!("{name}.parquet"));
        let records = answers(&dir, &subjects, SubjectKind::Gene, &ask, &file)?;
        profiles.texts.push((name.clone(), symbol_texts(&records)));
        let built = store(embedder, &records, Some(&file), &stores_dir.join(&name))?;
        profiles.stores.push((name.clone(), built));
        profiles.models.push(ModelRecord {
            name: name.clone(),
            id: dir.id.clone(),
            weights_sha256: dir.weights_sha256.clone(),
        });
        profiles.dirs.push((name, dir));
    }
    Ok(profiles)
}

/// The study genes as profile subjects, for every model alike.
pub(super) fn study_subjects(
    list: &GeneList,
    catalog: &GeneCatalog,
    genes: &StudyGenes,
) -> Result<Vec<Subject>> {
    let (subjects, skipped) = gene_subjects(list, catalog);
    if let Some(s) = skipped.first() {
        return Err(Error::InvalidArgument(format!(
            "study gene {} cannot be profiled: {}",
            s.symbol, s.reason
        )));
    }
    // The list is genes.txt as drawn; the models are asked only about the genes the
    // reference kept, so every store is scored on the same genes.
    Ok(subjects
        .into_iter()
        .filter(|s| genes.genes.contains(&s.key))
        .collect())
}

/// (symbol, text) pairs.
pub(super) type SymbolTexts = Vec<(String, String)>;

/// (symbol, text) of each profile, in the table's order.
pub(super) fn symbol_texts(records: &[ProfileRecord]) -> SymbolTexts {
    records
        .iter()
        .map(|r| (r.symbol.clone(), r.text.clone()))
        .collect()
}

/// Assembles the report from every stage's results and writes it into the run's folder.
fn write_report(
    setup: &Setup,
    encoder: &ModelDir,
    genes: StudyGenes,
    models: Vec<ModelRecord>,
    probes: Probes,
    accuracy: Accuracy,
    naming: Naming,
) -> Result<StudyReport> {
    // Sections in the order they were scored: tasks, profile accuracy, naming.
    let mut paired = probes.paired;
    paired.extend(accuracy.paired);
    paired.extend(naming.paired);
    let report = StudyReport {
        bftembed_version: env!("CARGO_PKG_VERSION").to_string(),
        commit: setup.options.commit.clone(),
        created_unix: crate::fsutil::unix_now(),
        quick: setup.options.quick,
        config_text: setup.config.source_text.clone(),
        embedding_model: ModelRecord {
            name: "encoder".into(),
            id: encoder.id.clone(),
            weights_sha256: encoder.weights_sha256.clone(),
        },
        models,
        focus: setup.focus().to_string(),
        genes,
        coverage: probes.coverage,
        eval: probes.eval,
        paired,
        accuracy: accuracy.rows,
        gene_sets: naming.sets,
        naming: naming.scores,
        naming_floor: naming.floor,
        problems: probes.problems,
    };
    report.write(&setup.out)?;
    Ok(report)
}
