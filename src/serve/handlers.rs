//! Request routing and the OpenAI wire format.

use super::batcher::GenerationQueue;
use crate::embed::SentenceEmbedder;
use crate::error::Error;
use crate::llm::ChatMessage;
use crate::profile::{FinishReason, GenerationSettings};
use serde::Deserialize;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};

/// Largest request body accepted, in bytes.
const MAX_BODY: usize = 8 << 20;

pub(super) struct State {
    pub generator_id: Option<String>,
    pub queue: Option<GenerationQueue>,
    pub embedder: Option<SentenceEmbedder>,
    /// Chat completions answered so far, so that each answer's id is its own.
    pub completions: AtomicU64,
}

struct ApiError {
    status: u16,
    message: String,
}

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError {
        status: 400,
        message: message.into(),
    }
}

pub(super) fn handle(state: &State, mut request: tiny_http::Request) {
    let path = request.url().split('?').next().unwrap_or("").to_string();
    let method = request.method().as_str().to_ascii_uppercase();
    let result = match (method.as_str(), path.trim_end_matches('/')) {
        ("GET", "/v1/models") => Ok(models(state)),
        ("POST", "/v1/chat/completions") => {
            read_json(&mut request).and_then(|body| chat_completions(state, body))
        }
        ("POST", "/v1/embeddings") => {
            read_json(&mut request).and_then(|body| embeddings(state, body))
        }
        _ => Err(ApiError {
            status: 404,
            message: format!("no route for {method} {path}"),
        }),
    };
    let (status, body) = match result {
        Ok(body) => (200, body),
        Err(e) => (
            e.status,
            json!({"error": {
                "message": e.message,
                "type": if e.status >= 500 { "server_error" } else { "invalid_request_error" },
                "code": e.status,
            }}),
        ),
    };
    let body = if method == "HEAD" {
        String::new()
    } else {
        body.to_string()
    };
    respond(request, status, &body);
}

/// Writes the response by hand, to say `Connection: close`, which tiny_http 0.12 lets
/// no response header say. Its connection pool can leave a new connection unread while
/// idle keep-alive connections hold every pool thread: under 16 pooled clients some
/// requests waited minutes for a thread (docs/SERVE.md). With one request per
/// connection, each connection's thread is free as soon as its answer is sent.
fn respond(request: tiny_http::Request, status: u16, body: &str) {
    let reason = tiny_http::StatusCode(status).default_reason_phrase();
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut writer = request.into_writer();
    // A client that has gone away has no one to tell.
    let _ = writer
        .write_all(head.as_bytes())
        .and_then(|()| writer.write_all(body.as_bytes()))
        .and_then(|()| writer.flush());
}

fn read_json(request: &mut tiny_http::Request) -> Result<Value, ApiError> {
    let mut body = Vec::new();
    request
        .as_reader()
        .take(MAX_BODY as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| bad_request(format!("cannot read the request body: {e}")))?;
    if body.len() > MAX_BODY {
        return Err(bad_request(format!(
            "the request body exceeds {MAX_BODY} bytes"
        )));
    }
    serde_json::from_slice(&body).map_err(|e| bad_request(format!("the body is not JSON: {e}")))
}

fn unix_now() -> u64 {
    crate::fsutil::unix_now()
}

pub(super) fn models(state: &State) -> Value {
    let mut data = Vec::new();
    // A chat model whose generation thread has died is no longer served.
    let generating = state.queue.as_ref().is_some_and(|q| q.failure().is_none());
    if let (Some(id), true) = (&state.generator_id, generating) {
        data.push(json!({"id": id, "object": "model", "owned_by": "bftembed"}));
    }
    if let Some(e) = &state.embedder {
        data.push(json!({"id": e.model_id(), "object": "model", "owned_by": "bftembed"}));
    }
    json!({"object": "list", "data": data})
}

#[derive(Deserialize)]
struct ChatRequest {
    messages: Vec<ChatMessage>,
    max_tokens: Option<usize>,
    max_completion_tokens: Option<usize>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    seed: Option<u64>,
    #[serde(default)]
    stream: bool,
    n: Option<usize>,
}

/// Roles a chat template is known to handle.
const ROLES: [&str; 3] = ["system", "user", "assistant"];

/// Highest temperature accepted, as in OpenAI's API.
const MAX_TEMPERATURE: f64 = 2.0;

