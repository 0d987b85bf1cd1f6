//! Reading a [`DecoderConfig`] from a GGUF file's `ARCH.*` metadata and tensor list.
//!
//! What the decoder computes is checked here: a file that asks for more (another
//! architecture, experts, a rope scaling type, partial rotary dimensions, tensors the
//! decoder would not read) would load, or nearly, and generate text that is subtly
//! wrong, so each such setting is refused with what is supported.

use super::config::{refusal, DecoderConfig, DecoderFamily, RopeScaling, SUPPORTED};
use super::weights::WeightRole;
use crate::error::{Error, Result};
use candle_core::quantized::gguf_file::{self, Value as GgufValue};
use std::collections::HashSet;
use std::path::Path;

/// The tensor llama.cpp writes Llama 3.1's RoPE rule into (one divisor per pair).
const ROPE_FREQS: &str = "rope_freqs.weight";

impl DecoderConfig {
    /// Reads the metadata of a GGUF file at `path` (read again only for
    /// `rope_freqs.weight`); a variant the decoder does not compute is refused.
    pub fn from_gguf(content: &gguf_file::Content, path: &Path) -> Result<Self> {
        let family = gguf_family(content, path)?;
        let meta = Metadata {
            content,
            path,
            prefix: family.name(),
        };
        check_gguf_variant(&meta)?;
        let vocab_size = match content.metadata.get("tokenizer.ggml.tokens") {
            Some(GgufValue::Array(tokens)) => tokens.len(),
            _ => meta.count("vocab_size")?,
        };
        let hidden_size = meta.count("embedding_length")?;
        let num_heads = meta.count("attention.head_count")?;
        let has = |name: &str| content.tensor_infos.contains_key(name);
        let mut config = DecoderConfig {
            family,
            vocab_size,
            hidden_size,
            intermediate_size: meta.count("feed_forward_length")?,
            num_layers: meta.count("block_count")?,
            num_heads,
            num_kv_heads: meta.count("attention.head_count_kv").unwrap_or(num_heads),
            head_dim: meta.head_dim(hidden_size, num_heads)?,
            rms_norm_eps: meta
                .number("attention.layer_norm_rms_epsilon")
                .unwrap_or(1e-5),
            rope_theta: meta.number("rope.freq_base").unwrap_or(10_000.0),
            rope_scaling: RopeScaling::None,
            max_positions: meta.count("context_length").unwrap_or(2048),
            tie_embeddings: !has("output.weight"),
            rope_layout: family.gguf_rope_layout(),
            qkv_bias: has("blk.0.attn_q.bias"),
            output_bias: has("blk.0.attn_output.bias"),
            qk_norm: has("blk.0.attn_q_norm.weight"),
        };
        if has(ROPE_FREQS) {
            if family != DecoderFamily::Llama {
                return Err(refusal(
                    path,
                    format!("{ROPE_FREQS} in a {} file", family.name()),
                ));
            }
            let pairs = config.head_dim / 2;
            config.rope_scaling = RopeScaling::Divisors(read_rope_divisors(content, pairs, path)?);
        }
        config.check(path)?;
        check_gguf_tensors(content, &config, path)?;
        Ok(config)
    }
}

/// The family of `general.architecture`, or a refusal naming what is supported.
fn gguf_family(content: &gguf_file::Content, path: &Path) -> Result<DecoderFamily> {
    let arch = content
        .metadata
        .get("general.architecture")
        .and_then(|v| v.to_string().ok());
    match arch.map(String::as_str) {
        Some(name) => DecoderFamily::from_name(name).ok_or_else(|| {
            refusal(
                path,
                format!(
                    "general.architecture \"{name}\" (supported: \"llama\", \"qwen2\", \"qwen3\")"
                ),
            )
        }),
        None => Err(Error::unsupported(
            path,
            format!("the metadata has no general.architecture; {SUPPORTED}"),
        )),
    }
}

/// The `ARCH.*` keys of one file.
struct Metadata<'a> {
    content: &'a gguf_file::Content,
    path: &'a Path,
    prefix: &'static str,
}

impl Metadata<'_> {
    fn key(&self, suffix: &str) -> String {
        format!("{}.{suffix}", self.prefix)
    }

    /// A non-negative integer; missing or of another type is an error naming the key.
    fn count(&self, suffix: &str) -> Result<usize> {
        let key = self.key(suffix);
        self.content
            .metadata
            .get(&key)
            .and_then(|v| v.to_u32().ok())
            .map(|v| v as usize)
            .ok_or_else(|| Error::ModelCorrupt {
                path: self.path.to_path_buf(),
                message: format!("the metadata has no {key}"),
            })
    }

    fn number(&self, suffix: &str) -> Option<f64> {
        gguf_number(self.content, &self.key(suffix))
    }

    fn text(&self, suffix: &str) -> Option<&str> {
        self.content
            .metadata
            .get(&self.key(suffix))
            .and_then(|v| v.to_string().ok())
            .map(String::as_str)
    }

    /// The head size: `attention.key_length` when given (it must equal
    /// `value_length`), else hidden / heads; RoPE must cover the whole head.
    fn head_dim(&self, hidden: usize, heads: usize) -> Result<usize> {
        let implied = hidden.checked_div(heads).unwrap_or(0);
        let key = self.number("attention.key_length");
        let head = key.map_or(implied, |k| k as usize);
        for suffix in ["attention.value_length", "rope.dimension_count"] {
            if let Some(n) = self.number(suffix).filter(|&n| n != head as f64) {
                return Err(refusal(
                    self.path,
                    format!("{} {n} (the head size is {head})", self.key(suffix)),
                ));
            }
        }
        if key.is_none() && heads > 0 && !hidden.is_multiple_of(heads) {
            return Err(Error::bad_file(
                self.path,
                format!(
                    "the hidden size {hidden} is not a multiple of the {heads} attention heads"
                ),
            ));
        }
        Ok(head)
    }
}

