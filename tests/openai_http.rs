//! The OpenAI-compatible path over real HTTP on loopback: our client against our own
//! server (answers equal local generation), the server against curl, and the client
//! against a scripted server that fails, stalls or sends malformed JSON.

mod common;

use bftembed::profile::{
    AnswerBackend, GenerationSettings, LocalBackend, OpenAiBackend, OpenAiSettings, Question,
};
use bftembed::serve::{start, ServeModels};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn questions() -> Vec<Question> {
    ["TP53", "EGFR", "CD4", "INS", "KRAS"]
        .iter()
        .map(|s| Question {
            system: "You are a biomedical expert. Answer concisely and factually.".into(),
            user: format!("tell me about gene {s}."),
        })
        .collect()
}

fn quick(endpoint: &str) -> OpenAiSettings {
    let mut s = OpenAiSettings::new(endpoint, "test-model");
    s.initial_backoff = Duration::from_millis(20);
    s.max_retries = 3;
    s.request_timeout = Duration::from_secs(5);
    s.concurrency = 2;
    s
}

#[test]
fn our_client_against_our_server_matches_local_generation() {
    let server = start(
        ServeModels {
            generator: Some(common::generator()),
            embedder: Some(common::embedder()),
            max_batch: 8,
        },
        "127.0.0.1:0",
        8,
    )
    .unwrap();
    let endpoint = format!("http://{}/v1", server.addr());
    let settings = GenerationSettings {
        max_new_tokens: 24,
        ..GenerationSettings::default()
    };
    let mut client_settings = OpenAiSettings::new(&endpoint, "smollm2-135m-instruct");
    client_settings.concurrency = 5;
    let client = OpenAiBackend::new(client_settings).unwrap();
    let remote = client.answer_batch(&questions(), &settings).unwrap();
    let local = LocalBackend {
        generator: common::generator(),
        batch_size: 1,
    }
    .answer_batch(&questions(), &settings)
    .unwrap();
    assert_eq!(
        remote, local,
        "served answers must equal local greedy answers"
    );

    let agent = ureq::agent();
    let body = serde_json::json!({"input": ["tumor suppressor p53", "insulin"], "model": "x"});
    let reply: serde_json::Value = agent
        .post(&format!("{endpoint}/embeddings"))
        .send_json(&body)
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    let served: Vec<f32> = reply["data"][1]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    let direct = common::embedder().embed(&["insulin"]).unwrap();
    let cos: f32 = served.iter().zip(direct.row(0)).map(|(a, b)| a * b).sum();
    assert!(cos > 0.99999, "cosine {cos}");
    assert_eq!(reply["data"].as_array().unwrap().len(), 2);

    let models: serde_json::Value = agent
        .get(&format!("{endpoint}/models"))
        .call()
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    assert_eq!(models["data"].as_array().unwrap().len(), 2);
    server.stop();
}

#[test]
fn the_server_answers_curl() {
    if Command::new("curl").arg("--version").output().is_err() {
        panic!("curl is needed for this test (.ci/run installs it)");
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/serve_with_curl.sh");
    let run = Command::new("bash")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_bftembed"))
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
}

use std::process::Command;

/// A server that answers each request with the next scripted (status, body); `None`
/// accepts the request and never answers.
fn scripted_server(script: Vec<Option<(u16, &'static str)>>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for (i, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { break };
            seen.fetch_add(1, Ordering::SeqCst);
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; length];
            let _ = reader.read_exact(&mut body);
            match script.get(i).copied().unwrap_or(script[script.len() - 1]) {
                Some((status, text)) => {
                    let reply = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                        text.len()
                    );
                    let _ = stream.write_all(reply.as_bytes());
                }
                None => held.push(stream),
            }
        }
    });
    (format!("http://{addr}/v1"), count)
}

const GOOD: &str = r#"{"choices":[{"index":0,"message":{"role":"assistant","content":" fine "}}]}"#;

