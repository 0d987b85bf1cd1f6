//! A whole configured run: base model and data loaded and checked, the loop with
//! held-out scoring, checkpoints and a resumable log, and the loss plot at the end.

use super::checkpoint::{write_checkpoint, ModelFiles, SavedCheckpoint, TrainerState};
use super::config::{TrainConfig, TrainDtype};
use super::data::{
    answer_pairs, gene_pairs, go_pairs, ExampleEncoder, InstructionPair, TokenizedExample,
};
use super::log::{plot_runs, read_log, LogRow, TrainLog};
use super::model::TrainableDecoder;
use super::split::{DataSplit, SplitRole};
use super::trainer::{HeldoutReport, Trainer, TrainerSettings};
use crate::error::{Error, Result};
use crate::genes::GeneCatalog;
use crate::llm::{CausalLm, DecoderConfig, DecoderWeights, GgufPrecision};
use crate::models::{ModelCache, ModelDir};
use crate::profile::{read_profiles, PromptTemplate, RefseqSummaries};
use crate::rng::SplitMix64;
use candle_core::{DType, Device};
use indicatif::ProgressBar;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Folder of the latest checkpoint inside a run's output folder.
pub const CHECKPOINT_FOLDER: &str = "checkpoint";

/// What a finished run reports.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RunSummary {
    /// The run's name.
    pub name: String,
    /// The objective.
    pub objective: String,
    /// Output folder.
    pub out: PathBuf,
    /// Steps done in total.
    pub steps: usize,
    /// The step this invocation started from (0 for a fresh run).
    pub resumed_from: usize,
    /// Training and held-out pairs.
    pub train_pairs: usize,
    /// Held-out pairs scored.
    pub heldout_pairs: usize,
    /// Held-out cross-entropy and accuracy of the base model (before step 1).
    pub base_heldout: Option<(f64, f64)>,
    /// Held-out cross-entropy and accuracy after the last step.
    pub final_heldout: (f64, f64),
    /// Mean training throughput of this invocation, tokens per second.
    pub tokens_per_second: f64,
}

/// Runs (or, with `resume`, continues) the training a config describes. Without
/// `resume`, an output folder that already holds a checkpoint is an error, so no run is
/// overwritten by accident.
pub fn run(config: &TrainConfig, resume: bool) -> Result<RunSummary> {
    let device = crate::device::parse_device(&config.device)?;
    let dtype = trainable_dtype(config, &device)?;
    let out = config.out_dir();
    let checkpoint_dir = out.join(CHECKPOINT_FOLDER);
    let saved = existing_checkpoint(&out, &checkpoint_dir, resume)?;

    let base = base_model_dir(config)?;
    let lm = CausalLm::load(&base, &device, GgufPrecision::F32)?;
    let end_of_turn = end_of_turn_token(&lm, &base)?;
    let (train, heldout) = load_examples(config, &lm, end_of_turn)?;

    let (model_config, weights) = lm.model.into_parts();
    let mut trainer = new_trainer(config, model_config, weights, &device, dtype)?;
    let mut state = fresh_state(config, &base);
    if let Some(saved) = saved {
        state = restore_checkpoint(saved, &state, &mut trainer)?;
    }
    let resumed_from = state.step;
    std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
    crate::fsutil::atomic_write_bytes(&out.join("config.toml"), config.source_text.as_bytes())?;

    // Only a fresh run scores the base model: a resumed one already recorded it in its
    // checkpoint's state, and its weights are no longer the base model's.
    if resumed_from == 0 {
        let h = trainer.heldout(&heldout)?;
        state.base_heldout = Some((h.cross_entropy, h.token_accuracy));
    }
    let files = ModelFiles {
        tokenizer: &lm.tokenizer,
        chat: &lm.chat,
        eos_token: lm.tokenizer.id_to_token(end_of_turn),
    };
    let log_path = out.join("log.csv");
    let mut log = TrainLog::open(&log_path, resumed_from)?;
    let bar = steps_bar(config, resumed_from);
    let started = Instant::now();
    let done = StepLoop {
        config,
        trainer: &mut trainer,
        train: &train,
        heldout: &heldout,
        state: &mut state,
        checkpoint_dir: &checkpoint_dir,
        files: &files,
        log: &mut log,
        bar: &bar,
    }
    .run(resumed_from)?;
    bar.finish_and_clear();
    // A run resumed at its last step takes no step, so it has no held-out score yet.
    let final_heldout = match done.last_heldout {
        Some(h) => h,
        None => trainer.heldout(&heldout)?,
    };
    let rows = read_log(&log_path)?;
    plot_runs(&[(config.name.clone(), rows)], &out.join("loss.png"))?;
    let summary = RunSummary {
        name: config.name.clone(),
        objective: config.objective.label().to_string(),
        out: out.clone(),
        steps: state.step,
        resumed_from,
        train_pairs: train.len(),
        heldout_pairs: heldout.len(),
        base_heldout: state.base_heldout,
        final_heldout: (final_heldout.cross_entropy, final_heldout.token_accuracy),
        tokens_per_second: done.tokens as f64 / started.elapsed().as_secs_f64().max(1e-9),
    };
    let json = serde_json::to_string_pretty(&summary).unwrap_or_default();
    crate::fsutil::atomic_write_bytes(&out.join("summary.json"), json.as_bytes())?;
    Ok(summary)
}

