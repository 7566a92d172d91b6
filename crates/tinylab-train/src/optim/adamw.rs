//! AdamW with the exact update of `torch.optim.AdamW` (`amsgrad = False`).

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

use super::Optimizer;
use super::{check_params, host_tensor, load_moment, load_step, step_tensor, update_in_place};

/// Hyper-parameters of [`AdamW`]; the learning rate comes with each step.
///
/// Note that PyTorch's default `weight_decay` is `0.01`; ours is `0.0`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig {
    /// Decay rate $\beta_1$ of the first moment.
    pub beta1: f64,
    /// Decay rate $\beta_2$ of the second moment.
    pub beta2: f64,
    /// $\epsilon$ added to the bias-corrected $\sqrt{v}$.
    pub eps: f64,
    /// Decoupled weight decay $\lambda$.
    pub weight_decay: f64,
    /// Also decay rank-0/1 parameters (gains, biases, temperatures, positional rows are
    /// rank 2 and always decayed); off by default, as in nanoGPT.
    pub decay_vectors: bool,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, decay_vectors: false }
    }
}

/// Per-parameter state: moments and the number of steps this parameter has taken.
#[derive(Debug, Clone)]
struct Slot {
    /// Whether weight decay applies to this parameter.
    decay: bool,
    m: Vec<f32>,
    v: Vec<f32>,
    step: u64,
}

/// Adam with decoupled weight decay (Loshchilov & Hutter), as in `torch.optim.AdamW`.
///
/// For a parameter $\theta$ with gradient $g$ at its step $t = 1, 2, \dots$ and
/// learning rate $\eta$:
///
/// $$\theta \leftarrow \theta(1 - \eta\lambda),\quad
///   m \leftarrow \beta_1 m + (1-\beta_1) g,\quad
///   v \leftarrow \beta_2 v + (1-\beta_2) g^2,$$
/// $$\theta \leftarrow \theta - \frac{\eta}{1-\beta_1^t}\cdot
///   \frac{m}{\sqrt{v}/\sqrt{1-\beta_2^t} + \epsilon}.$$
///
/// As in PyTorch, $t$ is counted per parameter (a parameter without a gradient does not
/// advance), scalars are formed in f64 and the element-wise math runs in f32 in PyTorch's
/// order (`lerp_`, `addcmul_`, `addcdiv_`). Results agree with PyTorch to rounding;
/// bitwise equality is not promised, as PyTorch's own vectorized kernels use FMA.
#[derive(Debug)]
pub struct AdamW {
    cfg: AdamWConfig,
    params: Vec<(String, Var)>,
    slots: Vec<Slot>,
}

impl AdamW {
    /// An optimizer over `params` (unique names, contiguous f32 CPU tensors).
    pub fn new(params: Vec<(String, Var)>, cfg: AdamWConfig) -> candle_core::Result<Self> {
        check_params(&params)?;
        let slots = params
            .iter()
            .map(|(_, v)| Slot::zeros(v.elem_count(), cfg.decay_vectors || v.rank() >= 2))
            .collect();
        Ok(Self { cfg, params, slots })
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &AdamWConfig {
        &self.cfg
    }
}

impl Slot {
    fn zeros(n: usize, decay: bool) -> Self {
        Self { decay, m: vec![0.0; n], v: vec![0.0; n], step: 0 }
    }
}

impl Optimizer for AdamW {
    fn step(&mut self, grads: &GradStore, lr: f64) -> candle_core::Result<()> {
        let c = self.cfg;
        for ((name, var), slot) in self.params.iter().zip(&mut self.slots) {
            let Some(grad) = grads.get(var) else { continue };
            let t = slot.step + 1;
            let bias1 = 1.0 - c.beta1.powf(t as f64);
            let bias2_sqrt = ((1.0 - c.beta2.powf(t as f64)).sqrt()) as f32;
            let decay = if slot.decay { (1.0 - lr * c.weight_decay) as f32 } else { 1.0 };
            let neg_step_size = (-lr / bias1) as f32;
            let (w1, beta2, w2) = ((1.0 - c.beta1) as f32, c.beta2 as f32, (1.0 - c.beta2) as f32);
            let eps = c.eps as f32;
            let (ms, vs) = (&mut slot.m, &mut slot.v);
            update_in_place(name, var, grad, |ps, gs| {
                let it = ps.iter_mut().zip(gs).zip(ms.iter_mut()).zip(vs.iter_mut());
                for (((p, &g), m), v) in it {
                    *p *= decay;
                    *m += w1 * (g - *m); // lerp_(g, 1 - β1), weight < 0.5
                    *v = *v * beta2 + w2 * g * g; // mul_(β2).addcmul_(g, g, 1 - β2)
                    let denom = v.sqrt() / bias2_sqrt + eps;
                    *p += neg_step_size * *m / denom; // addcdiv_(m, denom, -η/bc1)
                }
            })?;
            slot.step = t;
        }
        Ok(())
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(3 * self.params.len());
        for ((name, var), s) in self.params.iter().zip(&self.slots) {
            out.push((format!("adamw.m.{name}"), host_tensor(&s.m, var.shape())));
            out.push((format!("adamw.v.{name}"), host_tensor(&s.v, var.shape())));
            out.push((format!("adamw.step.{name}"), step_tensor(s.step)));
        }
        out
    }

