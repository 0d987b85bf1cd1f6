//! The HTTP side of OpenAI-compatible servers (vLLM, TEI, Infinity, llama.cpp's
//! server, OpenAI itself, `bftembed serve`), shared by the profile stage (chat
//! completions) and the embed stage (embeddings): one JSON POST with a timeout, and
//! retries with exponential backoff on 429, 5xx and connection failures.

use crate::error::{Error, Result};
use std::time::Duration;

/// How a client talks to the server.
#[derive(Debug, Clone)]
pub struct OpenAiSettings {
    /// Base URL, such as `http://host:8000/v1` (a URL that already ends in the route,
    /// `/chat/completions` or `/embeddings`, is used as it is).
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

    /// The URL of `route` (such as `/embeddings`) under the endpoint.
    pub(crate) fn route_url(&self, route: &str) -> String {
        let base = self.endpoint.trim_end_matches('/');
        if base.ends_with(route) {
            base.to_string()
        } else {
            format!("{base}{route}")
        }
    }
}

/// One route of one server, with the retry policy of its settings.
pub(crate) struct JsonClient {
    agent: ureq::Agent,
    url: String,
    api_key: Option<String>,
    max_retries: u32,
    initial_backoff: Duration,
}

impl JsonClient {
    /// A client for `route` under the settings' endpoint; nothing is sent yet.
    pub(crate) fn new(settings: &OpenAiSettings, route: &str) -> Result<Self> {
        if !(settings.endpoint.starts_with("http://") || settings.endpoint.starts_with("https://"))
        {
            return Err(Error::InvalidArgument(format!(
                "endpoint '{}' is not an http:// or https:// URL",
                settings.endpoint
            )));
        }
        let agent: ureq::Agent = crate::http::agent_config()
            .http_status_as_error(false)
            .timeout_global(Some(settings.request_timeout))
            .build()
            .into();
        Ok(JsonClient {
            agent,
            url: settings.route_url(route),
            api_key: settings.api_key.clone(),
            max_retries: settings.max_retries,
            initial_backoff: settings.initial_backoff,
        })
    }

    /// The full URL requests go to.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Posts `body` and returns the answer's JSON, retrying what may succeed on a
    /// second try.
    pub(crate) fn post(&self, body: &serde_json::Value) -> Result<serde_json::Value> {
        let mut backoff = self.initial_backoff;
        let mut attempt = 0;
        loop {
            match self.post_once(body) {
                Ok(json) => return Ok(json),
                Err(Failure::Retryable(message)) if attempt < self.max_retries => {
                    attempt += 1;
                    eprintln!(
                        "warning: {}: {message}; retry {attempt} of {} in {:?}",
                        self.url, self.max_retries, backoff
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

    /// An error about this client's URL.
    pub(crate) fn error(&self, message: String) -> Error {
        Error::Download {
            url: self.url.clone(),
            message,
        }
    }

    fn post_once(
        &self,
        body: &serde_json::Value,
    ) -> std::result::Result<serde_json::Value, Failure> {
        let mut request = self.agent.post(&self.url);
        if let Some(key) = &self.api_key {
            request = request.header("Authorization", &format!("Bearer {key}"));
        }
        let mut response = request
            .send_json(body)
            .map_err(|e| Failure::Retryable(format!("request failed: {e}")))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
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
        serde_json::from_str(&text).map_err(|e| {
            Failure::Fatal(format!(
                "the server's answer is not JSON ({e}): {}",
                excerpt(&text)
            ))
        })
    }
}

/// An embeddings answer for 64 texts of 3,072 floats is about 4 MB of JSON; ureq's
/// default 10 MB limit would refuse bigger batches of big vectors.
const MAX_RESPONSE_BYTES: u64 = 512 * 1024 * 1024;

enum Failure {
    Retryable(String),
    Fatal(String),
}

/// The first 300 characters of a server's answer, for error messages.
pub(crate) fn excerpt(text: &str) -> String {
    let t: String = text.chars().take(300).collect();
    if t.len() < text.len() {
        format!("{t}...")
    } else {
        t
    }
}

/// Runs `job(0..count)` on at most `workers` threads and returns the results in order.
/// After the first failure no new job starts (those running finish) and that failure
/// is returned.
pub(crate) fn run_bounded<T, F>(count: usize, workers: usize, job: F) -> Result<Vec<T>>
where
    T: Send,
    F: Fn(usize) -> Result<T> + Sync,
{
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<T>>>> = Mutex::new((0..count).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..workers.clamp(1, count.max(1)) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= count {
                    break;
                }
                let result = job(i);
                let failed = result.is_err();
                if let Ok(mut all) = results.lock() {
                    all[i] = Some(result);
                }
                if failed {
                    next.store(count, Ordering::SeqCst);
                }
            });
        }
    });
    let results = results
        .into_inner()
        .map_err(|_| Error::InvalidArgument("a request thread panicked".into()))?;
    let mut out = Vec::with_capacity(count);
    let mut first_error = None;
    let mut unsent = false;
    for result in results {
        match result {
            Some(Ok(value)) => out.push(value),
            Some(Err(e)) => {
                first_error.get_or_insert(e);
            }
            None => unsent = true,
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    if unsent {
        return Err(Error::InvalidArgument(
            "a request was never sent after another failed".into(),
        ));
    }
    Ok(out)
}