fn chat_completions(state: &State, body: Value) -> Result<Value, ApiError> {
    let (Some(queue), Some(model_id)) = (&state.queue, &state.generator_id) else {
        return Err(ApiError {
            status: 404,
            message: "this server has no chat model (start it with --model)".into(),
        });
    };
    if let Some(why) = queue.failure() {
        return Err(ApiError {
            status: 503,
            message: why.to_string(),
        });
    }
    let request: ChatRequest = serde_json::from_value(body)
        .map_err(|e| bad_request(format!("not a chat completion request: {e}")))?;
    let settings = settings_of(&request, queue.context())?;
    // Checked here, in the request's own thread, so that a request that cannot be
    // generated is refused alone instead of failing the batch it would have joined.
    let prompt = queue
        .check(&request.messages, settings)
        .map_err(api_error)?;
    let completion = queue.complete(prompt).map_err(api_error)?;
    let created = unix_now();
    let serial = state.completions.fetch_add(1, Ordering::Relaxed);
    Ok(json!({
        "id": format!("chatcmpl-{created}-{serial}"),
        "object": "chat.completion",
        "created": created,
        "model": model_id,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": completion.text},
            "finish_reason": match completion.finish {
                FinishReason::Stop => "stop",
                FinishReason::Length => "length",
            },
        }],
        "usage": {
            "prompt_tokens": completion.prompt_tokens,
            "completion_tokens": completion.new_tokens,
            "total_tokens": completion.prompt_tokens + completion.new_tokens,
        },
    }))
}

/// The request's generation settings, each checked against its documented range.
fn settings_of(request: &ChatRequest, context: usize) -> Result<GenerationSettings, ApiError> {
    if request.stream {
        return Err(bad_request(
            "streaming is not supported; send stream: false",
        ));
    }
    if request.n.unwrap_or(1) != 1 {
        return Err(bad_request("only n = 1 is supported"));
    }
    check_messages(&request.messages)?;
    let defaults = GenerationSettings::default();
    let max_new_tokens = request
        .max_completion_tokens
        .or(request.max_tokens)
        .unwrap_or(defaults.max_new_tokens);
    if max_new_tokens == 0 {
        return Err(bad_request("max_tokens must be at least 1"));
    }
    if max_new_tokens >= context {
        return Err(bad_request(format!(
            "max_tokens {max_new_tokens} exceeds the model's context of {context} tokens"
        )));
    }
    let temperature = request.temperature.unwrap_or(0.0);
    if !(0.0..=MAX_TEMPERATURE).contains(&temperature) {
        return Err(bad_request(format!(
            "temperature {temperature} is outside 0 to {MAX_TEMPERATURE}"
        )));
    }
    if let Some(p) = request.top_p {
        if !(p > 0.0 && p <= 1.0) {
            return Err(bad_request(format!(
                "top_p {p} is outside (0, 1]: above 0, at most 1"
            )));
        }
    }
    Ok(GenerationSettings {
        max_new_tokens,
        temperature,
        // 1 keeps every token, which is sampling without a nucleus.
        top_p: request.top_p.filter(|p| *p < 1.0),
        seed: request.seed.unwrap_or(defaults.seed),
    })
}

fn check_messages(messages: &[ChatMessage]) -> Result<(), ApiError> {
    if messages.is_empty() {
        return Err(bad_request("messages is empty"));
    }
    match messages
        .iter()
        .enumerate()
        .find(|(_, m)| !ROLES.contains(&m.role.as_str()))
    {
        Some((i, m)) => Err(bad_request(format!(
            "messages[{i}] has role '{}'; the roles are {}",
            m.role,
            ROLES.join(", ")
        ))),
        None => Ok(()),
    }
}

/// The request's faults are 4xx, which clients (ours included) do not retry; the
/// server's own are 5xx, which they may.
fn api_error(e: Error) -> ApiError {
    let status = match e {
        // Tokenizer errors here come from the request's text or the chat template
        // refusing its messages.
        Error::InvalidArgument(_) | Error::Tokenizer(_) => 400,
        Error::Unavailable(_) => 503,
        _ => 500,
    };
    ApiError {
        status,
        message: e.to_string(),
    }
}

fn embeddings(state: &State, body: Value) -> Result<Value, ApiError> {
    let Some(embedder) = &state.embedder else {
        return Err(ApiError {
            status: 404,
            message: "this server has no embedding model (start it with --embedding-model)".into(),
        });
    };
    let texts: Vec<String> = match body.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(String::from)
                    .ok_or_else(|| bad_request("input must be a string or a list of strings"))
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(bad_request("input must be a string or a list of strings")),
    };
    if texts.is_empty() {
        return Err(bad_request("input is empty"));
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let server_error = |e: crate::Error| ApiError {
        status: 500,
        message: e.to_string(),
    };
    let tokens: usize = embedder
        .tokenize(&refs)
        .map_err(server_error)?
        .iter()
        .map(|e| e.len())
        .sum();
    let vectors = embedder.embed(&refs).map_err(server_error)?;
    let data: Vec<Value> = (0..vectors.len())
        .map(|i| json!({"object": "embedding", "index": i, "embedding": vectors.row(i)}))
        .collect();
    Ok(json!({
        "object": "list",
        "data": data,
        "model": embedder.model_id(),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }))
}
