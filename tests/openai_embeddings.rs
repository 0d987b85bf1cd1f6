//! The OpenAI-compatible embeddings backend over real HTTP on loopback: against
//! `bftembed serve` (vectors and search results equal the local encoder's), and against
//! scripted servers that fail, answer malformed vectors, change model, or die midway
//! through a store build (which then resumes).

mod common;

use bftembed::embed::{work_dir_for, RemoteEncoder, RemoteSettings, TextEncoder, CHUNK_TEXTS};
use bftembed::genes::GeneCatalog;
use bftembed::profile::{ProfileRecord, RefseqSummaries};
use bftembed::serve::{start, RunningServer, ServeModels};
use bftembed::store::{embed_into_store, GeneStore, IndexParams, SearchMode};
use serde_json::{json, Value};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn real_profiles(n: usize) -> Vec<ProfileRecord> {
    let catalog = GeneCatalog::embedded().unwrap();
    let mut records = RefseqSummaries::embedded()
        .unwrap()
        .all_profiles(&catalog)
        .records;
    records.truncate(n);
    records
}

fn our_server() -> (RunningServer, String) {
    let server = start(
        ServeModels {
            generator: None,
            embedder: Some(common::embedder()),
            max_batch: 8,
        },
        "127.0.0.1:0",
        4,
    )
    .unwrap();
    let endpoint = format!("http://{}/v1", server.addr());
    (server, endpoint)
}

fn quick(endpoint: &str, model: &str) -> RemoteSettings {
    let mut s = RemoteSettings::new(endpoint, model);
    s.batch_size = 7;
    s.http.concurrency = 3;
    s.http.max_retries = 3;
    s.http.initial_backoff = Duration::from_millis(20);
    s.http.request_timeout = Duration::from_secs(60);
    s
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn vectors_and_search_through_bftembed_serve_equal_the_local_encoder() {
    let (server, endpoint) = our_server();
    let local = common::embedder();
    let remote = RemoteEncoder::connect(quick(&endpoint, "all-minilm-l6-v2")).unwrap();
    assert_eq!(TextEncoder::dim(&remote), 384);
    let records = real_profiles(60);
    let texts: Vec<&str> = records.iter().map(|r| r.text.as_str()).collect();
    // 60 texts in 9 requests of at most 7, three in flight: order must survive.
    let a = remote.embed_documents(&texts, None).unwrap();
    let b = local.embed(&texts).unwrap();
    for i in 0..texts.len() {
        let c = cosine(a.row(i), b.row(i));
        assert!(c >= 0.9999, "text {i}: cosine {c}");
    }

    let tmp = tempfile::tempdir().unwrap();
    let remote_store = embed_into_store(
        &remote,
        &records,
        &tmp.path().join("remote"),
        IndexParams::default(),
    )
    .unwrap();
    let local_store = embed_into_store(
        &local,
        &records,
        &tmp.path().join("local"),
        IndexParams::default(),
    )
    .unwrap();
    let recorded = remote_store.manifest().remote.clone().unwrap();
    assert_eq!(recorded.endpoint, endpoint);
    assert_eq!(recorded.model, "all-minilm-l6-v2");
    assert_eq!(recorded.probe_vector.len(), 384);
    assert!(remote_store.manifest().encoder.is_none());

    // Search on the remote store goes back through the server and finds what the
    // local store finds.
    let cache = bftembed::models::ModelCache::from_env().unwrap();
    let encoder = remote_store
        .encoder(&cache, &candle_core::Device::Cpu)
        .unwrap();
    assert!(encoder.remote().is_some());
    let query = "DNA repair and tumor suppression";
    let q_remote = encoder.embed_queries(&[query]).unwrap();
    let q_local = local.embed_queries(&[query]).unwrap();
    let hits = |store: &GeneStore, q: &[f32]| -> Vec<String> {
        store
            .search_vector(q, 5, SearchMode::Exact)
            .unwrap()
            .into_iter()
            .map(|h| h.symbol)
            .collect()
    };
    assert_eq!(
        hits(&remote_store, q_remote.row(0)),
        hits(&local_store, q_local.row(0))
    );

    // Without the server, the store refuses to embed a query and says where it looked.
    server.stop();
    let err = match remote_store.encoder(&cache, &candle_core::Device::Cpu) {
        Ok(_) => panic!("a store built through a server searched without it"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains(&endpoint) && err.contains("same server"),
        "{err}"
    );
}

/// A loopback server whose every answer comes from `answer(request number, body)`.
fn scripted<F>(answer: F) -> (String, Arc<AtomicUsize>)
where
    F: Fn(usize, &Value) -> (u16, String) + Send + Sync + 'static,
{
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let addr = server.server_addr().to_ip().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for mut request in server.incoming_requests() {
            let mut body = String::new();
            let _ = request.as_reader().read_to_string(&mut body);
            let n = seen.fetch_add(1, Ordering::SeqCst);
            let json: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            let (status, text) = answer(n, &json);
            let _ =
                request.respond(tiny_http::Response::from_string(text).with_status_code(status));
        }
    });
    (format!("http://{addr}/v1"), count)
}

