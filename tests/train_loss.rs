//! The four objectives on hand-computed cases, and their gradients against finite
//! differences on a tiny linear model (weights held fixed, as stop-grad makes them).

use bftembed::train::loss::{centred_window_means, min_window_mean};
use bftembed::train::{
    objective_loss, objective_weights, token_cross_entropy, weighted_loss, Objective,
};
use candle_core::{Device, Tensor, Var};

/// Two samples of four positions over a 2-token vocabulary, label 0 everywhere, so each
/// position's p is exactly the probability written here. Response masks: A = positions
/// 1..3, B = positions 2..3.
fn batch() -> (Tensor, Tensor, Tensor, [Vec<f64>; 2]) {
    let p = [[0.7f64, 0.9, 0.5, 0.2], [0.4, 0.8, 0.6, 0.3]];
    let logits: Vec<f32> = p
        .iter()
        .flat_map(|row| {
            row.iter()
                .flat_map(|&q| [q.ln() as f32, (1.0 - q).ln() as f32])
        })
        .collect();
    let logits = Tensor::from_vec(logits, (2, 4, 2), &Device::Cpu).unwrap();
    let labels = Tensor::zeros((2, 4), candle_core::DType::U32, &Device::Cpu).unwrap();
    let mask = Tensor::new(&[[0f32, 1., 1., 1.], [0., 0., 1., 1.]], &Device::Cpu).unwrap();
    (logits, labels, mask, [vec![0.9, 0.5, 0.2], vec![0.6, 0.3]])
}

fn value(objective: Objective) -> f64 {
    let (logits, labels, mask, _) = batch();
    objective_loss(objective, &logits, &labels, &mask)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap() as f64
}

fn close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-5, "{a} vs {b}");
}

#[test]
fn sft_and_dft_average_over_the_batch_response_tokens() {
    let (_, _, _, resp) = batch();
    let all: Vec<f64> = resp.iter().flatten().copied().collect();
    close(
        value(Objective::Sft),
        all.iter().map(|p| -p.ln()).sum::<f64>() / 5.0,
    );
    close(
        value(Objective::Dft),
        all.iter().map(|p| -p * p.ln()).sum::<f64>() / 5.0,
    );
}

#[test]
fn bft_weights_samples_by_their_least_confident_window() {
    let (_, _, _, [a, b]) = batch();
    let dft_mean = |r: &[f64]| r.iter().map(|p| -p * p.ln()).sum::<f64>() / r.len() as f64;
    // g = 2: A's windows (0.9, 0.5) and (0.5, 0.2); the second has the lower mean log p.
    let s_a = 1.0 - ((0.5f64.ln() + 0.2f64.ln()) / 2.0).exp();
    let s_b = 1.0 - ((0.6f64.ln() + 0.3f64.ln()) / 2.0).exp();
    close(
        value(Objective::Bft {
            window: 2,
            gamma: 1.0,
        }),
        (s_a * dft_mean(&a) + s_b * dft_mean(&b)) / 2.0,
    );
    // g longer than the response: the whole response is one window (geometric mean).
    let geo = |r: &[f64]| (r.iter().map(|p| p.ln()).sum::<f64>() / r.len() as f64).exp();
    close(
        value(Objective::Bft {
            window: 256,
            gamma: 1.0,
        }),
        ((1.0 - geo(&a)) * dft_mean(&a) + (1.0 - geo(&b)) * dft_mean(&b)) / 2.0,
    );
    // gamma sharpens the confidence.
    close(
        value(Objective::Bft {
            window: 256,
            gamma: 2.0,
        }),
        ((1.0 - geo(&a).powi(2)) * dft_mean(&a) + (1.0 - geo(&b).powi(2)) * dft_mean(&b)) / 2.0,
    );
}

#[test]
fn bft_v3_uses_local_confidence_per_token_and_its_minimum_per_sample() {
    // g = 2, windows start one token before t and are cut at the ends.
    // A: C = [0.7, 0.7, 0.35]; w = [1 (clipped), 0.5/0.7, 0.2/0.35]; s = 1 - 0.35.
    // B: C = [0.45, 0.45]; w = [1 (clipped), 0.3/0.45]; s = 1 - 0.45.
    let ce = |p: f64| -p.ln();
    let l_a = (ce(0.9) + (0.5 / 0.7) * ce(0.5) + (0.2 / 0.35) * ce(0.2)) / 3.0;
    let l_b = (ce(0.6) + (0.3 / 0.45) * ce(0.3)) / 2.0;
    let expected = ((1.0 - 0.35) * l_a + (1.0 - 0.45) * l_b) / 2.0;
    let got = value(Objective::BftV3 {
        window: 2,
        eps: 0.0,
    });
    assert!((got - expected).abs() < 1e-4, "{got} vs {expected}");
    let c = centred_window_means(&[0.9, 0.5, 0.2], 2);
    for (got, want) in c.iter().zip([0.7, 0.7, 0.35]) {
        assert!((got - want).abs() < 1e-12, "{c:?}");
    }
}

