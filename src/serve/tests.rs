//! The server's failure paths, with a scripted engine in place of a model: a batch that
//! fails inside the generator, a prompt that fails alone with a server fault, and a
//! generation thread that panics.

use super::batcher::{answer, Engine, Job};
use super::{handlers, start_with, GenerationQueue};
use crate::error::{Error, Result};
use crate::llm::ChatMessage;
use crate::profile::{Completion, FinishReason, GenerationSettings};
use serde_json::{json, Value};
use std::sync::atomic::AtomicU64;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// Echoes each prompt in capitals, with faults on cue: POISON fails any batch it is in
/// (as a prompt the checks missed would), CRASH fails alone with a server fault, PANIC
/// panics.
#[derive(Default)]
struct Scripted {
    batches: Mutex<Vec<Vec<String>>>,
}

impl Engine for Scripted {
    fn render(&self, messages: &[ChatMessage]) -> Result<String> {
        Ok(messages
            .iter()
            .map(|m| m.content.as_str())
            .collect::<Vec<_>>()
            .join("\n"))
    }

    fn count_tokens(&self, prompt: &str) -> Result<usize> {
        Ok(prompt.split_whitespace().count())
    }

    fn context(&self) -> usize {
        64
    }

    fn complete_batch(
        &self,
        prompts: &[String],
        _settings: GenerationSettings,
    ) -> Result<Vec<Completion>> {
        self.batches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(prompts.to_vec());
        let has = |cue: &str| prompts.iter().any(|p| p.contains(cue));
        if has("PANIC") {
            panic!("scripted panic");
        }
        if has("POISON") {
            return Err(Error::InvalidArgument(format!(
                "{} is poisoned",
                prompts
                    .iter()
                    .find(|p| p.contains("POISON"))
                    .unwrap_or(&prompts[0])
            )));
        }
        if has("CRASH") {
            return Err(Error::Candle(candle_core::Error::Msg(
                "scripted kernel fault".into(),
            )));
        }
        Ok(prompts
            .iter()
            .map(|p| Completion {
                text: p.to_uppercase(),
                prompt_tokens: p.split_whitespace().count(),
                new_tokens: 1,
                finish: FinishReason::Stop,
            })
            .collect())
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

fn chat(agent: &ureq::Agent, base: &str, text: &str) -> (u16, Value) {
    let body = json!({"messages": [{"role": "user", "content": text}], "max_tokens": 4});
    let mut response = agent
        .post(&format!("{base}/chat/completions"))
        .send_json(&body)
        .expect("an HTTP answer");
    let status = response.status().as_u16();
    let reply = response.body_mut().read_json().expect("a JSON body");
    (status, reply)
}

const TEXTS: [&str; 5] = ["alpha", "POISON beta", "gamma", "CRASH delta", "epsilon"];

/// Checks one request's answer against what the scripted engine does with its text.
fn assert_answer(text: &str, answer: std::result::Result<String, Error>) {
    match answer {
        Ok(content) => {
            assert!(
                !text.contains("POISON") && !text.contains("CRASH"),
                "{text}"
            );
            assert_eq!(content, text.to_uppercase());
        }
        Err(Error::InvalidArgument(message)) => {
            assert!(text.contains("POISON"), "{text}: {message}");
            assert!(message.contains("POISON beta is poisoned"), "{message}");
        }
        Err(Error::Candle(fault)) => {
            assert!(text.contains("CRASH"), "{text}: {fault}");
            assert!(fault.to_string().contains("scripted kernel fault"));
        }
        Err(other) => panic!("{text}: unexpected error {other}"),
    }
}

#[test]
fn a_batch_that_fails_is_answered_prompt_by_prompt() {
    // The batch is handed to the generation step directly, so that all five prompts
    // share it whatever the machine's load (over HTTP, when requests queue is up to
    // the scheduler and tiny_http).
    let engine = Scripted::default();
    let settings = GenerationSettings {
        max_new_tokens: 4,
        ..GenerationSettings::default()
    };
    let (jobs, answers): (Vec<Job>, Vec<_>) = TEXTS
        .iter()
        .map(|text| {
            let (reply, answer) = mpsc::channel();
            let job = Job {
                prompt: text.to_string(),
                settings,
                reply,
            };
            (job, answer)
        })
        .unzip();
    answer(&engine, jobs, settings);
    for (text, answer) in TEXTS.iter().zip(answers) {
        let completion = answer.recv().expect("every job is answered");
        assert_answer(text, completion.map(|c| c.text));
    }
    let batches = engine.batches.lock().unwrap_or_else(|e| e.into_inner());
    let mut expected = vec![TEXTS.map(String::from).to_vec()];
    expected.extend(TEXTS.iter().map(|t| vec![t.to_string()]));
    assert_eq!(
        *batches, expected,
        "one failed batch, then each prompt alone"
    );
}

#[test]
fn concurrent_requests_each_get_their_own_status() {
    let engine = Arc::new(Scripted::default());
    let server = start_with(
        Some(("scripted".into(), engine.clone() as Arc<dyn Engine>)),
        None,
        8,
        "127.0.0.1:0",
        8,
    )
    .expect("start");
    let base = format!("http://{}/v1", server.addr());
    let agent = agent();
    let replies: Vec<(u16, Value)> = std::thread::scope(|s| {
        let handles: Vec<_> = TEXTS
            .iter()
            .map(|t| {
                let (agent, base) = (&agent, &base);
                s.spawn(move || chat(agent, base, t))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("client"))
            .collect()
    });
    for (text, (status, reply)) in TEXTS.iter().zip(&replies) {
        let message = reply["error"]["message"].as_str().unwrap_or_default();
        if text.contains("POISON") {
            assert_eq!(*status, 400, "{reply}");
            assert!(message.contains("POISON beta is poisoned"), "{reply}");
        } else if text.contains("CRASH") {
            assert_eq!(*status, 500, "{reply}");
            assert_eq!(reply["error"]["type"], "server_error");
            assert!(message.contains("scripted kernel fault"), "{reply}");
        } else {
            assert_eq!(*status, 200, "{text}: {reply}");
            assert_eq!(
                reply["choices"][0]["message"]["content"],
                text.to_uppercase()
            );
        }
    }
    server.stop();
}

#[test]
fn a_dead_generation_thread_stops_the_server_with_its_reason() {
    let server = start_with(
        Some((
            "scripted".into(),
            Arc::new(Scripted::default()) as Arc<dyn Engine>,
        )),
        None,
        8,
        "127.0.0.1:0",
        4,
    )
    .expect("start");
    let base = format!("http://{}/v1", server.addr());
    let (status, reply) = chat(&agent(), &base, "PANIC now");
    assert_eq!(status, 503, "{reply}");
    assert_eq!(reply["error"]["type"], "server_error");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(server.wait());
    });
    let outcome = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the server stops by itself once its generation thread is dead");
    let message = outcome.expect_err("wait() reports the death").to_string();
    assert!(
        message.contains("panicked") && message.contains("scripted panic"),
        "{message}"
    );
}

#[test]
fn a_dead_model_is_no_longer_listed_nor_queued_for() {
    let (tx, rx) = mpsc::channel();
    let queue = GenerationQueue::start_engine(Arc::new(Scripted::default()), 8, move |why| {
        let _ = tx.send(why.to_string());
    })
    .expect("start");
    let state = handlers::State {
        generator_id: Some("scripted".into()),
        queue: Some(queue.clone()),
        embedder: None,
        completions: AtomicU64::new(0),
    };
    assert_eq!(
        handlers::models(&state)["data"].as_array().map(Vec::len),
        Some(1)
    );
    let settings = GenerationSettings {
        max_new_tokens: 4,
        ..GenerationSettings::default()
    };
    let panics = queue
        .check(&[ChatMessage::new("user", "PANIC")], settings)
        .expect("fits");
    assert!(matches!(queue.complete(panics), Err(Error::Unavailable(_))));
    let why = rx.recv_timeout(Duration::from_secs(20)).expect("on_death");
    assert!(why.contains("scripted panic"), "{why}");
    assert_eq!(queue.failure(), Some(why.as_str()));
    assert_eq!(
        handlers::models(&state)["data"].as_array().map(Vec::len),
        Some(0)
    );
    let later = queue
        .check(&[ChatMessage::new("user", "hello")], settings)
        .expect("fits");
    match queue.complete(later) {
        Err(Error::Unavailable(message)) => assert!(message.contains("scripted panic")),
        other => panic!("expected Unavailable, got {:?}", other.map(|c| c.text)),
    }
}

#[test]
fn a_prompt_too_long_for_the_context_is_refused_before_it_queues() {
    let engine = Arc::new(Scripted::default());
    let queue = GenerationQueue::start_engine(engine.clone(), 8, |_| {}).expect("start the queue");
    let settings = GenerationSettings {
        max_new_tokens: 8,
        ..GenerationSettings::default()
    };
    let long = "word ".repeat(60);
    let err = match queue.check(&[ChatMessage::new("user", &long)], settings) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("60 + 8 tokens do not fit a context of 64"),
    };
    assert!(
        err.contains("the prompt has 60 tokens and max_tokens is 8"),
        "{err}"
    );
    assert!(engine
        .batches
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .is_empty());
}
