//! An encoder's `config.json`, read for the families whose forward pass bftembed
//! reproduces exactly. Everything else is refused here, before any weight is read.

use crate::error::{Error, Result};
use serde_json::Value;
use std::path::Path;

/// The transformer encoder families bftembed runs, chosen by `model_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncoderFamily {
    /// BERT (and MiniLM, which is BERT): absolute positions from 0, token types.
    Bert,
    /// RoBERTa: BERT's blocks, positions counted from `pad_token_id + 1`.
    Roberta,
    /// XLM-RoBERTa: RoBERTa's computation with a multilingual vocabulary.
    XlmRoberta,
    /// MPNet: positions as RoBERTa, no token types, a relative position bias shared by
    /// every layer's attention.
    Mpnet,
}

/// The `model_type` values bftembed runs.
pub const SUPPORTED_ENCODER_TYPES: &[&str] = &["bert", "roberta", "xlm-roberta", "mpnet"];

/// Said after every refusal, so the user knows what would load.
pub(super) const SUPPORTED: &str = "bftembed's encoder runs BERT, RoBERTa, XLM-RoBERTa and MPNet \
     models (model_type \"bert\", \"roberta\", \"xlm-roberta\" or \"mpnet\"; absolute positions; \
     hidden_act \"gelu\" or \"relu\") pooled by mean, CLS, max or last token";

impl EncoderFamily {
    /// The family of a `model_type`.
    pub fn from_model_type(model_type: &str) -> Option<Self> {
        match model_type {
            "bert" => Some(EncoderFamily::Bert),
            "roberta" => Some(EncoderFamily::Roberta),
            "xlm-roberta" => Some(EncoderFamily::XlmRoberta),
            "mpnet" => Some(EncoderFamily::Mpnet),
            _ => None,
        }
    }

    /// The `model_type` it is read from.
    pub fn model_type(self) -> &'static str {
        match self {
            EncoderFamily::Bert => "bert",
            EncoderFamily::Roberta => "roberta",
            EncoderFamily::XlmRoberta => "xlm-roberta",
            EncoderFamily::Mpnet => "mpnet",
        }
    }

    /// Where the first real token's position lies: 0 for BERT; `pad_token_id + 1` for
    /// the RoBERTa family and MPNet, whose position ids skip the padding index.
    /// MPNet's modelling code fixes its padding index at 1, whatever the config says.
    pub(super) fn first_position(self, pad_token_id: usize) -> usize {
        match self {
            EncoderFamily::Bert => 0,
            EncoderFamily::Mpnet => 2,
            EncoderFamily::Roberta | EncoderFamily::XlmRoberta => pad_token_id + 1,
        }
    }

    /// The prefix of the weight names when the checkpoint has its head's name on them.
    pub(super) fn weight_prefix(self) -> &'static str {
        match self {
            EncoderFamily::Bert => "bert",
            EncoderFamily::Roberta | EncoderFamily::XlmRoberta => "roberta",
            EncoderFamily::Mpnet => "mpnet",
        }
    }
}

/// The activation in the feed-forward block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// GELU with the exact erf, as torch's `gelu`.
    Gelu,
    /// ReLU.
    Relu,
}

/// What the forward pass needs from `config.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct EncoderConfig {
    /// The family, from `model_type`.
    pub family: EncoderFamily,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Hidden size (the embedding dimension).
    pub hidden_size: usize,
    /// Blocks.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Feed-forward width.
    pub intermediate_size: usize,
    /// Feed-forward activation.
    pub activation: Activation,
    /// Rows of the position table.
    pub max_position_embeddings: usize,
    /// Token types (0 for MPNet, which has none).
    pub type_vocab_size: usize,
    /// Layer-norm epsilon.
    pub layer_norm_eps: f64,
    /// The padding token id (RoBERTa and MPNet count positions from it).
    pub pad_token_id: usize,
    /// Buckets of MPNet's relative position bias.
    pub relative_attention_num_buckets: usize,
}

impl EncoderConfig {
    /// The longest input the position table allows, special tokens included.
    pub fn max_input_tokens(&self) -> usize {
        self.max_position_embeddings
            .saturating_sub(self.family.first_position(self.pad_token_id))
    }

