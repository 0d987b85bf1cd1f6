//! Writing text with a causal LM: several prompts at once, greedily or by sampling.
//!
//! Each prompt fills its own KV cache, then all unfinished sequences advance one token
//! per step together, so the weight matrices are read once per step for the whole
//! batch. A sequence stops at an end-of-turn token or after `max_new_tokens`.

use crate::error::{Error, Result};
use crate::llm::{CausalLm, ChatMessage, GgufPrecision};
use crate::models::ModelDir;
use candle_core::{Device, IndexOp};
use candle_transformers::generation::{LogitsProcessor, Sampling};

/// How text is generated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GenerationSettings {
    /// Most tokens written per answer.
    pub max_new_tokens: usize,
    /// 0 for greedy decoding (deterministic); otherwise the sampling temperature.
    pub temperature: f64,
    /// Nucleus sampling threshold, used when `temperature > 0`.
    pub top_p: Option<f64>,
    /// Sampling seed; every prompt samples from its own generator seeded with it, so a
    /// prompt's answer does not depend on which prompts share its batch.
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

impl GenerationSettings {
    fn sampling(&self) -> Sampling {
        if self.temperature <= 0.0 {
            Sampling::ArgMax
        } else {
            match self.top_p {
                Some(p) => Sampling::TopP {
                    p,
                    temperature: self.temperature,
                },
                None => Sampling::All {
                    temperature: self.temperature,
                },
            }
        }
    }
}

/// Why a sequence ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// The model ended its turn.
    Stop,
    /// `max_new_tokens` was reached.
    Length,
}

/// One generated answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The text, trimmed.
    pub text: String,
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Tokens generated (the end-of-turn token not counted).
    pub new_tokens: usize,
    /// Why it ended.
    pub finish: FinishReason,
}

/// A causal LM that answers prompts.
pub struct Generator {
    lm: CausalLm,
}

impl Generator {
    /// Loads a model folder (GGUF matrices requantised to Q8_0, see [`GgufPrecision`]).
    pub fn load(model: &ModelDir, device: &Device) -> Result<Self> {
        Self::load_with(model, device, GgufPrecision::default())
    }

    /// Loads a model folder holding GGUF matrices at the given precision.
    pub fn load_with(model: &ModelDir, device: &Device, precision: GgufPrecision) -> Result<Self> {
        Ok(Generator {
            lm: CausalLm::load(model, device, precision)?,
        })
    }

    /// Wraps a loaded model.
    pub fn from_lm(lm: CausalLm) -> Self {
        Generator { lm }
    }

    /// The model.
    pub fn lm(&self) -> &CausalLm {
        &self.lm
    }

    /// The model's identifier.
    pub fn model_id(&self) -> &str {
        &self.lm.id
    }

    /// The chat-formatted prompt for a system line (skipped when empty) and a user message.
    pub fn prompt(&self, system: &str, user: &str) -> Result<String> {
        self.lm.chat.render(system, user)
    }

    /// The chat-formatted prompt for a conversation.
    pub fn chat_prompt(&self, messages: &[ChatMessage]) -> Result<String> {
        self.lm.chat.render_messages(messages)
    }

    /// Answers one user message (after an optional system line).
    pub fn answer(&self, system: &str, user: &str, settings: GenerationSettings) -> Result<String> {
        let prompt = self.prompt(system, user)?;
        let mut out = self.complete_batch(&[prompt], settings)?;
        Ok(out.remove(0).text)
    }

    /// Continues each raw prompt until end-of-turn or `max_new_tokens`.
    pub fn complete_batch(
        &self,
        prompts: &[String],
        settings: GenerationSettings,
    ) -> Result<Vec<Completion>> {
        let model = &self.lm.model;
        let context = model.config().max_positions;
        let mut rows = Vec::with_capacity(prompts.len());
        for (i, prompt) in prompts.iter().enumerate() {
            let ids = self.lm.encode(prompt)?;
            if ids.is_empty() {
                return Err(Error::InvalidArgument(format!("prompt {} is empty", i + 1)));
            }
            if ids.len() + settings.max_new_tokens > context {
                return Err(Error::InvalidArgument(format!(
                    "prompt {} has {} tokens; with {} new tokens it exceeds the model's context of {context}",
                    i + 1,
                    ids.len(),
                    settings.max_new_tokens
                )));
            }
            let mut cache = model.new_cache();
            let logits = model.prefill(&ids, &mut cache)?;
            let mut sampler = LogitsProcessor::from_sampling(settings.seed, settings.sampling());
            let first = sampler.sample(&logits)?;
            rows.push(Row {
                prompt_tokens: ids.len(),
                cache,
                sampler,
                out: Vec::new(),
                next: first,
                finish: None,
            });
        }
        for row in rows.iter_mut() {
            row.accept(&self.lm.stop_ids, settings.max_new_tokens);
        }
        loop {
            let mut active: Vec<&mut Row> =
                rows.iter_mut().filter(|r| r.finish.is_none()).collect();
            if active.is_empty() {
                break;
            }
            let tokens: Vec<u32> = active.iter().map(|r| r.next).collect();
            let logits = {
                let mut caches: Vec<&mut crate::llm::SequenceCache> =
                    active.iter_mut().map(|r| &mut r.cache).collect();
                model.step(&tokens, &mut caches)?
            };
            for (i, row) in active.iter_mut().enumerate() {
                row.next = row.sampler.sample(&logits.i(i)?)?;
                row.accept(&self.lm.stop_ids, settings.max_new_tokens);
            }
        }
        rows.into_iter()
            .map(|r| {
                Ok(Completion {
                    text: self.lm.decode(&r.out)?.trim().to_string(),
                    prompt_tokens: r.prompt_tokens,
                    new_tokens: r.out.len(),
                    finish: r.finish.unwrap_or(FinishReason::Length),
                })
            })
            .collect()
    }
}

struct Row {
    prompt_tokens: usize,
    cache: crate::llm::SequenceCache,
    sampler: LogitsProcessor,
    out: Vec<u32>,
    /// The token just sampled, not yet fed to the model.
    next: u32,
    finish: Option<FinishReason>,
}

impl Row {
    /// Takes the sampled token into the answer, or ends the sequence.
    fn accept(&mut self, stop_ids: &[u32], max_new_tokens: usize) {
        if stop_ids.contains(&self.next) {
            self.finish = Some(FinishReason::Stop);
        } else if self.out.len() >= max_new_tokens {
            self.finish = Some(FinishReason::Length);
        } else {
            self.out.push(self.next);
            if self.out.len() >= max_new_tokens {
                self.finish = Some(FinishReason::Length);
            }
        }
    }
}
