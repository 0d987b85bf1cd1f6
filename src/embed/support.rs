//! What the sentence encoder computes exactly, checked before any weight is read.
//!
//! [`super::BertEncoder`] is BERT: absolute positions from 0, post-layer-norm blocks,
//! GELU (erf) or ReLU, and the vectors are the mean of the token vectors. A RoBERTa
//! or MPNet checkpoint, a CLS- or max-pooled model, or a Dense layer after pooling
//! would load (or nearly) and give vectors that look right and are not, so each is
//! refused here with what is supported.

use crate::error::{Error, Result};
use serde_json::Value;
use std::path::Path;

/// The `model_type` values the BERT forward pass reproduces.
pub const SUPPORTED_ENCODER_TYPES: &[&str] = &["bert"];

/// Said after every refusal, so the user knows what would load.
const SUPPORTED: &str = "bftembed's encoder runs BERT models (model_type \"bert\", absolute \
     positions, hidden_act \"gelu\" or \"relu\") pooled by the mean of the token vectors";

/// The sentence-transformers module types whose computation bftembed performs
/// (Transformer: the BERT pass; Pooling: checked to be mean pooling; Normalize: bftembed
/// always L2-normalises).
const SUPPORTED_MODULES: &[&str] = &[
    "sentence_transformers.models.Transformer",
    "sentence_transformers.models.Pooling",
    "sentence_transformers.models.Normalize",
];

/// Refuses a `config.json` (at `path`, parsed as `config`) that the BERT forward pass
/// would not reproduce.
pub fn check_encoder_config(path: &Path, config: &Value) -> Result<()> {
    match config.get("model_type").and_then(Value::as_str) {
        Some(t) if SUPPORTED_ENCODER_TYPES.contains(&t) => {}
        Some(t) => {
            return Err(Error::unsupported(
                path,
                format!("model_type \"{t}\" is not supported; {SUPPORTED}"),
            ))
        }
        None => {
            return Err(Error::unsupported(
                path,
                format!(
                    "config.json has no model_type, so its architecture is unknown; \
                     {SUPPORTED} (add \"model_type\": \"bert\" if this is a BERT model)"
                ),
            ))
        }
    }
    if let Some(kind) = config.get("position_embedding_type") {
        if kind.as_str() != Some("absolute") {
            return Err(Error::unsupported(
                path,
                format!("position_embedding_type {kind} is not supported; {SUPPORTED}"),
            ));
        }
    }
    if let Some(act) = config.get("hidden_act") {
        if !matches!(act.as_str(), Some("gelu" | "relu")) {
            return Err(Error::unsupported(
                path,
                format!("hidden_act {act} is not supported; {SUPPORTED}"),
            ));
        }
    }
    // A decoder-configured BERT masks attention causally, which the encoder never does.
    if config.get("is_decoder").and_then(Value::as_bool) == Some(true) {
        return Err(Error::unsupported(
            path,
            format!("is_decoder true (causal attention) is not supported; {SUPPORTED}"),
        ));
    }
    Ok(())
}

/// Refuses a sentence-transformers folder whose pipeline is not BERT, mean pooling
/// and (optionally) normalisation, or whose pooling does not match `hidden_size`.
///
/// The pooling config is looked for where `modules.json` says, else in
/// `1_Pooling/config.json`, else in `pooling_config.json` (where bftembed's model cache
/// keeps it). A folder with none of these is a plain transformer checkpoint, which
/// sentence-transformers itself pools by the mean: that is accepted.
pub fn check_pooling(folder: &Path, hidden_size: usize) -> Result<()> {
    let modules = folder.join("modules.json");
    let pooling = if modules.is_file() {
        let dir = pooling_dir_from_modules(&modules)?;
        let config = folder.join(dir).join("config.json");
        if !config.is_file() {
            return Err(Error::ModelCorrupt {
                path: modules,
                message: format!(
                    "its Pooling module's config {} is missing",
                    config.display()
                ),
            });
        }
        Some(config)
    } else {
        ["1_Pooling/config.json", "pooling_config.json"]
            .iter()
            .map(|name| folder.join(name))
            .find(|p| p.is_file())
    };
    match pooling {
        Some(path) => check_pooling_config(&path, &crate::fsutil::read_json(&path)?, hidden_size),
        None => Ok(()),
    }
}

