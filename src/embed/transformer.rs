//! The transformer encoder forward pass for inference (BERT, RoBERTa, XLM-RoBERTa,
//! MPNet), built from candle ops.
//!
//! The families share post-layer-norm blocks and differ in three places, each taken
//! from [`EncoderFamily`]: the weight names of the attention block, where position ids
//! start (RoBERTa and MPNet skip the padding index), and MPNet's relative position bias
//! added to every layer's attention scores. For BERT it gives the same hidden states as
//! candle-transformers' `BertModel` (a test checks this), shaped for throughput: the
//! query/key/value projections are one matrix product, weights are stored
//! pre-transposed, the attention scale is folded into the query weights, softmax and
//! layer norm use candle's fused kernels, and GELU is one vectorised pass.

use super::config::{Activation, EncoderConfig, EncoderFamily};
use super::gelu::gelu_erf;
use super::packed::{PackedDense, PackedEncoder, PackedLayer, PackedNorm, PackedRelativeBias};
use super::precision::EncoderPrecision;
use crate::amx::Bf16Matrix;
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Embedding, VarBuilder};

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

/// Encoder weights, ready for inference.
pub struct TransformerEncoder {
    word: Embedding,
    position: Tensor,
    /// The first real token's row of the position table.
    first_position: usize,
    /// Token type 0's embedding (none for MPNet).
    token_type: Option<Tensor>,
    embed_norm: Norm,
    layers: Vec<Layer>,
    /// MPNet's relative position bias, `buckets x heads`.
    relative_bias: Option<RelativeBias>,
    heads: usize,
    head_dim: usize,
    hidden: usize,
    act: Activation,
}

/// MPNet's bucketed relative position bias (T5's bidirectional buckets).
struct RelativeBias {
    table: Embedding,
    buckets: usize,
}

/// The names of one attention block's weights in a family's checkpoints.
struct AttentionNames {
    query: &'static str,
    key: &'static str,
    value: &'static str,
    output: &'static str,
    norm: &'static str,
}

fn attention_names(family: EncoderFamily) -> AttentionNames {
    match family {
        EncoderFamily::Mpnet => AttentionNames {
            query: "attention.attn.q",
            key: "attention.attn.k",
            value: "attention.attn.v",
            output: "attention.attn.o",
            norm: "attention.LayerNorm",
        },
        _ => AttentionNames {
            query: "attention.self.query",
            key: "attention.self.key",
            value: "attention.self.value",
            output: "attention.output.dense",
            norm: "attention.output.LayerNorm",
        },
    }
}

impl TransformerEncoder {
    /// Loads Hugging Face weights (with or without the family's prefix, `bert.` ...).
    pub fn load(vb: VarBuilder, config: &EncoderConfig) -> Result<Self> {
        let prefix = config.family.weight_prefix();
        let vb = if vb.contains_tensor(&format!("{prefix}.embeddings.word_embeddings.weight")) {
            vb.pp(prefix)
        } else {
            vb
        };
        let h = config.hidden_size;
        let heads = config.num_attention_heads;
        let head_dim = h / heads;
        let e = vb.pp("embeddings");
        let word = Embedding::new(e.get((config.vocab_size, h), "word_embeddings.weight")?, h);
        let position = e.get(
            (config.max_position_embeddings, h),
            "position_embeddings.weight",
        )?;
        let token_type = match config.type_vocab_size {
            0 => None,
            n => Some(
                e.get((n, h), "token_type_embeddings.weight")?
                    .narrow(0, 0, 1)?,
            ),
        };
        let embed_norm = Norm::load(e.pp("LayerNorm"), h, config.layer_norm_eps)?;
        let relative_bias = match config.family {
            EncoderFamily::Mpnet => {
                let buckets = config.relative_attention_num_buckets;
                let table = vb.get((buckets, heads), "encoder.relative_attention_bias.weight")?;
                Some(RelativeBias {
                    table: Embedding::new(table, heads),
                    buckets,
                })
            }
            _ => None,
        };
        let layers = (0..config.num_hidden_layers)
            .map(|i| load_layer(vb.pp(format!("encoder.layer.{i}")), config))
            .collect::<Result<Vec<_>>>()?;
        Ok(TransformerEncoder {
            word,
            position,
            first_position: config.family.first_position(config.pad_token_id),
            token_type,
            embed_norm,
            layers,
            relative_bias,
            heads,
            head_dim,
            hidden: h,
            act: config.activation,
        })
    }

