//! Causal language models of the llama, qwen2 and qwen3 families, shared by the profile
//! stage (which generates with them) and the trainer (which fine-tunes them): one
//! [`Decoder`] serves both.
//!
//! Weights come from a GGUF file (quantized, as the fetched SmolLM2 is) or a Hugging
//! Face folder (config.json, tokenizer.json, safetensors), which is also what
//! [`gguf_to_hf_folder`] and the trainer write.

mod causal_attention;
mod causal_lm;
mod chat;
mod config;
mod config_gguf;
mod config_hf;
mod decoder;
mod export;
mod gguf_tokenizer;
mod grad_ops;
mod ops;
mod q8_kernel;
mod weights;

pub use causal_lm::CausalLm;
pub use chat::{ChatMessage, ChatTemplate};
pub use config::{DecoderConfig, DecoderFamily, RopeLayout, RopeScaling};
pub use decoder::{Decoder, SequenceCache};
pub use export::{
    gguf_to_hf_folder, halves_to_interleaved, interleaved_to_halves, previous_folder,
    write_hf_folder, write_hf_folder_with, HfModelParts,
};
pub use gguf_tokenizer::{
    tokenizer_from_gguf, tokenizer_from_gguf_file, SUPPORTED_GGUF_PRE_TOKENIZERS,
};
pub use q8_kernel::{generation_kernel, Q8Matrix};
pub use weights::{
    BlockWeights, DecoderWeights, GgufPrecision, Linear, Projection, WeightRole, WeightSource,
};
