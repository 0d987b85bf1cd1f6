//! The study's settings (`train/study.toml`): which models write profiles, which genes
//! and tasks they are judged on, and how. Paths are relative to the file; unknown keys
//! are refused with their line.

use crate::error::{Error, Result};
use crate::fsutil::{lexically_clean, parent_dir};
use std::path::{Path, PathBuf};

/// A whole study.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudyConfig {
    /// Output folder: profiles, stores, caches and the report.
    pub out: PathBuf,
    /// The training split; only its `eval` genes are profiled.
    pub split: PathBuf,
    /// Task files run on every store.
    pub tasks: Vec<PathBuf>,
    /// How the genes are drawn.
    pub genes: GeneSelection,
    /// Prompt and decoding, the same for every model.
    #[serde(default)]
    pub generation: GenerationConfig,
    /// The sentence encoder every store is built with.
    #[serde(default)]
    pub embedding: EmbeddingConfig,
    /// The models compared; the first is the base the others were fine-tuned from.
    pub models: Vec<StudyModel>,
    /// The paired comparisons.
    pub comparison: ComparisonConfig,
    /// Data for the factual check of profiles.
    pub facts: FactsConfig,
    /// Gene-set naming.
    pub gene_sets: GeneSetConfig,
    /// The acquisition arm: teach genes, then ask about them (absent: no such arm).
    pub acquisition: Option<AcquisitionConfig>,
    /// What `--quick` changes.
    pub quick: QuickConfig,
    /// `cpu`, `cuda[:N]`, `metal[:N]` or `auto`.
    #[serde(default = "default_device")]
    pub device: String,
    /// The folder of the config file.
    #[serde(skip)]
    pub base: PathBuf,
    /// The file's text, kept with the report.
    #[serde(skip)]
    pub source_text: String,
}

/// How the study's genes are drawn from the evaluation genes.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneSelection {
    /// At most this many evaluation genes drawn from each task's genes (the union is
    /// profiled).
    pub per_task: usize,
    /// Seed of the draw.
    #[serde(default = "default_seed")]
    pub seed: u64,
}

/// Decoding settings shared by every model.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerationConfig {
    /// Gene prompt template (default: the shipped profiles/gene.toml).
    pub template: Option<PathBuf>,
    /// Most tokens per profile.
    #[serde(default = "default_max_new_tokens")]
    pub max_new_tokens: usize,
    /// Prompts generated together.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// 0 is greedy.
    #[serde(default)]
    pub temperature: f64,
    /// Nucleus threshold (with temperature > 0).
    pub top_p: Option<f64>,
    /// Sampling seed.
    #[serde(default = "default_seed")]
    pub seed: u64,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        Self {
            template: None,
            max_new_tokens: default_max_new_tokens(),
            batch_size: default_batch_size(),
            temperature: 0.0,
            top_p: None,
            seed: default_seed(),
        }
    }
}

/// The sentence encoder.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingConfig {
    /// Registry name or model folder.
    #[serde(default = "default_embedding_model")]
    pub model: String,
}

impl Default for EmbeddingConfig {
    fn default() -> Self {
        Self {
            model: default_embedding_model(),
        }
    }
}

/// One model that writes profiles.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudyModel {
    /// Short name (store and column names): `base`, `sft`, ...
    pub name: String,
    /// A registry name (fetched if needed) ...
    pub model: Option<String>,
    /// ... or a model folder (a training checkpoint), relative to the config.
    pub folder: Option<PathBuf>,
}

/// Which model the paired tests centre on, and how many resamples they draw.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComparisonConfig {
    /// The model compared with every other store (`bft`).
    pub focus: String,
    /// Paired bootstrap resamples.
    #[serde(default = "default_resamples")]
    pub resamples: usize,
    /// Their seed.
    #[serde(default = "default_seed")]
    pub seed: u64,
}

/// GO data for the factual check.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FactsConfig {
    /// `symbol, go_id, annotation` (data/gene_ontology/gene_go_bp.tsv.gz).
    pub annotations: PathBuf,
    /// `go_id, ontology, term, definition` (data/gene_ontology/go_terms_bp.tsv.gz).
    pub go_terms: PathBuf,
    /// Term names shorter than this many words are not looked for in profiles (single
    /// words such as "growth" match too loosely).
    #[serde(default = "default_min_term_words")]
    pub min_term_words: usize,
}

/// Gene-set naming.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneSetConfig {
    /// Source files, each `name = path` (GeneAgent's GO, MSigDB and NeST files).
    pub sources: Vec<GeneSetSource>,
    /// Sets drawn per source.
    pub per_source: usize,
    /// A set's genes beyond this many are left out of the prompt (drawn, seeded).
    #[serde(default = "default_max_genes")]
    pub max_genes: usize,
    /// Most tokens per answer.
    #[serde(default = "default_name_tokens")]
    pub max_new_tokens: usize,
    /// Seed of the draws.
    #[serde(default = "default_seed")]
    pub seed: u64,
}