    /// Reads a `config.json` (at `path`, parsed as `config`), refusing what the
    /// forward pass would not reproduce.
    pub fn from_json(path: &Path, config: &Value) -> Result<Self> {
        let family = family_of(path, config)?;
        refuse_unsupported_settings(path, config)?;
        let field = |key: &str| -> Result<usize> {
            config
                .get(key)
                .and_then(Value::as_u64)
                .map(|v| v as usize)
                .ok_or_else(|| Error::ModelCorrupt {
                    path: path.to_path_buf(),
                    message: format!("config.json has no whole number {key}"),
                })
        };
        let optional = |key: &str, default: usize| match config.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(_) => field(key),
        };
        let activation = match config.get("hidden_act").and_then(Value::as_str) {
            None | Some("gelu") => Activation::Gelu,
            Some(_) => Activation::Relu,
        };
        let default_pad = if family == EncoderFamily::Bert { 0 } else { 1 };
        let default_types = if family == EncoderFamily::Mpnet { 0 } else { 2 };
        let eps_default = if family == EncoderFamily::Bert {
            1e-12
        } else {
            1e-5
        };
        let parsed = EncoderConfig {
            family,
            vocab_size: field("vocab_size")?,
            hidden_size: field("hidden_size")?,
            num_hidden_layers: field("num_hidden_layers")?,
            num_attention_heads: field("num_attention_heads")?,
            intermediate_size: field("intermediate_size")?,
            activation,
            max_position_embeddings: field("max_position_embeddings")?,
            type_vocab_size: optional("type_vocab_size", default_types)?,
            layer_norm_eps: config
                .get("layer_norm_eps")
                .and_then(Value::as_f64)
                .unwrap_or(eps_default),
            pad_token_id: optional("pad_token_id", default_pad)?,
            relative_attention_num_buckets: optional("relative_attention_num_buckets", 32)?,
        };
        parsed.check_shapes(path)?;
        Ok(parsed)
    }

    fn check_shapes(&self, path: &Path) -> Result<()> {
        let heads = self.num_attention_heads;
        if heads == 0 || !self.hidden_size.is_multiple_of(heads) {
            return Err(Error::ModelCorrupt {
                path: path.to_path_buf(),
                message: format!(
                    "hidden_size {} is not a multiple of num_attention_heads {heads}",
                    self.hidden_size
                ),
            });
        }
        // MPNet's buckets are split by direction, then into exact and logarithmic
        // halves: fewer than 4 leaves a half with no bucket.
        if self.family == EncoderFamily::Mpnet && self.relative_attention_num_buckets < 4 {
            return Err(Error::ModelCorrupt {
                path: path.to_path_buf(),
                message: format!(
                    "relative_attention_num_buckets {} is too few (at least 4)",
                    self.relative_attention_num_buckets
                ),
            });
        }
        if self.max_input_tokens() < 2 {
            return Err(Error::ModelCorrupt {
                path: path.to_path_buf(),
                message: format!(
                    "max_position_embeddings {} leaves no room for a text",
                    self.max_position_embeddings
                ),
            });
        }
        Ok(())
    }
}

fn family_of(path: &Path, config: &Value) -> Result<EncoderFamily> {
    match config.get("model_type").and_then(Value::as_str) {
        Some(t) => EncoderFamily::from_model_type(t).ok_or_else(|| {
            Error::unsupported(
                path,
                format!("model_type \"{t}\" is not supported; {SUPPORTED}"),
            )
        }),
        None => Err(Error::unsupported(
            path,
            format!(
                "config.json has no model_type, so its architecture is unknown; {SUPPORTED} \
                 (add \"model_type\": \"bert\" if this is a BERT model)"
            ),
        )),
    }
}

/// Settings that would load and give wrong vectors: relative position embeddings
/// of the BERT kind, other activations, causal (decoder) attention.
fn refuse_unsupported_settings(path: &Path, config: &Value) -> Result<()> {
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
    if config.get("is_decoder").and_then(Value::as_bool) == Some(true) {
        return Err(Error::unsupported(
            path,
            format!("is_decoder true (causal attention) is not supported; {SUPPORTED}"),
        ));
    }
    Ok(())
}
