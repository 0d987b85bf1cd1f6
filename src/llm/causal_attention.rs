//! Causal self-attention over whole sequences (the training forward pass) as one CPU
//! op, with its own backward pass.
//!
//! Composed from candle ops, attention over a batch allocates the scores, a (seq, seq)
//! mask and its broadcast sum, the probabilities, and runs each batched product as a
//! series of small multi-threaded products; backward, every one of those nodes
//! zero-fills and adds a gradient. A profile of a last-4-block step of SmolLM2 put 75
//! ms per step in the frozen blocks' attention alone (about 26 GFLOP/s). Here each
//! (sequence, key/value head) pair is one task: the query heads sharing that key/value
//! head are multiplied together, the mask is the loop bound, and backward recomputes
//! the probabilities instead of keeping them (as flash attention does).
//!
//! Layouts: q (rows, heads, seq, d), k and v (rows, kv_heads, seq, d), all contiguous;
//! the output is (rows, heads, seq, d).

use crate::matmul::{gemm, Element, Mat};
use crate::row_math::softmax_row;
use crate::simd::avx2_variant;
use candle_core::{
    CpuStorage, CustomOp3, DType, Device, Layout, Result, Shape, Storage, Tensor, WithDType,
};
use rayon::prelude::*;

/// True when the op serves these tensors (CPU, f32 or f64).
pub(super) fn serves(q: &Tensor) -> bool {
    q.device().is_cpu() && matches!(q.dtype(), DType::F32 | DType::F64)
}

/// Softmax of the causal part of each row of a (groups x seq, seq) score block: row i
/// of each head sees columns 0..=i; the rest become 0.
trait CausalSoftmax: Element + Send + Sync {
    fn causal_softmax(scores: &mut [Self], seq: usize, scale: f64);
}

avx2_variant!(
    fn causal_softmax_f32 => causal_softmax_f32_body(scores: &mut [f32], seq: usize, scale: f32)
);

#[inline(always)]
fn causal_softmax_f32_body(scores: &mut [f32], seq: usize, scale: f32) {
    for (r, row) in scores.chunks_exact_mut(seq).enumerate() {
        let (seen, unseen) = row.split_at_mut(r % seq + 1);
        for v in seen.iter_mut() {
            *v *= scale;
        }
        softmax_row(seen);
        unseen.fill(0.0);
    }
}

impl CausalSoftmax for f32 {
    fn causal_softmax(scores: &mut [f32], seq: usize, scale: f64) {
        causal_softmax_f32(scores, seq, scale as f32);
    }
}

impl CausalSoftmax for f64 {
    fn causal_softmax(scores: &mut [f64], seq: usize, scale: f64) {
        for (r, row) in scores.chunks_exact_mut(seq).enumerate() {
            let (seen, unseen) = row.split_at_mut(r % seq + 1);
            let max = seen
                .iter()
                .map(|v| v * scale)
                .fold(f64::NEG_INFINITY, f64::max);
            let mut sum = 0.0;
            for v in seen.iter_mut() {
                *v = (*v * scale - max).exp();
                sum += *v;
            }
            for v in seen.iter_mut() {
                *v /= sum;
            }
            unseen.fill(0.0);
        }
    }
}

/// The dimensions of one call.
#[derive(Clone, Copy)]
struct Dims {
    heads: usize,
    kv_heads: usize,
    seq: usize,
    d: usize,
}

impl Dims {
    fn of(q: &Layout, k: &Layout, v: &Layout) -> Result<Self> {
        let (rows, heads, seq, d) = q.shape().dims4()?;
        let (k_rows, kv_heads, k_seq, k_d) = k.shape().dims4()?;
        if (k_rows, k_seq, k_d) != (rows, seq, d)
            || v.shape() != k.shape()
            || kv_heads == 0
            || heads % kv_heads != 0
        {
            candle_core::bail!(
                "causal attention: q {:?}, k {:?}, v {:?}",
                q.shape(),
                k.shape(),
                v.shape()
            );
        }
        Ok(Dims {
            heads,
            kv_heads,
            seq,
            d,
        })
    }

