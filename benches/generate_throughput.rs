//! Generation throughput of a fetched GGUF model on the CPU (SmolLM2-135M-Instruct, or
//! the model named by `BENCH_GENERATOR`, such as qwen2.5-coder-0.5b-instruct): prompt
//! tokens per second (prefill) and generated tokens per second (decode) at batch 1
//! and 8, for the matrices requantised to 8 bits (the default) and as stored, plus
//! whole gene profiles per second through the generator.
//!
//! Decode runs a fixed number of steps per sequence, feeding back the greedy token
//! whatever it is, so every engine does the same work. The prompts' token ids are
//! written to `target/generate-bench-prompts.json`, which the llama.cpp peer
//! (benches/peers/llamacpp_generate.py) reads, so both see identical inputs.
//!
//! Run: `cargo bench --bench generate_throughput`.

use bftembed::llm::{CausalLm, GgufPrecision, SequenceCache};
use bftembed::models::{KnownModel, ModelCache, DEFAULT_GENERATOR_MODEL};
use bftembed::profile::{GenerationSettings, Generator};
use candle_core::{Device, IndexOp};
use std::time::Instant;

const GENES: &[&str] = &["TP53", "BRCA1", "EGFR", "MYC", "CD4", "INS", "APOE", "CFTR"];
const SYSTEM: &str = "You are a biomedical expert. Answer concisely and factually.";
const DECODE_STEPS: usize = 64;

fn argmax(values: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best as u32
}

fn main() {
    bftembed::alloc_tuning::tune_allocator_for_tensors();
    bftembed::device::pin_cpu_thread_count();
    let cache = ModelCache::from_env().expect("cache");
    let name = std::env::var("BENCH_GENERATOR").unwrap_or(DEFAULT_GENERATOR_MODEL.to_string());
    let known = KnownModel::find(&name).expect("a model bftembed knows by name");
    let dir = cache.fetch(known, false).expect("fetch model");
    println!("model: {} ({})", dir.id, dir.weights.display());
    // BENCH_QUICK=1: the default precision only, no whole-profile runs (for profiling).
    let quick = std::env::var("BENCH_QUICK").is_ok();
    let precisions: &[GgufPrecision] = if quick {
        &[GgufPrecision::Q8]
    } else {
        &[GgufPrecision::Q8, GgufPrecision::AsStored]
    };
    for &precision in precisions {
        let t = Instant::now();
        let lm = CausalLm::load(&dir, &Device::Cpu, precision).expect("load");
        println!(
            "\n== matrices {precision:?}: load {:.2} s",
            t.elapsed().as_secs_f64()
        );
        let prompts: Vec<Vec<u32>> = GENES
            .iter()
            .map(|g| {
                let text = lm
                    .chat
                    .render(SYSTEM, &format!("tell me about gene {g}."))
                    .unwrap();
                lm.encode(&text).unwrap()
            })
            .collect();
        if precision == GgufPrecision::Q8 {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("target/generate-bench-prompts.json");
            let json = serde_json::json!({"prompts": prompts, "decode_steps": DECODE_STEPS});
            std::fs::write(&path, json.to_string()).expect("write prompts");
        }
        // Warm-up: thread pools, caches and first-touch allocations.
        let mut warm = lm.model.new_cache();
        lm.model.prefill(&prompts[0], &mut warm).unwrap();
        for _ in 0..8 {
            lm.model.step(&[1], &mut [&mut warm]).unwrap();
        }
        for batch in [1usize, 8] {
            let rows = &prompts[..batch];
            let mut caches: Vec<SequenceCache> = Vec::new();
            let mut next = Vec::new();
            let t = Instant::now();
            for ids in rows {
                let mut c = lm.model.new_cache();
                let logits = lm.model.prefill(ids, &mut c).unwrap();
                next.push(argmax(&logits.to_vec1::<f32>().unwrap()));
                caches.push(c);
            }
            let prefill = t.elapsed().as_secs_f64();
            let prompt_tokens: usize = rows.iter().map(|r| r.len()).sum();
            let t = Instant::now();
            for _ in 0..DECODE_STEPS {
                let mut refs: Vec<&mut SequenceCache> = caches.iter_mut().collect();
                let logits = lm.model.step(&next, &mut refs).unwrap();
                for (i, n) in next.iter_mut().enumerate() {
                    *n = argmax(&logits.i(i).unwrap().to_vec1::<f32>().unwrap());
                }
            }
            let decode = t.elapsed().as_secs_f64();
            println!(
                "batch {batch}: prompt {:.0} tok/s ({prompt_tokens} tokens), generated {:.1} tok/s ({} tokens)",
                prompt_tokens as f64 / prefill,
                (batch * DECODE_STEPS) as f64 / decode,
                batch * DECODE_STEPS
            );
        }
    }
    if quick {
        return;
    }
    // Whole answers, as `bftembed profile` writes them (stops at end of turn).
    let generator = Generator::load(&dir, &Device::Cpu).expect("load");
    let settings = GenerationSettings {
        max_new_tokens: 128,
        ..GenerationSettings::default()
    };
    let prompts: Vec<String> = GENES
        .iter()
        .map(|g| {
            generator
                .prompt(SYSTEM, &format!("tell me about gene {g}."))
                .unwrap()
        })
        .collect();
    println!();
    for batch in [1usize, 8] {
        let t = Instant::now();
        let mut tokens = 0;
        for chunk in prompts.chunks(batch) {
            tokens += generator
                .complete_batch(chunk, settings)
                .unwrap()
                .iter()
                .map(|c| c.new_tokens)
                .sum::<usize>();
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "profiles, batch {batch}: {:.2} genes/s, {:.1} generated tok/s ({} genes, {tokens} tokens, {secs:.1} s)",
            prompts.len() as f64 / secs,
            tokens as f64 / secs,
            prompts.len()
        );
    }
}
