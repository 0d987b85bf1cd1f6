//! Embeddings from an OpenAI-compatible server (`POST {endpoint}/embeddings`):
//! OpenAI's text-embedding-3 models, or TEI, vLLM, Infinity or `bftembed serve`
//! serving any encoder. Texts go in batches, a bounded number of requests at once,
//! with the shared client's timeouts and retries.
//!
//! A server's weights are not seen here, so the store records a probe: the vector the
//! server gave for a fixed text when the store was built. A later query is embedded
//! only after the server gives the same probe vector again; a server that now answers
//! with another model under the same name is refused rather than searched.

use super::matrix::Embeddings;
use super::text_encoder::TextEncoder;
use crate::error::{Error, Result};
use crate::openai::{excerpt, run_bounded, JsonClient, OpenAiSettings};
use indicatif::ProgressBar;
use serde_json::Value;

/// The text whose vector identifies the server's model in a store manifest.
pub const PROBE_TEXT: &str =
    "TP53 (tumor protein p53) is a tumor suppressor gene that regulates the cell cycle.";

/// The least cosine between the probe vector recorded at build time and the one the
/// server gives now. Servers on GPUs are not bit-reproducible (about 1e-6 apart);
/// another model is far below this.
pub const MIN_PROBE_COSINE: f32 = 0.999;

/// The most inputs OpenAI accepts in one embeddings request.
pub const MAX_BATCH_INPUTS: usize = 2048;

/// How to reach the server and how to split the work.
#[derive(Debug, Clone)]
pub struct RemoteSettings {
    /// Endpoint, model, key, concurrency, retries and timeout.
    pub http: OpenAiSettings,
    /// Asked output dimension (`dimensions`, for models that can shorten their
    /// vectors); `None` leaves it to the model.
    pub dimensions: Option<usize>,
    /// Texts per request.
    pub batch_size: usize,
}

impl RemoteSettings {
    /// Defaults (32 texts per request, 4 requests at once) for an endpoint and model.
    pub fn new(endpoint: &str, model: &str) -> Self {
        let mut http = OpenAiSettings::new(endpoint, model);
        http.concurrency = 4;
        http.request_timeout = std::time::Duration::from_secs(120);
        RemoteSettings {
            http,
            dimensions: None,
            batch_size: 32,
        }
    }

    fn check(&self) -> Result<()> {
        if self.batch_size == 0 || self.batch_size > MAX_BATCH_INPUTS {
            return Err(Error::InvalidArgument(format!(
                "texts per embeddings request must be between 1 and {MAX_BATCH_INPUTS}, not {}",
                self.batch_size
            )));
        }
        if self.dimensions == Some(0) {
            return Err(Error::InvalidArgument(
                "--dimensions must be at least 1".into(),
            ));
        }
        if self.http.model.trim().is_empty() {
            return Err(Error::InvalidArgument(
                "an embeddings server needs a model name (--model)".into(),
            ));
        }
        Ok(())
    }
}

/// What a store built through a server records about it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RemoteRecord {
    /// The API the server speaks (`openai`).
    pub api: String,
    /// The endpoint given when the store was built.
    pub endpoint: String,
    /// The model name the server knows.
    pub model: String,
    /// The asked output dimension, if one was asked.
    pub dimensions: Option<usize>,
    /// [`PROBE_TEXT`] at build time.
    pub probe_text: String,
    /// The server's unit vector for `probe_text` at build time.
    pub probe_vector: Vec<f32>,
}

/// An OpenAI-compatible embeddings server used as a text encoder.
pub struct RemoteEncoder {
    settings: RemoteSettings,
    client: JsonClient,
    dim: usize,
    probe: Vec<f32>,
}

impl RemoteEncoder {
    /// Connects: embeds [`PROBE_TEXT`] once, which tells the vector dimension and
    /// fails early on a wrong endpoint, model or key.
    pub fn connect(settings: RemoteSettings) -> Result<Self> {
        settings.check()?;
        let client = JsonClient::new(&settings.http, "/embeddings")?;
        let mut encoder = RemoteEncoder {
            settings,
            client,
            dim: 0,
            probe: Vec::new(),
        };
        let probe = encoder.request(&[PROBE_TEXT])?.remove(0);
        if let Some(asked) = encoder.settings.dimensions {
            if probe.len() != asked {
                return Err(encoder.client.error(format!(
                    "asked for {asked} dimensions but model '{}' answered with {}; \
                     the server does not shorten vectors",
                    encoder.settings.http.model,
                    probe.len()
                )));
            }
        }
        encoder.dim = probe.len();
        encoder.probe = probe;
        Ok(encoder)
    }

