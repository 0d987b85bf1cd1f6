//! RMSNorm, the gated MLP product and the dense product x·Wᵀ as single CPU ops that
//! carry their own backward pass, for the blocks a trainer updates (attention with
//! RoPE is its own op, [`super::causal_attention`]).
//!
//! candle-nn's fused versions of these steps have no backward pass, so trained blocks
//! used compositions of primitives: each composed step is a separate pass over memory
//! forward, keeps its intermediates for backward, and adds backward passes of its own
//! (the profile of a training step put most of the gap to PyTorch there). Each op here
//! reads its input once forward and writes its gradient in one pass backward. The
//! norm's row arithmetic runs in f64 for f32 and f64 tensors alike (rows are short, so
//! this costs little and keeps f64 gradient checks exact); the gated product's sigmoid,
//! one exp per element, runs in the tensor's own type. Other devices and dtypes use the
//! compositions in [`super::ops`].

use crate::matmul::{self, transposed, Element, Mat};
use crate::row_math::exp_f32;
use crate::simd::avx2_variant;
use candle_core::{
    CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor, WithDType,
};
use rayon::prelude::*;

/// True when the fused ops here serve `x` (CPU, f32 or f64).
pub(super) fn serves(x: &Tensor) -> bool {
    x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64)
}

/// True when the ops here serve `x` with a second operand `w` (a weight): both CPU
/// tensors of one dtype, f32 or f64.
pub(super) fn serves_both(x: &Tensor, w: &Tensor) -> bool {
    serves(x) && w.dtype() == x.dtype() && w.device().is_cpu()
}

/// The values of a contiguous layout, or an error naming `op`.
pub(super) fn slice<'a, T>(data: &'a [T], layout: &Layout, op: &str) -> Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("{op}: input must be contiguous"),
    }
}

/// Runs `$body` with `$v` bound to the typed slices of the storages (all f32 or all f64).
macro_rules! typed {
    ($op:expr, [$(($s:expr, $l:expr) => $v:ident),+], $body:expr) => {
        match ($($s,)+) {
            ($(CpuStorage::F32($v),)+) => {
                $(let $v = slice($v, $l, $op)?;)+
                CpuStorage::F32($body)
            }
            ($(CpuStorage::F64($v),)+) => {
                $(let $v = slice($v, $l, $op)?;)+
                CpuStorage::F64($body)
            }
            _ => candle_core::bail!("{}: inputs must all be f32 or all f64", $op),
        }
    };
}

fn last_dim(layout: &Layout) -> Result<usize> {
    layout
        .dims()
        .last()
        .copied()
        .filter(|&d| d > 0)
        .ok_or_else(|| {
            candle_core::Error::Msg(
                "an op over the last dimension got a scalar or empty rows".into(),
            )
        })
}

// ---------------------------------------------------------------- RMSNorm

/// y = x / sqrt(mean(x^2) + eps) * w over the last dimension.
struct RmsNorm {
    eps: f64,
}

/// dL/dx of [`RmsNorm`], from (x, w, dL/dy).
struct RmsNormGradInput {
    eps: f64,
}

/// dL/dw of [`RmsNorm`], from (x, dL/dy): summed over rows.
struct RmsNormGradWeight {
    eps: f64,
}

/// 1 / sqrt(mean(x^2) + eps) of one row, summed in f64 over eight lanes (a single
/// running sum is one long chain of dependent adds that no vector unit can split).
#[inline(always)]
fn inverse_rms<T: WithDType>(row: &[T], eps: f64) -> f64 {
    let mut lanes = [0f64; 8];
    let chunks = row.chunks_exact(8);
    let tail: f64 = chunks.remainder().iter().map(|v| v.to_f64().powi(2)).sum();
    for chunk in chunks {
        for (lane, v) in lanes.iter_mut().zip(chunk) {
            *lane += v.to_f64() * v.to_f64();
        }
    }
    let mean_square = (lanes.iter().sum::<f64>() + tail) / row.len() as f64;
    1.0 / (mean_square + eps).sqrt()
}

fn rms_norm_rows<T: WithDType>(x: &[T], w: &[T], eps: f64) -> Vec<T> {
    let d = w.len();
    let mut out = vec![T::zero(); x.len()];
    out.par_chunks_mut(d)
        .zip(x.par_chunks(d))
        .for_each(|(o, row)| rms_norm_row(row, w, eps, o));
    out
}

