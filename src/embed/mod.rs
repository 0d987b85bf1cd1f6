//! The embedding stage: a sentence-embedding model turns texts into unit vectors.
//!
//! The default model is all-MiniLM-L6-v2, run through candle-transformers' BERT with
//! the same tokenisation, mean pooling and L2 normalisation as sentence-transformers.
//! Only BERT with mean pooling is run; other encoders are refused (see [`check_pooling`]
//! and [`check_encoder_config`]).

mod bert;
mod encoder;
mod gelu;
mod matrix;
mod pooling;
mod resume;
mod support;
mod texts_table;

pub use bert::BertEncoder;
pub use encoder::{EncoderSettings, SentenceEmbedder};
pub use gelu::{erf_f32, gelu_erf};
pub use matrix::Embeddings;
pub use pooling::{l2_normalize_rows, masked_mean_pool};
pub use resume::{embed_resumable, work_dir_for, CHUNK_TEXTS};
pub use support::{
    check_encoder_config, check_pooling, check_sentence_bert_config, SUPPORTED_ENCODER_TYPES,
};
pub use texts_table::write_text_vectors;
