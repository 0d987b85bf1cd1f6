//! The trainable llama: its logits equal the inference decoder's on the real SmolLM2
//! weights (both RoPE layouts), and a backward pass reaches every variable.

mod common;

use bftembed::llm::{gguf_to_hf_folder, CausalLm, GgufPrecision};
use bftembed::models::ModelDir;
use bftembed::train::{objective_loss, Objective, TrainableDecoder};
use candle_core::{Device, Tensor};

fn check(dir: &ModelDir) {
    let lm = CausalLm::load(dir, &Device::Cpu, GgufPrecision::F32).unwrap();
    let prompt = lm
        .chat
        .render("You are a biomedical expert.", "tell me about gene TP53.")
        .unwrap();
    let ids = lm.encode(&prompt).unwrap();
    let reference = lm.model.prefill(&ids, &mut lm.model.new_cache()).unwrap();
    let (config, weights) = lm.model.into_parts();
    let model =
        TrainableDecoder::from_weights(config, weights, &Device::Cpu, candle_core::DType::F32)
            .unwrap();
    let input = Tensor::new(ids.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let logits = model.forward(&input).unwrap();
    let last = logits.get(0).unwrap().get(ids.len() - 1).unwrap();
    let diff = common::max_abs_diff(&last, &reference);
    let scale = reference
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(
        diff <= 1e-3 * scale,
        "{}: max |diff| {diff} at scale {scale}",
        dir.id
    );

    // Next-token loss on the second half of the sequence, then backward.
    let t = ids.len();
    let inputs = logits.narrow(1, 0, t - 1).unwrap();
    let labels = Tensor::new(&ids[1..], &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let mask: Vec<f32> = (0..t - 1)
        .map(|i| if i >= t / 2 { 1.0 } else { 0.0 })
        .collect();
    let mask = Tensor::from_vec(mask, (1, t - 1), &Device::Cpu).unwrap();
    let loss = objective_loss(Objective::bft(), &inputs, &labels, &mask).unwrap();
    let grads = loss.backward().unwrap();
    let vars = model.variables();
    assert_eq!(vars.len(), 2 + 9 * model.config().num_layers);
    let missing: Vec<&String> = vars
        .iter()
        .filter(|(_, v)| {
            grads
                .get(v.as_tensor())
                .map(|g| {
                    g.abs()
                        .unwrap()
                        .sum_all()
                        .unwrap()
                        .to_scalar::<f32>()
                        .unwrap()
                        == 0.0
                })
                .unwrap_or(true)
        })
        .map(|(n, _)| n)
        .collect();
    assert!(
        missing.is_empty(),
        "{}: no gradient for {missing:?}",
        dir.id
    );

    // Training the last two blocks: the frozen blocks run their own forward (matrices
    // stored transposed, no graph) to the same logits, and backward reaches exactly the
    // trained variables.
    let all_trained = logits;
    let mut model = model;
    // Copies, as a checkpoint on disk is: a variable cannot be set from its own storage.
    let saved: std::collections::HashMap<String, Tensor> = model
        .hf_tensors()
        .unwrap()
        .into_iter()
        .map(|(name, t)| (name, t.copy().unwrap()))
        .collect();
    model.set_trained_blocks(Some(2)).unwrap();
    // Frozen matrices are held transposed now; a checkpoint still gets them in their
    // own layout, and loading one puts them back the same way.
    let frozen_saved = model.hf_tensors().unwrap();
    for name in [
        "model.layers.0.self_attn.q_proj.weight",
        "model.layers.0.mlp.down_proj.weight",
    ] {
        assert_eq!(
            common::max_abs_diff(&saved[name], &frozen_saved[name]),
            0.0,
            "{}: {name}",
            dir.id
        );
    }
    model.load_hf_tensors(&saved).unwrap();
    let trained: Vec<String> = model
        .trained_variables()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let layers = model.config().num_layers;
    assert_eq!(trained.len(), 1 + 9 * 2, "{trained:?}");
    assert!(trained.iter().all(|n| n == "model.norm.weight"
        || n.starts_with(&format!("model.layers.{}.", layers - 1))
        || n.starts_with(&format!("model.layers.{}.", layers - 2))));
    let logits = model.forward(&input).unwrap();
    let diff = common::max_abs_diff(&logits, &all_trained);
    assert!(
        diff <= 1e-4 * scale,
        "{}: frozen blocks change the logits by {diff} at scale {scale}",
        dir.id
    );
    let inputs = logits.narrow(1, 0, t - 1).unwrap();
    let grads = objective_loss(Objective::Sft, &inputs, &labels, &mask)
        .unwrap()
        .backward()
        .unwrap();
    for (name, var) in model.variables() {
        assert_eq!(
            grads.get(var.as_tensor()).is_some(),
            trained.contains(&name),
            "{name}"
        );
    }
}

#[test]
fn trainable_forward_matches_inference_and_every_weight_gets_a_gradient() {
    let gguf = common::generator_model();
    check(&gguf);
    let tmp = tempfile::tempdir().unwrap();
    let hf = tmp.path().join("hf");
    gguf_to_hf_folder(&gguf.weights, &hf).unwrap();
    check(&ModelDir::from_folder(&hf).unwrap());
}