avx2_variant!(
    /// One row of [`rms_norm_rows`] ([`crate::simd`]).
    fn rms_norm_row<T: WithDType> => rms_norm_row_body(row: &[T], w: &[T], eps: f64, out: &mut [T])
);

#[inline(always)]
fn rms_norm_row_body<T: WithDType>(row: &[T], w: &[T], eps: f64, out: &mut [T]) {
    let r = inverse_rms(row, eps);
    for ((o, &v), &w) in out.iter_mut().zip(row).zip(w) {
        *o = T::from_f64(v.to_f64() * r * w.to_f64());
    }
}

fn rms_norm_grad_input<T: WithDType>(x: &[T], w: &[T], g: &[T], eps: f64) -> Vec<T> {
    let d = w.len();
    let mut out = vec![T::zero(); x.len()];
    out.par_chunks_mut(d)
        .zip(x.par_chunks(d).zip(g.par_chunks(d)))
        .for_each(|(o, (row, g))| {
            // dx = r * (g w - x r^2 mean(g w x)).
            let r = inverse_rms(row, eps);
            let gwx = row
                .iter()
                .zip(g)
                .zip(w)
                .map(|((x, g), w)| x.to_f64() * g.to_f64() * w.to_f64())
                .sum::<f64>()
                / d as f64;
            for (((o, &x), &g), &w) in o.iter_mut().zip(row).zip(g).zip(w) {
                let value = r * (g.to_f64() * w.to_f64() - x.to_f64() * r * r * gwx);
                *o = T::from_f64(value);
            }
        });
    out
}

fn rms_norm_grad_weight<T: WithDType>(x: &[T], g: &[T], d: usize, eps: f64) -> Vec<T> {
    let sums = x
        .par_chunks(d)
        .zip(g.par_chunks(d))
        .fold(
            || vec![0f64; d],
            |mut acc, (row, g)| {
                let r = inverse_rms(row, eps);
                for ((a, &x), &g) in acc.iter_mut().zip(row).zip(g) {
                    *a += x.to_f64() * r * g.to_f64();
                }
                acc
            },
        )
        .reduce(
            || vec![0f64; d],
            |mut a, b| {
                a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
                a
            },
        );
    sums.into_iter().map(T::from_f64).collect()
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "rms-norm-with-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        if l2.dims() != [last_dim(l1)?] {
            candle_core::bail!(
                "rms-norm: weight {:?} for rows of {:?}",
                l2.dims(),
                l1.dims()
            );
        }
        let out =
            typed!(self.name(), [(s1, l1) => x, (s2, l2) => w], rms_norm_rows(x, w, self.eps));
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let dx = x.apply_op3_no_bwd(w, &grad, &RmsNormGradInput { eps: self.eps })?;
        let dw = x.apply_op2_no_bwd(&grad, &RmsNormGradWeight { eps: self.eps })?;
        Ok((Some(dx), Some(dw)))
    }
}

impl CustomOp3 for RmsNormGradInput {
    fn name(&self) -> &'static str {
        "rms-norm-grad-input"
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
        let out = typed!(
            self.name(),
            [(s1, l1) => x, (s2, l2) => w, (s3, l3) => g],
            rms_norm_grad_input(x, w, g, self.eps)
        );
        Ok((out, l1.shape().clone()))
    }
}

impl CustomOp2 for RmsNormGradWeight {
    fn name(&self) -> &'static str {
        "rms-norm-grad-weight"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = last_dim(l1)?;
        let out = typed!(self.name(), [(s1, l1) => x, (s2, l2) => g], rms_norm_grad_weight(x, g, d, self.eps));
        Ok((out, Shape::from(d)))
    }
}

/// RMSNorm of `x` over its last dimension, scaled by `w`, differentiable in both.
pub(super) fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    x.contiguous()?.apply_op2(&w.contiguous()?, RmsNorm { eps })
}

/// [`rms_norm`] outside any graph (training's frozen blocks): candle-nn's sums each
/// row in one chain of f32 adds, several times slower.
pub(super) fn frozen_rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    x.contiguous()?
        .apply_op2_no_bwd(&w.contiguous()?, &RmsNorm { eps })
}

// ---------------------------------------------------------------- SwiGLU

/// silu(gate) x up, element-wise: the MLP's gated product.
struct SwiGlu;

/// dL/dgate of [`SwiGlu`], from (gate, up, dL/dy).
struct SwiGluGradGate;

/// dL/dup of [`SwiGlu`], from (gate, dL/dy).
struct SwiGluGradUp;