    /// Last hidden states (`batch x len x hidden`) for right-padded token ids and a 0/1
    /// attention mask, both `batch x len`. Token type 0 everywhere (single sentences).
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (b, len) = ids.dims2()?;
        let h = self.hidden;
        // Right padding: real tokens sit at 0..n, so their position ids are
        // first_position + index, as transformers computes them from the mask.
        let positions = self.position.narrow(0, self.first_position, len)?;
        let mut x = self.word.forward(ids)?.broadcast_add(&positions)?;
        if let Some(token_type) = &self.token_type {
            x = x.broadcast_add(token_type)?;
        }
        let mut x = self.embed_norm.forward(&x)?.reshape((b * len, h))?;
        // Padding keys get the most negative float, as transformers does.
        let dtype = x.dtype();
        let mut mask_bias = ((mask.to_dtype(DType::F32)? - 1.0)? * f64::from(f32::MAX))?
            .to_dtype(dtype)?
            .reshape((b, 1, 1, len))?;
        if let Some(bias) = &self.relative_bias {
            mask_bias = mask_bias.broadcast_add(&bias.scores(len, self.device())?)?;
        }
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
            Activation::Gelu => gelu_erf(&inter)?,
            Activation::Relu => inter.relu()?,
        };
        layer
            .out_norm
            .forward(&(layer.output.forward(&inter)? + attn)?)
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        self.position.device()
    }

    /// The same weights as plain buffers for the packed CPU forward pass.
    /// At bf16 precision the dense layers' weights are also packed into AMX tiles.
    pub(super) fn to_packed(&self, precision: EncoderPrecision) -> Result<PackedEncoder> {
        let bf16 = precision == EncoderPrecision::Bf16;
        Ok(PackedEncoder {
            word: values(self.word.embeddings())?,
            position: values(&self.position)?,
            first_position: self.first_position,
            token_type: self.token_type.as_ref().map(values).transpose()?,
            embed_norm: self.embed_norm.to_packed()?,
            layers: self
                .layers
                .iter()
                .map(|layer| layer.to_packed(bf16))
                .collect::<Result<_>>()?,
            relative_bias: self
                .relative_bias
                .as_ref()
                .map(|r| -> Result<_> {
                    Ok(PackedRelativeBias {
                        table: values(r.table.embeddings())?,
                        buckets: r.buckets,
                    })
                })
                .transpose()?,
            heads: self.heads,
            head_dim: self.head_dim,
            hidden: self.hidden,
            act: self.act,
        })
    }
}

/// A tensor's values, row-major, as f32.
fn values(t: &Tensor) -> Result<Vec<f32>> {
    t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()
}

impl Dense {
    fn to_packed(&self, bf16: bool) -> Result<PackedDense> {
        let (inputs, outputs) = self.weight_t.dims2()?;
        let mut weight = values(&self.weight_t)?;
        let tiles = bf16
            .then(|| Bf16Matrix::pack(&weight, inputs, outputs))
            .flatten();
        if tiles.is_some() {
            // The products read only the tiles: keep one copy of the weights.
            weight = Vec::new();
        }
        Ok(PackedDense {
            bf16: tiles,
            weight,
            bias: values(&self.bias)?,
            inputs,
            outputs,
        })
    }
}

impl Norm {
    fn to_packed(&self) -> Result<PackedNorm> {
        Ok(PackedNorm {
            weight: values(&self.weight)?,
            bias: values(&self.bias)?,
            eps: self.eps,
        })
    }
}

