//! The output head and the per-token cross-entropy as one CPU op.
//!
//! Composed, the head writes (tokens x vocab) logits (4 x 128 tokens x 49,152 x 4 bytes
//! = 100 MB for SmolLM2), the loss reads them twice, its backward writes a gradient of
//! the same size, candle's backward pass zero-fills another such buffer and adds the
//! gradient into it, and the head's product reads the result twice more: a profile of
//! a last-4-block step put 37 ms in that zero-fill and add alone. Here the logits are
//! kept between the forward and the backward pass (as PyTorch saves them for
//! backward), turned into their own gradient in place, and multiplied straight into
//! the gradient of the hidden states and, when the head is trained, of its weight.

use super::fused_ce::f32s;
use crate::matmul::{product, Mat};
use crate::row_math::{exp_f32, log_sum_exp};
use crate::simd::avx2_variant;
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Storage, Tensor};
use rayon::prelude::*;
use std::borrow::Cow;
use std::sync::Mutex;

/// (rows, hidden) hidden states and the (vocab, hidden) head -> (rows,) cross-entropy
/// of the labels, at the scored rows only (0 elsewhere, with no gradient).
struct HeadCrossEntropy {
    /// The scored rows, ascending.
    scored: Vec<usize>,
    /// The label of each scored row.
    labels: Vec<u32>,
    /// All rows, scored or not.
    rows: usize,
    /// The (scored rows, vocab) logits, from the forward pass until the backward pass.
    logits: Mutex<Option<Vec<f32>>>,
}

/// The op's name in errors.
const OP: &str = "head cross-entropy";

/// The values of a contiguous f32 CPU tensor's storage.
fn f32_values<'a>(storage: &'a Storage, layout: &Layout, what: &str) -> Result<&'a [f32]> {
    match storage {
        Storage::Cpu(s) => f32s(OP, s, layout, what),
        _ => candle_core::bail!("{OP}: {what} must be on the CPU"),
    }
}

impl HeadCrossEntropy {
    /// (hidden, vocab), checked against the row count and the labels.
    fn shapes(&self, hidden: &Layout, head: &Layout) -> Result<(usize, usize)> {
        let (rows, width) = hidden.shape().dims2()?;
        let (vocab, head_width) = head.shape().dims2()?;
        if width != head_width || rows != self.rows {
            candle_core::bail!(
                "head cross-entropy: {rows} x {width} hidden states, a {vocab} x {head_width} head, {} labels",
                self.rows
            );
        }
        if let Some(bad) = self.labels.iter().find(|&&l| l as usize >= vocab) {
            candle_core::bail!("head cross-entropy: label {bad} outside a vocabulary of {vocab}");
        }
        Ok((width, vocab))
    }

    /// The scored rows of (rows, width) `values`, packed; borrowed when all are scored.
    fn scored_rows<'a>(&self, values: &'a [f32], width: usize) -> Cow<'a, [f32]> {
        if self.scored.len() == self.rows {
            return Cow::Borrowed(values);
        }
        let mut packed = Vec::with_capacity(self.scored.len() * width);
        for &row in &self.scored {
            packed.extend_from_slice(&values[row * width..(row + 1) * width]);
        }
        Cow::Owned(packed)
    }

    /// Per-row `values` of the scored rows spread over all rows, `zero` elsewhere.
    fn spread<T: Copy>(&self, values: Vec<T>, width: usize, zero: T) -> Vec<T> {
        if self.scored.len() == self.rows {
            return values;
        }
        let mut all = vec![zero; self.rows * width];
        for (packed, &row) in values.chunks_exact(width).zip(&self.scored) {
            all[row * width..(row + 1) * width].copy_from_slice(packed);
        }
        all
    }
}

avx2_variant!(
    /// Cross-entropy of each row of `logits` against its label.
    fn cross_entropy_rows => cross_entropy_rows_body(logits: &[f32], labels: &[u32], out: &mut [f32])
);

