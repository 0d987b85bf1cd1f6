//! Models bftembed cannot run exactly are refused, early and with what is supported,
//! instead of giving wrong vectors or wrong text without a word: encoders other than
//! BERT, RoBERTa, XLM-RoBERTa and MPNet, pooling other than mean, CLS, max and last
//! token, GGUF tokenizers other than SmolLM's, other
//! architectures, rope scaling, wider heads, biases, experts. Each case is a tiny model
//! written here that loads when the one setting under test is left as supported.

use bftembed::embed::SentenceEmbedder;
use bftembed::llm::{
    tokenizer_from_gguf_file, write_hf_folder, CausalLm, ChatTemplate, DecoderConfig,
    DecoderFamily, GgufPrecision, HfModelParts, RopeLayout, RopeScaling,
};
use bftembed::models::ModelDir;
use bftembed::train::TrainableDecoder;
use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use serde_json::json;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

// ---------------------------------------------------------------- encoders

const BERT_VOCAB: &[&str] = &["[PAD]", "[UNK]", "[CLS]", "[SEP]", "gene", "tp53", "cell"];
const BERT_HIDDEN: usize = 8;

fn write_json(path: &Path, value: &serde_json::Value) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(path, serde_json::to_string_pretty(value).unwrap()).unwrap();
}

fn bert_config() -> serde_json::Value {
    json!({
        "model_type": "bert",
        "vocab_size": BERT_VOCAB.len(),
        "hidden_size": BERT_HIDDEN,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 16,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "max_position_embeddings": 16,
        "type_vocab_size": 2,
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-12,
        "pad_token_id": 0,
        "position_embedding_type": "absolute"
    })
}

fn mean_pooling() -> serde_json::Value {
    json!({
        "word_embedding_dimension": BERT_HIDDEN,
        "pooling_mode_cls_token": false,
        "pooling_mode_mean_tokens": true,
        "pooling_mode_max_tokens": false,
        "pooling_mode_mean_sqrt_len_tokens": false
    })
}

fn st_modules(extra: Option<(&str, &str)>) -> serde_json::Value {
    let module = |path: &str, kind: &str| {
        let kind = format!("sentence_transformers.models.{kind}");
        json!({"path": path, "type": kind})
    };
    let mut modules = vec![module("", "Transformer"), module("1_Pooling", "Pooling")];
    if let Some((path, kind)) = extra {
        modules.push(module(path, kind));
    }
    modules.push(module("3_Normalize", "Normalize"));
    serde_json::Value::Array(modules)
}

/// A tiny BERT sentence-transformers folder (random weights, a word-piece tokenizer,
/// mean pooling) that bftembed loads.
fn tiny_bert(dir: &Path) -> PathBuf {
    let folder = dir.join("tiny-bert");
    std::fs::create_dir_all(&folder).unwrap();
    write_json(&folder.join("config.json"), &bert_config());
    let vocab: serde_json::Map<String, serde_json::Value> = BERT_VOCAB
        .iter()
        .enumerate()
        .map(|(i, t)| (t.to_string(), json!(i)))
        .collect();
    write_json(
        &folder.join("tokenizer.json"),
        &json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": [],
            "normalizer": {"type": "BertNormalizer", "clean_text": true,
                "handle_chinese_chars": true, "strip_accents": null, "lowercase": true},
            "pre_tokenizer": {"type": "BertPreTokenizer"},
            "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 3], "cls": ["[CLS]", 2]},
            "decoder": null,
            "model": {"type": "WordPiece", "unk_token": "[UNK]",
                "continuing_subword_prefix": "##", "max_input_chars_per_word": 100,
                "vocab": vocab}
        }),
    );
    write_json(&folder.join("modules.json"), &st_modules(None));
    write_json(&folder.join("1_Pooling/config.json"), &mean_pooling());
    write_json(
        &folder.join("sentence_bert_config.json"),
        &json!({"max_seq_length": 16, "do_lower_case": false}),
    );
    candle_core::safetensors::save(&bert_tensors(), folder.join("model.safetensors")).unwrap();
    folder
}

