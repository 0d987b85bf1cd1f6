//! Loading a llama decoder's weights from a GGUF file or Hugging Face safetensors.

use super::config::LlamaConfig;
use super::q8_kernel::{runs_int8_kernel, Q8MatMulOp, Q8Matrix};
use crate::error::{Error, Result};
use candle_core::quantized::{gguf_file, GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Tensor};
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// Every role of a model with `layers` blocks, in file order.
    pub fn all(layers: usize, tied: bool) -> Vec<WeightRole> {
        let mut out = vec![WeightRole::Embedding, WeightRole::FinalNorm];
        if !tied {
            out.push(WeightRole::LmHead);
        }
        for i in 0..layers {
            out.extend([
                WeightRole::AttnNorm(i),
                WeightRole::Query(i),
                WeightRole::Key(i),
                WeightRole::Value(i),
                WeightRole::AttnOut(i),
                WeightRole::MlpNorm(i),
                WeightRole::Gate(i),
                WeightRole::Up(i),
                WeightRole::Down(i),
            ]);
        }
        out
    }

    /// The tensor name llama.cpp's GGUF files use.
    pub fn gguf_name(self) -> String {
        match self {
            WeightRole::Embedding => "token_embd.weight".into(),
            WeightRole::FinalNorm => "output_norm.weight".into(),
            WeightRole::LmHead => "output.weight".into(),
            WeightRole::AttnNorm(i) => format!("blk.{i}.attn_norm.weight"),
            WeightRole::Query(i) => format!("blk.{i}.attn_q.weight"),
            WeightRole::Key(i) => format!("blk.{i}.attn_k.weight"),
            WeightRole::Value(i) => format!("blk.{i}.attn_v.weight"),
            WeightRole::AttnOut(i) => format!("blk.{i}.attn_output.weight"),
            WeightRole::MlpNorm(i) => format!("blk.{i}.ffn_norm.weight"),
            WeightRole::Gate(i) => format!("blk.{i}.ffn_gate.weight"),
            WeightRole::Up(i) => format!("blk.{i}.ffn_up.weight"),
            WeightRole::Down(i) => format!("blk.{i}.ffn_down.weight"),
        }
    }

    /// The tensor name Hugging Face's `LlamaForCausalLM` uses.
    pub fn hf_name(self) -> String {
        match self {
            WeightRole::Embedding => "model.embed_tokens.weight".into(),
            WeightRole::FinalNorm => "model.norm.weight".into(),
            WeightRole::LmHead => "lm_head.weight".into(),
            WeightRole::AttnNorm(i) => format!("model.layers.{i}.input_layernorm.weight"),
            WeightRole::Query(i) => format!("model.layers.{i}.self_attn.q_proj.weight"),
            WeightRole::Key(i) => format!("model.layers.{i}.self_attn.k_proj.weight"),
            WeightRole::Value(i) => format!("model.layers.{i}.self_attn.v_proj.weight"),
            WeightRole::AttnOut(i) => format!("model.layers.{i}.self_attn.o_proj.weight"),
            WeightRole::MlpNorm(i) => {
                format!("model.layers.{i}.post_attention_layernorm.weight")
            }
            WeightRole::Gate(i) => format!("model.layers.{i}.mlp.gate_proj.weight"),
            WeightRole::Up(i) => format!("model.layers.{i}.mlp.up_proj.weight"),
            WeightRole::Down(i) => format!("model.layers.{i}.mlp.down_proj.weight"),
        }
    }

    /// The expected shape under `config`.
    pub fn shape(self, config: &LlamaConfig) -> (usize, usize) {
        let h = config.hidden_size;
        let kv = config.num_kv_heads * config.head_dim();
        match self {
            WeightRole::Embedding | WeightRole::LmHead => (config.vocab_size, h),
            WeightRole::FinalNorm | WeightRole::AttnNorm(_) | WeightRole::MlpNorm(_) => (1, h),
            WeightRole::Query(_) | WeightRole::AttnOut(_) => (h, h),
            WeightRole::Key(_) | WeightRole::Value(_) => (kv, h),
            WeightRole::Gate(_) | WeightRole::Up(_) => (config.intermediate_size, h),
            WeightRole::Down(_) => (h, config.intermediate_size),
        }
    }
}

/// A projection matrix: candle's (quantized or dense) product, or the int8 VNNI
/// kernel on CPUs that have it.
pub enum Linear {
    /// candle's `QMatMul` (any device).
    Candle(QMatMul),
    /// The tiled int8 kernel (CPU with AVX-512 VNNI or AVX2).
    Q8(Q8Matrix),
}

impl candle_core::Module for Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Linear::Candle(m) => m.forward(x),
            Linear::Q8(q) => x.contiguous()?.apply_op1_no_bwd(&Q8MatMulOp(q)),
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

/// The weights of one decoder, as used by [`super::LlamaModel`].
pub struct LlamaWeights {
    /// Token embedding (vocab, hidden), f32.
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
    pub query: Linear,
    /// Key projection.
    pub key: Linear,
    /// Value projection.
    pub value: Linear,
    /// Attention output projection.
    pub attn_out: Linear,
    /// RMSNorm before the MLP.
    pub mlp_norm: Tensor,
    /// MLP gate projection.
    pub gate: Linear,
    /// MLP up projection.
    pub up: Linear,
    /// MLP down projection.
    pub down: Linear,
}

impl LlamaWeights {
    /// Loads every weight `config` asks for, checking shapes.
    pub fn load(source: &WeightSource, config: &LlamaConfig, device: &Device) -> Result<Self> {
        let mut loader = Loader::open(source, device)?;
        let embedding_q = loader.quantized(WeightRole::Embedding, config)?;
        let embedding = loader.dense(&embedding_q)?;
        let lm_head = if config.tie_embeddings {
            loader.matrix(embedding_q)?
        } else {
            let head = loader.quantized(WeightRole::LmHead, config)?;
            loader.matrix(head)?
        };
        let final_norm = loader.vector(WeightRole::FinalNorm, config)?;
        let mut blocks = Vec::with_capacity(config.num_layers);
        for i in 0..config.num_layers {
            let mut m = |role: WeightRole| -> Result<Linear> {
                let q = loader.quantized(role, config)?;
                loader.matrix(q)
            };
            let query = m(WeightRole::Query(i))?;
            let key = m(WeightRole::Key(i))?;
            let value = m(WeightRole::Value(i))?;
            let attn_out = m(WeightRole::AttnOut(i))?;
            let gate = m(WeightRole::Gate(i))?;
            let up = m(WeightRole::Up(i))?;
            let down = m(WeightRole::Down(i))?;
            blocks.push(BlockWeights {
                attn_norm: loader.vector(WeightRole::AttnNorm(i), config)?,
                query,
                key,
                value,
                attn_out,
                mlp_norm: loader.vector(WeightRole::MlpNorm(i), config)?,
                gate,
                up,
                down,
            });
        }
        Ok(LlamaWeights {
            embedding,
            final_norm,
            lm_head,
            blocks,
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

    fn quantized(&mut self, role: WeightRole, config: &LlamaConfig) -> Result<RawWeight> {
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

    fn vector(&mut self, role: WeightRole, config: &LlamaConfig) -> Result<Tensor> {
        let raw = self.quantized(role, config)?;
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
