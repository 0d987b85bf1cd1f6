//! Loading a BERT sentence encoder and embedding batches of texts with it.

use super::bert::BertEncoder;
use super::matrix::Embeddings;
use super::pooling::{l2_normalize_rows, masked_mean_pool};
use super::support::{check_encoder_config, check_pooling, check_sentence_bert_config};
use crate::error::{Error, Result};
use crate::models::ModelDir;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::Config as BertConfig;
use indicatif::ProgressBar;
use tokenizers::{Encoding, Tokenizer, TruncationParams};

/// How texts are cut and grouped.
#[derive(Debug, Clone, Copy)]
pub struct EncoderSettings {
    /// Longest input in word pieces (special tokens included); longer texts are truncated.
    pub max_tokens: usize,
    /// Texts per forward pass.
    pub batch_size: usize,
}

impl Default for EncoderSettings {
    fn default() -> Self {
        EncoderSettings {
            max_tokens: 256,
            batch_size: 16,
        }
    }
}

/// A loaded sentence encoder.
pub struct SentenceEmbedder {
    model: BertEncoder,
    tokenizer: Tokenizer,
    device: Device,
    model_id: String,
    weights_sha256: String,
    dim: usize,
    settings: EncoderSettings,
}

impl SentenceEmbedder {
    /// Loads a BERT encoder from a model folder (config.json, tokenizer.json,
    /// model.safetensors). `max_tokens` defaults to the folder's
    /// `sentence_bert_config.json` `max_seq_length` when present.
    ///
    /// What the BERT pass would not reproduce (another `model_type`, a pooling mode
    /// other than mean, a Dense module, ...) is refused before the weights are read;
    /// see [`check_encoder_config`] and [`check_pooling`].
    pub fn load(model: &ModelDir, device: &Device) -> Result<Self> {
        let config = read_bert_config(model)?;
        let tokenizer_path = model.file("tokenizer.json")?;
        let mut tokenizer =
            Tokenizer::from_file(&tokenizer_path).map_err(|e| Error::ModelCorrupt {
                path: tokenizer_path.clone(),
                message: e.to_string(),
            })?;
        let mut settings = EncoderSettings::default();
        if let Some(n) = read_max_seq_length(&model.path.join("sentence_bert_config.json")) {
            settings.max_tokens = n;
        }
        settings.max_tokens = settings.max_tokens.min(config.max_position_embeddings);
        configure_tokenizer(&mut tokenizer, settings.max_tokens)?;
        // SAFETY: the weights file was hashed just before (cache) or is the user's own
        // folder; memory-mapping a file that changes underneath us is the only risk.
        let vb = unsafe {
            VarBuilder::from_mmaped_safetensors(
                std::slice::from_ref(&model.weights),
                DType::F32,
                device,
            )
        }
        .map_err(|e| Error::ModelCorrupt {
            path: model.weights.clone(),
            message: e.to_string(),
        })?;
        let bert = BertEncoder::load(vb, &config).map_err(|e| Error::ModelCorrupt {
            path: model.weights.clone(),
            message: format!("does not hold the weights config.json describes: {e}"),
        })?;
        Ok(SentenceEmbedder {
            model: bert,
            tokenizer,
            device: device.clone(),
            model_id: model.id.clone(),
            weights_sha256: model.weights_sha256.clone(),
            dim: config.hidden_size,
            settings,
        })
    }

    /// Changes the batch size and truncation length.
    pub fn with_settings(mut self, settings: EncoderSettings) -> Result<Self> {
        configure_tokenizer(&mut self.tokenizer, settings.max_tokens)?;
        self.settings = settings;
        Ok(self)
    }

