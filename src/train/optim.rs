//! AdamW with decoupled weight decay, a linear warm-up then cosine learning-rate
//! schedule, and clipping by global gradient norm. The optimizer's moments and step
//! count are plain named tensors, so a checkpoint can hold them and `--resume`
//! continue exactly (candle-nn's AdamW keeps its state private).

use crate::error::{Error, Result};
use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, DType, Device, Layout, Tensor, Var};
use rayon::prelude::*;
use std::collections::HashMap;
use std::sync::Mutex;

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

/// One variable's first and second moments: plain vectors updated in place on the CPU
/// (one fused pass per step), tensors on other devices.
enum Moments {
    Cpu(Mutex<(Vec<f32>, Vec<f32>)>),
    Tensor(Tensor, Tensor),
}

/// AdamW over named variables.
///
/// On the CPU each variable's update (moments, bias correction, decoupled decay,
/// gradient scaling for clipping) is one pass over its values, in place; composed from
/// tensor ops it was a dozen passes and allocations over 135M floats, a third of a
/// full fine-tuning step.
pub struct AdamW {
    vars: Vec<(String, Var)>,
    moments: Vec<Moments>,
    step: usize,
    settings: AdamWSettings,
}

impl AdamW {
    /// An optimizer with zero moments.
    pub fn new(vars: Vec<(String, Var)>, settings: AdamWSettings) -> Result<Self> {
        let moments = vars
            .iter()
            .map(|(_, v)| fresh_moments(v))
            .collect::<Result<Vec<_>>>()?;
        Ok(AdamW {
            vars,
            moments,
            step: 0,
            settings,
        })
    }

    /// The variables it updates.
    pub fn variables(&self) -> impl Iterator<Item = &Var> {
        self.vars.iter().map(|(_, v)| v)
    }

    /// Steps taken.
    pub fn steps(&self) -> usize {
        self.step
    }

    /// Applies one update with learning rate `lr`; variables without a gradient keep
    /// their value (their moments decay).
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        self.step_scaled(grads, lr, 1.0)
    }

    /// [`AdamW::step`] with every gradient multiplied by `grad_scale` first (how
    /// clipping by global norm is applied without rewriting the gradients).
    pub fn step_scaled(&mut self, grads: &GradStore, lr: f64, grad_scale: f64) -> Result<()> {
        self.step += 1;
        let s = self.settings;
        let update = Update {
            lr,
            beta1: s.beta1,
            beta2: s.beta2,
            eps: s.eps,
            decay: 1.0 - lr * s.weight_decay,
            c1: 1.0 - s.beta1.powi(self.step as i32),
            c2: 1.0 - s.beta2.powi(self.step as i32),
            grad_scale,
        };
        for ((_, var), moments) in self.vars.iter().zip(&mut self.moments) {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            match moments {
                Moments::Cpu(mv) => {
                    let op = FusedAdamW {
                        moments: mv,
                        update,
                    };
                    var.as_tensor().inplace_op2(&g.contiguous()?, &op)?;
                }
                Moments::Tensor(m, v) => {
                    let g = (g * grad_scale)?;
                    let m_new = ((&*m * s.beta1)? + (&g * (1.0 - s.beta1))?)?;
                    let v_new = ((&*v * s.beta2)? + (g.sqr()? * (1.0 - s.beta2))?)?;
                    let step = ((&m_new / update.c1)? / ((&v_new / update.c2)?.sqrt()? + s.eps)?)?;
                    let decayed = (var.as_tensor() * update.decay)?;
                    var.set(&(decayed - (step * lr)?)?)?;
                    *m = m_new;
                    *v = v_new;
                }
            }
        }
        Ok(())
    }

    /// The state to save: `NAME.m`, `NAME.v` per variable and `step`.
    pub fn state(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for ((name, var), moments) in self.vars.iter().zip(&self.moments) {
            let (m, v) = match moments {
                Moments::Cpu(mv) => {
                    let mv = mv.lock().unwrap_or_else(|e| e.into_inner());
                    let shape = var.as_tensor().shape().clone();
                    (
                        Tensor::from_slice(&mv.0, &shape, &Device::Cpu)?,
                        Tensor::from_slice(&mv.1, &shape, &Device::Cpu)?,
                    )
                }
                Moments::Tensor(m, v) => (m.clone(), v.clone()),
            };
            out.insert(format!("{name}.m"), m);
            out.insert(format!("{name}.v"), v);
        }
        out.insert(
            "step".into(),
            Tensor::new(&[self.step as u32], &Device::Cpu)?,
        );
        Ok(out)
    }

    /// Restores a saved state; every variable's moments must be there, with its shape.
    pub fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        let missing = |k: &str| Error::InvalidArgument(format!("optimizer state has no '{k}'"));
        for ((name, var), moments) in self.vars.iter().zip(&mut self.moments) {
            let mut pair = Vec::with_capacity(2);
            for suffix in ["m", "v"] {
                let key = format!("{name}.{suffix}");
                let t = state.get(&key).ok_or_else(|| missing(&key))?;
                if t.dims() != var.as_tensor().dims() {
                    return Err(Error::InvalidArgument(format!(
                        "optimizer state '{key}' has shape {:?}, the variable {:?}",
                        t.dims(),
                        var.as_tensor().dims()
                    )));
                }
                pair.push(
                    t.to_device(var.as_tensor().device())?
                        .to_dtype(var.dtype())?,
                );
            }
            let (m, v) = (pair.remove(0), pair.remove(0));
            *moments = match moments {
                Moments::Cpu(_) => Moments::Cpu(Mutex::new((
                    m.flatten_all()?.to_vec1::<f32>()?,
                    v.flatten_all()?.to_vec1::<f32>()?,
                ))),
                Moments::Tensor(..) => Moments::Tensor(m, v),
            };
        }
        let step = state.get("step").ok_or_else(|| missing("step"))?;
        self.step = step.to_vec1::<u32>()?.first().copied().unwrap_or(0) as usize;
        Ok(())
    }
}

