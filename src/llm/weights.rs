//! Loading a decoder's weights from a GGUF file or Hugging Face safetensors.

use super::config::DecoderConfig;
use super::q8_kernel::{runs_int8_kernel, Q8MatMulOp, Q8Matrix};
use crate::error::{Error, Result};
use candle_core::quantized::{gguf_file, GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Tensor};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How the matrices of a model are held in memory (a GGUF file's, or a Hugging Face
/// folder's, for which `Q8` requantises f32 weights for the int8 kernel).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GgufPrecision {
    /// Requantised to 8-bit blocks of 32 once at load: run by bftembed's int8 kernel
    /// on CPUs with AVX-512 VNNI or AVX2, else by candle's Q8_0 product. candle has only
    /// scalar dot products for Q4_1, and 8-bit blocks hold 4-bit values with
    /// negligible extra error.
    #[default]
    Q8,
    /// As stored in the file.
    AsStored,
    /// Dequantised to f32: the form a trainer starts from.
    F32,
}

/// One weight of the model, named independently of the file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WeightRole {
    /// Token embedding matrix (vocab, hidden).
    Embedding,
    /// Final RMSNorm weight.
    FinalNorm,
    /// Output projection (vocab, hidden); absent when tied to the embedding.
    LmHead,
    /// Block `i`'s RMSNorm before attention.
    AttnNorm(usize),
    /// Block `i`'s query projection.
    Query(usize),
    /// Block `i`'s key projection.
    Key(usize),
    /// Block `i`'s value projection.
    Value(usize),
    /// Block `i`'s attention output projection.
    AttnOut(usize),
    /// Block `i`'s query bias (qwen2; `attention_bias`).
    QueryBias(usize),
    /// Block `i`'s key bias.
    KeyBias(usize),
    /// Block `i`'s value bias.
    ValueBias(usize),
    /// Block `i`'s attention output bias (`attention_bias` in llama/qwen3).
    AttnOutBias(usize),
    /// Block `i`'s RMSNorm weight over each query head (qwen3).
    QueryNorm(usize),
    /// Block `i`'s RMSNorm weight over each key head (qwen3).
    KeyNorm(usize),
    /// Block `i`'s RMSNorm before the MLP.
    MlpNorm(usize),
    /// Block `i`'s MLP gate projection.
    Gate(usize),
    /// Block `i`'s MLP up projection.
    Up(usize),
    /// Block `i`'s MLP down projection.
    Down(usize),
}

impl WeightRole {
    /// Every role of a model under `config`, in file order.
    pub fn all(config: &DecoderConfig) -> Vec<WeightRole> {
        let mut out = vec![WeightRole::Embedding, WeightRole::FinalNorm];
        if !config.tie_embeddings {
            out.push(WeightRole::LmHead);
        }
        for i in 0..config.num_layers {
            out.extend(Self::block(config, i));
        }
        out
    }

    /// The roles of block `i` under `config`.
    pub fn block(config: &DecoderConfig, i: usize) -> Vec<WeightRole> {
        use WeightRole::*;
        let mut out = vec![AttnNorm(i), Query(i), Key(i), Value(i), AttnOut(i)];
        if config.qkv_bias {
            out.extend([QueryBias(i), KeyBias(i), ValueBias(i)]);
        }
        if config.output_bias {
            out.push(AttnOutBias(i));
        }
        if config.qk_norm {
            out.extend([QueryNorm(i), KeyNorm(i)]);
        }
        out.extend([MlpNorm(i), Gate(i), Up(i), Down(i)]);
        out
    }

    /// The block a role belongs to (`None` for the embedding, final norm and head).
    pub fn block_index(self) -> Option<usize> {
        use WeightRole::*;
        match self {
            Embedding | FinalNorm | LmHead => None,
            AttnNorm(i) | Query(i) | Key(i) | Value(i) | AttnOut(i) | QueryBias(i) | KeyBias(i)
            | ValueBias(i) | AttnOutBias(i) | QueryNorm(i) | KeyNorm(i) | MlpNorm(i) | Gate(i)
            | Up(i) | Down(i) => Some(i),
        }
    }

