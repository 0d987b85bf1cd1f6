//! The shape of a llama-architecture model, read from GGUF metadata or a Hugging Face
//! `config.json`, and written back as `config.json` when a model is exported.

use super::support::{
    check_gguf_architecture, check_gguf_tensors, check_gguf_variant, check_hf_config,
    check_hf_head_dim, hf_rope_theta,
};
use crate::error::{Error, Result};
use candle_core::quantized::gguf_file;
use std::path::Path;

/// How rotary position embeddings pair up the dimensions of a head.
///
/// llama.cpp's converter permutes the query and key weights so that GGUF files rotate
/// neighbouring pairs (2i, 2i+1); Hugging Face checkpoints rotate the two halves
/// (i, i + d/2). The same model therefore needs the matching convention for its format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeLayout {
    /// Pairs (2i, 2i+1): GGUF llama files.
    Interleaved,
    /// Pairs (i, i + d/2): Hugging Face checkpoints.
    Halves,
}

/// Dimensions and constants of a llama-architecture decoder.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the gated MLP.
    pub intermediate_size: usize,
    /// Number of decoder blocks.
    pub num_layers: usize,
    /// Query heads.
    pub num_heads: usize,
    /// Key/value heads (fewer than query heads for grouped-query attention).
    pub num_kv_heads: usize,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// RoPE base frequency.
    pub rope_theta: f64,
    /// Longest context the model was trained for.
    pub max_positions: usize,
    /// Whether the output projection reuses the token embedding matrix.
    pub tie_embeddings: bool,
    /// Which dimensions RoPE rotates together.
    pub rope_layout: RopeLayout,
}

