//! The shape of a decoder-only model of a family bftembed computes (llama, qwen2, qwen3),
//! read from GGUF metadata ([`super::config_gguf`]) or a Hugging Face `config.json`
//! ([`super::config_hf`]), and written back as `config.json` when a model is exported.

use crate::error::{Error, Result};
use std::path::Path;

/// Said after every refusal, so the user knows what would load.
pub(super) const SUPPORTED: &str = "bftembed's decoder runs dense llama (incl. Llama 3.x \
     rope scaling), qwen2 and qwen3 models: full attention in every layer (no sliding \
     window), RoPE over the whole head (default or llama3 scaling), a SiLU-gated MLP without \
     biases, no experts";

/// A refusal of `what` in the file at `path`, followed by what is supported.
pub(super) fn refusal(path: &Path, what: String) -> Error {
    Error::unsupported(path, format!("{what} is not supported; {SUPPORTED}"))
}

/// The architectures the decoder computes. Each differs from llama in a few fixed ways,
/// which the config records as flags so the forward pass reads them, not the family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecoderFamily {
    /// Llama 2/3.x and models that copy it (SmolLM2).
    Llama,
    /// Qwen2 / Qwen2.5: biases on the query, key and value projections.
    Qwen2,
    /// Qwen3: RMSNorm over each query and key head before RoPE, an explicit head size.
    Qwen3,
}

impl DecoderFamily {
    /// The family of a GGUF `general.architecture` or Hugging Face `model_type`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "llama" => Some(DecoderFamily::Llama),
            "qwen2" => Some(DecoderFamily::Qwen2),
            "qwen3" => Some(DecoderFamily::Qwen3),
            _ => None,
        }
    }

    /// Its GGUF architecture / Hugging Face model type.
    pub fn name(self) -> &'static str {
        match self {
            DecoderFamily::Llama => "llama",
            DecoderFamily::Qwen2 => "qwen2",
            DecoderFamily::Qwen3 => "qwen3",
        }
    }

    /// The `architectures` entry of its Hugging Face config.
    pub fn hf_architecture(self) -> &'static str {
        match self {
            DecoderFamily::Llama => "LlamaForCausalLM",
            DecoderFamily::Qwen2 => "Qwen2ForCausalLM",
            DecoderFamily::Qwen3 => "Qwen3ForCausalLM",
        }
    }

    /// How a GGUF file of this family pairs RoPE dimensions: llama.cpp's converter
    /// permutes llama's query and key rows (interleaved pairs) but leaves Qwen's as
    /// they are, which llama.cpp rotates as halves ("NEOX" style).
    pub fn gguf_rope_layout(self) -> RopeLayout {
        match self {
            DecoderFamily::Llama => RopeLayout::Interleaved,
            DecoderFamily::Qwen2 | DecoderFamily::Qwen3 => RopeLayout::Halves,
        }
    }
}

/// How rotary position embeddings pair up the dimensions of a head.
///
/// llama.cpp's converter permutes llama's query and key weights so that GGUF files rotate
/// neighbouring pairs (2i, 2i+1); Hugging Face checkpoints rotate the two halves
/// (i, i + d/2). The same model therefore needs the matching convention for its format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeLayout {
    /// Pairs (2i, 2i+1): GGUF llama files.
    Interleaved,
    /// Pairs (i, i + d/2): Hugging Face checkpoints, GGUF qwen2/qwen3 files.
    Halves,
}

/// How the RoPE frequencies are changed from plain `theta^(-2i/d)`.
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    /// Plain RoPE.
    None,
    /// Llama 3.1's rule (Hugging Face `rope_type: "llama3"`): wavelengths longer than
    /// `original / low_freq_factor` are stretched by `factor`, shorter than
    /// `original / high_freq_factor` kept, and those between interpolated.
    Llama3 {
        /// Stretch of the long wavelengths.
        factor: f64,
        /// Lower edge of the interpolated band.
        low_freq_factor: f64,
        /// Upper edge of the interpolated band.
        high_freq_factor: f64,
        /// Context length the model was pretrained with.
        original_max_positions: f64,
    },
    /// One divisor per frequency, as llama.cpp stores Llama 3.1's rule in a GGUF file
    /// (`rope_freqs.weight`).
    Divisors(Vec<f32>),
}

