//! In-context linear regression with continuous tokens, in the layout of google-research's
//! `transformers_learn_icl_by_gd/src/data.py::create_reg_data` (von Oswald et al., 2023) and of
//! Mahankali, Hashimoto & Ma (2023, "One step of gradient descent is provably the optimal
//! in-context learner with one layer of linear self-attention").

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::config::ensure;
use crate::{Batch, Task, TaskError, TaskRng};

/// Distribution of the covariates `x_i` and of the query `x_q`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Covariates {
    /// `x ~ N(0, Σ)` with a diagonal `Σ` (`cov_diag`, `cov_condition`; identity by default), as
    /// in Mahankali et al.
    #[default]
    Gaussian,
    /// `x ~ U(−input_range/2, input_range/2)^d`, as in google-research's `create_reg_data`
    /// (`input_range = 1` in its notebooks).
    Uniform,
}

/// Distribution of the task vector `w`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WeightPrior {
    /// `w ~ N(0, I)` (google-research, `w_scale = 1`; Mahankali's isotropic setting).
    #[default]
    Isotropic,
    /// `w ~ N(0, Σ⁻¹)`, Mahankali et al.'s non-isotropic setting (covariates and weight vector
    /// both non-isotropic): whitening `x' = Σ^{-1/2} x`, `w' = Σ^{1/2} w` maps it to the
    /// isotropic problem, so the optimal one-step predictor is GD preconditioned by `Σ⁻¹`.
    InverseCovariance,
}

/// Sizes and distributions of a [`LinearRegression`] task (`kind = "linear_regression"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinearRegressionConfig {
    /// Input dimension `d` (default 10, google-research's `input_size`).
    pub dim: usize,
    /// Number of context points `N` (default 10, google-research's `dataset_size`).
    pub num_points: usize,
    /// Covariate distribution.
    pub covariates: Covariates,
    /// Gaussian only: the `d` variances of a diagonal `Σ` (empty: use `cov_condition`).
    pub cov_diag: Vec<f64>,
    /// Gaussian only, when `cov_diag` is empty: a geometric spectrum `λ_j = κ^{-j/(d-1)}`,
    /// `j = 0..d`, from 1 down to `1/κ` (default `κ = 1`: `Σ = I`).
    pub cov_condition: f64,
    /// Distribution of `w`.
    pub weight_prior: WeightPrior,
    /// Uniform only: width of the interval (default 1, i.e. `U(−½, ½)`).
    pub input_range: f64,
    /// Standard deviation of Gaussian label noise on every `y` (default 0).
    pub noise_std: f64,
}

impl Default for LinearRegressionConfig {
    fn default() -> Self {
        Self {
            dim: 10,
            num_points: 10,
            covariates: Covariates::Gaussian,
            cov_diag: Vec::new(),
            cov_condition: 1.0,
            weight_prior: WeightPrior::Isotropic,
            input_range: 1.0,
            noise_std: 0.0,
        }
    }
}

/// In-context linear regression: `N` context tokens `z_i = (x_i, y_i) ∈ R^{d+1}` with
/// `y_i = w·x_i (+ noise)`, then the query token `(x_q, 0)`; the target is `y_q = w·x_q`.
/// A fresh `w` per sequence.
///
/// Continuous task: [`Task::num_features`] is `F = d + 1`, `vocab_size` is 0. A batch holds
/// `features` `[B, T, F]` with `T = N + 1`, every `inputs` entry 0, `targets` [`IGNORE`]
/// except 0 at the query (last) position, and `values[b, T-1] = y_q`.
///
/// Draw order per sequence (fixed, for seeding): `w` (d normals), then per context point `x_i`
/// (d draws) and its noise (one normal, only if `noise_std > 0`), then `x_q` and its noise.
/// Normals come from Box–Muller on the ChaCha8 stream.
///
/// # Example
/// `dim = 2, num_points = 3`, Gaussian (seed 0; pinned in the tests, 2 decimals):
/// ```text
/// pos  x_1    x_2    y      target
/// 0   -1.96   1.73   5.49
/// 1    1.02   0.27  -1.19
/// 2   -0.72  -1.06  -0.42
/// 3   -0.59   1.04   0      y_q = 2.40
/// ```
///
/// [`Task::reference_predictions`] gives the optimal one-step GD predictor from `w₀ = 0`,
/// `ŷ = x_qᵀ Γ (1/N) Σ_i y_i x_i`, with the preconditioner [`LinearRegression::gd_preconditioner`].
#[derive(Debug, Clone)]
pub struct LinearRegression {
    cfg: LinearRegressionConfig,
    /// Per-coordinate variance `λ_j` of `x`.
    var: Vec<f64>,
}

