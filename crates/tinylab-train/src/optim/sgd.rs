//! Stochastic gradient descent with the semantics of `torch.optim.SGD`
//! (`dampening = 0`, `nesterov = False`).

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

use super::{check_params, host_tensor, load_moment, update_in_place, Optimizer};

/// Hyper-parameters of [`Sgd`]; the learning rate comes with each step.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SgdConfig {
    /// Momentum $\mu$; `0.0` is plain SGD and keeps no state.
    pub momentum: f64,
    /// L2 weight decay $\lambda$, added to the gradient.
    pub weight_decay: f64,
    /// Also decay rank-0/1 parameters (off by default, as for AdamW).
    pub decay_vectors: bool,
}

/// SGD as in `torch.optim.SGD`. For a parameter $\theta$ with gradient $g$ and
/// learning rate $\eta$:
///
/// $$d = g + \lambda\theta,\quad b \leftarrow \mu b + d,\quad
///   \theta \leftarrow \theta - \eta\, b \quad(\text{or } \theta - \eta d \text{ if } \mu = 0).$$
///
/// PyTorch sets $b = d$ on a parameter's first step; starting from $b = 0$ gives the
/// same value, so the buffer is simply zero-initialised.
#[derive(Debug)]
pub struct Sgd {
    cfg: SgdConfig,
    params: Vec<(String, Var)>,
    /// Momentum buffers, one per parameter; empty when $\mu = 0$.
    bufs: Vec<Vec<f32>>,
}

impl Sgd {
    /// An optimizer over `params` (unique names, contiguous f32 CPU tensors).
    pub fn new(params: Vec<(String, Var)>, cfg: SgdConfig) -> candle_core::Result<Self> {
        check_params(&params)?;
        let bufs = if cfg.momentum != 0.0 {
            params.iter().map(|(_, v)| vec![0.0; v.elem_count()]).collect()
        } else {
            Vec::new()
        };
        Ok(Self { cfg, params, bufs })
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &SgdConfig {
        &self.cfg
    }
}

impl Optimizer for Sgd {
    fn step(&mut self, grads: &GradStore, lr: f64) -> candle_core::Result<()> {
        let (wd, mu, neg_lr) = (self.cfg.weight_decay as f32, self.cfg.momentum as f32, -lr as f32);
        for (i, (name, var)) in self.params.iter().enumerate() {
            let Some(grad) = grads.get(var) else { continue };
            let wd = if self.cfg.decay_vectors || var.rank() >= 2 { wd } else { 0.0 };
            match self.bufs.get_mut(i) {
                None => update_in_place(name, var, grad, |ps, gs| {
                    for (p, &g) in ps.iter_mut().zip(gs) {
                        let d = if wd != 0.0 { g + wd * *p } else { g };
                        *p += neg_lr * d;
                    }
                })?,
                Some(buf) => update_in_place(name, var, grad, |ps, gs| {
                    for ((p, &g), b) in ps.iter_mut().zip(gs).zip(buf.iter_mut()) {
                        let d = if wd != 0.0 { g + wd * *p } else { g };
                        *b = *b * mu + d;
                        *p += neg_lr * *b;
                    }
                })?,
            }
        }
        Ok(())
    }

    /// `sgd.momentum.<param>` for every parameter, or nothing when $\mu = 0$.
    fn state(&self) -> Vec<(String, Tensor)> {
        let named = self.params.iter().zip(&self.bufs);
        named.map(|((n, v), b)| (format!("sgd.momentum.{n}"), host_tensor(b, v.shape()))).collect()
    }

    fn load_state(&mut self, tensors: &HashMap<String, Tensor>) -> anyhow::Result<()> {
        if self.bufs.is_empty() {
            return Ok(());
        }
        let mut bufs = Vec::with_capacity(self.params.len());
        for (name, var) in &self.params {
            bufs.push(load_moment(tensors, &format!("sgd.momentum.{name}"), var.shape())?);
        }
        self.bufs = bufs;
        Ok(())
    }

    fn reset(&mut self) {
        self.bufs.iter_mut().for_each(|b| b.fill(0.0));
    }

    fn params(&self) -> &[(String, Var)] {
        &self.params
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{grads, values, var};
    use super::*;

    const G: [[f32; 3]; 3] = [[0.5, -1.0, 0.25], [0.1, 0.2, -0.3], [-2.0, 0.0, 1.0]];

    fn reference(p0: &[f32], mu: f64, wd: f64, lr: f64) -> Vec<f64> {
        let mut p: Vec<f64> = p0.iter().map(|&x| x as f64).collect();
        let mut b: Vec<Option<f64>> = vec![None; p.len()];
        for g in G {
            for i in 0..p.len() {
                let d = g[i] as f64 + wd * p[i];
                let d = match (mu, b[i]) {
                    (0.0, _) => d,
                    (_, None) => *b[i].insert(d), // PyTorch: buf = clone(d)
                    (_, Some(old)) => *b[i].insert(mu * old + d),
                };
                p[i] -= lr * d;
            }
        }
        p
    }

    #[test]
    fn matches_pytorch_formula() {
        for (mu, wd) in [(0.0, 0.0), (0.0, 0.1), (0.9, 0.0), (0.9, 0.05)] {
            let p0 = [1.0f32, -2.0, 0.5];
            let w = var(&p0, &[3]);
            let cfg = SgdConfig { momentum: mu, weight_decay: wd, decay_vectors: true };
            let mut opt = Sgd::new(vec![("w".into(), w.clone())], cfg).unwrap();
            for g in &G {
                opt.step(&grads(&[(&w, g)]), 0.1).unwrap();
            }
            for (a, b) in values(&w).iter().zip(reference(&p0, mu, wd, 0.1)) {
                assert!((*a as f64 - b).abs() < 1e-6, "mu={mu} wd={wd}: {a} vs {b}");
            }
            assert_eq!(opt.state().len(), usize::from(mu != 0.0));
        }
    }

    #[test]
    fn state_round_trip_and_missing_entry() {
        let cfg = SgdConfig { momentum: 0.9, weight_decay: 0.0, decay_vectors: true };
        let w = var(&[1.0, 2.0, 3.0], &[3]);
        let mut a = Sgd::new(vec![("w".into(), w.clone())], cfg).unwrap();
        a.step(&grads(&[(&w, &G[0])]), 0.1).unwrap();
        let w2 = var(&values(&w), &[3]);
        let mut b = Sgd::new(vec![("w".into(), w2.clone())], cfg).unwrap();
        let state: HashMap<_, _> = a.state().into_iter().collect();
        b.load_state(&state).unwrap();
        a.step(&grads(&[(&w, &G[1])]), 0.1).unwrap();
        b.step(&grads(&[(&w2, &G[1])]), 0.1).unwrap();
        assert_eq!(values(&w), values(&w2));
        let err = b.load_state(&HashMap::new()).unwrap_err().to_string();
        assert!(err.contains("sgd.momentum.w"), "{err}");
        b.reset();
        assert_eq!(b.bufs[0], [0.0; 3]);
    }
}