fn bert_tensors() -> HashMap<String, Tensor> {
    let dev = Device::Cpu;
    let (h, ff, v) = (BERT_HIDDEN, 16, BERT_VOCAB.len());
    let mut t = HashMap::new();
    let mut put = |name: &str, shape: &[usize]| {
        let tensor = if name.ends_with("LayerNorm.weight") {
            Tensor::ones(shape, DType::F32, &dev)
        } else {
            Tensor::randn(0f32, 0.5, shape, &dev)
        };
        t.insert(name.to_string(), tensor.unwrap());
    };
    put("embeddings.word_embeddings.weight", &[v, h]);
    put("embeddings.position_embeddings.weight", &[16, h]);
    put("embeddings.token_type_embeddings.weight", &[2, h]);
    put("embeddings.LayerNorm.weight", &[h]);
    put("embeddings.LayerNorm.bias", &[h]);
    let l = "encoder.layer.0";
    for (name, rows, cols) in [
        ("attention.self.query", h, h),
        ("attention.self.key", h, h),
        ("attention.self.value", h, h),
        ("attention.output.dense", h, h),
        ("intermediate.dense", ff, h),
        ("output.dense", h, ff),
    ] {
        put(&format!("{l}.{name}.weight"), &[rows, cols]);
        put(&format!("{l}.{name}.bias"), &[rows]);
    }
    for norm in ["attention.output.LayerNorm", "output.LayerNorm"] {
        put(&format!("{l}.{norm}.weight"), &[h]);
        put(&format!("{l}.{norm}.bias"), &[h]);
    }
    t
}

fn load_encoder(folder: &Path) -> Result<SentenceEmbedder, String> {
    let dir = ModelDir::from_folder(folder).map_err(|e| e.to_string())?;
    SentenceEmbedder::load(&dir, &Device::Cpu).map_err(|e| e.to_string())
}

fn encoder_refusal(folder: &Path) -> String {
    match load_encoder(folder) {
        Ok(_) => panic!("{} loaded; it should have been refused", folder.display()),
        Err(e) => e,
    }
}

fn edit_json(path: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    edit(&mut value);
    write_json(path, &value);
}

#[test]
fn the_tiny_bert_loads_and_gives_unit_vectors() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = tiny_bert(tmp.path());
    let encoder = load_encoder(&folder).unwrap();
    let vectors = encoder.embed(&["gene tp53", "cell"]).unwrap();
    assert_eq!(encoder.dim(), BERT_HIDDEN);
    let norm: f32 = vectors.row(0).iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
    // A plain transformer folder (no sentence-transformers files) is mean-pooled, as
    // sentence-transformers pools it.
    std::fs::remove_file(folder.join("modules.json")).unwrap();
    std::fs::remove_dir_all(folder.join("1_Pooling")).unwrap();
    load_encoder(&folder).unwrap();
}

#[test]
fn an_encoder_of_another_family_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = tiny_bert(tmp.path());
    let config = folder.join("config.json");
    for model_type in ["distilbert", "deberta-v2", "electra", "nomic_bert"] {
        edit_json(&config, |c| c["model_type"] = json!(model_type));
        let err = encoder_refusal(&folder);
        assert!(
            err.contains(&format!("model_type \"{model_type}\" is not supported"))
                && err.contains("model_type \"bert\", \"roberta\", \"xlm-roberta\" or \"mpnet\"")
                && err.contains("config.json"),
            "{err}"
        );
    }
    edit_json(&config, |c| {
        c.as_object_mut().unwrap().remove("model_type");
    });
    let err = encoder_refusal(&folder);
    assert!(
        err.contains("no model_type") && err.contains("\"bert\""),
        "{err}"
    );
}

