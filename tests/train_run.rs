//! The trainer end to end: a tiny randomly initialised llama learns real gene summaries
//! under every objective; a resumed run (in process, and after SIGKILL through the CLI)
//! repeats the uninterrupted loss curve exactly, for full training and for LoRA (whose
//! merged weights equal the adapted forward pass); a non-finite step leaves the last
//! checkpoint intact; bad configs fail before any work; and `train/smoke.toml` on the
//! real SmolLM2 writes a checkpoint that `bftembed profile --model` generates with.

mod common;

use bftembed::genes::GeneCatalog;
use bftembed::llm::{
    write_hf_folder, CausalLm, DecoderConfig, DecoderFamily, GgufPrecision, HfModelParts,
    RopeLayout, RopeScaling,
};
use bftembed::models::ModelDir;
use bftembed::profile::{PromptTemplate, RefseqSummaries};
use bftembed::train::data::{gene_pairs, ExampleEncoder, TokenizedExample};
use bftembed::train::{
    write_checkpoint, AdamWSettings, LoraConfig, LoraSettings, ModelFiles, Objective,
    SavedCheckpoint, Schedule, TrainConfig, TrainableDecoder, Trainer, TrainerSettings,
    TrainerState, ADAPTER_CONFIG, ADAPTER_WEIGHTS,
};
use candle_core::{Device, Tensor};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn repo(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(p)
}

fn bftembed() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bftembed"))
}

/// SmolLM2's tokenizer and chat template (the tiny models share its vocabulary).
fn smollm() -> &'static CausalLm {
    static LM: OnceLock<CausalLm> = OnceLock::new();
    LM.get_or_init(|| {
        bftembed::alloc_tuning::tune_allocator_for_tensors();
        CausalLm::load(
            &common::generator_model(),
            &Device::Cpu,
            GgufPrecision::AsStored,
        )
        .expect("load SmolLM2")
    })
}

fn tiny_config(layout: RopeLayout) -> DecoderConfig {
    DecoderConfig {
        vocab_size: smollm().tokenizer.get_vocab_size(true),
        hidden_size: 32,
        intermediate_size: 64,
        num_layers: 2,
        num_heads: 4,
        num_kv_heads: 2,
        rms_norm_eps: 1e-5,
        rope_theta: 10_000.0,
        max_positions: 256,
        tie_embeddings: true,
        rope_layout: layout,
        family: DecoderFamily::Llama,
        head_dim: 8,
        rope_scaling: RopeScaling::None,
        qkv_bias: false,
        output_bias: false,
        qk_norm: false,
    }
}

/// Real gene-summary pairs, tokenized as training sees them.
fn examples(n: usize, max_tokens: usize) -> Vec<TokenizedExample> {
    let lm = smollm();
    let catalog = GeneCatalog::embedded().unwrap();
    let pairs = gene_pairs(
        &RefseqSummaries::embedded().unwrap(),
        &catalog,
        &PromptTemplate::default_gene().unwrap(),
    );
    let encoder = ExampleEncoder::new(
        &lm.tokenizer,
        &lm.chat,
        lm.end_of_turn().unwrap(),
        max_tokens,
    );
    pairs
        .iter()
        .take(n)
        .map(|p| encoder.encode(p).unwrap())
        .collect()
}

fn settings(objective: Objective, grad_accum: usize) -> TrainerSettings {
    TrainerSettings {
        objective,
        schedule: Schedule {
            peak: 3e-3,
            floor: 3e-4,
            warmup: 5,
            total: 50,
        },
        adamw: AdamWSettings::default(),
        clip_norm: 1.0,
        batch_size: 4,
        grad_accum,
        seed: 5,
    }
}

fn files() -> ModelFiles<'static> {
    let lm = smollm();
    ModelFiles {
        tokenizer: &lm.tokenizer,
        chat: &lm.chat,
        eos_token: Some("<|im_end|>".into()),
    }
}

fn state(step: usize) -> TrainerState {
    TrainerState {
        step,
        base_heldout: None,
        tokens: 0,
        objective: "bft".into(),
        base_model: "tiny".into(),
        base_sha256: "-".into(),
        seed: 5,
    }
}

