//! The llama decoder's forward pass for generation: one prompt at a time fills its own
//! KV cache, then any number of sequences advance one token together.
//!
//! Attention runs sequence by sequence over exactly that sequence's cached keys, so a
//! sequence's logits do not depend on which other sequences share the batch, and
//! greedy output is the same at batch size 1 and 8. The projections, where the time
//! goes, run over the whole batch at once.

use super::config::{LlamaConfig, RopeLayout};
use super::weights::{BlockWeights, LlamaWeights};
use crate::error::{Error, Result};
use candle_core::{Device, Module, Tensor};
use candle_nn::kv_cache::KvCache;

/// KV cache growth step, in positions.
const CACHE_CHUNK: usize = 512;

/// A llama-architecture decoder ready to generate.
pub struct LlamaModel {
    config: LlamaConfig,
    weights: LlamaWeights,
    cos: Tensor,
    sin: Tensor,
    device: Device,
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

impl LlamaModel {
    /// Wraps loaded weights.
    pub fn new(config: LlamaConfig, weights: LlamaWeights, device: &Device) -> Result<Self> {
        let (cos, sin) = config.rope_tables(device)?;
        Ok(LlamaModel {
            cos,
            sin,
            config,
            weights,
            device: device.clone(),
        })
    }

    /// Gives back the configuration and weights (to build a trainable copy).
    pub fn into_parts(self) -> (LlamaConfig, LlamaWeights) {
        (self.config, self.weights)
    }

    /// The model's dimensions.
    pub fn config(&self) -> &LlamaConfig {
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
                .map(|_| KvCache::new(1, CACHE_CHUNK))
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
        let logits = self.forward(&input, &mut [cache], true, false)?;
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
        let logits = self.forward(&input, &mut [&mut cache], true, true)?;
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
        self.forward(&input, caches, false, false)
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

    /// input: (rows, seq) token ids; every row has its own cache. Returns the logits
    /// of each row's last position, (rows, vocab), or with `every_position` of all
    /// positions, (rows, seq, vocab).
    fn forward(
        &self,
        input: &Tensor,
        caches: &mut [&mut SequenceCache],
        causal: bool,
        every_position: bool,
    ) -> Result<Tensor> {
        let (rows, seq) = input.dims2()?;
        let mut x = self
            .weights
            .embedding
            .index_select(&input.flatten_all()?, 0)?
            .reshape((rows, seq, self.config.hidden_size))?;
        for (layer, block) in self.weights.blocks.iter().enumerate() {
            let h =
                candle_nn::ops::rms_norm(&x, &block.attn_norm, self.config.rms_norm_eps as f32)?;
            let attn = self.attention(&h, block, layer, caches, causal)?;
            x = (x + attn)?;
            let h = candle_nn::ops::rms_norm(&x, &block.mlp_norm, self.config.rms_norm_eps as f32)?;
            let gate = candle_nn::ops::silu(&block.gate.forward(&h)?)?;
            let mlp = block.down.forward(&(gate * block.up.forward(&h)?)?)?;
            x = (x + mlp)?;
        }
        for c in caches.iter_mut() {
            c.len += seq;
        }
        let last = if every_position {
            x
        } else {
            x.narrow(1, seq - 1, 1)?.squeeze(1)?
        };
        let last = candle_nn::ops::rms_norm(
            &last.contiguous()?,
            &self.weights.final_norm,
            self.config.rms_norm_eps as f32,
        )?;
        Ok(self.weights.lm_head.forward(&last)?)
    }

    fn attention(
        &self,
        h: &Tensor,
        block: &BlockWeights,
        layer: usize,
        caches: &mut [&mut SequenceCache],
        causal: bool,
    ) -> Result<Tensor> {
        let c = &self.config;
        let (rows, seq, hidden) = h.dims3()?;
        let d = c.head_dim();
        let groups = c.num_heads / c.num_kv_heads;
        let q = block.query.forward(h)?;
        let k = block.key.forward(h)?;
        let v = block.value.forward(h)?;
        let scale = 1.0 / (d as f64).sqrt();
        let mut outs = Vec::with_capacity(rows);
        for (row, cache) in caches.iter_mut().enumerate() {
            let start = cache.len;
            let heads = |t: &Tensor, n: usize| -> Result<Tensor> {
                Ok(t.narrow(0, row, 1)?
                    .reshape((seq, n, d))?
                    .transpose(0, 1)?
                    .contiguous()?)
            };
            let q_row = self.rope(&heads(&q, c.num_heads)?, start)?;
            let k_row = self.rope(&heads(&k, c.num_kv_heads)?, start)?;
            let v_row = heads(&v, c.num_kv_heads)?;
            let (k_all, v_all) = cache.blocks[layer].append(&k_row, &v_row)?;
            let total = k_all.dim(1)?;
            // Query heads sharing a key/value head are stacked so that one matmul per
            // key/value head serves the whole group.
            let q_grouped = q_row.reshape((c.num_kv_heads, groups * seq, d))?;
            let scores = (q_grouped.matmul(&k_all.t()?)? * scale)?;
            let scores = if causal && seq > 1 {
                let mask = causal_mask(seq, total, &self.device)?;
                scores
                    .reshape((c.num_kv_heads, groups, seq, total))?
                    .broadcast_add(&mask)?
                    .reshape((c.num_kv_heads, groups * seq, total))?
            } else {
                scores
            };
            let probs = candle_nn::ops::softmax_last_dim(&scores)?;
            let out = probs
                .matmul(&v_all.contiguous()?)?
                .reshape((c.num_heads, seq, d))?
                .transpose(0, 1)?
                .reshape((1, seq, hidden))?;
            outs.push(out);
        }
        let out = if outs.len() == 1 {
            outs.remove(0)
        } else {
            Tensor::cat(&outs, 0)?
        };
        Ok(block.attn_out.forward(&out)?)
    }

    /// Rotates (heads, seq, d) starting at position `start`.
    fn rope(&self, x: &Tensor, start: usize) -> Result<Tensor> {
        let seq = x.dim(1)?;
        let cos = self.cos.narrow(0, start, seq)?;
        let sin = self.sin.narrow(0, start, seq)?;
        let x = x.unsqueeze(0)?;
        let out = match self.config.rope_layout {
            RopeLayout::Interleaved => candle_nn::rotary_emb::rope_i(&x, &cos, &sin)?,
            RopeLayout::Halves => candle_nn::rotary_emb::rope(&x, &cos, &sin)?,
        };
        Ok(out.squeeze(0)?)
    }
}

/// (seq, total) additive mask: the last `seq` of `total` positions see themselves and
/// everything before.
fn causal_mask(seq: usize, total: usize, device: &Device) -> Result<Tensor> {
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
    Ok(Tensor::from_vec(values, (seq, total), device)?)
}