/// The folder of the Pooling module named in `modules.json`, after refusing any module
/// whose computation bftembed does not perform (Dense, LayerNorm, ...).
fn pooling_dir_from_modules(path: &Path) -> Result<String> {
    let modules = crate::fsutil::read_json(path)?;
    let list = modules
        .as_array()
        .ok_or_else(|| Error::bad_file(path, "modules.json is not a list of modules"))?;
    let mut pooling = None;
    for module in list {
        let kind = module.get("type").and_then(Value::as_str).unwrap_or("");
        let dir = module.get("path").and_then(Value::as_str).unwrap_or("");
        if !SUPPORTED_MODULES.contains(&kind) {
            return Err(Error::unsupported(
                path,
                format!(
                    "module \"{kind}\" (path \"{dir}\") is not supported; only Transformer, \
                     Pooling (mean) and Normalize modules are applied; {SUPPORTED}"
                ),
            ));
        }
        if kind.ends_with(".Pooling") {
            pooling = Some(dir.to_string());
        }
    }
    pooling.ok_or_else(|| {
        Error::unsupported(
            path,
            format!("modules.json lists no Pooling module; {SUPPORTED}"),
        )
    })
}

/// Refuses every pooling mode other than the mean of the token vectors.
fn check_pooling_config(path: &Path, config: &Value, hidden_size: usize) -> Result<()> {
    let fields = config
        .as_object()
        .ok_or_else(|| Error::bad_file(path, "a pooling config must be a JSON object"))?;
    // Newer sentence-transformers may also write the mode as one string.
    if let Some(mode) = fields.get("pooling_mode").and_then(Value::as_str) {
        if mode != "mean" {
            return Err(refused_mode(path, &format!("pooling_mode \"{mode}\"")));
        }
    }
    let mut mean = fields.get("pooling_mode").and_then(Value::as_str) == Some("mean");
    for (key, value) in fields
        .iter()
        .filter(|(k, _)| k.starts_with("pooling_mode_"))
    {
        let on = value.as_bool().ok_or_else(|| {
            Error::bad_file(path, format!("{key} must be true or false, not {value}"))
        })?;
        match (key.as_str(), on) {
            ("pooling_mode_mean_tokens", on) => mean |= on,
            (_, false) => {}
            (other, true) => return Err(refused_mode(path, other)),
        }
    }
    if !mean {
        return Err(refused_mode(
            path,
            "no mode (pooling_mode_mean_tokens is not true)",
        ));
    }
    match fields
        .get("word_embedding_dimension")
        .and_then(Value::as_u64)
    {
        Some(dim) if dim as usize != hidden_size => Err(Error::ModelCorrupt {
            path: path.to_path_buf(),
            message: format!(
                "word_embedding_dimension is {dim} but config.json's hidden_size is {hidden_size}"
            ),
        }),
        _ => Ok(()),
    }
}

fn refused_mode(path: &Path, mode: &str) -> Error {
    Error::unsupported(
        path,
        format!(
            "pooling by {mode} is not supported; bftembed pools by the mean of the token \
             vectors only (pooling_mode_mean_tokens true, every other mode false)"
        ),
    )
}

/// Refuses a `sentence_bert_config.json` that asks for lower-casing: sentence-transformers
/// lower-cases the text itself then, and bftembed's tokenisation would differ.
pub fn check_sentence_bert_config(path: &Path) -> Result<()> {
    if !path.is_file() {
        return Ok(());
    }
    if crate::fsutil::read_json(path)?
        .get("do_lower_case")
        .and_then(Value::as_bool)
        == Some(true)
    {
        return Err(Error::unsupported(
            path,
            "do_lower_case true is not supported: bftembed passes text to tokenizer.json \
             as it is (do_lower_case false, the tokenizer's own normalisation only)",
        ));
    }
    Ok(())
}
