//! One optimizer step at a time: micro-batches in a seeded order, the objective's loss,
//! accumulated gradients, clipping, AdamW; and the held-out score every objective is
//! compared on (plain cross-entropy and token accuracy on held-out answers).

use super::data::{Batch, TokenizedExample};
use super::loss::{objective_weights, token_cross_entropy, weighted_loss, Objective};
use super::model::TrainableDecoder;
use super::optim::{clip_scale, grad_norm, AdamW, AdamWSettings, Schedule};
use crate::error::{Error, Result};
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Var, D};

/// How the trainer steps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainerSettings {
    /// The objective.
    pub objective: Objective,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// AdamW settings.
    pub adamw: AdamWSettings,
    /// Largest global gradient norm (0: no clipping).
    pub clip_norm: f64,
    /// Examples per micro-batch.
    pub batch_size: usize,
    /// Micro-batches per optimizer step.
    pub grad_accum: usize,
    /// Seed of the data order.
    pub seed: u64,
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepReport {
    /// Optimizer steps done, this one included.
    pub step: usize,
    /// Learning rate used.
    pub learning_rate: f64,
    /// The objective's loss (mean over micro-batches).
    pub loss: f64,
    /// Plain mean cross-entropy of the step's answer tokens (comparable across objectives).
    pub cross_entropy: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Answer tokens in the step.
    pub tokens: usize,
    /// All tokens fed in the step (prompts and answers), for throughput.
    pub all_tokens: usize,
}

/// Held-out score.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HeldoutReport {
    /// Mean cross-entropy per answer token.
    pub cross_entropy: f64,
    /// Share of answer tokens whose most likely prediction is right.
    pub token_accuracy: f64,
    /// Answer tokens scored.
    pub tokens: usize,
}

/// A model, its optimizer and the settings that step them.
pub struct Trainer {
    model: TrainableDecoder,
    optimizer: AdamW,
    settings: TrainerSettings,
    device: Device,
}

impl Trainer {
    /// A trainer over the model's trained variables, with fresh optimizer moments.
    pub fn new(
        model: TrainableDecoder,
        settings: TrainerSettings,
        device: &Device,
    ) -> Result<Self> {
        let optimizer = AdamW::new(model.trained_variables(), settings.adamw)?;
        Ok(Trainer {
            model,
            optimizer,
            settings,
            device: device.clone(),
        })
    }

    /// The model.
    pub fn model(&self) -> &TrainableDecoder {
        &self.model
    }

    /// The optimizer (for checkpoints).
    pub fn optimizer(&self) -> &AdamW {
        &self.optimizer
    }

    /// Model and optimizer, for restoring a checkpoint.
    pub fn parts_mut(&mut self) -> (&mut TrainableDecoder, &mut AdamW) {
        (&mut self.model, &mut self.optimizer)
    }

    /// Optimizer steps done.
    pub fn steps_done(&self) -> usize {
        self.optimizer.steps()
    }

    /// The examples of micro-batch `micro` of step `step`: a fresh seeded permutation of
    /// the training set each epoch, walked in order, so the order depends only on the
    /// seed and the step (which is what makes resuming exact).
    pub fn batch_indices(&self, n: usize, step: usize, micro: usize) -> Vec<usize> {
        let s = &self.settings;
        let start = (step * s.grad_accum + micro) * s.batch_size;
        let mut epoch_order: Option<(usize, Vec<usize>)> = None;
        (start..start + s.batch_size)
            .map(|position| {
                let epoch = position / n;
                if epoch_order.as_ref().map(|(e, _)| *e) != Some(epoch) {
                    epoch_order = Some((epoch, permutation(n, s.seed, epoch as u64)));
                }
                epoch_order
                    .as_ref()
                    .map(|(_, o)| o[position % n])
                    .unwrap_or(0)
            })
            .collect()
    }