    /// The tensor name llama.cpp's GGUF files use.
    pub fn gguf_name(self) -> String {
        use WeightRole::*;
        let block = |i: usize, name: &str| format!("blk.{i}.{name}");
        match self {
            Embedding => "token_embd.weight".into(),
            FinalNorm => "output_norm.weight".into(),
            LmHead => "output.weight".into(),
            AttnNorm(i) => block(i, "attn_norm.weight"),
            Query(i) => block(i, "attn_q.weight"),
            Key(i) => block(i, "attn_k.weight"),
            Value(i) => block(i, "attn_v.weight"),
            AttnOut(i) => block(i, "attn_output.weight"),
            QueryBias(i) => block(i, "attn_q.bias"),
            KeyBias(i) => block(i, "attn_k.bias"),
            ValueBias(i) => block(i, "attn_v.bias"),
            AttnOutBias(i) => block(i, "attn_output.bias"),
            QueryNorm(i) => block(i, "attn_q_norm.weight"),
            KeyNorm(i) => block(i, "attn_k_norm.weight"),
            MlpNorm(i) => block(i, "ffn_norm.weight"),
            Gate(i) => block(i, "ffn_gate.weight"),
            Up(i) => block(i, "ffn_up.weight"),
            Down(i) => block(i, "ffn_down.weight"),
        }
    }

    /// The tensor name Hugging Face's `LlamaForCausalLM` / `Qwen2ForCausalLM` /
    /// `Qwen3ForCausalLM` use.
    pub fn hf_name(self) -> String {
        use WeightRole::*;
        let block = |i: usize, name: &str| format!("model.layers.{i}.{name}");
        match self {
            Embedding => "model.embed_tokens.weight".into(),
            FinalNorm => "model.norm.weight".into(),
            LmHead => "lm_head.weight".into(),
            AttnNorm(i) => block(i, "input_layernorm.weight"),
            Query(i) => block(i, "self_attn.q_proj.weight"),
            Key(i) => block(i, "self_attn.k_proj.weight"),
            Value(i) => block(i, "self_attn.v_proj.weight"),
            AttnOut(i) => block(i, "self_attn.o_proj.weight"),
            QueryBias(i) => block(i, "self_attn.q_proj.bias"),
            KeyBias(i) => block(i, "self_attn.k_proj.bias"),
            ValueBias(i) => block(i, "self_attn.v_proj.bias"),
            AttnOutBias(i) => block(i, "self_attn.o_proj.bias"),
            QueryNorm(i) => block(i, "self_attn.q_norm.weight"),
            KeyNorm(i) => block(i, "self_attn.k_norm.weight"),
            MlpNorm(i) => block(i, "post_attention_layernorm.weight"),
            Gate(i) => block(i, "mlp.gate_proj.weight"),
            Up(i) => block(i, "mlp.up_proj.weight"),
            Down(i) => block(i, "mlp.down_proj.weight"),
        }
    }

    /// The expected shape under `config`: (rows, cols) for a matrix, (1, n) for a
    /// vector.
    pub fn shape(self, config: &DecoderConfig) -> (usize, usize) {
        use WeightRole::*;
        let h = config.hidden_size;
        let (q, kv) = (config.query_width(), config.kv_width());
        match self {
            Embedding | LmHead => (config.vocab_size, h),
            FinalNorm | AttnNorm(_) | MlpNorm(_) | AttnOutBias(_) => (1, h),
            QueryBias(_) => (1, q),
            KeyBias(_) | ValueBias(_) => (1, kv),
            QueryNorm(_) | KeyNorm(_) => (1, config.head_dim),
            Query(_) => (q, h),
            Key(_) | Value(_) => (kv, h),
            AttnOut(_) => (h, q),
            Gate(_) | Up(_) => (config.intermediate_size, h),
            Down(_) => (h, config.intermediate_size),
        }
    }

    /// Whether the role's rows follow RoPE's pairing (query and key matrices and
    /// biases): those are permuted between the interleaved and halves layouts, with
    /// the head count returned.
    pub fn rope_heads(self, config: &DecoderConfig) -> Option<usize> {
        use WeightRole::*;
        match self {
            Query(_) | QueryBias(_) => Some(config.num_heads),
            Key(_) | KeyBias(_) => Some(config.num_kv_heads),
            _ => None,
        }
    }
}

