//! AdamW with decoupled weight decay, a linear warm-up then cosine learning-rate
//! schedule, and clipping by global gradient norm. The optimizer's moments and step
//! count are plain named tensors, so a checkpoint can hold them and `--resume`
//! continue exactly (candle-nn's AdamW keeps its state private).

use crate::error::{Error, Result};
use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use std::collections::HashMap;

/// AdamW settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWSettings {
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Added to the root of the second moment.
    pub eps: f64,
    /// Decoupled weight decay (per unit learning rate).
    pub weight_decay: f64,
}

impl Default for AdamWSettings {
    fn default() -> Self {
        AdamWSettings {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
}

/// Learning rate at a step: linear warm-up from 0 to `peak` over `warmup` steps, then
/// cosine decay to `floor` at `total` steps (and `floor` after).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// Highest learning rate.
    pub peak: f64,
    /// Final learning rate.
    pub floor: f64,
    /// Warm-up steps.
    pub warmup: usize,
    /// Total steps.
    pub total: usize,
}

impl Schedule {
    /// The learning rate for optimizer step `step` (0-based).
    pub fn rate(&self, step: usize) -> f64 {
        if step < self.warmup {
            return self.peak * (step + 1) as f64 / self.warmup as f64;
        }
        let span = self.total.saturating_sub(self.warmup).max(1);
        let progress = ((step - self.warmup) as f64 / span as f64).min(1.0);
        self.floor
            + 0.5 * (self.peak - self.floor) * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}

/// AdamW over named variables.
pub struct AdamW {
    vars: Vec<(String, Var)>,
    first: Vec<Tensor>,
    second: Vec<Tensor>,
    step: usize,
    settings: AdamWSettings,
}

impl AdamW {
    /// An optimizer with zero moments.
    pub fn new(vars: Vec<(String, Var)>, settings: AdamWSettings) -> Result<Self> {
        let first = vars
            .iter()
            .map(|(_, v)| v.as_tensor().zeros_like())
            .collect::<candle_core::Result<Vec<_>>>()?;
        let second = first.clone();
        Ok(AdamW {
            vars,
            first,
            second,
            step: 0,
            settings,
        })
    }

    /// Steps taken.
    pub fn steps(&self) -> usize {
        self.step
    }

    /// Applies one update with learning rate `lr`; variables without a gradient keep
    /// their value (their moments decay).
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        self.step += 1;
        let s = self.settings;
        let c1 = 1.0 - s.beta1.powi(self.step as i32);
        let c2 = 1.0 - s.beta2.powi(self.step as i32);
        for (i, (_, var)) in self.vars.iter().enumerate() {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            let m = ((&self.first[i] * s.beta1)? + (g * (1.0 - s.beta1))?)?;
            let v = ((&self.second[i] * s.beta2)? + (g.sqr()? * (1.0 - s.beta2))?)?;
            let update = ((&m / c1)? / ((&v / c2)?.sqrt()? + s.eps)?)?;
            let decayed = (var.as_tensor() * (1.0 - lr * s.weight_decay))?;
            var.set(&(decayed - (update * lr)?)?)?;
            self.first[i] = m;
            self.second[i] = v;
        }
        Ok(())
    }

    /// The state to save: `NAME.m`, `NAME.v` per variable and `step`.
    pub fn state(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for (i, (name, _)) in self.vars.iter().enumerate() {
            out.insert(format!("{name}.m"), self.first[i].clone());
            out.insert(format!("{name}.v"), self.second[i].clone());
        }
        out.insert(
            "step".into(),
            Tensor::new(&[self.step as u32], &candle_core::Device::Cpu)?,
        );
        Ok(out)
    }

    /// Restores a saved state; every variable's moments must be there, with its shape.
    pub fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        let missing = |k: &str| Error::InvalidArgument(format!("optimizer state has no '{k}'"));
        for (i, (name, var)) in self.vars.iter().enumerate() {
            for (suffix, slot) in [("m", &mut self.first[i]), ("v", &mut self.second[i])] {
                let key = format!("{name}.{suffix}");
                let t = state.get(&key).ok_or_else(|| missing(&key))?;
                if t.dims() != var.as_tensor().dims() {
                    return Err(Error::InvalidArgument(format!(
                        "optimizer state '{key}' has shape {:?}, the variable {:?}",
                        t.dims(),
                        var.as_tensor().dims()
                    )));
                }
                *slot = t.to_device(var.as_tensor().device())?;
            }
        }
        let step = state.get("step").ok_or_else(|| missing("step"))?;
        self.step = step.to_vec1::<u32>()?.first().copied().unwrap_or(0) as usize;
        Ok(())
    }
}

/// Scales the gradients of `vars` so that their global L2 norm is at most `max_norm`;
/// returns the norm before clipping.
pub fn clip_grad_norm(grads: &mut GradStore, vars: &[&Var], max_norm: f64) -> Result<f64> {
    let mut total = 0f64;
    for v in vars {
        if let Some(g) = grads.get(v.as_tensor()) {
            total += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
        }
    }
    let norm = total.sqrt();
    if norm > max_norm && norm > 0.0 {
        let scale = max_norm / norm;
        for v in vars {
            if let Some(g) = grads.get(v.as_tensor()) {
                let scaled = (g * scale)?;
                grads.insert(v.as_tensor(), scaled);
            }
        }
    }
    Ok(norm)
}
