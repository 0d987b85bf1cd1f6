//! A client for OpenAI-compatible chat-completions servers (vLLM, llama.cpp's server,
//! LLaMA-Factory's API, `bftembed serve`): bounded concurrency, timeouts, and retries
//! with exponential backoff on 429, 5xx and connection failures.

use super::backend::{AnswerBackend, Question};
use super::generator::GenerationSettings;
use crate::error::Result;
use crate::openai::{excerpt, run_bounded, JsonClient, OpenAiSettings};

/// Answers questions through an OpenAI-compatible server.
pub struct OpenAiBackend {
    settings: OpenAiSettings,
    client: JsonClient,
}

impl OpenAiBackend {
    /// A client; nothing is sent until the first question.
    pub fn new(settings: OpenAiSettings) -> Result<Self> {
        let client = JsonClient::new(&settings, "/chat/completions")?;
        Ok(OpenAiBackend { settings, client })
    }

    /// Asks one question, retrying what may succeed on a second try.
    pub fn ask(&self, question: &Question, settings: &GenerationSettings) -> Result<String> {
        let mut messages = Vec::new();
        if !question.system.trim().is_empty() {
            messages.push(serde_json::json!({"role": "system", "content": question.system}));
        }
        messages.push(serde_json::json!({"role": "user", "content": question.user}));
        let mut body = serde_json::json!({
            "model": self.settings.model,
            "messages": messages,
            "max_tokens": settings.max_new_tokens,
            "temperature": settings.temperature,
            "seed": settings.seed,
        });
        if let Some(p) = settings.top_p {
            body["top_p"] = serde_json::json!(p);
        }
        let json = self.client.post(&body)?;
        json.pointer("/choices/0/message/content")
            .and_then(|c| c.as_str())
            .map(|c| c.trim().to_string())
            .ok_or_else(|| {
                self.client.error(format!(
                    "the answer has no choices[0].message.content: {}",
                    excerpt(&json.to_string())
                ))
            })
    }
}

impl AnswerBackend for OpenAiBackend {
    fn model_id(&self) -> String {
        self.settings.model.clone()
    }

    fn model_fingerprint(&self) -> String {
        format!("openai:{}", self.client.url())
    }

    fn kernel(&self) -> String {
        // The server's kernel is not known here; its answers are keyed by its address.
        "remote".to_string()
    }

    fn backend_name(&self) -> &'static str {
        "openai"
    }

    fn batch_size(&self) -> usize {
        self.settings.concurrency.max(1)
    }

    fn answer_batch(
        &self,
        questions: &[Question],
        settings: &GenerationSettings,
    ) -> Result<Vec<String>> {
        run_bounded(questions.len(), self.settings.concurrency, |i| {
            self.ask(&questions[i], settings)
        })
    }
}
