//! The generator's tokenizer, rebuilt from a GGUF file's metadata.
//!
//! candle's `TokenizerFromGguf` builds the byte-level BPE from `tokenizer.ggml.*`, but
//! does not know the `smollm` pre-tokenizer and falls back to GPT-2's, with a prefix
//! space: ids come out wrong and decode(encode(x)) != x. SmolLM's own tokenizer splits
//! every digit on its own and then applies byte-level splitting without a prefix space;
//! that is set here, and a test pins the ids to Hugging Face transformers' conversion of
//! the same file. Every other pre-tokenizer (Llama-3's `llama-bpe`, Qwen's, ...) is
//! refused until its splitting is reproduced and pinned the same way.

use crate::error::{Error, Result};
use candle_core::quantized::gguf_file;
use candle_core::quantized::tokenizer::TokenizerFromGguf;
use std::path::Path;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::Tokenizer;

/// The `tokenizer.ggml.pre` values whose splitting is reproduced here (SmolLM's).
pub const SUPPORTED_GGUF_PRE_TOKENIZERS: &[&str] = &["smollm"];

/// Reads a GGUF file's header and builds its tokenizer.
pub fn tokenizer_from_gguf_file(path: &Path) -> Result<Tokenizer> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let content = gguf_file::Content::read(&mut file).map_err(|e| Error::ModelCorrupt {
        path: path.to_path_buf(),
        message: format!("not a readable GGUF file: {e}"),
    })?;
    tokenizer_from_gguf(&content, path)
}

/// Builds the tokenizer a GGUF file's metadata describes; `path` labels errors.
///
/// Only byte-level BPE (`tokenizer.ggml.model` "gpt2") with a pre-tokenizer in
/// [`SUPPORTED_GGUF_PRE_TOKENIZERS`] is built: for any other `tokenizer.ggml.pre`
/// (Llama-3's `llama-bpe`, say) candle falls back to GPT-2's splitting and the ids come
/// out wrong without a word, so it is refused.
pub fn tokenizer_from_gguf(content: &gguf_file::Content, path: &Path) -> Result<Tokenizer> {
    check_tokenizer_kind(content, path)?;
    let mut tokenizer = Tokenizer::from_gguf(content).map_err(|e| Error::ModelCorrupt {
        path: path.to_path_buf(),
        message: format!("its tokenizer metadata cannot be used: {e}"),
    })?;
    let split = Sequence::new(vec![
        PreTokenizerWrapper::Digits(Digits::new(true)),
        PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, true)),
    ]);
    tokenizer.with_pre_tokenizer(Some(split));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
    Ok(tokenizer)
}

/// Refuses a tokenizer whose splitting bftembed does not reproduce.
fn check_tokenizer_kind(content: &gguf_file::Content, path: &Path) -> Result<()> {
    let text = |key: &str| {
        content
            .metadata
            .get(key)
            .and_then(|v| v.to_string().ok())
            .cloned()
    };
    let supported = format!(
        "bftembed builds byte-level BPE tokenizers (tokenizer.ggml.model \"gpt2\") with \
         the pre-tokenizer of SmolLM/SmolLM2 (tokenizer.ggml.pre {})",
        SUPPORTED_GGUF_PRE_TOKENIZERS
            .iter()
            .map(|p| format!("\"{p}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    match text("tokenizer.ggml.model") {
        Some(model) if model.eq_ignore_ascii_case("gpt2") => {}
        Some(model) => {
            return Err(Error::unsupported(
                path,
                format!("tokenizer.ggml.model \"{model}\" is not supported; {supported}"),
            ))
        }
        None => {
            return Err(Error::unsupported(
                path,
                format!("the metadata has no tokenizer.ggml.model; {supported}"),
            ))
        }
    }
    match text("tokenizer.ggml.pre") {
        Some(pre) if SUPPORTED_GGUF_PRE_TOKENIZERS.contains(&pre.to_lowercase().as_str()) => Ok(()),
        Some(pre) => Err(Error::unsupported(
            path,
            format!("tokenizer.ggml.pre \"{pre}\" is not supported; {supported}"),
        )),
        None => Err(Error::unsupported(
            path,
            format!(
                "the metadata has no tokenizer.ggml.pre, so its pre-tokenizer is unknown; \
                 {supported}"
            ),
        )),
    }
}
