//! The optimizer of a seed-batched run: the solo optimizers (AdamW, SGD) unchanged over the
//! stacked weights `[S, …]`, whose element-wise updates give every member its solo update,
//! plus the two rules that are not element-wise:
//!
//! - weight decay applies by the rank of a *member's* weight (a solo `[d]` gain is stacked to
//!   `[S, d]` and must still not be decayed unless `decay_vectors`): the weights are split in a
//!   group decayed as configured and a group with `weight_decay = 0`;
//! - gradient clipping is per member ([`clip_per_member`]), each member's norm over its own
//!   slices, exactly as `clip_grad_norm` on its solo gradients.
//!
//! State is saved and loaded per member under the solo names (`adamw.m.<name>` of the member's
//! shape), so each member's checkpoint is a solo checkpoint.

use std::collections::HashMap;

use anyhow::{bail, ensure, Result};
use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, DType, Storage, Tensor, Var};

use crate::optim::{OptimConfig, Optimizer};

/// Solo optimizers over stacked weights, split by the member rank of each weight.
pub struct EnsembleOptimizer {
    size: usize,
    groups: Vec<Box<dyn Optimizer>>,
    /// Every weight, sorted by name (the order of the solo optimizer and of clipping).
    params: Vec<(String, Var)>,
}

impl EnsembleOptimizer {
    /// Builds the optimizer of `cfg` over stacked weights `[size, …]` (named as in the solo
    /// model, sorted).
    pub fn new(cfg: &OptimConfig, params: Vec<(String, Var)>, size: usize) -> Result<Self> {
        for (name, v) in &params {
            ensure!(v.dim(0)? == size, "`{name}` is not stacked over {size} members: {:?}", v.dims());
        }
        let (decayed, plain): (Vec<_>, Vec<_>) =
            params.iter().cloned().partition(|(_, v)| cfg.decay_vectors || v.rank() >= 3);
        let mut groups = Vec::new();
        if !decayed.is_empty() {
            groups.push(cfg.build(decayed)?);
        }
        if !plain.is_empty() {
            groups.push(OptimConfig { weight_decay: 0.0, ..*cfg }.build(plain)?);
        }
        Ok(Self { size, groups, params })
    }

    /// Number of members.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The stacked weights, sorted by name.
    pub fn params(&self) -> &[(String, Var)] {
        &self.params
    }

    /// One update of every member with learning rate `lr`.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> candle_core::Result<()> {
        self.groups.iter_mut().try_for_each(|g| g.step(grads, lr))
    }

    /// The stacked state of every group (entries `[S, …]`, step counts as scalars).
    fn stacked_state(&self) -> Vec<(String, Tensor)> {
        self.groups.iter().flat_map(|g| g.state()).collect()
    }

    /// Member `i`'s optimizer state under the solo names and shapes (what a solo run saves).
    pub fn member_state(&self, i: usize) -> Result<Vec<(String, Tensor)>> {
        ensure!(i < self.size, "member {i} of {}", self.size);
        self.stacked_state()
            .into_iter()
            .map(|(k, t)| Ok((k, if t.rank() == 0 { t } else { t.get(i)?.copy()? })))
            .collect()
    }

    /// Loads one solo state per member (from their checkpoints); step counts must agree.
    pub fn load_member_states(&mut self, states: &[HashMap<String, Tensor>]) -> Result<()> {
        ensure!(states.len() == self.size, "{} optimizer states for {} members", states.len(), self.size);
        for g in &mut self.groups {
            let mut stacked = HashMap::new();
            for (key, template) in g.state() {
                let mut ts = Vec::with_capacity(states.len());
                for (i, s) in states.iter().enumerate() {
                    match s.get(&key) {
                        Some(t) => ts.push(t.clone()),
                        None => bail!("member {i}: optimizer state entry `{key}` is missing"),
                    }
                }
                let t = if template.rank() == 0 {
                    let steps: Vec<f64> = ts
                        .iter()
                        .map(|t| t.to_dtype(DType::F64)?.to_scalar::<f64>())
                        .collect::<candle_core::Result<_>>()?;
                    ensure!(
                        steps.iter().all(|&s| s == steps[0]),
                        "`{key}` differs between members: {steps:?}"
                    );
                    ts[0].clone()
                } else {
                    Tensor::stack(&ts, 0)?
                };
                stacked.insert(key, t);
            }
            g.load_state(&stacked)?;
        }
        Ok(())
    }

    /// The optimizer of the members `keep` (in that order) over `params`, the stacked weights
    /// of the retained model, with their state carried over.
    pub fn retain(&self, cfg: &OptimConfig, params: Vec<(String, Var)>, keep: &[usize]) -> Result<Self> {
        let states = keep
            .iter()
            .map(|&i| Ok(self.member_state(i)?.into_iter().collect()))
            .collect::<Result<Vec<HashMap<_, _>>>>()?;
        let mut next = Self::new(cfg, params, keep.len())?;
        next.load_member_states(&states)?;
        Ok(next)
    }
}

