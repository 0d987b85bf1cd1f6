//! `bftembed serve` under concurrent requests, on loopback with the real SmolLM2 model:
//! a bad request fails only itself, with its own 4xx and its own message, and a bounded
//! load (200 requests, 16 at a time) answers every valid request once, with the same
//! greedy text it gives that prompt asked alone. The load test prints its latency
//! figures (docs/SERVE.md records them); it asserts nothing about time.

mod common;

use bftembed::serve::{start, RunningServer, ServeModels};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

/// The two tests each load the model and load the CPU; one at a time keeps the load
/// test's latencies its own.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Kept small so that 200 requests finish in a couple of minutes on 2 cores.
const MAX_TOKENS: usize = 8;

const GENES: [&str; 20] = [
    "TP53", "EGFR", "CD4", "INS", "KRAS", "BRCA1", "MYC", "GAPDH", "ALB", "APOE", "CFTR", "HBB",
    "PTEN", "VEGFA", "TNF", "IL6", "ESR1", "AKT1", "SOX2", "FOXP3",
];

fn chat_server() -> RunningServer {
    start(
        ServeModels {
            generator: Some(common::generator()),
            embedder: None,
            max_batch: 8,
        },
        "127.0.0.1:0",
        16,
    )
    .expect("start the server")
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(600)))
        .build()
        .into()
}

/// A greedy request about one gene.
fn ask(gene: &str) -> Value {
    json!({
        "model": "smollm2-135m-instruct",
        "messages": [
            {"role": "system", "content": "You are a biomedical expert. Answer concisely."},
            {"role": "user", "content": format!("tell me about gene {gene}.")},
        ],
        "max_tokens": MAX_TOKENS,
        "temperature": 0,
    })
}

/// Requests the server must refuse, each with the status it must give and a piece of
/// the message that is about that request alone.
fn bad_requests() -> Vec<(Value, u16, &'static str)> {
    let with = |key: &str, value: Value| {
        let mut body = ask("TP53");
        body[key] = value;
        body
    };
    let long = json!({
        "messages": [{"role": "user", "content": "gene ".repeat(12_000)}],
        "max_tokens": MAX_TOKENS,
    });
    vec![
        (long, 400, "the prompt has"),
        (
            with("max_tokens", json!(1_000_000)),
            400,
            "max_tokens 1000000",
        ),
        (
            with("max_tokens", json!(0)),
            400,
            "max_tokens must be at least 1",
        ),
        (with("temperature", json!(-1.0)), 400, "temperature -1"),
        (with("temperature", json!(7.5)), 400, "temperature 7.5"),
        (with("top_p", json!(0.0)), 400, "top_p 0"),
        (with("messages", json!([])), 400, "messages is empty"),
        (
            with("messages", json!([{"role": "wizard", "content": "hi"}])),
            400,
            "role 'wizard'",
        ),
        (with("n", json!(3)), 400, "only n = 1"),
    ]
}

/// Status, body and seconds taken.
fn post(agent: &ureq::Agent, url: &str, body: &Value) -> (u16, Value, f64) {
    let started = Instant::now();
    let mut response = agent.post(url).send_json(body).expect("an HTTP answer");
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().expect("a body");
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, json, started.elapsed().as_secs_f64())
}

fn content(reply: &Value) -> String {
    reply["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_else(|| panic!("no content in {reply}"))
        .to_string()
}

fn message(reply: &Value) -> String {
    reply["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message in {reply}"))
        .to_string()
}

/// Each gene's answer asked alone, one request at a time (so each is a batch of one).
fn single_answers(agent: &ureq::Agent, url: &str, genes: &[&str]) -> HashMap<String, String> {
    genes
        .iter()
        .map(|gene| {
            let (status, reply, _) = post(agent, url, &ask(gene));
            assert_eq!(status, 200, "{gene} asked alone: {reply}");
            (gene.to_string(), content(&reply))
        })
        .collect()
}

