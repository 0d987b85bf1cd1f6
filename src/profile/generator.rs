//! A llama-architecture causal LM from a GGUF file, writing text greedily or by sampling.
//!
//! One prompt at a time with a KV cache; the prompt is the model's own chat template
//! (from the GGUF metadata) applied to a system line and a user message.

use super::chat::ChatTemplate;
use super::gguf_tokenizer::tokenizer_from_gguf;
use crate::error::{Error, Result};
use crate::models::ModelDir;
use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling};
use candle_transformers::models::quantized_llama::ModelWeights;
use tokenizers::Tokenizer;

/// How text is generated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GenerationSettings {
    /// Most tokens written per answer.
    pub max_new_tokens: usize,
    /// 0 for greedy decoding (deterministic); otherwise the sampling temperature.
    pub temperature: f64,
    /// Nucleus sampling threshold, used when `temperature > 0`.
    pub top_p: Option<f64>,
    /// Sampling seed.
    pub seed: u64,
}

impl Default for GenerationSettings {
    fn default() -> Self {
        GenerationSettings {
            max_new_tokens: 160,
            temperature: 0.0,
            top_p: None,
            seed: 299_792_458,
        }
    }
}

/// A loaded generator.
pub struct GgufGenerator {
    model: ModelWeights,
    tokenizer: Tokenizer,
    template: ChatTemplate,
    stop_ids: Vec<u32>,
    device: Device,
    model_id: String,
}

impl GgufGenerator {
    /// Loads the GGUF weights file of a model folder.
    pub fn load(model: &ModelDir, device: &Device) -> Result<Self> {
        let path = &model.weights;
        let corrupt = |message: String| Error::ModelCorrupt {
            path: path.clone(),
            message,
        };
        let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let content = gguf_file::Content::read(&mut file)
            .map_err(|e| corrupt(format!("not a readable GGUF file: {e}")))?;
        let tokenizer = tokenizer_from_gguf(&content, path)?;
        let template = ChatTemplate::from_gguf(&content, path)?;
        let mut stop_ids = Vec::new();
        if let Some(v) = content.metadata.get("tokenizer.ggml.eos_token_id") {
            if let Ok(id) = v.to_u32() {
                stop_ids.push(id);
            }
        }
        for marker in ["<|im_end|>", "<|eot_id|>", "<|end|>"] {
            if let Some(id) = tokenizer.token_to_id(marker) {
                stop_ids.push(id);
            }
        }
        let model_weights = ModelWeights::from_gguf(content, &mut file, device)
            .map_err(|e| corrupt(format!("cannot load the llama weights: {e}")))?;
        Ok(GgufGenerator {
            model: model_weights,
            tokenizer,
            template,
            stop_ids,
            device: device.clone(),
            model_id: model.id.clone(),
        })
    }

    /// The model's identifier.
    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The chat-formatted prompt for a system line and a user message.
    pub fn prompt(&self, system: &str, user: &str) -> Result<String> {
        self.template.render(system, user)
    }

    /// Answers one user message (after an optional system line).
    pub fn answer(
        &mut self,
        system: &str,
        user: &str,
        settings: GenerationSettings,
    ) -> Result<String> {
        let prompt = self.prompt(system, user)?;
        self.complete(&prompt, settings)
    }

    /// Continues a raw prompt; stops at end-of-turn or after `max_new_tokens`.
    pub fn complete(&mut self, prompt: &str, settings: GenerationSettings) -> Result<String> {
        let ids = self
            .tokenizer
            .encode(prompt, false)
            .map_err(|e| Error::Tokenizer(e.to_string()))?
            .get_ids()
            .to_vec();
        if ids.is_empty() {
            return Err(Error::InvalidArgument("the prompt is empty".into()));
        }
        let sampling = if settings.temperature <= 0.0 {
            Sampling::ArgMax
        } else {
            match settings.top_p {
                Some(p) => Sampling::TopP {
                    p,
                    temperature: settings.temperature,
                },
                None => Sampling::All {
                    temperature: settings.temperature,
                },
            }
        };
        let mut sampler = LogitsProcessor::from_sampling(settings.seed, sampling);
        self.model.clear_kv_cache();
        let input = Tensor::new(ids.as_slice(), &self.device)?.unsqueeze(0)?;
        let mut logits = self.model.forward(&input, 0)?.squeeze(0)?;
        let mut out: Vec<u32> = Vec::new();
        for pos in ids.len()..ids.len() + settings.max_new_tokens {
            let next = sampler.sample(&logits)?;
            if self.stop_ids.contains(&next) {
                break;
            }
            out.push(next);
            let input = Tensor::new(&[next], &self.device)?.unsqueeze(0)?;
            logits = self.model.forward(&input, pos)?.squeeze(0)?;
        }
        let text = self
            .tokenizer
            .decode(&out, true)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(text.trim().to_string())
    }
}