/// The candle dtype of the trained weights. bf16 is refused on the CPU, where it would
/// make training slower rather than faster.
fn trainable_dtype(config: &TrainConfig, device: &Device) -> Result<DType> {
    Ok(match config.trainable.dtype {
        TrainDtype::F32 => DType::F32,
        TrainDtype::Bf16 if device.is_cpu() => {
            return Err(Error::InvalidArgument(
                "trainable.dtype = \"bf16\" needs a GPU device; candle's CPU bf16 matmul is slower than f32".into(),
            ))
        }
        TrainDtype::Bf16 => DType::BF16,
    })
}

/// The checkpoint already in the output folder, if any. One is an error unless
/// `resume` is set, checked before the model loads so a mistaken rerun fails at once.
fn existing_checkpoint(
    out: &Path,
    checkpoint_dir: &Path,
    resume: bool,
) -> Result<Option<SavedCheckpoint>> {
    let saved = SavedCheckpoint::find(checkpoint_dir)?;
    if saved.is_some() && !resume {
        return Err(Error::InvalidArgument(format!(
            "{} already holds a checkpoint; pass --resume to continue it, or remove the folder",
            out.display()
        )));
    }
    Ok(saved)
}

/// The token that ends an answer; training needs one, since every target ends with it.
fn end_of_turn_token(lm: &CausalLm, base: &ModelDir) -> Result<u32> {
    lm.end_of_turn().ok_or_else(|| Error::ModelMissing {
        name: base.id.clone(),
        reason: "its tokenizer has no end-of-turn or end-of-sequence token".into(),
    })
}

/// The trainer over the base model's weights, with only the config's last blocks
/// trained and the config's optimizer, schedule and batching.
fn new_trainer(
    config: &TrainConfig,
    model_config: DecoderConfig,
    weights: DecoderWeights,
    device: &Device,
    dtype: DType,
) -> Result<Trainer> {
    let mut model = TrainableDecoder::from_weights(model_config, weights, device, dtype)?;
    model.set_trained_blocks(config.trainable.last_layers)?;
    if let Some(lora) = &config.lora {
        let settings = crate::train::LoraSettings::from_config(lora)
            .map_err(|m| Error::bad_file(&config.base, format!("lora: {m}")))?;
        model.add_lora(settings, config.seed)?;
    }
    let settings = TrainerSettings {
        objective: config.objective.objective(),
        schedule: config.optimizer.schedule(config.run.steps),
        adamw: config.optimizer.adamw(),
        clip_norm: config.optimizer.clip_norm,
        batch_size: config.run.batch_size,
        grad_accum: config.run.grad_accum,
        seed: config.seed,
    };
    Trainer::new(model, settings, device)
}

/// The state of a run that has taken no step yet.
fn fresh_state(config: &TrainConfig, base: &ModelDir) -> TrainerState {
    TrainerState {
        step: 0,
        tokens: 0,
        objective: config.objective.label().to_string(),
        base_model: base.id.clone(),
        base_sha256: base.weights_sha256.clone(),
        seed: config.seed,
        base_heldout: None,
    }
}

