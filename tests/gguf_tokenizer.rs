//! Tokenizers rebuilt from GGUF metadata give the same ids as Hugging Face transformers'
//! conversion of the same file, and decode back to the text, for each supported
//! pre-tokenizer: SmolLM2's (the fetched GGUF; tests/fixtures/smollm2_tokenizer_reference.json,
//! made by tests/fixtures/make_smollm2_tokenizer_reference.py), Qwen2's (the fetched
//! Qwen2.5-Coder GGUF) and Llama 3's (a small BPE learned for the purpose,
//! tests/fixtures/llama_bpe_tokenizer.gguf); both from
//! tests/fixtures/make_qwen_tokenizer_reference.py.

use bftembed::llm::tokenizer_from_gguf_file;
use bftembed::models::{KnownModel, ModelCache, DEFAULT_GENERATOR_MODEL};
use std::path::{Path, PathBuf};
use tokenizers::Tokenizer;

#[derive(serde::Deserialize)]
struct Case {
    text: String,
    ids: Vec<u32>,
}

#[derive(serde::Deserialize)]
struct Reference {
    how: String,
    cases: Vec<Case>,
}

#[test]
fn gguf_tokenizer_matches_transformers() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/smollm2_tokenizer_reference.json");
    let reference: Reference =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(reference.cases.len() >= 50, "{}", reference.how);
    let cache = ModelCache::from_env().unwrap();
    let known = KnownModel::find(DEFAULT_GENERATOR_MODEL).unwrap();
    let model = cache.fetch(known, false).unwrap();
    let tokenizer = tokenizer_from_gguf_file(&model.weights).unwrap();
    let mut mismatches = Vec::new();
    for case in &reference.cases {
        let enc = tokenizer.encode(case.text.as_str(), false).unwrap();
        if enc.get_ids() != case.ids.as_slice() {
            mismatches.push(format!(
                "{:?}: {:?} != {:?}",
                case.text,
                enc.get_ids(),
                case.ids
            ));
            continue;
        }
        let back = tokenizer.decode(enc.get_ids(), false).unwrap();
        assert_eq!(back, case.text, "decode(encode(x)) != x");
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    // The chat template's end-of-turn marker is one special token.
    let end = tokenizer.encode("<|im_end|>", false).unwrap();
    assert_eq!(end.get_ids(), &[2]);
}

#[test]
fn a_file_that_is_not_gguf_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = tmp.path().join("fake.gguf");
    std::fs::write(&fake, b"GGUF? no, just text").unwrap();
    let err = tokenizer_from_gguf_file(&fake).unwrap_err().to_string();
    assert!(err.contains("fake.gguf") && err.contains("GGUF"), "{err}");
}

#[derive(serde::Deserialize)]
struct FamilyReference {
    texts: Vec<String>,
    ids: std::collections::HashMap<String, Vec<Vec<u32>>>,
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Every text's ids as transformers gave them for `pre`, and decode(encode(x)) == x.
fn assert_matches_reference(tokenizer: &Tokenizer, pre: &str) {
    let reference: FamilyReference = serde_json::from_str(
        &std::fs::read_to_string(fixture("qwen_tokenizer_reference.json")).unwrap(),
    )
    .unwrap();
    let expected = &reference.ids[pre];
    assert!(reference.texts.len() >= 90 && expected.len() == reference.texts.len());
    let vocab = tokenizer.get_vocab_size(true) as u32;
    let mut mismatches = Vec::new();
    let mut skipped = 0;
    for (text, ids) in reference.texts.iter().zip(expected) {
        // transformers' GPT2Tokenizer adds "<|endoftext|>" past the vocabulary when a
        // file has no such token; that id says nothing about the file's splitting.
        if ids.iter().any(|&id| id >= vocab) {
            skipped += 1;
            continue;
        }
        let enc = tokenizer.encode(text.as_str(), false).unwrap();
        if enc.get_ids() != ids.as_slice() {
            mismatches.push(format!("{text:?}: {:?} != {ids:?}", enc.get_ids()));
            continue;
        }
        let back = tokenizer.decode(enc.get_ids(), false).unwrap();
        assert_eq!(&back, text, "decode(encode(x)) != x");
    }
    assert!(mismatches.is_empty(), "{pre}:\n{}", mismatches.join("\n"));
    assert!(skipped <= 1, "{skipped} cases with ids past the vocabulary");
}

#[test]
fn llama3_pre_tokenizer_matches_transformers() {
    let tokenizer = tokenizer_from_gguf_file(&fixture("llama_bpe_tokenizer.gguf")).unwrap();
    assert_matches_reference(&tokenizer, "llama-bpe");
    // Numbers split in threes before merging: what tells Llama 3 from Qwen and GPT-2.
    let pieces = tokenizer
        .encode("1234567", false)
        .unwrap()
        .get_tokens()
        .to_vec();
    assert_eq!(pieces.concat(), "1234567");
    assert!(pieces.iter().all(|p| p.len() <= 3), "{pieces:?}");
}

#[test]
#[ignore = "slow: fetches the 491 MB Qwen2.5-Coder-0.5B GGUF on first use"]
fn qwen2_pre_tokenizer_matches_transformers() {
    let cache = ModelCache::from_env().unwrap();
    let known = KnownModel::find("qwen2.5-coder-0.5b-instruct").unwrap();
    let model = cache.fetch(known, false).unwrap();
    let tokenizer = tokenizer_from_gguf_file(&model.weights).unwrap();
    assert_matches_reference(&tokenizer, "qwen2");
    let end = tokenizer.encode("<|im_end|>", false).unwrap();
    assert_eq!(end.get_ids(), &[151645]);
}