#[test]
fn a_tiny_llama_learns_under_every_objective() {
    let data = examples(16, 48);
    for objective in [
        Objective::Sft,
        Objective::Dft,
        Objective::bft(),
        Objective::bft_v3(),
    ] {
        let model =
            TrainableDecoder::random(tiny_config(RopeLayout::Halves), 3, &Device::Cpu).unwrap();
        let mut trainer = Trainer::new(model, settings(objective, 1), &Device::Cpu).unwrap();
        let before = trainer.heldout(&data[..4]).unwrap();
        let ce: Vec<f64> = (0..50)
            .map(|_| trainer.step(&data).unwrap().cross_entropy)
            .collect();
        let first = ce[..5].iter().sum::<f64>() / 5.0;
        let last = ce[45..].iter().sum::<f64>() / 5.0;
        assert!(
            last < first - 1.0,
            "{objective:?}: cross-entropy {first:.3} -> {last:.3}"
        );
        // Scored on four of the training pairs: the model must now predict many of
        // their tokens, which a random model of this vocabulary almost never does.
        let after = trainer.heldout(&data[..4]).unwrap();
        eprintln!(
            "{objective:?}: token accuracy {:.3} -> {:.3}, CE {:.3} -> {:.3}",
            before.token_accuracy, after.token_accuracy, before.cross_entropy, after.cross_entropy
        );
        assert!(
            after.token_accuracy > before.token_accuracy + 0.04,
            "{objective:?}: token accuracy {:.3} -> {:.3}",
            before.token_accuracy,
            after.token_accuracy
        );
        assert!(after.cross_entropy < before.cross_entropy - 1.0);
    }
}

#[test]
fn resuming_from_a_checkpoint_repeats_the_uninterrupted_curve() {
    let data = examples(12, 64);
    let dir = tempfile::tempdir().unwrap();
    // Interleaved layout: the checkpoint is written in Hugging Face order and read back.
    let config = tiny_config(RopeLayout::Interleaved);
    let objective = Objective::bft();
    let fresh = || {
        let model = TrainableDecoder::random(config.clone(), 3, &Device::Cpu).unwrap();
        Trainer::new(model, settings(objective, 2), &Device::Cpu).unwrap()
    };
    let mut straight = fresh();
    let whole: Vec<f64> = (0..12)
        .map(|_| straight.step(&data).unwrap().loss)
        .collect();

    let mut first = fresh();
    for _ in 0..6 {
        first.step(&data).unwrap();
    }
    let ckpt = dir.path().join("checkpoint");
    write_checkpoint(&ckpt, first.model(), first.optimizer(), &state(6), &files()).unwrap();
    drop(first);

    // A different random start, then the checkpoint: nothing of the start may survive.
    let model = TrainableDecoder::random(config.clone(), 99, &Device::Cpu).unwrap();
    let mut resumed = Trainer::new(model, settings(objective, 2), &Device::Cpu).unwrap();
    let saved = SavedCheckpoint::find(&ckpt).unwrap().expect("a checkpoint");
    assert_eq!(saved.state.step, 6);
    let (m, o) = resumed.parts_mut();
    saved.restore(m, o).unwrap();
    assert_eq!(resumed.steps_done(), 6);
    let rest: Vec<f64> = (0..6).map(|_| resumed.step(&data).unwrap().loss).collect();
    assert_eq!(rest, whole[6..].to_vec());
}

#[test]
fn a_non_finite_step_is_refused_and_the_checkpoint_kept() {
    let data = examples(8, 48);
    let dir = tempfile::tempdir().unwrap();
    let model = TrainableDecoder::random(tiny_config(RopeLayout::Halves), 3, &Device::Cpu).unwrap();
    let mut trainer = Trainer::new(model, settings(Objective::Sft, 1), &Device::Cpu).unwrap();
    for _ in 0..3 {
        trainer.step(&data).unwrap();
    }
    let ckpt = dir.path().join("checkpoint");
    write_checkpoint(
        &ckpt,
        trainer.model(),
        trainer.optimizer(),
        &state(3),
        &files(),
    )
    .unwrap();
    // Poison one weight, as an overflow would.
    let (name, var) = trainer.model().variables().into_iter().nth(3).unwrap();
    let nan = Tensor::full(f32::NAN, var.as_tensor().dims(), &Device::Cpu).unwrap();
    var.set(&nan).unwrap();
    let err = trainer.step(&data).unwrap_err().to_string();
    assert!(err.contains("diverged at step 4"), "{name}: {err}");
    let saved = SavedCheckpoint::find(&ckpt).unwrap().unwrap();
    assert_eq!(saved.state.step, 3);
    let weights =
        candle_core::safetensors::load(ckpt.join("model.safetensors"), &Device::Cpu).unwrap();
    for (k, t) in weights {
        let sum = t
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(sum.is_finite(), "{k} in the kept checkpoint is not finite");
    }
}

