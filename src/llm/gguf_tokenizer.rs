//! The generator's tokenizer, rebuilt from a GGUF file's metadata.
//!
//! candle's `TokenizerFromGguf` builds the byte-level BPE from `tokenizer.ggml.*`, but
//! does not know the `smollm` pre-tokenizer and falls back to GPT-2's, with a prefix
//! space: ids come out wrong and decode(encode(x)) != x. SmolLM's own tokenizer splits
//! every digit on its own and then applies byte-level splitting without a prefix space;
//! that is set here, and a test pins the ids to Hugging Face transformers' conversion of
//! the same file.

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

/// Pre-tokenizer names (`tokenizer.ggml.pre`) that use SmolLM's splitting.
const SMOLLM_PRE: &[&str] = &["smollm"];

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
pub fn tokenizer_from_gguf(content: &gguf_file::Content, path: &Path) -> Result<Tokenizer> {
    let mut tokenizer = Tokenizer::from_gguf(content).map_err(|e| Error::ModelCorrupt {
        path: path.to_path_buf(),
        message: format!("its tokenizer metadata cannot be used: {e}"),
    })?;
    let pre = content
        .metadata
        .get("tokenizer.ggml.pre")
        .and_then(|v| v.to_string().ok())
        .map(|s| s.to_lowercase())
        .unwrap_or_default();
    if SMOLLM_PRE.contains(&pre.as_str()) {
        let split = Sequence::new(vec![
            PreTokenizerWrapper::Digits(Digits::new(true)),
            PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, true)),
        ]);
        tokenizer.with_pre_tokenizer(Some(split));
        tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
    }
    Ok(tokenizer)
}
