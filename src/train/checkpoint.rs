//! Checkpoints: a Hugging Face model folder (what `bftembed profile --model` loads) with
//! the trainer's state beside the weights in `trainer/`, written as one unit (staged,
//! then renamed), so `--resume` continues exactly where the run stopped.

use super::model::TrainableDecoder;
use super::optim::AdamW;
use crate::error::{Error, Result};
use crate::llm::{ChatTemplate, HfModelParts, RopeLayout};
use candle_core::Tensor;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tokenizers::Tokenizer;

/// Folder inside a checkpoint holding the optimizer state and [`TrainerState`].
pub const TRAINER_FOLDER: &str = "trainer";

/// A LoRA run's adapters alone, as peft names and saves them.
pub const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";

/// peft's description of the adapters.
pub const ADAPTER_CONFIG: &str = "adapter_config.json";

/// Where a run stands, saved with every checkpoint.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainerState {
    /// Optimizer steps done.
    pub step: usize,
    /// Answer tokens trained on so far.
    pub tokens: u64,
    /// The objective's name.
    pub objective: String,
    /// The base model's identifier.
    pub base_model: String,
    /// sha256 of the base model's weights file.
    pub base_sha256: String,
    /// The data order's seed.
    pub seed: u64,
    /// Held-out cross-entropy and token accuracy of the base model, before step 1.
    pub base_heldout: Option<(f64, f64)>,
}

/// What the model folder needs besides the weights.
pub struct ModelFiles<'a> {
    /// The tokenizer.
    pub tokenizer: &'a Tokenizer,
    /// The chat template.
    pub chat: &'a ChatTemplate,
    /// End-of-turn token text (written as the eos token).
    pub eos_token: Option<String>,
}

/// Writes a checkpoint folder at `dir` (replacing any earlier one atomically).
pub fn write_checkpoint(
    dir: &Path,
    model: &TrainableDecoder,
    optimizer: &AdamW,
    state: &TrainerState,
    files: &ModelFiles,
) -> Result<()> {
    let mut config = model.config().clone();
    config.rope_layout = RopeLayout::Halves;
    let parts = HfModelParts {
        config: &config,
        tensors: model.hf_tensors()?,
        tokenizer: files.tokenizer,
        chat: files.chat,
        eos_token: files.eos_token.clone(),
        bos_token: None,
    };
    let optimizer_state = optimizer.state()?;
    let adapters = model.lora().map(|(settings, adapters)| {
        let first = adapters
            .iter()
            .filter_map(|a| a.role.block_index())
            .min()
            .unwrap_or(0);
        settings.peft_config(first, config.num_layers, &state.base_model)
    });
    let adapter_tensors = model.adapter_tensors()?;
    crate::llm::write_hf_folder_with(&parts, dir, |staging| {
        if let Some(peft) = &adapters {
            candle_core::safetensors::save(&adapter_tensors, staging.join(ADAPTER_WEIGHTS))?;
            let path = staging.join(ADAPTER_CONFIG);
            let json = serde_json::to_string_pretty(peft).unwrap_or_default();
            std::fs::write(&path, json).map_err(|e| Error::io(&path, e))?;
        }
        let trainer = staging.join(TRAINER_FOLDER);
        std::fs::create_dir_all(&trainer).map_err(|e| Error::io(&trainer, e))?;
        let cpu: HashMap<String, Tensor> = optimizer_state
            .iter()
            .map(|(k, t)| Ok((k.clone(), t.to_device(&candle_core::Device::Cpu)?)))
            .collect::<Result<_>>()?;
        candle_core::safetensors::save(&cpu, trainer.join("optimizer.safetensors"))?;
        let json = serde_json::to_string_pretty(state)
            .map_err(|e| Error::InvalidArgument(format!("trainer state: {e}")))?;
        let path = trainer.join("state.json");
        std::fs::write(&path, json).map_err(|e| Error::io(&path, e))
    })
}

/// A checkpoint found on disk.
pub struct SavedCheckpoint {
    /// Its folder.
    pub dir: PathBuf,
    /// Where the run stood.
    pub state: TrainerState,
}

impl SavedCheckpoint {
    /// The checkpoint at `dir`, or the copy kept aside while a newer one was being
    /// renamed into place; `None` when there is neither.
    pub fn find(dir: &Path) -> Result<Option<Self>> {
        let previous = crate::llm::previous_folder(dir);
        for candidate in [dir.to_path_buf(), previous] {
            let state_path = candidate.join(TRAINER_FOLDER).join("state.json");
            if state_path.is_file() {
                let text =
                    std::fs::read_to_string(&state_path).map_err(|e| Error::io(&state_path, e))?;
                let state: TrainerState = serde_json::from_str(&text).map_err(|e| {
                    Error::bad_file(&state_path, format!("not a trainer state: {e}"))
                })?;
                return Ok(Some(SavedCheckpoint {
                    dir: candidate,
                    state,
                }));
            }
        }
        Ok(None)
    }

    /// Loads the weights (a LoRA run: the adapters, over the base model's weights)
    /// into `model` and the moments into `optimizer`.
    pub fn restore(&self, model: &mut TrainableDecoder, optimizer: &mut AdamW) -> Result<()> {
        let device = model
            .variables()
            .first()
            .map(|(_, v)| v.device().clone())
            .unwrap_or(candle_core::Device::Cpu);
        let lora = model.lora().is_some();
        let weights_path = self.dir.join(match lora {
            true => ADAPTER_WEIGHTS,
            false => "model.safetensors",
        });
        let weights = candle_core::safetensors::load(&weights_path, &device).map_err(|e| {
            Error::bad_file(&weights_path, format!("unreadable checkpoint weights: {e}"))
        })?;
        match lora {
            true => model.load_adapter_tensors(&weights)?,
            false => model.load_hf_tensors(&weights)?,
        }
        let optimizer_path = self.dir.join(TRAINER_FOLDER).join("optimizer.safetensors");
        let moments = candle_core::safetensors::load(&optimizer_path, &device).map_err(|e| {
            Error::bad_file(&optimizer_path, format!("unreadable optimizer state: {e}"))
        })?;
        optimizer.load_state(&moments)
    }
}
