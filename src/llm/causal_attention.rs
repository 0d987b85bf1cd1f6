//! Causal self-attention over whole sequences (the training forward pass), RoPE
//! included, as one CPU op with its own backward pass.
//!
//! Composed from candle ops, attention over a batch transposes the projections into
//! heads (three copies), rotates queries and keys, allocates the scores, a (seq, seq)
//! mask and its broadcast sum and the probabilities, runs each batched product as a
//! series of small multi-threaded products, and transposes the result back; backward,
//! every one of those nodes zero-fills and adds a gradient, the transposes through
//! strided adds. A profile of a last-4-block step of SmolLM2 put 75 ms per step in the
//! frozen blocks' attention alone (about 26 GFLOP/s). Here each sequence is one task:
//! its queries and keys are rotated straight into per-head scratch, the query heads
//! sharing a key/value head are multiplied together, the mask is the loop bound, and
//! backward recomputes the probabilities instead of keeping them (as flash attention
//! does) and rotates the gradients back.
//!
//! Layouts: q (rows, seq, heads x d), k and v (rows, seq, kv_heads x d), the
//! projections' own outputs, contiguous; the output is (rows, seq, heads x d).

use super::config::RopeLayout;
use super::grad_ops::slice;
use crate::matmul::{gemm, Element, Mat};
use crate::row_math::softmax_row;
use crate::simd::avx2_variant;
use candle_core::{
    CpuStorage, CustomOp3, DType, Device, Layout, Result, Shape, Storage, Tensor, WithDType,
};
use rayon::prelude::*;

/// The op's name in errors.
const OP: &str = "causal attention";

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
    fn groups(&self) -> usize {
        self.heads / self.kv_heads
    }

    /// Values of one sequence's queries (seq x heads x d).
    fn query_values(&self) -> usize {
        self.seq * self.heads * self.d
    }

    /// Values of one sequence's keys or values (seq x kv_heads x d).
    fn key_values(&self) -> usize {
        self.seq * self.kv_heads * self.d
    }

    fn scale(&self) -> f64 {
        1.0 / (self.d as f64).sqrt()
    }
}

/// RoPE angle tables for positions 0..seq, (seq, d/2) each, and the pairs' layout.
struct Rotation {
    cos: Vec<f64>,
    sin: Vec<f64>,
    layout: RopeLayout,
}

impl Rotation {
    /// Rotates one head's `src` (d values) at `position` into `dst`; `inverse` rotates
    /// by the opposite angle (a rotation's transpose: the backward pass).
    fn apply<T: WithDType>(&self, position: usize, src: &[T], dst: &mut [T], inverse: bool) {
        let half = src.len() / 2;
        let cos = &self.cos[position * half..(position + 1) * half];
        let sin = &self.sin[position * half..(position + 1) * half];
        for i in 0..half {
            let (a, b) = match self.layout {
                RopeLayout::Interleaved => (2 * i, 2 * i + 1),
                RopeLayout::Halves => (i, i + half),
            };
            let c = T::from_f64(cos[i]);
            let s = T::from_f64(if inverse { -sin[i] } else { sin[i] });
            let (xa, xb) = (src[a], src[b]);
            dst[a] = xa * c - xb * s;
            dst[b] = xa * s + xb * c;
        }
    }
}

/// One sequence's (seq, heads x d) values as (heads, seq, d), rotated by position when
/// `rotation` is given.
fn to_head_major<T: WithDType>(
    x: &[T],
    heads: usize,
    dims: Dims,
    rotation: Option<&Rotation>,
) -> Vec<T> {
    let d = dims.d;
    let mut out = vec![T::zero(); x.len()];
    for (t, token) in x.chunks_exact(heads * d).enumerate() {
        for (h, src) in token.chunks_exact(d).enumerate() {
            let dst = &mut out[(h * dims.seq + t) * d..][..d];
            match rotation {
                Some(r) => r.apply(t, src, dst, false),
                None => dst.copy_from_slice(src),
            }
        }
    }
    out
}