/// Loads a saved checkpoint into the trainer and returns its state, after checking it
/// was trained as `now` asks (objective, base model, seed): continuing another run's
/// checkpoint would mix two experiments in one folder.
fn restore_checkpoint(
    saved: SavedCheckpoint,
    now: &TrainerState,
    trainer: &mut Trainer,
) -> Result<TrainerState> {
    check_same_run(&saved.state, now, &saved.dir)?;
    let (model, optimizer) = trainer.parts_mut();
    saved.restore(model, optimizer)?;
    Ok(saved.state)
}

/// The progress bar over all the run's steps, starting at those already done.
fn steps_bar(config: &TrainConfig, resumed_from: usize) -> ProgressBar {
    let bar = crate::progress::items_bar(
        config.run.steps as u64,
        &format!("training {}", config.name),
        "steps",
    );
    bar.set_position(resumed_from as u64);
    bar
}

/// Everything the step loop reads or advances, bundled so the loop can live in its own
/// function without a long argument list.
struct StepLoop<'a> {
    config: &'a TrainConfig,
    trainer: &'a mut Trainer,
    train: &'a [TokenizedExample],
    heldout: &'a [TokenizedExample],
    state: &'a mut TrainerState,
    checkpoint_dir: &'a Path,
    files: &'a ModelFiles<'a>,
    log: &'a mut TrainLog,
    bar: &'a ProgressBar,
}

/// What the step loop leaves for the summary.
struct StepsDone {
    /// Tokens seen by this invocation (all tokens, prompt included), for its throughput.
    tokens: usize,
    /// The latest held-out score, if the loop took one.
    last_heldout: Option<HeldoutReport>,
}

impl StepLoop<'_> {
    /// Takes the steps from `resumed_from` to the configured total, each logged, scored
    /// on the held-out pairs every `eval_every` steps and at the end, and checkpointed
    /// every `checkpoint_every` steps and at the end.
    fn run(mut self, resumed_from: usize) -> Result<StepsDone> {
        let mut done = StepsDone {
            tokens: 0,
            last_heldout: None,
        };
        for _ in resumed_from..self.config.run.steps {
            self.step(&mut done)?;
        }
        Ok(done)
    }

    /// One step: train, score if due, append the log row, checkpoint if due, and move
    /// the bar. The log row is written before the checkpoint so a checkpoint never
    /// claims a step the log lacks.
    fn step(&mut self, done: &mut StepsDone) -> Result<()> {
        let run = &self.config.run;
        let t0 = Instant::now();
        let report = self.trainer.step(self.train)?;
        let seen = report.all_tokens;
        let seconds = t0.elapsed().as_secs_f64().max(1e-9);
        done.tokens += seen;
        self.state.step = report.step;
        self.state.tokens += report.tokens as u64;
        let last = report.step == run.steps;
        let heldout_now = if report.step % run.eval_every == 0 || last {
            let h = self.trainer.heldout(self.heldout)?;
            done.last_heldout = Some(h);
            Some(h)
        } else {
            None
        };
        self.log.append(&LogRow {
            step: report.step,
            learning_rate: report.learning_rate,
            loss: report.loss,
            cross_entropy: report.cross_entropy,
            grad_norm: report.grad_norm,
            tokens: report.tokens,
            tokens_per_second: seen as f64 / seconds,
            heldout_cross_entropy: heldout_now.map(|h| h.cross_entropy),
            heldout_token_accuracy: heldout_now.map(|h| h.token_accuracy),
        })?;
        if report.step % run.checkpoint_every == 0 || last {
            write_checkpoint(
                self.checkpoint_dir,
                self.trainer.model(),
                self.trainer.optimizer(),
                self.state,
                self.files,
            )?;
        }
        self.bar.set_message(format!(
            "loss {:.3} · CE {:.3} · {:.0} tok/s",
            report.loss,
            report.cross_entropy,
            seen as f64 / seconds
        ));
        self.bar.inc(1);
        Ok(())
    }
}

/// The base model of a training config: a folder or file relative to the config, else a
/// registry name (fetched if needed).
pub fn base_model_dir(config: &TrainConfig) -> Result<ModelDir> {
    let cache = ModelCache::from_env()?;
    let local = config.path(Path::new(&config.base_model));
    if local.exists() {
        return cache.resolve(&local.to_string_lossy());
    }
    cache.resolve(&config.base_model)
}