    fn groups(&self) -> usize {
        self.heads / self.kv_heads
    }

    /// Values of one unit's stacked query heads (groups x seq x d).
    fn query_block(&self) -> usize {
        self.groups() * self.seq * self.d
    }

    /// Values of one key/value head (seq x d).
    fn kv_block(&self) -> usize {
        self.seq * self.d
    }

    fn scale(&self) -> f64 {
        1.0 / (self.d as f64).sqrt()
    }
}

/// The probabilities (groups x seq, seq) of one unit.
fn probabilities<T: CausalSoftmax>(dims: Dims, q: &[T], k: &[T]) -> Vec<T> {
    let (gs, seq, d) = (dims.groups() * dims.seq, dims.seq, dims.d);
    let mut p = vec![T::ZERO; gs * seq];
    gemm(
        &mut p,
        Mat::row_major(q, gs, d),
        Mat::row_major(k, seq, d).t(),
        false,
        1,
    );
    T::causal_softmax(&mut p, seq, dims.scale());
    p
}

fn forward<T: CausalSoftmax>(dims: Dims, q: &[T], k: &[T], v: &[T]) -> Vec<T> {
    let (qb, kb) = (dims.query_block(), dims.kv_block());
    let (gs, seq, d) = (dims.groups() * dims.seq, dims.seq, dims.d);
    let mut out = vec![T::ZERO; q.len()];
    out.par_chunks_mut(qb)
        .zip(q.par_chunks(qb))
        .zip(k.par_chunks(kb).zip(v.par_chunks(kb)))
        .for_each(|((out, q), (k, v))| {
            let p = probabilities(dims, q, k);
            gemm(
                out,
                Mat::row_major(&p, gs, seq),
                Mat::row_major(v, seq, d),
                false,
                1,
            );
        });
    out
}

/// The gradients of q, k and v.
struct Gradients<T>(Vec<T>, Vec<T>, Vec<T>);

type GradientTensors = (Option<Tensor>, Option<Tensor>, Option<Tensor>);

impl<T: WithDType> Gradients<T> {
    fn into_tensors(self, shapes: &[&Shape; 3], device: &Device) -> Result<GradientTensors> {
        Ok((
            Some(Tensor::from_vec(self.0, shapes[0], device)?),
            Some(Tensor::from_vec(self.1, shapes[1], device)?),
            Some(Tensor::from_vec(self.2, shapes[2], device)?),
        ))
    }
}

/// Gradients (dq, dk, dv) from the output's gradient `g`.
fn backward<T: CausalSoftmax + WithDType>(
    dims: Dims,
    (q, k, v): (&[T], &[T], &[T]),
    g: &[T],
) -> Gradients<T> {
    let (qb, kb) = (dims.query_block(), dims.kv_block());
    let (gs, seq, d) = (dims.groups() * dims.seq, dims.seq, dims.d);
    let scale = <T as WithDType>::from_f64(dims.scale());
    let mut dq = vec![T::ZERO; q.len()];
    let mut dk = vec![T::ZERO; k.len()];
    let mut dv = vec![T::ZERO; v.len()];
    dq.par_chunks_mut(qb)
        .zip(dk.par_chunks_mut(kb).zip(dv.par_chunks_mut(kb)))
        .zip(q.par_chunks(qb).zip(g.par_chunks(qb)))
        .zip(k.par_chunks(kb).zip(v.par_chunks(kb)))
        .for_each(|(((dq, (dk, dv)), (q, g)), (k, v))| {
            let p = probabilities(dims, q, k);
            let (p_view, g_view) = (Mat::row_major(&p, gs, seq), Mat::row_major(g, gs, d));
            // dV = Pᵀ dO; dP = dO Vᵀ.
            gemm(dv, p_view.t(), g_view, false, 1);
            let mut ds = vec![T::ZERO; gs * seq];
            gemm(&mut ds, g_view, Mat::row_major(v, seq, d).t(), false, 1);
            // dS = P ∘ (dP - Σ_j dP P) x scale (the scale of the scores' product).
            for (ds, p) in ds.chunks_exact_mut(seq).zip(p.chunks_exact(seq)) {
                let dot = ds.iter().zip(p).fold(T::ZERO, |acc, (&a, &b)| acc + a * b);
                for (x, &p) in ds.iter_mut().zip(p) {
                    *x = p * (*x - dot) * scale;
                }
            }
            let ds_view = Mat::row_major(&ds, gs, seq);
            // dQ = dS K; dK = dSᵀ Q.
            gemm(dq, ds_view, Mat::row_major(k, seq, d), false, 1);
            gemm(dk, ds_view.t(), Mat::row_major(q, gs, d), false, 1);
        });
    Gradients(dq, dk, dv)
}

