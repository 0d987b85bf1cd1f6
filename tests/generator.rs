//! The llama decoder and the generator on the fetched SmolLM2 GGUF: logits agree with
//! candle-transformers' own quantized llama, greedy output is identical across runs and
//! batch sizes, and the Hugging Face export loads back to the same model.

mod common;

use bftembed::llm::{gguf_to_hf_folder, CausalLm, GgufPrecision};
use bftembed::models::ModelDir;
use bftembed::profile::{FinishReason, GenerationSettings, Generator};
use candle_core::{Device, Tensor};

const SYSTEM: &str = "You are a biomedical expert. Answer concisely and factually.";

fn scale(a: &Tensor) -> f32 {
    a.abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn cosine(a: &Tensor, b: &Tensor) -> f32 {
    let dot = (a * b)
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    let norm = |t: &Tensor| {
        t.sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
            .sqrt()
    };
    dot / (norm(a) * norm(b))
}

#[test]
fn logits_match_candle_transformers_quantized_llama() {
    use candle_core::quantized::gguf_file;
    use candle_transformers::models::quantized_llama::ModelWeights;
    let dir = common::generator_model();
    let lm = CausalLm::load(&dir, &Device::Cpu, GgufPrecision::AsStored).unwrap();
    let prompt = lm.chat.render(SYSTEM, "tell me about gene BRCA1.").unwrap();
    let ids = lm.encode(&prompt).unwrap();
    let mut cache = lm.model.new_cache();
    let ours = lm.model.prefill(&ids, &mut cache).unwrap();
    let next = lm
        .model
        .step(&[42], &mut [&mut cache])
        .unwrap()
        .squeeze(0)
        .unwrap();

    let mut file = std::fs::File::open(&dir.weights).unwrap();
    let content = gguf_file::Content::read(&mut file).unwrap();
    let mut reference = ModelWeights::from_gguf(content, &mut file, &Device::Cpu).unwrap();
    let input = Tensor::new(ids.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let theirs = reference.forward(&input, 0).unwrap().squeeze(0).unwrap();
    let input = Tensor::new(&[42u32], &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let theirs_next = reference
        .forward(&input, ids.len())
        .unwrap()
        .squeeze(0)
        .unwrap();

    for (a, b) in [(&ours, &theirs), (&next, &theirs_next)] {
        let diff = common::max_abs_diff(a, b);
        assert!(
            diff <= 1e-3 * scale(b),
            "max |diff| {diff} against a logit scale of {}",
            scale(b)
        );
    }
}

#[test]
fn greedy_output_is_identical_across_runs_and_batch_sizes() {
    let g = common::generator();
    let genes = ["TP53", "BRCA1", "EGFR", "MYC", "CD4", "INS", "APOE", "CFTR"];
    let prompts: Vec<String> = genes
        .iter()
        .map(|s| {
            g.prompt(SYSTEM, &format!("tell me about gene {s}."))
                .unwrap()
        })
        .collect();
    assert!(prompts[0].starts_with("<|im_start|>system\nYou are a biomedical expert."));
    assert!(prompts[0].ends_with("<|im_start|>assistant\n"));
    let settings = GenerationSettings {
        max_new_tokens: 48,
        ..GenerationSettings::default()
    };
    let batched = g.complete_batch(&prompts, settings).unwrap();
    let again = g.complete_batch(&prompts, settings).unwrap();
    assert_eq!(batched, again, "greedy decoding must repeat itself");
    for (i, prompt) in prompts.iter().enumerate() {
        let single = g
            .complete_batch(std::slice::from_ref(prompt), settings)
            .unwrap();
        assert_eq!(
            single[0], batched[i],
            "batch of 1 vs batch of 8 for {}",
            genes[i]
        );
    }
    for (c, gene) in batched.iter().zip(genes) {
        assert!(c.new_tokens > 0 && c.new_tokens <= 48, "{gene}: {c:?}");
        assert!(!c.text.contains("<|im_end|>"), "{gene}: {}", c.text);
        if c.finish == FinishReason::Length {
            assert_eq!(c.new_tokens, 48);
        }
    }
    let lower = batched[0].text.to_lowercase();
    assert!(
        ["gene", "protein", "tumor", "p53", "cell"]
            .iter()
            .any(|w| lower.contains(w)),
        "off-topic answer: {}",
        batched[0].text
    );
}

#[test]
fn sampling_is_seeded_per_prompt() {
    let g = common::generator();
    let prompts: Vec<String> = ["TP53", "KRAS", "GATA1"]
        .iter()
        .map(|s| {
            g.prompt(SYSTEM, &format!("tell me about gene {s}."))
                .unwrap()
        })
        .collect();
    let settings = GenerationSettings {
        max_new_tokens: 24,
        temperature: 0.9,
        top_p: Some(0.95),
        seed: 7,
    };
    let batched = g.complete_batch(&prompts, settings).unwrap();
    let alone = g.complete_batch(&prompts[1..2], settings).unwrap();
    assert_eq!(
        batched[1], alone[0],
        "a prompt's sample must not depend on its batch"
    );
    let other_seed = g
        .complete_batch(
            &prompts,
            GenerationSettings {
                seed: 8,
                ..settings
            },
        )
        .unwrap();
    assert_ne!(
        batched, other_seed,
        "a different seed should sample differently"
    );
}

#[test]
fn hugging_face_export_loads_back_to_the_same_model() {
    let dir = common::generator_model();
    let tmp = tempfile::tempdir().unwrap();
    let hf = tmp.path().join("smollm2-hf");
    gguf_to_hf_folder(&dir.weights, &hf).unwrap();
    for file in [
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "model.safetensors",
    ] {
        assert!(hf.join(file).is_file(), "{file} missing");
    }
    let from_gguf = CausalLm::load(&dir, &Device::Cpu, GgufPrecision::F32).unwrap();
    let hf_dir = ModelDir::from_folder(&hf).unwrap();
    let from_hf = CausalLm::load(&hf_dir, &Device::Cpu, GgufPrecision::F32).unwrap();
    assert_eq!(from_hf.stop_ids, from_gguf.stop_ids);
    let prompt = from_gguf
        .chat
        .render(SYSTEM, "tell me about gene TP53.")
        .unwrap();
    assert_eq!(
        from_hf
            .chat
            .render(SYSTEM, "tell me about gene TP53.")
            .unwrap(),
        prompt
    );
    let ids = from_gguf.encode(&prompt).unwrap();
    assert_eq!(from_hf.encode(&prompt).unwrap(), ids);
    let mut c1 = from_gguf.model.new_cache();
    let mut c2 = from_hf.model.new_cache();
    let a = from_gguf.model.prefill(&ids, &mut c1).unwrap();
    let b = from_hf.model.prefill(&ids, &mut c2).unwrap();
    let diff = common::max_abs_diff(&a, &b);
    assert!(
        diff <= 1e-3 * scale(&a),
        "GGUF vs exported HF logits differ by {diff}"
    );
    // bf16 checkpoints (what most Hugging Face models ship) load as well.
    let bf16 = tmp.path().join("smollm2-bf16");
    std::fs::create_dir(&bf16).unwrap();
    for file in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(hf.join(file), bf16.join(file)).unwrap();
    }
    let tensors =
        candle_core::safetensors::load(hf.join("model.safetensors"), &Device::Cpu).unwrap();
    let halved: std::collections::HashMap<String, Tensor> = tensors
        .into_iter()
        .map(|(k, v)| (k, v.to_dtype(candle_core::DType::BF16).unwrap()))
        .collect();
    candle_core::safetensors::save(&halved, bf16.join("model.safetensors")).unwrap();
    let from_bf16 = CausalLm::load(
        &ModelDir::from_folder(&bf16).unwrap(),
        &Device::Cpu,
        GgufPrecision::F32,
    )
    .unwrap();
    let c = from_bf16
        .model
        .prefill(&ids, &mut from_bf16.model.new_cache())
        .unwrap();
    assert!(
        cosine(&a, &c) > 0.995,
        "bf16 logits cosine {}",
        cosine(&a, &c)
    );
    // And the exported folder generates through the same command path.
    let g = Generator::from_lm(from_hf);
    let text = g
        .answer(
            SYSTEM,
            "tell me about gene TP53.",
            GenerationSettings {
                max_new_tokens: 12,
                ..GenerationSettings::default()
            },
        )
        .unwrap();
    assert!(!text.is_empty());
}

#[test]
fn overlong_prompts_are_refused_with_the_context_size() {
    let g = common::generator();
    let long = "gene ".repeat(9000);
    let err = g
        .complete_batch(&[long], GenerationSettings::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("context"), "{err}");
}

#[test]
fn int8_matrices_stay_close_to_the_float_model() {
    let dir = common::generator_model();
    let exact = CausalLm::load(&dir, &Device::Cpu, GgufPrecision::F32).unwrap();
    let int8 = CausalLm::load(&dir, &Device::Cpu, GgufPrecision::Q8).unwrap();
    let prompt = exact
        .chat
        .render(SYSTEM, "tell me about gene MYC.")
        .unwrap();
    let ids = exact.encode(&prompt).unwrap();
    let a = exact
        .model
        .prefill(&ids, &mut exact.model.new_cache())
        .unwrap();
    let b = int8
        .model
        .prefill(&ids, &mut int8.model.new_cache())
        .unwrap();
    let cosine = cosine(&a, &b);
    assert!(cosine > 0.999, "cosine of logits {cosine}");
    let top = |t: &Tensor| t.argmax(0).unwrap().to_scalar::<u32>().unwrap();
    assert_eq!(top(&a), top(&b), "the greedy token must not change");
}
