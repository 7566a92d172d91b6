//! The selector model of the NTP paper (`MLayerAttn` with one layer, `identity_V`,
//! `cls_choice='iden'`, `loss_type='nll'`): the last token z = x_T attends over the context
//! with scores s_t = x_tᵀ W z, and the score of class c is the attention mass on the positions
//! holding token c. Loss: mean over sequences of −log(mass on the label + ε).
//!
//! Parameterisations: combined W (d × d) or factorised W = W_Kᵀ W_Q (both d × d, as
//! `factorize_W=True`). Gradients are analytic (tested against finite differences); training
//! is full-batch gradient descent, optionally normalised per parameter (g/‖g‖, as
//! `normalize_grad` in `train_utils.py`).

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::linalg::{axpy, dot, matmul, norm, outer, softmax, transpose};
use crate::tpg::Dataset;

/// `torch.finfo(float64).eps`, added inside the log as in `get_loss`.
pub const LOG_EPS: f64 = f64::EPSILON;

/// One training example: context tokens, the query token and the label.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Token ids attended over.
    pub ctx: Vec<usize>,
    /// Query token (the last token of the original sequence).
    pub query: usize,
    /// Label token.
    pub label: usize,
}

/// The samples of a data set: context = the whole sequence, query = its last token.
pub fn samples(ds: &Dataset) -> Vec<Sample> {
    (0..ds.seqs.len())
        .map(|i| Sample { ctx: ds.seqs[i].clone(), query: ds.last(i), label: ds.labels[i] })
        .collect()
}

/// Attention of the query over the context positions under the combined `w`.
pub fn attention(vocab: &[Vec<f64>], w: &[f64], s: &Sample) -> Vec<f64> {
    let d = vocab[0].len();
    let wz: Vec<f64> = (0..d).map(|a| dot(&w[a * d..(a + 1) * d], &vocab[s.query])).collect();
    let scores: Vec<f64> = s.ctx.iter().map(|&x| dot(&vocab[x], &wz)).collect();
    softmax(&scores)
}

/// Loss `Σ_i −log(p_i + ε) / norm_n` and its gradient with respect to the combined W.
pub fn loss_grad(vocab: &[Vec<f64>], w: &[f64], data: &[Sample], norm_n: usize) -> (f64, Vec<f64>) {
    let d = vocab[0].len();
    let mut g = vec![0.0; d * d];
    let mut loss = 0.0;
    for s in data {
        let a = attention(vocab, w, s);
        // Mass on the label (p) and off it (q = 1 − p, summed directly: near saturation
        // 1 − p would round to 0 or to noise of ~1e-16 and swamp the true gradient).
        let (mut p, mut q) = (0.0, 0.0);
        for (&x, v) in s.ctx.iter().zip(&a) {
            if x == s.label {
                p += v;
            } else {
                q += v;
            }
        }
        loss -= (p + LOG_EPS).ln();
        let mut u = vec![0.0; d];
        for (t, &x) in s.ctx.iter().enumerate() {
            // ∂/∂s_t of −log(p + ε) = −a_t (1[x_t = y] − p) / (p + ε).
            let gt = if x == s.label { -a[t] * q / (p + LOG_EPS) } else { a[t] * p / (p + LOG_EPS) };
            axpy(&mut u, gt, &vocab[x]);
        }
        axpy(&mut g, 1.0, &outer(&u, &vocab[s.query]));
    }
    let nn = norm_n as f64;
    g.iter_mut().for_each(|v| *v /= nn);
    (loss / nn, g)
}

/// How W is parameterised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Weights {
    /// One d × d matrix W (`factorize_W=False`, the notebooks' setting).
    #[default]
    Combined,
    /// W = W_Kᵀ W_Q with two d × d matrices.
    Factorized,
}

/// Trainable parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum Params {
    /// Combined W, row-major d × d.
    Combined(Vec<f64>),
    /// W_Q and W_K, row-major d × d each; W = W_Kᵀ W_Q.
    Factorized {
        /// W_Q.
        q: Vec<f64>,
        /// W_K.
        k: Vec<f64>,
    },
}

/// `nn.Linear`'s default initialisation: U(−1/√d, 1/√d) entries.
fn linear_init<R: Rng>(d: usize, rng: &mut R) -> Vec<f64> {
    let b = 1.0 / (d as f64).sqrt();
    (0..d * d).map(|_| rng.gen_range(-b..b)).collect()
}

