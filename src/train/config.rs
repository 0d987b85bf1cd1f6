//! A training run's settings (`train/NAME.toml`). Unknown keys are refused with their
//! line, and every file a run needs is checked before any work starts.

use super::loss::Objective;
use super::optim::{AdamWSettings, Schedule};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// A whole run: base model, data, objective, optimizer and loop settings.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Short name, used for the output folder and in logs and plots.
    pub name: String,
    /// Base model: a registry name (fetched if needed), a model folder or a `.gguf` file.
    pub base_model: String,
    /// Output folder (relative to the config file): checkpoints, log and plot.
    pub out: PathBuf,
    /// Seed for data order and, for a random-init model, the weights.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// `cpu`, `cuda[:N]` or `metal[:N]`.
    #[serde(default = "default_device")]
    pub device: String,
    /// The objective.
    pub objective: ObjectiveConfig,
    /// The data.
    pub data: DataConfig,
    /// AdamW and the learning-rate schedule.
    #[serde(default)]
    pub optimizer: OptimizerConfig,
    /// Steps, batches, evaluation and checkpoints.
    pub run: RunConfig,
    /// Which weights are trained.
    #[serde(default)]
    pub trainable: TrainableConfig,
    /// Low-rank adapters (LoRA) trained instead of the weights themselves.
    #[serde(default)]
    pub lora: Option<LoraConfig>,
    /// Where the config was read from (paths are relative to its folder).
    #[serde(skip)]
    pub base: PathBuf,
    /// The file's text, kept beside the run's outputs.
    #[serde(skip)]
    pub source_text: String,
}

/// Objective name and its settings.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectiveConfig {
    /// `sft`, `dft`, `bft` or `bft-v3`.
    pub kind: ObjectiveKind,
    /// Window g in response tokens (BFT, BFT-v3).
    #[serde(default = "default_window")]
    pub window: usize,
    /// Exponent on p_conf (BFT).
    #[serde(default = "default_gamma")]
    pub gamma: f64,
    /// Added to C_t (BFT-v3).
    #[serde(default = "default_eps")]
    pub eps: f64,
}

/// The four objectives by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ObjectiveKind {
    /// Supervised fine-tuning.
    Sft,
    /// Dynamic fine-tuning.
    Dft,
    /// Balanced fine-tuning (the authors' code).
    Bft,
    /// Balanced fine-tuning, version 3.
    BftV3,
}

impl ObjectiveConfig {
    /// The objective this config names.
    pub fn objective(&self) -> Objective {
        match self.kind {
            ObjectiveKind::Sft => Objective::Sft,
            ObjectiveKind::Dft => Objective::Dft,
            ObjectiveKind::Bft => Objective::Bft {
                window: self.window,
                gamma: self.gamma,
            },
            ObjectiveKind::BftV3 => Objective::BftV3 {
                window: self.window,
                eps: self.eps,
            },
        }
    }

    /// The objective's name as configured.
    pub fn label(&self) -> &'static str {
        match self.kind {
            ObjectiveKind::Sft => "sft",
            ObjectiveKind::Dft => "dft",
            ObjectiveKind::Bft => "bft",
            ObjectiveKind::BftV3 => "bft-v3",
        }
    }
}

/// Where the instruction pairs come from.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// The split file (`bftembed train-split` writes it).
    pub split: PathBuf,
    /// The gene prompt; the profile stage's default when absent.
    pub gene_template: Option<PathBuf>,
    /// RefSeq summaries TSV; the shipped ones when absent.
    pub summaries: Option<PathBuf>,
    /// A profile table (Parquet) whose texts answer the gene prompt instead of the
    /// RefSeq summaries: the genes it holds are the genes taught (the study's
    /// acquisition arm teaches gene cards this way).
    pub answers: Option<PathBuf>,
    /// GO terms TSV (`go_id`, `term`, `definition`); no GO pairs when absent.
    pub go_terms: Option<PathBuf>,
    /// The GO question, with `{term}`.
    #[serde(default = "default_go_question")]
    pub go_question: String,
    /// Longest example in tokens (prompt + answer); longer answers are cut.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: usize,
    /// Use at most this many GO pairs for training (a seeded sample), so that GO
    /// definitions, far more numerous, do not drown the gene summaries.
    pub max_go_pairs: Option<usize>,
    /// Use at most this many training pairs in all (a seeded sample), for short runs.
    pub max_train_pairs: Option<usize>,
    /// Held-out pairs scored at each evaluation (a seeded sample of the held-out items).
    #[serde(default = "default_heldout_pairs")]
    pub heldout_pairs: usize,
}

/// AdamW and schedule settings.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimizerConfig {
    /// Peak learning rate.
    pub learning_rate: f64,
    /// Final learning rate of the cosine decay.
    pub min_learning_rate: f64,
    /// Linear warm-up steps.
    pub warmup_steps: usize,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Largest global gradient norm (0 turns clipping off).
    pub clip_norm: f64,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        OptimizerConfig {
            learning_rate: 2e-5,
            min_learning_rate: 2e-6,
            warmup_steps: 10,
            weight_decay: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            clip_norm: 1.0,
        }
    }
}

impl OptimizerConfig {
    /// AdamW's settings.
    pub fn adamw(&self) -> AdamWSettings {
        AdamWSettings {
            beta1: self.beta1,
            beta2: self.beta2,
            eps: 1e-8,
            weight_decay: self.weight_decay,
        }
    }