impl LlamaConfig {
    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_heads
    }

    /// RoPE cosine and sine tables, (max_positions, head_dim / 2): angle
    /// position · theta^(-2i/d) for pair i.
    pub fn rope_tables(
        &self,
        device: &candle_core::Device,
    ) -> Result<(candle_core::Tensor, candle_core::Tensor)> {
        use candle_core::{DType, Tensor};
        let half = self.head_dim() / 2;
        let inv_freq: Vec<f32> = (0..half)
            .map(|i| {
                1.0 / self
                    .rope_theta
                    .powf(2.0 * i as f64 / self.head_dim() as f64) as f32
            })
            .collect();
        let inv_freq = Tensor::from_vec(inv_freq, (1, half), device)?;
        let positions = Tensor::arange(0u32, self.max_positions as u32, device)?
            .to_dtype(DType::F32)?
            .reshape((self.max_positions, 1))?;
        let angles = positions.matmul(&inv_freq)?;
        Ok((angles.cos()?, angles.sin()?))
    }

    /// Reads the `llama.*` metadata of a GGUF file; `path` labels errors. A variant the
    /// decoder does not compute (another architecture, experts, rope scaling, a head
    /// size other than hidden / heads, tensors it would not read) is refused.
    pub fn from_gguf(content: &gguf_file::Content, path: &Path) -> Result<Self> {
        let corrupt = |message: String| Error::ModelCorrupt {
            path: path.to_path_buf(),
            message,
        };
        check_gguf_architecture(content, path)?;
        let get_u32 = |key: &str| -> Result<usize> {
            content
                .metadata
                .get(key)
                .and_then(|v| v.to_u32().ok())
                .map(|v| v as usize)
                .ok_or_else(|| corrupt(format!("the metadata has no {key}")))
        };
        let get_f32 = |key: &str, default: f32| -> f64 {
            content
                .metadata
                .get(key)
                .and_then(|v| v.to_f32().ok())
                .unwrap_or(default) as f64
        };
        let vocab_size = match content.metadata.get("tokenizer.ggml.tokens") {
            Some(gguf_file::Value::Array(tokens)) => tokens.len(),
            _ => get_u32("llama.vocab_size")?,
        };
        let num_heads = get_u32("llama.attention.head_count")?;
        let config = LlamaConfig {
            vocab_size,
            hidden_size: get_u32("llama.embedding_length")?,
            intermediate_size: get_u32("llama.feed_forward_length")?,
            num_layers: get_u32("llama.block_count")?,
            num_heads,
            num_kv_heads: get_u32("llama.attention.head_count_kv").unwrap_or(num_heads),
            rms_norm_eps: get_f32("llama.attention.layer_norm_rms_epsilon", 1e-5),
            rope_theta: get_f32("llama.rope.freq_base", 10_000.0),
            max_positions: get_u32("llama.context_length").unwrap_or(2048),
            tie_embeddings: !content.tensor_infos.contains_key("output.weight"),
            rope_layout: RopeLayout::Interleaved,
        };
        config.check_heads(path)?;
        check_gguf_variant(content, &config, path)?;
        check_gguf_tensors(content, &config, path)?;
        Ok(config)
    }

    /// Refuses head counts the attention cannot split the hidden size into.
    fn check_heads(&self, path: &Path) -> Result<()> {
        let (h, q, kv) = (self.hidden_size, self.num_heads, self.num_kv_heads);
        if q == 0 || !h.is_multiple_of(q) {
            return Err(Error::bad_file(
                path,
                format!("the hidden size {h} is not a multiple of the {q} attention heads"),
            ));
        }
        if kv == 0 || !q.is_multiple_of(kv) {
            return Err(Error::bad_file(
                path,
                format!("the {q} attention heads are not a multiple of the {kv} key/value heads"),
            ));
        }
        Ok(())
    }

    /// Reads a Hugging Face `config.json` of a llama-architecture model. A setting the
    /// decoder does not compute (`rope_scaling`, a `head_dim` other than hidden / heads,
    /// `attention_bias`, `mlp_bias`, a `hidden_act` other than silu, quantization) is
    /// refused.
    pub fn from_hf_json(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let not_llama =
            |e: serde_json::Error| Error::bad_file(path, format!("not a llama config.json: {e}"));
        let json: serde_json::Value = serde_json::from_str(&text).map_err(not_llama)?;
        check_hf_config(&json, path)?;
        let raw: HfLlamaConfig = serde_json::from_value(json.clone()).map_err(not_llama)?;
        check_hf_head_dim(&json, raw.hidden_size, raw.num_attention_heads, path)?;
        let config = LlamaConfig {
            vocab_size: raw.vocab_size,
            hidden_size: raw.hidden_size,
            intermediate_size: raw.intermediate_size,
            num_layers: raw.num_hidden_layers,
            num_heads: raw.num_attention_heads,
            num_kv_heads: raw.num_key_value_heads.unwrap_or(raw.num_attention_heads),
            // transformers' LlamaConfig defaults, for configs that leave a key out.
            rms_norm_eps: raw.rms_norm_eps.unwrap_or(1e-6),
            rope_theta: hf_rope_theta(&json, path)?,
            max_positions: raw.max_position_embeddings.unwrap_or(2048),
            tie_embeddings: raw.tie_word_embeddings.unwrap_or(false),
            rope_layout: RopeLayout::Halves,
        };
        config.check_heads(path)?;
        Ok(config)
    }

    /// The `config.json` a Hugging Face llama checkpoint with these dimensions carries.
    pub fn to_hf_json(&self, bos_token_id: Option<u32>, eos_token_id: Option<u32>) -> String {
        let value = serde_json::json!({
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "num_key_value_heads": self.num_kv_heads,
            "hidden_act": "silu",
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "max_position_embeddings": self.max_positions,
            "tie_word_embeddings": self.tie_embeddings,
            "bos_token_id": bos_token_id,
            "eos_token_id": eos_token_id,
            "torch_dtype": "float32",
        });
        serde_json::to_string_pretty(&value).unwrap_or_default()
    }
}

/// The keys of a Hugging Face llama config that set the shape; those that would change
/// the computation are checked in [`check_hf_config`] first.
#[derive(serde::Deserialize)]
struct HfLlamaConfig {
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    rms_norm_eps: Option<f64>,
    max_position_embeddings: Option<usize>,
    tie_word_embeddings: Option<bool>,
}
