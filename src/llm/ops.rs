//! The decoder's element-wise steps in two forms: candle's fused kernels (fast, but
//! without a backward pass: gradients stop there without an error) and, for the blocks a
//! trainer updates, differentiable ones: our fused CPU ops with their own backward
//! ([`super::grad_ops`]) where they serve, else compositions of differentiable
//! primitives.

use super::config::RopeLayout;
use super::grad_ops;
use crate::error::Result;
use candle_core::{Tensor, D};

/// Which form of each step a forward pass uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ops {
    /// candle's fused kernels: generation.
    Fused,
    /// Training's frozen blocks: no gradient flows, so any fast forward serves; as
    /// [`Ops::Fused`], but the gated product and RMSNorm run the trained blocks' CPU
    /// ops without their backward (candle's silu takes libm's exp per element and a
    /// second pass for the product; its norm sums each row in one chain of adds).
    /// Generation keeps [`Ops::Fused`], whose output the llama.cpp greedy-equality
    /// tests pin.
    Frozen,
    /// Differentiable compositions: the blocks and head a trainer updates.
    Differentiable,
}

impl Ops {
    /// RMSNorm over the last dimension, scaled by `w`.
    pub fn rms_norm(self, x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
        Ok(match self {
            Ops::Frozen if grad_ops::serves_both(x, w) => grad_ops::frozen_rms_norm(x, w, eps)?,
            Ops::Fused | Ops::Frozen => candle_nn::ops::rms_norm(&x.contiguous()?, w, eps as f32)?,
            Ops::Differentiable if grad_ops::serves(x) => grad_ops::rms_norm(x, w, eps)?,
            Ops::Differentiable => composed_rms_norm(x, w, eps)?,
        })
    }

    /// silu(`gate`) x `up`, the MLP's gated product.
    pub fn swiglu(self, gate: &Tensor, up: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Ops::Differentiable | Ops::Frozen if grad_ops::serves(gate) => {
                grad_ops::swiglu(gate, up)?
            }
            _ => (gate.silu()? * up)?,
        })
    }

    /// Softmax over the last dimension.
    pub fn softmax(self, x: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Ops::Fused | Ops::Frozen => candle_nn::ops::softmax_last_dim(x)?,
            Ops::Differentiable => candle_nn::ops::softmax(x, D::Minus1)?,
        })
    }

    /// Rotates (batch, heads, seq, d) by the (seq, d/2) angle tables.
    pub fn rope(
        self,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        layout: RopeLayout,
    ) -> Result<Tensor> {
        Ok(match (self, layout) {
            (Ops::Fused | Ops::Frozen, RopeLayout::Interleaved) => {
                candle_nn::rotary_emb::rope_i(&x.contiguous()?, cos, sin)?
            }
            (Ops::Fused | Ops::Frozen, RopeLayout::Halves) => {
                candle_nn::rotary_emb::rope(&x.contiguous()?, cos, sin)?
            }
            (Ops::Differentiable, layout) => composed_rope(x, cos, sin, layout)?,
        })
    }
}

/// RMSNorm composed from differentiable primitives.
pub(super) fn composed_rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    let mean_square = x.sqr()?.mean_keepdim(D::Minus1)?;
    Ok(x.broadcast_div(&(mean_square + eps)?.sqrt()?)?
        .broadcast_mul(w)?)
}

/// RoPE composed from differentiable primitives.
pub(super) fn composed_rope(
    x: &Tensor,
    cos: &Tensor,
    sin: &Tensor,
    layout: RopeLayout,
) -> Result<Tensor> {
    Ok(match layout {
        RopeLayout::Halves => {
            let d = x.dim(D::Minus1)?;
            let cos = Tensor::cat(&[cos, cos], D::Minus1)?;
            let sin = Tensor::cat(&[sin, sin], D::Minus1)?;
            let x1 = x.narrow(D::Minus1, 0, d / 2)?;
            let x2 = x.narrow(D::Minus1, d / 2, d / 2)?;
            let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
            (x.broadcast_mul(&cos)? + rotated.broadcast_mul(&sin)?)?
        }
        RopeLayout::Interleaved => {
            let dims = x.dims().to_vec();
            let d = dims.last().copied().unwrap_or(0);
            let mut pairs = dims.clone();
            pairs.pop();
            pairs.extend([d / 2, 2]);
            let xp = x.reshape(pairs.as_slice())?;
            let a = xp.narrow(D::Minus1, 0, 1)?.squeeze(D::Minus1)?;
            let b = xp.narrow(D::Minus1, 1, 1)?.squeeze(D::Minus1)?;
            let ra = (a.broadcast_mul(cos)? - b.broadcast_mul(sin)?)?;
            let rb = (a.broadcast_mul(sin)? + b.broadcast_mul(cos)?)?;
            Tensor::stack(&[&ra, &rb], D::Minus1)?.reshape(dims.as_slice())?
        }
    })
}