#[test]
fn bert_settings_the_encoder_does_not_compute_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = tiny_bert(tmp.path());
    let config = folder.join("config.json");
    let cases = [
        (
            "hidden_act",
            json!("gelu_new"),
            "hidden_act \"gelu_new\" is not supported",
        ),
        (
            "position_embedding_type",
            json!("relative_key"),
            "position_embedding_type \"relative_key\" is not supported",
        ),
        ("is_decoder", json!(true), "is_decoder true"),
    ];
    for (key, value, expected) in cases {
        edit_json(&config, |c| c[key] = value);
        let err = encoder_refusal(&folder);
        assert!(
            err.contains(expected) && err.contains("model_type \"bert\""),
            "{key}: {err}"
        );
        write_json(&config, &bert_config());
    }
    write_json(
        &folder.join("sentence_bert_config.json"),
        &json!({"max_seq_length": 16, "do_lower_case": true}),
    );
    let err = encoder_refusal(&folder);
    assert!(
        err.contains("do_lower_case true is not supported")
            && err.contains("sentence_bert_config.json"),
        "{err}"
    );
}

#[test]
fn pooling_modes_bftembed_does_not_compute_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = tiny_bert(tmp.path());
    let pooling = folder.join("1_Pooling/config.json");
    // The supported modes load, by flag (sentence-transformers 2-5) or by name (6).
    for (flag, name) in [
        ("pooling_mode_cls_token", "cls"),
        ("pooling_mode_max_tokens", "max"),
        ("pooling_mode_lasttoken", "lasttoken"),
    ] {
        write_json(&pooling, &mean_pooling());
        edit_json(&pooling, |p| {
            p["pooling_mode_mean_tokens"] = json!(false);
            p[flag] = json!(true);
        });
        assert_eq!(load_encoder(&folder).unwrap().pooling().mode(), name);
        write_json(
            &pooling,
            &json!({"embedding_dimension": BERT_HIDDEN, "pooling_mode": name}),
        );
        assert_eq!(load_encoder(&folder).unwrap().pooling().mode(), name);
    }
    for (edit, expected) in [
        (
            json!({"pooling_mode_mean_sqrt_len_tokens": true}),
            "pooling_mode_mean_sqrt_len_tokens",
        ),
        (
            json!({"pooling_mode_weightedmean_tokens": true}),
            "pooling_mode_weightedmean_tokens",
        ),
        (
            json!({"pooling_mode_cls_token": true, "pooling_mode_mean_tokens": true}),
            "cls + mean",
        ),
    ] {
        write_json(&pooling, &mean_pooling());
        edit_json(&pooling, |p| {
            p["pooling_mode_mean_tokens"] = json!(false);
            for (k, v) in edit.as_object().unwrap() {
                p[k] = v.clone();
            }
        });
        let err = encoder_refusal(&folder);
        assert!(
            err.contains(&format!("pooling by {expected} is not supported"))
                && err.contains("mean, cls, max or lasttoken")
                && err.contains("1_Pooling"),
            "{err}"
        );
    }
    write_json(
        &pooling,
        &json!({"pooling_mode": "mean", "include_prompt": false}),
    );
    let err = encoder_refusal(&folder);
    assert!(err.contains("include_prompt false"), "{err}");

    // The pooling config where bftembed's model cache keeps it, without modules.json.
    std::fs::remove_file(folder.join("modules.json")).unwrap();
    std::fs::remove_dir_all(folder.join("1_Pooling")).unwrap();
    let cached = folder.join("pooling_config.json");
    write_json(&cached, &mean_pooling());
    load_encoder(&folder).unwrap();
    edit_json(&cached, |p| {
        p["pooling_mode_mean_tokens"] = json!(false);
        p["pooling_mode_mean_sqrt_len_tokens"] = json!(true);
    });
    let err = encoder_refusal(&folder);
    assert!(
        err.contains("pooling by pooling_mode_mean_sqrt_len_tokens is not supported")
            && err.contains("pooling_config.json"),
        "{err}"
    );
}

#[test]
fn a_module_after_pooling_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = tiny_bert(tmp.path());
    write_json(
        &folder.join("modules.json"),
        &st_modules(Some(("2_Dense", "Dense"))),
    );
    let err = encoder_refusal(&folder);
    assert!(
        err.contains(
            "module \"sentence_transformers.models.Dense\" (path \"2_Dense\") is not supported"
        ) && err.contains("modules.json"),
        "{err}"
    );
}

