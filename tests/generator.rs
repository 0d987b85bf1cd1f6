//! The fetched SmolLM2 GGUF writes text: greedy decoding is deterministic, the chat
//! template comes from the file, and a gene question gets an answer about biology.

use bftembed::models::{KnownModel, ModelCache, DEFAULT_GENERATOR_MODEL};
use bftembed::profile::{GenerationSettings, GgufGenerator};

fn generator() -> GgufGenerator {
    let cache = ModelCache::from_env().unwrap();
    let model = cache
        .fetch(KnownModel::find(DEFAULT_GENERATOR_MODEL).unwrap(), false)
        .unwrap();
    GgufGenerator::load(&model, &candle_core::Device::Cpu).unwrap()
}

#[test]
fn greedy_answers_are_deterministic_and_on_topic() {
    let mut g = generator();
    let system = "You are a biomedical expert. Answer concisely and factually.";
    let prompt = g.prompt(system, "tell me about gene TP53.").unwrap();
    assert!(
        prompt.starts_with("<|im_start|>system\nYou are a biomedical expert."),
        "{prompt}"
    );
    assert!(prompt.ends_with("<|im_start|>assistant\n"), "{prompt}");
    let settings = GenerationSettings {
        max_new_tokens: 40,
        ..GenerationSettings::default()
    };
    let first = g
        .answer(system, "tell me about gene TP53.", settings)
        .unwrap();
    let second = g
        .answer(system, "tell me about gene TP53.", settings)
        .unwrap();
    assert_eq!(first, second, "greedy decoding must repeat itself");
    let lower = first.to_lowercase();
    assert!(
        ["gene", "protein", "tumor", "tumour", "p53", "cell", "dna"]
            .iter()
            .any(|w| lower.contains(w)),
        "off-topic answer: {first}"
    );
    assert!(!first.contains("<|im_end|>"));
}

#[test]
fn model_profiles_resume_from_the_journal() {
    use bftembed::profile::{journal_path, profile_with_model, GeneToProfile, PromptTemplate};
    let mut g = generator();
    let template = PromptTemplate::default_gene().unwrap();
    let settings = GenerationSettings {
        max_new_tokens: 8,
        ..GenerationSettings::default()
    };
    let genes: Vec<GeneToProfile> = ["TP53", "MDM2", "INS"]
        .iter()
        .map(|s| GeneToProfile {
            symbol: s.to_string(),
            name: String::new(),
            entrez_id: None,
        })
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("p.parquet");
    let journal = journal_path(&out, "sha", &template, &settings);
    // As after a kill: MDM2 done, INS half-written when the process died.
    std::fs::write(
        &journal,
        "{\"symbol\":\"MDM2\",\"entrez_id\":null,\"text\":\"planted\"}\n{\"symbol\":\"INS\",\"ent",
    )
    .unwrap();
    let records = profile_with_model(&mut g, &template, settings, &genes, &journal, "m:t").unwrap();
    let symbols: Vec<&str> = records.iter().map(|r| r.symbol.as_str()).collect();
    assert_eq!(
        symbols,
        ["TP53", "MDM2", "INS"],
        "each gene exactly once, in order"
    );
    assert_eq!(records[1].text, "planted", "the journaled answer is reused");
    assert!(!records[2].text.is_empty());
    let lines = std::fs::read_to_string(&journal).unwrap();
    assert_eq!(lines.lines().count(), 3, "{lines}");
}

#[test]
fn bad_templates_are_refused_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let genes = tmp.path().join("g.txt");
    std::fs::write(&genes, "TP53\n").unwrap();
    let template = tmp.path().join("t.toml");
    std::fs::write(&template, "id = \"t\"\nuser = \"tell me about {gene}\"\n").unwrap();
    let out = tmp.path().join("p.parquet");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_bftembed"))
        .args(["profile", "--source", "model", "--genes"])
        .arg(&genes)
        .arg("--template")
        .arg(&template)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("t.toml") && err.contains("{gene}"), "{err}");
    assert!(!out.exists());
}