/// A projection matrix: candle's (quantized or dense) product, or the int8 kernel on
/// CPUs that have it.
pub enum Linear {
    /// candle's `QMatMul` (any device). A dense tensor may be a trainable variable:
    /// its product is differentiable.
    Candle(QMatMul),
    /// The tiled int8 kernel (CPU with AVX-512 VNNI or AVX2).
    Q8(Q8Matrix),
    /// A frozen dense matrix stored transposed, (in, out) contiguous: the CPU product
    /// `x · W` then reads both operands in the order the gemm kernel packs them, which
    /// runs 10-25% faster with two threads than `x · Wᵀ` on the (out, in) matrix.
    Transposed(Tensor),
    /// A frozen matrix plus a trained low-rank update (LoRA):
    /// base x + scale (x Aᵀ) Bᵀ, A (rank, in), B (out, rank).
    LowRank {
        /// The frozen matrix.
        base: Box<Linear>,
        /// The down-projection A.
        a: Tensor,
        /// The up-projection B.
        b: Tensor,
        /// alpha / rank.
        scale: f64,
    },
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            // A dense matrix multiplies every row of the batch in one 2-D product:
            // candle's QMatMul would broadcast the weight per sequence, and its
            // backward pass then materialises one weight-sized gradient per sequence
            // (a 151,936-row output matrix: 545 MB each).
            // Under a recorded graph the product is one op that gives only the
            // gradients needed, the weight's in its own layout (see
            // `grad_ops::product`).
            Linear::Candle(QMatMul::Tensor(w)) if x.rank() > 2 || x.track_op() => {
                over_rows(x, w.dim(0)?, |x| {
                    match super::grad_ops::wants_product(&x, w) {
                        true => super::grad_ops::product(&x, w),
                        false => x.matmul(&w.t()?),
                    }
                })
            }
            Linear::Candle(m) => m.forward(x),
            // Frozen blocks only: nothing records a graph through them, and our product
            // (no backward) skips candle's zero fill of the output.
            Linear::Transposed(wt) => over_rows(x, wt.dim(1)?, |x| {
                match !x.track_op() && super::grad_ops::serves_both(&x, wt) {
                    true => super::grad_ops::frozen_times(&x, wt),
                    false => x.matmul(wt),
                }
            }),
            Linear::Q8(q) => x.contiguous()?.apply_op1_no_bwd(&Q8MatMulOp(q)),
            Linear::LowRank { base, a, b, scale } => {
                let update = x.broadcast_matmul(&a.t()?)?.broadcast_matmul(&b.t()?)?;
                base.forward(x)? + (update * *scale)?
            }
        }
    }
}

/// `product` of `x` (..., in) flattened to (rows, in), reshaped back to (..., `out`).
fn over_rows(
    x: &Tensor,
    out: usize,
    product: impl FnOnce(Tensor) -> candle_core::Result<Tensor>,
) -> candle_core::Result<Tensor> {
    let mut dims = x.dims().to_vec();
    let k = dims.pop().unwrap_or(0);
    let rows = dims.iter().product::<usize>();
    dims.push(out);
    product(x.reshape((rows, k))?)?.reshape(dims)
}

/// A linear layer: a matrix and, for some families' attention, a bias.
pub struct Projection {
    /// The matrix (out, in).
    pub weight: Linear,
    /// The bias (out), if the model has one.
    pub bias: Option<Tensor>,
}

impl Projection {
    /// A projection without a bias.
    pub fn new(weight: Linear) -> Self {
        Projection { weight, bias: None }
    }
}

impl Module for Projection {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let out = self.weight.forward(x)?;
        match &self.bias {
            Some(b) => out.broadcast_add(b),
            None => Ok(out),
        }
    }
}

