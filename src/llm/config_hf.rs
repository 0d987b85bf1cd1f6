//! Reading a [`DecoderConfig`] from a Hugging Face `config.json` (llama, qwen2, qwen3).
//!
//! Every key that would change the computation is read or refused: rope scaling other
//! than llama3, sliding windows, MLP biases, activations other than SiLU, quantized
//! checkpoints.

use super::config::{refusal, DecoderConfig, DecoderFamily, RopeLayout, RopeScaling, SUPPORTED};
use crate::error::{Error, Result};
use serde_json::Value;
use std::path::Path;

/// The RoPE type name (Hugging Face's `rope_type`) that means no scaling.
const PLAIN_ROPE: &str = "default";

impl DecoderConfig {
    /// Reads a Hugging Face `config.json`; a setting the decoder does not compute is
    /// refused, naming the file and the key.
    pub fn from_hf_json(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let json: Value = serde_json::from_str(&text)
            .map_err(|e| Error::bad_file(path, format!("not a JSON config: {e}")))?;
        let family = hf_family(&json, path)?;
        check_hf_config(&json, family, path)?;
        let count = |key: &str| -> Result<usize> {
            json.get(key)
                .and_then(Value::as_u64)
                .map(|n| n as usize)
                .ok_or_else(|| {
                    Error::bad_file(path, format!("config.json has no whole-number {key}"))
                })
        };
        let optional = |key: &str| json.get(key).filter(|v| !v.is_null());
        let hidden_size = count("hidden_size")?;
        let num_heads = count("num_attention_heads")?;
        let attention_bias = optional("attention_bias").and_then(Value::as_bool) == Some(true);
        let config = DecoderConfig {
            family,
            vocab_size: count("vocab_size")?,
            hidden_size,
            intermediate_size: count("intermediate_size")?,
            num_layers: count("num_hidden_layers")?,
            num_heads,
            num_kv_heads: optional("num_key_value_heads")
                .map_or(Ok(num_heads), |_| count("num_key_value_heads"))?,
            head_dim: hf_head_dim(&json, family, hidden_size, num_heads, path)?,
            // transformers' defaults for configs that leave a key out.
            rms_norm_eps: optional("rms_norm_eps")
                .and_then(Value::as_f64)
                .unwrap_or(1e-6),
            rope_theta: hf_rope_theta(&json, path)?,
            rope_scaling: hf_rope_scaling(&json, path)?,
            max_positions: optional("max_position_embeddings")
                .map_or(Ok(2048), |_| count("max_position_embeddings"))?,
            tie_embeddings: optional("tie_word_embeddings")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            rope_layout: RopeLayout::Halves,
            qkv_bias: family == DecoderFamily::Qwen2 || attention_bias,
            output_bias: family != DecoderFamily::Qwen2 && attention_bias,
            qk_norm: family == DecoderFamily::Qwen3,
        };
        config.check(path)?;
        Ok(config)
    }
}

fn hf_family(json: &Value, path: &Path) -> Result<DecoderFamily> {
    match json.get("model_type").and_then(Value::as_str) {
        Some(name) => DecoderFamily::from_name(name).ok_or_else(|| {
            refusal(
                path,
                format!("model_type \"{name}\" (supported: \"llama\", \"qwen2\", \"qwen3\")"),
            )
        }),
        None => Err(Error::unsupported(
            path,
            format!("config.json has no model_type, so its architecture is unknown; {SUPPORTED}"),
        )),
    }
}

/// Refuses settings that change the computation in ways the decoder does not follow.
fn check_hf_config(json: &Value, family: DecoderFamily, path: &Path) -> Result<()> {
    let set = |key: &str| json.get(key).filter(|v| !v.is_null());
    if set("mlp_bias").and_then(Value::as_bool) == Some(true) {
        return Err(refusal(path, "mlp_bias true".into()));
    }
    // Qwen2 has query/key/value biases and no output bias whatever the config says;
    // one that asks for all four is refused rather than read as something else.
    let all_biases = set("attention_bias").and_then(Value::as_bool) == Some(true);
    if family == DecoderFamily::Qwen2 && all_biases {
        return Err(refusal(
            path,
            "attention_bias true in a qwen2 config".into(),
        ));
    }
    if let Some(act) = set("hidden_act").filter(|v| v.as_str() != Some("silu")) {
        return Err(refusal(
            path,
            format!("hidden_act {act} (only \"silu\" is)"),
        ));
    }
    if let Some(f) = set("partial_rotary_factor").filter(|v| v.as_f64() != Some(1.0)) {
        return Err(refusal(path, format!("partial_rotary_factor {f}")));
    }
    if set("use_sliding_window").and_then(Value::as_bool) == Some(true) {
        return Err(refusal(
            path,
            "use_sliding_window true (sliding-window attention)".into(),
        ));
    }
    if let Some(Value::Array(types)) = set("layer_types") {
        if let Some(other) = types.iter().find(|t| t.as_str() != Some("full_attention")) {
            return Err(refusal(
                path,
                format!("layer_types entry {other} (only full_attention is)"),
            ));
        }
    }
    for key in ["num_experts", "num_local_experts"] {
        if let Some(n) = set(key).and_then(Value::as_u64).filter(|&n| n > 0) {
            return Err(refusal(path, format!("{key} {n} (a mixture of experts)")));
        }
    }
    if set("quantization_config").is_some() {
        return Err(refusal(
            path,
            "a quantization_config (a GPTQ, AWQ or bitsandbytes checkpoint; f32, f16 or bf16 \
             safetensors load)"
                .into(),
        ));
    }
    Ok(())
}

