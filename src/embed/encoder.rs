//! Loading a sentence encoder (BERT, RoBERTa, XLM-RoBERTa or MPNet with its
//! sentence-transformers pooling and prompts) and embedding batches of texts with it.

use super::config::{EncoderConfig, EncoderFamily};
use super::matrix::Embeddings;
use super::packed::PackedEncoder;
use super::pooling::{l2_normalize_rows, Pooling};
use super::precision::EncoderPrecision;
use super::support::SentenceSetup;
use super::transformer::TransformerEncoder;
use crate::error::{Error, Result};
use crate::models::ModelDir;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
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

/// How an encoder turns a text into a vector, beyond its weights: recorded in store
/// manifests so that a query is embedded the way the store's texts were.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EncoderRecord {
    /// `model_type` of the encoder (`bert`, `mpnet`, ...).
    pub model_type: String,
    /// Pooling mode (`mean`, `cls`, `max`, `lasttoken`).
    pub pooling: String,
    /// Put before every document text.
    pub document_prefix: String,
    /// Put before every search query.
    pub query_prefix: String,
    /// Truncation length in tokens, special tokens included.
    pub max_tokens: usize,
    /// The dense layers' arithmetic (f32 for manifests written before it was recorded).
    #[serde(default)]
    pub precision: EncoderPrecision,
}

/// The forward pass an embedder runs.
enum ForwardPass {
    /// candle ops over a padded batch: any device.
    Candle(TransformerEncoder),
    /// Plain buffers over packed texts: the CPU (see `packed.rs`).
    Packed(PackedEncoder),
}

/// A loaded sentence encoder.
pub struct SentenceEmbedder {
    model: ForwardPass,
    family: EncoderFamily,
    setup: SentenceSetup,
    tokenizer: Tokenizer,
    device: Device,
    model_id: String,
    weights_sha256: String,
    dim: usize,
    settings: EncoderSettings,
    precision: EncoderPrecision,
}

impl SentenceEmbedder {
    /// Loads an encoder from a model folder (config.json, tokenizer.json,
    /// model.safetensors, and the sentence-transformers files when there are any).
    /// `max_tokens` is the folder's `max_seq_length` (else what the position table
    /// allows), capped by the position table.
    ///
    /// What the forward pass would not reproduce (another `model_type`, an unknown
    /// pooling mode, a Dense module, ...) is refused before the weights are read.
    pub fn load(model: &ModelDir, device: &Device) -> Result<Self> {
        Self::load_with(model, device, EncoderPrecision::F32)
    }

    /// [`load`](Self::load) at the given precision (refused where this machine cannot
    /// run it).
    pub fn load_with(
        model: &ModelDir,
        device: &Device,
        precision: EncoderPrecision,
    ) -> Result<Self> {
        precision.check(device)?;
        Self::load_pass(model, device, device.is_cpu(), precision)
    }

