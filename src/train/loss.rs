//! The training objectives, as pure functions of logits, labels and a response mask.
//!
//! - SFT: mean cross-entropy over the batch's response tokens.
//! - DFT: each token's cross-entropy times stop-grad(p), p = exp(-CE), averaged the same way.
//! - BFT (the authors' released code): per sample, the DFT loss averaged over that
//!   sample's response tokens, times s = 1 - p_conf^gamma, where p_conf = exp(min over
//!   windows of g consecutive response tokens (stride 1) of the mean log p), the whole
//!   response being one window when shorter than g; the loss is the mean over samples.
//! - BFT-v3 (the later paper): token weight clip(p_t / (C_t + eps), 0, 1), C_t the mean p
//!   over a window of g response tokens around t (shrunk at the ends); sample weight
//!   1 - min_t C_t; the same per-sample averaging.
//!
//! Every weight is computed from detached values and enters as a constant, so the
//! gradient flows only through the cross-entropy. The weights are exposed
//! ([`objective_weights`]) so a gradient check can hold them fixed.

use crate::error::{Error, Result};
use candle_core::{DType, Tensor, D};

/// A training objective.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Objective {
    /// Supervised fine-tuning.
    Sft,
    /// Dynamic fine-tuning.
    Dft,
    /// Balanced fine-tuning, as in the authors' code.
    Bft {
        /// Window length g in response tokens.
        window: usize,
        /// Exponent on p_conf.
        gamma: f64,
    },
    /// Balanced fine-tuning, version 3.
    BftV3 {
        /// Window length g in response tokens.
        window: usize,
        /// Added to C_t before dividing.
        eps: f64,
    },
}

impl Objective {
    /// BFT with the paper's defaults (g = 256, gamma = 1).
    pub fn bft() -> Self {
        Objective::Bft {
            window: 256,
            gamma: 1.0,
        }
    }

    /// BFT-v3 with g = 256, eps = 1e-6.
    pub fn bft_v3() -> Self {
        Objective::BftV3 {
            window: 256,
            eps: 1e-6,
        }
    }
}

/// Constant weights of one batch: per token (mask included) and per sample.
#[derive(Debug, Clone)]
pub struct ObjectiveWeights {
    /// (batch, seq) token weights, zero outside the response.
    pub token: Tensor,
    /// (batch,) sample weights, or `None` for a plain mean over the batch's tokens.
    pub sample: Option<Tensor>,
}

/// Per-token cross-entropy, (batch, seq), from logits (batch, seq, vocab) and labels
/// (batch, seq) u32. Differentiable (log-softmax, gather).
pub fn token_cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    if logits.device().is_cpu() {
        let (b, t, v) = logits.dims3()?;
        let flat = logits.to_dtype(DType::F32)?.reshape((b * t, v))?;
        let ce = super::fused_ce::cpu_cross_entropy(&flat, &labels.flatten_all()?)?;
        return Ok(ce.reshape((b, t))?);
    }
    composed_cross_entropy(logits, labels)
}

/// [`token_cross_entropy`] from candle's differentiable ops, for any device.
pub fn composed_cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let log_probs = candle_nn::ops::log_softmax(&logits.to_dtype(DType::F32)?, D::Minus1)?;
    let picked = log_probs
        .gather(&labels.unsqueeze(D::Minus1)?, D::Minus1)?
        .squeeze(D::Minus1)?;
    Ok(picked.neg()?)
}