/// The head size: `head_dim` when given, else hidden / heads (Qwen3Config's default is
/// 128, which transformers uses when the key is absent).
fn hf_head_dim(
    json: &Value,
    family: DecoderFamily,
    hidden: usize,
    heads: usize,
    path: &Path,
) -> Result<usize> {
    if let Some(d) = json.get("head_dim").filter(|v| !v.is_null()) {
        return d
            .as_u64()
            .map(|d| d as usize)
            .ok_or_else(|| Error::bad_file(path, format!("head_dim {d} is not a whole number")));
    }
    if family == DecoderFamily::Qwen3 {
        return Ok(128);
    }
    if heads == 0 || !hidden.is_multiple_of(heads) {
        return Err(Error::bad_file(
            path,
            format!("the hidden size {hidden} is not a multiple of the {heads} attention heads"),
        ));
    }
    Ok(hidden / heads)
}

/// The RoPE base: `rope_theta`, or transformers 5's `rope_parameters.rope_theta`;
/// 10 000 (transformers' default) when neither is given.
fn hf_rope_theta(json: &Value, path: &Path) -> Result<f64> {
    let top = json.get("rope_theta").and_then(Value::as_f64);
    let nested = json
        .get("rope_parameters")
        .and_then(|p| p.get("rope_theta"))
        .and_then(Value::as_f64);
    match (top, nested) {
        (Some(a), Some(b)) if a != b => Err(Error::bad_file(
            path,
            format!("rope_theta {a} and rope_parameters.rope_theta {b} disagree"),
        )),
        (Some(t), _) | (None, Some(t)) => Ok(t),
        (None, None) => Ok(10_000.0),
    }
}

/// The RoPE scaling of `rope_scaling` or transformers 5's `rope_parameters`: plain
/// (null, or `rope_type` "default"), or llama3 with its four parameters; any other type
/// is refused.
fn hf_rope_scaling(json: &Value, path: &Path) -> Result<RopeScaling> {
    let mut found = RopeScaling::None;
    for key in ["rope_scaling", "rope_parameters"] {
        let Some(rope) = json.get(key).filter(|v| !v.is_null()) else {
            continue;
        };
        let kind = rope
            .get("rope_type")
            .or_else(|| rope.get("type"))
            .and_then(Value::as_str);
        let scaling = match kind {
            Some(PLAIN_ROPE) => RopeScaling::None,
            // transformers 5 writes rope_parameters even for plain RoPE, with its base.
            None if key == "rope_parameters" => RopeScaling::None,
            Some("llama3") => llama3_scaling(rope, key, path)?,
            _ => return Err(refusal(path, format!("{key} {rope}"))),
        };
        if scaling != RopeScaling::None {
            found = scaling;
        }
    }
    Ok(found)
}

fn llama3_scaling(rope: &Value, key: &str, path: &Path) -> Result<RopeScaling> {
    let number = |name: &str| -> Result<f64> {
        rope.get(name)
            .and_then(Value::as_f64)
            .filter(|v| v.is_finite() && *v > 0.0)
            .ok_or_else(|| {
                Error::bad_file(
                    path,
                    format!("{key} of type llama3 needs a positive {name}"),
                )
            })
    };
    let scaling = RopeScaling::Llama3 {
        factor: number("factor")?,
        low_freq_factor: number("low_freq_factor")?,
        high_freq_factor: number("high_freq_factor")?,
        original_max_positions: number("original_max_position_embeddings")?,
    };
    if let RopeScaling::Llama3 {
        low_freq_factor,
        high_freq_factor,
        ..
    } = scaling
    {
        if high_freq_factor <= low_freq_factor {
            return Err(Error::bad_file(
                path,
                format!("{key}: high_freq_factor {high_freq_factor} is not above low_freq_factor {low_freq_factor}"),
            ));
        }
    }
    Ok(scaling)
}
