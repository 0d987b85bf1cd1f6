//! Where answers come from: a local model, or an OpenAI-compatible server. The
//! profile job only sees this trait, so both are journaled and resumed the same way.

use super::generator::{GenerationSettings, Generator};
use crate::error::Result;

/// One question to a chat model.
#[derive(Debug, Clone, PartialEq)]
pub struct Question {
    /// The system line (may be empty).
    pub system: String,
    /// The user message.
    pub user: String,
}

/// Something that answers questions.
pub trait AnswerBackend {
    /// The model's identifier, recorded with every profile.
    fn model_id(&self) -> String;
    /// A fingerprint of the model's weights where one is known (sha256), so a journal
    /// never mixes the answers of two different models.
    fn model_fingerprint(&self) -> String;
    /// The generation kernel that computes the answers
    /// ([`crate::llm::generation_kernel`]), or `remote` for a model served elsewhere:
    /// part of every cache key over the answers.
    fn kernel(&self) -> String;
    /// `local` or `openai`.
    fn backend_name(&self) -> &'static str;
    /// How many questions one call should carry (one journal flush per call).
    fn batch_size(&self) -> usize;
    /// Answers every question, in order.
    fn answer_batch(
        &self,
        questions: &[Question],
        settings: &GenerationSettings,
    ) -> Result<Vec<String>>;
}

/// A local model, generating `batch_size` answers at once.
pub struct LocalBackend {
    /// The model.
    pub generator: Generator,
    /// Prompts generated together.
    pub batch_size: usize,
}

impl AnswerBackend for LocalBackend {
    fn model_id(&self) -> String {
        self.generator.model_id().to_string()
    }

    fn model_fingerprint(&self) -> String {
        self.generator.lm().weights_sha256.clone()
    }

    fn kernel(&self) -> String {
        self.generator.lm().kernel.to_string()
    }

    fn backend_name(&self) -> &'static str {
        "local"
    }

    fn batch_size(&self) -> usize {
        self.batch_size.max(1)
    }

    fn answer_batch(
        &self,
        questions: &[Question],
        settings: &GenerationSettings,
    ) -> Result<Vec<String>> {
        let prompts = questions
            .iter()
            .map(|q| self.generator.prompt(&q.system, &q.user))
            .collect::<Result<Vec<_>>>()?;
        Ok(self
            .generator
            .complete_batch(&prompts, *settings)?
            .into_iter()
            .map(|c| c.text)
            .collect())
    }
}