#[inline(always)]
fn cross_entropy_rows_body(logits: &[f32], labels: &[u32], out: &mut [f32]) {
    let vocab = logits.len() / labels.len().max(1);
    for ((row, &label), o) in logits.chunks_exact(vocab).zip(labels).zip(out) {
        *o = (log_sum_exp(row) - row[label as usize] as f64) as f32;
    }
}

avx2_variant!(
    /// Turns rows of logits into d(loss)/d(logits): (softmax - onehot) x upstream, with
    /// each row's log-sum-exp recovered as its cross-entropy plus its label's logit.
    fn logit_gradient_rows => logit_gradient_rows_body(
        logits: &mut [f32],
        labels: &[u32],
        ce: &[f32],
        upstream: &[f32],
    )
);

#[inline(always)]
fn logit_gradient_rows_body(logits: &mut [f32], labels: &[u32], ce: &[f32], upstream: &[f32]) {
    let vocab = logits.len() / labels.len().max(1);
    for (i, row) in logits.chunks_exact_mut(vocab).enumerate() {
        let (label, g) = (labels[i] as usize, upstream[i]);
        if g == 0.0 {
            row.fill(0.0);
            continue;
        }
        let lse = ce[i] + row[label];
        for v in row.iter_mut() {
            *v = exp_f32(*v - lse) * g;
        }
        row[label] -= g;
    }
}

/// Rows per parallel task of the row passes (a task covers ~3 MB of a 49k vocabulary).
const ROWS_PER_TASK: usize = 16;

impl CustomOp2 for HeadCrossEntropy {
    fn name(&self) -> &'static str {
        "head-cross-entropy"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (width, vocab) = self.shapes(l1, l2)?;
        let hidden = f32s(OP, s1, l1, "the hidden states")?;
        let head = f32s(OP, s2, l2, "the head")?;
        let rows = self.scored.len();
        let logits = product(
            Mat::row_major(&self.scored_rows(hidden, width), rows, width),
            Mat::row_major(head, vocab, width).t(),
            rayon::current_num_threads(),
        );
        let mut ce = vec![0f32; rows];
        ce.par_chunks_mut(ROWS_PER_TASK)
            .zip(logits.par_chunks(ROWS_PER_TASK * vocab))
            .zip(self.labels.par_chunks(ROWS_PER_TASK))
            .for_each(|((out, logits), labels)| cross_entropy_rows(logits, labels, out));
        *self.logits.lock().map_err(|_| lock_error())? = Some(logits);
        Ok((
            CpuStorage::F32(self.spread(ce, 1, 0.0)),
            Shape::from(self.rows),
        ))
    }

    fn bwd(
        &self,
        hidden: &Tensor,
        head: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let Some(mut grad) = self.logits.lock().map_err(|_| lock_error())?.take() else {
            candle_core::bail!("head cross-entropy: its backward pass ran twice");
        };
        let ce = res.to_vec1::<f32>()?;
        let upstream = grad_res.to_vec1::<f32>()?;
        let pick = |all: &[f32]| -> Vec<f32> { self.scored.iter().map(|&r| all[r]).collect() };
        let (ce, upstream) = (pick(&ce), pick(&upstream));
        let (hidden_storage, hidden_layout) = hidden.storage_and_layout();
        let (head_storage, head_layout) = head.storage_and_layout();
        let (width, vocab) = self.shapes(hidden_layout, head_layout)?;
        let rows = self.scored.len();
        let hidden_values = f32_values(&hidden_storage, hidden_layout, "the hidden states")?;
        let hidden_values = self.scored_rows(hidden_values, width);
        let head_values = f32_values(&head_storage, head_layout, "the head")?;
        grad.par_chunks_mut(ROWS_PER_TASK * vocab)
            .zip(self.labels.par_chunks(ROWS_PER_TASK))
            .zip(ce.par_chunks(ROWS_PER_TASK))
            .zip(upstream.par_chunks(ROWS_PER_TASK))
            .for_each(|(((logits, labels), ce), g)| logit_gradient_rows(logits, labels, ce, g));
        let threads = rayon::current_num_threads();
        let grad_view = Mat::row_major(&grad, rows, vocab);
        let grad_hidden = product(
            grad_view,
            Mat::row_major(head_values, vocab, width),
            threads,
        );
        // A frozen head (LoRA, last-N blocks of a tied model) needs no gradient.
        let grad_head = head.track_op().then(|| {
            product(
                grad_view.t(),
                Mat::row_major(&hidden_values, rows, width),
                threads,
            )
        });
        let device = hidden.device();
        let grad_hidden = self.spread(grad_hidden, width, 0.0);
        let grad_hidden = Tensor::from_vec(grad_hidden, (self.rows, width), device)?;
        let grad_head = grad_head
            .map(|v| Tensor::from_vec(v, (vocab, width), device))
            .transpose()?;
        Ok((Some(grad_hidden), grad_head))
    }
}