/// A tiny random model as a Hugging Face folder, to train through the CLI in seconds.
fn tiny_base(dir: &Path) -> PathBuf {
    let lm = smollm();
    let config = tiny_config(RopeLayout::Halves);
    let model = TrainableDecoder::random(config.clone(), 3, &Device::Cpu).unwrap();
    let out = dir.join("tiny-base");
    write_hf_folder(
        &HfModelParts {
            config: &config,
            tensors: model.hf_tensors().unwrap(),
            tokenizer: &lm.tokenizer,
            chat: &lm.chat,
            eos_token: Some("<|im_end|>".into()),
            bos_token: None,
        },
        &out,
    )
    .unwrap();
    out
}

/// The tiny run's config with `extra` TOML appended (a `[lora]` table, say).
fn tiny_run_config_with(dir: &Path, base: &Path, name: &str, extra: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    let text = format!(
        r#"name = "{name}"
base_model = "{base}"
out = "{name}"

[objective]
kind = "bft-v3"
window = 16

[data]
split = "{split}"
max_tokens = 64
max_train_pairs = 40
heldout_pairs = 6

[optimizer]
learning_rate = 3e-3
warmup_steps = 3

[run]
steps = 60
batch_size = 2
eval_every = 10
checkpoint_every = 5
{extra}"#,
        base = base.display(),
        split = repo("train/split.tsv.gz").display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// The columns that must repeat exactly (not the timing).
fn curve(out: &Path) -> Vec<String> {
    std::fs::read_to_string(out.join("log.csv"))
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            [&f[..6], &f[7..]].concat().join(",")
        })
        .collect()
}

/// A run killed mid-way and resumed writes the same log as one run straight through.
fn a_killed_run_resumes_to_the_same_curve(extra: &str) -> PathBuf {
    let dir = tempfile::tempdir().unwrap().keep();
    let base = tiny_base(&dir);
    let straight = tiny_run_config_with(&dir, &base, "straight", extra);
    let status = bftembed()
        .args(["train", "--config"])
        .arg(&straight)
        .status()
        .unwrap();
    assert!(status.success());

    let killed = tiny_run_config_with(&dir, &base, "killed", extra);
    let out = dir.join("killed");
    let mut child = bftembed()
        .args(["train", "--config"])
        .arg(&killed)
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let rows = std::fs::read_to_string(out.join("log.csv"))
            .map(|t| t.lines().count().saturating_sub(1))
            .unwrap_or(0);
        if rows >= 13 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the run never got to step 13"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it was killed"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let saved = SavedCheckpoint::find(&out.join("checkpoint"))
        .unwrap()
        .expect("a checkpoint");
    assert!(
        saved.state.step >= 10 && saved.state.step < 60,
        "{}",
        saved.state.step
    );

    // Without --resume the folder is protected.
    let refused = bftembed()
        .args(["train", "--config"])
        .arg(&killed)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--resume"));

    let status = bftembed()
        .args(["train", "--resume", "--config"])
        .arg(&killed)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(curve(&out), curve(&dir.join("straight")));
    assert!(out.join("loss.png").is_file());
    out
}

#[test]
fn a_killed_cli_run_resumes_to_the_same_curve() {
    let out = a_killed_run_resumes_to_the_same_curve("");
    std::fs::remove_dir_all(out.parent().unwrap()).ok();
}

