//! Per-token cross-entropy as one CPU op with its own backward pass.
//!
//! Composed from candle ops, log-softmax over a 49k vocabulary allocates and walks
//! several (tokens x vocab) tensors forward and again backward; this op reads the
//! logits twice forward and writes the gradient once backward: (softmax - onehot) x g.
//! Other devices use the composed form.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// (rows, vocab) f32 logits and (rows,) u32 labels -> (rows,) cross-entropy.
struct CrossEntropy;

/// Gradient of [`CrossEntropy`] with respect to the logits.
struct CrossEntropyGrad;

/// The op's name in errors.
const OP: &str = "fused cross-entropy";

fn contiguous<'a, T>(op: &str, data: &'a [T], layout: &Layout, what: &str) -> Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("{op}: {what} must be contiguous"),
    }
}

/// The values of a contiguous f32 storage, or an error naming `op` and `what`.
pub(super) fn f32s<'a>(op: &str, s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    match s {
        CpuStorage::F32(v) => contiguous(op, v, l, what),
        _ => candle_core::bail!("{op}: {what} must be f32"),
    }
}

fn u32s<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [u32]> {
    match s {
        CpuStorage::U32(v) => contiguous(OP, v, l, what),
        _ => candle_core::bail!("{OP}: {what} must be u32"),
    }
}

/// The maximum of a row and the sum of exp(x - max) over it (in f64): log-sum-exp is
/// max + ln(sum).
pub(super) fn log_sum_exp(row: &[f32]) -> (f32, f64) {
    let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = row.iter().map(|&x| ((x - max) as f64).exp()).sum();
    (max, sum)
}

/// The (rows, vocab) logits and the (rows,) labels, checked against each other: `(vocab,
/// logits, labels)`.
fn logits_and_labels<'a>(
    s1: &'a CpuStorage,
    l1: &Layout,
    s2: &'a CpuStorage,
    l2: &Layout,
) -> Result<(usize, &'a [f32], &'a [u32])> {
    let (rows, vocab) = l1.shape().dims2()?;
    if l2.shape().dims1()? != rows {
        candle_core::bail!(
            "fused cross-entropy: {rows} rows of logits, {:?} labels",
            l2.shape()
        );
    }
    let labels = u32s(s2, l2, "labels")?;
    if let Some(bad) = labels.iter().find(|&&l| l as usize >= vocab) {
        candle_core::bail!("fused cross-entropy: label {bad} outside a vocabulary of {vocab}");
    }
    Ok((vocab, f32s(OP, s1, l1, "logits")?, labels))
}

impl CustomOp2 for CrossEntropy {
    fn name(&self) -> &'static str {
        "fused-cross-entropy"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (vocab, logits, labels) = logits_and_labels(s1, l1, s2, l2)?;
        let rows = labels.len();
        let out: Vec<f32> = logits
            .par_chunks(vocab)
            .zip(labels.par_iter())
            .map(|(row, &label)| {
                let (max, sum) = log_sum_exp(row);
                (max as f64 + sum.ln() - row[label as usize] as f64) as f32
            })
            .collect();
        Ok((CpuStorage::F32(out), Shape::from(rows)))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        labels: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = logits.apply_op3_no_bwd(labels, &grad_res.contiguous()?, &CrossEntropyGrad)?;
        Ok((Some(grad), None))
    }
}

impl CustomOp3 for CrossEntropyGrad {
    fn name(&self) -> &'static str {
        "fused-cross-entropy-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (vocab, logits, labels) = logits_and_labels(s1, l1, s2, l2)?;
        let rows = labels.len();
        let upstream = f32s(OP, s3, l3, "gradient")?;
        let mut out = vec![0f32; rows * vocab];
        out.par_chunks_mut(vocab)
            .zip(logits.par_chunks(vocab))
            .zip(labels.par_iter().zip(upstream.par_iter()))
            .for_each(|((grad, row), (&label, &g))| {
                if g == 0.0 {
                    return;
                }
                let (max, sum) = log_sum_exp(row);
                let scale = g as f64 / sum;
                for (o, &x) in grad.iter_mut().zip(row) {
                    *o = (((x - max) as f64).exp() * scale) as f32;
                }
                grad[label as usize] -= g;
            });
        Ok((CpuStorage::F32(out), Shape::from((rows, vocab))))
    }
}

/// Per-row cross-entropy of (rows, vocab) f32 logits on the CPU, differentiable in the
/// logits.
pub fn cpu_cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    logits
        .contiguous()?
        .apply_op2(&labels.contiguous()?, CrossEntropy)
}