/// Refuses experts, rope scaling types other than none, and sliding windows.
fn check_gguf_variant(meta: &Metadata) -> Result<()> {
    if let Some(n) = meta.number("expert_count").filter(|&n| n > 0.0) {
        return Err(refusal(
            meta.path,
            format!("{} {n} (a mixture of experts)", meta.key("expert_count")),
        ));
    }
    if let Some(kind) = meta.text("rope.scaling.type").filter(|&t| t != "none") {
        return Err(refusal(
            meta.path,
            format!("{} \"{kind}\"", meta.key("rope.scaling.type")),
        ));
    }
    for suffix in ["rope.scaling.factor", "rope.scale_linear"] {
        if let Some(f) = meta.number(suffix).filter(|&f| f != 0.0 && f != 1.0) {
            return Err(refusal(
                meta.path,
                format!("{} {f} (rope scaling)", meta.key(suffix)),
            ));
        }
    }
    if let Some(w) = meta.number("attention.sliding_window").filter(|&w| w > 0.0) {
        return Err(refusal(
            meta.path,
            format!(
                "{} {w} (sliding-window attention)",
                meta.key("attention.sliding_window")
            ),
        ));
    }
    Ok(())
}

/// Refuses a file holding tensors the decoder would not read (experts, extra biases):
/// ignoring them would change the model's output.
fn check_gguf_tensors(
    content: &gguf_file::Content,
    config: &DecoderConfig,
    path: &Path,
) -> Result<()> {
    let mut expected: HashSet<String> = WeightRole::all(config)
        .into_iter()
        .map(WeightRole::gguf_name)
        .collect();
    if matches!(config.rope_scaling, RopeScaling::Divisors(_)) {
        expected.insert(ROPE_FREQS.to_string());
    }
    let mut extra: Vec<&str> = content
        .tensor_infos
        .keys()
        .map(String::as_str)
        .filter(|name| !expected.contains(*name))
        .collect();
    if extra.is_empty() {
        return Ok(());
    }
    extra.sort_unstable();
    let shown: Vec<&str> = extra.iter().take(5).copied().collect();
    Err(Error::unsupported(
        path,
        format!(
            "{} tensor(s) that bftembed's decoder does not use, such as {}, are not \
             supported; {SUPPORTED}",
            extra.len(),
            shown.join(", ")
        ),
    ))
}

/// The divisors of `rope_freqs.weight`, read from the file: one per rotated pair.
fn read_rope_divisors(content: &gguf_file::Content, pairs: usize, path: &Path) -> Result<Vec<f32>> {
    let corrupt = |message: String| Error::ModelCorrupt {
        path: path.to_path_buf(),
        message,
    };
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let tensor = content
        .tensor(&mut file, ROPE_FREQS, &candle_core::Device::Cpu)
        .and_then(|q| q.dequantize(&candle_core::Device::Cpu))
        .and_then(|t| t.flatten_all()?.to_vec1::<f32>())
        .map_err(|e| corrupt(format!("tensor {ROPE_FREQS}: {e}")))?;
    if tensor.len() != pairs {
        return Err(corrupt(format!(
            "{ROPE_FREQS} has {} values for a head of {} ({pairs} pairs)",
            tensor.len(),
            2 * pairs
        )));
    }
    if tensor.iter().any(|&d| !(d.is_finite() && d > 0.0)) {
        return Err(corrupt(format!(
            "{ROPE_FREQS} holds a divisor that is not positive"
        )));
    }
    Ok(tensor)
}

/// A numeric metadata value of any integer or float type.
fn gguf_number(content: &gguf_file::Content, key: &str) -> Option<f64> {
    Some(match content.metadata.get(key)? {
        GgufValue::U8(v) => f64::from(*v),
        GgufValue::I8(v) => f64::from(*v),
        GgufValue::U16(v) => f64::from(*v),
        GgufValue::I16(v) => f64::from(*v),
        GgufValue::U32(v) => f64::from(*v),
        GgufValue::I32(v) => f64::from(*v),
        GgufValue::U64(v) => *v as f64,
        GgufValue::I64(v) => *v as f64,
        GgufValue::F32(v) => f64::from(*v),
        GgufValue::F64(v) => *v,
        _ => return None,
    })
}
