//! Optimizers, learning-rate schedules and gradient clipping.
//!
//! [`AdamW`] matches `torch.optim.AdamW` and [`Sgd`] matches `torch.optim.SGD`. The
//! learning rate is not part of an optimizer: the trainer passes
//! $\eta_t$ = [`LrSchedule::lr_at`]`(`[`OptimConfig::lr`]`, t, T)` to every
//! [`Optimizer::step`].
//!
//! The moments live on the host as plain `Vec<f32>`. Each step updates a parameter in
//! place, in one fused pass over its storage and its gradient. For these small tensors
//! that is several times faster than a chain of candle tensor ops (see
//! `adamw::tests::bench_adamw`). Parameters must therefore be contiguous `f32` tensors on
//! the CPU, which [`OptimConfig::build`] checks up front.

use std::cell::RefCell;
use std::collections::HashMap;

use anyhow::{ensure, Context};
use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, DType, Device, InplaceOp2, Layout, Shape, Tensor, Var};
use serde::{Deserialize, Serialize};

pub mod adamw;
pub mod clip;
pub mod schedule;
pub mod sgd;

pub use adamw::{AdamW, AdamWConfig};
pub use clip::{clip_grad_norm, grad_norm};
pub use schedule::{LrSchedule, ScheduleKind};
pub use sgd::{Sgd, SgdConfig};

/// Which optimizer an [`OptimConfig`] builds: `kind = "adamw"` (the default) or `"sgd"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimKind {
    /// [`AdamW`]: Adam with decoupled weight decay.
    #[default]
    AdamW,
    /// [`Sgd`]: stochastic gradient descent with optional heavy-ball momentum.
    Sgd,
}

/// The optimizer table of an experiment config (e.g. `[train.optimizer]`).
///
/// Every field has a default; unknown fields and unknown kinds are rejected when
/// parsing. Fields of the other kind (`momentum` for AdamW; `beta1`, `beta2`, `eps` for
/// SGD) are rejected by [`OptimConfig::validate`] if set to a non-default value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimConfig {
    /// Which optimizer to build.
    pub kind: OptimKind,
    /// Base learning rate $\eta$ (default `1e-3`), scaled by the [`LrSchedule`].
    pub lr: f64,
    /// AdamW: decay rate $\beta_1$ of the first moment (default `0.9`).
    pub beta1: f64,
    /// AdamW: decay rate $\beta_2$ of the second moment (default `0.999`).
    pub beta2: f64,
    /// AdamW: $\epsilon$ added to $\sqrt{\hat v}$ (default `1e-8`).
    pub eps: f64,
    /// Weight decay $\lambda$ (default `0.0`): decoupled for AdamW, L2 for SGD.
    pub weight_decay: f64,
    /// SGD: momentum $\mu$ (default `0.0`, plain SGD).
    pub momentum: f64,
    /// Apply weight decay to rank-0/1 parameters too (gains, biases, temperatures); default
    /// `false`: only matrices are decayed (nanoGPT's convention).
    pub decay_vectors: bool,
}

impl Default for OptimConfig {
    fn default() -> Self {
        let a = AdamWConfig::default();
        Self {
            kind: OptimKind::AdamW,
            lr: 1e-3,
            beta1: a.beta1,
            beta2: a.beta2,
            eps: a.eps,
            weight_decay: a.weight_decay,
            momentum: 0.0,
            decay_vectors: false,
        }
    }
}

impl OptimConfig {
    /// Checks the ranges ($\eta > 0$, $0 \le \beta_i < 1$, $\epsilon \ge 0$,
    /// $\lambda \ge 0$, $\mu \ge 0$) and that no field of the other kind is set.
    pub fn validate(&self) -> anyhow::Result<()> {
        ensure!(self.lr.is_finite() && self.lr > 0.0, "optimizer lr must be > 0, got {}", self.lr);
        ensure!(self.weight_decay >= 0.0, "weight_decay must be >= 0, got {}", self.weight_decay);
        let d = Self::default();
        match self.kind {
            OptimKind::AdamW => {
                for (name, b) in [("beta1", self.beta1), ("beta2", self.beta2)] {
                    ensure!((0.0..1.0).contains(&b), "{name} must be in [0, 1), got {b}");
                }
                ensure!(self.eps >= 0.0, "eps must be >= 0, got {}", self.eps);
                ensure!(self.momentum == 0.0, "`momentum` applies only to kind = \"sgd\"");
            }
            OptimKind::Sgd => {
                ensure!(self.momentum >= 0.0, "momentum must be >= 0, got {}", self.momentum);
                let same = (self.beta1, self.beta2, self.eps) == (d.beta1, d.beta2, d.eps);
                ensure!(same, "`beta1`, `beta2` and `eps` apply only to kind = \"adamw\"");
            }
        }
        Ok(())
    }

