//! Embedding throughput: 2,000 RefSeq gene summaries (the first 2,000 genes of the
//! shipped table, as the profile stage writes them) through a sentence encoder on the
//! CPU, at several batch sizes. Prints texts per second and the mean token count.
//!
//! Run: `cargo bench --bench embed_throughput` (set RAYON_NUM_THREADS to pin threads;
//! BENCH_MODEL names the encoder, all-minilm-l6-v2 by default, all-mpnet-base-v2 for the
//! default store's; BENCH_PRECISION=bf16 runs the dense layers on AMX tiles, and then
//! also prints the cosine of each bf16 vector to its f32 vector).
//! The peer figure comes from benches/peers/st_embed.py on the same texts.

use bftembed::embed::{EncoderPrecision, EncoderSettings, SentenceEmbedder};
use bftembed::genes::GeneCatalog;
use bftembed::models::{KnownModel, ModelCache, SMALL_EMBEDDING_MODEL};
use bftembed::profile::RefseqSummaries;
use std::time::Instant;

fn main() {
    bftembed::alloc_tuning::tune_allocator_for_tensors();
    bftembed::device::pin_cpu_thread_count();
    let n: usize = std::env::var("BENCH_TEXTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let cache = ModelCache::from_env().expect("cache");
    let name = std::env::var("BENCH_MODEL").unwrap_or_else(|_| SMALL_EMBEDDING_MODEL.into());
    let known = KnownModel::find(&name).expect("BENCH_MODEL is a known model name");
    let model = cache.fetch(known, false).expect("fetch model");
    let catalog = GeneCatalog::embedded().expect("catalog");
    let records = RefseqSummaries::embedded()
        .expect("summaries")
        .all_profiles(&catalog)
        .records;
    let texts: Vec<&str> = records.iter().take(n).map(|r| r.text.as_str()).collect();
    if std::env::args().any(|a| a == "--dump-texts") {
        for t in &texts {
            println!("{t}");
        }
        return;
    }
    let embedder = SentenceEmbedder::load(&model, &candle_core::Device::Cpu).expect("load");
    let tokens: usize = embedder
        .tokenize(&texts)
        .expect("tokenize")
        .iter()
        .map(|e| e.len())
        .sum();
    println!(
        "texts: {}, mean word pieces: {:.1}, threads: {}",
        texts.len(),
        tokens as f64 / texts.len() as f64,
        rayon::current_num_threads()
    );
    let batches: Vec<usize> = std::env::var("BENCH_BATCHES")
        .ok()
        .map(|s| s.split(',').filter_map(|b| b.parse().ok()).collect())
        .unwrap_or_else(|| vec![16, 32, 64]);
    let precision = std::env::var("BENCH_PRECISION")
        .map(|p| EncoderPrecision::parse(&p).expect("BENCH_PRECISION is f32 or bf16"))
        .unwrap_or_default();
    let reference = (precision != EncoderPrecision::F32)
        .then(|| embedder.embed(&texts).expect("f32 reference vectors"));
    println!("precision: {precision}");
    for batch_size in batches {
        let settings = EncoderSettings {
            batch_size,
            ..embedder.settings()
        };
        let e = SentenceEmbedder::load_with(&model, &candle_core::Device::Cpu, precision)
            .expect("load")
            .with_settings(settings)
            .expect("settings");
        // Warm-up on a few texts so that first-touch costs are not timed.
        e.embed(&texts[..texts.len().min(64)]).expect("warm-up");
        let start = Instant::now();
        let out = e.embed(&texts).expect("embed");
        let secs = start.elapsed().as_secs_f64();
        assert_eq!(out.len(), texts.len());
        println!(
            "batch {batch_size:>3}: {:.1} texts/s ({:.2} s for {} texts)",
            texts.len() as f64 / secs,
            secs,
            texts.len()
        );
        if let Some(reference) = &reference {
            let cosines: Vec<f32> = (0..texts.len())
                .map(|i| {
                    out.row(i)
                        .iter()
                        .zip(reference.row(i))
                        .map(|(a, b)| a * b)
                        .sum()
                })
                .collect();
            let min = cosines.iter().copied().fold(f32::INFINITY, f32::min);
            let mean = cosines.iter().sum::<f32>() / cosines.len() as f32;
            println!("  cosine to f32: min {min:.6}, mean {mean:.6}");
        }
    }
}