#[test]
fn a_killed_lora_run_resumes_to_the_same_curve_and_saves_its_adapters() {
    let lora =
        "\n[lora]\nrank = 4\nalpha = 8.0\ntargets = [\"q_proj\", \"v_proj\", \"down_proj\"]\n";
    let out = a_killed_run_resumes_to_the_same_curve(lora);
    let checkpoint = out.join("checkpoint");
    let adapters =
        candle_core::safetensors::load(checkpoint.join(ADAPTER_WEIGHTS), &Device::Cpu).unwrap();
    // 2 blocks x 3 targets x (A, B), named as peft names them.
    assert_eq!(adapters.len(), 12, "{:?}", adapters.keys());
    assert!(adapters.contains_key("base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight"));
    let peft: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(checkpoint.join(ADAPTER_CONFIG)).unwrap())
            .unwrap();
    assert_eq!(peft["r"], 4);
    // The merged checkpoint loads as a plain model.
    CausalLm::load(
        &ModelDir::from_folder(&checkpoint).unwrap(),
        &Device::Cpu,
        GgufPrecision::F32,
    )
    .unwrap();
    std::fs::remove_dir_all(out.parent().unwrap()).ok();
}

/// LoRA starts from the base model exactly (B = 0), trains only its adapters, and the
/// merged weights (W + alpha/rank B A) give the adapted model's logits.
#[test]
fn lora_merged_weights_equal_the_adapted_forward() {
    let config = tiny_config(RopeLayout::Halves);
    let mut model = TrainableDecoder::random(config.clone(), 3, &Device::Cpu).unwrap();
    let input = Tensor::new(&[[5u32, 9, 200, 17, 3, 44]], &Device::Cpu).unwrap();
    let base = model.forward(&input).unwrap();
    model.set_trained_blocks(Some(1)).unwrap();
    let settings = LoraSettings::from_config(&LoraConfig {
        rank: 4,
        alpha: 8.0,
        targets: vec!["q_proj".into(), "v_proj".into(), "down_proj".into()],
    })
    .unwrap();
    model.add_lora(settings, 11).unwrap();
    let same = model.forward(&input).unwrap();
    // Equal up to rounding: the frozen first block now runs candle's fused kernels.
    let diff = common::max_abs_diff(&base, &same);
    assert!(diff < 1e-6, "B = 0 must leave the model as it was ({diff})");
    let trained = model.trained_variables();
    assert_eq!(trained.len(), 6, "one block x 3 targets x (A, B)");
    for (name, var) in &trained {
        assert!(
            name.contains(".layers.1.") && name.contains("lora_"),
            "{name}"
        );
        let noise = Tensor::randn(0f32, 0.05, var.shape(), &Device::Cpu).unwrap();
        var.set(&noise).unwrap();
    }
    let adapted = model.forward(&input).unwrap();
    assert!(
        common::max_abs_diff(&base, &adapted) > 1e-4,
        "the adapters change the output"
    );
    let mut merged = TrainableDecoder::random(config, 99, &Device::Cpu).unwrap();
    merged
        .load_hf_tensors(&model.hf_tensors().unwrap())
        .unwrap();
    let diff = common::max_abs_diff(&adapted, &merged.forward(&input).unwrap());
    assert!(diff < 1e-5, "merged differs from adapted by {diff}");
    // Adapters round-trip through their saved form.
    let saved = model.adapter_tensors().unwrap();
    for (_, var) in model.trained_variables() {
        var.set(&var.zeros_like().unwrap()).unwrap();
    }
    model.load_adapter_tensors(&saved).unwrap();
    assert_eq!(
        common::max_abs_diff(&adapted, &model.forward(&input).unwrap()),
        0.0
    );
}

#[test]
fn bad_configs_fail_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(repo("train/smoke.toml"))
        .unwrap()
        .replace(
            "\"split.tsv.gz\"",
            &format!("\"{}\"", repo("train/split.tsv.gz").display()),
        )
        .replace("\"../data/", &format!("\"{}/", repo("data").display()));
    let typo = dir.path().join("typo.toml");
    std::fs::write(&typo, good.replace("batch_size = 2", "batch_sise = 2")).unwrap();
    let message = TrainConfig::read(&typo).unwrap_err().to_string();
    assert!(
        message.contains("typo.toml") && message.contains("batch_sise"),
        "{message}"
    );
    assert!(message.contains("line"), "{message}");

    let missing = dir.path().join("missing.toml");
    std::fs::write(
        &missing,
        good.replace("go_terms_bp.tsv.gz", "go_terms_XX.tsv.gz"),
    )
    .unwrap();
    let message = TrainConfig::read(&missing).unwrap_err().to_string();
    assert!(
        message.contains("data.go_terms") && message.contains("go_terms_XX"),
        "{message}"
    );

    // LoRA settings out of range, or naming a projection that does not exist.
    for (lora, expected) in [
        ("rank = 0\nalpha = 8.0", "lora: rank must be at least 1"),
        (
            "rank = 4\nalpha = -1.0",
            "lora: alpha -1 must be a positive number",
        ),
        (
            "rank = 4\nalpha = 8.0\ntargets = [\"qkv\"]",
            "lora: target \"qkv\" is not one of",
        ),
    ] {
        let path = dir.path().join("lora.toml");
        std::fs::write(&path, format!("{good}\n[lora]\n{lora}\n")).unwrap();
        let message = TrainConfig::read(&path).unwrap_err().to_string();
        assert!(
            message.contains(expected) && message.contains("lora.toml"),
            "{message}"
        );
    }

    // A good config followed by a bad one: nothing runs, no output folder appears.
    let ok = dir.path().join("ok.toml");
    std::fs::write(&ok, good.replace("../runs/smoke", "ok-run")).unwrap();
    let output = bftembed()
        .args(["train", "--config"])
        .arg(&ok)
        .arg("--config")
        .arg(&typo)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("batch_sise"));
    assert!(!dir.path().join("ok-run").exists());
}

