//! What the llama decoder computes exactly, checked when a model's config is read.
//!
//! [`super::LlamaModel`] is a dense llama: plain RoPE at one base frequency, heads of
//! `hidden_size / num_heads`, no biases, a SiLU-gated MLP. A file that asks for more
//! (rope scaling, a wider head, biases, experts) would load, or nearly, and generate
//! text that is subtly wrong, so each such setting is refused here with what is
//! supported.

use super::config::LlamaConfig;
use super::weights::WeightRole;
use crate::error::{Error, Result};
use candle_core::quantized::gguf_file::{self, Value as GgufValue};
use serde_json::Value;
use std::collections::HashSet;
use std::path::Path;

/// Said after every refusal, so the user knows what would load.
const SUPPORTED: &str = "bftembed's decoder runs dense llama-architecture models: plain RoPE \
     (no rope scaling), head size hidden_size / num_attention_heads, no attention or MLP \
     biases, a SiLU MLP";

/// The RoPE type name (Hugging Face's `rope_type`) that means no scaling.
const PLAIN_ROPE: &str = "default";

/// Refuses a GGUF file whose `general.architecture` is not llama.
pub(super) fn check_gguf_architecture(content: &gguf_file::Content, path: &Path) -> Result<()> {
    let what = match gguf_text(content, "general.architecture") {
        Some("llama") => return Ok(()),
        Some(arch) => format!("general.architecture \"{arch}\" is not supported"),
        None => "the metadata has no general.architecture".to_string(),
    };
    Err(Error::unsupported(
        path,
        format!("{what}; {SUPPORTED} (general.architecture \"llama\")"),
    ))
}

/// Refuses GGUF metadata for a llama variant the decoder does not compute: experts,
/// rope scaling, partial rotary dimensions, a head size other than hidden / heads.
pub(super) fn check_gguf_variant(
    content: &gguf_file::Content,
    config: &LlamaConfig,
    path: &Path,
) -> Result<()> {
    let refuse = |what: String| Err(Error::unsupported(path, format!("{what}; {SUPPORTED}")));
    if let Some(n) = gguf_number(content, "llama.expert_count").filter(|&n| n > 0.0) {
        return refuse(format!(
            "llama.expert_count {n} (a mixture of experts) is not supported"
        ));
    }
    if let Some(kind) = gguf_text(content, "llama.rope.scaling.type").filter(|&t| t != "none") {
        return refuse(format!(
            "llama.rope.scaling.type \"{kind}\" is not supported"
        ));
    }
    for key in ["llama.rope.scaling.factor", "llama.rope.scale_linear"] {
        if let Some(f) = gguf_number(content, key).filter(|&f| f != 0.0 && f != 1.0) {
            return refuse(format!("{key} {f} (rope scaling) is not supported"));
        }
    }
    let head = config.head_dim() as f64;
    for key in [
        "llama.rope.dimension_count",
        "llama.attention.key_length",
        "llama.attention.value_length",
    ] {
        if let Some(n) = gguf_number(content, key).filter(|&n| n != head) {
            return refuse(format!(
                "{key} {n} is not supported (it must equal the head size {head})"
            ));
        }
    }
    Ok(())
}

/// Refuses a GGUF file holding tensors the decoder would not read (biases, experts,
/// RoPE frequency factors): ignoring them would change the model's output.
pub(super) fn check_gguf_tensors(
    content: &gguf_file::Content,
    config: &LlamaConfig,
    path: &Path,
) -> Result<()> {
    let expected: HashSet<String> = WeightRole::all(config.num_layers, config.tie_embeddings)
        .into_iter()
        .map(WeightRole::gguf_name)
        .collect();
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
    let why = if extra.contains(&"rope_freqs.weight") {
        " (rope_freqs.weight holds Llama-3.1-style RoPE scaling factors)"
    } else {
        ""
    };
    let shown: Vec<&str> = extra.iter().take(5).copied().collect();
    Err(Error::unsupported(
        path,
        format!(
            "{} tensor(s) that bftembed's decoder does not use, such as {}{why}, are not \
             supported; {SUPPORTED}",
            extra.len(),
            shown.join(", ")
        ),
    ))
}

/// Refuses a Hugging Face `config.json` (parsed as `json`) whose model is not the
/// dense llama the decoder computes.
pub(super) fn check_hf_config(json: &Value, path: &Path) -> Result<()> {
    let refuse = |what: String| Err(Error::unsupported(path, format!("{what}; {SUPPORTED}")));
    match json.get("model_type").and_then(Value::as_str) {
        Some("llama") => {}
        Some(other) => {
            return refuse(format!(
                "model_type \"{other}\" is not supported (only \"llama\" is)"
            ))
        }
        None => {
            return refuse("config.json has no model_type (only \"llama\" is supported)".into())
        }
    }
    for key in ["rope_scaling", "rope_parameters"] {
        if let Some(rope) = json.get(key).filter(|v| !is_plain_rope(v)) {
            return refuse(format!("{key} {rope} is not supported"));
        }
    }
    for key in ["attention_bias", "mlp_bias"] {
        if json.get(key).and_then(Value::as_bool) == Some(true) {
            return refuse(format!("{key} true is not supported"));
        }
    }
    if let Some(act) = json
        .get("hidden_act")
        .filter(|v| v.as_str() != Some("silu"))
    {
        return refuse(format!(
            "hidden_act {act} is not supported (only \"silu\" is)"
        ));
    }
    if let Some(f) = json
        .get("partial_rotary_factor")
        .filter(|v| v.as_f64() != Some(1.0))
    {
        return refuse(format!("partial_rotary_factor {f} is not supported"));
    }
    if json.get("quantization_config").is_some() {
        return refuse(
            "a quantization_config (a GPTQ, AWQ or bitsandbytes checkpoint) is not supported; \
             f32, f16 or bf16 safetensors are"
                .into(),
        );
    }
    Ok(())
}

/// Refuses a `head_dim` other than `hidden / heads`: the decoder's heads are that wide.
pub(super) fn check_hf_head_dim(
    json: &Value,
    hidden: usize,
    heads: usize,
    path: &Path,
) -> Result<()> {
    match json.get("head_dim").filter(|v| !v.is_null()) {
        Some(d) if heads == 0 || d.as_u64() != Some((hidden / heads) as u64) => {
            Err(Error::unsupported(
                path,
                format!(
                    "head_dim {d} is not supported (it must equal hidden_size / \
                     num_attention_heads = {}); {SUPPORTED}",
                    hidden.checked_div(heads).unwrap_or(0)
                ),
            ))
        }
        _ => Ok(()),
    }
}

/// The RoPE base of a Hugging Face config: `rope_theta`, or transformers 5's
/// `rope_parameters.rope_theta`; 10 000 (transformers' default) when neither is given.
pub(super) fn hf_rope_theta(json: &Value, path: &Path) -> Result<f64> {
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

/// Whether a `rope_scaling` / `rope_parameters` value asks for plain RoPE: null, or a
/// `rope_type` (older configs: `type`) of "default", which transformers computes without
/// any scaling whatever else the object holds.
fn is_plain_rope(value: &Value) -> bool {
    if value.is_null() {
        return true;
    }
    let kind = value
        .get("rope_type")
        .or_else(|| value.get("type"))
        .and_then(Value::as_str);
    kind == Some(PLAIN_ROPE)
}

fn gguf_text<'a>(content: &'a gguf_file::Content, key: &str) -> Option<&'a str> {
    content
        .metadata
        .get(key)
        .and_then(|v| v.to_string().ok())
        .map(String::as_str)
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
