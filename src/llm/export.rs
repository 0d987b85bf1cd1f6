//! Writing a model as a Hugging Face folder (config.json, tokenizer.json,
//! tokenizer_config.json with the chat template, model.safetensors in f32): the layout
//! the trainer's checkpoints use, and one that `transformers` and vLLM read.

use super::chat::ChatTemplate;
use super::config::{DecoderConfig, RopeLayout};
use super::gguf_tokenizer::tokenizer_from_gguf;
use super::weights::WeightRole;
use crate::error::{Error, Result};
use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::path::Path;
use tokenizers::Tokenizer;

/// Everything a Hugging Face llama folder holds.
pub struct HfModelParts<'a> {
    /// Dimensions; written with Hugging Face's RoPE layout.
    pub config: &'a DecoderConfig,
    /// Weights by Hugging Face name, in Hugging Face's RoPE layout.
    pub tensors: HashMap<String, Tensor>,
    /// The tokenizer.
    pub tokenizer: &'a Tokenizer,
    /// The chat template.
    pub chat: &'a ChatTemplate,
    /// End-of-sequence token text, if any.
    pub eos_token: Option<String>,
    /// Beginning-of-sequence token text, if any.
    pub bos_token: Option<String>,
}

/// Writes a Hugging Face folder at `out` through a staging folder and a rename, so a
/// reader never sees half a model. An existing folder at `out` is replaced.
pub fn write_hf_folder(parts: &HfModelParts, out: &Path) -> Result<()> {
    write_hf_folder_with(parts, out, |_| Ok(()))
}

/// Like [`write_hf_folder`], with `extra` adding files to the staging folder before it
/// is renamed into place (a trainer's optimizer state, say). An existing folder is moved
/// aside first and removed last, so at every moment one complete folder exists:
/// `out`, or its sibling named by [`previous_folder`].
pub fn write_hf_folder_with(
    parts: &HfModelParts,
    out: &Path,
    extra: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    let parent = crate::fsutil::parent_dir(out);
    std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
    let staging = tempfile::Builder::new()
        .prefix(".export-")
        .tempdir_in(&parent)
        .map_err(|e| Error::io(&parent, e))?;
    let dir = staging.path();
    let id_of = |t: &Option<String>| t.as_ref().and_then(|t| parts.tokenizer.token_to_id(t));
    if parts.config.rope_layout != RopeLayout::Halves {
        return Err(Error::InvalidArgument(
            "Hugging Face weights must be in the halves RoPE layout".into(),
        ));
    }
    let config_json = parts
        .config
        .to_hf_json(id_of(&parts.bos_token), id_of(&parts.eos_token))?;
    write_file(&dir.join("config.json"), config_json.as_bytes())?;
    let tokenizer_settings = serde_json::json!({
        "chat_template": parts.chat.source(),
        "eos_token": parts.eos_token,
        "bos_token": parts.bos_token,
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": parts.config.max_positions,
    });
    write_file(
        &dir.join("tokenizer_config.json"),
        serde_json::to_string_pretty(&tokenizer_settings)
            .unwrap_or_default()
            .as_bytes(),
    )?;
    let tokenizer_path = dir.join("tokenizer.json");
    parts
        .tokenizer
        .save(&tokenizer_path, false)
        .map_err(|e| Error::Tokenizer(format!("{}: {e}", tokenizer_path.display())))?;
    let weights_path = dir.join("model.safetensors");
    candle_core::safetensors::save(&parts.tensors, &weights_path)?;
    extra(dir)?;
    make_readable(dir)?;
    let previous = previous_folder(out);
    if previous.exists() {
        std::fs::remove_dir_all(&previous).map_err(|e| Error::io(&previous, e))?;
    }
    if out.exists() {
        std::fs::rename(out, &previous).map_err(|e| Error::io(out, e))?;
    }
    let kept = staging.keep();
    std::fs::rename(&kept, out).map_err(|e| Error::io(out, e))?;
    if previous.exists() {
        std::fs::remove_dir_all(&previous).map_err(|e| Error::io(&previous, e))?;
    }
    Ok(())
}

