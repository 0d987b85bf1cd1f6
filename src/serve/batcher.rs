//! One thread owns generation; requests queue for it, and whatever has queued while
//! a batch ran is generated together as the next batch (requests with different
//! settings go in separate batches).
//!
//! A prompt is checked against the model's limits before it may queue
//! ([`GenerationQueue::check`]), so a prompt that cannot be generated never joins a
//! batch. Should a batch fail all the same, each of its prompts is generated alone, so
//! that every request gets its own answer or its own error, never another's.

use crate::error::{Error, Result};
use crate::llm::ChatMessage;
use crate::profile::{Completion, GenerationSettings, Generator};
use std::sync::{mpsc, Arc, OnceLock};

/// What the generation thread and the request checks need from a model: [`Generator`]
/// in the server, a scripted stand-in in the unit tests.
pub(crate) trait Engine: Send + Sync + 'static {
    /// The chat-formatted prompt for a conversation.
    fn render(&self, messages: &[ChatMessage]) -> Result<String>;
    /// Tokens in a rendered prompt.
    fn count_tokens(&self, prompt: &str) -> Result<usize>;
    /// Positions the model attends over: prompt and new tokens together.
    fn context(&self) -> usize;
    /// Continues each prompt, one completion per prompt, in order.
    fn complete_batch(
        &self,
        prompts: &[String],
        settings: GenerationSettings,
    ) -> Result<Vec<Completion>>;
}

impl Engine for Generator {
    fn render(&self, messages: &[ChatMessage]) -> Result<String> {
        self.chat_prompt(messages)
    }

    fn count_tokens(&self, prompt: &str) -> Result<usize> {
        Ok(self.lm().encode(prompt)?.len())
    }

    fn context(&self) -> usize {
        self.lm().model.config().max_positions
    }

    fn complete_batch(
        &self,
        prompts: &[String],
        settings: GenerationSettings,
    ) -> Result<Vec<Completion>> {
        Generator::complete_batch(self, prompts, settings)
    }
}

/// A rendered prompt that fits the model with its settings; only such prompts queue.
pub struct CheckedPrompt {
    text: String,
    settings: GenerationSettings,
}

pub(super) struct Job {
    pub(super) prompt: String,
    pub(super) settings: GenerationSettings,
    pub(super) reply: mpsc::Sender<Result<Completion>>,
}

/// A handle that submits prompts to the generation thread.
#[derive(Clone)]
pub struct GenerationQueue {
    jobs: mpsc::Sender<Job>,
    engine: Arc<dyn Engine>,
    /// Why the generation thread died, once it has.
    died: Arc<OnceLock<String>>,
}

impl GenerationQueue {
    /// Starts the generation thread for `generator`; batches hold at most `max_batch`
    /// prompts. Should the thread die (panic), `on_death` is called once with the
    /// reason, after [`GenerationQueue::failure`] has started to return it.
    pub fn start(
        generator: Generator,
        max_batch: usize,
        on_death: impl FnOnce(&str) + Send + 'static,
    ) -> Result<Self> {
        Self::start_engine(Arc::new(generator), max_batch, on_death)
    }