#[test]
fn windows_follow_the_definition() {
    assert_eq!(min_window_mean(&[-1.0, -3.0, -1.0, -1.0], 2), Some(-2.0));
    assert_eq!(min_window_mean(&[-1.0, -2.0], 8), Some(-1.5));
    assert_eq!(min_window_mean(&[], 4), None);
}

#[test]
fn analytic_gradients_match_finite_differences() {
    // logits = x · W, W (3 × 5) trainable; weights computed once at W0 and held fixed.
    let x = Tensor::new(
        &[
            [
                [0.5f32, -1.0, 0.3],
                [1.2, 0.1, -0.4],
                [-0.7, 0.8, 0.9],
                [0.2, 0.2, -1.1],
            ],
            [
                [0.9, 0.4, -0.2],
                [-0.3, -0.6, 0.5],
                [0.6, -1.2, 0.1],
                [-0.8, 0.3, 0.7],
            ],
        ],
        &Device::Cpu,
    )
    .unwrap();
    let labels = Tensor::new(&[[1u32, 4, 0, 2], [3, 3, 1, 0]], &Device::Cpu).unwrap();
    let mask = Tensor::new(&[[0f32, 1., 1., 1.], [1., 1., 1., 0.]], &Device::Cpu).unwrap();
    let w0: Vec<f32> = (0..15)
        .map(|i| ((i * 7 % 11) as f32 - 5.0) / 10.0)
        .collect();
    for objective in [
        Objective::Sft,
        Objective::Dft,
        Objective::Bft {
            window: 2,
            gamma: 1.0,
        },
        Objective::BftV3 {
            window: 2,
            eps: 1e-6,
        },
    ] {
        let w = Var::from_vec(w0.clone(), (3, 5), &Device::Cpu).unwrap();
        let logits = |w: &Tensor| x.broadcast_matmul(w).unwrap();
        let ce0 = token_cross_entropy(&logits(w.as_tensor()), &labels).unwrap();
        let weights = objective_weights(objective, &ce0, &mask).unwrap();
        let loss_at = |w: &Tensor| -> f64 {
            let ce = token_cross_entropy(&logits(w), &labels).unwrap();
            weighted_loss(&ce, &mask, &weights)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap() as f64
        };
        let ce = token_cross_entropy(&logits(w.as_tensor()), &labels).unwrap();
        let grads = weighted_loss(&ce, &mask, &weights)
            .unwrap()
            .backward()
            .unwrap();
        let analytic = grads
            .get(&w)
            .expect("W gets a gradient")
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let h = 1e-2f32;
        for i in 0..15 {
            let mut plus = w0.clone();
            let mut minus = w0.clone();
            plus[i] += h;
            minus[i] -= h;
            let numeric = (loss_at(&Tensor::from_vec(plus, (3, 5), &Device::Cpu).unwrap())
                - loss_at(&Tensor::from_vec(minus, (3, 5), &Device::Cpu).unwrap()))
                / (2.0 * h as f64);
            assert!(
                (analytic[i] as f64 - numeric).abs() < 2e-3 * (1.0 + numeric.abs()),
                "{objective:?} W[{i}]: analytic {} vs numeric {numeric}",
                analytic[i]
            );
        }
    }
}

#[test]
fn a_batch_without_response_tokens_is_an_error() {
    let (logits, labels, _, _) = batch();
    let mask = Tensor::zeros((2, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
    for objective in [Objective::Sft, Objective::bft()] {
        let err = objective_loss(objective, &logits, &labels, &mask)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no response tokens"), "{err}");
    }
}

#[test]
fn the_fused_cpu_cross_entropy_equals_the_composed_one_with_its_gradient() {
    // A vocabulary wide enough for the parallel row loop, with large logits.
    let (rows, vocab) = (6usize, 3000usize);
    let values: Vec<f32> = (0..rows * vocab)
        .map(|i| ((i * 2_654_435_761usize) % 1000) as f32 / 40.0 - 12.0)
        .collect();
    let labels: Vec<u32> = (0..rows).map(|i| (i * 977 % vocab) as u32).collect();
    let upstream: Vec<f32> = (0..rows).map(|i| 0.5 + i as f32).collect();
    let labels = Tensor::from_vec(labels, (1, rows), &Device::Cpu).unwrap();
    let upstream = Tensor::from_vec(upstream, (1, rows), &Device::Cpu).unwrap();
    let mut results = Vec::new();
    for fused in [true, false] {
        let w = Var::from_vec(values.clone(), (1, rows, vocab), &Device::Cpu).unwrap();
        let ce = if fused {
            token_cross_entropy(w.as_tensor(), &labels).unwrap()
        } else {
            bftembed::train::composed_cross_entropy(w.as_tensor(), &labels).unwrap()
        };
        let grads = (&ce * &upstream)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let grad = grads
            .get(&w)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        results.push((ce.flatten_all().unwrap().to_vec1::<f32>().unwrap(), grad));
    }
    let (fused, composed) = (&results[0], &results[1]);
    for (a, b) in fused.0.iter().zip(&composed.0) {
        assert!((a - b).abs() < 1e-4 * (1.0 + b.abs()), "CE {a} vs {b}");
    }
    for (a, b) in fused.1.iter().zip(&composed.1) {
        assert!((a - b).abs() < 1e-5, "gradient {a} vs {b}");
    }
}