/// Training and held-out examples, tokenized; items the split marks `eval` (or lacks)
/// are never used.
fn load_examples(
    config: &TrainConfig,
    lm: &CausalLm,
    end_of_turn: u32,
) -> Result<(Vec<TokenizedExample>, Vec<TokenizedExample>)> {
    let d = &config.data;
    let (train, heldout) = instruction_pairs(config)?;
    let train = seeded_sample(train, d.max_train_pairs, config.seed ^ 0x0074_7261_696e);
    let heldout = seeded_sample(heldout, Some(d.heldout_pairs), config.seed ^ 0x6865_6c64);
    if train.is_empty() || heldout.is_empty() {
        return Err(Error::bad_file(
            config.path(&d.split),
            format!(
                "the split leaves {} training and {} held-out pairs; both must be non-empty",
                train.len(),
                heldout.len()
            ),
        ));
    }
    let encoder = ExampleEncoder::new(&lm.tokenizer, &lm.chat, end_of_turn, d.max_tokens);
    Ok((encoder.encode_all(&train)?, encoder.encode_all(&heldout)?))
}

/// `n` of `pairs` (all when `None`), chosen by a seeded shuffle, in their original order.
pub(super) fn seeded_sample(
    pairs: Vec<InstructionPair>,
    n: Option<usize>,
    seed: u64,
) -> Vec<InstructionPair> {
    let n = n.unwrap_or(pairs.len()).min(pairs.len());
    let order = SplitMix64::new(seed).permutation(pairs.len());
    let mut keep: Vec<usize> = order.into_iter().take(n).collect();
    keep.sort_unstable();
    keep.into_iter().map(|i| pairs[i].clone()).collect()
}

/// Every training pair (GO pairs capped by `max_go_pairs`) and every held-out pair the
/// config's data and split give.
pub(super) fn instruction_pairs(
    config: &TrainConfig,
) -> Result<(Vec<InstructionPair>, Vec<InstructionPair>)> {
    let d = &config.data;
    let split = DataSplit::read(&config.path(&d.split))?;
    let catalog = GeneCatalog::embedded()?;
    let template = match &d.gene_template {
        Some(p) => PromptTemplate::read(&config.path(p), &["symbol", "name"])?,
        None => PromptTemplate::default_gene()?,
    };
    let mut pairs = match (&d.answers, &d.summaries) {
        (Some(answers), _) => {
            answer_pairs(&read_profiles(&config.path(answers))?, &catalog, &template)
        }
        (None, Some(p)) => gene_pairs(
            &RefseqSummaries::from_tsv(&config.path(p))?,
            &catalog,
            &template,
        ),
        (None, None) => gene_pairs(&RefseqSummaries::embedded()?, &catalog, &template),
    };
    if let Some(go) = &d.go_terms {
        let go = go_pairs(&config.path(go), &template.system, &d.go_question)?;
        let (go_train, go_other): (Vec<_>, Vec<_>) = go
            .into_iter()
            .partition(|p| split.role(&p.key) == Some(SplitRole::Train));
        pairs.extend(seeded_sample(
            go_train,
            d.max_go_pairs,
            config.seed ^ 0x676f,
        ));
        pairs.extend(go_other);
    }
    let (mut train, mut heldout): (Vec<InstructionPair>, Vec<InstructionPair>) =
        (Vec::new(), Vec::new());
    for pair in pairs {
        match split.role(&pair.key) {
            Some(SplitRole::Train) => train.push(pair),
            Some(SplitRole::Heldout) => heldout.push(pair),
            _ => {}
        }
    }
    Ok((train, heldout))
}

fn check_same_run(saved: &TrainerState, now: &TrainerState, dir: &Path) -> Result<()> {
    let mismatch = |what: &str, a: &str, b: &str| {
        Err(Error::bad_file(
            dir,
            format!("the checkpoint was trained with {what} {a}, the config asks for {b}; use another output folder"),
        ))
    };
    if saved.objective != now.objective {
        return mismatch("objective", &saved.objective, &now.objective);
    }
    if saved.base_sha256 != now.base_sha256 {
        return mismatch("base model", &saved.base_model, &now.base_model);
    }
    if saved.seed != now.seed {
        return mismatch("seed", &saved.seed.to_string(), &now.seed.to_string());
    }
    Ok(())
}
