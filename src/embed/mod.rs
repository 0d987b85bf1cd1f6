//! The embedding stage: a sentence-embedding model turns texts into unit vectors.
//!
//! One encoder type ([`SentenceEmbedder`]) runs BERT, RoBERTa, XLM-RoBERTa and MPNet
//! checkpoints ([`EncoderFamily`], chosen by `model_type`) with the pooling, prompts and
//! truncation their sentence-transformers folder asks for ([`SentenceSetup`]), and
//! gives the vectors sentence-transformers gives. The default model is
//! all-MiniLM-L6-v2. Other model types, pooling modes and modules are refused.
//! An OpenAI-compatible embeddings server ([`RemoteEncoder`]) stands in for the local
//! encoder behind the same [`TextEncoder`] interface.

mod config;
mod encoder;
mod gelu;
mod matrix;
mod packed;
mod pooling;
mod precision;
mod remote;
mod resume;
mod support;
mod text_encoder;
mod texts_table;
mod transformer;

pub use config::{Activation, EncoderConfig, EncoderFamily, SUPPORTED_ENCODER_TYPES};
pub use encoder::{EncoderRecord, EncoderSettings, SentenceEmbedder};
pub use gelu::{erf_f32, gelu_erf};
pub use matrix::Embeddings;
pub use pooling::{l2_normalize_rows, masked_mean_pool, Pooling};
pub use precision::EncoderPrecision;
pub use remote::{
    RemoteEncoder, RemoteRecord, RemoteSettings, MAX_BATCH_INPUTS, MIN_PROBE_COSINE, PROBE_TEXT,
};
pub use resume::{cache_dir_for, embed_resumable, work_dir_for, CHUNK_TEXTS};
pub use support::SentenceSetup;
pub use text_encoder::TextEncoder;
pub use texts_table::write_text_vectors;
pub use transformer::TransformerEncoder;