/// Where [`write_hf_folder_with`] keeps the replaced folder until the new one is in
/// place: a reader that finds no `out` (a crash between the two renames) finds it here.
pub fn previous_folder(out: &Path) -> std::path::PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    crate::fsutil::parent_dir(out).join(format!(".{name}.previous"))
}

/// Converts a GGUF file of a supported family into a Hugging Face folder with f32
/// weights: the starting point for fine-tuning, and a check that both loaders agree.
pub fn gguf_to_hf_folder(gguf: &Path, out: &Path) -> Result<()> {
    let corrupt = |message: String| Error::ModelCorrupt {
        path: gguf.to_path_buf(),
        message,
    };
    let mut file = std::fs::File::open(gguf).map_err(|e| Error::io(gguf, e))?;
    let content = gguf_file::Content::read(&mut file)
        .map_err(|e| corrupt(format!("not a readable GGUF file: {e}")))?;
    let mut config = DecoderConfig::from_gguf(&content, gguf)?;
    let tokenizer = tokenizer_from_gguf(&content, gguf)?;
    let chat = ChatTemplate::from_gguf(&content, gguf)?;
    let token_text = |key: &str| {
        content
            .metadata
            .get(key)
            .and_then(|v| v.to_u32().ok())
            .and_then(|id| tokenizer.id_to_token(id))
    };
    let eos_token = token_text("tokenizer.ggml.eos_token_id");
    let bos_token = token_text("tokenizer.ggml.bos_token_id");
    let mut tensors = HashMap::new();
    let device = Device::Cpu;
    for role in WeightRole::all(&config) {
        let name = role.gguf_name();
        let q = content
            .tensor(&mut file, &name, &device)
            .map_err(|e| corrupt(format!("tensor {name}: {e}")))?;
        let t = q.dequantize(&device)?;
        let t = match (config.rope_layout, role.rope_heads(&config)) {
            (RopeLayout::Interleaved, Some(heads)) => interleaved_to_halves(&t, heads)?,
            _ => t,
        };
        tensors.insert(role.hf_name(), t);
    }
    config.rope_layout = RopeLayout::Halves;
    write_hf_folder(
        &HfModelParts {
            config: &config,
            tensors,
            tokenizer: &tokenizer,
            chat: &chat,
            eos_token,
            bos_token,
        },
        out,
    )
}

/// Undoes llama.cpp's query/key row permutation: within each head, rows ordered
/// (pair, 2) become (2, pair), so RoPE over halves gives what interleaved RoPE gave.
/// `w` is a matrix (rows, cols) or a bias (rows).
pub fn interleaved_to_halves(w: &Tensor, heads: usize) -> Result<Tensor> {
    permute_rows(w, heads, true)
}

/// The inverse of [`interleaved_to_halves`]: Hugging Face rows (2, pair) per head back
/// to llama.cpp's (pair, 2).
pub fn halves_to_interleaved(w: &Tensor, heads: usize) -> Result<Tensor> {
    permute_rows(w, heads, false)
}

fn permute_rows(w: &Tensor, heads: usize, to_halves: bool) -> Result<Tensor> {
    let dims = w.dims().to_vec();
    let rows = dims.first().copied().unwrap_or(0);
    let cols: usize = dims.iter().skip(1).product();
    let pairs = rows / heads.max(1) / 2;
    // Rows are (head, pair, 2) in llama.cpp's order and (head, 2, pair) in Hugging
    // Face's; swapping the middle axes goes either way.
    let from = match to_halves {
        true => (heads, pairs, 2, cols),
        false => (heads, 2, pairs, cols),
    };
    Ok(w.reshape(from)?
        .transpose(1, 2)?
        .contiguous()?
        .reshape(dims)?)
}

/// Staged files can be created private (tempdir 0700, some writers 0600); a model
/// folder is an ordinary output, readable like any other.
fn make_readable(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = if path.is_dir() {
            for entry in std::fs::read_dir(path).map_err(|e| Error::io(path, e))? {
                make_readable(&entry.map_err(|e| Error::io(path, e))?.path())?;
            }
            0o755
        } else {
            0o644
        };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io(path, e))?;
    }
    Ok(())
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| Error::io(path, e))
}