/// Dimensions and constants of a decoder.
#[derive(Debug, Clone, PartialEq)]
pub struct DecoderConfig {
    /// The architecture.
    pub family: DecoderFamily,
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
    /// Width of one attention head (Qwen3 and some Llama 3.x models set it apart from
    /// hidden / heads).
    pub head_dim: usize,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// RoPE base frequency.
    pub rope_theta: f64,
    /// RoPE frequency scaling.
    pub rope_scaling: RopeScaling,
    /// Longest context the model was trained for.
    pub max_positions: usize,
    /// Whether the output projection reuses the token embedding matrix.
    pub tie_embeddings: bool,
    /// Which dimensions RoPE rotates together.
    pub rope_layout: RopeLayout,
    /// Biases on the query, key and value projections (qwen2; llama/qwen3 with
    /// `attention_bias`).
    pub qkv_bias: bool,
    /// A bias on the attention output projection (llama/qwen3 with `attention_bias`).
    pub output_bias: bool,
    /// RMSNorm over each query and key head before RoPE (qwen3).
    pub qk_norm: bool,
}

impl DecoderConfig {
    /// Width of the query projection's output (heads x head size).
    pub fn query_width(&self) -> usize {
        self.num_heads * self.head_dim
    }

    /// Width of the key and value projections' output.
    pub fn kv_width(&self) -> usize {
        self.num_kv_heads * self.head_dim
    }