#[test]
fn the_cli_refuses_a_deberta_folder_without_writing_output() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = tiny_bert(tmp.path());
    edit_json(&folder.join("config.json"), |c| {
        c["model_type"] = json!("deberta-v2")
    });
    let texts = tmp.path().join("texts.txt");
    std::fs::write(&texts, "gene tp53\ncell\n").unwrap();
    let out = tmp.path().join("vectors.parquet");
    let run = Command::new(env!("CARGO_BIN_EXE_bftembed"))
        .args(["embed", "--texts"])
        .arg(&texts)
        .arg("--out")
        .arg(&out)
        .arg("--model")
        .arg(&folder)
        .env("BFTEMBED_HOME", tmp.path().join("home"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("model_type \"deberta-v2\" is not supported")
            && !stderr.contains("panicked"),
        "{stderr}"
    );
    assert!(!out.exists());
}

// ---------------------------------------------------------------- decoders

const LM_TOKENS: &[&str] = &[
    "<|im_end|>",
    "a",
    "b",
    "c",
    "ab",
    "g",
    "e",
    "n",
    "Ġ",
    "t",
    "p",
    "5",
    "3",
    "x",
    "y",
    "z",
];
const LM_HIDDEN: usize = 32;
const LM_FFN: usize = 64;
const CHAT: &str = "{% for m in messages %}{{ m.content }}<|im_end|>{% endfor %}";

fn lm_config() -> DecoderConfig {
    DecoderConfig {
        vocab_size: LM_TOKENS.len(),
        hidden_size: LM_HIDDEN,
        intermediate_size: LM_FFN,
        num_layers: 1,
        num_heads: 2,
        num_kv_heads: 2,
        rms_norm_eps: 1e-5,
        rope_theta: 10_000.0,
        max_positions: 64,
        tie_embeddings: true,
        rope_layout: RopeLayout::Interleaved,
        family: DecoderFamily::Llama,
        head_dim: LM_HIDDEN / 2,
        rope_scaling: RopeScaling::None,
        qkv_bias: false,
        output_bias: false,
        qk_norm: false,
    }
}

/// The metadata of a tiny SmolLM-style llama GGUF that bftembed loads.
fn lm_metadata() -> Vec<(String, Value)> {
    let c = lm_config();
    let u = |n: usize| Value::U32(n as u32);
    let s = |t: &str| Value::String(t.to_string());
    vec![
        ("general.architecture".into(), s("llama")),
        ("llama.embedding_length".into(), u(c.hidden_size)),
        ("llama.feed_forward_length".into(), u(c.intermediate_size)),
        ("llama.block_count".into(), u(c.num_layers)),
        ("llama.attention.head_count".into(), u(c.num_heads)),
        ("llama.attention.head_count_kv".into(), u(c.num_kv_heads)),
        (
            "llama.attention.layer_norm_rms_epsilon".into(),
            Value::F32(1e-5),
        ),
        ("llama.rope.freq_base".into(), Value::F32(10_000.0)),
        ("llama.context_length".into(), u(c.max_positions)),
        ("tokenizer.ggml.model".into(), s("gpt2")),
        ("tokenizer.ggml.pre".into(), s("smollm")),
        (
            "tokenizer.ggml.tokens".into(),
            Value::Array(LM_TOKENS.iter().map(|t| s(t)).collect()),
        ),
        ("tokenizer.ggml.merges".into(), Value::Array(vec![s("a b")])),
        ("tokenizer.ggml.eos_token_id".into(), u(0)),
        ("tokenizer.chat_template".into(), s(CHAT)),
    ]
}

fn lm_tensors() -> Vec<(String, Vec<usize>)> {
    let (h, f, v) = (LM_HIDDEN, LM_FFN, LM_TOKENS.len());
    let mut t = vec![
        ("token_embd.weight".to_string(), vec![v, h]),
        ("output_norm.weight".to_string(), vec![h]),
    ];
    for (name, shape) in [
        ("attn_norm", vec![h]),
        ("attn_q", vec![h, h]),
        ("attn_k", vec![h, h]),
        ("attn_v", vec![h, h]),
        ("attn_output", vec![h, h]),
        ("ffn_norm", vec![h]),
        ("ffn_gate", vec![f, h]),
        ("ffn_up", vec![f, h]),
        ("ffn_down", vec![h, f]),
    ] {
        t.push((format!("blk.0.{name}.weight"), shape));
    }
    t
}