/// A deterministic 8-dimensional vector for a text, as a toy model would give.
fn toy_vector(text: &str, salt: u64) -> Vec<f32> {
    let mut h = bftembed::fsutil::fnv1a(text.as_bytes()) ^ salt;
    (0..8)
        .map(|_| {
            h = h
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((h >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        })
        .collect()
}

/// The body of a good answer for `request`, each vector from `toy_vector`.
fn toy_answer(request: &Value, salt: u64) -> String {
    let inputs: Vec<&str> = request["input"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .rev() // out of order on purpose: the index decides
        .map(|(i, t)| json!({"object": "embedding", "index": i, "embedding": toy_vector(t, salt)}))
        .collect();
    json!({"object": "list", "data": data, "model": "toy"}).to_string()
}

#[test]
fn transient_failures_are_retried_and_answers_put_in_order() {
    let (url, count) = scripted(|n, body| match n {
        1 => (429, r#"{"error":{"message":"slow down"}}"#.into()),
        2 => (503, "overloaded".into()),
        _ => (200, toy_answer(body, 0)),
    });
    let mut settings = quick(&url, "toy");
    settings.http.concurrency = 1;
    let encoder = RemoteEncoder::connect(settings).unwrap();
    let texts = ["alpha", "beta", "gamma"];
    let v = encoder.embed_documents(&texts, None).unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 4); // probe, 429, 503, answer
    for (i, t) in texts.iter().enumerate() {
        let mut want = toy_vector(t, 0);
        let norm = want.iter().map(|x| x * x).sum::<f32>().sqrt();
        want.iter_mut().for_each(|x| *x /= norm);
        assert!(cosine(v.row(i), &want) > 0.99999, "{t}");
        assert!((cosine(v.row(i), v.row(i)) - 1.0).abs() < 1e-5);
    }
}

fn connect_error(answer: &'static str, dimensions: Option<usize>) -> String {
    let (url, _) = scripted(move |_, _| (200, answer.to_string()));
    let mut settings = quick(&url, "toy");
    settings.dimensions = dimensions;
    match RemoteEncoder::connect(settings) {
        Ok(_) => panic!("accepted {answer}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn malformed_answers_and_client_errors_are_refused_clearly() {
    let err = connect_error(r#"{"data":[]}"#, None);
    assert!(err.contains("sent 1 texts but the answer holds 0"), "{err}");
    let err = connect_error(r#"{"data":[{"index":0,"embedding":[0,0,0]}]}"#, None);
    assert!(err.contains("all zeros"), "{err}");
    let err = connect_error(r#"{"data":[{"index":0,"embedding":"AAAA"}]}"#, None);
    assert!(err.contains("float embedding list"), "{err}");
    let err = connect_error(r#"{"data":[{"index":3,"embedding":[1,2]}]}"#, None);
    assert!(err.contains("index out of range"), "{err}");
    let err = connect_error(r#"{"data":[{"index":0,"embedding":[1,2]}]}"#, Some(256));
    assert!(
        err.contains("asked for 256 dimensions") && err.contains("2"),
        "{err}"
    );
    let err = connect_error("<html>proxy</html>", None);
    assert!(err.contains("not JSON") && err.contains("proxy"), "{err}");

    let (url, count) = scripted(|_, _| (401, r#"{"error":{"message":"bad key"}}"#.into()));
    let err = RemoteEncoder::connect(quick(&url, "toy"))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("HTTP 401") && err.contains("bad key"), "{err}");
    assert_eq!(count.load(Ordering::SeqCst), 1, "a 401 is not retried");

    let (url, count) = scripted(|_, _| (500, "down".into()));
    let err = RemoteEncoder::connect(quick(&url, "toy"))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("gave up after 4 attempts"), "{err}");
    assert_eq!(count.load(Ordering::SeqCst), 4);
}

#[test]
fn a_killed_build_resumes_from_saved_chunks_and_a_changed_model_is_refused() {
    let records = real_profiles(CHUNK_TEXTS + 40);
    let texts: Vec<&str> = records.iter().map(|r| r.text.as_str()).collect();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("store");

    // The server fails for good once the first chunk is done (a quota, a crash): the
    // build stops with the server's message, and the first chunk's vectors stay saved.
    let first_chunk_requests = CHUNK_TEXTS.div_ceil(7);
    let healthy = Arc::new(AtomicBool::new(false));
    let flag = healthy.clone();
    let (url, count) = scripted(move |n, body| {
        if flag.load(Ordering::SeqCst) || n <= first_chunk_requests {
            (200, toy_answer(body, 0))
        } else {
            (400, r#"{"error":{"message":"quota exhausted"}}"#.into())
        }
    });
    let mut settings = quick(&url, "toy");
    settings.http.concurrency = 1;
    let encoder = RemoteEncoder::connect(settings).unwrap();
    let err = embed_into_store(&encoder, &records, &out, IndexParams::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("quota exhausted"), "{err}");
    assert!(!out.exists());
    assert!(work_dir_for(&out, &encoder, &texts)
        .join("chunk-00000.f32")
        .exists());

    // The same job again once the server is back sends only the unfinished chunk.
    healthy.store(true, Ordering::SeqCst);
    let before = count.load(Ordering::SeqCst);
    let store = embed_into_store(&encoder, &records, &out, IndexParams::default()).unwrap();
    assert_eq!(
        count.load(Ordering::SeqCst) - before,
        40usize.div_ceil(7),
        "only the unfinished chunk is sent"
    );
    assert_eq!(store.len(), records.len());
    let fresh = encoder.embed_documents(&texts[..3], None).unwrap();
    for i in 0..3 {
        assert!(cosine(store.vector(i), fresh.row(i)) > 0.99999);
    }

    // The server now serves another model under the same name: the store refuses it.
    let mut manifest = store.manifest().clone();
    let (other, _) = scripted(|_, body| (200, toy_answer(body, 99)));
    manifest.remote.as_mut().unwrap().endpoint = other;
    manifest
        .write(&out.join(bftembed::store::MANIFEST_FILE))
        .unwrap();
    let store = GeneStore::open(&out).unwrap();
    let cache = bftembed::models::ModelCache::from_env().unwrap();
    let err = match store.encoder(&cache, &candle_core::Device::Cpu) {
        Ok(_) => panic!("a server with another model was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("embeds the probe text differently"), "{err}");
}

#[test]
fn the_cli_builds_and_searches_a_store_through_a_server() {
    let (_server, endpoint) = our_server();
    let tmp = tempfile::tempdir().unwrap();
    let genes = tmp.path().join("genes.txt");
    std::fs::write(
        &genes,
        "TP53\nBRCA1\nBRCA2\nATM\nINS\nGCG\nCD4\nCD8A\nMYOD1\nALB\n",
    )
    .unwrap();
    let profiles = tmp.path().join("p.parquet");
    let store = tmp.path().join("store");
    let bin = env!("CARGO_BIN_EXE_bftembed");
    let ok = |cmd: &mut Command| {
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    ok(Command::new(bin)
        .args(["profile", "--genes"])
        .arg(&genes)
        .arg("--out")
        .arg(&profiles));
    ok(Command::new(bin)
        .args(["embed", "--backend", "openai", "--endpoint", &endpoint])
        .args([
            "--model",
            "all-minilm-l6-v2",
            "--batch-size",
            "4",
            "--profiles",
        ])
        .arg(&profiles)
        .arg("--out")
        .arg(&store));
    let found = ok(Command::new(bin)
        .args([
            "search",
            "insulin secretion by pancreatic beta cells",
            "--json",
            "-k",
            "2",
        ])
        .arg("--store")
        .arg(&store));
    assert!(
        found.contains("\"INS\"") || found.contains("\"GCG\""),
        "{found}"
    );

    let run = Command::new(bin)
        .args([
            "embed",
            "--backend",
            "openai",
            "--endpoint",
            &endpoint,
            "--profiles",
        ])
        .arg(&profiles)
        .arg("--out")
        .arg(tmp.path().join("other"))
        .output()
        .unwrap();
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("needs --model"));
}