    /// RoPE inverse frequencies, one per rotated pair, with the scaling applied.
    pub fn rope_inverse_frequencies(&self) -> Vec<f64> {
        let d = self.head_dim as f64;
        // 1 / theta^(2i/d) divided in f32 as the references do: int8 and Q4 products
        // quantize activations, so a last-bit difference here can flip a rounding
        // several blocks later.
        let plain = (0..self.head_dim / 2).map(|i| {
            let power = self.rope_theta.powf(2.0 * i as f64 / d) as f32;
            f64::from(1.0 / power)
        });
        match &self.rope_scaling {
            RopeScaling::None => plain.collect(),
            RopeScaling::Divisors(divisors) => plain
                .zip(divisors)
                .map(|(f, &div)| f / f64::from(div))
                .collect(),
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_positions,
            } => plain
                .map(|f| {
                    let wavelength = 2.0 * std::f64::consts::PI / f;
                    if wavelength < original_max_positions / high_freq_factor {
                        f
                    } else if wavelength > original_max_positions / low_freq_factor {
                        f / factor
                    } else {
                        let smooth = (original_max_positions / wavelength - low_freq_factor)
                            / (high_freq_factor - low_freq_factor);
                        (1.0 - smooth) * f / factor + smooth * f
                    }
                })
                .collect(),
        }
    }

    /// RoPE cosine and sine tables, (max_positions, head_dim / 2): angle
    /// position · frequency for pair i.
    pub fn rope_tables(
        &self,
        device: &candle_core::Device,
    ) -> Result<(candle_core::Tensor, candle_core::Tensor)> {
        use candle_core::{DType, Tensor};
        let inv_freq: Vec<f32> = self
            .rope_inverse_frequencies()
            .into_iter()
            .map(|f| f as f32)
            .collect();
        let half = inv_freq.len();
        let inv_freq = Tensor::from_vec(inv_freq, (1, half), device)?;
        let positions = Tensor::arange(0u32, self.max_positions as u32, device)?
            .to_dtype(DType::F32)?
            .reshape((self.max_positions, 1))?;
        let angles = positions.matmul(&inv_freq)?;
        Ok((angles.cos()?, angles.sin()?))
    }

    /// What both readers check once the config is read: heads, RoPE divisors and the
    /// family's biases and norms.
    pub(super) fn check(&self, path: &Path) -> Result<()> {
        self.check_heads(path)?;
        self.check_family_flags(path)
    }

    /// Refuses bias and norm tensors a family does not have: qwen2 has query/key/value
    /// biases and nothing else, qwen3 has query/key norms and biases on all four
    /// projections or none, llama biases on all four or none.
    fn check_family_flags(&self, path: &Path) -> Result<()> {
        let (qkv, out, norm) = (self.qkv_bias, self.output_bias, self.qk_norm);
        let ok = match self.family {
            DecoderFamily::Llama => !norm && qkv == out,
            DecoderFamily::Qwen2 => qkv && !out && !norm,
            DecoderFamily::Qwen3 => norm && qkv == out,
        };
        if ok {
            return Ok(());
        }
        Err(refusal(
            path,
            format!(
                "a {} model with query/key/value biases {qkv}, an output bias {out} and \
                 query/key norms {norm}",
                self.family.name()
            ),
        ))
    }

    /// Refuses head counts and sizes the attention cannot use.
    fn check_heads(&self, path: &Path) -> Result<()> {
        let (q, kv, d) = (self.num_heads, self.num_kv_heads, self.head_dim);
        if q == 0 || kv == 0 || !q.is_multiple_of(kv) {
            return Err(Error::bad_file(
                path,
                format!("the {q} attention heads are not a multiple of the {kv} key/value heads"),
            ));
        }
        if d == 0 || !d.is_multiple_of(2) {
            return Err(Error::bad_file(
                path,
                format!("the head size {d} is not a positive even number, which RoPE needs"),
            ));
        }
        if let RopeScaling::Divisors(divisors) = &self.rope_scaling {
            if divisors.len() != d / 2 {
                return Err(Error::bad_file(
                    path,
                    format!(
                        "rope_freqs.weight has {} values for a head of {d} ({} pairs)",
                        divisors.len(),
                        d / 2
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The `config.json` a Hugging Face checkpoint of this model carries. A model read
    /// from a GGUF file with RoPE divisors (`rope_freqs.weight`) is refused: Hugging
    /// Face configs state Llama 3.1's rule by its parameters, which the divisors do not
    /// give back.
    pub fn to_hf_json(
        &self,
        bos_token_id: Option<u32>,
        eos_token_id: Option<u32>,
    ) -> Result<String> {
        let rope_scaling = match &self.rope_scaling {
            RopeScaling::None => serde_json::Value::Null,
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_positions,
            } => serde_json::json!({
                "rope_type": "llama3",
                "factor": factor,
                "low_freq_factor": low_freq_factor,
                "high_freq_factor": high_freq_factor,
                "original_max_position_embeddings": *original_max_positions as u64,
            }),
            RopeScaling::Divisors(_) => {
                return Err(Error::InvalidArgument(
                    "this model's RoPE scaling came as GGUF rope_freqs divisors, which a \
                     Hugging Face config.json cannot state; export it from the Hugging Face \
                     checkpoint instead"
                        .into(),
                ))
            }
        };
        let mut value = serde_json::json!({
            "architectures": [self.family.hf_architecture()],
            "model_type": self.family.name(),
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "num_key_value_heads": self.num_kv_heads,
            "head_dim": self.head_dim,
            "hidden_act": "silu",
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "rope_scaling": rope_scaling,
            "max_position_embeddings": self.max_positions,
            "tie_word_embeddings": self.tie_embeddings,
            "bos_token_id": bos_token_id,
            "eos_token_id": eos_token_id,
            "torch_dtype": "float32",
        });
        self.write_family_keys(&mut value)?;
        Ok(serde_json::to_string_pretty(&value).unwrap_or_default())
    }

    /// The keys by which each family's config states its biases and windows.
    fn write_family_keys(&self, value: &mut serde_json::Value) -> Result<()> {
        let all_four = self.qkv_bias && self.output_bias;
        let none = !self.qkv_bias && !self.output_bias;
        let unstatable = || {
            Err(Error::InvalidArgument(format!(
                "a {} model with query/key/value biases {} and an output bias {} cannot be \
                 stated in a Hugging Face config.json",
                self.family.name(),
                self.qkv_bias,
                self.output_bias
            )))
        };
        match self.family {
            DecoderFamily::Llama | DecoderFamily::Qwen3 => {
                if !(all_four || none) {
                    return unstatable();
                }
                value["attention_bias"] = serde_json::json!(all_four);
                value["mlp_bias"] = serde_json::json!(false);
            }
            DecoderFamily::Qwen2 => {
                if !self.qkv_bias || self.output_bias {
                    return unstatable();
                }
                value["use_sliding_window"] = serde_json::json!(false);
            }
        }
        Ok(())
    }
}