    /// Validates the config and builds the optimizer over the named `params`.
    ///
    /// Names must be unique (they key [`Optimizer::state`]); parameters must be
    /// contiguous `f32` CPU tensors.
    pub fn build(&self, params: Vec<(String, Var)>) -> anyhow::Result<Box<dyn Optimizer>> {
        self.validate()?;
        Ok(match self.kind {
            OptimKind::AdamW => {
                let cfg = AdamWConfig {
                    beta1: self.beta1,
                    beta2: self.beta2,
                    eps: self.eps,
                    weight_decay: self.weight_decay,
                    decay_vectors: self.decay_vectors,
                };
                Box::new(AdamW::new(params, cfg)?)
            }
            OptimKind::Sgd => {
                let cfg = SgdConfig {
                    momentum: self.momentum,
                    weight_decay: self.weight_decay,
                    decay_vectors: self.decay_vectors,
                };
                Box::new(Sgd::new(params, cfg)?)
            }
        })
    }
}

/// A first-order optimizer over a fixed list of named parameters.
pub trait Optimizer: Send {
    /// Applies one update with learning rate `lr` to every parameter that has a gradient
    /// in `grads`; parameters without one are skipped (their state is untouched).
    fn step(&mut self, grads: &GradStore, lr: f64) -> candle_core::Result<()>;
    /// A copy of the full optimizer state as CPU tensors keyed by parameter name,
    /// e.g. `adamw.m.<param>`, `adamw.v.<param>`, `adamw.step.<param>` (i64 scalar).
    fn state(&self) -> Vec<(String, Tensor)>;
    /// Replaces the state with the entries saved by [`Optimizer::state`]. Fails,
    /// naming the entry and leaving the state unchanged, if an entry is missing or has
    /// the wrong shape. Entries for other names are ignored.
    fn load_state(&mut self, tensors: &HashMap<String, Tensor>) -> anyhow::Result<()>;
    /// Zeroes all moments and step counts, as for a freshly built optimizer.
    fn reset(&mut self);
    /// The named parameters this optimizer updates.
    fn params(&self) -> &[(String, Var)];
}

/// Checks that the parameters can be updated in place on the host (contiguous `f32` on
/// the CPU) and that names and tensors are unique (a tied weight must be listed once).
pub(crate) fn check_params(params: &[(String, Var)]) -> candle_core::Result<()> {
    let (mut names, mut ids) = (std::collections::HashSet::new(), HashMap::new());
    for (name, var) in params {
        if !names.insert(name) {
            candle_core::bail!("duplicate optimizer parameter name `{name}`");
        }
        if let Some(first) = ids.insert(var.id(), name) {
            candle_core::bail!("optimizer parameters `{first}` and `{name}` are the same tensor");
        }
        if !var.device().is_cpu() || var.dtype() != DType::F32 || !var.is_contiguous() {
            candle_core::bail!(
                "optimizer parameter `{name}` must be a contiguous f32 CPU tensor, got {:?} on {:?}",
                var.dtype(),
                var.device().location()
            );
        }
    }
    Ok(())
}

/// An in-place op running a host closure over `(param, grad)` slices.
struct HostUpdate<F>(RefCell<F>);

impl<F: FnMut(&mut [f32], &[f32])> InplaceOp2 for HostUpdate<F> {
    fn name(&self) -> &'static str {
        "tinylab-optim-update"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        src: &CpuStorage,
        src_l: &Layout,
    ) -> candle_core::Result<()> {
        match (dst, src, dst_l.contiguous_offsets(), src_l.contiguous_offsets()) {
            (CpuStorage::F32(p), CpuStorage::F32(g), Some((p0, p1)), Some((g0, g1))) => {
                (self.0.borrow_mut())(&mut p[p0..p1], &g[g0..g1]);
                Ok(())
            }
            _ => candle_core::bail!("optimizer update needs contiguous f32 tensors"),
        }
    }
}

/// Runs `f(param, grad)` over the f32 data of `var` (in place) and of its gradient.
pub(crate) fn update_in_place(
    name: &str,
    var: &Var,
    grad: &Tensor,
    f: impl FnMut(&mut [f32], &[f32]),
) -> candle_core::Result<()> {
    if grad.shape() != var.shape() || grad.dtype() != DType::F32 {
        candle_core::bail!(
            "gradient of `{name}` is {:?} {:?}, parameter is f32 {:?}",
            grad.dtype(),
            grad.dims(),
            var.dims()
        );
    }
    let grad = grad.contiguous()?;
    var.as_tensor().inplace_op2(&grad, &HostUpdate(RefCell::new(f)))
}

/// A host buffer as a CPU tensor of `shape` (for [`Optimizer::state`]).
pub(crate) fn host_tensor(data: &[f32], shape: &Shape) -> Tensor {
    Tensor::from_slice(data, shape, &Device::Cpu).expect("state buffer matches its parameter")
}