/// One standard normal by Box–Muller (two uniforms per draw, the second output discarded,
/// so that the stream position does not depend on parity).
fn normal(rng: &mut TaskRng) -> f64 {
    let u1: f64 = 1.0 - rng.gen::<f64>(); // (0, 1]
    let u2: f64 = rng.gen::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

impl LinearRegression {
    /// Validates `cfg` and builds the task.
    ///
    /// # Errors
    /// `dim` or `num_points` 0; `cov_diag` not of length `dim` or not all > 0; `cov_condition`
    /// < 1; a covariance with uniform covariates; `input_range` ≤ 0; `noise_std` < 0.
    pub fn new(cfg: LinearRegressionConfig) -> Result<Self, TaskError> {
        let d = cfg.dim;
        ensure(d >= 1, "dim", || "must be ≥ 1".into())?;
        ensure(cfg.num_points >= 1, "num_points", || "must be ≥ 1".into())?;
        ensure(cfg.cov_diag.is_empty() || cfg.cov_diag.len() == d, "cov_diag", || {
            format!("has {} entries; need dim = {d} variances (or none)", cfg.cov_diag.len())
        })?;
        ensure(cfg.cov_diag.iter().all(|v| v.is_finite() && *v > 0.0), "cov_diag", || {
            "every variance must be a finite number > 0".into()
        })?;
        ensure(cfg.cov_condition.is_finite() && cfg.cov_condition >= 1.0, "cov_condition", || {
            format!("{} is not allowed; need a finite number ≥ 1 (1 = identity)", cfg.cov_condition)
        })?;
        ensure(!(cfg.cov_diag.len() == d && cfg.cov_condition != 1.0), "cov_condition", || {
            "give either cov_diag or cov_condition, not both".into()
        })?;
        let isotropic = cfg.cov_diag.is_empty() && cfg.cov_condition == 1.0;
        ensure(cfg.covariates == Covariates::Gaussian || isotropic, "covariates", || {
            "a covariance (cov_diag, cov_condition) needs covariates = \"gaussian\"".into()
        })?;
        ensure(cfg.input_range.is_finite() && cfg.input_range > 0.0, "input_range", || {
            "must be a finite number > 0".into()
        })?;
        ensure(cfg.noise_std.is_finite() && cfg.noise_std >= 0.0, "noise_std", || {
            "must be a finite number ≥ 0".into()
        })?;
        let var = match cfg.covariates {
            Covariates::Uniform => vec![cfg.input_range * cfg.input_range / 12.0; d],
            Covariates::Gaussian if !cfg.cov_diag.is_empty() => cfg.cov_diag.clone(),
            Covariates::Gaussian => (0..d)
                .map(|j| if d == 1 { 1.0 } else { cfg.cov_condition.powf(-(j as f64) / (d - 1) as f64) })
                .collect(),
        };
        Ok(Self { cfg, var })
    }

    /// The validated configuration.
    pub fn config(&self) -> &LinearRegressionConfig {
        &self.cfg
    }

    /// The diagonal of the covariate covariance `Σ`.
    pub fn covariance_diag(&self) -> &[f64] {
        &self.var
    }

    /// The diagonal of the prior covariance `Ω` of `w`.
    pub fn weight_prior_diag(&self) -> Vec<f64> {
        match self.cfg.weight_prior {
            WeightPrior::Isotropic => vec![1.0; self.cfg.dim],
            WeightPrior::InverseCovariance => self.var.iter().map(|v| 1.0 / v).collect(),
        }
    }

    /// `η* = N/(N+d+1)`: Mahankali et al.'s optimal step of one-step GD for `x ~ N(0, I)`,
    /// `w ~ N(0, I)`, no noise.
    pub fn eta_star(&self) -> f64 {
        let (n, d) = (self.cfg.num_points as f64, self.cfg.dim as f64);
        n / (n + d + 1.0)
    }

    /// Diagonal of the preconditioner `Γ` of the optimal one-step GD predictor
    /// `ŷ = x_qᵀ Γ (1/N) Xᵀy` (the minimizer of the expected squared error over all `Γ`).
    ///
    /// With `S = XᵀX/N`, the loss is `tr(ΣΩ) − 2 tr(ΣΓΣΩ) + tr(ΣΓBΓᵀ) + (σ²/N) tr(ΣΓΣΓᵀ) + σ²`
    /// with `B = E[SΩS]`, minimized by `Γ = ΩΣ (B + σ²Σ/N)⁻¹`. Gaussian covariates (Wishart
    /// moments): `B = ((N+1)/N) ΣΩΣ + (tr(ΩΣ)/N) Σ`, so for diagonal `Σ, Ω`
    /// `Γ_j = N ω_j / ((N+1) λ_j ω_j + tr(ΩΣ) + σ²)`, which is `N/(N+d+1)` for `Σ = Ω = I`
    /// (Mahankali et al.'s η*) and `N/(N+d+1) · Σ⁻¹` for `Ω = Σ⁻¹`. Uniform covariates (i.i.d.
    /// coordinates, variance `s`, fourth moment `m₄ = r⁴/80`): `B = ((N+d−2)s² + m₄)/N · I`, so
    /// `Γ = N s / ((N+d−2) s² + m₄ + σ² s) · I`.
    pub fn gd_preconditioner(&self) -> Vec<f64> {
        let n = self.cfg.num_points as f64;
        let d = self.cfg.dim as f64;
        let s2 = self.cfg.noise_std * self.cfg.noise_std;
        match self.cfg.covariates {
            Covariates::Gaussian => {
                let omega = self.weight_prior_diag();
                let tr: f64 = omega.iter().zip(&self.var).map(|(o, l)| o * l).sum();
                omega.iter().zip(&self.var).map(|(o, l)| n * o / ((n + 1.0) * l * o + tr + s2)).collect()
            }
            Covariates::Uniform => {
                let r = self.cfg.input_range;
                let (s, m4) = (r * r / 12.0, r.powi(4) / 80.0);
                vec![n * s / ((n + d - 2.0) * s * s + m4 + s2 * s); self.cfg.dim]
            }
        }
    }

    fn draw_x(&self, rng: &mut TaskRng, out: &mut [f32]) {
        let half = self.cfg.input_range / 2.0;
        for (j, x) in out.iter_mut().enumerate() {
            *x = match self.cfg.covariates {
                Covariates::Gaussian => (self.var[j].sqrt() * normal(rng)) as f32,
                Covariates::Uniform => rng.gen_range(-half..half) as f32,
            };
        }
    }
}

impl Task for LinearRegression {
    fn name(&self) -> &'static str {
        "linear_regression"
    }

    fn vocab_size(&self) -> usize {
        0
    }

    fn seq_len(&self) -> usize {
        self.cfg.num_points + 1
    }

    fn num_features(&self) -> usize {
        self.cfg.dim + 1
    }

    fn generate(&self, rng: &mut TaskRng, batch_size: usize) -> Batch {
        let (d, t) = (self.cfg.dim, self.seq_len());
        let f = d + 1;
        let omega = self.weight_prior_diag();
        let mut batch = Batch::continuous(batch_size, t, f);
        let mut w = vec![0f64; d];
        for b in 0..batch_size {
            for (wj, o) in w.iter_mut().zip(&omega) {
                *wj = o.sqrt() * normal(rng);
            }
            let rows = &mut batch.features[b * t * f..(b + 1) * t * f];
            let mut y_q = 0.0;
            for (i, tok) in rows.chunks_mut(f).enumerate() {
                self.draw_x(rng, &mut tok[..d]);
                let mut y: f64 = tok[..d].iter().zip(&w).map(|(&x, w)| x as f64 * w).sum();
                if self.cfg.noise_std > 0.0 {
                    y += self.cfg.noise_std * normal(rng);
                }
                if i + 1 < t {
                    tok[d] = y as f32;
                } else {
                    y_q = y; // the query keeps y = 0 in its token
                }
            }
            batch.targets[b * t + t - 1] = 0;
            batch.values[b * t + t - 1] = y_q as f32;
        }
        batch
    }

    fn token_name(&self, token: u32) -> String {
        format!("?{token}")
    }

    fn reference_predictions(&self, batch: &Batch) -> Option<Vec<f64>> {
        let gamma = self.gd_preconditioner();
        Some(gd_predictions(batch, &gamma))
    }
}

/// One-step GD from `w₀ = 0` with a diagonal preconditioner, at the last position of every
/// sequence: `ŷ = x_qᵀ diag(γ) (1/N) Σ_{i<N} y_i x_i`, where the context is positions `0..T-1`
/// and the query is position `T-1` (features `(x, y)` with `y` last).
pub fn gd_predictions(batch: &Batch, gamma: &[f64]) -> Vec<f64> {
    let (t, f) = (batch.seq_len, batch.num_features);
    let d = f - 1;
    let n = (t - 1) as f64;
    (0..batch.batch_size)
        .map(|b| {
            let rows = batch.feature_row(b);
            let q = &rows[(t - 1) * f..(t - 1) * f + d];
            let mut grad = vec![0f64; d];
            for tok in rows[..(t - 1) * f].chunks(f) {
                let y = tok[d] as f64;
                for (g, &x) in grad.iter_mut().zip(&tok[..d]) {
                    *g += y * x as f64;
                }
            }
            q.iter().zip(&grad).zip(gamma).map(|((&x, g), c)| x as f64 * c * g / n).sum()
        })
        .collect()
}

#[cfg(test)]
#[path = "linear_regression_tests.rs"]
mod tests;
