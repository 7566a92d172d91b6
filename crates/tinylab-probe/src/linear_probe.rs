//! Linear probes from activations `X` `[n, d]` (one row per example, e.g. a residual-stream
//! vector at one position) to labels: closed-form ridge regression (R²) and L2-regularized
//! multiclass logistic regression (accuracy). Everything is deterministic: splits come from a
//! seeded ChaCha8 permutation and the logistic fit is a full-batch method with no randomness.
#![warn(missing_docs)]

use ndarray::{Array1, Array2, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{ProbeError, Result};
use crate::linalg;

/// A seeded uniform random permutation of `0..n` (Fisher–Yates over ChaCha8; e.g. to build a
/// shuffled-label control: `labels[perm[i]]`).
pub fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut p: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        p.swap(i, rng.gen_range(0..=i));
    }
    p
}

/// Row indices of a train/test split, each sorted ascending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// Rows used to fit.
    pub train: Vec<usize>,
    /// Held-out rows used only to evaluate.
    pub test: Vec<usize>,
}

/// Splits `0..n` into `round(n · test_fraction)` test rows (at least 1, at most `n − 1`) and
/// the rest, by the seeded [`permutation`]. Needs `n ≥ 2` and `0 < test_fraction < 1`.
pub fn train_test_split(n: usize, test_fraction: f64, seed: u64) -> Result<Split> {
    if n < 2 || !(test_fraction > 0.0 && test_fraction < 1.0) {
        return Err(ProbeError::InvalidArgument(format!(
            "train_test_split needs n ≥ 2 and 0 < test_fraction < 1 (got n = {n}, {test_fraction})"
        )));
    }
    let n_test = ((n as f64 * test_fraction).round() as usize).clamp(1, n - 1);
    let p = permutation(n, seed);
    let (mut test, mut train) = (p[..n_test].to_vec(), p[n_test..].to_vec());
    test.sort_unstable();
    train.sort_unstable();
    Ok(Split { train, test })
}

fn check_rows(what: &str, x: &Array2<f64>, n: usize, split: &Split) -> Result<()> {
    if x.nrows() != n {
        return Err(ProbeError::Shape(format!("{what}: {} feature rows but {n} targets", x.nrows())));
    }
    if let Some(&i) = split.train.iter().chain(&split.test).find(|&&i| i >= n) {
        return Err(ProbeError::InvalidArgument(format!("{what}: split index {i} ≥ {n} rows")));
    }
    if split.train.is_empty() || split.test.is_empty() {
        return Err(ProbeError::InvalidArgument(format!("{what}: empty train or test set")));
    }
    Ok(())
}

fn check_features(d: usize, x: &Array2<f64>) -> Result<()> {
    if x.ncols() != d {
        return Err(ProbeError::Shape(format!("probe fitted on {d} features, got {}", x.ncols())));
    }
    Ok(())
}

/// Coefficient of determination `R² = 1 − Σ(y − ŷ)² / Σ(y − ȳ)²` over all entries of
/// `y` `[n, k]`, `ȳ` the per-column mean of `y_true` (multi-output sums are pooled, i.e.
/// variance-weighted). 1 is perfect, 0 is "predict the mean", negative is worse; NaN if `y_true`
/// is constant.
pub fn r_squared(y_true: &Array2<f64>, y_pred: &Array2<f64>) -> Result<f64> {
    if y_true.dim() != y_pred.dim() || y_true.nrows() == 0 {
        return Err(ProbeError::Shape(format!("r_squared of {:?} and {:?}", y_true.dim(), y_pred.dim())));
    }
    let mean = y_true.mean_axis(Axis(0)).expect("non-empty");
    let sst: f64 = (y_true - &mean).iter().map(|x| x * x).sum();
    let sse: f64 = (y_true - y_pred).iter().map(|x| x * x).sum();
    Ok(1.0 - sse / sst)
}

/// A fitted ridge regression `ŷ = x · W + b`.
#[derive(Debug, Clone, PartialEq)]
pub struct RidgeProbe {
    /// `W` `[d, k]`, in the units of the raw features.
    pub weights: Array2<f64>,
    /// `b` `[k]` (not penalized).
    pub bias: Array1<f64>,
}

impl RidgeProbe {
    /// Minimizes `‖X W + 1 bᵀ − Y‖²_F + λ ‖W‖²_F` for `X` `[n, d]`, `Y` `[n, k]`, `λ ≥ 0`, in
    /// closed form: centre `X` and `Y`, `W = (XcᵀXc + λI)⁻¹ XcᵀYc` (via the SVD; `λ = 0` is the
    /// minimum-norm least-squares fit), `b = ȳ − x̄ W`. Features are not standardized, so `λ`
    /// is in squared feature units.
    pub fn fit(x: &Array2<f64>, y: &Array2<f64>, lambda: f64) -> Result<Self> {
        if x.nrows() != y.nrows() || x.nrows() == 0 {
            return Err(ProbeError::Shape(format!("ridge fit: X {:?}, Y {:?}", x.dim(), y.dim())));
        }
        let (xm, ym) = (x.mean_axis(Axis(0)).expect("rows"), y.mean_axis(Axis(0)).expect("rows"));
        let weights = linalg::ridge_solve(&(x - &xm), &(y - &ym), lambda)?;
        let bias = &ym - &xm.dot(&weights);
        Ok(Self { weights, bias })
    }

    /// `X · W + b` `[n, k]` for `X` `[n, d]`.
    pub fn predict(&self, x: &Array2<f64>) -> Result<Array2<f64>> {
        check_features(self.weights.nrows(), x)?;
        Ok(x.dot(&self.weights) + &self.bias)
    }
}

/// A ridge probe and how well it fits.
#[derive(Debug, Clone, PartialEq)]
pub struct RidgeReport {
    /// The probe fitted on the training rows.
    pub probe: RidgeProbe,
    /// [`r_squared`] on the training rows.
    pub train_r2: f64,
    /// [`r_squared`] on the held-out rows (the number to report).
    pub test_r2: f64,
    /// Number of training rows.
    pub n_train: usize,
    /// Number of test rows.
    pub n_test: usize,
}

/// Fits a [`RidgeProbe`] from `x` `[n, d]` to targets `y` `[n, k]` on `split.train` and
/// reports R² on both sides of the split.
pub fn ridge_probe(x: &Array2<f64>, y: &Array2<f64>, lambda: f64, split: &Split) -> Result<RidgeReport> {
    check_rows("ridge_probe", x, y.nrows(), split)?;
    let (xtr, ytr) = (x.select(Axis(0), &split.train), y.select(Axis(0), &split.train));
    let (xte, yte) = (x.select(Axis(0), &split.test), y.select(Axis(0), &split.test));
    let probe = RidgeProbe::fit(&xtr, &ytr, lambda)?;
    Ok(RidgeReport {
        train_r2: r_squared(&ytr, &probe.predict(&xtr)?)?,
        test_r2: r_squared(&yte, &probe.predict(&xte)?)?,
        probe,
        n_train: split.train.len(),
        n_test: split.test.len(),
    })
}

#[path = "logistic.rs"]
mod logistic;
pub use logistic::{logistic_probe, ClassifierReport, LogisticConfig, LogisticProbe};

#[cfg(test)]
#[path = "linear_probe_tests.rs"]
mod tests;
