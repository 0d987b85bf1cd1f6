//! A decoder whose weights are trainable variables. The forward pass is the one
//! [`Decoder`] the generator uses, built over the variables (frozen ones detached): the
//! trained blocks run differentiable steps, frozen blocks candle's fused kernels.

use crate::error::{Error, Result};
use crate::llm::{
    halves_to_interleaved, interleaved_to_halves, Decoder, DecoderConfig, DecoderWeights,
    RopeLayout, WeightRole,
};
use candle_core::{DType, Device, Tensor, Var};
use std::collections::HashMap;

/// A decoder for training: full-sequence causal forward, every weight a [`Var`].
pub struct TrainableDecoder {
    config: DecoderConfig,
    /// Every weight, in file order.
    variables: Vec<(WeightRole, Var)>,
    /// Blocks before this index (and the embedding, when > 0) are frozen.
    first_trained_block: usize,
    dtype: DType,
    device: Device,
    /// The forward pass over `variables`, frozen ones detached.
    decoder: Decoder,
}

impl TrainableDecoder {
    /// Turns loaded f32 weights (GGUF dequantised, or a Hugging Face folder) into
    /// trainable variables.
    pub fn from_weights(
        config: DecoderConfig,
        weights: DecoderWeights,
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        let variables = WeightRole::all(&config)
            .into_iter()
            .map(|role| {
                let t = weights.dense(role)?.to_dtype(dtype)?;
                let t = match role.shape(&config) {
                    (1, n) => t.reshape(n)?,
                    _ => t,
                };
                Ok((role, Var::from_tensor(&t)?))
            })
            .collect::<Result<Vec<_>>>()?;
        Self::assemble(config, variables, device, dtype)
    }

    /// A randomly initialised model (normal(0, 0.02) matrices and biases, unit norms)
    /// from a seed, for tests and from-scratch experiments.
    pub fn random(config: DecoderConfig, seed: u64, device: &Device) -> Result<Self> {
        let mut rng = crate::rng::SplitMix64::new(seed);
        let variables = WeightRole::all(&config)
            .into_iter()
            .map(|role| {
                use WeightRole::*;
                let (rows, cols) = role.shape(&config);
                let t = match role {
                    FinalNorm | AttnNorm(_) | MlpNorm(_) | QueryNorm(_) | KeyNorm(_) => {
                        Tensor::ones(cols, DType::F32, device)?
                    }
                    _ => {
                        let values: Vec<f32> = (0..rows * cols)
                            .map(|_| 0.02 * rng.normal() as f32)
                            .collect();
                        let t = Tensor::from_vec(values, (rows, cols), device)?;
                        if rows == 1 {
                            t.reshape(cols)?
                        } else {
                            t
                        }
                    }
                };
                Ok((role, Var::from_tensor(&t)?))
            })
            .collect::<Result<Vec<_>>>()?;
        Self::assemble(config, variables, device, DType::F32)
    }

    fn assemble(
        config: DecoderConfig,
        variables: Vec<(WeightRole, Var)>,
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        let decoder = forward_over(&config, &variables, 0, device)?;
        Ok(TrainableDecoder {
            config,
            variables,
            first_trained_block: 0,
            dtype,
            device: device.clone(),
            decoder,
        })
    }

    /// Trains only the last `n` blocks and the final norm (and a separate output
    /// projection, if any); `None` trains every weight.
    pub fn set_trained_blocks(&mut self, last: Option<usize>) -> Result<()> {
        let layers = self.config.num_layers;
        self.first_trained_block = match last {
            None => 0,
            Some(n) if n >= 1 && n <= layers => layers - n,
            Some(n) => {
                return Err(Error::InvalidArgument(format!(
                    "cannot train the last {n} of {layers} blocks"
                )))
            }
        };
        self.decoder = forward_over(
            &self.config,
            &self.variables,
            self.first_trained_block,
            &self.device,
        )?;
        Ok(())
    }

    /// The variables the optimizer updates, with Hugging Face names.
    pub fn trained_variables(&self) -> Vec<(String, Var)> {
        self.variables
            .iter()
            .filter(|(role, _)| !is_frozen(*role, self.first_trained_block))
            .map(|(role, var)| (role.hf_name(), var.clone()))
            .collect()
    }

    /// Every weight as f32 under its Hugging Face name, in Hugging Face's RoPE layout
    /// (query and key rows re-ordered when the weights came from a GGUF llama file):
    /// what a checkpoint stores.
    pub fn hf_tensors(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for (role, var) in &self.variables {
            let t = var
                .as_tensor()
                .to_dtype(DType::F32)?
                .to_device(&Device::Cpu)?;
            let t = match (self.config.rope_layout, role.rope_heads(&self.config)) {
                (RopeLayout::Interleaved, Some(heads)) => interleaved_to_halves(&t, heads)?,
                _ => t,
            };
            out.insert(role.hf_name(), t);
        }
        Ok(out)
    }

    /// Replaces every weight with the tensor of the same name (Hugging Face layout, as
    /// [`TrainableDecoder::hf_tensors`] gives them); used to resume from a checkpoint.
    pub fn load_hf_tensors(&mut self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        for (role, var) in &self.variables {
            let name = role.hf_name();
            let t = tensors.get(&name).ok_or_else(|| {
                Error::InvalidArgument(format!("the checkpoint has no tensor '{name}'"))
            })?;
            let t = t.to_device(&self.device)?.to_dtype(self.dtype)?;
            let t = match (self.config.rope_layout, role.rope_heads(&self.config)) {
                (RopeLayout::Interleaved, Some(heads)) => halves_to_interleaved(&t, heads)?,
                _ => t,
            };
            var.set(&t)
                .map_err(|e| Error::InvalidArgument(format!("checkpoint tensor '{name}': {e}")))?;
        }
        Ok(())
    }

    /// Every variable with its Hugging Face name.
    pub fn variables(&self) -> Vec<(String, &Var)> {
        self.variables
            .iter()
            .map(|(role, var)| (role.hf_name(), var))
            .collect()
    }

    /// The model's dimensions.
    pub fn config(&self) -> &DecoderConfig {
        &self.config
    }

    /// Logits (batch, seq, vocab) for token ids (batch, seq), causal attention from
    /// position 0.
    pub fn forward(&self, input: &Tensor) -> Result<Tensor> {
        self.decoder.forward_whole(input)
    }
}

/// Whether `role` is frozen when blocks before `first_trained` are: those blocks'
/// weights, and the embedding once any block is frozen.
fn is_frozen(role: WeightRole, first_trained: usize) -> bool {
    match role {
        WeightRole::Embedding => first_trained > 0,
        _ => role.block_index().is_some_and(|i| i < first_trained),
    }
}

/// The decoder over the variables; frozen ones enter detached, so backward never
/// runs through them.
fn forward_over(
    config: &DecoderConfig,
    variables: &[(WeightRole, Var)],
    first_trained: usize,
    device: &Device,
) -> Result<Decoder> {
    let by_role: HashMap<WeightRole, &Var> = variables.iter().map(|(r, v)| (*r, v)).collect();
    let weights = DecoderWeights::from_tensors(config, |role| {
        let var = by_role
            .get(&role)
            .ok_or_else(|| Error::InvalidArgument(format!("no variable for {role:?}")))?;
        Ok(match is_frozen(role, first_trained) {
            true => var.as_tensor().detach(),
            false => var.as_tensor().clone(),
        })
    })?;
    Decoder::for_training(config.clone(), weights, device, first_trained)
}
