//! A decoder whose weights are trainable variables. The forward pass is the one
//! [`Decoder`] the generator uses, built over the variables (frozen ones detached): the
//! trained blocks run differentiable steps, frozen blocks fused kernels over matrices
//! held transposed (see [`DecoderWeights::transpose_block_matrices`]). With
//! LoRA every weight is frozen and only the adapters of the trained blocks train.

use super::head_ce::head_cross_entropy;
use super::lora::{merged, new_adapters, Adapter, LoraSettings};
use super::loss::token_cross_entropy;
use crate::error::{Error, Result};
use crate::llm::{
    halves_to_interleaved, interleaved_to_halves, Decoder, DecoderConfig, DecoderWeights, Linear,
    RopeLayout, WeightRole,
};
use candle_core::quantized::QMatMul;
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
    /// LoRA settings and adapters, when the run trains adapters instead of weights.
    lora: Option<(LoraSettings, Vec<Adapter>)>,
    /// The matrices of blocks before this index are held transposed, (in, out), by
    /// their variables: the blocks no gradient passes through, on the CPU (see
    /// [`Self::sync_layouts`]); 0 elsewhere.
    transposed_before: usize,
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
        let decoder = forward_over(&config, &variables, 0, 0, None, device)?;
        Ok(TrainableDecoder {
            config,
            variables,
            first_trained_block: 0,
            dtype,
            device: device.clone(),
            lora: None,
            transposed_before: 0,
            decoder,
        })
    }

    /// Trains LoRA adapters on the trained blocks (all, or the last N set before)
    /// instead of any weight; A is drawn from `seed`, B starts at zero.
    pub fn add_lora(&mut self, settings: LoraSettings, seed: u64) -> Result<()> {
        let adapters = new_adapters(
            &settings,
            &self.config,
            self.first_trained_block,
            seed,
            &self.device,
            self.dtype,
        )?;
        self.lora = Some((settings, adapters));
        self.rebuild()
    }

    /// The LoRA settings and adapters, if any.
    pub fn lora(&self) -> Option<(&LoraSettings, &[Adapter])> {
        self.lora.as_ref().map(|(s, a)| (s, a.as_slice()))
    }

    fn rebuild(&mut self) -> Result<()> {
        self.sync_layouts()?;
        self.decoder = forward_over(
            &self.config,
            &self.variables,
            self.transposed_before,
            self.frozen_before(),
            self.lora.as_ref(),
            &self.device,
        )?;
        Ok(())
    }

    /// On the CPU, the matrices of blocks no gradient passes through are held
    /// transposed, (in, out): their products then run faster (see
    /// [`crate::llm::DecoderWeights::transpose_block_matrices`]), and holding them only
    /// that way costs no second copy. Every other matrix is held (out, in). Frozen
    /// variables are in no optimizer, so a variable is replaced, not set.
    fn sync_layouts(&mut self) -> Result<()> {
        let wanted = match self.device.is_cpu() {
            true => untracked_blocks(&self.config, self.frozen_before(), self.lora.as_ref()),
            false => 0,
        };
        // Every switched variable first, then the swap: an error leaves the model as
        // it was (the old storage lives on in the current decoder until it is rebuilt
        // anyway).
        let switched = self
            .variables
            .iter()
            .map(|(role, var)| {
                let held = is_transposed(*role, &self.config, self.transposed_before);
                match held != is_transposed(*role, &self.config, wanted) {
                    true => Ok(Some(Var::from_tensor(&var.as_tensor().t()?.contiguous()?)?)),
                    false => Ok(None),
                }
            })
            .collect::<Result<Vec<_>>>()?;
        for ((_, var), new) in self.variables.iter_mut().zip(switched) {
            if let Some(new) = new {
                *var = new;
            }
        }
        self.transposed_before = wanted;
        Ok(())
    }

    /// A variable's value in its role's own layout, (out, in) for a matrix.
    fn in_role_layout(&self, role: WeightRole, var: &Var) -> Result<Tensor> {
        Ok(
            match is_transposed(role, &self.config, self.transposed_before) {
                true => var.as_tensor().t()?.contiguous()?,
                false => var.as_tensor().clone(),
            },
        )
    }

    /// Weights of blocks before this index are frozen (every block with LoRA).
    fn frozen_before(&self) -> usize {
        match self.lora {
            Some(_) => usize::MAX,
            None => self.first_trained_block,
        }
    }

    /// Trains only the last `n` blocks and the final norm (and a separate output
    /// projection, if any); `None` trains every weight. Set before [`Self::add_lora`].
    pub fn set_trained_blocks(&mut self, last: Option<usize>) -> Result<()> {
        if self.lora.is_some() {
            return Err(Error::InvalidArgument(
                "set the trained blocks before adding LoRA adapters".into(),
            ));
        }
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
        self.rebuild()
    }

    /// The variables the optimizer updates, with Hugging Face names (peft's for LoRA
    /// adapters).
    pub fn trained_variables(&self) -> Vec<(String, Var)> {
        if let Some((_, adapters)) = &self.lora {
            return adapters
                .iter()
                .flat_map(|ad| {
                    let (a, b) = ad.names();
                    [(a, ad.a.clone()), (b, ad.b.clone())]
                })
                .collect();
        }
        self.variables
            .iter()
            .filter(|(role, _)| !is_frozen(*role, self.first_trained_block))
            .map(|(role, var)| (role.hf_name(), var.clone()))
            .collect()
    }

    /// The adapters as peft saves them (`adapter_model.safetensors`), f32 on the CPU;
    /// empty without LoRA.
    pub fn adapter_tensors(&self) -> Result<HashMap<String, Tensor>> {
        if self.lora.is_none() {
            return Ok(HashMap::new());
        }
        self.trained_variables()
            .into_iter()
            .map(|(name, var)| {
                let t = var
                    .as_tensor()
                    .to_dtype(DType::F32)?
                    .to_device(&Device::Cpu)?;
                // A copy: the saved form must not change when the variable does.
                Ok((name, t.copy()?))
            })
            .collect()
    }

    /// Sets the adapters from tensors named as [`Self::adapter_tensors`] gives them.
    pub fn load_adapter_tensors(&mut self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        for (name, var) in self.trained_variables() {
            let t = tensors.get(&name).ok_or_else(|| {
                Error::InvalidArgument(format!("the adapters have no tensor '{name}'"))
            })?;
            var.set(&t.to_device(&self.device)?.to_dtype(self.dtype)?)
                .map_err(|e| Error::InvalidArgument(format!("adapter tensor '{name}': {e}")))?;
        }
        Ok(())
    }

    /// Every weight as f32 under its Hugging Face name, in Hugging Face's RoPE layout
    /// (query and key rows re-ordered when the weights came from a GGUF llama file),
    /// LoRA adapters merged in: what a checkpoint stores.
    pub fn hf_tensors(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for (role, var) in &self.variables {
            let mut t = self.in_role_layout(*role, var)?;
            if let Some((settings, adapters)) = &self.lora {
                if let Some(adapter) = adapters.iter().find(|a| a.role == *role) {
                    t = merged(&t, adapter, settings.scale())?;
                }
            }
            let t = t.to_dtype(DType::F32)?.to_device(&Device::Cpu)?;
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
            let t = match is_transposed(*role, &self.config, self.transposed_before) {
                true => t.t()?,
                false => t,
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

    /// Per-token cross-entropy (batch, seq) of `labels` (batch, seq, u32) after token
    /// ids `input` (batch, seq), at the positions where `mask` (batch, seq) is non-zero
    /// and 0 elsewhere; differentiable in the trained variables. On the CPU with an f32
    /// dense head the head and the loss run as one op (no logits tensor in the graph)
    /// over the masked-in positions only; elsewhere it is
    /// [`super::loss::token_cross_entropy`] of the logits, masked.
    pub fn token_cross_entropy(
        &self,
        input: &Tensor,
        labels: &Tensor,
        mask: &Tensor,
    ) -> Result<Tensor> {
        let head = self.decoder.dense_head();
        match head {
            Some(head) if head.device().is_cpu() && head.dtype() == DType::F32 => {
                let hidden = self.decoder.hidden_whole(input)?;
                let (batch, seq, width) = hidden.dims3()?;
                let hidden = hidden.to_dtype(DType::F32)?.reshape((batch * seq, width))?;
                let labels = labels.flatten_all()?.to_vec1::<u32>()?;
                let mask = mask.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
                if labels.len() != mask.len() {
                    return Err(Error::InvalidArgument(format!(
                        "{} labels and a mask of {}",
                        labels.len(),
                        mask.len()
                    )));
                }
                let scored: Vec<Option<u32>> = labels
                    .iter()
                    .zip(&mask)
                    .map(|(&label, &m)| (m != 0.0).then_some(label))
                    .collect();
                Ok(head_cross_entropy(&hidden, head, &scored)?.reshape((batch, seq))?)
            }
            _ => {
                let ce = token_cross_entropy(&self.forward(input)?, labels)?;
                let scored = mask.ne(0f32)?.to_dtype(ce.dtype())?;
                Ok((ce * scored)?)
            }
        }
    }
}

/// Whether `role` is frozen when blocks before `first_trained` are: those blocks'
/// weights, and the embedding once any block is frozen; everything when
/// `first_trained` is `usize::MAX` (LoRA).
fn is_frozen(role: WeightRole, first_trained: usize) -> bool {
    if first_trained == usize::MAX {
        return true;
    }
    match role {
        WeightRole::Embedding => first_trained > 0,
        _ => role.block_index().is_some_and(|i| i < first_trained),
    }
}

/// Whether `role` is a matrix of a block before `before`: one a variable holds
/// transposed.
fn is_transposed(role: WeightRole, config: &DecoderConfig, before: usize) -> bool {
    role.shape(config).0 > 1 && role.block_index().is_some_and(|i| i < before)
}

/// The blocks before the first one a gradient passes through: those before the first
/// trained block, or with LoRA before the first adapted one (an adapter on the head
/// counts as block 0).
fn untracked_blocks(
    config: &DecoderConfig,
    first_trained: usize,
    lora: Option<&(LoraSettings, Vec<Adapter>)>,
) -> usize {
    let adapted = lora
        .into_iter()
        .flat_map(|(_, adapters)| adapters)
        .map(|a| a.role.block_index().unwrap_or(0));
    adapted
        .fold(first_trained, usize::min)
        .min(config.num_layers)
}

/// The decoder over the variables; frozen ones enter detached, so backward never
/// runs through them; adapted matrices get their LoRA update.
fn forward_over(
    config: &DecoderConfig,
    variables: &[(WeightRole, Var)],
    transposed_before: usize,
    first_trained: usize,
    lora: Option<&(LoraSettings, Vec<Adapter>)>,
    device: &Device,
) -> Result<Decoder> {
    let by_role: HashMap<WeightRole, &Var> = variables.iter().map(|(r, v)| (*r, v)).collect();
    let mut weights = DecoderWeights::from_tensors(config, |role| {
        let var = by_role
            .get(&role)
            .ok_or_else(|| Error::InvalidArgument(format!("no variable for {role:?}")))?;
        let t = match is_frozen(role, first_trained) {
            true => var.as_tensor().detach(),
            false => var.as_tensor().clone(),
        };
        // A transposed variable enters as a (out, in) view of its storage.
        Ok(match is_transposed(role, config, transposed_before) {
            true => t.t()?,
            false => t,
        })
    })?;
    if let Some((settings, adapters)) = lora {
        for adapter in adapters {
            let slot = weights.linear_mut(adapter.role).ok_or_else(|| {
                Error::InvalidArgument(format!("{:?} cannot take an adapter", adapter.role))
            })?;
            let placeholder =
                Linear::Candle(QMatMul::Tensor(Tensor::zeros(1, DType::F32, device)?));
            let base = std::mem::replace(slot, placeholder);
            *slot = Linear::LowRank {
                base: Box::new(base),
                a: adapter.a.as_tensor().clone(),
                b: adapter.b.as_tensor().clone(),
                scale: settings.scale(),
            };
        }
    }
    // Their variables hold them (in, out) already: these views of the storage are
    // contiguous, so no copy is made.
    weights.transpose_block_matrices(config, transposed_before)?;
    let differentiable_from = untracked_blocks(config, first_trained, lora);
    Decoder::for_training(config.clone(), weights, device, differentiable_from)
}
