//! AdamW, the learning-rate schedule and gradient clipping: hand-checked values,
//! convergence on a quadratic, and an exact resume from saved optimizer state.

use bftembed::train::{clip_grad_norm, AdamW, AdamWSettings, Schedule};
use candle_core::{Device, Tensor, Var};

fn quadratic_loss(w: &Var) -> Tensor {
    // (w - target)^2 summed, target = [1, -2, 3].
    let target = Tensor::new(&[1f32, -2., 3.], &Device::Cpu).unwrap();
    (w.as_tensor() - target)
        .unwrap()
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap()
}

#[test]
fn schedule_warms_up_then_decays_by_cosine() {
    let s = Schedule {
        peak: 1e-3,
        floor: 1e-4,
        warmup: 10,
        total: 110,
    };
    assert!((s.rate(0) - 1e-4).abs() < 1e-12);
    assert!((s.rate(9) - 1e-3).abs() < 1e-12);
    assert!((s.rate(10) - 1e-3).abs() < 1e-12);
    assert!(
        (s.rate(60) - 5.5e-4).abs() < 1e-12,
        "half way: {}",
        s.rate(60)
    );
    assert!((s.rate(110) - 1e-4).abs() < 1e-12);
    assert!((s.rate(500) - 1e-4).abs() < 1e-12);
}

#[test]
fn first_adamw_step_moves_each_weight_by_the_learning_rate() {
    let w = Var::new(&[0f32, 0., 0.], &Device::Cpu).unwrap();
    let settings = AdamWSettings {
        weight_decay: 0.0,
        ..AdamWSettings::default()
    };
    let mut opt = AdamW::new(vec![("w".into(), w.clone())], settings).unwrap();
    let grads = quadratic_loss(&w).backward().unwrap();
    opt.step(&grads, 0.1).unwrap();
    // Bias-corrected m / sqrt(v) is sign(g) on the first step.
    let got = w.as_tensor().to_vec1::<f32>().unwrap();
    for (g, want) in got.iter().zip([0.1f32, -0.1, 0.1]) {
        assert!((g - want).abs() < 1e-5, "{got:?}");
    }
    for _ in 0..2000 {
        let grads = quadratic_loss(&w).backward().unwrap();
        opt.step(&grads, 0.01).unwrap();
    }
    let got = w.as_tensor().to_vec1::<f32>().unwrap();
    for (g, want) in got.iter().zip([1f32, -2., 3.]) {
        assert!((g - want).abs() < 1e-2, "{got:?}");
    }
}

#[test]
fn a_restored_optimizer_continues_exactly() {
    let run = |restore_at: Option<usize>| -> Vec<f32> {
        let w = Var::new(&[0.5f32, 0.5, 0.5], &Device::Cpu).unwrap();
        let mut opt = AdamW::new(vec![("w".into(), w.clone())], AdamWSettings::default()).unwrap();
        for step in 0..20 {
            if Some(step) == restore_at {
                // As after a restart: the weights come back from the checkpoint, and a
                // new optimizer gets the saved state.
                let state = opt.state().unwrap();
                opt = AdamW::new(vec![("w".into(), w.clone())], AdamWSettings::default()).unwrap();
                opt.load_state(&state).unwrap();
                assert_eq!(opt.steps(), step);
            }
            let grads = quadratic_loss(&w).backward().unwrap();
            opt.step(&grads, 0.05).unwrap();
        }
        w.as_tensor().to_vec1::<f32>().unwrap()
    };
    assert_eq!(
        run(None),
        run(Some(7)),
        "resuming must not change the result"
    );

    let w = Var::new(&[0f32; 3], &Device::Cpu).unwrap();
    let mut opt = AdamW::new(vec![("w".into(), w)], AdamWSettings::default()).unwrap();
    let err = opt.load_state(&Default::default()).unwrap_err().to_string();
    assert!(err.contains("w.m"), "{err}");
}

#[test]
fn gradients_are_clipped_to_the_global_norm() {
    let a = Var::new(&[0f32, 0.], &Device::Cpu).unwrap();
    let b = Var::new(&[0f32], &Device::Cpu).unwrap();
    // Gradient of 3a0 + 4a1 + 12b = (3, 4, 12): norm 13.
    let loss = ((a.as_tensor() * Tensor::new(&[3f32, 4.], &Device::Cpu).unwrap())
        .unwrap()
        .sum_all()
        .unwrap()
        + (b.as_tensor() * 12.0).unwrap().sum_all().unwrap())
    .unwrap();
    let mut grads = loss.backward().unwrap();
    let norm = clip_grad_norm(&mut grads, &[&a, &b], 1.3).unwrap();
    assert!((norm - 13.0).abs() < 1e-5);
    let ga = grads.get(a.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
    let gb = grads.get(b.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
    assert!((ga[0] - 0.3).abs() < 1e-6 && (ga[1] - 0.4).abs() < 1e-6 && (gb[0] - 1.2).abs() < 1e-5);
}
