//! Training throughput on the CPU: tokens per second of a whole optimizer step
//! (forward, backward, clipping, AdamW) for a fetched model dequantised to f32
//! (SmolLM2-135M, or the one named by `BENCH_TRAIN_MODEL`, such as
//! qwen2.5-coder-0.5b-instruct), batch 4 x 128 tokens: full fine-tuning, the last 4
//! blocks only, and LoRA (rank 8, alpha 16, on q/k/v/o of every block), with the time
//! split into forward, backward and optimizer; and the process's peak memory.
//!
//! The batch's token ids (real gene prompts and RefSeq summaries) and the f32 model as a
//! Hugging Face folder are written under `target/` for the PyTorch peer
//! (benches/peers/torch_train.py, with peft for LoRA), which runs the same steps.
//!
//! Run: `cargo bench --bench train_throughput` (BENCH_MODE=full, last4 or lora for one
//! mode; by default full and last4 for SmolLM2, last4 and lora for other models).

mod common;
use bftembed::genes::GeneCatalog;
use bftembed::llm::{gguf_to_hf_folder, CausalLm, GgufPrecision};
use bftembed::models::{KnownModel, ModelCache, DEFAULT_GENERATOR_MODEL};
use bftembed::profile::{PromptTemplate, RefseqSummaries};
use bftembed::train::data::{gene_pairs, Batch, ExampleEncoder, TokenizedExample};
use bftembed::train::{
    clip_scale, grad_norm, objective_weights, weighted_loss, AdamW, AdamWSettings, Objective,
    TrainableDecoder,
};
use bftembed::train::{LoraConfig, LoraSettings};
use candle_core::{DType, Device, Var};
use common::peak_rss_mib;
use std::time::Instant;

const BATCH: usize = 4;
const SEQ: usize = 128;
const STEPS: usize = 3;

fn main() {
    bftembed::alloc_tuning::tune_allocator_for_training();
    bftembed::device::pin_cpu_thread_count();
    let cache = ModelCache::from_env().expect("cache");
    let name = std::env::var("BENCH_TRAIN_MODEL").unwrap_or(DEFAULT_GENERATOR_MODEL.into());
    let known = KnownModel::find(&name).expect("a model bftembed knows by name");
    let dir = cache.fetch(known, false).expect("fetch model");
    let target = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target");
    // The peer derives the same folder name from BENCH_TRAIN_MODEL.
    let folder = match name.as_str() {
        DEFAULT_GENERATOR_MODEL => "train-bench-smollm2-f32".to_string(),
        other => format!("train-bench-{other}-f32"),
    };
    let hf = target.join(folder);
    if !hf.join("model.safetensors").is_file() {
        gguf_to_hf_folder(&dir.weights, &hf).expect("export the f32 model for the peer");
    }

    // Real examples at least SEQ + 1 tokens long, cut to exactly that, so every engine
    // sees the same full batch.
    let lm = CausalLm::load(&dir, &Device::Cpu, GgufPrecision::F32).expect("load");
    let catalog = GeneCatalog::embedded().unwrap();
    let pairs = gene_pairs(
        &RefseqSummaries::embedded().unwrap(),
        &catalog,
        &PromptTemplate::default_gene().unwrap(),
    );
    let encoder = ExampleEncoder::new(&lm.tokenizer, &lm.chat, lm.end_of_turn().unwrap(), SEQ + 1);
    let examples: Vec<TokenizedExample> = pairs
        .iter()
        .map(|p| encoder.encode(p).unwrap())
        .filter(|e| e.tokens.len() == SEQ + 1)
        .take(BATCH)
        .collect();
    let ids: Vec<&Vec<u32>> = examples.iter().map(|e| &e.tokens).collect();
    let starts: Vec<usize> = examples.iter().map(|e| e.response_start).collect();
    std::fs::write(
        target.join("train-bench-batch.json"),
        serde_json::json!({ "tokens": ids, "response_start": starts }).to_string(),
    )
    .unwrap();
    let refs: Vec<&TokenizedExample> = examples.iter().collect();
    let batch = Batch::collate(&refs, &Device::Cpu).unwrap();
    let tokens = BATCH * SEQ;

    let mode = std::env::var("BENCH_MODE").ok();
    let defaults: &[&str] = match name.as_str() {
        DEFAULT_GENERATOR_MODEL => &["full", "last4"],
        _ => &["last4", "lora"],
    };
    let modes: Vec<(&str, Option<usize>)> = [("full", None), ("last4", Some(4)), ("lora", None)]
        .into_iter()
        .filter(|(name, _)| match mode.as_deref() {
            Some(m) => m == *name,
            None => defaults.contains(name),
        })
        .collect();
    let (config, _) = (lm.model.config().clone(), ());
    let mut lm = Some(lm);
    for (name, last) in modes {
        let weights = match lm.take() {
            Some(lm) => lm.model.into_parts().1,
            None => {
                CausalLm::load(&dir, &Device::Cpu, GgufPrecision::F32)
                    .expect("load")
                    .model
                    .into_parts()
                    .1
            }
        };
        let mut model =
            TrainableDecoder::from_weights(config.clone(), weights, &Device::Cpu, DType::F32)
                .unwrap();
        model.set_trained_blocks(last).unwrap();
        if name == "lora" {
            let lora = LoraSettings::from_config(&LoraConfig {
                rank: 8,
                alpha: 16.0,
                targets: ["q_proj", "k_proj", "v_proj", "o_proj"]
                    .map(String::from)
                    .to_vec(),
            })
            .unwrap();
            model.add_lora(lora, 17).unwrap();
        }
        let trained = model.trained_variables();
        let count: usize = trained.iter().map(|(_, v)| v.elem_count()).sum();
        let vars: Vec<Var> = trained.iter().map(|(_, v)| v.clone()).collect();
        let mut optimizer = AdamW::new(trained, AdamWSettings::default()).unwrap();
        let (mut fwd, mut bwd, mut opt) = (0.0, 0.0, 0.0);
        for step in 0..=STEPS {
            let t0 = Instant::now();
            let ce = model
                .token_cross_entropy(&batch.input, &batch.labels, &batch.mask)
                .unwrap();
            let weights = objective_weights(Objective::Sft, &ce, &batch.mask).unwrap();
            let loss = weighted_loss(&ce, &batch.mask, &weights).unwrap();
            let _ = loss.to_scalar::<f32>().unwrap();
            let t1 = Instant::now();
            let grads = loss.backward().unwrap();
            let t2 = Instant::now();
            let refs: Vec<&Var> = vars.iter().collect();
            let norm = grad_norm(&grads, &refs).unwrap();
            optimizer
                .step_scaled(&grads, 1e-5, clip_scale(norm, 1.0))
                .unwrap();
            let t3 = Instant::now();
            // Step 0 warms caches and the allocator.
            if step > 0 {
                fwd += (t1 - t0).as_secs_f64();
                bwd += (t2 - t1).as_secs_f64();
                opt += (t3 - t2).as_secs_f64();
            }
        }
        let per_step = (fwd + bwd + opt) / STEPS as f64;
        println!(
            "{name:>6}: {:.1} M trained parameters, {:.1} tokens/s ({:.2} s/step: forward {:.2}, backward {:.2}, clip+AdamW {:.2}), peak RSS {:.0} MiB",
            count as f64 / 1e6,
            tokens as f64 / per_step,
            per_step,
            fwd / STEPS as f64,
            bwd / STEPS as f64,
            opt / STEPS as f64,
            peak_rss_mib()
        );
    }
}