impl Layer {
    fn to_packed(&self, bf16: bool) -> Result<PackedLayer> {
        Ok(PackedLayer {
            qkv: self.qkv.to_packed(bf16)?,
            attn_out: self.attn_out.to_packed(bf16)?,
            attn_norm: self.attn_norm.to_packed()?,
            intermediate: self.intermediate.to_packed(bf16)?,
            output: self.output.to_packed(bf16)?,
            out_norm: self.out_norm.to_packed()?,
        })
    }
}

fn load_layer(l: VarBuilder, config: &EncoderConfig) -> Result<Layer> {
    let (h, eps) = (config.hidden_size, config.layer_norm_eps);
    let names = attention_names(config.family);
    // Folding the 1/sqrt(d) scale into the query projection saves a pass over the
    // (batch x heads x len x len) score tensor; MPNet's bias is added after scaling,
    // so it is unaffected.
    let scale = 1.0 / ((h / config.num_attention_heads) as f64).sqrt();
    let q = Dense::load(l.pp(names.query), h, h)?;
    let k = Dense::load(l.pp(names.key), h, h)?;
    let v = Dense::load(l.pp(names.value), h, h)?;
    let qkv = Dense {
        weight_t: Tensor::cat(&[&(q.weight_t * scale)?, &k.weight_t, &v.weight_t], 1)?
            .contiguous()?,
        bias: Tensor::cat(&[&(q.bias * scale)?, &k.bias, &v.bias], 0)?,
    };
    Ok(Layer {
        qkv,
        attn_out: Dense::load(l.pp(names.output), h, h)?,
        attn_norm: Norm::load(l.pp(names.norm), h, eps)?,
        intermediate: Dense::load(l.pp("intermediate.dense"), h, config.intermediate_size)?,
        output: Dense::load(l.pp("output.dense"), config.intermediate_size, h)?,
        out_norm: Norm::load(l.pp("output.LayerNorm"), h, eps)?,
    })
}

impl RelativeBias {
    /// The bias of every (query, key) pair, `1 x heads x len x len`.
    fn scores(&self, len: usize, device: &Device) -> Result<Tensor> {
        let ids = Tensor::from_vec(relative_buckets(len, self.buckets), (len, len), device)?;
        self.table
            .forward(&ids)?
            .permute((2, 0, 1))?
            .unsqueeze(0)?
            .contiguous()
    }
}

/// The bucket of every (query, key) pair of a `len`-token text, query by query
/// (`len x len`), with `buckets` buckets and MPNet's maximum distance of 128.
pub(super) fn relative_buckets(len: usize, buckets: usize) -> Vec<u32> {
    (0..len)
        .flat_map(|query| {
            (0..len).map(move |key| relative_bucket(key as i64 - query as i64, buckets, 128))
        })
        .collect()
}

/// MPNet's (and T5's) bidirectional bucket of a relative position `key - query`: half
/// the buckets for each direction, exact below a quarter of them, logarithmic up to
/// `max_distance`.
fn relative_bucket(relative: i64, buckets: usize, max_distance: i64) -> u32 {
    let half = (buckets / 2) as i64;
    let n = -relative;
    let mut bucket = if n < 0 { half } else { 0 };
    let n = n.abs();
    let max_exact = half / 2;
    bucket += if n < max_exact {
        n
    } else {
        let scaled = ((n as f64 / max_exact as f64).ln()
            / (max_distance as f64 / max_exact as f64).ln()
            * (half - max_exact) as f64) as i64;
        (max_exact + scaled).min(half - 1)
    };
    bucket as u32
}

#[cfg(test)]
mod tests {
    use super::relative_bucket;

    #[test]
    fn relative_buckets_match_mpnet() {
        // Values of transformers' MPNet relative_position_bucket (32 buckets, 128).
        let cases = [
            (0, 0),
            (-1, 1),
            (1, 17),
            (-7, 7),
            (-8, 8),
            (-12, 9),
            (-16, 10),
            (-40, 12),
            (-127, 15),
            (-500, 15),
            (8, 24),
            (500, 31),
        ];
        for (relative, bucket) in cases {
            assert_eq!(relative_bucket(relative, 32, 128), bucket, "{relative}");
        }
    }
}
