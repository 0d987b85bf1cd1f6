//! Request routing and the OpenAI wire format.

use super::batcher::GenerationQueue;
use crate::embed::SentenceEmbedder;
use crate::llm::ChatMessage;
use crate::profile::{FinishReason, GenerationSettings};
use serde::Deserialize;
use serde_json::{json, Value};
use std::io::Read;

/// Largest request body accepted, in bytes.
const MAX_BODY: usize = 8 << 20;

pub(super) struct State {
    pub generator_id: Option<String>,
    pub queue: Option<GenerationQueue>,
    pub embedder: Option<SentenceEmbedder>,
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
    let header = tiny_http::Header::from_bytes(&b"Content-Type"[..], &b"application/json"[..])
        .expect("a static header is valid");
    let response = tiny_http::Response::from_string(body.to_string())
        .with_status_code(status)
        .with_header(header);
    let _ = request.respond(response);
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

fn models(state: &State) -> Value {
    let mut data = Vec::new();
    if let Some(id) = &state.generator_id {
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

fn chat_completions(state: &State, body: Value) -> Result<Value, ApiError> {
    let (Some(queue), Some(model_id)) = (&state.queue, &state.generator_id) else {
        return Err(ApiError {
            status: 404,
            message: "this server has no chat model (start it with --model)".into(),
        });
    };
    let request: ChatRequest = serde_json::from_value(body)
        .map_err(|e| bad_request(format!("not a chat completion request: {e}")))?;
    if request.stream {
        return Err(bad_request(
            "streaming is not supported; send stream: false",
        ));
    }
    if request.n.unwrap_or(1) != 1 {
        return Err(bad_request("only n = 1 is supported"));
    }
    if request.messages.is_empty() {
        return Err(bad_request("messages is empty"));
    }
    let defaults = GenerationSettings::default();
    let settings = GenerationSettings {
        max_new_tokens: request
            .max_completion_tokens
            .or(request.max_tokens)
            .unwrap_or(defaults.max_new_tokens),
        temperature: request.temperature.unwrap_or(0.0).max(0.0),
        top_p: request.top_p.filter(|p| *p < 1.0),
        seed: request.seed.unwrap_or(defaults.seed),
    };
    let prompt = queue_prompt(state, &request.messages)?;
    let completion = queue
        .complete(prompt, settings)
        .map_err(|e| bad_request(e.to_string()))?;
    let created = unix_now();
    Ok(json!({
        "id": format!("chatcmpl-{created}-{}", completion.prompt_tokens),
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

/// The chat template is applied by the generator thread's model; rendering needs only
/// the template, which is cheap to apply here.
fn queue_prompt(state: &State, messages: &[ChatMessage]) -> Result<String, ApiError> {
    let template = state
        .queue
        .as_ref()
        .map(|q| q.chat_template())
        .ok_or_else(|| bad_request("no chat model"))?;
    template
        .render_messages(messages)
        .map_err(|e| bad_request(e.to_string()))
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