/// A step count as an i64 scalar CPU tensor.
pub(crate) fn step_tensor(step: u64) -> Tensor {
    Tensor::new(step as i64, &Device::Cpu).expect("scalar tensor on the CPU")
}

fn entry<'a>(tensors: &'a HashMap<String, Tensor>, key: &str) -> anyhow::Result<&'a Tensor> {
    tensors.get(key).with_context(|| format!("optimizer state entry `{key}` is missing"))
}

/// Reads the moment `key`, which must have `shape`, as a host buffer.
pub(crate) fn load_moment(
    tensors: &HashMap<String, Tensor>,
    key: &str,
    shape: &Shape,
) -> anyhow::Result<Vec<f32>> {
    let t = entry(tensors, key)?;
    ensure!(
        t.shape() == shape,
        "optimizer state entry `{key}` has shape {:?}, expected {:?}",
        t.dims(),
        shape.dims()
    );
    let data = t.to_dtype(DType::F32).and_then(|t| t.flatten_all()?.to_vec1::<f32>());
    data.with_context(|| format!("cannot read optimizer state entry `{key}`"))
}

/// Reads the step count `key`, a scalar holding a non-negative integer.
pub(crate) fn load_step(tensors: &HashMap<String, Tensor>, key: &str) -> anyhow::Result<u64> {
    let t = entry(tensors, key)?;
    ensure!(t.elem_count() == 1, "optimizer state entry `{key}` has shape {:?}, expected a scalar", t.dims());
    let s = t.to_dtype(DType::F64).and_then(|t| t.flatten_all()?.to_vec1::<f64>());
    let s = s.with_context(|| format!("cannot read optimizer state entry `{key}`"))?[0];
    ensure!(s >= 0.0 && s.fract() == 0.0, "optimizer state entry `{key}` is {s}, not a step");
    Ok(s as u64)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A parameter holding `data` with `shape`.
    pub fn var(data: &[f32], shape: &[usize]) -> Var {
        Var::from_slice(data, shape, &Device::Cpu).unwrap()
    }

    /// A gradient store with the given gradients.
    pub fn grads(entries: &[(&Var, &[f32])]) -> GradStore {
        let mut store = GradStore::default();
        for (v, g) in entries {
            store.insert(v, Tensor::from_slice(g, v.shape(), &Device::Cpu).unwrap());
        }
        store
    }

    pub fn values(v: &Var) -> Vec<f32> {
        v.flatten_all().unwrap().to_vec1().unwrap()
    }

    #[test]
    fn config_defaults_and_parsing() {
        let c: OptimConfig = toml::from_str("").unwrap();
        assert_eq!(c, OptimConfig::default());
        assert_eq!((c.kind, c.lr, c.beta2, c.eps), (OptimKind::AdamW, 1e-3, 0.999, 1e-8));
        let c: OptimConfig = toml::from_str("kind = \"sgd\"\nmomentum = 0.9\nlr = 0.1").unwrap();
        assert_eq!((c.kind, c.momentum, c.lr), (OptimKind::Sgd, 0.9, 0.1));
        c.validate().unwrap();
        let back: OptimConfig = toml::from_str(&toml::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn config_rejects_unknown_and_misplaced() {
        let err = toml::from_str::<OptimConfig>("kind = \"adam\"").unwrap_err();
        assert!(err.to_string().contains("adam"), "{err}");
        let err = toml::from_str::<OptimConfig>("lr = 1e-3\nbeta3 = 0.5").unwrap_err();
        assert!(err.to_string().contains("beta3"), "{err}");
        let c: OptimConfig = toml::from_str("momentum = 0.9").unwrap();
        assert!(c.validate().unwrap_err().to_string().contains("momentum"));
        let c: OptimConfig = toml::from_str("kind = \"sgd\"\nbeta1 = 0.8").unwrap();
        assert!(c.validate().is_err());
        let c = OptimConfig { lr: 0.0, ..Default::default() };
        assert!(c.build(vec![]).is_err());
    }

    #[test]
    fn build_checks_params() {
        let w = var(&[1.0, 2.0], &[2]);
        let opt = OptimConfig::default().build(vec![("w".into(), w.clone())]).unwrap();
        assert_eq!(opt.params()[0].0, "w");
        assert!(opt.state().iter().any(|(k, _)| k == "adamw.m.w"));
        let dup = vec![("w".into(), w.clone()), ("w".into(), var(&[0.0], &[1]))];
        let err = OptimConfig::default().build(dup).err().unwrap();
        assert!(err.to_string().contains("duplicate"), "{err}");
        let tied = vec![("w".into(), w.clone()), ("u".into(), w)];
        let err = OptimConfig::default().build(tied).err().unwrap();
        assert!(err.to_string().contains("same tensor"), "{err}");
        let w64 = Var::from_slice(&[1.0f64], 1, &Device::Cpu).unwrap();
        assert!(OptimConfig::default().build(vec![("w".into(), w64)]).is_err());
    }
}