fn fresh_moments(var: &Var) -> Result<Moments> {
    let t = var.as_tensor();
    if t.device().is_cpu() && t.dtype() == DType::F32 {
        let n = t.elem_count();
        Ok(Moments::Cpu(Mutex::new((vec![0.0; n], vec![0.0; n]))))
    } else {
        Ok(Moments::Tensor(t.zeros_like()?, t.zeros_like()?))
    }
}

/// The constants of one AdamW update.
#[derive(Clone, Copy)]
struct Update {
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    decay: f64,
    c1: f64,
    c2: f64,
    grad_scale: f64,
}

/// The whole AdamW update of one CPU variable, in place, in one parallel pass.
struct FusedAdamW<'a> {
    moments: &'a Mutex<(Vec<f32>, Vec<f32>)>,
    update: Update,
}

impl candle_core::InplaceOp2 for FusedAdamW<'_> {
    fn name(&self) -> &'static str {
        "fused-adamw"
    }

    fn cpu_fwd(
        &self,
        weights: &mut CpuStorage,
        wl: &Layout,
        grads: &CpuStorage,
        gl: &Layout,
    ) -> candle_core::Result<()> {
        let (CpuStorage::F32(w), CpuStorage::F32(g)) = (weights, grads) else {
            candle_core::bail!("fused AdamW needs f32 weights and gradients");
        };
        let (Some((w0, w1)), Some((g0, g1))) = (wl.contiguous_offsets(), gl.contiguous_offsets())
        else {
            candle_core::bail!("fused AdamW needs contiguous weights and gradients");
        };
        let (w, g) = (&mut w[w0..w1], &g[g0..g1]);
        let mut guard = self.moments.lock().unwrap_or_else(|e| e.into_inner());
        let (m, v) = &mut *guard;
        if w.len() != g.len() || w.len() != m.len() {
            candle_core::bail!("fused AdamW: {} weights, {} gradients", w.len(), g.len());
        }
        let u = self.update;
        let (b1, b2) = (u.beta1 as f32, u.beta2 as f32);
        let (scale, decay) = (u.grad_scale as f32, u.decay as f32);
        let (step_size, c2_root, eps) = ((u.lr / u.c1) as f32, (u.c2.sqrt()) as f32, u.eps as f32);
        const CHUNK: usize = 1 << 14;
        w.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .zip(m.par_chunks_mut(CHUNK).zip(v.par_chunks_mut(CHUNK)))
            .for_each(|((w, g), (m, v))| {
                for i in 0..w.len() {
                    let gi = g[i] * scale;
                    m[i] = b1 * m[i] + (1.0 - b1) * gi;
                    v[i] = b2 * v[i] + (1.0 - b2) * gi * gi;
                    // m̂ / (sqrt(v̂) + eps) with v̂ = v / c2: sqrt(v̂) = sqrt(v) / sqrt(c2).
                    let denom = v[i].sqrt() / c2_root + eps;
                    w[i] = w[i] * decay - step_size * m[i] / denom;
                }
            });
        Ok(())
    }
}

/// Global L2 norm of the gradients of `vars` (read in place on the CPU).
pub fn grad_norm(grads: &GradStore, vars: &[&Var]) -> Result<f64> {
    let mut total = 0f64;
    for v in vars {
        if let Some(g) = grads.get(v.as_tensor()) {
            total += sum_of_squares(g)?;
        }
    }
    Ok(total.sqrt())
}

fn sum_of_squares(t: &Tensor) -> Result<f64> {
    if t.device().is_cpu() && t.dtype() == DType::F32 && t.is_contiguous() {
        let (storage, layout) = t.storage_and_layout();
        if let (candle_core::Storage::Cpu(CpuStorage::F32(values)), Some((a, b))) =
            (&*storage, layout.contiguous_offsets())
        {
            return Ok(values[a..b]
                .par_chunks(1 << 14)
                .map(|c| c.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>())
                .sum());
        }
    }
    Ok(t.to_dtype(DType::F64)?
        .sqr()?
        .sum_all()?
        .to_scalar::<f64>()?)
}

/// Scales the gradients of `vars` so that their global L2 norm is at most `max_norm`;
/// returns the norm before clipping.
pub fn clip_grad_norm(grads: &mut GradStore, vars: &[&Var], max_norm: f64) -> Result<f64> {
    let norm = grad_norm(grads, vars)?;
    let scale = clip_scale(norm, max_norm);
    if scale != 1.0 {
        for v in vars {
            if let Some(g) = grads.get(v.as_tensor()) {
                let scaled = (g * scale)?;
                grads.insert(v.as_tensor(), scaled);
            }
        }
    }
    Ok(norm)
}

/// The factor that brings a gradient of norm `norm` to at most `max_norm` (1 when it
/// already is, or when clipping is off with `max_norm` 0).
pub fn clip_scale(norm: f64, max_norm: f64) -> f64 {
    if max_norm > 0.0 && norm > max_norm {
        max_norm / norm
    } else {
        1.0
    }
}
