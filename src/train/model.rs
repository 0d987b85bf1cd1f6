//! A llama decoder whose weights are trainable variables, written only with candle ops
//! that have a backward pass.
//!
//! candle's fused `rms_norm`, `softmax_last_dim`, `rope` and `rope_i` have no backward
//! pass, and gradients stop there without an error; this forward composes RMSNorm,
//! RoPE, softmax and SiLU from differentiable primitives instead, and a test checks
//! that every variable receives a gradient.

use crate::error::{Error, Result};
use crate::llm::{Linear, LlamaConfig, LlamaWeights, RopeLayout};
use candle_core::quantized::QMatMul;
use candle_core::{DType, Device, Tensor, Var, D};

/// One decoder block's variables.
struct TrainableBlock {
    attn_norm: Var,
    query: Var,
    key: Var,
    value: Var,
    attn_out: Var,
    mlp_norm: Var,
    gate: Var,
    up: Var,
    down: Var,
}

/// A llama decoder for training: full-sequence causal forward, every weight a [`Var`].
pub struct TrainableLlama {
    config: LlamaConfig,
    embedding: Var,
    final_norm: Var,
    /// `None` when tied to the embedding.
    lm_head: Option<Var>,
    blocks: Vec<TrainableBlock>,
    cos: Tensor,
    sin: Tensor,
}

fn dense(linear: Linear, what: &str) -> Result<Var> {
    match linear {
        Linear::Candle(QMatMul::Tensor(t)) => Ok(Var::from_tensor(&t.to_dtype(DType::F32)?)?),
        _ => Err(Error::InvalidArgument(format!(
            "{what} is quantized; load the model with GgufPrecision::F32 to train it"
        ))),
    }
}