/// The weights of `objective` for a batch, from detached per-token cross-entropy
/// (batch, seq) and the response mask (batch, seq; 1 on response tokens).
pub fn objective_weights(
    objective: Objective,
    ce: &Tensor,
    mask: &Tensor,
) -> Result<ObjectiveWeights> {
    let device = ce.device().clone();
    let ce_rows = ce.detach().to_dtype(DType::F32)?.to_vec2::<f32>()?;
    let mask_rows = mask.to_dtype(DType::F32)?.to_vec2::<f32>()?;
    if ce_rows.len() != mask_rows.len() {
        return Err(Error::InvalidArgument(
            "cross-entropy and mask differ in batch size".into(),
        ));
    }
    let (b, t) = (ce_rows.len(), ce_rows.first().map(Vec::len).unwrap_or(0));
    let mut token = vec![0f32; b * t];
    let mut sample = vec![0f32; b];
    for (i, (ce_row, mask_row)) in ce_rows.iter().zip(&mask_rows).enumerate() {
        let positions: Vec<usize> = (0..t).filter(|&j| mask_row[j] > 0.0).collect();
        let log_p: Vec<f64> = positions.iter().map(|&j| -(ce_row[j] as f64)).collect();
        let p: Vec<f64> = log_p.iter().map(|l| l.exp()).collect();
        let (token_w, sample_w): (Vec<f64>, f64) = match objective {
            Objective::Sft => (vec![1.0; p.len()], 1.0),
            Objective::Dft => (p.clone(), 1.0),
            Objective::Bft { window, gamma } => {
                let p_conf = min_window_mean(&log_p, window).map(f64::exp).unwrap_or(1.0);
                (p.clone(), 1.0 - p_conf.powf(gamma))
            }
            Objective::BftV3 { window, eps } => {
                let c = centred_window_means(&p, window);
                let w = p
                    .iter()
                    .zip(&c)
                    .map(|(p, c)| (p / (c + eps)).clamp(0.0, 1.0))
                    .collect();
                let min_c = c.iter().cloned().fold(f64::INFINITY, f64::min);
                (w, if c.is_empty() { 0.0 } else { 1.0 - min_c })
            }
        };
        for (&j, w) in positions.iter().zip(token_w) {
            token[i * t + j] = w as f32;
        }
        sample[i] = sample_w as f32;
    }
    let token = Tensor::from_vec(token, (b, t), &device)?;
    let sample = match objective {
        Objective::Sft | Objective::Dft => None,
        _ => Some(Tensor::from_vec(sample, b, &device)?),
    };
    Ok(ObjectiveWeights { token, sample })
}

/// The loss given fixed weights: Σ w·CE / Σ mask over the batch, or, with sample
/// weights, the mean over samples (with any response token) of s_i · Σ_t w·CE / n_i.
pub fn weighted_loss(ce: &Tensor, mask: &Tensor, weights: &ObjectiveWeights) -> Result<Tensor> {
    let mask = mask.to_dtype(DType::F32)?;
    let weighted = (ce * &weights.token)?;
    match &weights.sample {
        None => {
            let tokens = mask.sum_all()?.to_scalar::<f32>()?;
            if tokens == 0.0 {
                return Err(Error::InvalidArgument(
                    "the batch has no response tokens".into(),
                ));
            }
            Ok((weighted.sum_all()? / tokens as f64)?)
        }
        Some(sample) => {
            let counts = mask.sum(D::Minus1)?;
            let count_values = counts.to_vec1::<f32>()?;
            let present = count_values.iter().filter(|&&c| c > 0.0).count();
            if present == 0 {
                return Err(Error::InvalidArgument(
                    "the batch has no response tokens".into(),
                ));
            }
            // Samples without response tokens get count 1 and weight 0, so they add
            // nothing and divide nothing by zero.
            let safe_counts = counts.maximum(1f32)?;
            let per_sample = (weighted.sum(D::Minus1)? / safe_counts)?;
            Ok(((per_sample * sample)?.sum_all()? / present as f64)?)
        }
    }
}

/// The objective's loss for a batch: weights from the detached cross-entropy, then the
/// weighted loss, differentiable in `logits`.
pub fn objective_loss(
    objective: Objective,
    logits: &Tensor,
    labels: &Tensor,
    mask: &Tensor,
) -> Result<Tensor> {
    let ce = token_cross_entropy(logits, labels)?;
    let weights = objective_weights(objective, &ce, mask)?;
    weighted_loss(&ce, mask, &weights)
}

/// Minimum over windows of `g` consecutive values (stride 1) of the window mean; the
/// whole sequence is one window when shorter than `g`. `None` when empty.
pub fn min_window_mean(values: &[f64], g: usize) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let g = g.max(1).min(values.len());
    let mut sum: f64 = values[..g].iter().sum();
    let mut best = sum / g as f64;
    for i in g..values.len() {
        sum += values[i] - values[i - g];
        best = best.min(sum / g as f64);
    }
    Some(best)
}

/// For each position, the mean over the window of `g` values starting `g / 2` before it,
/// cut at both ends of the sequence.
pub fn centred_window_means(values: &[f64], g: usize) -> Vec<f64> {
    let g = g.max(1);
    let n = values.len();
    let mut prefix = vec![0f64; n + 1];
    for (i, v) in values.iter().enumerate() {
        prefix[i + 1] = prefix[i] + v;
    }
    (0..n)
        .map(|t| {
            let start = t.saturating_sub(g / 2);
            let end = (start + g).min(n);
            (prefix[end] - prefix[start]) / (end - start) as f64
        })
        .collect()
}