/// The logistic function in the element type: f32 through the vectorisable exp (libm's
/// f64 exp per element was most of a trained block's gated product), f64 exact.
trait Sigmoid: WithDType {
    fn sigmoid(self) -> Self;
}

impl Sigmoid for f32 {
    #[inline(always)]
    fn sigmoid(self) -> f32 {
        // exp of a non-positive argument only: e^-|x| never overflows.
        let e = exp_f32(-self.abs());
        let s = 1.0 / (1.0 + e);
        if self >= 0.0 {
            s
        } else {
            e * s
        }
    }
}

impl Sigmoid for f64 {
    fn sigmoid(self) -> f64 {
        1.0 / (1.0 + (-self).exp())
    }
}

/// Applies `f` to aligned elements of two or three equal-length slices, in parallel.
fn zip_map<T: Sigmoid>(
    a: &[T],
    b: &[T],
    c: Option<&[T]>,
    f: impl Fn(T, T, T) -> T + Sync,
) -> Result<Vec<T>> {
    if a.len() != b.len() || c.is_some_and(|c| c.len() != a.len()) {
        candle_core::bail!("swiglu: inputs of different sizes");
    }
    let mut out = vec![T::zero(); a.len()];
    const CHUNK: usize = 4096;
    out.par_chunks_mut(CHUNK)
        .zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK)))
        .enumerate()
        .for_each(|(k, (o, (a, b)))| {
            let c = c.map(|c| &c[k * CHUNK..k * CHUNK + o.len()]);
            map_chunk(o, (a, b, c), &f)
        });
    Ok(out)
}

avx2_variant!(
    /// One chunk of [`zip_map`] (the baseline build's 128-bit loop took ~1 ns an
    /// element; see [`crate::simd`]).
    fn map_chunk<T: Sigmoid, F: ElementMap<T>> => map_chunk_body(
        o: &mut [T],
        inputs: (&[T], &[T], Option<&[T]>),
        f: &F,
    )
);

/// The per-element function of [`zip_map`].
trait ElementMap<T>: Fn(T, T, T) -> T {}

impl<T, F: Fn(T, T, T) -> T> ElementMap<T> for F {}

#[inline(always)]
fn map_chunk_body<T: Sigmoid, F: ElementMap<T>>(
    o: &mut [T],
    (a, b, c): (&[T], &[T], Option<&[T]>),
    f: &F,
) {
    match c {
        Some(c) => {
            for (((o, &a), &b), &c) in o.iter_mut().zip(a).zip(b).zip(c) {
                *o = f(a, b, c);
            }
        }
        None => {
            for ((o, &a), &b) in o.iter_mut().zip(a).zip(b) {
                *o = f(a, b, T::zero());
            }
        }
    }
}

fn same_shape(l1: &Layout, l2: &Layout) -> Result<()> {
    if l1.dims() != l2.dims() {
        candle_core::bail!("swiglu: shapes {:?} and {:?} differ", l1.dims(), l2.dims());
    }
    Ok(())
}

impl CustomOp2 for SwiGlu {
    fn name(&self) -> &'static str {
        "swiglu-with-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        same_shape(l1, l2)?;
        let out = typed!(self.name(), [(s1, l1) => g, (s2, l2) => u], zip_map(g, u, None, |g, u, _| g * g.sigmoid() * u)?);
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        gate: &Tensor,
        up: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let d_gate = gate.apply_op3_no_bwd(up, &grad, &SwiGluGradGate)?;
        let d_up = gate.apply_op2_no_bwd(&grad, &SwiGluGradUp)?;
        Ok((Some(d_gate), Some(d_up)))
    }
}

impl CustomOp3 for SwiGluGradGate {
    fn name(&self) -> &'static str {
        "swiglu-grad-gate"
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
        same_shape(l1, l2)?;
        same_shape(l1, l3)?;
        // d silu(x)/dx = s(x) (1 + x (1 - s(x))).
        let out = typed!(
            self.name(),
            [(s1, l1) => g, (s2, l2) => u, (s3, l3) => dy],
            zip_map(g, u, Some(dy), |g, u, dy| {
                let s = g.sigmoid();
                dy * u * s * (1.0 + g * (1.0 - s))
            })?
        );
        Ok((out, l1.shape().clone()))
    }
}

