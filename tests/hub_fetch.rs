//! `bftembed models fetch org/name` against a loopback server with the Hugging Face
//! hub's layout (model info with LFS digests, files under /resolve/REV/): the model
//! arrives, checks out and embeds as the local folder does; a wrong digest, a missing
//! token and a missing repository are refused by name.

mod common;

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

/// What the server saw: each request's path and its Authorization header.
type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Serves `folder` as repository `test/tiny-bert` at revision `main`. With
/// `bad_digest`, the model info gives a wrong sha256 for the weights; with
/// `needs_token`, requests without `Bearer secret` get 401.
fn serve(folder: PathBuf, bad_digest: bool, needs_token: bool) -> (String, Seen) {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let address = format!("http://{}", server.server_addr().to_ip().unwrap());
    let seen: Seen = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for request in server.incoming_requests() {
            let url = request.url().to_string();
            let auth = request
                .headers()
                .iter()
                .find(|h| h.field.equiv("Authorization"))
                .map(|h| h.value.to_string());
            log.lock().unwrap().push((url.clone(), auth.clone()));
            if needs_token && auth.as_deref() != Some("Bearer secret") {
                let _ = request.respond(tiny_http::Response::from_string("").with_status_code(401));
                continue;
            }
            let response = answer(&folder, &url, bad_digest);
            let _ = match response {
                Some(bytes) => request.respond(tiny_http::Response::from_data(bytes)),
                None => request.respond(tiny_http::Response::from_string("").with_status_code(404)),
            };
        }
    });
    (address, seen)
}

fn answer(folder: &Path, url: &str, bad_digest: bool) -> Option<Vec<u8>> {
    let path = url.split('?').next()?;
    if path == "/api/models/test/tiny-bert/revision/main" {
        let mut siblings = Vec::new();
        for name in [
            "config.json",
            "tokenizer.json",
            "tokenizer_config.json",
            "modules.json",
            "sentence_bert_config.json",
            "config_sentence_transformers.json",
            "1_Pooling/config.json",
            "README.md",
            "model.safetensors",
        ] {
            let bytes = std::fs::read(folder.join(name)).ok()?;
            let mut entry = serde_json::json!({"rfilename": name});
            if name.ends_with(".safetensors") {
                let sha = if bad_digest {
                    "0".repeat(64)
                } else {
                    hex(&Sha256::digest(&bytes))
                };
                entry["lfs"] = serde_json::json!({"sha256": sha, "size": bytes.len()});
            }
            siblings.push(entry);
        }
        let info =
            serde_json::json!({"id": "test/tiny-bert", "sha": "abc123", "siblings": siblings});
        return Some(info.to_string().into_bytes());
    }
    let file = path.strip_prefix("/test/tiny-bert/resolve/main/")?;
    std::fs::read(folder.join(file)).ok()
}

fn fetch(address: &str, home: &Path, token: Option<&str>, repo: &str) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bftembed"));
    cmd.args(["models", "fetch", repo])
        .env("BFTEMBED_HOME", home)
        .env("HF_ENDPOINT", address)
        .env_remove("HF_TOKEN");
    if let Some(t) = token {
        cmd.env("HF_TOKEN", t);
    }
    cmd.output().unwrap()
}

#[test]
fn a_hub_model_is_fetched_checked_and_used() {
    let folder = common::fixture("tiny_encoders").join("bert_cls");
    let (address, seen) = serve(folder.clone(), false, true);
    let home = tempfile::tempdir().unwrap();
    let run = fetch(&address, home.path(), Some("secret"), "test/tiny-bert");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(seen
        .lock()
        .unwrap()
        .iter()
        .all(|(_, auth)| auth.as_deref() == Some("Bearer secret")));
    // The cached copy resolves by repository name and embeds as the local folder does.
    let cache = bftembed::models::ModelCache::new(home.path());
    let fetched = cache.resolve("test/tiny-bert@main").unwrap();
    assert_eq!(fetched.id, "test/tiny-bert@main");
    let local = bftembed::models::ModelDir::from_folder(&folder).unwrap();
    assert_eq!(fetched.weights_sha256, local.weights_sha256);
    let device = candle_core::Device::Cpu;
    let ours = bftembed::embed::SentenceEmbedder::load(&fetched, &device).unwrap();
    let theirs = bftembed::embed::SentenceEmbedder::load(&local, &device).unwrap();
    assert_eq!(ours.pooling(), bftembed::embed::Pooling::Cls);
    let texts = ["tp53 binds dna", "cell"];
    assert_eq!(
        ours.embed(&texts).unwrap().as_slice(),
        theirs.embed(&texts).unwrap().as_slice()
    );
    // A second fetch uses the cache: no new request.
    let before = seen.lock().unwrap().len();
    let again = fetch(&address, home.path(), Some("secret"), "test/tiny-bert");
    assert!(again.status.success());
    assert_eq!(seen.lock().unwrap().len(), before);
    // A file changed in the cache is found.
    std::fs::write(
        cache
            .root()
            .join("models/hub/test--tiny-bert@main/config.json"),
        "{}",
    )
    .unwrap();
    let err = cache.resolve("test/tiny-bert").unwrap_err().to_string();
    assert!(
        err.contains("config.json") && err.contains("--force"),
        "{err}"
    );
}

#[test]
fn hub_failures_are_refused_by_name() {
    let folder = common::fixture("tiny_encoders").join("bert_cls");
    let (address, _) = serve(folder.clone(), true, false);
    let home = tempfile::tempdir().unwrap();
    let run = fetch(&address, home.path(), None, "test/tiny-bert");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(
        stderr.contains("model.safetensors") && stderr.contains("the hub says"),
        "{stderr}"
    );
    assert!(!home.path().join("models/hub/test--tiny-bert@main").exists());
    let run = fetch(&address, home.path(), None, "test/no-such-model");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("HTTP 404") && stderr.contains("repository name"),
        "{stderr}"
    );
    let (address, _) = serve(folder, false, true);
    let run = fetch(&address, home.path(), None, "test/tiny-bert");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("HTTP 401") && stderr.contains("set HF_TOKEN"),
        "{stderr}"
    );
}