    /// The schedule over `steps`.
    pub fn schedule(&self, steps: usize) -> Schedule {
        Schedule {
            peak: self.learning_rate,
            floor: self.min_learning_rate,
            warmup: self.warmup_steps,
            total: steps,
        }
    }
}

/// Loop settings.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Optimizer steps.
    pub steps: usize,
    /// Examples per micro-batch.
    pub batch_size: usize,
    /// Micro-batches per optimizer step.
    #[serde(default = "default_one")]
    pub grad_accum: usize,
    /// Held-out evaluation every this many steps (and at the end).
    #[serde(default = "default_eval_every")]
    pub eval_every: usize,
    /// Checkpoint every this many steps (and at the end).
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: usize,
}

/// Which weights train.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainableConfig {
    /// Train only the last this many decoder blocks and the final norm (the embedding
    /// and the blocks before stay frozen, and backward stops at the first trained
    /// block); every weight when absent.
    pub last_layers: Option<usize>,
    /// `f32` (default) or `bf16` (GPU only).
    #[serde(default)]
    pub dtype: TrainDtype,
}

/// LoRA: each target projection W of the trained blocks gets W x + (alpha / rank) B A x,
/// A (rank x in) and B (out x rank) trained, W frozen; B starts at zero, so training
/// starts from the base model exactly (as peft does).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraConfig {
    /// Rank of each adapter.
    pub rank: usize,
    /// Scale numerator (the update is scaled by alpha / rank).
    pub alpha: f64,
    /// Adapted projections by their Hugging Face names: `q_proj`, `k_proj`, `v_proj`,
    /// `o_proj`, `gate_proj`, `up_proj`, `down_proj`.
    #[serde(default = "default_lora_targets")]
    pub targets: Vec<String>,
}

fn default_lora_targets() -> Vec<String> {
    ["q_proj", "k_proj", "v_proj", "o_proj"]
        .map(String::from)
        .to_vec()
}

/// Precision of the trained weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrainDtype {
    /// 32-bit floats.
    #[default]
    F32,
    /// bfloat16 (CUDA and Metal only; candle's CPU bf16 matmul is slow).
    Bf16,
}

fn default_seed() -> u64 {
    17
}
fn default_device() -> String {
    "cpu".into()
}
fn default_window() -> usize {
    256
}
fn default_gamma() -> f64 {
    1.0
}
fn default_eps() -> f64 {
    1e-6
}
fn default_go_question() -> String {
    "What is the biological process \"{term}\"?".into()
}
fn default_max_tokens() -> usize {
    256
}
fn default_heldout_pairs() -> usize {
    64
}
fn default_one() -> usize {
    1
}
fn default_eval_every() -> usize {
    25
}
fn default_checkpoint_every() -> usize {
    50
}

impl TrainConfig {
    /// Reads and checks a config: unknown keys, bad values and missing files are errors
    /// naming the file (and, for syntax and keys, the line).
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut config: TrainConfig =
            toml::from_str(&text).map_err(|e| Error::bad_file(path, e.to_string()))?;
        config.base = crate::fsutil::lexically_clean(
            &std::path::absolute(crate::fsutil::parent_dir(path))
                .map_err(|e| Error::io(path, e))?,
        );
        config.source_text = text;
        config.check(path)?;
        Ok(config)
    }

    /// A path from the config, relative to its folder.
    pub fn path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            crate::fsutil::lexically_clean(&self.base.join(p))
        }
    }

    /// The output folder.
    pub fn out_dir(&self) -> PathBuf {
        self.path(&self.out)
    }

    fn check(&self, origin: &Path) -> Result<()> {
        let bad = |m: String| Err(Error::bad_file(origin, m));
        let r = &self.run;
        if r.steps == 0 || r.batch_size == 0 || r.grad_accum == 0 {
            return bad("run.steps, run.batch_size and run.grad_accum must be at least 1".into());
        }
        if r.eval_every == 0 || r.checkpoint_every == 0 {
            return bad("run.eval_every and run.checkpoint_every must be at least 1".into());
        }
        if self.objective.window == 0 {
            return bad("objective.window must be at least 1".into());
        }
        if self.trainable.last_layers == Some(0) {
            return bad(
                "trainable.last_layers must be at least 1 (leave it out to train every weight)"
                    .into(),
            );
        }
        if let Some(lora) = &self.lora {
            if let Err(message) = crate::train::LoraSettings::from_config(lora) {
                return bad(format!("lora: {message}"));
            }
        }
        let o = &self.optimizer;
        if !(o.learning_rate > 0.0 && o.learning_rate.is_finite()) || o.min_learning_rate < 0.0 {
            return bad("optimizer.learning_rate must be positive, min_learning_rate >= 0".into());
        }
        if self.data.max_tokens < 8 {
            return bad("data.max_tokens must be at least 8".into());
        }
        let mut files = vec![("data.split", &self.data.split)];
        files.extend(
            self.data
                .gene_template
                .as_ref()
                .map(|p| ("data.gene_template", p)),
        );
        if self.data.summaries.is_some() && self.data.answers.is_some() {
            return bad(
                "data.summaries and data.answers both name the gene answers; give one".into(),
            );
        }
        files.extend(self.data.summaries.as_ref().map(|p| ("data.summaries", p)));
        files.extend(self.data.answers.as_ref().map(|p| ("data.answers", p)));
        files.extend(self.data.go_terms.as_ref().map(|p| ("data.go_terms", p)));
        for (key, p) in files {
            let full = self.path(p);
            if !full.is_file() {
                return bad(format!("{key}: no file at {}", full.display()));
            }
        }
        Ok(())
    }
}