impl CustomOp2 for SwiGluGradUp {
    fn name(&self) -> &'static str {
        "swiglu-grad-up"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        same_shape(l1, l2)?;
        let out = typed!(self.name(), [(s1, l1) => g, (s2, l2) => dy], zip_map(g, dy, None, |g, dy, _| dy * g * g.sigmoid())?);
        Ok((out, l1.shape().clone()))
    }
}

/// silu(`gate`) x `up`, differentiable in both.
pub(super) fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    gate.contiguous()?.apply_op2(&up.contiguous()?, SwiGlu)
}

// ---------------------------------------------------------------- dense products

/// x Wᵀ, (rows, in) by (out, in), with its own backward: the input's gradient only
/// when a graph runs through x, the weight's only when W is trained, and that one
/// straight in W's (out, in) layout. candle's product computes both gradients always
/// (under LoRA every frozen matrix got a weight-sized gradient nothing reads), and for
/// x Wᵀ it forms the weight's as (in, out), then adds it to W's through a transposed
/// view, element by element (a zero-filled buffer and a strided pass per matrix).
struct Product;

impl CustomOp2 for Product {
    fn name(&self) -> &'static str {
        "dense-product"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let ((rows, k), (n, k_w)) = (l1.shape().dims2()?, l2.shape().dims2()?);
        if k != k_w {
            candle_core::bail!("dense-product: ({rows}, {k}) by the transpose of ({n}, {k_w})");
        }
        let out = typed!(self.name(), [(s1, l1) => x, (s2, l2) => w], times_transpose(x, w, (rows, k, n)));
        Ok((out, Shape::from((rows, n))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        // dx = grad · W; dW = gradᵀ · x, with gradᵀ copied first: the product then reads
        // both operands row-major, 15-20% faster with two threads than through a
        // transposed view (the copy is a few MB).
        let dx = match x.track_op() {
            true => Some(grad.apply_op2_no_bwd(&w.detach(), &Times { transpose_a: false })?),
            false => None,
        };
        let dw = match w.track_op() {
            true => Some(grad.apply_op2_no_bwd(&x.detach(), &Times { transpose_a: true })?),
            false => None,
        };
        Ok((dx, dw))
    }
}

/// (rows, k) `x` times the transpose of (n, k) `w`, row-major.
fn times_transpose<T: Element>(x: &[T], w: &[T], (rows, k, n): (usize, usize, usize)) -> Vec<T> {
    matmul::product(
        Mat::row_major(x, rows, k),
        Mat::row_major(w, n, k).t(),
        rayon::current_num_threads(),
    )
}

/// a · b, or aᵀ · b with `transpose_a`, for row-major CPU matrices, without a backward
/// pass: the frozen blocks' products over transposed matrices and [`Product`]'s
/// gradients. candle's product zero-fills its output on one thread first.
struct Times {
    transpose_a: bool,
}

impl CustomOp2 for Times {
    fn name(&self) -> &'static str {
        "dense-product-no-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let ((r, c), (k, n)) = (l1.shape().dims2()?, l2.shape().dims2()?);
        let (m, k_a) = if self.transpose_a { (c, r) } else { (r, c) };
        if k_a != k {
            candle_core::bail!("{}: ({m}, {k_a}) by ({k}, {n})", self.name());
        }
        let out = typed!(self.name(), [(s1, l1) => a, (s2, l2) => b], times(a, b, (m, k, n), self.transpose_a));
        Ok((out, Shape::from((m, n))))
    }
}

/// (m, k) `a` (stored (k, m) when `transpose_a`) times (k, n) `b`, row-major.
fn times<T: Element>(
    a: &[T],
    b: &[T],
    (m, k, n): (usize, usize, usize),
    transpose_a: bool,
) -> Vec<T> {
    let threads = rayon::current_num_threads();
    let b = Mat::row_major(b, k, n);
    match transpose_a {
        true => matmul::product(Mat::row_major(&transposed(a, k, m), m, k), b, threads),
        false => matmul::product(Mat::row_major(a, m, k), b, threads),
    }
}

/// `a` (rows, k) times `b` (k, n) on the CPU in f32 or f64, both row-major, outside any
/// graph: gradients do not flow through it.
pub(super) fn frozen_times(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    a.contiguous()?
        .apply_op2_no_bwd(&b.contiguous()?, &Times { transpose_a: false })
}

/// True when x Wᵀ should go through [`product`]: a graph is being recorded through `x`
/// or `W`, and the ops here serve both ([`serves_both`]).
pub(super) fn wants_product(x: &Tensor, w: &Tensor) -> bool {
    (x.track_op() || w.track_op()) && serves_both(x, w)
}