    /// [`GenerationQueue::start`] for any engine (the unit tests use a scripted one).
    pub(crate) fn start_engine(
        engine: Arc<dyn Engine>,
        max_batch: usize,
        on_death: impl FnOnce(&str) + Send + 'static,
    ) -> Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let died = Arc::new(OnceLock::new());
        let worker = engine.clone();
        let generation = std::thread::Builder::new()
            .name("bftembed-generator".into())
            .spawn(move || run(worker.as_ref(), &queue, max_batch.max(1)))
            .map_err(|e| Error::Unavailable(format!("cannot start the generation thread: {e}")))?;
        let record = died.clone();
        std::thread::Builder::new()
            .name("bftembed-generator-watch".into())
            .spawn(move || {
                // join() is Ok when the thread returned, which it does only once every
                // queue handle is gone, that is when the server shuts down; Err is a panic.
                if let Err(panic) = generation.join() {
                    let why = record.get_or_init(|| {
                        format!("the generation thread panicked: {}", panic_text(&*panic))
                    });
                    on_death(why);
                }
            })
            .map_err(|e| Error::Unavailable(format!("cannot watch the generation thread: {e}")))?;
        Ok(GenerationQueue { jobs, engine, died })
    }

    /// Why the generation thread died, if it has.
    pub fn failure(&self) -> Option<&str> {
        self.died.get().map(String::as_str)
    }

    /// Renders a conversation and checks that it fits the model's context with
    /// `settings`; the error, if any, is about this request alone.
    pub fn check(
        &self,
        messages: &[ChatMessage],
        settings: GenerationSettings,
    ) -> Result<CheckedPrompt> {
        let text = self.engine.render(messages)?;
        let tokens = self.engine.count_tokens(&text)?;
        let context = self.engine.context();
        if tokens == 0 {
            return Err(Error::InvalidArgument(
                "the rendered prompt has no tokens".into(),
            ));
        }
        // The same rule as Generator::complete_batch, applied before the prompt can
        // share a batch whose other prompts it would fail.
        if tokens + settings.max_new_tokens > context {
            return Err(Error::InvalidArgument(format!(
                "the prompt has {tokens} tokens and max_tokens is {}: together they exceed \
                 the model's context of {context} tokens; shorten the messages or lower max_tokens",
                settings.max_new_tokens
            )));
        }
        Ok(CheckedPrompt { text, settings })
    }

    /// The model's context, in tokens (prompt and answer together).
    pub fn context(&self) -> usize {
        self.engine.context()
    }

    /// Generates one completion, waiting for its batch.
    pub fn complete(&self, prompt: CheckedPrompt) -> Result<Completion> {
        let (reply, answer) = mpsc::channel();
        let job = Job {
            prompt: prompt.text,
            settings: prompt.settings,
            reply,
        };
        self.jobs.send(job).map_err(|_| self.stopped())?;
        answer.recv().map_err(|_| self.stopped())?
    }

    fn stopped(&self) -> Error {
        Error::Unavailable(
            self.failure()
                .unwrap_or("the generation thread has stopped")
                .to_string(),
        )
    }
}

/// The generation thread: gathers what has queued into batches until every queue
/// handle is dropped.
fn run(engine: &dyn Engine, queue: &mpsc::Receiver<Job>, max_batch: usize) {
    while let Ok(first) = queue.recv() {
        let mut pending = vec![first];
        pending.extend(queue.try_iter().take(max_batch - 1));
        while !pending.is_empty() {
            let settings = pending[0].settings;
            let (batch, rest): (Vec<Job>, Vec<Job>) =
                pending.into_iter().partition(|j| j.settings == settings);
            pending = rest;
            answer(engine, batch, settings);
        }
    }
}

/// Generates a batch and sends each job its completion.
pub(super) fn answer(engine: &dyn Engine, batch: Vec<Job>, settings: GenerationSettings) {
    let (prompts, replies): (Vec<String>, Vec<_>) =
        batch.into_iter().map(|j| (j.prompt, j.reply)).unzip();
    if prompts.len() > 1 {
        match engine.complete_batch(&prompts, settings) {
            Ok(completions) if completions.len() == prompts.len() => {
                for (reply, completion) in replies.into_iter().zip(completions) {
                    let _ = reply.send(Ok(completion));
                }
                return;
            }
            // One prompt's fault fails the whole batch: generated alone below, the
            // innocent prompts get their answers and the culprit its own error.
            _ => {}
        }
    }
    for (prompt, reply) in prompts.chunks(1).zip(replies) {
        let _ = reply.send(engine.complete_batch(prompt, settings).and_then(only_one));
    }
}

fn only_one(completions: Vec<Completion>) -> Result<Completion> {
    let count = completions.len();
    let mut completions = completions.into_iter();
    match (completions.next(), completions.next()) {
        (Some(completion), None) => Ok(completion),
        _ => Err(Error::Unavailable(format!(
            "the generator gave {count} completions for one prompt"
        ))),
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}