/// The inverse of [`to_head_major`]: (heads, seq, d) back to (seq, heads x d), rotated
/// back by position when `rotation` is given.
fn to_token_major<T: WithDType>(
    x: &[T],
    heads: usize,
    dims: Dims,
    rotation: Option<&Rotation>,
    out: &mut [T],
) {
    let d = dims.d;
    for (t, token) in out.chunks_exact_mut(heads * d).enumerate() {
        for (h, dst) in token.chunks_exact_mut(d).enumerate() {
            let src = &x[(h * dims.seq + t) * d..][..d];
            match rotation {
                Some(r) => r.apply(t, src, dst, true),
                None => dst.copy_from_slice(src),
            }
        }
    }
}

/// The probabilities (groups x seq, seq) of the query heads `q` (groups x seq x d)
/// over one key head `k` (seq x d).
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

/// One sequence's queries, keys and values in head-major scratch, queries and keys
/// rotated.
struct HeadMajor<T> {
    q: Vec<T>,
    k: Vec<T>,
    v: Vec<T>,
}

impl<T: WithDType> HeadMajor<T> {
    fn of(dims: Dims, rotation: &Rotation, (q, k, v): (&[T], &[T], &[T])) -> Self {
        HeadMajor {
            q: to_head_major(q, dims.heads, dims, Some(rotation)),
            k: to_head_major(k, dims.kv_heads, dims, Some(rotation)),
            v: to_head_major(v, dims.kv_heads, dims, None),
        }
    }
}

/// The attention output of one sequence, (seq, heads x d), into `out`.
fn sequence_forward<T: CausalSoftmax + WithDType>(
    dims: Dims,
    rotation: &Rotation,
    inputs: (&[T], &[T], &[T]),
    out: &mut [T],
) {
    let x = HeadMajor::of(dims, rotation, inputs);
    let (group, head) = (dims.groups() * dims.seq * dims.d, dims.seq * dims.d);
    let mut heads_out = vec![T::ZERO; x.q.len()];
    for ((o, q), (k, v)) in heads_out
        .chunks_exact_mut(group)
        .zip(x.q.chunks_exact(group))
        .zip(x.k.chunks_exact(head).zip(x.v.chunks_exact(head)))
    {
        let p = probabilities(dims, q, k);
        let gs = dims.groups() * dims.seq;
        gemm(
            o,
            Mat::row_major(&p, gs, dims.seq),
            Mat::row_major(v, dims.seq, dims.d),
            false,
            1,
        );
    }
    to_token_major(&heads_out, dims.heads, dims, None, out);
}

/// The gradients of one key/value head's group: dq (groups x seq x d), dk and dv (seq
/// x d), from the output gradient `g` of the group.
fn group_backward<T: CausalSoftmax + WithDType>(
    dims: Dims,
    (q, k, v, g): (&[T], &[T], &[T], &[T]),
    (dq, dk, dv): (&mut [T], &mut [T], &mut [T]),
) {
    let (gs, seq, d) = (dims.groups() * dims.seq, dims.seq, dims.d);
    let scale = <T as WithDType>::from_f64(dims.scale());
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
}

/// The gradients of one sequence's q, k and v (token-major, before rotation) into
/// `out`, from the output gradient `g` (seq, heads x d).
fn sequence_backward<T: CausalSoftmax + WithDType>(
    dims: Dims,
    rotation: &Rotation,
    inputs: (&[T], &[T], &[T]),
    g: &[T],
    (dq_out, dk_out, dv_out): (&mut [T], &mut [T], &mut [T]),
) {
    let x = HeadMajor::of(dims, rotation, inputs);
    let g = to_head_major(g, dims.heads, dims, None);
    let (group, head) = (dims.groups() * dims.seq * dims.d, dims.seq * dims.d);
    let mut dq = vec![T::ZERO; x.q.len()];
    let mut dk = vec![T::ZERO; x.k.len()];
    let mut dv = vec![T::ZERO; x.v.len()];
    for (((dq, dk), dv), (((q, g), k), v)) in dq
        .chunks_exact_mut(group)
        .zip(dk.chunks_exact_mut(head))
        .zip(dv.chunks_exact_mut(head))
        .zip(
            x.q.chunks_exact(group)
                .zip(g.chunks_exact(group))
                .zip(x.k.chunks_exact(head))
                .zip(x.v.chunks_exact(head)),
        )
    {
        group_backward(dims, (q, k, v, g), (dq, dk, dv));
    }
    to_token_major(&dq, dims.heads, dims, Some(rotation), dq_out);
    to_token_major(&dk, dims.kv_heads, dims, Some(rotation), dk_out);
    to_token_major(&dv, dims.kv_heads, dims, None, dv_out);
}

