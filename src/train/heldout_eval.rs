//! Held-out scores by kind of pair: gene summaries and GO definitions apart, for the
//! base model or any checkpoint, on the items the config's split holds out. The
//! in-training held-out score mixes both kinds in their held-out proportions (GO terms
//! outnumber genes); this tells what a run did to the gene profiles it is for.

use super::config::TrainConfig;
use super::data::ExampleEncoder;
use super::model::TrainableDecoder;
use super::run::{instruction_pairs, seeded_sample};
use super::trainer::{heldout_score, HeldoutReport};
use crate::error::{Error, Result};
use crate::llm::{CausalLm, GgufPrecision};
use crate::models::ModelDir;
use candle_core::DType;

/// File in a run's output folder with its checkpoint's [`HeldoutByKind`].
pub const HELDOUT_FILE: &str = "heldout_by_kind.json";
/// File in a run's output folder with its base model's [`HeldoutByKind`].
pub const HELDOUT_BASE_FILE: &str = "heldout_by_kind_base.json";

/// Held-out scores of one model.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HeldoutByKind {
    /// The model scored.
    pub model: String,
    /// Held-out gene-summary pairs.
    pub genes: HeldoutReport,
    /// Held-out GO-definition pairs, when the config uses GO terms.
    pub go: Option<HeldoutReport>,
}

/// Scores `model` on at most `limit` held-out gene pairs and `limit` GO pairs (seeded
/// samples, the same for every model given the same config).
pub fn evaluate_heldout(
    config: &TrainConfig,
    model: &ModelDir,
    limit: usize,
) -> Result<HeldoutByKind> {
    let device = crate::device::parse_device(&config.device)?;
    let lm = CausalLm::load(model, &device, GgufPrecision::F32)?;
    let end_of_turn = lm.end_of_turn().ok_or_else(|| Error::ModelMissing {
        name: model.id.clone(),
        reason: "its tokenizer has no end-of-turn or end-of-sequence token".into(),
    })?;
    let (_, heldout) = instruction_pairs(config)?;
    let (genes, go): (Vec<_>, Vec<_>) = heldout
        .into_iter()
        .partition(|p| p.key.starts_with("gene:"));
    let encoder = ExampleEncoder::new(&lm.tokenizer, &lm.chat, end_of_turn, config.data.max_tokens);
    let genes = encoder.encode_all(&seeded_sample(genes, Some(limit), config.seed ^ 0x6765))?;
    let go = encoder.encode_all(&seeded_sample(go, Some(limit), config.seed ^ 0x676f))?;
    let (model_config, weights) = lm.model.into_parts();
    let trainable = TrainableDecoder::from_weights(model_config, weights, &device, DType::F32)?;
    let batch = config.run.batch_size;
    Ok(HeldoutByKind {
        model: model.id.clone(),
        genes: heldout_score(&trainable, &genes, batch, &device)?,
        go: if go.is_empty() {
            None
        } else {
            Some(heldout_score(&trainable, &go, batch, &device)?)
        },
    })
}