    /// Current settings.
    pub fn settings(&self) -> EncoderSettings {
        self.settings
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The model's identifier (registry name or folder path).
    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    /// sha256 of the weights file.
    pub fn weights_sha256(&self) -> &str {
        &self.weights_sha256
    }

    /// The device the model runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Embeds texts into unit vectors, in input order.
    pub fn embed(&self, texts: &[&str]) -> Result<Embeddings> {
        self.embed_with_progress(texts, None)
    }

    /// Like [`embed`](Self::embed), advancing `bar` by one per text.
    pub fn embed_with_progress(
        &self,
        texts: &[&str],
        bar: Option<&ProgressBar>,
    ) -> Result<Embeddings> {
        if texts.is_empty() {
            return Ok(Embeddings::empty(self.dim));
        }
        let encodings = self.tokenize(texts)?;
        // Sorting by length keeps padding (wasted work) small inside each batch.
        let mut order: Vec<usize> = (0..encodings.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(encodings[i].len()));
        let mut out = vec![0f32; texts.len() * self.dim];
        for chunk in order.chunks(self.settings.batch_size.max(1)) {
            let batch: Vec<&Encoding> = chunk.iter().map(|&i| &encodings[i]).collect();
            let vectors = self.forward_batch(&batch)?;
            for (row, &i) in chunk.iter().enumerate() {
                out[i * self.dim..(i + 1) * self.dim]
                    .copy_from_slice(&vectors[row * self.dim..(row + 1) * self.dim]);
            }
            if let Some(bar) = bar {
                bar.inc(chunk.len() as u64);
            }
        }
        Ok(Embeddings::new(self.dim, out))
    }

    /// Word-piece ids for each text, truncated to `max_tokens` (special tokens
    /// included, as sentence-transformers does), without padding.
    pub fn tokenize(&self, texts: &[&str]) -> Result<Vec<Encoding>> {
        self.tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| Error::Tokenizer(e.to_string()))
    }

    fn forward_batch(&self, batch: &[&Encoding]) -> Result<Vec<f32>> {
        let width = batch.iter().map(|e| e.len()).max().unwrap_or(0).max(1);
        let mut ids = vec![0u32; batch.len() * width];
        let mut mask = vec![0u32; batch.len() * width];
        for (row, enc) in batch.iter().enumerate() {
            for (col, &id) in enc.get_ids().iter().enumerate() {
                ids[row * width + col] = id;
                mask[row * width + col] = 1;
            }
        }
        let shape = (batch.len(), width);
        let ids = Tensor::from_vec(ids, shape, &self.device)?;
        let mask = Tensor::from_vec(mask, shape, &self.device)?;
        let hidden = self.model.forward(&ids, &mask)?;
        let pooled = l2_normalize_rows(&masked_mean_pool(&hidden, &mask)?)?;
        Ok(pooled.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?)
    }
}

/// The folder's BERT config, after refusing what the encoder cannot run exactly.
fn read_bert_config(model: &ModelDir) -> Result<BertConfig> {
    let config_path = model.file("config.json")?;
    let config_text =
        std::fs::read_to_string(&config_path).map_err(|e| Error::io(&config_path, e))?;
    let corrupt = |e: serde_json::Error| Error::ModelCorrupt {
        path: config_path.clone(),
        message: format!("not a BERT config: {e}"),
    };
    let raw: serde_json::Value = serde_json::from_str(&config_text).map_err(corrupt)?;
    check_encoder_config(&config_path, &raw)?;
    let config: BertConfig = serde_json::from_value(raw).map_err(corrupt)?;
    check_pooling(&model.path, config.hidden_size)?;
    check_sentence_bert_config(&model.path.join("sentence_bert_config.json"))?;
    Ok(config)
}

/// Packaged tokenizer files often pad to a fixed length; padding is done per batch here
/// (to the longest text), so only truncation is kept.
fn configure_tokenizer(tokenizer: &mut Tokenizer, max_tokens: usize) -> Result<()> {
    tokenizer.with_padding(None);
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length: max_tokens,
            ..Default::default()
        }))
        .map_err(|e| Error::Tokenizer(e.to_string()))?;
    Ok(())
}

fn read_max_seq_length(path: &std::path::Path) -> Option<usize> {
    let text = std::fs::read_to_string(path).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json.get("max_seq_length")?.as_u64().map(|n| n as usize)
}
