//! The SmolLM2 tokenizer rebuilt from the fetched GGUF gives the same ids as Hugging
//! Face transformers' conversion of that file (tests/fixtures/smollm2_tokenizer_reference.json,
//! made by tests/fixtures/make_smollm2_tokenizer_reference.py), and decodes back to the text.

use bftembed::llm::tokenizer_from_gguf_file;
use bftembed::models::{KnownModel, ModelCache, DEFAULT_GENERATOR_MODEL};

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