/// Writes `folder/tiny.gguf` from metadata and tensor shapes (random f32 values).
fn write_gguf(folder: &Path, metadata: &[(String, Value)], tensors: &[(String, Vec<usize>)]) {
    std::fs::create_dir_all(folder).unwrap();
    let q: Vec<(String, QTensor)> = tensors
        .iter()
        .map(|(name, shape)| {
            let t = Tensor::randn(0f32, 0.1, shape.as_slice(), &Device::Cpu).unwrap();
            (name.clone(), QTensor::quantize(&t, GgmlDType::F32).unwrap())
        })
        .collect();
    let meta: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tens: Vec<(&str, &QTensor)> = q.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut file = std::fs::File::create(folder.join("tiny.gguf")).unwrap();
    gguf_file::write(&mut file, &meta, &tens).unwrap();
}

/// A tiny GGUF with `key` set to `value` (or removed when `value` is None).
fn gguf_with(dir: &Path, name: &str, key: &str, value: Option<Value>) -> PathBuf {
    let folder = dir.join(name);
    let mut meta: Vec<(String, Value)> = lm_metadata()
        .into_iter()
        .filter(|(k, _)| k != key)
        .collect();
    if let Some(v) = value {
        meta.push((key.to_string(), v));
    }
    write_gguf(&folder, &meta, &lm_tensors());
    folder
}

fn load_lm(folder: &Path) -> Result<CausalLm, String> {
    let dir = ModelDir::from_folder(folder).map_err(|e| e.to_string())?;
    CausalLm::load(&dir, &Device::Cpu, GgufPrecision::F32).map_err(|e| e.to_string())
}

fn lm_refusal(folder: &Path) -> String {
    match load_lm(folder) {
        Ok(_) => panic!("{} loaded; it should have been refused", folder.display()),
        Err(e) => e,
    }
}

#[test]
fn the_tiny_gguf_loads_and_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("ok");
    write_gguf(&folder, &lm_metadata(), &lm_tensors());
    let lm = load_lm(&folder).unwrap();
    let mut cache = lm.model.new_cache();
    let logits = lm.model.prefill(&[1, 2, 3], &mut cache).unwrap();
    assert_eq!(logits.dims(), &[LM_TOKENS.len()]);
}

#[test]
fn a_gguf_pre_tokenizer_bftembed_does_not_reproduce_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    for pre in ["gpt-2", "deepseek-llm", "tekken"] {
        let folder = gguf_with(
            tmp.path(),
            pre,
            "tokenizer.ggml.pre",
            Some(Value::String(pre.into())),
        );
        for err in [
            lm_refusal(&folder),
            tokenizer_from_gguf_file(&folder.join("tiny.gguf"))
                .map(|_| ())
                .unwrap_err()
                .to_string(),
        ] {
            assert!(
                err.contains(&format!("tokenizer.ggml.pre \"{pre}\" is not supported"))
                    && err.contains("\"smollm\"")
                    && err.contains("tiny.gguf"),
                "{err}"
            );
        }
    }
    let folder = gguf_with(tmp.path(), "no-pre", "tokenizer.ggml.pre", None);
    let err = lm_refusal(&folder);
    assert!(
        err.contains("no tokenizer.ggml.pre") && err.contains("\"smollm\""),
        "{err}"
    );
}

#[test]
fn a_gguf_architecture_other_than_llama_qwen2_qwen3_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = gguf_with(
        tmp.path(),
        "gemma",
        "general.architecture",
        Some(Value::String("gemma2".into())),
    );
    let err = lm_refusal(&folder);
    assert!(
        err.contains("general.architecture \"gemma2\"")
            && err.contains("is not supported")
            && err.contains("\"qwen2\""),
        "{err}"
    );
}