#[test]
#[ignore = "slow: real data at full size; `bash .ci/run` (or `cargo test --release -- --include-ignored`) runs it"]
fn smoke_config_trains_smollm2_and_its_checkpoint_generates() {
    let dir = tempfile::tempdir().unwrap();
    let (run, _) = common::train_then_profile(&repo("train/smoke.toml"), dir.path());
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["steps"], 6);
}

#[test]
fn diagnose_scores_gene_summaries_against_general_text() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("diagnosis");
    // Eight real summaries, and the same words in a seeded random order: a model reads
    // the real text far more confidently, unless the diagnostic is misaligned.
    let catalog = bftembed::genes::GeneCatalog::embedded().unwrap();
    let records = bftembed::profile::RefseqSummaries::embedded()
        .unwrap()
        .with_style(bftembed::profile::RefseqTextStyle::SummaryOnly)
        .all_profiles(&catalog)
        .records;
    let real: Vec<String> = records
        .iter()
        .step_by(1500)
        .take(8)
        .map(|r| r.text.clone())
        .collect();
    let mut state = 7u64;
    let shuffled: Vec<String> = real
        .iter()
        .map(|t| {
            let mut words: Vec<&str> = t.split_whitespace().collect();
            for i in (1..words.len()).rev() {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                words.swap(i, (state >> 33) as usize % (i + 1));
            }
            words.join(" ")
        })
        .collect();
    let real_file = dir.path().join("real.txt");
    let shuffled_file = dir.path().join("shuffled.txt");
    std::fs::write(&real_file, real.join("\n\n")).unwrap();
    std::fs::write(&shuffled_file, shuffled.join("\n\n")).unwrap();
    let status = bftembed()
        .args(["diagnose", "--refseq", "8", "--window", "32", "--texts"])
        .arg(&real_file)
        .arg("--texts")
        .arg(&shuffled_file)
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("diagnosis.json")).unwrap())
            .unwrap();
    let corpora = report["corpora"].as_array().unwrap();
    assert_eq!(corpora.len(), 3);
    for c in corpora {
        let shares: f64 = ["confident_share", "sparse_low_share", "dense_low_share"]
            .iter()
            .map(|k| c[k].as_f64().unwrap())
            .sum();
        assert!((shares - 1.0).abs() < 1e-9, "{c}");
        assert!(c["windows"].as_u64().unwrap() >= c["texts"].as_u64().unwrap());
        let p = c["mean_p"].as_f64().unwrap();
        assert!(p > 0.0 && p < 1.0, "{c}");
    }
    assert_eq!(corpora[0]["texts"], 8);
    assert_eq!(corpora[1]["texts"], 8);
    let (real, shuffled) = (&corpora[1], &corpora[2]);
    let p = |c: &serde_json::Value| c["mean_p"].as_f64().unwrap();
    assert!(
        p(real) > p(shuffled) + 0.1,
        "real {real}\nshuffled {shuffled}"
    );
    let dense = |c: &serde_json::Value| c["dense_low_share"].as_f64().unwrap();
    assert!(
        dense(shuffled) >= dense(real),
        "real {real}\nshuffled {shuffled}"
    );
    assert!(out.join("longest_runs.png").is_file() && out.join("diagnosis.md").is_file());
}
