//! Helpers shared by the integration tests: the real models (fetched once into the
//! user's cache, as `bftembed models fetch` does) and the full RefSeq gene store.
#![allow(dead_code)]

use bftembed::embed::SentenceEmbedder;
use bftembed::genes::GeneCatalog;
use bftembed::models::{KnownModel, ModelCache, ModelDir, SMALL_EMBEDDING_MODEL};
use bftembed::profile::RefseqSummaries;
use bftembed::store::{embed_into_store, GeneStore, IndexParams};
use std::path::PathBuf;
use std::sync::Mutex;

static STORE_LOCK: Mutex<()> = Mutex::new(());

/// The encoder the tests use (all-MiniLM-L6-v2, the small one: the figures the tests pin
/// were measured with it), fetched on first use. CLI calls name it with `--model`.
pub fn embedding_model() -> ModelDir {
    let cache = ModelCache::from_env().expect("cache folder");
    let known = KnownModel::find(SMALL_EMBEDDING_MODEL).expect("known model");
    cache
        .fetch(known, false)
        .expect("fetch the embedding model")
}

/// A model bftembed knows by name, fetched on first use.
pub fn known_model(name: &str) -> ModelDir {
    let cache = ModelCache::from_env().expect("cache folder");
    let known = KnownModel::find(name).expect("known model");
    cache.fetch(known, false).expect("fetch the model")
}

/// The tests' sentence encoder (all-MiniLM-L6-v2) on the CPU.
pub fn embedder() -> SentenceEmbedder {
    SentenceEmbedder::load(&embedding_model(), &candle_core::Device::Cpu).expect("load encoder")
}

/// The full gene store built from the shipped RefSeq summaries, at the same place
/// `bftembed quickstart` builds it, so it is built once per machine.
pub fn full_gene_store() -> GeneStore {
    let _guard = STORE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let dir = bftembed::models::bftembed_home()
        .expect("home")
        .join("stores")
        .join("refseq-all-minilm-l6-v2");
    if let Ok(store) = GeneStore::open(&dir) {
        return store;
    }
    let catalog = GeneCatalog::embedded().unwrap();
    let build = RefseqSummaries::embedded().unwrap().all_profiles(&catalog);
    embed_into_store(&embedder(), &build.records, &dir, IndexParams::default()).unwrap()
}

/// Largest absolute difference between two tensors of one shape.
pub fn max_abs_diff(a: &candle_core::Tensor, b: &candle_core::Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// Path of a file under tests/fixtures.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The generator model's folder (SmolLM2 GGUF), fetched on first use.
pub fn generator_model() -> ModelDir {
    let cache = ModelCache::from_env().expect("cache folder");
    let known = KnownModel::find(bftembed::models::DEFAULT_GENERATOR_MODEL).expect("known model");
    cache
        .fetch(known, false)
        .expect("fetch the generator model")
}

/// A fresh generator (GGUF requantised to Q8_0, the default) on the CPU.
pub fn generator() -> bftembed::profile::Generator {
    bftembed::profile::Generator::load(&generator_model(), &candle_core::Device::Cpu)
        .expect("load generator")
}

/// Runs the bftembed binary with `args` and waits for it.
pub fn bftembed(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_bftembed"))
        .args(args)
        .output()
        .expect("run bftembed")
}

/// Trains `config` through the CLI into `dir/run`, then profiles TP53 and BRCA1 with
/// its checkpoint (at most 24 new tokens each); gives the run folder and the profiles,
/// each checked to be a text of at least five words.
pub fn train_then_profile(
    config: &std::path::Path,
    dir: &std::path::Path,
) -> (PathBuf, Vec<bftembed::profile::ProfileRecord>) {
    let run = dir.join("run");
    let bin = || std::process::Command::new(env!("CARGO_BIN_EXE_bftembed"));
    let status = bin()
        .args(["train", "--config"])
        .arg(config)
        .arg("--out")
        .arg(&run)
        .status()
        .expect("run bftembed train");
    assert!(status.success(), "{} trains", config.display());
    let genes = dir.join("genes.txt");
    std::fs::write(&genes, "TP53\nBRCA1\n").unwrap();
    let table = dir.join("profiles.parquet");
    let status = bin()
        .args(["profile", "--source", "model", "--max-new-tokens", "24"])
        .arg("--genes")
        .arg(&genes)
        .arg("--model")
        .arg(run.join("checkpoint"))
        .arg("--out")
        .arg(&table)
        .status()
        .expect("run bftembed profile");
    assert!(status.success(), "profile loads the checkpoint");
    let records = bftembed::profile::read_profiles(&table).unwrap();
    assert_eq!(records.len(), 2);
    assert!(
        records
            .iter()
            .all(|r| r.text.split_whitespace().count() >= 5),
        "{records:?}"
    );
    (run, records)
}

/// A finished run's stderr as text.
pub fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}