    fn load_state(&mut self, tensors: &HashMap<String, Tensor>) -> anyhow::Result<()> {
        let mut slots = Vec::with_capacity(self.params.len());
        for ((name, var), old) in self.params.iter().zip(&self.slots) {
            slots.push(Slot {
                decay: old.decay,
                m: load_moment(tensors, &format!("adamw.m.{name}"), var.shape())?,
                v: load_moment(tensors, &format!("adamw.v.{name}"), var.shape())?,
                step: load_step(tensors, &format!("adamw.step.{name}"))?,
            });
        }
        self.slots = slots;
        Ok(())
    }

    fn reset(&mut self) {
        for s in &mut self.slots {
            s.m.fill(0.0);
            s.v.fill(0.0);
            s.step = 0;
        }
    }

    fn params(&self) -> &[(String, Var)] {
        &self.params
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{grads, values, var};
    use super::*;

    const G: [[f32; 4]; 3] = [[0.1, -0.2, 0.3, 0.0], [-0.5, 0.25, 1.0, 2.0], [0.3, 0.3, -0.7, -1e-3]];
    const LR: [f64; 3] = [1e-2, 5e-3, 2e-2];

    fn cfg() -> AdamWConfig {
        AdamWConfig { beta1: 0.9, beta2: 0.99, eps: 1e-8, weight_decay: 0.1, decay_vectors: true }
    }

    #[test]
    fn matches_pytorch_formula_for_three_steps() {
        let p0 = [0.5f32, -1.5, 2.0, 0.0];
        let w = var(&p0, &[2, 2]);
        let mut opt = AdamW::new(vec![("w".into(), w.clone())], cfg()).unwrap();
        let c = cfg();
        let mut p: Vec<f64> = p0.iter().map(|&x| x as f64).collect();
        let (mut m, mut v) = (vec![0f64; 4], vec![0f64; 4]);
        for (t, (g, lr)) in G.iter().zip(LR).enumerate() {
            opt.step(&grads(&[(&w, g)]), lr).unwrap();
            let t = (t + 1) as i32;
            for i in 0..4 {
                let gi = g[i] as f64;
                p[i] *= 1.0 - lr * c.weight_decay;
                m[i] = c.beta1 * m[i] + (1.0 - c.beta1) * gi;
                v[i] = c.beta2 * v[i] + (1.0 - c.beta2) * gi * gi;
                let denom = v[i].sqrt() / (1.0 - c.beta2.powi(t)).sqrt() + c.eps;
                p[i] -= lr / (1.0 - c.beta1.powi(t)) * m[i] / denom;
            }
            for (a, b) in values(&w).iter().zip(&p) {
                assert!((*a as f64 - b).abs() < 1e-6, "step {t}: {a} vs {b}");
            }
        }
        let state: HashMap<_, _> = opt.state().into_iter().collect();
        assert_eq!(state["adamw.step.w"].to_scalar::<i64>().unwrap(), 3);
        let m_got: Vec<f32> = state["adamw.m.w"].flatten_all().unwrap().to_vec1().unwrap();
        assert!(m_got.iter().zip(&m).all(|(a, b)| (*a as f64 - b).abs() < 1e-7));
    }

    #[test]
    fn state_round_trip_gives_identical_updates() {
        let w = var(&[0.5, -1.5, 2.0, 0.0], &[2, 2]);
        let b = var(&[0.1, 0.2, 0.3, 0.4], &[4]);
        let mut a = AdamW::new(vec![("w".into(), w.clone()), ("b".into(), b.clone())], cfg()).unwrap();
        a.step(&grads(&[(&w, &G[0]), (&b, &G[1])]), LR[0]).unwrap();
        a.step(&grads(&[(&w, &G[1])]), LR[1]).unwrap(); // b skipped
        let w2 = var(&values(&w), &[2, 2]);
        let b2 = var(&values(&b), &[4]);
        let mut fresh = AdamW::new(vec![("w".into(), w2.clone()), ("b".into(), b2.clone())], cfg()).unwrap();
        let state: HashMap<_, _> = a.state().into_iter().collect();
        assert_eq!(state["adamw.step.b"].to_scalar::<i64>().unwrap(), 1);
        fresh.load_state(&state).unwrap();
        a.step(&grads(&[(&w, &G[2]), (&b, &G[2])]), LR[2]).unwrap();
        fresh.step(&grads(&[(&w2, &G[2]), (&b2, &G[2])]), LR[2]).unwrap();
        assert_eq!(values(&w), values(&w2));
        assert_eq!(values(&b), values(&b2));
    }

    #[test]
    fn load_state_rejects_missing_or_misshaped_entries() {
        let w = var(&[1.0, 2.0, 3.0, 4.0], &[2, 2]);
        let mut opt = AdamW::new(vec![("w".into(), w.clone())], cfg()).unwrap();
        opt.step(&grads(&[(&w, &G[0])]), 0.1).unwrap();
        let good: HashMap<_, _> = opt.state().into_iter().collect();
        let mut missing = good.clone();
        missing.remove("adamw.v.w");
        let err = opt.load_state(&missing).unwrap_err().to_string();
        assert!(err.contains("adamw.v.w") && err.contains("missing"), "{err}");
        let mut bad = good.clone();
        bad.insert("adamw.m.w".into(), host_tensor(&[0.0; 4], &4.into()));
        let err = opt.load_state(&bad).unwrap_err().to_string();
        assert!(err.contains("adamw.m.w") && err.contains("shape"), "{err}");
        // A failed load leaves the state as it was.
        assert_eq!(opt.state()[2].1.to_scalar::<i64>().unwrap(), 1);
    }

    #[test]
    fn reset_restarts_from_scratch_and_skips_missing_grads() {
        let w = var(&[1.0, 2.0, 3.0, 4.0], &[2, 2]);
        let mut opt = AdamW::new(vec![("w".into(), w.clone())], cfg()).unwrap();
        opt.step(&GradStore::default(), 0.1).unwrap();
        assert_eq!(values(&w), [1.0, 2.0, 3.0, 4.0]);
        opt.step(&grads(&[(&w, &G[0])]), 0.1).unwrap();
        opt.reset();
        assert!(opt.slots.iter().all(|s| s.step == 0 && s.m.iter().chain(&s.v).all(|&x| x == 0.0)));
        let w2 = var(&values(&w), &[2, 2]);
        let mut fresh = AdamW::new(vec![("w".into(), w2.clone())], cfg()).unwrap();
        opt.step(&grads(&[(&w, &G[1])]), 0.1).unwrap();
        fresh.step(&grads(&[(&w2, &G[1])]), 0.1).unwrap();
        assert_eq!(values(&w), values(&w2));
    }

    /// The same update as a chain of candle tensor ops, for comparison and timing.
    fn step_with_tensor_ops(p: &Var, g: &Tensor, m: &mut Tensor, v: &mut Tensor, t: i32, lr: f64) {
        let c = cfg();
        *m = (m.affine(c.beta1, 0.0).unwrap() + g.affine(1.0 - c.beta1, 0.0).unwrap()).unwrap();
        *v =
            (v.affine(c.beta2, 0.0).unwrap() + g.sqr().unwrap().affine(1.0 - c.beta2, 0.0).unwrap()).unwrap();
        let denom = v.sqrt().unwrap().affine(1.0 / (1.0 - c.beta2.powi(t)).sqrt(), c.eps).unwrap();
        let upd = (&*m / denom).unwrap().affine(lr / (1.0 - c.beta1.powi(t)), 0.0).unwrap();
        p.set(&(p.affine(1.0 - lr * c.weight_decay, 0.0).unwrap() - upd).unwrap()).unwrap();
    }

    /// Best of 5 rounds of 200 steps, in microseconds per step.
    fn us_per_step(mut step: impl FnMut(i32)) -> f64 {
        let mut best = f64::MAX;
        for round in 0..5 {
            let t0 = std::time::Instant::now();
            (1..=200).for_each(|t| step(200 * round + t));
            best = best.min(t0.elapsed().as_secs_f64() * 1e6 / 200.0);
        }
        best
    }

    /// `cargo test --release -p tinylab-train -- --ignored --nocapture bench_adamw`
    #[test]
    #[ignore]
    fn bench_adamw() {
        let shapes = [(64, 64), (256, 64), (64, 256), (64, 64)];
        let mk = |(r, c): (usize, usize), s: f32| {
            var(&(0..r * c).map(|i| (i as f32 * 0.37 + s).sin()).collect::<Vec<_>>(), &[r, c])
        };
        let ps: Vec<Var> = shapes.iter().enumerate().map(|(i, &s)| mk(s, i as f32)).collect();
        let mut store = GradStore::default();
        for (i, p) in ps.iter().enumerate() {
            store.insert(p, mk(shapes[i], 10.0 + i as f32).as_detached_tensor());
        }
        let named = ps.iter().enumerate().map(|(i, p)| (format!("p{i}"), p.clone())).collect();
        let mut opt = AdamW::new(named, cfg()).unwrap();
        let host = us_per_step(|_| opt.step(&store, 1e-3).unwrap());
        let mut ms: Vec<Tensor> = ps.iter().map(|p| p.zeros_like().unwrap()).collect();
        let mut vs = ms.clone();
        let ops = us_per_step(|t| {
            for (i, p) in ps.iter().enumerate() {
                step_with_tensor_ops(p, store.get(p).unwrap(), &mut ms[i], &mut vs[i], t, 1e-3);
            }
        });
        println!("AdamW {shapes:?}: fused host loop {host:.1} us/step, candle ops {ops:.1} us/step");
    }

    #[test]
    fn fused_loop_agrees_with_tensor_ops() {
        let w = var(&[0.5, -1.5, 2.0, 0.0], &[2, 2]);
        let w2 = var(&values(&w), &[2, 2]);
        let mut opt = AdamW::new(vec![("w".into(), w.clone())], cfg()).unwrap();
        let (mut m, mut v) = (w.zeros_like().unwrap(), w.zeros_like().unwrap());
        for (t, (g, lr)) in G.iter().zip(LR).enumerate() {
            let store = grads(&[(&w, g)]);
            opt.step(&store, lr).unwrap();
            step_with_tensor_ops(&w2, store.get(&w).unwrap(), &mut m, &mut v, t as i32 + 1, lr);
        }
        for (a, b) in values(&w).iter().zip(values(&w2)) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }

    #[test]
    fn weight_decay_skips_vectors_unless_asked() {
        for decay_vectors in [false, true] {
            let mat = var(&[1.0, 1.0, 1.0, 1.0], &[2, 2]);
            let vec1 = var(&[1.0, 1.0], &[2]);
            let c = AdamWConfig { weight_decay: 0.1, decay_vectors, ..AdamWConfig::default() };
            let mut opt = AdamW::new(vec![("m".into(), mat.clone()), ("v".into(), vec1.clone())], c).unwrap();
            opt.step(&grads(&[(&mat, &[0.0; 4]), (&vec1, &[0.0; 2])]), 0.1).unwrap();
            assert!((values(&mat)[0] - 0.99).abs() < 1e-7, "matrices are always decayed");
            let expect = if decay_vectors { 0.99 } else { 1.0 };
            assert!((values(&vec1)[0] - expect).abs() < 1e-7, "decay_vectors={decay_vectors}");
        }
    }
}