fn slice<'a, T>(values: &'a [T], layout: &Layout) -> Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&values[start..end]),
        None => candle_core::bail!("causal attention: inputs must be contiguous"),
    }
}

/// The op; see the module documentation.
struct CausalAttention;

impl CustomOp3 for CausalAttention {
    fn name(&self) -> &'static str {
        "causal-attention"
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
        let dims = Dims::of(l1, l2, l3)?;
        let out = match (s1, s2, s3) {
            (CpuStorage::F32(q), CpuStorage::F32(k), CpuStorage::F32(v)) => {
                CpuStorage::F32(forward(dims, slice(q, l1)?, slice(k, l2)?, slice(v, l3)?))
            }
            (CpuStorage::F64(q), CpuStorage::F64(k), CpuStorage::F64(v)) => {
                CpuStorage::F64(forward(dims, slice(q, l1)?, slice(k, l2)?, slice(v, l3)?))
            }
            _ => candle_core::bail!("causal attention: q, k and v must all be f32 or all f64"),
        };
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<GradientTensors> {
        let grad = grad.contiguous()?;
        let (qs, ql) = q.storage_and_layout();
        let (ks, kl) = k.storage_and_layout();
        let (vs, vl) = v.storage_and_layout();
        let (gs, gl) = grad.storage_and_layout();
        let dims = Dims::of(ql, kl, vl)?;
        let shapes = [ql.shape(), kl.shape(), vl.shape()];
        let device = q.device();
        match (&*qs, &*ks, &*vs, &*gs) {
            (
                Storage::Cpu(CpuStorage::F32(q)),
                Storage::Cpu(CpuStorage::F32(k)),
                Storage::Cpu(CpuStorage::F32(v)),
                Storage::Cpu(CpuStorage::F32(g)),
            ) => {
                let inputs = (slice(q, ql)?, slice(k, kl)?, slice(v, vl)?);
                backward(dims, inputs, slice(g, gl)?).into_tensors(&shapes, device)
            }
            (
                Storage::Cpu(CpuStorage::F64(q)),
                Storage::Cpu(CpuStorage::F64(k)),
                Storage::Cpu(CpuStorage::F64(v)),
                Storage::Cpu(CpuStorage::F64(g)),
            ) => {
                let inputs = (slice(q, ql)?, slice(k, kl)?, slice(v, vl)?);
                backward(dims, inputs, slice(g, gl)?).into_tensors(&shapes, device)
            }
            _ => candle_core::bail!(
                "causal attention: q, k, v and the gradient must share a CPU float type"
            ),
        }
    }
}