fn lock_error() -> candle_core::Error {
    candle_core::Error::Msg("head cross-entropy: a thread panicked holding the logits".into())
}

/// Per-row cross-entropy of `labels` under the logits `hidden · headᵀ`, for (rows,
/// hidden) f32 hidden states and a (vocab, hidden) f32 head on the CPU; differentiable
/// in both, without a (rows, vocab) tensor in the graph. A row labelled `None` is not
/// scored: its cross-entropy is 0 and no gradient flows from it, and the head is not
/// applied to it (in a batch of gene prompts a quarter of the positions are prompt,
/// which no objective reads).
pub fn head_cross_entropy(
    hidden: &Tensor,
    head: &Tensor,
    labels: &[Option<u32>],
) -> Result<Tensor> {
    let scored: Vec<usize> = (0..labels.len()).filter(|&i| labels[i].is_some()).collect();
    hidden.contiguous()?.apply_op2(
        &head.contiguous()?,
        HeadCrossEntropy {
            labels: labels.iter().flatten().copied().collect(),
            scored,
            rows: labels.len(),
            logits: Mutex::new(None),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_tensors::max_diff;
    use candle_core::{Device, Var, D};

    fn values(n: usize, seed: u64, scale: f64) -> Vec<f32> {
        let mut rng = crate::rng::SplitMix64::new(seed);
        (0..n)
            .map(|_| ((rng.next_f64() * 2.0 - 1.0) * scale) as f32)
            .collect()
    }

    /// The fused op's loss and both gradients equal candle's composition (product,
    /// log-softmax, gather) on a vocabulary that is not a multiple of the row lanes.
    #[test]
    fn matches_the_composed_head_and_loss_forward_and_backward() {
        let (rows, width, vocab) = (37, 24, 1003);
        let dev = Device::Cpu;
        let hidden = Var::from_vec(values(rows * width, 1, 1.0), (rows, width), &dev).unwrap();
        let head = Var::from_vec(values(vocab * width, 2, 0.5), (vocab, width), &dev).unwrap();
        let labels: Vec<u32> = (0..rows as u32)
            .map(|i| (i * 97 + 5) % vocab as u32)
            .collect();
        // Uneven upstream weights, one of them zero (a masked token).
        let weights: Vec<f32> = (0..rows).map(|i| (i % 4) as f32 * 0.25).collect();
        let weights = Tensor::new(weights.as_slice(), &dev).unwrap();

        let scored: Vec<Option<u32>> = labels.iter().map(|&l| Some(l)).collect();
        let fused = head_cross_entropy(&hidden, &head, &scored).unwrap();
        let logits = hidden.matmul(&head.t().unwrap()).unwrap();
        let log_probs = candle_nn::ops::log_softmax(&logits, D::Minus1).unwrap();
        let label_ids = Tensor::new(labels.as_slice(), &dev).unwrap();
        let composed = log_probs
            .gather(&label_ids.unsqueeze(1).unwrap(), 1)
            .unwrap()
            .squeeze(1)
            .unwrap()
            .neg()
            .unwrap();
        assert!(max_diff(&fused, &composed) < 2e-5);

        let fused_grads = (fused * &weights)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let composed_grads = (composed * &weights)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for var in [&hidden, &head] {
            let a = fused_grads.get(var).unwrap();
            let b = composed_grads.get(var).unwrap();
            assert!(
                max_diff(a, b) < 2e-5,
                "gradient differs by {}",
                max_diff(a, b)
            );
        }
    }

    #[test]
    fn a_frozen_head_gets_no_gradient_and_bad_labels_are_refused() {
        let dev = Device::Cpu;
        let hidden = Var::from_vec(values(8, 3, 1.0), (2, 4), &dev).unwrap();
        let head = Tensor::from_vec(values(20, 4, 1.0), (5, 4), &dev).unwrap();
        let loss = head_cross_entropy(&hidden, &head, &[Some(1), Some(4)]).unwrap();
        let grads = loss.sum_all().unwrap().backward().unwrap();
        assert!(grads.get(&hidden).is_some());
        assert!(grads.get(&head).is_none());
        let err = head_cross_entropy(&hidden, &head, &[Some(1), Some(5)]).unwrap_err();
        assert!(err.to_string().contains("label 5"), "{err}");
    }

    /// Unscored rows get cross-entropy 0 and a zero gradient row; the scored rows and
    /// the head's gradient equal those of the op over the scored rows alone.
    #[test]
    fn unscored_rows_are_zero_and_add_nothing() {
        let (rows, width, vocab) = (11, 8, 97);
        let dev = Device::Cpu;
        let all = values(rows * width, 5, 1.0);
        let hidden = Var::from_vec(all.clone(), (rows, width), &dev).unwrap();
        let head = Var::from_vec(values(vocab * width, 6, 0.5), (vocab, width), &dev).unwrap();
        let labels: Vec<Option<u32>> = (0..rows as u32)
            .map(|i| (i % 3 != 0).then_some((i * 31 + 2) % vocab as u32))
            .collect();
        let kept: Vec<usize> = (0..rows).filter(|&i| labels[i].is_some()).collect();
        let packed: Vec<f32> = kept
            .iter()
            .flat_map(|&r| all[r * width..(r + 1) * width].to_vec())
            .collect();
        let alone = Var::from_vec(packed, (kept.len(), width), &dev).unwrap();
        let alone_labels: Vec<Option<u32>> =
            labels.iter().filter(|l| l.is_some()).copied().collect();

        let ce = head_cross_entropy(&hidden, &head, &labels).unwrap();
        let ce_alone = head_cross_entropy(&alone, &head, &alone_labels).unwrap();
        let ce_values = ce.to_vec1::<f32>().unwrap();
        let alone_values = ce_alone.to_vec1::<f32>().unwrap();
        for (i, label) in labels.iter().enumerate() {
            match kept.iter().position(|&r| r == i) {
                Some(k) => assert_eq!(ce_values[i], alone_values[k]),
                None => assert!(label.is_none() && ce_values[i] == 0.0),
            }
        }
        let grads = ce.sum_all().unwrap().backward().unwrap();
        let grads_alone = ce_alone.sum_all().unwrap().backward().unwrap();
        let head_grad = grads.get(&head).unwrap();
        assert!(max_diff(head_grad, grads_alone.get(&head).unwrap()) < 1e-6);
        let hidden_grad = grads.get(&hidden).unwrap().to_vec2::<f32>().unwrap();
        let alone_grad = grads_alone.get(&alone).unwrap().to_vec2::<f32>().unwrap();
        for (i, row) in hidden_grad.iter().enumerate() {
            match kept.iter().position(|&r| r == i) {
                Some(k) => assert_eq!(row, &alone_grad[k]),
                None => assert!(row.iter().all(|&g| g == 0.0)),
            }
        }
    }
}