#[test]
fn transient_errors_are_retried_with_backoff() {
    let (url, count) = scripted_server(vec![
        Some((500, r#"{"error":{"message":"overloaded"}}"#)),
        Some((429, r#"{"error":{"message":"slow down"}}"#)),
        Some((200, GOOD)),
    ]);
    let client = OpenAiBackend::new(quick(&url)).unwrap();
    let q = &questions()[..1];
    let answers = client
        .answer_batch(q, &GenerationSettings::default())
        .unwrap();
    assert_eq!(answers, ["fine"]);
    assert_eq!(count.load(Ordering::SeqCst), 3);
}

#[test]
fn persistent_errors_malformed_json_and_client_errors_are_clear() {
    let q = &questions()[..1];
    let settings = GenerationSettings::default();
    let (url, count) = scripted_server(vec![Some((503, "down"))]);
    let err = OpenAiBackend::new(quick(&url))
        .unwrap()
        .answer_batch(q, &settings)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("503") && err.contains("gave up after 4 attempts"),
        "{err}"
    );
    assert_eq!(count.load(Ordering::SeqCst), 4);

    let (url, _) = scripted_server(vec![Some((200, "{\"choices\": [oops"))]);
    let err = OpenAiBackend::new(quick(&url))
        .unwrap()
        .answer_batch(q, &settings)
        .unwrap_err()
        .to_string();
    assert!(err.contains("not JSON") && err.contains(&url), "{err}");

    let (url, _) = scripted_server(vec![Some((200, r#"{"object":"list"}"#))]);
    let err = OpenAiBackend::new(quick(&url))
        .unwrap()
        .answer_batch(q, &settings)
        .unwrap_err()
        .to_string();
    assert!(err.contains("choices[0].message.content"), "{err}");

    let (url, count) = scripted_server(vec![Some((401, r#"{"error":"bad key"}"#))]);
    let err = OpenAiBackend::new(quick(&url))
        .unwrap()
        .answer_batch(q, &settings)
        .unwrap_err()
        .to_string();
    assert!(err.contains("401") && err.contains("bad key"), "{err}");
    assert_eq!(
        count.load(Ordering::SeqCst),
        1,
        "client errors are not retried"
    );
}

#[test]
fn unreachable_and_stalled_servers_fail_in_bounded_time() {
    let q = &questions()[..1];
    let settings = GenerationSettings::default();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let start = Instant::now();
    let err = OpenAiBackend::new(quick(&format!("http://127.0.0.1:{port}/v1")))
        .unwrap()
        .answer_batch(q, &settings)
        .unwrap_err()
        .to_string();
    assert!(err.contains("gave up"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(20));

    let (url, _) = scripted_server(vec![None]);
    let mut s = quick(&url);
    s.request_timeout = Duration::from_secs(1);
    s.max_retries = 1;
    let start = Instant::now();
    let err = OpenAiBackend::new(s)
        .unwrap()
        .answer_batch(q, &settings)
        .unwrap_err()
        .to_string();
    assert!(err.contains("gave up after 2 attempts"), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn the_cli_writes_no_table_when_the_server_fails() {
    let (url, _) = scripted_server(vec![Some((200, "<html>proxy error</html>"))]);
    let tmp = tempfile::tempdir().unwrap();
    let genes = tmp.path().join("g.txt");
    std::fs::write(&genes, "TP53\nEGFR\n").unwrap();
    let out = tmp.path().join("p.parquet");
    let run = Command::new(env!("CARGO_BIN_EXE_bftembed"))
        .args(["profile", "--backend", "openai", "--endpoint", &url])
        .args(["--model", "m", "--max-retries", "0", "--genes"])
        .arg(&genes)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.contains("not JSON") && err.contains("proxy error"),
        "{err}"
    );
    assert!(!out.exists());

    let (url, _) = scripted_server(vec![Some((200, GOOD))]);
    let run = Command::new(env!("CARGO_BIN_EXE_bftembed"))
        .args(["profile", "--backend", "openai", "--endpoint", &url])
        .args(["--model", "remote-model", "--genes"])
        .arg(&genes)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let records = bftembed::profile::read_profiles(&out).unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].source, "remote-model:gene-v1");
    assert_eq!(records[0].text, "fine");
}
