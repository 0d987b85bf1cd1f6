//! A BERT encoder forward pass for inference, built from candle ops.
//!
//! It reads the same weights and `Config` as candle-transformers' `BertModel` and gives
//! the same hidden states (a test checks this), but is shaped for throughput: the
//! query/key/value projections are one matrix product, weights are stored
//! pre-transposed, the attention scale is folded into the query weights, softmax and
//! layer norm use candle's fused kernels, and GELU is one vectorised pass.

use super::gelu::gelu_erf;
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Embedding, VarBuilder};
use candle_transformers::models::bert::{Config, HiddenAct};

/// A dense layer with its weight stored as `in x out`, ready for `x.matmul(w)`.
struct Dense {
    weight_t: Tensor,
    bias: Tensor,
}

impl Dense {
    fn load(vb: VarBuilder, d_in: usize, d_out: usize) -> Result<Self> {
        let w = vb.get((d_out, d_in), "weight")?;
        let b = vb.get(d_out, "bias")?;
        Ok(Dense {
            weight_t: w.t()?.contiguous()?,
            bias: b,
        })
    }

    /// `x` is 2-D: rows x in.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.matmul(&self.weight_t)?.broadcast_add(&self.bias)
    }
}

struct Norm {
    weight: Tensor,
    bias: Tensor,
    eps: f32,
}

impl Norm {
    fn load(vb: VarBuilder, size: usize, eps: f64) -> Result<Self> {
        Ok(Norm {
            weight: vb.get(size, "weight")?,
            bias: vb.get(size, "bias")?,
            eps: eps as f32,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        candle_nn::ops::layer_norm(&x.contiguous()?, &self.weight, &self.bias, self.eps)
    }
}

struct Layer {
    qkv: Dense,
    attn_out: Dense,
    attn_norm: Norm,
    intermediate: Dense,
    output: Dense,
    out_norm: Norm,
}

/// BERT encoder weights, ready for inference.
pub struct BertEncoder {
    word: Embedding,
    position: Tensor,
    token_type: Tensor,
    embed_norm: Norm,
    layers: Vec<Layer>,
    heads: usize,
    head_dim: usize,
    hidden: usize,
    act: HiddenAct,
}

impl BertEncoder {
    /// Loads HF BERT weights (with or without a `bert.` prefix).
    pub fn load(vb: VarBuilder, config: &Config) -> Result<Self> {
        let vb = if vb.contains_tensor("bert.embeddings.word_embeddings.weight") {
            vb.pp("bert")
        } else {
            vb
        };
        let h = config.hidden_size;
        if config.num_attention_heads == 0 || !h.is_multiple_of(config.num_attention_heads) {
            candle_core::bail!(
                "hidden size {h} is not a multiple of the {} attention heads",
                config.num_attention_heads
            );
        }
        let heads = config.num_attention_heads;
        let head_dim = h / heads;
        let e = vb.pp("embeddings");
        let word = Embedding::new(e.get((config.vocab_size, h), "word_embeddings.weight")?, h);
        let position = e.get(
            (config.max_position_embeddings, h),
            "position_embeddings.weight",
        )?;
        let token_type = e.get((config.type_vocab_size, h), "token_type_embeddings.weight")?;
        let embed_norm = Norm::load(e.pp("LayerNorm"), h, config.layer_norm_eps)?;
        let scale = 1.0 / (head_dim as f64).sqrt();
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let l = vb.pp(format!("encoder.layer.{i}"));
            let a = l.pp("attention.self");
            // Folding the 1/sqrt(d) scale into the query projection saves a pass over
            // the (batch x heads x len x len) score tensor.
            let q = Dense::load(a.pp("query"), h, h)?;
            let k = Dense::load(a.pp("key"), h, h)?;
            let v = Dense::load(a.pp("value"), h, h)?;
            let qkv = Dense {
                weight_t: Tensor::cat(&[&(q.weight_t * scale)?, &k.weight_t, &v.weight_t], 1)?
                    .contiguous()?,
                bias: Tensor::cat(&[&(q.bias * scale)?, &k.bias, &v.bias], 0)?,
            };
            layers.push(Layer {
                qkv,
                attn_out: Dense::load(l.pp("attention.output.dense"), h, h)?,
                attn_norm: Norm::load(
                    l.pp("attention.output.LayerNorm"),
                    h,
                    config.layer_norm_eps,
                )?,
                intermediate: Dense::load(l.pp("intermediate.dense"), h, config.intermediate_size)?,
                output: Dense::load(l.pp("output.dense"), config.intermediate_size, h)?,
                out_norm: Norm::load(l.pp("output.LayerNorm"), h, config.layer_norm_eps)?,
            });
        }
        Ok(BertEncoder {
            word,
            position,
            token_type,
            embed_norm,
            layers,
            heads,
            head_dim,
            hidden: h,
            act: config.hidden_act,
        })
    }

    /// Last hidden states (`batch x len x hidden`) for token ids and a 0/1 attention
    /// mask, both `batch x len`. Token type 0 everywhere (single sentences).
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (b, len) = ids.dims2()?;
        let h = self.hidden;
        let x = self
            .word
            .forward(ids)?
            .broadcast_add(&self.position.narrow(0, 0, len)?)?
            .broadcast_add(&self.token_type.narrow(0, 0, 1)?)?;
        let mut x = self.embed_norm.forward(&x)?.reshape((b * len, h))?;
        // Padding keys get the most negative float, as transformers does.
        let dtype = x.dtype();
        let mask_bias = ((mask.to_dtype(DType::F32)? - 1.0)? * f64::from(f32::MAX))?
            .to_dtype(dtype)?
            .reshape((b, 1, 1, len))?;
        for layer in &self.layers {
            x = self.layer_forward(layer, &x, &mask_bias, b, len)?;
        }
        x.reshape((b, len, h))
    }

    fn layer_forward(
        &self,
        layer: &Layer,
        x: &Tensor,
        mask_bias: &Tensor,
        b: usize,
        len: usize,
    ) -> Result<Tensor> {
        let (heads, d, h) = (self.heads, self.head_dim, self.hidden);
        let qkv = layer
            .qkv
            .forward(x)?
            .reshape((b, len, 3, heads, d))?
            .permute((2, 0, 3, 1, 4))?;
        let q = qkv.get(0)?.contiguous()?;
        let k = qkv.get(1)?.contiguous()?;
        let v = qkv.get(2)?.contiguous()?;
        let scores = q.matmul(&k.t()?)?.broadcast_add(mask_bias)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let context = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b * len, h))?;
        let attn = layer
            .attn_norm
            .forward(&(layer.attn_out.forward(&context)? + x)?)?;
        let inter = layer.intermediate.forward(&attn)?;
        let inter = match self.act {
            HiddenAct::Gelu => gelu_erf(&inter)?,
            HiddenAct::GeluApproximate => inter.gelu()?,
            HiddenAct::Relu => inter.relu()?,
        };
        layer
            .out_norm
            .forward(&(layer.output.forward(&inter)? + attn)?)
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        self.position.device()
    }
}