#[test]
fn gguf_llama_variants_the_decoder_does_not_compute_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        (
            "llama.expert_count",
            Value::U32(8),
            "llama.expert_count 8 (a mixture of experts) is not supported",
        ),
        (
            "llama.rope.scaling.type",
            Value::String("linear".into()),
            "llama.rope.scaling.type \"linear\" is not supported",
        ),
        (
            "llama.rope.scaling.factor",
            Value::F32(4.0),
            "llama.rope.scaling.factor 4 (rope scaling) is not supported",
        ),
        (
            "llama.rope.dimension_count",
            Value::U32(8),
            "llama.rope.dimension_count 8 (the head size is 16) is not supported",
        ),
        (
            "llama.attention.sliding_window",
            Value::U32(4096),
            "sliding-window attention",
        ),
    ];
    for (i, (key, value, expected)) in cases.into_iter().enumerate() {
        let folder = gguf_with(tmp.path(), &format!("case{i}"), key, Some(value));
        let err = lm_refusal(&folder);
        assert!(
            err.contains(expected) && err.contains("bftembed's decoder runs"),
            "{key}: {err}"
        );
    }
    // The head size the file states, when it is hidden / heads, is fine; another one
    // must match the tensors' shapes.
    let folder = gguf_with(
        tmp.path(),
        "key-length-ok",
        "llama.attention.key_length",
        Some(Value::U32(16)),
    );
    load_lm(&folder).unwrap();
    let folder = gguf_with(
        tmp.path(),
        "key-length-wide",
        "llama.attention.key_length",
        Some(Value::U32(32)),
    );
    let err = lm_refusal(&folder);
    assert!(
        err.contains("has shape [32, 32], the config says [64, 32]"),
        "{err}"
    );
}

#[test]
fn gguf_tensors_the_decoder_would_ignore_or_miss_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    for (extra, len, expected) in [
        // Llama 3.1 divisors come one per rotated pair: 8 for a head of 16.
        (
            "rope_freqs.weight",
            LM_HIDDEN,
            "rope_freqs.weight has 32 values for a head of 16",
        ),
        // Biases on the query alone: llama has them on all four projections or none.
        (
            "blk.0.attn_q.bias",
            LM_HIDDEN,
            "query/key/value biases true, an output bias false",
        ),
        ("blk.0.attn_q_norm.weight", 16, "query/key norms true"),
        ("blk.0.ffn_gate_exps.weight", LM_HIDDEN, "does not use"),
    ] {
        let folder = tmp.path().join(extra);
        let mut tensors = lm_tensors();
        tensors.push((extra.to_string(), vec![len]));
        write_gguf(&folder, &lm_metadata(), &tensors);
        let err = lm_refusal(&folder);
        assert!(
            err.contains(expected) && err.contains("tiny.gguf"),
            "{extra}: {err}"
        );
    }
}

#[test]
fn gguf_head_counts_that_do_not_divide_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = gguf_with(
        tmp.path(),
        "kv0",
        "llama.attention.head_count_kv",
        Some(Value::U32(0)),
    );
    let err = lm_refusal(&folder);
    assert!(err.contains("key/value heads"), "{err}");
}

/// A tiny Hugging Face llama folder written the way the trainer writes one.
fn tiny_hf(dir: &Path) -> PathBuf {
    let gguf = dir.join("for-tokenizer");
    write_gguf(&gguf, &lm_metadata(), &lm_tensors());
    let tokenizer = tokenizer_from_gguf_file(&gguf.join("tiny.gguf")).unwrap();
    let config = DecoderConfig {
        rope_layout: RopeLayout::Halves,
        ..lm_config()
    };
    let model = TrainableDecoder::random(config.clone(), 7, &Device::Cpu).unwrap();
    let out = dir.join("tiny-hf");
    write_hf_folder(
        &HfModelParts {
            config: &config,
            tensors: model.hf_tensors().unwrap(),
            tokenizer: &tokenizer,
            chat: &ChatTemplate::new(CHAT),
            eos_token: Some("<|im_end|>".into()),
            bos_token: None,
        },
        &out,
    )
    .unwrap();
    out
}