    /// Takes the next optimizer step on `train`. A loss or gradient that is not finite
    /// is an error and the weights are left as they were.
    pub fn step(&mut self, train: &[TokenizedExample]) -> Result<StepReport> {
        if train.is_empty() {
            return Err(Error::InvalidArgument("no training examples".into()));
        }
        let s = self.settings;
        let step = self.optimizer.steps();
        let vars: Vec<Var> = self.optimizer.variables().cloned().collect();
        let mut accumulated: Option<GradStore> = None;
        let (mut loss_sum, mut ce_sum, mut tokens, mut all_tokens) = (0.0, 0.0, 0usize, 0usize);
        for micro in 0..s.grad_accum {
            let examples: Vec<&TokenizedExample> = self
                .batch_indices(train.len(), step, micro)
                .into_iter()
                .map(|i| &train[i])
                .collect();
            let batch = Batch::collate(&examples, &self.device)?;
            // One cross-entropy pass serves the objective and the plain CE reported.
            let ce = self
                .model
                .token_cross_entropy(&batch.input, &batch.labels, &batch.mask)?;
            let weights = objective_weights(s.objective, &ce, &batch.mask)?;
            let loss = weighted_loss(&ce, &batch.mask, &weights)?;
            let value = loss.to_scalar::<f32>()? as f64;
            if !value.is_finite() {
                return Err(Error::Diverged {
                    step: step + 1,
                    what: format!("loss {value}"),
                });
            }
            loss_sum += value;
            let ce_total = (ce.detach() * &batch.mask)?.sum_all()?.to_scalar::<f32>()? as f64;
            ce_sum += ce_total / batch.response_tokens.max(1) as f64;
            tokens += batch.response_tokens;
            all_tokens += examples
                .iter()
                .map(|e| e.tokens.len().saturating_sub(1))
                .sum::<usize>();
            let grads = (loss / s.grad_accum as f64)?.backward()?;
            accumulated = Some(match accumulated {
                None => grads,
                Some(mut sum) => {
                    for v in &vars {
                        if let Some(g) = grads.get(v.as_tensor()) {
                            let total = match sum.get(v.as_tensor()) {
                                Some(previous) => (previous + g)?,
                                None => g.clone(),
                            };
                            sum.insert(v.as_tensor(), total);
                        }
                    }
                    sum
                }
            });
        }
        let grads = accumulated.ok_or_else(|| Error::InvalidArgument("no micro-batch".into()))?;
        let var_refs: Vec<&Var> = vars.iter().collect();
        let grad_norm = grad_norm(&grads, &var_refs)?;
        if !grad_norm.is_finite() {
            return Err(Error::Diverged {
                step: step + 1,
                what: format!("gradient norm {grad_norm}"),
            });
        }
        let learning_rate = s.schedule.rate(step);
        self.optimizer
            .step_scaled(&grads, learning_rate, clip_scale(grad_norm, s.clip_norm))?;
        Ok(StepReport {
            step: step + 1,
            learning_rate,
            loss: loss_sum / s.grad_accum as f64,
            cross_entropy: ce_sum / s.grad_accum as f64,
            grad_norm,
            tokens,
            all_tokens,
        })
    }

    /// Plain cross-entropy and token accuracy over every held-out answer token.
    pub fn heldout(&self, examples: &[TokenizedExample]) -> Result<HeldoutReport> {
        heldout_score(
            &self.model,
            examples,
            self.settings.batch_size,
            &self.device,
        )
    }
}

/// Plain cross-entropy and token accuracy of `model` over every answer token of
/// `examples`, in batches of `batch_size`.
pub fn heldout_score(
    model: &TrainableDecoder,
    examples: &[TokenizedExample],
    batch_size: usize,
    device: &Device,
) -> Result<HeldoutReport> {
    let (mut ce_total, mut correct, mut tokens) = (0.0f64, 0usize, 0usize);
    for chunk in examples.chunks(batch_size.max(1)) {
        let refs: Vec<&TokenizedExample> = chunk.iter().collect();
        let batch = Batch::collate(&refs, device)?;
        let logits = model.forward(&batch.input)?.detach();
        let ce = token_cross_entropy(&logits, &batch.labels)?;
        ce_total += (ce * &batch.mask)?.sum_all()?.to_scalar::<f32>()? as f64;
        let predicted = logits.argmax(D::Minus1)?;
        let hits = predicted
            .eq(&batch.labels)?
            .to_dtype(DType::F32)?
            .mul(&batch.mask)?
            .sum_all()?
            .to_scalar::<f32>()?;
        correct += hits as usize;
        tokens += batch.response_tokens;
    }
    if tokens == 0 {
        return Err(Error::InvalidArgument("no held-out answer tokens".into()));
    }
    Ok(HeldoutReport {
        cross_entropy: ce_total / tokens as f64,
        token_accuracy: correct as f64 / tokens as f64,
        tokens,
    })
}

/// The order of epoch `epoch`.
fn permutation(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mixed =
        seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ epoch.wrapping_mul(0xd1b5_4a32_d192_ed03);
    crate::rng::SplitMix64::new(mixed).permutation(n)
}

#[cfg(test)]
mod tests {
    use super::permutation;

    #[test]
    fn permutations_are_seeded_and_complete() {
        let a = permutation(100, 1, 0);
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_eq!(a, permutation(100, 1, 0));
        assert_ne!(a, permutation(100, 1, 1));
        assert_ne!(a, permutation(100, 2, 0));
    }
}