/// Where the weights come from.
pub enum WeightSource {
    /// A GGUF file whose header has been read.
    Gguf {
        /// The file's path (for errors).
        path: PathBuf,
        /// Its parsed header.
        content: gguf_file::Content,
        /// How matrices are held.
        precision: GgufPrecision,
    },
    /// Hugging Face safetensors files.
    Safetensors {
        /// The weight files.
        paths: Vec<PathBuf>,
        /// How matrices are held: [`GgufPrecision::Q8`] requantises them for the int8
        /// kernel where the CPU has one; otherwise they stay as read (f32).
        precision: GgufPrecision,
    },
}

/// The weights of one decoder, as used by [`super::Decoder`].
pub struct DecoderWeights {
    /// Token embedding (vocab, hidden).
    pub embedding: Tensor,
    /// Final RMSNorm weight.
    pub final_norm: Tensor,
    /// Output projection.
    pub lm_head: Linear,
    /// The decoder blocks.
    pub blocks: Vec<BlockWeights>,
}

/// One decoder block's weights.
pub struct BlockWeights {
    /// RMSNorm before attention.
    pub attn_norm: Tensor,
    /// Query projection.
    pub query: Projection,
    /// Key projection.
    pub key: Projection,
    /// Value projection.
    pub value: Projection,
    /// Attention output projection.
    pub attn_out: Projection,
    /// RMSNorm weights over each query and key head (qwen3).
    pub qk_norm: Option<(Tensor, Tensor)>,
    /// RMSNorm before the MLP.
    pub mlp_norm: Tensor,
    /// MLP gate projection.
    pub gate: Linear,
    /// MLP up projection.
    pub up: Linear,
    /// MLP down projection.
    pub down: Linear,
}

impl DecoderWeights {
    /// Loads every weight `config` asks for, checking shapes.
    pub fn load(source: &WeightSource, config: &DecoderConfig, device: &Device) -> Result<Self> {
        let mut loader = Loader::open(source, device)?;
        let embedding_q = loader.read(WeightRole::Embedding, config)?;
        let embedding = loader.dense(&embedding_q)?;
        let lm_head = if config.tie_embeddings {
            loader.matrix(embedding_q)?
        } else {
            let head = loader.read(WeightRole::LmHead, config)?;
            loader.matrix(head)?
        };
        let final_norm = loader.vector(WeightRole::FinalNorm, config)?;
        let head = (embedding, lm_head, final_norm);
        Self::with_blocks(config, head, |role| {
            let raw = loader.read(role, config)?;
            Ok(match role.shape(config) {
                (1, _) => Weight::Vector(loader.dense(&raw)?),
                _ => Weight::Matrix(loader.matrix(raw)?),
            })
        })
    }

    /// Dense weights from one tensor per role (a trainer's variables, or a
    /// checkpoint's tensors); `lm_head` is the embedding when tied.
    pub fn from_tensors(
        config: &DecoderConfig,
        mut tensor: impl FnMut(WeightRole) -> Result<Tensor>,
    ) -> Result<Self> {
        let dense = |t: Tensor| Linear::Candle(QMatMul::Tensor(t));
        let embedding = tensor(WeightRole::Embedding)?;
        let lm_head = if config.tie_embeddings {
            dense(embedding.clone())
        } else {
            dense(tensor(WeightRole::LmHead)?)
        };
        let final_norm = tensor(WeightRole::FinalNorm)?;
        Self::with_blocks(config, (embedding, lm_head, final_norm), |role| {
            let t = tensor(role)?;
            Ok(match role.shape(config) {
                (1, _) => Weight::Vector(t),
                _ => Weight::Matrix(dense(t)),
            })
        })
    }

    /// The embedding, head and final norm with every block built from `get`.
    fn with_blocks(
        config: &DecoderConfig,
        (embedding, lm_head, final_norm): (Tensor, Linear, Tensor),
        mut get: impl FnMut(WeightRole) -> Result<Weight>,
    ) -> Result<Self> {
        let blocks = (0..config.num_layers)
            .map(|i| BlockWeights::assemble(config, i, &mut get))
            .collect::<Result<Vec<_>>>()?;
        Ok(DecoderWeights {
            embedding,
            final_norm,
            lm_head,
            blocks,
        })
    }
}

