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
use std::collections::HashMap;

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
    /// Blocks before this index (and the embedding, when > 0) are frozen.
    first_trained_block: usize,
    dtype: DType,
}

impl TrainableLlama {
    /// Turns loaded f32 weights (GGUF dequantised, or a Hugging Face folder) into
    /// trainable variables.
    pub fn from_weights(
        config: LlamaConfig,
        weights: LlamaWeights,
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        let var = |t: &Tensor| -> Result<Var> { Ok(Var::from_tensor(&t.to_dtype(dtype)?)?) };
        let dense = |linear: Linear, what: &str| -> Result<Var> {
            match linear {
                Linear::Candle(QMatMul::Tensor(t)) => var(&t),
                _ => Err(Error::InvalidArgument(format!(
                    "{what} is quantized; load the model with GgufPrecision::F32 to train it"
                ))),
            }
        };
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
                    attn_norm: var(&b.attn_norm)?,
                    query: dense(b.query, &name("query"))?,
                    key: dense(b.key, &name("key"))?,
                    value: dense(b.value, &name("value"))?,
                    attn_out: dense(b.attn_out, &name("attention output"))?,
                    mlp_norm: var(&b.mlp_norm)?,
                    gate: dense(b.gate, &name("gate"))?,
                    up: dense(b.up, &name("up"))?,
                    down: dense(b.down, &name("down"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let (cos, sin) = config.rope_tables(device)?;
        Ok(TrainableLlama {
            embedding: var(&weights.embedding)?,
            final_norm: var(&weights.final_norm)?,
            lm_head,
            blocks,
            cos: cos.to_dtype(dtype)?,
            sin: sin.to_dtype(dtype)?,
            config,
            first_trained_block: 0,
            dtype,
        })
    }

    /// A randomly initialised model (normal(0, 0.02) matrices, unit norms) from a seed,
    /// for tests and from-scratch experiments.
    pub fn random(config: LlamaConfig, seed: u64, device: &Device) -> Result<Self> {
        let mut rng = crate::rng::SplitMix64::new(seed);
        let mut matrix = |rows: usize, cols: usize| -> Result<Var> {
            let values: Vec<f32> = (0..rows * cols)
                .map(|_| 0.02 * rng.normal() as f32)
                .collect();
            Ok(Var::from_tensor(&Tensor::from_vec(
                values,
                (rows, cols),
                device,
            )?)?)
        };
        let ones = |n: usize| -> Result<Var> { Ok(Var::ones(n, DType::F32, device)?) };
        let c = &config;
        let (h, kv, ffn) = (
            c.hidden_size,
            c.num_kv_heads * c.head_dim(),
            c.intermediate_size,
        );
        let embedding = matrix(c.vocab_size, h)?;
        let lm_head = if c.tie_embeddings {
            None
        } else {
            Some(matrix(c.vocab_size, h)?)
        };
        let mut blocks = Vec::with_capacity(c.num_layers);
        for _ in 0..c.num_layers {
            blocks.push(TrainableBlock {
                attn_norm: ones(h)?,
                query: matrix(h, h)?,
                key: matrix(kv, h)?,
                value: matrix(kv, h)?,
                attn_out: matrix(h, h)?,
                mlp_norm: ones(h)?,
                gate: matrix(ffn, h)?,
                up: matrix(ffn, h)?,
                down: matrix(h, ffn)?,
            });
        }
        let (cos, sin) = config.rope_tables(device)?;
        Ok(TrainableLlama {
            embedding,
            final_norm: ones(h)?,
            lm_head,
            blocks,
            cos,
            sin,
            config,
            first_trained_block: 0,
            dtype: DType::F32,
        })
    }

    /// Trains only the last `n` blocks and the final norm (and a separate output
    /// projection, if any); `None` trains every weight.
    pub fn set_trained_blocks(&mut self, last: Option<usize>) -> Result<()> {
        let layers = self.blocks.len();
        self.first_trained_block = match last {
            None => 0,
            Some(n) if n >= 1 && n <= layers => layers - n,
            Some(n) => {
                return Err(Error::InvalidArgument(format!(
                    "cannot train the last {n} of {layers} blocks"
                )))
            }
        };
        Ok(())
    }

    /// The variables the optimizer updates, with Hugging Face-style names.
    pub fn trained_variables(&self) -> Vec<(String, Var)> {
        let frozen_prefix: Vec<String> = (0..self.first_trained_block)
            .map(|i| format!("model.layers.{i}."))
            .collect();
        self.variables()
            .into_iter()
            .filter(|(name, _)| {
                let frozen_embedding =
                    self.first_trained_block > 0 && name == "model.embed_tokens.weight";
                !frozen_embedding && !frozen_prefix.iter().any(|p| name.starts_with(p.as_str()))
            })
            .map(|(name, var)| (name, var.clone()))
            .collect()
    }

    /// Every weight as f32 under its Hugging Face name, in Hugging Face's RoPE layout
    /// (query and key rows re-ordered when the weights came from a GGUF file): what a
    /// checkpoint stores.
    pub fn hf_tensors(&self) -> Result<HashMap<String, Tensor>> {
        let c = &self.config;
        let mut out = HashMap::new();
        for (name, var) in self.variables() {
            let mut t = var
                .as_tensor()
                .to_dtype(DType::F32)?
                .to_device(&Device::Cpu)?;
            if c.rope_layout == RopeLayout::Interleaved {
                if name.ends_with("q_proj.weight") {
                    t = crate::llm::interleaved_to_halves(&t, c.num_heads)?;
                } else if name.ends_with("k_proj.weight") {
                    t = crate::llm::interleaved_to_halves(&t, c.num_kv_heads)?;
                }
            }
            out.insert(name, t);
        }
        Ok(out)
    }

    /// Replaces every weight with the tensor of the same name (Hugging Face layout, as
    /// [`TrainableLlama::hf_tensors`] gives them); used to resume from a checkpoint.
    pub fn load_hf_tensors(&mut self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        let c = self.config.clone();
        for (name, var) in self.variables() {
            let t = tensors.get(&name).ok_or_else(|| {
                Error::InvalidArgument(format!("the checkpoint has no tensor '{name}'"))
            })?;
            let mut t = t
                .to_device(var.as_tensor().device())?
                .to_dtype(self.dtype)?;
            if c.rope_layout == RopeLayout::Interleaved {
                if name.ends_with("q_proj.weight") {
                    t = crate::llm::halves_to_interleaved(&t, c.num_heads)?;
                } else if name.ends_with("k_proj.weight") {
                    t = crate::llm::halves_to_interleaved(&t, c.num_kv_heads)?;
                }
            }
            var.set(&t)
                .map_err(|e| Error::InvalidArgument(format!("checkpoint tensor '{name}': {e}")))?;
        }
        Ok(())
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
        // Frozen weights enter detached, so backward never runs through them.
        let weight = |v: &Var, frozen: bool| {
            if frozen {
                v.as_tensor().detach()
            } else {
                v.as_tensor().clone()
            }
        };
        let mut x = weight(&self.embedding, self.first_trained_block > 0)
            .index_select(&input.flatten_all()?, 0)?
            .reshape((b, t, c.hidden_size))?;
        let mask = causal_mask(t, input.device())?.to_dtype(self.dtype)?;
        for (i, block) in self.blocks.iter().enumerate() {
            let w = |v: &Var| weight(v, i < self.first_trained_block);
            let h = rms_norm(&x, &w(&block.attn_norm), c.rms_norm_eps)?;
            x = (&x + self.attention(&h, block, &w, &mask)?)?;
            let h = rms_norm(&x, &w(&block.mlp_norm), c.rms_norm_eps)?;
            let gate = silu(&linear(&h, &w(&block.gate))?)?;
            let up = linear(&h, &w(&block.up))?;
            x = (&x + linear(&(gate * up)?, &w(&block.down))?)?;
        }
        let x = rms_norm(&x, self.final_norm.as_tensor(), c.rms_norm_eps)?;
        // A tied head is the (possibly frozen) embedding.
        let head = match &self.lm_head {
            Some(h) => h.as_tensor().clone(),
            None => weight(&self.embedding, self.first_trained_block > 0),
        };
        Ok(linear(&x, &head)?.to_dtype(DType::F32)?)
    }

    fn attention(
        &self,
        h: &Tensor,
        block: &TrainableBlock,
        w: &dyn Fn(&Var) -> Tensor,
        mask: &Tensor,
    ) -> Result<Tensor> {
        let c = &self.config;
        let (b, t, hidden) = h.dims3()?;
        let d = c.head_dim();
        let heads = |v: &Var, n: usize| -> Result<Tensor> {
            Ok(linear(h, &w(v))?
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
        linear(&out, &w(&block.attn_out))
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

fn linear(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    Ok(x.broadcast_matmul(&w.t()?)?)
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
