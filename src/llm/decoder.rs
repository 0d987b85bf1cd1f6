//! The decoder's forward pass, one definition for generation and for training.
//!
//! Generation: one prompt at a time fills its own KV cache, then any number of sequences
//! advance one token together. Attention runs sequence by sequence over exactly that
//! sequence's cached keys, so a sequence's logits do not depend on which other sequences
//! share the batch, and greedy output is the same at batch size 1 and 8. The
//! projections, where the time goes, run over the whole batch at once.
//!
//! Training: whole sequences from position 0, no cache; the blocks being trained (and
//! the final norm and head) use differentiable steps ([`Ops::Differentiable`]), frozen
//! blocks before them fused kernels ([`Ops::Frozen`]), since no gradient flows there.

use super::causal_attention;
use super::config::DecoderConfig;
use super::grad_ops;
use super::ops::Ops;
use super::weights::{BlockWeights, DecoderWeights, Linear};
use crate::error::{Error, Result};
use candle_core::quantized::QMatMul;
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::kv_cache::KvCache;

/// KV cache growth step, in positions.
const CACHE_CHUNK: usize = 512;

/// A decoder of a supported family (llama, qwen2, qwen3) with its weights.
pub struct Decoder {
    config: DecoderConfig,
    weights: DecoderWeights,
    cos: Tensor,
    sin: Tensor,
    device: Device,
    /// Blocks from this index on, the final norm and the head use differentiable
    /// steps; `None` for generation (every step fused).
    differentiable_from: Option<usize>,
}

/// The keys and values one sequence has seen, per block.
pub struct SequenceCache {
    blocks: Vec<KvCache>,
    len: usize,
}

impl SequenceCache {
    /// Positions already in the cache.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing has been fed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Which positions a forward pass attends over.
enum Context<'a, 'b> {
    /// Each row continues its own cached sequence (generation).
    Cached {
        caches: &'a mut [&'b mut SequenceCache],
        causal: bool,
    },
    /// Whole sequences from position 0, no cache (training).
    Whole,
}

impl Decoder {
    /// Wraps loaded weights for generation.
    pub fn new(config: DecoderConfig, weights: DecoderWeights, device: &Device) -> Result<Self> {
        let (cos, sin) = config.rope_tables(device)?;
        Ok(Decoder {
            cos,
            sin,
            config,
            weights,
            device: device.clone(),
            differentiable_from: None,
        })
    }

    /// Wraps weights for training: blocks from `first_trained` on (and the final norm
    /// and head) use differentiable steps; the RoPE tables take the embedding's dtype.
    pub fn for_training(
        config: DecoderConfig,
        weights: DecoderWeights,
        device: &Device,
        first_trained: usize,
    ) -> Result<Self> {
        let mut decoder = Decoder::new(config, weights, device)?;
        let dtype = decoder.weights.embedding.dtype();
        decoder.cos = decoder.cos.to_dtype(dtype)?;
        decoder.sin = decoder.sin.to_dtype(dtype)?;
        decoder.differentiable_from = Some(first_trained);
        Ok(decoder)
    }

    /// Gives back the configuration and weights (to build a trainable copy).
    pub fn into_parts(self) -> (DecoderConfig, DecoderWeights) {
        (self.config, self.weights)
    }