/// (rows, in) `x` times the transpose of (out, in) `w`, differentiable in whichever of
/// them a graph runs through.
pub(super) fn product(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op2(&w.contiguous()?, Product)
}

#[cfg(test)]
mod tests {
    use super::super::ops::composed_rms_norm;
    use super::*;
    use crate::test_tensors::{max_diff, random};
    use candle_core::Var;

    /// Value and gradients of `fused` and `composed` (each applied to the same variables
    /// and reduced by a fixed random weighting) agree within `tol`.
    fn agree(
        vars: &[Var],
        fused: impl Fn(&[Tensor]) -> Result<Tensor>,
        composed: impl Fn(&[Tensor]) -> Result<Tensor>,
        tol: f64,
    ) {
        let inputs: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let (a, b) = (fused(&inputs).unwrap(), composed(&inputs).unwrap());
        assert!(
            max_diff(&a, &b) < tol,
            "values differ by {}",
            max_diff(&a, &b)
        );
        let weights = random(a.dims(), 99, a.dtype());
        let ga = (a * &weights)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let gb = (b * &weights)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for (i, v) in vars.iter().enumerate() {
            let (x, y) = (ga.get(v), gb.get(v));
            match (x, y) {
                (Some(x), Some(y)) => assert!(
                    max_diff(x, y) < tol,
                    "gradient {i} differs by {}",
                    max_diff(x, y)
                ),
                (None, None) => {}
                _ => panic!("gradient {i} present in only one form"),
            }
        }
    }

    #[test]
    fn rms_norm_matches_its_composition_forward_and_backward() {
        for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 2e-5)] {
            let x = Var::from_tensor(&random(&[3, 5, 16], 1, dtype)).unwrap();
            let w = Var::from_tensor(&random(&[16], 2, dtype)).unwrap();
            agree(
                &[x, w],
                |t| rms_norm(&t[0], &t[1], 1e-5),
                |t| Ok(composed_rms_norm(&t[0], &t[1], 1e-5).unwrap()),
                tol,
            );
        }
    }

    #[test]
    fn swiglu_matches_its_composition_forward_and_backward() {
        for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 1e-5)] {
            let gate = Var::from_tensor(&random(&[3, 4, 10], 6, dtype)).unwrap();
            let up = Var::from_tensor(&random(&[3, 4, 10], 7, dtype)).unwrap();
            agree(
                &[gate, up],
                |t| swiglu(&t[0], &t[1]),
                |t| t[0].silu()?.mul(&t[1]),
                tol,
            );
        }
    }

    #[test]
    fn the_product_passes_gradients_to_exactly_the_tracked_operands() {
        for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 1e-5)] {
            let x = Var::from_tensor(&random(&[6, 8], 8, dtype)).unwrap();
            let w = Var::from_tensor(&random(&[5, 8], 9, dtype)).unwrap();
            // Both trained; then a frozen weight (LoRA's base); then a frozen input (a
            // trained block after frozen ones).
            agree(
                &[x.clone(), w.clone()],
                |t| product(&t[0], &t[1]),
                |t| t[0].matmul(&t[1].t()?),
                tol,
            );
            let frozen_w = w.as_tensor().detach();
            assert!(wants_product(x.as_tensor(), &frozen_w));
            agree(
                std::slice::from_ref(&x),
                |t| product(&t[0], &frozen_w),
                |t| t[0].matmul(&frozen_w.t()?),
                tol,
            );
            let frozen_x = x.as_tensor().detach();
            agree(
                std::slice::from_ref(&w),
                |t| product(&frozen_x, &t[0]),
                |t| frozen_x.matmul(&t[0].t()?),
                tol,
            );
            let grads = product(&frozen_x, w.as_tensor())
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            assert!(grads.get(&frozen_x).is_none());
            assert!(!wants_product(&frozen_x, &frozen_w));
        }
    }

    #[test]
    fn mismatched_shapes_are_refused() {
        let x = random(&[2, 3, 5, 8], 4, DType::F32);
        let w = random(&[7], 1, DType::F32);
        assert!(rms_norm(&x, &w, 1e-5).is_err());
        let gate = random(&[2, 8], 2, DType::F32);
        assert!(swiglu(&gate, &x).is_err());
        assert!(product(&x.reshape((30, 8)).unwrap(), &w.reshape((1, 7)).unwrap()).is_err());
    }
}