#[test]
fn a_bad_request_fails_only_itself() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let server = chat_server();
    let url = format!("http://{}/v1/chat/completions", server.addr());
    let agent = agent();
    let genes = &GENES[..6];
    let alone = single_answers(&agent, &url, genes);

    let mut requests: Vec<(Value, Option<(u16, &str)>)> = Vec::new();
    for (i, (body, status, fragment)) in bad_requests().into_iter().enumerate() {
        // Interleaved, so that the bad ones queue beside good ones with the same settings.
        requests.push((ask(genes[i % genes.len()]), None));
        requests.push((body, Some((status, fragment))));
    }
    // A request that occupies the generator while the others queue behind it, so that
    // they meet in the same batches.
    let blocker = {
        let mut body = ask("MYC");
        body["max_tokens"] = json!(24);
        body
    };
    let barrier = Barrier::new(requests.len());
    let replies: Vec<(u16, Value)> = std::thread::scope(|s| {
        let first = s.spawn(|| post(&agent, &url, &blocker));
        std::thread::sleep(Duration::from_millis(300));
        let handles: Vec<_> = requests
            .iter()
            .map(|(body, _)| {
                let (agent, url, barrier) = (&agent, &url, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    let (status, reply, _) = post(agent, url, body);
                    (status, reply)
                })
            })
            .collect();
        let (status, reply, _) = first.join().expect("blocker");
        assert_eq!(status, 200, "the blocking request: {reply}");
        handles
            .into_iter()
            .map(|h| h.join().expect("a client thread"))
            .collect()
    });

    for ((body, expected), (status, reply)) in requests.iter().zip(&replies) {
        match expected {
            None => {
                assert_eq!(status, &200, "a valid request failed: {reply}");
                let gene = body["messages"][1]["content"].as_str().unwrap_or_default();
                let gene = gene
                    .trim_start_matches("tell me about gene ")
                    .trim_end_matches('.');
                assert_eq!(
                    content(reply),
                    alone[gene],
                    "{gene}: a batched answer differs from the answer asked alone"
                );
            }
            Some((want, fragment)) => {
                assert_eq!(
                    status, want,
                    "expected HTTP {want} for '{fragment}': {reply}"
                );
                let text = message(reply);
                assert!(text.contains(fragment), "'{fragment}' not in: {text}");
                assert_eq!(reply["error"]["type"], "invalid_request_error", "{reply}");
            }
        }
    }
    server.stop();
}

/// The p-th percentile (0..=100) of sorted values, nearest rank.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[test]
#[ignore = "slow: real data at full size; `bash .ci/run` (or `cargo test --release -- --include-ignored`) runs it"]
fn two_hundred_requests_sixteen_at_a_time_are_each_answered_once() {
    const REQUESTS: usize = 200;
    const CONCURRENCY: usize = 16;
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let server = chat_server();
    let url = format!("http://{}/v1/chat/completions", server.addr());
    let agent = agent();
    let alone = single_answers(&agent, &url, &GENES);
    let bad = bad_requests();

    // Every tenth request is a bad one, in turn of each kind; the rest ask the genes.
    let plan: Vec<(Value, Option<&str>)> = (0..REQUESTS)
        .map(|i| {
            if i % 10 == 9 {
                let (body, _, fragment) = &bad[(i / 10) % bad.len()];
                (body.clone(), Some(*fragment))
            } else {
                (ask(GENES[i % GENES.len()]), None)
            }
        })
        .collect();
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<(u16, Value, f64)>>> = Mutex::new(vec![None; REQUESTS]);
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..CONCURRENCY {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some((body, _)) = plan.get(i) else { break };
                let answer = post(&agent, &url, body);
                results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(answer);
            });
        }
    });
    let wall = started.elapsed().as_secs_f64();
    let results = results.into_inner().unwrap_or_else(|e| e.into_inner());

    let mut ids = HashSet::new();
    let mut latencies = Vec::new();
    let (mut answered, mut refused) = (0, 0);
    for (i, ((_, bad), result)) in plan.iter().zip(&results).enumerate() {
        let (status, reply, seconds) = result.as_ref().expect("every request has a reply");
        match bad {
            None => {
                assert_eq!(*status, 200, "request {i} failed: {reply}");
                let id = reply["id"].as_str().expect("an id").to_string();
                assert!(ids.insert(id.clone()), "id {id} answered twice");
                let gene = GENES[i % GENES.len()];
                assert_eq!(
                    content(reply),
                    alone[gene],
                    "request {i} ({gene}): the answer under load differs from the one asked alone"
                );
                let new_tokens = reply["usage"]["completion_tokens"].as_u64().unwrap_or(0);
                assert!(new_tokens as usize <= MAX_TOKENS, "request {i}: {reply}");
                latencies.push(*seconds);
                answered += 1;
            }
            Some(fragment) => {
                assert!((400..500).contains(status), "request {i}: {reply}");
                let text = message(reply);
                assert!(
                    text.contains(fragment),
                    "request {i}: '{fragment}' not in {text}"
                );
                refused += 1;
            }
        }
    }
    let valid = plan.iter().filter(|(_, bad)| bad.is_none()).count();
    assert_eq!(answered, valid);
    latencies.sort_by(f64::total_cmp);
    // The figures depend on what else the machine runs; the load average says how much.
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_else(|_| "unknown".into());
    println!(
        "serve load: {REQUESTS} requests, {CONCURRENCY} at a time, max_tokens {MAX_TOKENS}: \
         {answered} of {valid} valid answered, {refused} bad refused; \
         latency p50 {:.2} s, p99 {:.2} s, max {:.2} s; wall {wall:.1} s ({:.2} requests/s); \
         load average {}",
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        latencies.last().copied().unwrap_or(0.0),
        REQUESTS as f64 / wall,
        load.trim(),
    );
    server.stop();
}