impl Params {
    /// PyTorch-default random initialisation (`init='default'`), or zeros.
    pub fn init<R: Rng>(kind: Weights, d: usize, zero: bool, rng: &mut R) -> Self {
        let draw = |rng: &mut R| if zero { vec![0.0; d * d] } else { linear_init(d, rng) };
        match kind {
            Weights::Combined => Params::Combined(draw(rng)),
            Weights::Factorized => {
                let q = draw(rng);
                let k = draw(rng);
                Params::Factorized { q, k }
            }
        }
    }

    /// The combined matrix W.
    pub fn w(&self, d: usize) -> Vec<f64> {
        match self {
            Params::Combined(w) => w.clone(),
            Params::Factorized { q, k } => matmul(&transpose(k, d, d), q, d, d, d),
        }
    }

    /// Loss and the gradient of every parameter (same layout as the parameters).
    pub fn loss_grads(&self, vocab: &[Vec<f64>], data: &[Sample], norm_n: usize) -> (f64, Vec<Vec<f64>>) {
        let d = vocab[0].len();
        let (loss, g) = loss_grad(vocab, &self.w(d), data, norm_n);
        match self {
            Params::Combined(_) => (loss, vec![g]),
            Params::Factorized { q, k } => {
                // W = Kᵀ Q: dL/dQ = K G, dL/dK = Q Gᵀ.
                let gq = matmul(k, &g, d, d, d);
                let gk = matmul(q, &transpose(&g, d, d), d, d, d);
                (loss, vec![gq, gk])
            }
        }
    }

    fn tensors_mut(&mut self) -> Vec<&mut Vec<f64>> {
        match self {
            Params::Combined(w) => vec![w],
            Params::Factorized { q, k } => vec![q, k],
        }
    }

    /// One gradient step: each parameter moves by `lr·g/(‖g‖+ε)` when `normalized`, else
    /// `lr·g`. Returns the loss before the step and the gradient norm (all parameters).
    pub fn step(
        &mut self,
        vocab: &[Vec<f64>],
        data: &[Sample],
        norm_n: usize,
        lr: f64,
        normalized: bool,
    ) -> (f64, f64) {
        let (loss, grads) = self.loss_grads(vocab, data, norm_n);
        let gnorm = grads.iter().map(|g| dot(g, g)).sum::<f64>().sqrt();
        for (p, g) in self.tensors_mut().into_iter().zip(&grads) {
            let scale = if normalized { lr / (norm(g) + f64::EPSILON) } else { lr };
            axpy(p, -scale, g);
        }
        (loss, gnorm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tpg::{generate, DataConfig, Embedding, GraphKind};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn gradient_direction_survives_saturation() {
        // One sequence [y, o] with label y: the gradient is a_o (x_o − x_y) zᵀ · p/(p+ε), so its
        // direction must not change when W is scaled until 1 − p is far below 1e-16.
        let vocab = vec![vec![1.0, 0.0], vec![0.0, 1.0]];
        let data = [Sample { ctx: vec![0, 1], query: 1, label: 0 }];
        let w = |c: f64| vec![0.0, c, 0.0, 0.0]; // score of token 0 = c, of token 1 = 0
        let (_, g1) = loss_grad(&vocab, &w(5.0), &data, 1);
        let (_, g2) = loss_grad(&vocab, &w(60.0), &data, 1);
        assert!(attention(&vocab, &w(60.0), &data[0])[1] < 1e-25);
        let cos = crate::linalg::cosine(&g1, &g2);
        assert!(cos > 1.0 - 1e-12, "{cos}: {g1:?} vs {g2:?}");
    }

    #[test]
    #[allow(clippy::needless_range_loop)]
    fn gradients_match_finite_differences() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let cfg = DataConfig {
            n: 6,
            t: 4,
            k: 6,
            d: 5,
            embedding: Embedding::Random,
            rho: 0.5,
            graph: GraphKind::Any,
        };
        let ds = generate(&cfg, &mut rng).unwrap();
        let data = samples(&ds);
        for kind in [Weights::Combined, Weights::Factorized] {
            let p = Params::init(kind, 5, false, &mut rng);
            let (_, grads) = p.loss_grads(&ds.vocab, &data, 6);
            let h = 1e-6;
            for (pi, g) in grads.iter().enumerate() {
                for j in 0..25 {
                    let mut plus = p.clone();
                    let mut minus = p.clone();
                    plus.tensors_mut()[pi][j] += h;
                    minus.tensors_mut()[pi][j] -= h;
                    let fd = (plus.loss_grads(&ds.vocab, &data, 6).0
                        - minus.loss_grads(&ds.vocab, &data, 6).0)
                        / (2.0 * h);
                    assert!(
                        (fd - g[j]).abs() < 1e-7 * (1.0 + fd.abs()),
                        "{kind:?} p{pi}[{j}]: {fd} vs {}",
                        g[j]
                    );
                }
            }
        }
    }
}