/// `Σ x²` in f64 with eight accumulators (as the solo `clip_grad_norm` sums).
fn sum_sq(xs: &[f32]) -> f64 {
    let mut acc = [0f64; 8];
    let chunks = xs.chunks_exact(8);
    let tail: f64 = chunks.remainder().iter().map(|&x| x as f64 * x as f64).sum();
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += x as f64 * x as f64;
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// Each member's global gradient norm over its slices of `params` (sorted as in the solo
/// optimizer); weights without a gradient are skipped.
pub fn member_grad_norms(
    grads: &GradStore,
    params: &[(String, Var)],
    size: usize,
) -> candle_core::Result<Vec<f64>> {
    let mut sums = vec![0f64; size];
    for (_, v) in params {
        let Some(g) = grads.get(v) else { continue };
        let g = g.to_dtype(DType::F32)?.contiguous()?;
        let (storage, layout) = g.storage_and_layout();
        let (Storage::Cpu(CpuStorage::F32(data)), Some((a, b))) = (&*storage, layout.contiguous_offsets())
        else {
            candle_core::bail!("member_grad_norms needs CPU gradients");
        };
        let per = (b - a) / size;
        for (i, s) in sums.iter_mut().enumerate() {
            *s += sum_sq(&data[a + i * per..a + (i + 1) * per]);
        }
    }
    Ok(sums.into_iter().map(f64::sqrt).collect())
}

/// Clips each member's gradients to a norm of at most `max_norm`, as `clip_grad_norm` does
/// for a solo run (scale `max_norm / (norm + 1e-6)` when above, untouched when not finite);
/// returns the members' norms before clipping.
pub fn clip_per_member(
    grads: &mut GradStore,
    params: &[(String, Var)],
    size: usize,
    max_norm: f64,
) -> candle_core::Result<Vec<f64>> {
    if max_norm.is_nan() || max_norm <= 0.0 {
        candle_core::bail!("max_norm must be positive, got {max_norm}");
    }
    let norms = member_grad_norms(grads, params, size)?;
    let coefs: Vec<f32> = norms
        .iter()
        .map(|&n| {
            let c = max_norm / (n + 1e-6);
            if n.is_finite() && c < 1.0 {
                c as f32
            } else {
                1.0
            }
        })
        .collect();
    if coefs.iter().all(|&c| c == 1.0) {
        return Ok(norms);
    }
    for (_, v) in params {
        let Some(g) = grads.get(v) else { continue };
        let mut shape = vec![1usize; g.rank()];
        shape[0] = size;
        let c = Tensor::from_slice(&coefs, shape, g.device())?.to_dtype(g.dtype())?;
        let scaled = g.broadcast_mul(&c)?;
        grads.insert(v, scaled);
    }
    Ok(norms)
}