    /// The model's dimensions.
    pub fn config(&self) -> &DecoderConfig {
        &self.config
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// An empty cache for a new sequence.
    pub fn new_cache(&self) -> SequenceCache {
        SequenceCache {
            blocks: (0..self.config.num_layers)
                .map(|_| KvCache::new(2, CACHE_CHUNK))
                .collect(),
            len: 0,
        }
    }

    /// Feeds a sequence's tokens (its prompt) and returns the logits after the last
    /// one, shape (vocab,).
    pub fn prefill(&self, tokens: &[u32], cache: &mut SequenceCache) -> Result<Tensor> {
        if tokens.is_empty() {
            return Err(Error::InvalidArgument("no tokens to feed".into()));
        }
        self.check_room(cache.len + tokens.len())?;
        let input = Tensor::new(tokens, &self.device)?.unsqueeze(0)?;
        let context = Context::Cached {
            caches: &mut [cache],
            causal: true,
        };
        let logits = self.logits(&input, context, false)?;
        Ok(logits.squeeze(0)?)
    }

    /// Teacher-forced logits at every position of `tokens` from an empty context,
    /// shape (tokens, vocab): row i scores token i + 1.
    pub fn logits_at_every_position(&self, tokens: &[u32]) -> Result<Tensor> {
        if tokens.is_empty() {
            return Err(Error::InvalidArgument("no tokens to feed".into()));
        }
        self.check_room(tokens.len())?;
        let input = Tensor::new(tokens, &self.device)?.unsqueeze(0)?;
        let mut cache = self.new_cache();
        let context = Context::Cached {
            caches: &mut [&mut cache],
            causal: true,
        };
        let logits = self.logits(&input, context, true)?;
        Ok(logits.squeeze(0)?)
    }

    /// Feeds one token to each sequence and returns their next-token logits,
    /// shape (sequences, vocab).
    pub fn step(&self, tokens: &[u32], caches: &mut [&mut SequenceCache]) -> Result<Tensor> {
        if tokens.len() != caches.len() || tokens.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "{} tokens for {} sequences",
                tokens.len(),
                caches.len()
            )));
        }
        for c in caches.iter() {
            self.check_room(c.len + 1)?;
        }
        let input = Tensor::new(tokens, &self.device)?.unsqueeze(1)?;
        let context = Context::Cached {
            caches,
            causal: false,
        };
        self.logits(&input, context, false)
    }

    /// Logits (batch, seq, vocab) in f32 for token ids (batch, seq) from position 0
    /// with causal attention: the training forward pass.
    pub fn forward_whole(&self, input: &Tensor) -> Result<Tensor> {
        let t = input.dim(1)?;
        self.check_room(t)?;
        Ok(self
            .logits(input, Context::Whole, true)?
            .to_dtype(DType::F32)?)
    }

    fn check_room(&self, needed: usize) -> Result<()> {
        if needed > self.config.max_positions {
            return Err(Error::InvalidArgument(format!(
                "{needed} positions exceed the model's context of {}",
                self.config.max_positions
            )));
        }
        Ok(())
    }

    /// The steps block `layer` (or the head, `layer` = number of blocks) uses.
    fn ops(&self, layer: usize) -> Ops {
        match self.differentiable_from {
            Some(first) if layer >= first => Ops::Differentiable,
            Some(_) => Ops::Frozen,
            None => Ops::Fused,
        }
    }

    /// The final-normed hidden states (batch, seq, hidden) for token ids (batch, seq)
    /// from position 0 with causal attention: the training forward pass up to the head.
    pub fn hidden_whole(&self, input: &Tensor) -> Result<Tensor> {
        self.check_room(input.dim(1)?)?;
        self.hidden(input, Context::Whole, true)
    }

    /// The output head's (vocab, hidden) matrix when it is a plain dense one (as in
    /// training), for ops that fuse the head with the loss.
    pub fn dense_head(&self) -> Option<&Tensor> {
        match &self.weights.lm_head {
            Linear::Candle(QMatMul::Tensor(w)) => Some(w),
            _ => None,
        }
    }

    /// input: (rows, seq) token ids. Returns the logits of each row's last position,
    /// (rows, vocab), or with `every_position` of all positions, (rows, seq, vocab).
    fn logits(&self, input: &Tensor, context: Context, every_position: bool) -> Result<Tensor> {
        let x = self.hidden(input, context, every_position)?;
        Ok(self.weights.lm_head.forward(&x)?)
    }

    /// The final-normed hidden states of each row's last position, or with
    /// `every_position` of all positions.
    fn hidden(&self, input: &Tensor, mut context: Context, every_position: bool) -> Result<Tensor> {
        let c = &self.config;
        let (rows, seq) = input.dims2()?;
        let mut x = self
            .weights
            .embedding
            .index_select(&input.flatten_all()?, 0)?
            .reshape((rows, seq, c.hidden_size))?;
        for (layer, block) in self.weights.blocks.iter().enumerate() {
            let ops = self.ops(layer);
            let h = ops.rms_norm(&x, &block.attn_norm, c.rms_norm_eps)?;
            x = (x + self.attention(&h, block, layer, ops, &mut context)?)?;
            let h = ops.rms_norm(&x, &block.mlp_norm, c.rms_norm_eps)?;
            let gated = ops.swiglu(&block.gate.forward(&h)?, &block.up.forward(&h)?)?;
            x = (x + block.down.forward(&gated)?)?;
        }
        if let Context::Cached { caches, .. } = &mut context {
            for cache in caches.iter_mut() {
                cache.len += seq;
            }
        }
        let x = if every_position {
            x
        } else {
            x.narrow(1, seq - 1, 1)?.squeeze(1)?
        };
        let ops = self.ops(c.num_layers);
        ops.rms_norm(&x, &self.weights.final_norm, c.rms_norm_eps)
    }

    /// Self-attention of block `layer` over (rows, seq, hidden).
    fn attention(
        &self,
        h: &Tensor,
        block: &BlockWeights,
        layer: usize,
        ops: Ops,
        context: &mut Context,
    ) -> Result<Tensor> {
        let c = &self.config;
        let (rows, seq, _) = h.dims3()?;
        let (q_norm, k_norm) = match &block.qk_norm {
            Some((q, k)) => (Some(q), Some(k)),
            None => (None, None),
        };
        let (q, k, v) = (
            block.query.forward(h)?,
            block.key.forward(h)?,
            block.value.forward(h)?,
        );
        if matches!(context, Context::Whole) && grad_ops::serves(&q) {
            // Token-major throughout: a head's norm is over its own d values, and the
            // op splits heads itself.
            let norm = |t: Tensor, n: usize, w: Option<&Tensor>| -> Result<Tensor> {
                match w {
                    Some(w) => Ok(ops
                        .rms_norm(&t.reshape((rows, seq, n, c.head_dim))?, w, c.rms_norm_eps)?
                        .reshape((rows, seq, n * c.head_dim))?),
                    None => Ok(t),
                }
            };
            let (q, k) = (
                norm(q, c.num_heads, q_norm)?,
                norm(k, c.num_kv_heads, k_norm)?,
            );
            let tables = (&self.cos.narrow(0, 0, seq)?, &self.sin.narrow(0, 0, seq)?);
            let out = causal_attention::rotary_causal_attention(
                (&q, &k, &v),
                tables,
                c.rope_layout,
                (c.num_heads, c.num_kv_heads),
                ops == Ops::Differentiable,
            )?;
            return Ok(block.attn_out.forward(&out)?);
        }
        // (rows, heads, seq, d), each head RMS-normed first where the family does so.
        let heads = |t: Tensor, n: usize, norm: Option<&Tensor>| -> Result<Tensor> {
            let t = t.reshape((rows, seq, n, c.head_dim))?.transpose(1, 2)?;
            match norm {
                Some(w) => ops.rms_norm(&t, w, c.rms_norm_eps),
                None => Ok(t.contiguous()?),
            }
        };
        let q = heads(q, c.num_heads, q_norm)?;
        let k = heads(k, c.num_kv_heads, k_norm)?;
        let v = heads(v, c.num_kv_heads, None)?;
        let out = match context {
            Context::Whole => {
                let q = self.rotate(&q, 0, ops)?;
                let k = self.rotate(&k, 0, ops)?;
                let mask = causal_mask(seq, seq, q.dtype(), &self.device)?;
                self.attend(&q, &k, &v, Some(&mask), ops)?
            }
            Context::Cached { caches, causal } => {
                let mut outs = Vec::with_capacity(rows);
                for (row, cache) in caches.iter_mut().enumerate() {
                    let start = cache.len;
                    let q = self.rotate(&q.narrow(0, row, 1)?, start, ops)?;
                    let k = self.rotate(&k.narrow(0, row, 1)?, start, ops)?;
                    let v = v.narrow(0, row, 1)?.contiguous()?;
                    let (k_all, v_all) = cache.blocks[layer].append(&k, &v)?;
                    let total = k_all.dim(2)?;
                    let mask = match *causal && seq > 1 {
                        true => Some(causal_mask(seq, total, q.dtype(), &self.device)?),
                        false => None,
                    };
                    outs.push(self.attend(&q, &k_all, &v_all, mask.as_ref(), ops)?);
                }
                match outs.len() {
                    1 => outs.remove(0),
                    _ => Tensor::cat(&outs, 0)?,
                }
            }
        };
        Ok(block.attn_out.forward(&out)?)
    }

    /// Rotates (rows, heads, seq, d) starting at position `start`.
    fn rotate(&self, x: &Tensor, start: usize, ops: Ops) -> Result<Tensor> {
        let seq = x.dim(2)?;
        let cos = self.cos.narrow(0, start, seq)?;
        let sin = self.sin.narrow(0, start, seq)?;
        ops.rope(x, &cos, &sin, self.config.rope_layout)
    }

    /// Scaled dot-product attention of q (rows, heads, seq, d) over k and v (rows,
    /// kv_heads, total, d), with an additive (seq, total) mask; returns (rows, seq,
    /// heads x d). Query heads sharing a key/value head are stacked so that one product
    /// per key/value head serves the whole group, without copying keys.
    fn attend(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        mask: Option<&Tensor>,
        ops: Ops,
    ) -> Result<Tensor> {
        let c = &self.config;
        let (rows, _, seq, d) = q.dims4()?;
        let total = k.dim(2)?;
        let groups = c.num_heads / c.num_kv_heads;
        // Three-dimensional products (rows x kv heads as the batch): the same gemm
        // calls as candle's reference llama, so int8/Q4 activation rounding matches.
        let batch = rows * c.num_kv_heads;
        let q = q.reshape((batch, groups * seq, d))?;
        let k = k.reshape((batch, total, d))?;
        let scores = (q.matmul(&k.t()?)? * (1.0 / (d as f64).sqrt()))?;
        let scores = match mask {
            Some(mask) => scores
                .reshape((batch, groups, seq, total))?
                .broadcast_add(mask)?
                .reshape((batch, groups * seq, total))?,
            None => scores,
        };
        let probs = ops.softmax(&scores)?;
        Ok(probs
            .matmul(&v.reshape((batch, total, d))?)?
            .reshape((rows, c.num_heads, seq, d))?
            .transpose(1, 2)?
            .reshape((rows, seq, c.num_heads * d))?)
    }
}

/// (seq, total) additive mask: the last `seq` of `total` positions see themselves and
/// everything before.
fn causal_mask(seq: usize, total: usize, dtype: DType, device: &Device) -> Result<Tensor> {
    let offset = total - seq;
    let values: Vec<f32> = (0..seq)
        .flat_map(|i| {
            (0..total).map(move |j| {
                if j <= offset + i {
                    0.0
                } else {
                    f32::NEG_INFINITY
                }
            })
        })
        .collect();
    Ok(Tensor::from_vec(values, (seq, total), device)?.to_dtype(dtype)?)
}
