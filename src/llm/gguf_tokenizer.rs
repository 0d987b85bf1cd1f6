//! The generator's tokenizer, rebuilt from a GGUF file's metadata.
//!
//! candle's `TokenizerFromGguf` builds the byte-level BPE from `tokenizer.ggml.*`, but
//! knows only some pre-tokenizers and falls back to GPT-2's splitting for the rest (the
//! `smollm` and Llama 3 `llama-bpe` ones among them): ids come out wrong without a word.
//! The splitting of each supported `tokenizer.ggml.pre` is therefore set here, as
//! Hugging Face transformers' GGUF conversion sets it, and tests pin the ids to that
//! conversion of real files:
//! - `smollm`: every digit alone, then byte-level splitting without a prefix space;
//! - `llama-bpe` (Llama 3) and `qwen2` (Qwen2/2.5/3): their split regexes, isolated,
//!   then byte-level bytes; no normalizer.
//!
//! Every other pre-tokenizer is refused until its splitting is reproduced and pinned.

use crate::error::{Error, Result};
use candle_core::quantized::gguf_file;
use candle_core::quantized::tokenizer::TokenizerFromGguf;
use std::path::Path;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::SplitDelimiterBehavior;
use tokenizers::Tokenizer;

/// The `tokenizer.ggml.pre` values whose splitting is reproduced here.
pub const SUPPORTED_GGUF_PRE_TOKENIZERS: &[&str] = &["smollm", "llama-bpe", "qwen2"];

/// Llama 3's split: contractions, letters with one leading non-letter, numbers of up
/// to three digits, punctuation runs, newlines, spaces.
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Qwen2's split: Llama 3's, but every digit alone.
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

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
/// candle may fall back to GPT-2's splitting and the ids come out wrong without a word,
/// so it is refused.
pub fn tokenizer_from_gguf(content: &gguf_file::Content, path: &Path) -> Result<Tokenizer> {
    let pre = check_tokenizer_kind(content, path)?;
    let mut tokenizer = Tokenizer::from_gguf(content).map_err(|e| Error::ModelCorrupt {
        path: path.to_path_buf(),
        message: format!("its tokenizer metadata cannot be used: {e}"),
    })?;
    let split = match pre.as_str() {
        "smollm" => Sequence::new(vec![
            PreTokenizerWrapper::Digits(Digits::new(true)),
            PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, true)),
        ]),
        _ => {
            let regex = if pre == "qwen2" {
                QWEN2_SPLIT
            } else {
                LLAMA3_SPLIT
            };
            let split = Split::new(
                SplitPattern::Regex(regex.into()),
                SplitDelimiterBehavior::Isolated,
                false,
            )
            .map_err(|e| Error::Tokenizer(format!("the {pre} split pattern: {e}")))?;
            Sequence::new(vec![
                PreTokenizerWrapper::Split(split),
                PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, false)),
            ])
        }
    };
    tokenizer.with_pre_tokenizer(Some(split));
    // transformers' conversion has no normalizer (candle sets NFC for qwen2).
    tokenizer
        .with_normalizer(None::<tokenizers::NormalizerWrapper>)
        .map_err(|e| Error::Tokenizer(e.to_string()))?;
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
    Ok(tokenizer)
}

/// Refuses a tokenizer whose splitting bftembed does not reproduce; gives the
/// pre-tokenizer's name (lower case).
fn check_tokenizer_kind(content: &gguf_file::Content, path: &Path) -> Result<String> {
    let text = |key: &str| {
        content
            .metadata
            .get(key)
            .and_then(|v| v.to_string().ok())
            .cloned()
    };
    let supported = format!(
        "bftembed builds byte-level BPE tokenizers (tokenizer.ggml.model \"gpt2\") with \
         the pre-tokenizers of SmolLM/SmolLM2, Llama 3 and Qwen2/Qwen3 (tokenizer.ggml.pre {})",
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
        Some(pre) if SUPPORTED_GGUF_PRE_TOKENIZERS.contains(&pre.to_lowercase().as_str()) => {
            Ok(pre.to_lowercase())
        }
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