    /// Connects to the server a store was built through, refusing a server whose
    /// model now answers the probe differently. `settings` supplies the key,
    /// concurrency and retries; endpoint, model and dimensions come from `record`.
    pub fn reconnect(record: &RemoteRecord, mut settings: RemoteSettings) -> Result<Self> {
        settings.http.endpoint = record.endpoint.clone();
        settings.http.model = record.model.clone();
        settings.dimensions = record.dimensions;
        let encoder = RemoteEncoder::connect(settings)?;
        let cosine = if encoder.probe.len() == record.probe_vector.len() {
            dot(&encoder.probe, &record.probe_vector)
        } else {
            f32::NAN
        };
        if cosine.is_nan() || cosine < MIN_PROBE_COSINE {
            return Err(encoder.client.error(format!(
                "model '{}' now embeds the probe text differently than when the store was \
                 built ({} dimensions now, {} then, cosine {cosine:.4}); its vectors would not \
                 be comparable with the store's",
                record.model,
                encoder.probe.len(),
                record.probe_vector.len()
            )));
        }
        Ok(encoder)
    }

    /// One request: unit vectors for `texts`, in order, after checking that the server
    /// sent one finite, non-zero vector of the same length per text.
    fn request(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let mut body = serde_json::json!({
            "model": self.settings.http.model,
            "input": texts,
            "encoding_format": "float",
        });
        if let Some(d) = self.settings.dimensions {
            body["dimensions"] = serde_json::json!(d);
        }
        let answer = self.client.post(&body)?;
        let data = answer
            .get("data")
            .and_then(Value::as_array)
            .ok_or_else(|| self.malformed("has no data list", &answer))?;
        if data.len() != texts.len() {
            return Err(self.client.error(format!(
                "sent {} texts but the answer holds {} vectors",
                texts.len(),
                data.len()
            )));
        }
        let mut out: Vec<Option<Vec<f32>>> = vec![None; texts.len()];
        for (position, item) in data.iter().enumerate() {
            let index = match item.get("index") {
                None => position,
                Some(v) => v
                    .as_u64()
                    .map(|i| i as usize)
                    .filter(|&i| i < texts.len())
                    .ok_or_else(|| self.malformed("has an index out of range", item))?,
            };
            if out[index].is_some() {
                return Err(self.malformed("repeats an index", item));
            }
            out[index] = Some(self.unit_vector(item, texts[index])?);
        }
        Ok(out.into_iter().flatten().collect())
    }

    fn unit_vector(&self, item: &Value, text: &str) -> Result<Vec<f32>> {
        let values = item
            .get("embedding")
            .and_then(Value::as_array)
            .ok_or_else(|| self.malformed("has an item without a float embedding list", item))?;
        let mut v = Vec::with_capacity(values.len());
        for x in values {
            let x = x.as_f64().map(|x| x as f32).filter(|x| x.is_finite());
            v.push(
                x.ok_or_else(|| self.malformed("has a value that is not a finite number", item))?,
            );
        }
        let subject: String = text.chars().take(60).collect();
        if self.dim != 0 && v.len() != self.dim {
            return Err(self.client.error(format!(
                "the vector for \"{subject}\" has {} values, the others {}",
                v.len(),
                self.dim
            )));
        }
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if v.is_empty() || norm == 0.0 {
            return Err(self.client.error(format!(
                "the vector for \"{subject}\" is empty or all zeros"
            )));
        }
        // Stores compare by cosine; OpenAI's vectors are unit length, TEI's need not be.
        v.iter_mut().for_each(|x| *x /= norm);
        Ok(v)
    }

    fn malformed(&self, what: &str, json: &Value) -> Error {
        self.client.error(format!(
            "the embeddings answer {what}: {}",
            excerpt(&json.to_string())
        ))
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

impl TextEncoder for RemoteEncoder {
    fn model_id(&self) -> &str {
        &self.settings.http.model
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn weights_sha256(&self) -> &str {
        ""
    }

    fn record(&self) -> Option<super::encoder::EncoderRecord> {
        None
    }

    fn remote(&self) -> Option<RemoteRecord> {
        Some(RemoteRecord {
            api: "openai".into(),
            endpoint: self.settings.http.endpoint.clone(),
            model: self.settings.http.model.clone(),
            dimensions: self.settings.dimensions,
            probe_text: PROBE_TEXT.into(),
            probe_vector: self.probe.clone(),
        })
    }

    fn fingerprint_parts(&self) -> Vec<String> {
        vec![
            "openai".into(),
            self.client.url().into(),
            self.settings.http.model.clone(),
            format!("{:?}", self.settings.dimensions),
        ]
    }

    fn embed_documents(&self, texts: &[&str], bar: Option<&ProgressBar>) -> Result<Embeddings> {
        let batches: Vec<&[&str]> = texts.chunks(self.settings.batch_size).collect();
        let vectors = run_bounded(batches.len(), self.settings.http.concurrency, |b| {
            let v = self.request(batches[b])?;
            if let Some(bar) = bar {
                bar.inc(batches[b].len() as u64);
            }
            Ok(v)
        })?;
        let data: Vec<f32> = vectors.into_iter().flatten().flatten().collect();
        Ok(Embeddings::new(self.dim, data))
    }

    fn embed_queries(&self, texts: &[&str]) -> Result<Embeddings> {
        self.embed_documents(texts, None)
    }
}