    /// [`load`](Self::load), choosing the packed CPU pass or candle's.
    fn load_pass(
        model: &ModelDir,
        device: &Device,
        packed: bool,
        precision: EncoderPrecision,
    ) -> Result<Self> {
        let config = read_encoder_config(model)?;
        let setup = SentenceSetup::read(&model.path, config.hidden_size)?;
        let tokenizer_path = model.file("tokenizer.json")?;
        let mut tokenizer =
            Tokenizer::from_file(&tokenizer_path).map_err(|e| Error::ModelCorrupt {
                path: tokenizer_path.clone(),
                message: e.to_string(),
            })?;
        let settings = EncoderSettings {
            max_tokens: setup
                .max_seq_length
                .unwrap_or(usize::MAX)
                .min(config.max_input_tokens()),
            ..EncoderSettings::default()
        };
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
        let encoder = TransformerEncoder::load(vb, &config).map_err(|e| Error::ModelCorrupt {
            path: model.weights.clone(),
            message: format!("does not hold the weights config.json describes: {e}"),
        })?;
        let pass = if packed {
            ForwardPass::Packed(encoder.to_packed(precision)?)
        } else {
            ForwardPass::Candle(encoder)
        };
        Ok(SentenceEmbedder {
            model: pass,
            family: config.family,
            setup,
            tokenizer,
            device: device.clone(),
            model_id: model.id.clone(),
            weights_sha256: model.weights_sha256.clone(),
            dim: config.hidden_size,
            settings,
            precision,
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

    /// The encoder family (`bert`, `mpnet`, ...).
    pub fn family(&self) -> EncoderFamily {
        self.family
    }

    /// How token vectors are pooled.
    pub fn pooling(&self) -> Pooling {
        self.setup.pooling
    }

    /// What is put before every document text (the model's `document` or default prompt).
    pub fn document_prefix(&self) -> &str {
        &self.setup.document_prefix
    }

    /// What is put before every search query (the model's `query` prompt).
    pub fn query_prefix(&self) -> &str {
        &self.setup.query_prefix
    }

    /// What, besides the weights, decides the vectors.
    pub fn record(&self) -> EncoderRecord {
        EncoderRecord {
            model_type: self.family.model_type().to_string(),
            pooling: self.setup.pooling.mode().to_string(),
            document_prefix: self.setup.document_prefix.clone(),
            query_prefix: self.setup.query_prefix.clone(),
            max_tokens: self.settings.max_tokens,
            precision: self.precision,
        }
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

    /// Embeds documents (profiles, cell sentences) into unit vectors, in input order,
    /// each after the model's document prompt.
    pub fn embed(&self, texts: &[&str]) -> Result<Embeddings> {
        self.embed_with_progress(texts, None)
    }

    /// Embeds search queries, each after the model's query prompt.
    pub fn embed_queries(&self, texts: &[&str]) -> Result<Embeddings> {
        let prefixed: Vec<String> = texts
            .iter()
            .map(|t| format!("{}{t}", self.setup.query_prefix))
            .collect();
        let refs: Vec<&str> = prefixed.iter().map(String::as_str).collect();
        self.embed_encodings(self.tokenize_raw(&refs)?, None)
    }

    /// Like [`embed`](Self::embed), advancing `bar` by one per text.
    pub fn embed_with_progress(
        &self,
        texts: &[&str],
        bar: Option<&ProgressBar>,
    ) -> Result<Embeddings> {
        self.embed_encodings(self.tokenize(texts)?, bar)
    }

    fn embed_encodings(
        &self,
        encodings: Vec<Encoding>,
        bar: Option<&ProgressBar>,
    ) -> Result<Embeddings> {
        if encodings.is_empty() {
            return Ok(Embeddings::empty(self.dim));
        }
        // Sorting by length keeps padding (wasted work) small inside each batch.
        let mut order: Vec<usize> = (0..encodings.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(encodings[i].len()));
        let mut out = vec![0f32; encodings.len() * self.dim];
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

    /// Token ids for each document text (after the document prompt), truncated to
    /// `max_tokens` (special tokens included, as sentence-transformers does), without
    /// padding.
    pub fn tokenize(&self, texts: &[&str]) -> Result<Vec<Encoding>> {
        let prefix = &self.setup.document_prefix;
        if prefix.is_empty() {
            return self.tokenize_raw(texts);
        }
        let prefixed: Vec<String> = texts.iter().map(|t| format!("{prefix}{t}")).collect();
        self.tokenize_raw(&prefixed.iter().map(String::as_str).collect::<Vec<_>>())
    }

    fn tokenize_raw(&self, texts: &[&str]) -> Result<Vec<Encoding>> {
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
        let mask = Tensor::from_vec(mask, shape, &self.device)?;
        let hidden = match &self.model {
            ForwardPass::Candle(model) => {
                model.forward(&Tensor::from_vec(ids, shape, &self.device)?, &mask)?
            }
            ForwardPass::Packed(model) => {
                let texts: Vec<&[u32]> = batch.iter().map(|e| e.get_ids()).collect();
                let packed = model.forward(&texts).map_err(Error::Tokenizer)?;
                Tensor::from_vec(
                    pad_rows(&packed, &texts, width, self.dim),
                    (batch.len(), width, self.dim),
                    &self.device,
                )?
            }
        };
        // Stores compare by cosine, so vectors are unit length whether or not the
        // folder ends in a Normalize module.
        let pooled = l2_normalize_rows(&self.setup.pooling.pool(&hidden, &mask)?)?;
        Ok(pooled.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?)
    }
}

/// Packed rows (each text's tokens end to end) laid out `texts x width x dim`, with
/// zeros after each text's last token, as the padded forward pass shapes them.
fn pad_rows(packed: &[f32], texts: &[&[u32]], width: usize, dim: usize) -> Vec<f32> {
    let mut out = vec![0f32; texts.len() * width * dim];
    let mut from = 0;
    for (row, text) in texts.iter().enumerate() {
        let n = text.len() * dim;
        out[row * width * dim..row * width * dim + n].copy_from_slice(&packed[from..from + n]);
        from += n;
    }
    out
}

/// The folder's encoder config, after refusing what the encoder cannot run exactly.
fn read_encoder_config(model: &ModelDir) -> Result<EncoderConfig> {
    let path = model.file("config.json")?;
    let raw = crate::fsutil::read_json(&path)?;
    EncoderConfig::from_json(&path, &raw)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{KnownModel, ModelCache, SMALL_EMBEDDING_MODEL};

    /// The packed CPU pass and candle's padded pass (the one GPUs run) give the same
    /// vectors on real gene texts of very different lengths, in mixed batches.
    #[test]
    fn packed_pass_equals_candle_pass() {
        let cache = ModelCache::from_env().unwrap();
        let known = KnownModel::find(SMALL_EMBEDDING_MODEL).unwrap();
        let model = cache.fetch(known, false).unwrap();
        let catalog = crate::genes::GeneCatalog::embedded().unwrap();
        let records = crate::profile::RefseqSummaries::embedded()
            .unwrap()
            .all_profiles(&catalog)
            .records;
        let mut texts: Vec<&str> = records.iter().take(40).map(|r| r.text.as_str()).collect();
        texts.extend(["TP53", "", "p53 and MDM2 form a feedback loop."]);
        let settings = EncoderSettings {
            batch_size: 7,
            max_tokens: 256,
        };
        let embed = |packed: bool| {
            SentenceEmbedder::load_pass(&model, &Device::Cpu, packed, EncoderPrecision::F32)
                .unwrap()
                .with_settings(settings)
                .unwrap()
                .embed(&texts)
                .unwrap()
        };
        let (packed, candle) = (embed(true), embed(false));
        // A text with no tokens at all (a tokenizer without special tokens) has no
        // rows, wherever it sits in the batch.
        let loaded =
            SentenceEmbedder::load_pass(&model, &Device::Cpu, true, EncoderPrecision::F32).unwrap();
        let ForwardPass::Packed(pass) = &loaded.model else {
            panic!("the CPU loads the packed pass");
        };
        let rows = pass.forward(&[&[], &[101, 7179, 102], &[]]).unwrap();
        assert_eq!(rows.len(), 3 * 384);
        assert!(pass.forward(&[&[101, 999_999, 102]]).is_err());
        for i in 0..texts.len() {
            let diff = packed
                .row(i)
                .iter()
                .zip(candle.row(i))
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(diff < 1e-5, "text {i}: max |difference| {diff}");
        }
    }
}