impl TrainableLlama {
    /// Turns loaded f32 weights (GGUF dequantised, or a Hugging Face folder) into
    /// trainable variables.
    pub fn from_weights(
        config: LlamaConfig,
        weights: LlamaWeights,
        device: &Device,
    ) -> Result<Self> {
        let lm_head = if config.tie_embeddings {
            None
        } else {
            Some(dense(weights.lm_head, "the output projection")?)
        };
        let blocks = weights
            .blocks
            .into_iter()
            .enumerate()
            .map(|(i, b)| {
                let name = |w: &str| format!("block {i} {w}");
                Ok(TrainableBlock {
                    attn_norm: Var::from_tensor(&b.attn_norm)?,
                    query: dense(b.query, &name("query"))?,
                    key: dense(b.key, &name("key"))?,
                    value: dense(b.value, &name("value"))?,
                    attn_out: dense(b.attn_out, &name("attention output"))?,
                    mlp_norm: Var::from_tensor(&b.mlp_norm)?,
                    gate: dense(b.gate, &name("gate"))?,
                    up: dense(b.up, &name("up"))?,
                    down: dense(b.down, &name("down"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let (cos, sin) = config.rope_tables(device)?;
        Ok(TrainableLlama {
            embedding: Var::from_tensor(&weights.embedding)?,
            final_norm: Var::from_tensor(&weights.final_norm)?,
            lm_head,
            blocks,
            cos,
            sin,
            config,
        })
    }

    /// Every trainable variable with a Hugging Face-style name.
    pub fn variables(&self) -> Vec<(String, &Var)> {
        let mut out = vec![
            ("model.embed_tokens.weight".to_string(), &self.embedding),
            ("model.norm.weight".to_string(), &self.final_norm),
        ];
        if let Some(h) = &self.lm_head {
            out.push(("lm_head.weight".to_string(), h));
        }
        for (i, b) in self.blocks.iter().enumerate() {
            let p = format!("model.layers.{i}");
            out.extend([
                (format!("{p}.input_layernorm.weight"), &b.attn_norm),
                (format!("{p}.self_attn.q_proj.weight"), &b.query),
                (format!("{p}.self_attn.k_proj.weight"), &b.key),
                (format!("{p}.self_attn.v_proj.weight"), &b.value),
                (format!("{p}.self_attn.o_proj.weight"), &b.attn_out),
                (format!("{p}.post_attention_layernorm.weight"), &b.mlp_norm),
                (format!("{p}.mlp.gate_proj.weight"), &b.gate),
                (format!("{p}.mlp.up_proj.weight"), &b.up),
                (format!("{p}.mlp.down_proj.weight"), &b.down),
            ]);
        }
        out
    }

    /// The model's dimensions.
    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    /// Logits (batch, seq, vocab) for token ids (batch, seq), causal attention from
    /// position 0.
    pub fn forward(&self, input: &Tensor) -> Result<Tensor> {
        let (b, t) = input.dims2()?;
        let c = &self.config;
        if t > c.max_positions {
            return Err(Error::InvalidArgument(format!(
                "{t} positions exceed the context of {}",
                c.max_positions
            )));
        }
        let mut x = self
            .embedding
            .as_tensor()
            .index_select(&input.flatten_all()?, 0)?
            .reshape((b, t, c.hidden_size))?;
        let mask = causal_mask(t, input.device())?;
        for block in &self.blocks {
            let h = rms_norm(&x, block.attn_norm.as_tensor(), c.rms_norm_eps)?;
            x = (&x + self.attention(&h, block, &mask)?)?;
            let h = rms_norm(&x, block.mlp_norm.as_tensor(), c.rms_norm_eps)?;
            let gate = silu(&linear(&h, &block.gate)?)?;
            let up = linear(&h, &block.up)?;
            x = (&x + linear(&(gate * up)?, &block.down)?)?;
        }
        let x = rms_norm(&x, self.final_norm.as_tensor(), c.rms_norm_eps)?;
        let head = self.lm_head.as_ref().unwrap_or(&self.embedding);
        linear(&x, head)
    }

    fn attention(&self, h: &Tensor, block: &TrainableBlock, mask: &Tensor) -> Result<Tensor> {
        let c = &self.config;
        let (b, t, hidden) = h.dims3()?;
        let d = c.head_dim();
        let heads = |w: &Var, n: usize| -> Result<Tensor> {
            Ok(linear(h, w)?
                .reshape((b, t, n, d))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let q = self.rope(&heads(&block.query, c.num_heads)?, t)?;
        let k = self.rope(&heads(&block.key, c.num_kv_heads)?, t)?;
        let v = heads(&block.value, c.num_kv_heads)?;
        let groups = c.num_heads / c.num_kv_heads;
        // Each key/value head serves `groups` query heads.
        let repeat = |x: Tensor| -> Result<Tensor> {
            if groups == 1 {
                return Ok(x);
            }
            Ok(x.unsqueeze(2)?
                .broadcast_as((b, c.num_kv_heads, groups, t, d))?
                .reshape((b, c.num_heads, t, d))?)
        };
        let (k, v) = (repeat(k)?, repeat(v)?);
        let scores = (q.matmul(&k.t()?.contiguous()?)? / (d as f64).sqrt())?.broadcast_add(mask)?;
        let probs = candle_nn::ops::softmax(&scores, D::Minus1)?;
        let out = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, t, hidden))?;
        linear(&out, &block.attn_out)
    }

    /// RoPE from differentiable ops, in the layout of the weights.
    fn rope(&self, x: &Tensor, t: usize) -> Result<Tensor> {
        let d = x.dim(D::Minus1)?;
        let cos = self.cos.narrow(0, 0, t)?;
        let sin = self.sin.narrow(0, 0, t)?;
        match self.config.rope_layout {
            RopeLayout::Halves => {
                let cos = Tensor::cat(&[&cos, &cos], D::Minus1)?;
                let sin = Tensor::cat(&[&sin, &sin], D::Minus1)?;
                let x1 = x.narrow(D::Minus1, 0, d / 2)?;
                let x2 = x.narrow(D::Minus1, d / 2, d / 2)?;
                let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
                Ok((x.broadcast_mul(&cos)? + rotated.broadcast_mul(&sin)?)?)
            }
            RopeLayout::Interleaved => {
                let dims = x.dims().to_vec();
                let mut pairs = dims.clone();
                pairs.pop();
                pairs.extend([d / 2, 2]);
                let xp = x.reshape(pairs.as_slice())?;
                let a = xp.narrow(D::Minus1, 0, 1)?.squeeze(D::Minus1)?;
                let bb = xp.narrow(D::Minus1, 1, 1)?.squeeze(D::Minus1)?;
                let ra = (a.broadcast_mul(&cos)? - bb.broadcast_mul(&sin)?)?;
                let rb = (a.broadcast_mul(&sin)? + bb.broadcast_mul(&cos)?)?;
                Ok(Tensor::stack(&[&ra, &rb], D::Minus1)?.reshape(dims.as_slice())?)
            }
        }
    }
}

fn linear(x: &Tensor, w: &Var) -> Result<Tensor> {
    Ok(x.broadcast_matmul(&w.as_tensor().t()?)?)
}

fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    let mean_square = x.sqr()?.mean_keepdim(D::Minus1)?;
    Ok(x.broadcast_div(&(mean_square + eps)?.sqrt()?)?
        .broadcast_mul(w)?)
}

fn silu(x: &Tensor) -> Result<Tensor> {
    Ok((x / (x.neg()?.exp()? + 1.0)?)?)
}

fn causal_mask(t: usize, device: &Device) -> Result<Tensor> {
    let values: Vec<f32> = (0..t)
        .flat_map(|i| (0..t).map(move |j| if j <= i { 0.0 } else { f32::NEG_INFINITY }))
        .collect();
    Ok(Tensor::from_vec(values, (t, t), device)?)
}
