//! The train stage: post-training a causal LM on biomedical text with Balanced
//! Fine-Tuning, and SFT and DFT as baselines under one shared setup.
//!
//! So far: the objectives ([`loss`]), pure functions of logits, labels and a response
//! mask, checked on hand-computed cases and against finite differences; and a llama
//! decoder with trainable weights ([`TrainableLlama`]) written only with
//! differentiable ops; AdamW with a warm-up + cosine schedule and gradient clipping,
//! whose state can be saved and restored exactly.

pub mod loss;
mod model;
mod optim;

pub use model::TrainableLlama;
pub use optim::{clip_grad_norm, AdamW, AdamWSettings, Schedule};

pub use loss::{
    objective_loss, objective_weights, token_cross_entropy, weighted_loss, Objective,
    ObjectiveWeights,
};