/// A block weight as [`BlockWeights::assemble`] asks for it.
enum Weight {
    Matrix(Linear),
    Vector(Tensor),
}

impl BlockWeights {
    /// Builds block `i` from the weight of each of its roles.
    fn assemble(
        config: &DecoderConfig,
        i: usize,
        get: &mut dyn FnMut(WeightRole) -> Result<Weight>,
    ) -> Result<Self> {
        use WeightRole::*;
        let mut matrix = |role: WeightRole| match get(role)? {
            Weight::Matrix(m) => Ok(m),
            Weight::Vector(_) => Err(Error::InvalidArgument(format!("{role:?} is not a matrix"))),
        };
        let (query, key, value, attn_out) = (
            matrix(Query(i))?,
            matrix(Key(i))?,
            matrix(Value(i))?,
            matrix(AttnOut(i))?,
        );
        let (gate, up, down) = (matrix(Gate(i))?, matrix(Up(i))?, matrix(Down(i))?);
        let mut vector = |role: WeightRole| match get(role)? {
            Weight::Vector(v) => Ok(v),
            Weight::Matrix(_) => Err(Error::InvalidArgument(format!("{role:?} is not a vector"))),
        };
        let mut optional = |wanted: bool, role: WeightRole| -> Result<Option<Tensor>> {
            if wanted {
                vector(role).map(Some)
            } else {
                Ok(None)
            }
        };
        let projection = |weight: Linear, bias: Option<Tensor>| Projection { weight, bias };
        let query = projection(query, optional(config.qkv_bias, QueryBias(i))?);
        let key = projection(key, optional(config.qkv_bias, KeyBias(i))?);
        let value = projection(value, optional(config.qkv_bias, ValueBias(i))?);
        let attn_out = projection(attn_out, optional(config.output_bias, AttnOutBias(i))?);
        let qk_norm = match (
            optional(config.qk_norm, QueryNorm(i))?,
            optional(config.qk_norm, KeyNorm(i))?,
        ) {
            (Some(q), Some(k)) => Some((q, k)),
            _ => None,
        };
        Ok(BlockWeights {
            attn_norm: vector(AttnNorm(i))?,
            query,
            key,
            value,
            attn_out,
            qk_norm,
            mlp_norm: vector(MlpNorm(i))?,
            gate,
            up,
            down,
        })
    }
}
/// A weight as read: quantized blocks (GGUF) or a dense tensor (safetensors).
enum RawWeight {
    Blocks(QTensor),
    Dense(Tensor),
}

enum Loader<'a> {
    Gguf {
        path: &'a Path,
        content: &'a gguf_file::Content,
        file: std::fs::File,
        precision: GgufPrecision,
        device: Device,
    },
    Safetensors {
        paths: &'a [PathBuf],
        tensors: candle_nn::VarBuilder<'static>,
        precision: GgufPrecision,
        device: Device,
    },
}

impl<'a> Loader<'a> {
    fn open(source: &'a WeightSource, device: &Device) -> Result<Self> {
        Ok(match source {
            WeightSource::Gguf {
                path,
                content,
                precision,
            } => Loader::Gguf {
                path,
                content,
                file: std::fs::File::open(path).map_err(|e| Error::io(path, e))?,
                precision: *precision,
                device: device.clone(),
            },
            WeightSource::Safetensors { paths, precision } => {
                // SAFETY: the files are memory-mapped read-only; bftembed never writes a
                // weights file in place (exports go through a staging folder and rename).
                let tensors = unsafe {
                    candle_nn::VarBuilder::from_mmaped_safetensors(paths, DType::F32, device)
                }
                .map_err(|e| Error::ModelCorrupt {
                    path: paths.first().cloned().unwrap_or_default(),
                    message: format!("unreadable safetensors: {e}"),
                })?;
                Loader::Safetensors {
                    paths,
                    tensors,
                    precision: *precision,
                    device: device.clone(),
                }
            }
        })
    }

    fn corrupt(&self, message: String) -> Error {
        let path = match self {
            Loader::Gguf { path, .. } => path.to_path_buf(),
            Loader::Safetensors { paths, .. } => paths.first().cloned().unwrap_or_default(),
        };
        Error::ModelCorrupt { path, message }
    }

