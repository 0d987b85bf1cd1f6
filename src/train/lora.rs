//! Low-rank adapters (LoRA, Hu et al. 2021): a target projection W becomes
//! W x + (alpha / rank) B A x with W frozen and only A (rank x in) and B (out x rank)
//! trained, so a model much bigger than the optimizer state a CPU can hold can be tuned.
//! Adapters are named and saved as peft saves them (`adapter_model.safetensors`,
//! `adapter_config.json`), and merged into the weights for a plain checkpoint.

use super::config::LoraConfig;
use crate::error::Result;
use crate::llm::{DecoderConfig, WeightRole};
use crate::rng::SplitMix64;
use candle_core::{Device, Tensor, Var};

/// The projections an adapter can target, by their Hugging Face names.
const TARGETS: &[&str] = &[
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

/// Checked LoRA settings.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraSettings {
    /// Rank of each adapter.
    pub rank: usize,
    /// Scale numerator.
    pub alpha: f64,
    /// Adapted projections (Hugging Face names), in [`TARGETS`] order.
    pub targets: Vec<&'static str>,
}

impl LoraSettings {
    /// Checks a config's `[lora]` table: rank at least 1, a positive alpha, known and
    /// non-repeated targets.
    pub fn from_config(config: &LoraConfig) -> std::result::Result<Self, String> {
        if config.rank == 0 {
            return Err("rank must be at least 1".into());
        }
        if !(config.alpha > 0.0 && config.alpha.is_finite()) {
            return Err(format!("alpha {} must be a positive number", config.alpha));
        }
        if config.targets.is_empty() {
            return Err("targets must name at least one projection".into());
        }
        if let Some(unknown) = config
            .targets
            .iter()
            .find(|t| !TARGETS.contains(&t.as_str()))
        {
            return Err(format!(
                "target \"{unknown}\" is not one of {}",
                TARGETS.join(", ")
            ));
        }
        let targets: Vec<&'static str> = TARGETS
            .iter()
            .copied()
            .filter(|t| config.targets.iter().any(|c| c == t))
            .collect();
        if targets.len() != config.targets.len() {
            return Err("a target is named twice".into());
        }
        Ok(LoraSettings {
            rank: config.rank,
            alpha: config.alpha,
            targets,
        })
    }

    /// The factor on B A.
    pub fn scale(&self) -> f64 {
        self.alpha / self.rank as f64
    }

    /// The roles adapted in block `i`.
    fn roles(&self, i: usize) -> Vec<WeightRole> {
        self.targets
            .iter()
            .map(|t| match *t {
                "q_proj" => WeightRole::Query(i),
                "k_proj" => WeightRole::Key(i),
                "v_proj" => WeightRole::Value(i),
                "o_proj" => WeightRole::AttnOut(i),
                "gate_proj" => WeightRole::Gate(i),
                "up_proj" => WeightRole::Up(i),
                _ => WeightRole::Down(i),
            })
            .collect()
    }

    /// peft's `adapter_config.json` for adapters on blocks `first..layers`.
    pub fn peft_config(&self, first: usize, layers: usize, base: &str) -> serde_json::Value {
        serde_json::json!({
            "peft_type": "LORA",
            "task_type": "CAUSAL_LM",
            "r": self.rank,
            "lora_alpha": self.alpha,
            "lora_dropout": 0.0,
            "target_modules": self.targets,
            "layers_to_transform": (first..layers).collect::<Vec<_>>(),
            "bias": "none",
            "fan_in_fan_out": false,
            "base_model_name_or_path": base,
        })
    }
}

/// One adapter: the role it changes and its two factors.
pub struct Adapter {
    /// The adapted projection.
    pub role: WeightRole,
    /// A, (rank, in): uniform in ±1/sqrt(in) from the seed, as peft's default.
    pub a: Var,
    /// B, (out, rank): zero at the start.
    pub b: Var,
}

impl Adapter {
    /// peft's names of A and B.
    pub fn names(&self) -> (String, String) {
        let stem = self.role.hf_name();
        let stem = stem.strip_suffix(".weight").unwrap_or(&stem);
        (
            format!("base_model.model.{stem}.lora_A.weight"),
            format!("base_model.model.{stem}.lora_B.weight"),
        )
    }
}

/// Adapters for every target of blocks `first..`, A drawn from `seed`.
pub fn new_adapters(
    settings: &LoraSettings,
    config: &DecoderConfig,
    first: usize,
    seed: u64,
    device: &Device,
    dtype: candle_core::DType,
) -> Result<Vec<Adapter>> {
    let mut rng = SplitMix64::new(seed);
    let mut out = Vec::new();
    for i in first..config.num_layers {
        for role in settings.roles(i) {
            let (rows, cols) = role.shape(config);
            let bound = 1.0 / (cols as f64).sqrt();
            let values: Vec<f32> = (0..settings.rank * cols)
                .map(|_| ((2.0 * rng.next_f64() - 1.0) * bound) as f32)
                .collect();
            let a = Tensor::from_vec(values, (settings.rank, cols), device)?.to_dtype(dtype)?;
            let b = Tensor::zeros((rows, settings.rank), dtype, device)?;
            out.push(Adapter {
                role,
                a: Var::from_tensor(&a)?,
                b: Var::from_tensor(&b)?,
            });
        }
    }
    Ok(out)
}

/// W + scale B A: the weight the adapter stands for.
pub fn merged(weight: &Tensor, adapter: &Adapter, scale: f64) -> Result<Tensor> {
    let update = adapter.b.as_tensor().matmul(adapter.a.as_tensor())?;
    Ok((weight + (update * scale)?)?)
}
