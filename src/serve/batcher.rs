//! One thread owns the generator; requests queue for it, and whatever has queued while
//! a batch ran is generated together as the next batch (requests with different
//! settings go in separate batches).

use crate::error::{Error, Result};
use crate::llm::ChatTemplate;
use crate::profile::{Completion, GenerationSettings, Generator};
use std::sync::mpsc;

struct Job {
    prompt: String,
    settings: GenerationSettings,
    reply: mpsc::Sender<Result<Completion>>,
}

/// A handle that submits prompts to the generator thread.
#[derive(Clone)]
pub struct GenerationQueue {
    jobs: mpsc::Sender<Job>,
    chat: ChatTemplate,
}

impl GenerationQueue {
    /// Starts the generator thread; batches hold at most `max_batch` prompts.
    pub fn start(generator: Generator, max_batch: usize) -> Self {
        let chat = generator.lm().chat.clone();
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::spawn(move || {
            while let Ok(first) = queue.recv() {
                let mut pending = vec![first];
                while pending.len() < max_batch.max(1) {
                    match queue.try_recv() {
                        Ok(job) => pending.push(job),
                        Err(_) => break,
                    }
                }
                while !pending.is_empty() {
                    let settings = pending[0].settings;
                    let (batch, rest): (Vec<Job>, Vec<Job>) =
                        pending.into_iter().partition(|j| j.settings == settings);
                    pending = rest;
                    let prompts: Vec<String> = batch.iter().map(|j| j.prompt.clone()).collect();
                    match generator.complete_batch(&prompts, settings) {
                        Ok(completions) => {
                            for (job, c) in batch.into_iter().zip(completions) {
                                let _ = job.reply.send(Ok(c));
                            }
                        }
                        Err(e) => {
                            let message = e.to_string();
                            for job in batch {
                                let _ =
                                    job.reply.send(Err(Error::InvalidArgument(message.clone())));
                            }
                        }
                    }
                }
            }
        });
        GenerationQueue { jobs, chat }
    }

    /// The generator's chat template, for rendering requests before they queue.
    pub fn chat_template(&self) -> &ChatTemplate {
        &self.chat
    }

    /// Generates one completion, waiting for its batch.
    pub fn complete(&self, prompt: String, settings: GenerationSettings) -> Result<Completion> {
        let (reply, answer) = mpsc::channel();
        self.jobs
            .send(Job {
                prompt,
                settings,
                reply,
            })
            .map_err(|_| Error::InvalidArgument("the generator thread has stopped".into()))?;
        answer
            .recv()
            .map_err(|_| Error::InvalidArgument("the generator thread has stopped".into()))?
    }
}