/// One gene-set file and the columns it keeps its genes and reference names in.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneSetSource {
    /// Short name (`go`, `msigdb`, `nest`).
    pub name: String,
    /// CSV or TSV (by extension, `.gz` allowed).
    pub file: PathBuf,
    /// Column of the set's identifier.
    pub id_column: String,
    /// Column of the genes (separated by spaces or commas).
    pub genes_column: String,
    /// Column of the reference name.
    pub name_column: String,
}

/// The acquisition arm: a set of taught genes whose cards every objective teaches the base
/// model under the same budget, then closed-book questions about exactly those genes
/// (and about as many never-taught genes, for generalisation).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcquisitionConfig {
    /// Tasks whose labelled genes are drawn (and scored on the taught genes' stores).
    pub tasks: Vec<PathBuf>,
    /// Taught genes drawn per task; as many never-taught genes are drawn beside them.
    pub per_task: usize,
    /// Seed of the draws.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// The card template of the teaching text (fields that state a task's labels must
    /// stay out of it).
    pub card_template: PathBuf,
    /// A training config (`bftembed train` format) with the shared budget: base model,
    /// optimizer, steps, batch, trained blocks. Its name, out, seed, objective kind and
    /// data files are set per run by the study.
    pub training: PathBuf,
    /// The trained models compared; every one starts from the training config's base.
    pub runs: Vec<AcquisitionRun>,
    /// The objective whose runs the paired tests centre on (`bft`).
    pub focus: String,
}

/// One training run of the acquisition arm.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcquisitionRun {
    /// `sft`, `dft`, `bft` or `bft-v3`.
    pub objective: String,
    /// Seed of the data order (and of LoRA adapters); runs of one objective differ by it.
    pub seed: u64,
}

impl AcquisitionRun {
    /// The run's name: objective and seed, as `bft-s17`.
    pub fn name(&self) -> String {
        format!("{}-s{}", self.objective, self.seed)
    }
}

/// What `--quick` changes in the acquisition arm.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuickAcquisition {
    /// Taught genes per task.
    pub per_task: usize,
    /// Training steps of every run.
    pub steps: usize,
    /// Runs kept, by objective (their first seed only).
    pub objectives: Vec<String>,
}

/// What `--quick` changes: fewer genes, tasks and sets, same everything else.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuickConfig {
    /// Genes per task.
    pub per_task: usize,
    /// Task files (one per family).
    pub tasks: Vec<PathBuf>,
    /// Gene sets per source.
    pub gene_sets_per_source: usize,
    /// Most tokens per profile.
    pub max_new_tokens: Option<usize>,
    /// The acquisition arm's quick settings.
    pub acquisition: Option<QuickAcquisition>,
}

fn default_device() -> String {
    "cpu".into()
}
fn default_seed() -> u64 {
    7
}
fn default_max_new_tokens() -> usize {
    128
}
fn default_batch_size() -> usize {
    8
}
fn default_embedding_model() -> String {
    // The study embeds every model's profiles (and the NCBI and card baselines) in
    // each run; the small encoder keeps the full study inside its 2-hour budget.
    crate::models::SMALL_EMBEDDING_MODEL.into()
}
fn default_resamples() -> usize {
    1000
}
fn default_min_term_words() -> usize {
    2
}
fn default_max_genes() -> usize {
    50
}
fn default_name_tokens() -> usize {
    32
}

