//! The train stage: post-training a causal LM on biomedical text with Balanced
//! Fine-Tuning, and SFT and DFT as baselines under one shared setup.
//!
//! - [`loss`]: the four objectives, pure functions of logits, labels and a response mask.
//! - [`TrainableDecoder`]: a llama decoder written only with differentiable ops, trained
//!   whole or only in its last blocks.
//! - [`AdamW`], [`Schedule`], [`clip_grad_norm`]: the optimizer, with exportable state.
//! - [`split`] and [`data`]: the gene-disjoint split and the instruction pairs.
//! - [`Trainer`]: one step at a time; [`run`]: a whole configured run with checkpoints,
//!   resume, a CSV log and a loss plot.

mod checkpoint;
mod config;
pub mod data;
pub mod diagnose;
mod fused_ce;
mod head_ce;
mod heldout_eval;
mod log;
mod lora;
pub mod loss;
mod model;
mod optim;
mod report;
mod run;
pub mod split;
mod trainer;

pub use checkpoint::{
    write_checkpoint, ModelFiles, SavedCheckpoint, TrainerState, ADAPTER_CONFIG, ADAPTER_WEIGHTS,
};
pub use config::{
    DataConfig, LoraConfig, ObjectiveConfig, ObjectiveKind, OptimizerConfig, RunConfig,
    TrainConfig, TrainDtype, TrainableConfig,
};
pub use heldout_eval::{evaluate_heldout, HeldoutByKind, HELDOUT_BASE_FILE, HELDOUT_FILE};
pub use log::{plot_runs, read_log, LogRow, TrainLog};
pub use lora::{Adapter, LoraSettings};
pub use model::TrainableDecoder;
pub use optim::{clip_grad_norm, clip_scale, grad_norm, AdamW, AdamWSettings, Schedule};
pub use report::compare_runs;

pub use run::{base_model_dir, run, RunSummary, CHECKPOINT_FOLDER};
pub use trainer::{heldout_score, HeldoutReport, StepReport, Trainer, TrainerSettings};

pub use loss::{
    composed_cross_entropy, objective_loss, objective_weights, token_cross_entropy, weighted_loss,
    Objective, ObjectiveWeights,
};