/// Causal attention of q (rows, heads, seq, d) over k and v (rows, kv_heads, seq, d),
/// scores scaled by 1/sqrt(d); returns (rows, heads, seq, d). `differentiable`: whether
/// gradients flow back through it (trained blocks) or not (frozen ones).
pub(super) fn causal_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    differentiable: bool,
) -> Result<Tensor> {
    let (q, k, v) = (q.contiguous()?, k.contiguous()?, v.contiguous()?);
    match differentiable {
        true => q.apply_op3(&k, &v, CausalAttention),
        false => q.apply_op3_no_bwd(&k, &v, &CausalAttention),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Var, D};

    fn random(dims: (usize, usize, usize, usize), seed: u64, dtype: DType) -> Var {
        let n = dims.0 * dims.1 * dims.2 * dims.3;
        let mut rng = crate::rng::SplitMix64::new(seed);
        let values: Vec<f64> = (0..n).map(|_| rng.next_f64() * 4.0 - 2.0).collect();
        let t = Tensor::from_vec(values, dims, &Device::Cpu).unwrap();
        Var::from_tensor(&t.to_dtype(dtype).unwrap()).unwrap()
    }

    /// Attention from candle's differentiable primitives: key/value heads repeated per
    /// query head, an additive -inf mask above the diagonal.
    fn composed(q: &Tensor, k: &Tensor, v: &Tensor, groups: usize) -> Tensor {
        let (_, kv_heads, seq, d) = k.dims4().unwrap();
        let repeat = |t: &Tensor| {
            let ids: Vec<u32> = (0..kv_heads * groups)
                .map(|h| (h / groups) as u32)
                .collect();
            let ids = Tensor::new(ids.as_slice(), &Device::Cpu).unwrap();
            t.index_select(&ids, 1).unwrap()
        };
        let mask: Vec<f32> = (0..seq * seq)
            .map(|i| {
                if i % seq <= i / seq {
                    0.0
                } else {
                    f32::NEG_INFINITY
                }
            })
            .collect();
        let mask = Tensor::from_vec(mask, (seq, seq), &Device::Cpu)
            .unwrap()
            .to_dtype(q.dtype())
            .unwrap();
        let scores = (q.matmul(&repeat(k).t().unwrap()).unwrap() / (d as f64).sqrt()).unwrap();
        let probs = candle_nn::ops::softmax(&scores.broadcast_add(&mask).unwrap(), D::Minus1);
        probs
            .unwrap()
            .matmul(&repeat(v).contiguous().unwrap())
            .unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    }

    /// Output and all three gradients equal the composition, for grouped heads (3 query
    /// heads per key/value head), in f32 and f64.
    #[test]
    fn matches_the_composed_attention_forward_and_backward() {
        for (dtype, tolerance) in [(DType::F32, 2e-5), (DType::F64, 1e-12)] {
            let (rows, kv_heads, groups, seq, d) = (2, 2, 3, 7, 8);
            let q = random((rows, kv_heads * groups, seq, d), 1, dtype);
            let k = random((rows, kv_heads, seq, d), 2, dtype);
            let v = random((rows, kv_heads, seq, d), 3, dtype);
            let upstream = random((rows, kv_heads * groups, seq, d), 4, dtype);
            let fused = causal_attention(&q, &k, &v, true).unwrap();
            let reference = composed(&q, &k, &v, groups);
            assert!(max_diff(&fused, &reference) < tolerance);
            let loss = |t: &Tensor| (t * upstream.as_tensor()).unwrap().sum_all().unwrap();
            let fused_grads = loss(&fused).backward().unwrap();
            let reference_grads = loss(&reference).backward().unwrap();
            for var in [&q, &k, &v] {
                let diff = max_diff(
                    fused_grads.get(var).unwrap(),
                    reference_grads.get(var).unwrap(),
                );
                assert!(diff < tolerance, "{dtype:?} gradient differs by {diff}");
            }
        }
    }

    #[test]
    fn mismatched_heads_are_refused() {
        let q = random((1, 4, 5, 8), 1, DType::F32);
        let k = random((1, 3, 5, 8), 2, DType::F32);
        let err = causal_attention(&q, &k, &k, false).unwrap_err();
        assert!(err.to_string().contains("causal attention"), "{err}");
    }
}
