//! A client for OpenAI-compatible chat-completions servers (vLLM, llama.cpp's server,
//! LLaMA-Factory's API, `bftembed serve`): bounded concurrency, timeouts, and retries
//! with exponential backoff on 429, 5xx and connection failures.

use super::backend::{AnswerBackend, Question};
use super::generator::GenerationSettings;
use crate::error::{Error, Result};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// How the client talks to the server.
#[derive(Debug, Clone)]
pub struct OpenAiSettings {
    /// Base URL, such as `http://host:8000/v1` (a URL ending in `/chat/completions` is
    /// used as it is).
    pub endpoint: String,
    /// The model name the server knows.
    pub model: String,
    /// Bearer token, if the server wants one (`OPENAI_API_KEY` by default).
    pub api_key: Option<String>,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Retries after the first attempt, for 429, 5xx and connection failures.
    pub max_retries: u32,
    /// Wait before the first retry; doubled for each further one.
    pub initial_backoff: Duration,
    /// Longest a single request may take, connection included.
    pub request_timeout: Duration,
}

impl OpenAiSettings {
    /// Settings with defaults for everything but where to go and which model to ask.
    pub fn new(endpoint: &str, model: &str) -> Self {
        OpenAiSettings {
            endpoint: endpoint.to_string(),
            model: model.to_string(),
            api_key: std::env::var("OPENAI_API_KEY")
                .ok()
                .filter(|k| !k.is_empty()),
            concurrency: 8,
            max_retries: 5,
            initial_backoff: Duration::from_millis(500),
            request_timeout: Duration::from_secs(300),
        }
    }

    fn completions_url(&self) -> String {
        let base = self.endpoint.trim_end_matches('/');
        if base.ends_with("/chat/completions") {
            base.to_string()
        } else {
            format!("{base}/chat/completions")
        }
    }
}

/// Answers questions through an OpenAI-compatible server.
pub struct OpenAiBackend {
    settings: OpenAiSettings,
    agent: ureq::Agent,
    url: String,
}

impl OpenAiBackend {
    /// A client; nothing is sent until the first question.
    pub fn new(settings: OpenAiSettings) -> Result<Self> {
        if !(settings.endpoint.starts_with("http://") || settings.endpoint.starts_with("https://"))
        {
            return Err(Error::InvalidArgument(format!(
                "endpoint '{}' is not an http:// or https:// URL",
                settings.endpoint
            )));
        }
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::PlatformVerifier)
            .build();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .timeout_global(Some(settings.request_timeout))
            .build()
            .into();
        Ok(OpenAiBackend {
            url: settings.completions_url(),
            settings,
            agent,
        })
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
        let mut backoff = self.settings.initial_backoff;
        let mut attempt = 0;
        loop {
            match self.post_once(&body) {
                Ok(text) => return Ok(text),
                Err(Failure::Retryable(message)) if attempt < self.settings.max_retries => {
                    attempt += 1;
                    eprintln!(
                        "warning: {}: {message}; retry {attempt} of {} in {:?}",
                        self.url, self.settings.max_retries, backoff
                    );
                    std::thread::sleep(backoff);
                    backoff = backoff.saturating_mul(2);
                }
                Err(Failure::Retryable(message)) => {
                    return Err(self.error(format!(
                        "{message} (gave up after {} attempts)",
                        attempt + 1
                    )))
                }
                Err(Failure::Fatal(message)) => return Err(self.error(message)),
            }
        }
    }

    fn error(&self, message: String) -> Error {
        Error::Download {
            url: self.url.clone(),
            message,
        }
    }

    fn post_once(&self, body: &serde_json::Value) -> std::result::Result<String, Failure> {
        let mut request = self.agent.post(&self.url);
        if let Some(key) = &self.settings.api_key {
            request = request.header("Authorization", &format!("Bearer {key}"));
        }
        let mut response = request
            .send_json(body)
            .map_err(|e| Failure::Retryable(format!("request failed: {e}")))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| Failure::Retryable(format!("reading the response failed: {e}")))?;
        if status == 429 || status >= 500 {
            return Err(Failure::Retryable(format!(
                "HTTP {status}: {}",
                excerpt(&text)
            )));
        }
        if status != 200 {
            return Err(Failure::Fatal(format!("HTTP {status}: {}", excerpt(&text))));
        }
        let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            Failure::Fatal(format!(
                "the server's answer is not JSON ({e}): {}",
                excerpt(&text)
            ))
        })?;
        json.pointer("/choices/0/message/content")
            .and_then(|c| c.as_str())
            .map(|c| c.trim().to_string())
            .ok_or_else(|| {
                Failure::Fatal(format!(
                    "the answer has no choices[0].message.content: {}",
                    excerpt(&text)
                ))
            })
    }
}

enum Failure {
    Retryable(String),
    Fatal(String),
}

fn excerpt(text: &str) -> String {
    let t: String = text.chars().take(300).collect();
    if t.len() < text.len() {
        format!("{t}...")
    } else {
        t
    }
}

impl AnswerBackend for OpenAiBackend {
    fn model_id(&self) -> String {
        self.settings.model.clone()
    }

    fn model_fingerprint(&self) -> String {
        format!("openai:{}", self.url)
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
        let next = AtomicUsize::new(0);
        let answers: Mutex<Vec<Option<Result<String>>>> =
            Mutex::new((0..questions.len()).map(|_| None).collect());
        let workers = self.settings.concurrency.clamp(1, questions.len().max(1));
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= questions.len() {
                        break;
                    }
                    let answer = self.ask(&questions[i], settings);
                    let failed = answer.is_err();
                    if let Ok(mut all) = answers.lock() {
                        all[i] = Some(answer);
                    }
                    if failed {
                        // Stop handing out work; questions already asked finish.
                        next.store(questions.len(), Ordering::SeqCst);
                    }
                });
            }
        });
        let answers = answers
            .into_inner()
            .map_err(|_| Error::InvalidArgument("a request thread panicked".into()))?;
        let mut out = Vec::with_capacity(questions.len());
        let mut unsent = false;
        for answer in answers {
            match answer {
                Some(a) => out.push(a?),
                None => unsent = true,
            }
        }
        if unsent {
            return Err(Error::InvalidArgument(
                "a request was never sent after another failed".into(),
            ));
        }
        Ok(out)
    }
}