    fn read(&mut self, role: WeightRole, config: &DecoderConfig) -> Result<RawWeight> {
        let (rows, cols) = role.shape(config);
        let raw = match self {
            Loader::Gguf {
                content,
                file,
                device,
                ..
            } => {
                let name = role.gguf_name();
                content
                    .tensor(file, &name, device)
                    .map(RawWeight::Blocks)
                    .map_err(|e| format!("tensor {name}: {e}"))
            }
            Loader::Safetensors { tensors, .. } => {
                let name = role.hf_name();
                let shape: Vec<usize> = if rows == 1 {
                    vec![cols]
                } else {
                    vec![rows, cols]
                };
                tensors
                    .get(shape, &name)
                    .map(RawWeight::Dense)
                    .map_err(|e| format!("tensor {name}: {e}"))
            }
        }
        .map_err(|m| self.corrupt(m))?;
        let dims = match &raw {
            RawWeight::Blocks(q) => q.shape().dims().to_vec(),
            RawWeight::Dense(t) => t.dims().to_vec(),
        };
        let expected: Vec<usize> = if rows == 1 {
            vec![cols]
        } else {
            vec![rows, cols]
        };
        if dims != expected {
            return Err(self.corrupt(format!(
                "{role:?} has shape {dims:?}, the config says {expected:?}"
            )));
        }
        Ok(raw)
    }

    fn dense(&self, raw: &RawWeight) -> Result<Tensor> {
        Ok(match (raw, self) {
            (RawWeight::Dense(t), _) => t.clone(),
            (RawWeight::Blocks(q), Loader::Gguf { device, .. })
            | (RawWeight::Blocks(q), Loader::Safetensors { device, .. }) => q.dequantize(device)?,
        })
    }

    fn vector(&mut self, role: WeightRole, config: &DecoderConfig) -> Result<Tensor> {
        let raw = self.read(role, config)?;
        self.dense(&raw)
    }

    fn matrix(&self, raw: RawWeight) -> Result<Linear> {
        let candle = |m: QMatMul| Ok(Linear::Candle(m));
        match (raw, self) {
            (
                RawWeight::Dense(t),
                Loader::Safetensors {
                    precision: GgufPrecision::Q8,
                    device,
                    ..
                },
            ) if runs_int8_kernel(device, GgufPrecision::Q8) => {
                let (n, k) = t.dims2()?;
                let values = t.flatten_all()?.to_vec1::<f32>()?;
                match Q8Matrix::from_f32(&values, n, k) {
                    Some(m) => Ok(Linear::Q8(m)),
                    None => candle(QMatMul::Tensor(t)),
                }
            }
            (RawWeight::Dense(t), _) => candle(QMatMul::Tensor(t)),
            (
                RawWeight::Blocks(q),
                Loader::Gguf {
                    precision, device, ..
                },
            ) => match precision {
                GgufPrecision::AsStored => candle(QMatMul::from_arc(Arc::new(q))?),
                GgufPrecision::F32 => candle(QMatMul::Tensor(q.dequantize(device)?)),
                GgufPrecision::Q8 => {
                    let dense = q.dequantize(device)?;
                    if runs_int8_kernel(device, GgufPrecision::Q8) {
                        let (n, k) = dense.dims2()?;
                        let values = dense.flatten_all()?.to_vec1::<f32>()?;
                        if let Some(m) = Q8Matrix::from_f32(&values, n, k) {
                            return Ok(Linear::Q8(m));
                        }
                    }
                    if q.dtype() == GgmlDType::Q8_0 {
                        return candle(QMatMul::from_arc(Arc::new(q))?);
                    }
                    candle(QMatMul::from_arc(Arc::new(QTensor::quantize(
                        &dense,
                        GgmlDType::Q8_0,
                    )?))?)
                }
            },
            (RawWeight::Blocks(q), Loader::Safetensors { device, .. }) => {
                candle(QMatMul::Tensor(q.dequantize(device)?))
            }
        }
    }
}