fn forward<T: CausalSoftmax + WithDType>(
    dims: Dims,
    rotation: &Rotation,
    (q, k, v): (&[T], &[T], &[T]),
) -> Vec<T> {
    let (qn, kn) = (dims.query_values(), dims.key_values());
    let mut out = vec![T::ZERO; q.len()];
    out.par_chunks_mut(qn)
        .zip(q.par_chunks(qn))
        .zip(k.par_chunks(kn).zip(v.par_chunks(kn)))
        .for_each(|((out, q), (k, v))| sequence_forward(dims, rotation, (q, k, v), out));
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

fn backward<T: CausalSoftmax + WithDType>(
    dims: Dims,
    rotation: &Rotation,
    (q, k, v): (&[T], &[T], &[T]),
    g: &[T],
) -> Gradients<T> {
    let (qn, kn) = (dims.query_values(), dims.key_values());
    let mut dq = vec![T::ZERO; q.len()];
    let mut dk = vec![T::ZERO; k.len()];
    let mut dv = vec![T::ZERO; v.len()];
    dq.par_chunks_mut(qn)
        .zip(dk.par_chunks_mut(kn).zip(dv.par_chunks_mut(kn)))
        .zip(q.par_chunks(qn).zip(g.par_chunks(qn)))
        .zip(k.par_chunks(kn).zip(v.par_chunks(kn)))
        .for_each(|(((dq, (dk, dv)), (q, g)), (k, v))| {
            sequence_backward(dims, rotation, (q, k, v), g, (dq, dk, dv));
        });
    Gradients(dq, dk, dv)
}

/// The op; see the module documentation.
struct RotaryCausalAttention {
    heads: usize,
    kv_heads: usize,
    rotation: Rotation,
}

impl RotaryCausalAttention {
    /// The dimensions of q, k and v, checked against each other and the op.
    fn dims(&self, q: &Layout, k: &Layout, v: &Layout) -> Result<Dims> {
        let (rows, seq, width) = q.shape().dims3()?;
        let (heads, kv_heads) = (self.heads, self.kv_heads);
        let d = width.checked_div(heads).unwrap_or(0);
        let fits = kv_heads > 0
            && heads % kv_heads == 0
            && d > 0
            && d % 2 == 0
            && d * heads == width
            && k.shape().dims() == [rows, seq, kv_heads * d]
            && v.shape() == k.shape()
            && self.rotation.cos.len() == seq * d / 2
            && self.rotation.sin.len() == seq * d / 2;
        if !fits {
            candle_core::bail!(
                "causal attention: q {:?}, k {:?}, v {:?} for {heads} heads over {kv_heads}, angle tables of {}",
                q.shape(),
                k.shape(),
                v.shape(),
                self.rotation.cos.len()
            );
        }
        Ok(Dims {
            heads,
            kv_heads,
            seq,
            d,
        })
    }
}

impl CustomOp3 for RotaryCausalAttention {
    fn name(&self) -> &'static str {
        "rotary-causal-attention"
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
        let dims = self.dims(l1, l2, l3)?;
        let r = &self.rotation;
        let out = match (s1, s2, s3) {
            (CpuStorage::F32(q), CpuStorage::F32(k), CpuStorage::F32(v)) => {
                CpuStorage::F32(forward(
                    dims,
                    r,
                    (slice(q, l1, OP)?, slice(k, l2, OP)?, slice(v, l3, OP)?),
                ))
            }
            (CpuStorage::F64(q), CpuStorage::F64(k), CpuStorage::F64(v)) => {
                CpuStorage::F64(forward(
                    dims,
                    r,
                    (slice(q, l1, OP)?, slice(k, l2, OP)?, slice(v, l3, OP)?),
                ))
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
        let dims = self.dims(ql, kl, vl)?;
        let shapes = [ql.shape(), kl.shape(), vl.shape()];
        let (r, device) = (&self.rotation, q.device());
        match (&*qs, &*ks, &*vs, &*gs) {
            (
                Storage::Cpu(CpuStorage::F32(q)),
                Storage::Cpu(CpuStorage::F32(k)),
                Storage::Cpu(CpuStorage::F32(v)),
                Storage::Cpu(CpuStorage::F32(g)),
            ) => {
                let inputs = (slice(q, ql, OP)?, slice(k, kl, OP)?, slice(v, vl, OP)?);
                backward(dims, r, inputs, slice(g, gl, OP)?).into_tensors(&shapes, device)
            }
            (
                Storage::Cpu(CpuStorage::F64(q)),
                Storage::Cpu(CpuStorage::F64(k)),
                Storage::Cpu(CpuStorage::F64(v)),
                Storage::Cpu(CpuStorage::F64(g)),
            ) => {
                let inputs = (slice(q, ql, OP)?, slice(k, kl, OP)?, slice(v, vl, OP)?);
                backward(dims, r, inputs, slice(g, gl, OP)?).into_tensors(&shapes, device)
            }
            _ => candle_core::bail!(
                "causal attention: q, k, v and the gradient must share a CPU float type"
            ),
        }
    }
}

/// Causal attention with RoPE over whole sequences: q (rows, seq, heads x d), k and v
/// (rows, seq, kv_heads x d), queries and keys rotated by the (seq, d/2) `cos` and
/// `sin` tables, scores scaled by 1/sqrt(d); returns (rows, seq, heads x d).
/// `differentiable`: whether gradients flow back through it (trained blocks) or not.
pub(super) fn rotary_causal_attention(
    (q, k, v): (&Tensor, &Tensor, &Tensor),
    (cos, sin): (&Tensor, &Tensor),
    layout: RopeLayout,
    (heads, kv_heads): (usize, usize),
    differentiable: bool,
) -> Result<Tensor> {
    let table = |t: &Tensor| t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>();
    let op = RotaryCausalAttention {
        heads,
        kv_heads,
        rotation: Rotation {
            cos: table(cos)?,
            sin: table(sin)?,
            layout,
        },
    };
    let (q, k, v) = (q.contiguous()?, k.contiguous()?, v.contiguous()?);
    match differentiable {
        true => q.apply_op3(&k, &v, op),
        false => q.apply_op3_no_bwd(&k, &v, &op),
    }
}

#[cfg(test)]
mod tests {
    use super::super::ops::composed_rope;
    use super::*;
    use crate::test_tensors::{max_diff, random_var};
    use candle_core::D;

    /// (seq, d/2) angle tables: position x frequency.
    fn tables(seq: usize, d: usize, dtype: DType) -> (Tensor, Tensor) {
        let angles: Vec<f64> = (0..seq * d / 2)
            .map(|i| (i / (d / 2)) as f64 * 10f64.powf(-((i % (d / 2)) as f64) / 4.0))
            .collect();
        let angles = Tensor::from_vec(angles, (seq, d / 2), &Device::Cpu).unwrap();
        let cast = |t: Tensor| t.to_dtype(dtype).unwrap();
        (cast(angles.cos().unwrap()), cast(angles.sin().unwrap()))
    }

    /// Attention from candle's differentiable primitives: heads split out, rotated,
    /// key/value heads repeated per query head, an additive -inf mask above the
    /// diagonal, heads joined back.
    fn composed(
        x: (&Tensor, &Tensor, &Tensor),
        rope: (&Tensor, &Tensor),
        layout: RopeLayout,
        heads: usize,
        kv_heads: usize,
    ) -> Tensor {
        let (rows, seq, width) = x.0.dims3().unwrap();
        let d = width / heads;
        let split = |t: &Tensor, n: usize| {
            t.reshape((rows, seq, n, d))
                .unwrap()
                .transpose(1, 2)
                .unwrap()
                .contiguous()
                .unwrap()
        };
        let repeat = |t: &Tensor| {
            let ids: Vec<u32> = (0..heads)
                .map(|h| (h / (heads / kv_heads)) as u32)
                .collect();
            let ids = Tensor::new(ids.as_slice(), &Device::Cpu).unwrap();
            t.index_select(&ids, 1).unwrap()
        };
        let q = composed_rope(&split(x.0, heads), rope.0, rope.1, layout).unwrap();
        let k = composed_rope(&split(x.1, kv_heads), rope.0, rope.1, layout).unwrap();
        let v = split(x.2, kv_heads);
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
        let scores = (q.matmul(&repeat(&k).t().unwrap()).unwrap() / (d as f64).sqrt()).unwrap();
        let probs = candle_nn::ops::softmax(&scores.broadcast_add(&mask).unwrap(), D::Minus1);
        let out = probs
            .unwrap()
            .matmul(&repeat(&v).contiguous().unwrap())
            .unwrap();
        out.transpose(1, 2)
            .unwrap()
            .reshape((rows, seq, width))
            .unwrap()
    }

    /// Output and all three gradients equal the composition, for grouped heads (3 query
    /// heads per key/value head), both RoPE layouts, in f32 and f64.
    #[test]
    fn matches_the_composed_attention_forward_and_backward() {
        let (rows, kv_heads, heads, seq, d) = (2, 2, 6, 7, 8);
        for (dtype, tolerance) in [(DType::F32, 2e-5), (DType::F64, 1e-12)] {
            for layout in [RopeLayout::Interleaved, RopeLayout::Halves] {
                let q = random_var(&[rows, seq, heads * d], 1, dtype);
                let k = random_var(&[rows, seq, kv_heads * d], 2, dtype);
                let v = random_var(&[rows, seq, kv_heads * d], 3, dtype);
                let upstream = random_var(&[rows, seq, heads * d], 4, dtype);
                let (cos, sin) = tables(seq, d, dtype);
                let x = (q.as_tensor(), k.as_tensor(), v.as_tensor());
                let fused =
                    rotary_causal_attention(x, (&cos, &sin), layout, (heads, kv_heads), true)
                        .unwrap();
                let reference = composed(x, (&cos, &sin), layout, heads, kv_heads);
                assert!(max_diff(&fused, &reference) < tolerance);
                let loss = |t: &Tensor| (t * upstream.as_tensor()).unwrap().sum_all().unwrap();
                let fused_grads = loss(&fused).backward().unwrap();
                let reference_grads = loss(&reference).backward().unwrap();
                for var in [&q, &k, &v] {
                    let diff = max_diff(
                        fused_grads.get(var).unwrap(),
                        reference_grads.get(var).unwrap(),
                    );
                    assert!(
                        diff < tolerance,
                        "{dtype:?} {layout:?} gradient differs by {diff}"
                    );
                }
            }
        }
    }

    #[test]
    fn mismatched_heads_are_refused() {
        let q = random_var(&[1, 5, 32], 1, DType::F32);
        let k = random_var(&[1, 5, 24], 2, DType::F32);
        let (cos, sin) = tables(5, 8, DType::F32);
        let x = (q.as_tensor(), k.as_tensor(), k.as_tensor());
        let err = rotary_causal_attention(x, (&cos, &sin), RopeLayout::Halves, (4, 2), false)
            .unwrap_err();
        assert!(err.to_string().contains("causal attention"), "{err}");
    }
}