#[test]
fn hugging_face_settings_the_decoder_does_not_compute_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = tiny_hf(tmp.path());
    let config = folder.join("config.json");
    let original = std::fs::read_to_string(&config).unwrap();
    load_lm(&folder).unwrap();
    let refused = [
        (
            "rope_scaling",
            json!({"type": "linear", "factor": 2.0}),
            "rope_scaling {",
        ),
        (
            "rope_parameters",
            json!({"rope_type": "yarn", "factor": 4.0}),
            "rope_parameters {",
        ),
        ("mlp_bias", json!(true), "mlp_bias true is not supported"),
        (
            "hidden_act",
            json!("gelu"),
            "hidden_act \"gelu\" (only \"silu\" is) is not supported",
        ),
        (
            "partial_rotary_factor",
            json!(0.5),
            "partial_rotary_factor 0.5",
        ),
        (
            "quantization_config",
            json!({"quant_method": "gptq"}),
            "quantization_config",
        ),
        ("model_type", json!("mistral"), "model_type \"mistral\""),
        (
            "use_sliding_window",
            json!(true),
            "use_sliding_window true (sliding-window attention)",
        ),
        (
            "layer_types",
            json!(["sliding_attention"]),
            "layer_types entry \"sliding_attention\"",
        ),
        ("num_local_experts", json!(8), "num_local_experts 8"),
    ];
    for (key, value, expected) in refused {
        std::fs::write(&config, &original).unwrap();
        edit_json(&config, |c| c[key] = value);
        let err = lm_refusal(&folder);
        assert!(
            err.contains(expected)
                && err.contains("config.json")
                && err.contains("bftembed's decoder runs"),
            "{key}: {err}"
        );
    }
    std::fs::write(&config, &original).unwrap();
    edit_json(&config, |c| {
        c.as_object_mut().unwrap().remove("model_type");
    });
    assert!(lm_refusal(&folder).contains("no model_type"));

    // Settings that change the weights the model must have: refused when the tensors
    // do not follow, naming what is missing or mis-shaped.
    let mismatched = [
        ("head_dim", json!(32), "expected: [64, 32], got: [32, 32]"),
        ("attention_bias", json!(true), "self_attn.q_proj.bias"),
        (
            "rope_scaling",
            json!({"rope_type": "llama3", "factor": 8.0}),
            "rope_scaling of type llama3 needs a positive low_freq_factor",
        ),
    ];
    for (key, value, expected) in mismatched {
        std::fs::write(&config, &original).unwrap();
        edit_json(&config, |c| c[key] = value);
        let err = lm_refusal(&folder);
        assert!(err.contains(expected), "{key}: {err}");
    }

    // What computes the same is accepted: no scaling spelled out, the implied head size;
    // and Llama 3.1's scaling with its parameters.
    let accepted = [
        ("rope_scaling", json!(null)),
        ("rope_scaling", json!({"rope_type": "default"})),
        (
            "rope_scaling",
            json!({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                   "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}),
        ),
        ("head_dim", json!(16)),
        ("attention_bias", json!(false)),
        ("hidden_act", json!("silu")),
    ];
    for (key, value) in accepted {
        std::fs::write(&config, &original).unwrap();
        edit_json(&config, |c| c[key] = value.clone());
        load_lm(&folder).unwrap_or_else(|e| panic!("{key} = {value}: {e}"));
    }
}

#[test]
fn a_rope_base_given_as_transformers_5_rope_parameters_is_read() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = tiny_hf(tmp.path());
    let config = folder.join("config.json");
    edit_json(&config, |c| {
        c.as_object_mut().unwrap().remove("rope_theta");
        c["rope_parameters"] = json!({"rope_type": "default", "rope_theta": 100000.0});
    });
    assert_eq!(
        DecoderConfig::from_hf_json(&config).unwrap().rope_theta,
        100_000.0
    );
    edit_json(&config, |c| c["rope_theta"] = json!(10000.0));
    let err = DecoderConfig::from_hf_json(&config)
        .unwrap_err()
        .to_string();
    assert!(err.contains("disagree"), "{err}");
}
