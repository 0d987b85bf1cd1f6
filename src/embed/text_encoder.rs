//! One interface for every way texts become vectors: a local sentence encoder or an
//! OpenAI-compatible embeddings server. The stages that embed (stores, GenePT-s cell
//! sentences, search) take a `&dyn TextEncoder` and never ask which one it is.

use super::encoder::{EncoderRecord, SentenceEmbedder};
use super::matrix::Embeddings;
use super::remote::RemoteRecord;
use crate::error::Result;
use indicatif::ProgressBar;

/// Turns texts into unit vectors.
pub trait TextEncoder: Send + Sync {
    /// The model's identifier (registry name, folder path, or the server's model name).
    fn model_id(&self) -> &str;

    /// Vector dimension.
    fn dim(&self) -> usize;

    /// sha256 of the weights file; empty for a server's model, whose weights are not
    /// seen here.
    fn weights_sha256(&self) -> &str;

    /// How a local encoder pools and prompts; `None` for a server.
    fn record(&self) -> Option<EncoderRecord>;

    /// Where a server's vectors come from; `None` for a local encoder.
    fn remote(&self) -> Option<RemoteRecord>;

    /// Everything that decides the vectors besides the texts, hashed into the names of
    /// resume folders so that another model or setting never reuses stale vectors.
    fn fingerprint_parts(&self) -> Vec<String>;

    /// Embeds documents (profiles, cell sentences) in input order, advancing `bar` by
    /// one per text.
    fn embed_documents(&self, texts: &[&str], bar: Option<&ProgressBar>) -> Result<Embeddings>;

    /// Embeds search queries the way the store's documents were embedded.
    fn embed_queries(&self, texts: &[&str]) -> Result<Embeddings>;
}

impl TextEncoder for SentenceEmbedder {
    fn model_id(&self) -> &str {
        SentenceEmbedder::model_id(self)
    }

    fn dim(&self) -> usize {
        SentenceEmbedder::dim(self)
    }

    fn weights_sha256(&self) -> &str {
        SentenceEmbedder::weights_sha256(self)
    }

    fn record(&self) -> Option<EncoderRecord> {
        Some(SentenceEmbedder::record(self))
    }

    fn remote(&self) -> Option<RemoteRecord> {
        None
    }

    fn fingerprint_parts(&self) -> Vec<String> {
        let record = SentenceEmbedder::record(self);
        let mut parts = vec![
            "local".into(),
            self.weights_sha256().into(),
            record.max_tokens.to_string(),
            record.model_type,
            record.pooling,
            record.document_prefix,
        ];
        // Only a reduced precision adds a part, so f32 caches keep their names.
        if record.precision != super::EncoderPrecision::F32 {
            parts.push(format!("precision {}", record.precision));
        }
        parts
    }

    fn embed_documents(&self, texts: &[&str], bar: Option<&ProgressBar>) -> Result<Embeddings> {
        self.embed_with_progress(texts, bar)
    }

    fn embed_queries(&self, texts: &[&str]) -> Result<Embeddings> {
        SentenceEmbedder::embed_queries(self, texts)
    }
}
