//! Each encoder family equals sentence-transformers: tiny random-weight BERT (CLS
//! pooling), BERT (max pooling, a document prompt), RoBERTa and MPNet folders written
//! by sentence-transformers 6.3 (tests/fixtures/make_tiny_encoders.py), and the real
//! all-mpnet-base-v2 (tests/fixtures/make_mpnet_reference.py), on the same texts in one
//! padded batch: token ids identical, cosine >= 0.9999.

mod common;

use bftembed::embed::{EncoderFamily, Pooling, SentenceEmbedder};
use bftembed::models::ModelDir;
use candle_core::Device;
use serde_json::Value;
use std::path::PathBuf;

fn tiny(name: &str) -> PathBuf {
    common::fixture("tiny_encoders").join(name)
}

fn cosine(a: &[f32], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * y).sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    dot / (na * nb)
}

fn floats(v: &Value) -> Vec<Vec<f64>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        })
        .collect()
}

/// Embeds the reference texts and checks ids and vectors against sentence-transformers.
fn check_against_reference(encoder: &SentenceEmbedder, texts: &[String], vectors: &[Vec<f64>]) {
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let ours = encoder.embed(&refs).unwrap();
    for (i, expected) in vectors.iter().enumerate() {
        let c = cosine(ours.row(i), expected);
        assert!(c >= 0.9999, "text {i} {:?}: cosine {c}", texts[i]);
    }
}

#[test]
fn tiny_families_equal_sentence_transformers() {
    let reference: Value =
        serde_json::from_str(&std::fs::read_to_string(tiny("reference.json")).unwrap()).unwrap();
    let expected = [
        ("bert_cls", EncoderFamily::Bert, Pooling::Cls, ""),
        (
            "bert_max_prefix",
            EncoderFamily::Bert,
            Pooling::Max,
            "passage: ",
        ),
        ("roberta_mean", EncoderFamily::Roberta, Pooling::Mean, ""),
        ("mpnet_tiny", EncoderFamily::Mpnet, Pooling::Mean, ""),
    ];
    for (name, family, pooling, prefix) in expected {
        let case = &reference[name];
        let dir = ModelDir::from_folder(&tiny(name)).unwrap();
        let encoder = SentenceEmbedder::load(&dir, &Device::Cpu).unwrap();
        assert_eq!(encoder.family(), family, "{name}");
        assert_eq!(encoder.pooling(), pooling, "{name}");
        assert_eq!(encoder.document_prefix(), prefix, "{name}");
        assert_eq!(encoder.settings().max_tokens, 48, "{name}: max_seq_length");
        let texts: Vec<String> = case["texts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let ids: Vec<Vec<u32>> = encoder
            .tokenize(&refs)
            .unwrap()
            .iter()
            .map(|e| e.get_ids().to_vec())
            .collect();
        let want: Vec<Vec<u32>> = case["token_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r.as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_u64().unwrap() as u32)
                    .collect()
            })
            .collect();
        assert_eq!(ids, want, "{name}: token ids");
        check_against_reference(&encoder, &texts, &floats(&case["embeddings"]));
    }
}

#[test]
fn a_query_gets_the_query_prompt_and_a_document_the_document_prompt() {
    let dir = ModelDir::from_folder(&tiny("bert_max_prefix")).unwrap();
    let encoder = SentenceEmbedder::load(&dir, &Device::Cpu).unwrap();
    assert_eq!(encoder.query_prefix(), "query: ");
    let as_query = encoder.embed_queries(&["tp53 gene"]).unwrap();
    let by_hand = encoder.embed(&["tp53 gene"]).unwrap();
    // The document path adds "passage: ", the query path "query: ": different inputs.
    let same: f64 = as_query
        .row(0)
        .iter()
        .zip(by_hand.row(0))
        .map(|(a, b)| f64::from(a * b))
        .sum();
    assert!(same < 0.99999, "{same}");
}

#[test]
fn all_mpnet_base_v2_equals_sentence_transformers() {
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(common::fixture("st_reference_mpnet.json")).unwrap(),
    )
    .unwrap();
    let dir = common::known_model("all-mpnet-base-v2");
    assert_eq!(
        dir.weights_sha256,
        reference["model_safetensors_sha256"].as_str().unwrap()
    );
    let encoder = SentenceEmbedder::load(&dir, &Device::Cpu).unwrap();
    assert_eq!(encoder.family(), EncoderFamily::Mpnet);
    assert_eq!(encoder.dim(), 768);
    assert_eq!(encoder.settings().max_tokens, 384);
    let texts: Vec<String> = reference["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    check_against_reference(&encoder, &texts, &floats(&reference["vectors"]));
}
