//! Caches of generated text and of stores are keyed by explicit, stable parts that
//! include bftembed's version and the generation kernel: an upgrade or another kernel
//! never reuses what older code wrote, and the same inputs always give the same key
//! (pinned below, so a change of Debug formatting or of the scheme cannot slip by).
//! The pinned values were computed independently: sha256 over the parts, each preceded
//! by its byte length as a little-endian u64, floats as the hex of their bits (Python's
//! hashlib and struct give the same three values).

use bftembed::llm::{generation_kernel, GgufPrecision};
use bftembed::profile::{
    hash_parts, journal_parts, AnswerBackend, CodeIdentity, GenerationSettings, ProfileJob,
    PromptTemplate, Question, Subject, SubjectKind,
};
use bftembed::study::{answers_fingerprint, store_fingerprint};
use candle_core::Device;
use std::collections::BTreeMap;
use std::path::Path;

fn code(version: &str, kernel: &str) -> CodeIdentity {
    CodeIdentity {
        version: version.to_string(),
        kernel: kernel.to_string(),
    }
}

fn template() -> PromptTemplate {
    PromptTemplate::parse(
        "id = \"t1\"\nsystem = \"You are terse.\"\nuser = \"Describe {symbol}.\"\n",
        Path::new("t.toml"),
        &["symbol", "name"],
    )
    .unwrap()
}

fn settings() -> GenerationSettings {
    GenerationSettings {
        max_new_tokens: 32,
        temperature: 0.7,
        top_p: Some(0.9),
        seed: 42,
    }
}

fn subjects() -> Vec<Subject> {
    ["TP53", "BRCA1"]
        .iter()
        .map(|s| Subject {
            key: s.to_string(),
            entrez_id: None,
            fields: BTreeMap::from([
                ("symbol".to_string(), s.to_string()),
                ("name".to_string(), String::new()),
            ]),
        })
        .collect()
}

/// The hash a journal's file name is cut from, in full.
fn journal(code: &CodeIdentity) -> String {
    journal_with(code, &settings())
}

fn journal_with(code: &CodeIdentity, settings: &GenerationSettings) -> String {
    let parts = journal_parts(
        code,
        "model-x",
        "sha-x",
        SubjectKind::Gene,
        &template(),
        settings,
    );
    bftembed::fsutil::hex(&sha2::Digest::finalize(hash_parts(&parts)))
}

fn answers(code: &CodeIdentity) -> String {
    answers_fingerprint(
        code,
        "sha-x",
        &subjects(),
        SubjectKind::Gene,
        &template(),
        &settings(),
    )
}

#[test]
fn the_journal_key_is_pinned_and_moves_with_version_and_kernel() {
    let base = code("0.0.0-test", "generic-cpu");
    assert_eq!(journal(&base), journal(&base.clone()));
    assert_eq!(
        journal(&base),
        "236571bf6af0028744d882638c3d074bd1046602aa7a2f896b2582e1826944da"
    );
    assert_ne!(journal(&base), journal(&code("0.0.1-test", "generic-cpu")));
    assert_ne!(journal(&base), journal(&code("0.0.0-test", "int8-vnni")));
    let mut other = settings();
    other.temperature = 0.70000001;
    assert_ne!(journal(&base), journal_with(&base, &other));
}

#[test]
fn the_study_answers_stamp_is_pinned_and_moves_with_version_and_kernel() {
    let base = code("0.0.0-test", "generic-cpu");
    assert_eq!(answers(&base), answers(&base.clone()));
    assert_eq!(
        answers(&base),
        "c87b8d1f3a2958cf4788bd4cc9f0d2c1e098c08af9752857571994c0327cee50"
    );
    assert_ne!(answers(&base), answers(&code("0.0.1-test", "generic-cpu")));
    assert_ne!(answers(&base), answers(&code("0.0.0-test", "int8-vnni")));
    // A subject's template field is part of the stamp.
    let mut changed = subjects();
    changed[1]
        .fields
        .insert("name".into(), "BRCA1 DNA repair associated".into());
    assert_ne!(
        answers(&base),
        answers_fingerprint(
            &base,
            "sha-x",
            &changed,
            SubjectKind::Gene,
            &template(),
            &settings()
        )
    );
}

#[test]
fn the_study_store_stamp_is_pinned_and_moves_with_the_version() {
    let stamp = |version: &str, max_tokens: usize| {
        store_fingerprint(
            version,
            "table-sha",
            "all-minilm-l6-v2",
            "enc-sha",
            max_tokens,
        )
    };
    assert_eq!(stamp("0.0.0-test", 256), stamp("0.0.0-test", 256));
    assert_eq!(
        stamp("0.0.0-test", 256),
        "4c529e3e13367ffa2a71972c0b717506c4511117fc38561f62c894b6b5871284"
    );
    assert_ne!(stamp("0.0.0-test", 256), stamp("0.0.1-test", 256));
    assert_ne!(stamp("0.0.0-test", 256), stamp("0.0.0-test", 128));
}

#[test]
fn the_kernel_name_says_which_path_runs() {
    let q8 = generation_kernel(&Device::Cpu, GgufPrecision::Q8);
    assert!(
        ["int8-vnni", "int8-avx2", "generic-cpu"].contains(&q8),
        "{q8}"
    );
    // Only the Q8 precision goes to the int8 kernel.
    assert_eq!(
        generation_kernel(&Device::Cpu, GgufPrecision::F32),
        "generic-cpu"
    );
    assert_eq!(
        generation_kernel(&Device::Cpu, GgufPrecision::AsStored),
        "generic-cpu"
    );
    let current = CodeIdentity::current(q8);
    assert_eq!(current.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(current.kernel, q8);
}

/// A backend that only names itself: journal paths never call it.
struct NamedBackend {
    kernel: &'static str,
}

impl AnswerBackend for NamedBackend {
    fn model_id(&self) -> String {
        "model-x".into()
    }
    fn model_fingerprint(&self) -> String {
        "sha-x".into()
    }
    fn kernel(&self) -> String {
        self.kernel.into()
    }
    fn backend_name(&self) -> &'static str {
        "test"
    }
    fn batch_size(&self) -> usize {
        1
    }
    fn answer_batch(
        &self,
        _: &[Question],
        _: &GenerationSettings,
    ) -> bftembed::error::Result<Vec<String>> {
        Ok(Vec::new())
    }
}

#[test]
fn a_journal_written_by_another_kernel_is_not_reused() {
    let template = template();
    let job = |backend: &'static NamedBackend| ProfileJob {
        backend,
        template: &template,
        settings: settings(),
        kind: SubjectKind::Gene,
    };
    static VNNI: NamedBackend = NamedBackend {
        kernel: "int8-vnni",
    };
    static GENERIC: NamedBackend = NamedBackend {
        kernel: "generic-cpu",
    };
    let out = Path::new("/tmp/profiles.parquet");
    let a = job(&VNNI).journal_path(out);
    let b = job(&GENERIC).journal_path(out);
    assert_ne!(a, b);
    assert_eq!(a, job(&VNNI).journal_path(out), "stable for the same job");
    // The file name carries the first 16 hex digits of the journal key.
    let key = journal(&CodeIdentity::current("int8-vnni"));
    assert!(
        a.to_string_lossy()
            .ends_with(&format!("{}.jsonl", &key[..16])),
        "{} vs {key}",
        a.display()
    );
    let metadata = job(&VNNI).metadata();
    assert!(
        metadata[0].1.contains("\"kernel\":\"int8-vnni\""),
        "{:?}",
        metadata
    );
}