impl DecoderWeights {
    /// The matrix of one role, to wrap it (a LoRA adapter); `None` for vectors.
    pub fn linear_mut(&mut self, role: WeightRole) -> Option<&mut Linear> {
        use WeightRole::*;
        if role == LmHead {
            return Some(&mut self.lm_head);
        }
        let b = self.blocks.get_mut(role.block_index()?)?;
        match role {
            Query(_) => Some(&mut b.query.weight),
            Key(_) => Some(&mut b.key.weight),
            Value(_) => Some(&mut b.value.weight),
            AttnOut(_) => Some(&mut b.attn_out.weight),
            Gate(_) => Some(&mut b.gate),
            Up(_) => Some(&mut b.up),
            Down(_) => Some(&mut b.down),
            _ => None,
        }
    }

    /// Stores the dense matrices of blocks `..end` transposed, (in, out) and
    /// contiguous ([`Linear::Transposed`]): on the CPU `x · W` over them runs faster
    /// than `x · Wᵀ`. For blocks that no gradient passes through (a trainer's frozen
    /// blocks); quantized and adapted matrices stay as they are. A matrix given as the
    /// (out, in) view of transposed storage is taken as it is stored, with no copy.
    pub fn transpose_block_matrices(&mut self, config: &DecoderConfig, end: usize) -> Result<()> {
        let frozen = WeightRole::all(config)
            .into_iter()
            .filter(|role| role.block_index().is_some_and(|i| i < end));
        for role in frozen {
            if let Some(slot) = self.linear_mut(role) {
                if let Linear::Candle(QMatMul::Tensor(w)) = slot {
                    *slot = Linear::Transposed(w.t()?.contiguous()?);
                }
            }
        }
        Ok(())
    }

    /// The dense tensor of one role (a trainer's starting point); a quantized matrix
    /// is refused: load the model with [`GgufPrecision::F32`] to train it.
    pub fn dense(&self, role: WeightRole) -> Result<Tensor> {
        use WeightRole::*;
        let matrix = |l: &Linear| match l {
            Linear::Candle(QMatMul::Tensor(t)) => Ok(t.clone()),
            Linear::Transposed(t) => Ok(t.t()?),
            _ => Err(Error::InvalidArgument(format!(
                "{role:?} is quantized; load the model with GgufPrecision::F32 to train it"
            ))),
        };
        let absent = || Error::InvalidArgument(format!("the model has no {role:?}"));
        let bias = |p: &Projection| p.bias.clone().ok_or_else(absent);
        let block = match role.block_index() {
            Some(i) => Some(self.blocks.get(i).ok_or_else(absent)?),
            None => None,
        };
        match (role, block) {
            (Embedding, _) => Ok(self.embedding.clone()),
            (FinalNorm, _) => Ok(self.final_norm.clone()),
            (LmHead, _) => matrix(&self.lm_head),
            (AttnNorm(_), Some(b)) => Ok(b.attn_norm.clone()),
            (MlpNorm(_), Some(b)) => Ok(b.mlp_norm.clone()),
            (Query(_), Some(b)) => matrix(&b.query.weight),
            (Key(_), Some(b)) => matrix(&b.key.weight),
            (Value(_), Some(b)) => matrix(&b.value.weight),
            (AttnOut(_), Some(b)) => matrix(&b.attn_out.weight),
            (QueryBias(_), Some(b)) => bias(&b.query),
            (KeyBias(_), Some(b)) => bias(&b.key),
            (ValueBias(_), Some(b)) => bias(&b.value),
            (AttnOutBias(_), Some(b)) => bias(&b.attn_out),
            (QueryNorm(_), Some(b)) => b.qk_norm.as_ref().map(|n| n.0.clone()).ok_or_else(absent),
            (KeyNorm(_), Some(b)) => b.qk_norm.as_ref().map(|n| n.1.clone()).ok_or_else(absent),
            (Gate(_), Some(b)) => matrix(&b.gate),
            (Up(_), Some(b)) => matrix(&b.up),
            (Down(_), Some(b)) => matrix(&b.down),
            (_, None) => Err(absent()),
        }
    }
}