impl StudyConfig {
    /// Reads and checks a study file: syntax, unknown keys, bad values and missing
    /// files are errors naming the file (and the line for syntax and keys).
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut config: StudyConfig =
            toml::from_str(&text).map_err(|e| Error::bad_file(path, e.to_string()))?;
        config.base = lexically_clean(
            &std::path::absolute(parent_dir(path)).map_err(|e| Error::io(path, e))?,
        );
        config.source_text = text;
        config.check(path)?;
        Ok(config)
    }

    /// The config with `--quick`'s changes applied.
    pub fn quick(mut self) -> Self {
        self.genes.per_task = self.quick.per_task;
        self.tasks = self.quick.tasks.clone();
        self.gene_sets.per_source = self.quick.gene_sets_per_source;
        if let Some(n) = self.quick.max_new_tokens {
            self.generation.max_new_tokens = n;
        }
        if let (Some(a), Some(q)) = (self.acquisition.as_mut(), &self.quick.acquisition) {
            a.per_task = q.per_task;
            let mut kept = Vec::new();
            for objective in &q.objectives {
                kept.extend(a.runs.iter().find(|r| &r.objective == objective).cloned());
            }
            a.runs = kept;
        }
        self
    }

    /// A path from the config, relative to its folder.
    pub fn path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            lexically_clean(&self.base.join(p))
        }
    }

    /// The output folder.
    pub fn out_dir(&self) -> PathBuf {
        self.path(&self.out)
    }

    fn check(&self, origin: &Path) -> Result<()> {
        let bad = |m: String| Err(Error::bad_file(origin, m));
        if self.models.is_empty() {
            return bad("no [[models]]: the study compares at least one model".into());
        }
        let mut names = std::collections::HashSet::new();
        for m in &self.models {
            if m.model.is_some() == m.folder.is_some() {
                return bad(format!(
                    "model '{}': give exactly one of `model` (a registry name) or `folder`",
                    m.name
                ));
            }
            if m.name.is_empty()
                || !m
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return bad(format!(
                    "model name '{}' must be letters, digits, '-' or '_'",
                    m.name
                ));
            }
            if m.name == NCBI_STORE || m.name == RANDOM_STORE {
                return bad(format!("model name '{}' is reserved", m.name));
            }
            if !names.insert(m.name.as_str()) {
                return bad(format!("model name '{}' appears twice", m.name));
            }
        }
        if !names.contains(self.comparison.focus.as_str()) {
            return bad(format!(
                "comparison.focus '{}' is not one of the models",
                self.comparison.focus
            ));
        }
        if self.genes.per_task == 0 || self.quick.per_task == 0 {
            return bad("genes.per_task and quick.per_task must be at least 1".into());
        }
        if self.generation.max_new_tokens == 0 || self.generation.batch_size == 0 {
            return bad("generation.max_new_tokens and batch_size must be at least 1".into());
        }
        if self.comparison.resamples < 100 {
            return bad("comparison.resamples must be at least 100".into());
        }
        if self.tasks.is_empty() || self.quick.tasks.is_empty() {
            return bad("tasks and quick.tasks must name at least one task file".into());
        }
        let mut files: Vec<(String, &PathBuf)> = vec![
            ("split".into(), &self.split),
            ("facts.annotations".into(), &self.facts.annotations),
            ("facts.go_terms".into(), &self.facts.go_terms),
        ];
        files.extend(self.tasks.iter().map(|t| ("tasks".to_string(), t)));
        files.extend(
            self.quick
                .tasks
                .iter()
                .map(|t| ("quick.tasks".to_string(), t)),
        );
        files.extend(
            self.gene_sets
                .sources
                .iter()
                .map(|s| (format!("gene_sets.sources '{}'", s.name), &s.file)),
        );
        files.extend(
            self.generation
                .template
                .as_ref()
                .map(|t| ("generation.template".to_string(), t)),
        );
        if let Some(a) = &self.acquisition {
            self.check_acquisition(a, origin)?;
            files.push(("acquisition.card_template".into(), &a.card_template));
            files.push(("acquisition.training".into(), &a.training));
            files.extend(a.tasks.iter().map(|t| ("acquisition.tasks".to_string(), t)));
        }
        for (key, p) in files {
            let full = self.path(p);
            if !full.is_file() {
                return bad(format!("{key}: no file at {}", full.display()));
            }
        }
        Ok(())
    }

    fn check_acquisition(&self, a: &AcquisitionConfig, origin: &Path) -> Result<()> {
        let bad = |m: String| Err(Error::bad_file(origin, m));
        const OBJECTIVES: [&str; 4] = ["sft", "dft", "bft", "bft-v3"];
        if a.per_task == 0 || a.tasks.is_empty() || a.runs.is_empty() {
            return bad("acquisition: per_task, tasks and runs must not be empty or 0".into());
        }
        let mut names = std::collections::HashSet::new();
        for run in &a.runs {
            if !OBJECTIVES.contains(&run.objective.as_str()) {
                return bad(format!(
                    "acquisition.runs: objective '{}' is not one of {}",
                    run.objective,
                    OBJECTIVES.join(", ")
                ));
            }
            if !names.insert(run.name()) {
                return bad(format!("acquisition.runs: {} appears twice", run.name()));
            }
        }
        if !a.runs.iter().any(|r| r.objective == a.focus) {
            return bad(format!("acquisition.focus '{}' has no run", a.focus));
        }
        if let Some(q) = &self.quick.acquisition {
            if q.per_task == 0 || q.steps == 0 {
                return bad("quick.acquisition: per_task and steps must be at least 1".into());
            }
            if let Some(o) = q
                .objectives
                .iter()
                .find(|o| !a.runs.iter().any(|r| &&r.objective == o))
            {
                return bad(format!("quick.acquisition.objectives: '{o}' has no run"));
            }
            if !q.objectives.contains(&a.focus) {
                return bad("quick.acquisition.objectives must keep the focus objective".into());
            }
        }
        Ok(())
    }
}

/// Store name of the NCBI RefSeq summaries of the study's genes (the reference).
pub const NCBI_STORE: &str = "ncbi";
/// Store name of the random floor.
pub const RANDOM_STORE: &str = crate::tasks::RANDOM_FLOOR_NAME;
