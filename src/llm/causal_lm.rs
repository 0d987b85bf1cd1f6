//! A causal language model ready to use: decoder weights, tokenizer, chat template and
//! end-of-turn tokens, loaded from a GGUF file or a Hugging Face folder.

use super::chat::ChatTemplate;
use super::config::DecoderConfig;
use super::decoder::Decoder;
use super::gguf_tokenizer::tokenizer_from_gguf;
use super::weights::{DecoderWeights, GgufPrecision, WeightSource};
use crate::error::{Error, Result};
use crate::models::ModelDir;
use candle_core::quantized::gguf_file;
use candle_core::Device;
use std::path::{Path, PathBuf};
use tokenizers::Tokenizer;

/// Tokens that end an assistant turn in common chat formats.
const END_OF_TURN_MARKERS: &[&str] = &["<|im_end|>", "<|eot_id|>", "<|end|>", "</s>"];

/// A loaded causal LM.
pub struct CausalLm {
    /// The decoder.
    pub model: Decoder,
    /// Its tokenizer.
    pub tokenizer: Tokenizer,
    /// Its chat template.
    pub chat: ChatTemplate,
    /// Token ids that end generation.
    pub stop_ids: Vec<u32>,
    /// The model's identifier (registry name or folder).
    pub id: String,
    /// sha256 of its weights file.
    pub weights_sha256: String,
    /// The matrix-product path it generates with (see [`super::generation_kernel`]).
    pub kernel: &'static str,
}

impl CausalLm {
    /// Loads a model folder: a `.gguf` file, or config.json + tokenizer.json +
    /// `*.safetensors` (+ tokenizer_config.json for the chat template).
    pub fn load(dir: &ModelDir, device: &Device, precision: GgufPrecision) -> Result<Self> {
        let is_gguf = dir.weights.extension().and_then(|e| e.to_str()) == Some("gguf");
        let (config, tokenizer, chat, mut stop_ids, source) = if is_gguf {
            load_gguf_parts(&dir.weights, precision)?
        } else {
            load_hf_parts(dir, precision)?
        };
        for marker in END_OF_TURN_MARKERS {
            if let Some(id) = tokenizer.token_to_id(marker) {
                stop_ids.push(id);
            }
        }
        stop_ids.sort_unstable();
        stop_ids.dedup();
        let weights = DecoderWeights::load(&source, &config, device)?;
        Ok(CausalLm {
            model: Decoder::new(config, weights, device)?,
            tokenizer,
            chat,
            stop_ids,
            id: dir.id.clone(),
            weights_sha256: dir.weights_sha256.clone(),
            kernel: super::q8_kernel::generation_kernel(device, precision),
        })
    }

    /// The token that closes an assistant turn: the chat format's end-of-turn marker
    /// when the vocabulary has one, else the first stop token.
    pub fn end_of_turn(&self) -> Option<u32> {
        END_OF_TURN_MARKERS
            .iter()
            .find_map(|m| self.tokenizer.token_to_id(m))
            .or_else(|| self.stop_ids.first().copied())
    }

    /// Token ids of a text (special tokens in the text are recognised).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self
            .tokenizer
            .encode(text, false)
            .map_err(|e| Error::Tokenizer(e.to_string()))?
            .get_ids()
            .to_vec())
    }

    /// Text of token ids, special tokens left out.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer
            .decode(ids, true)
            .map_err(|e| Error::Tokenizer(e.to_string()))
    }
}

type Parts = (
    DecoderConfig,
    Tokenizer,
    ChatTemplate,
    Vec<u32>,
    WeightSource,
);

fn load_gguf_parts(path: &Path, precision: GgufPrecision) -> Result<Parts> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let content = gguf_file::Content::read(&mut file).map_err(|e| Error::ModelCorrupt {
        path: path.to_path_buf(),
        message: format!("not a readable GGUF file: {e}"),
    })?;
    let config = DecoderConfig::from_gguf(&content, path)?;
    let tokenizer = tokenizer_from_gguf(&content, path)?;
    let chat = ChatTemplate::from_gguf(&content, path)?;
    let stop_ids = content
        .metadata
        .get("tokenizer.ggml.eos_token_id")
        .and_then(|v| v.to_u32().ok())
        .into_iter()
        .collect();
    let source = WeightSource::Gguf {
        path: path.to_path_buf(),
        content,
        precision,
    };
    Ok((config, tokenizer, chat, stop_ids, source))
}

fn load_hf_parts(dir: &ModelDir, precision: GgufPrecision) -> Result<Parts> {
    let config = DecoderConfig::from_hf_json(&dir.file("config.json")?)?;
    let tokenizer_path = dir.file("tokenizer.json")?;
    let tokenizer = Tokenizer::from_file(&tokenizer_path).map_err(|e| Error::ModelCorrupt {
        path: tokenizer_path.clone(),
        message: format!("not a usable tokenizer.json: {e}"),
    })?;
    let settings_path = dir.file("tokenizer_config.json")?;
    let settings: serde_json::Value = crate::fsutil::read_json(&settings_path)?;
    let chat = match settings.get("chat_template").and_then(|v| v.as_str()) {
        Some(source) => ChatTemplate::new(source),
        None => {
            let jinja = dir.path.join("chat_template.jinja");
            let source = std::fs::read_to_string(&jinja).map_err(|_| Error::ModelMissing {
                name: dir.id.clone(),
                reason: format!(
                    "{} has no chat_template and there is no chat_template.jinja",
                    settings_path.display()
                ),
            })?;
            ChatTemplate::new(source)
        }
    };
    let mut stop_ids = Vec::new();
    let eos = settings.get("eos_token").and_then(|v| match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(o) => o.get("content").and_then(|c| c.as_str()).map(String::from),
        _ => None,
    });
    if let Some(id) = eos.and_then(|t| tokenizer.token_to_id(&t)) {
        stop_ids.push(id);
    }
    let generation = dir.path.join("generation_config.json");
    if generation.is_file() {
        match crate::fsutil::read_json(&generation)?.get("eos_token_id") {
            Some(serde_json::Value::Number(n)) => stop_ids.extend(n.as_u64().map(|n| n as u32)),
            Some(serde_json::Value::Array(ids)) => {
                stop_ids.extend(ids.iter().filter_map(|n| n.as_u64()).map(|n| n as u32))
            }
            _ => {}
        }
    }
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir.path)
        .map_err(|e| Error::io(&dir.path, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("safetensors"))
        .collect();
    paths.sort();
    Ok((
        config,
        tokenizer,
        chat,
        stop_ids,
        WeightSource::Safetensors { paths, precision },
    ))
}
