//! Multiclass (softmax) logistic-regression probe, L2-regularized, fitted by accelerated
//! full-batch gradient descent with a fixed step (deterministic; no line search, no sampling).

use ndarray::{Array1, Array2, Axis, Zip};

use super::{check_features, check_rows, Split};
use crate::error::{ProbeError, Result};
use crate::linalg;

/// Settings of [`LogisticProbe::fit`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogisticConfig {
    /// L2 penalty `λ` on the weights (not the biases), in standardized-feature units; `> 0`
    /// makes the objective strongly convex in `W`, so the optimum is unique even for separable
    /// data.
    pub l2: f64,
    /// Iteration budget (each iteration is one full-batch gradient, `O(n · d · C)`).
    pub max_iter: usize,
    /// Stop once every gradient entry is below this in absolute value.
    pub tol: f64,
}

impl Default for LogisticConfig {
    /// `λ = 1e-3`, 500 iterations, `tol = 1e-7`.
    fn default() -> Self {
        Self { l2: 1e-3, max_iter: 500, tol: 1e-7 }
    }
}

/// A fitted softmax classifier on standardized features:
/// `logits = ((x − μ) / s) · W + b`, class = argmax.
#[derive(Debug, Clone, PartialEq)]
pub struct LogisticProbe {
    /// Training mean `μ` `[d]` of each feature.
    pub mean: Array1<f64>,
    /// Training standard deviation `s` `[d]` of each feature (1 for constant features).
    pub scale: Array1<f64>,
    /// `W` `[d, C]` on standardized features.
    pub weights: Array2<f64>,
    /// `b` `[C]`.
    pub bias: Array1<f64>,
    /// Gradient iterations used.
    pub iterations: usize,
    /// Whether the gradient tolerance was met within `max_iter`.
    pub converged: bool,
}

fn softmax_rows(logits: &mut Array2<f64>) {
    for mut row in logits.rows_mut() {
        let m = row.fold(f64::NEG_INFINITY, |a, &b| a.max(b));
        row.mapv_inplace(|v| (v - m).exp());
        let s = row.sum();
        row.mapv_inplace(|v| v / s);
    }
}

impl LogisticProbe {
    /// Minimizes `(1/n) Σᵢ −ln softmax(zᵢ W + b)[yᵢ] + (λ/2) ‖W‖²_F` over `W` `[d, C]`, `b`
    /// `[C]`, where `zᵢ` is row `i` of `x` `[n, d]` standardized with the training mean and
    /// standard deviation, and `yᵢ = labels[i] < n_classes`.
    ///
    /// Method: FISTA (Nesterov-accelerated gradient) from zero with the fixed step `1/L`,
    /// `L = ‖[Z, 1]‖₂² / (2n) + λ` — a bound on the Hessian, since the softmax cross-entropy's
    /// Hessian in the logits is `≼ ½ I` (Böhning 1992) — and O'Donoghue & Candès's gradient
    /// restart of the momentum. At most `max_iter` iterations; the result depends only on the
    /// inputs.
    pub fn fit(x: &Array2<f64>, labels: &[usize], n_classes: usize, cfg: &LogisticConfig) -> Result<Self> {
        let (n, d) = x.dim();
        if n == 0 || labels.len() != n {
            return Err(ProbeError::Shape(format!("logistic fit: X {:?}, {} labels", x.dim(), labels.len())));
        }
        if n_classes < 2 || labels.iter().any(|&y| y >= n_classes) {
            return Err(ProbeError::InvalidArgument(format!(
                "labels must lie in 0..{n_classes} (n_classes ≥ 2)"
            )));
        }
        if !(cfg.l2 >= 0.0 && cfg.l2.is_finite()) {
            return Err(ProbeError::InvalidArgument(format!("l2 must be finite and ≥ 0, got {}", cfg.l2)));
        }
        let mean = x.mean_axis(Axis(0)).expect("rows");
        let scale = x.std_axis(Axis(0), 0.0).mapv(|s| if s > 1e-12 { s } else { 1.0 });
        let z = (x - &mean) / &scale;
        let mut onehot = Array2::<f64>::zeros((n, n_classes));
        for (i, &y) in labels.iter().enumerate() {
            onehot[[i, y]] = 1.0;
        }
        let mut aug = Array2::<f64>::ones((n, d + 1));
        aug.slice_mut(ndarray::s![.., ..d]).assign(&z);
        let lipschitz = linalg::spectral_norm(&aug)?.powi(2) / (2.0 * n as f64) + cfg.l2;
        let step = 1.0 / lipschitz;

        // Gradient of the objective at (W, b).
        let grad = |w: &Array2<f64>, b: &Array1<f64>| -> (Array2<f64>, Array1<f64>) {
            let mut p = z.dot(w) + b;
            softmax_rows(&mut p);
            let g = (p - &onehot) / n as f64;
            (z.t().dot(&g) + w * cfg.l2, g.sum_axis(Axis(0)))
        };
        let (mut w, mut b) = (Array2::<f64>::zeros((d, n_classes)), Array1::<f64>::zeros(n_classes));
        let (mut yw, mut yb) = (w.clone(), b.clone());
        let mut t = 1.0f64;
        let (mut iterations, mut converged) = (0, false);
        while iterations < cfg.max_iter {
            let (gw, gb) = grad(&yw, &yb);
            let gmax = gw.iter().chain(gb.iter()).fold(0.0f64, |m, v| m.max(v.abs()));
            if gmax < cfg.tol {
                (w, b, converged) = (yw, yb, true);
                break;
            }
            iterations += 1;
            let w_new = &yw - &(&gw * step);
            let b_new = &yb - &(&gb * step);
            // Restart when the momentum points uphill: ⟨∇f(y), x_new − x⟩ > 0.
            let uphill = Zip::from(&gw).and(&w_new).and(&w).fold(0.0, |acc, g, a, o| acc + g * (a - o))
                + Zip::from(&gb).and(&b_new).and(&b).fold(0.0, |acc, g, a, o| acc + g * (a - o));
            if uphill > 0.0 {
                t = 1.0;
            }
            let t_new = (1.0 + (1.0 + 4.0 * t * t).sqrt()) / 2.0;
            let beta = (t - 1.0) / t_new;
            yw = &w_new + &((&w_new - &w) * beta);
            yb = &b_new + &((&b_new - &b) * beta);
            (w, b, t) = (w_new, b_new, t_new);
        }
        Ok(Self { mean, scale, weights: w, bias: b, iterations, converged })
    }

    /// Number of classes `C`.
    pub fn n_classes(&self) -> usize {
        self.bias.len()
    }

    /// The same classifier on raw features: `(W_raw [d, C], b_raw [C])` with
    /// `logits = x · W_raw + b_raw`, `W_raw = W / s` (row-wise), `b_raw = b − (μ / s) · W`.
    /// Row `j` of `W_raw` is how feature `j` (e.g. residual direction `j`) votes for each class.
    pub fn raw_weights(&self) -> (Array2<f64>, Array1<f64>) {
        let inv = self.scale.mapv(|s| 1.0 / s).insert_axis(Axis(1));
        let w_raw = &self.weights * &inv;
        let b_raw = &self.bias - &self.mean.dot(&w_raw);
        (w_raw, b_raw)
    }

    /// Logits `[n, C]` for raw features `x` `[n, d]`.
    pub fn logits(&self, x: &Array2<f64>) -> Result<Array2<f64>> {
        check_features(self.mean.len(), x)?;
        Ok(((x - &self.mean) / &self.scale).dot(&self.weights) + &self.bias)
    }

    /// Class probabilities `[n, C]` (rows sum to 1).
    pub fn predict_proba(&self, x: &Array2<f64>) -> Result<Array2<f64>> {
        let mut p = self.logits(x)?;
        softmax_rows(&mut p);
        Ok(p)
    }

    /// The most likely class of each row (lowest index on ties).
    pub fn predict(&self, x: &Array2<f64>) -> Result<Vec<usize>> {
        Ok(self
            .logits(x)?
            .rows()
            .into_iter()
            .map(|r| r.iter().enumerate().fold(0, |best, (c, &v)| if v > r[best] { c } else { best }))
            .collect())
    }

    /// Fraction of rows of `x` whose predicted class equals `labels`.
    pub fn accuracy(&self, x: &Array2<f64>, labels: &[usize]) -> Result<f64> {
        if labels.len() != x.nrows() || labels.is_empty() {
            return Err(ProbeError::Shape(format!("{} labels for {} rows", labels.len(), x.nrows())));
        }
        let pred = self.predict(x)?;
        Ok(pred.iter().zip(labels).filter(|(p, y)| p == y).count() as f64 / labels.len() as f64)
    }
}

/// A classification probe and how well it does.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassifierReport {
    /// The probe fitted on the training rows.
    pub probe: LogisticProbe,
    /// Accuracy on the training rows.
    pub train_accuracy: f64,
    /// Accuracy on the held-out rows (the number to report).
    pub test_accuracy: f64,
    /// Test accuracy of always answering the most frequent training class: the chance level a
    /// probe must beat.
    pub majority_baseline: f64,
    /// Number of training rows.
    pub n_train: usize,
    /// Number of test rows.
    pub n_test: usize,
}

/// Fits a [`LogisticProbe`] from `x` `[n, d]` to `labels` (`< n_classes`) on `split.train` and
/// reports train/test accuracy and the majority-class baseline.
pub fn logistic_probe(
    x: &Array2<f64>,
    labels: &[usize],
    n_classes: usize,
    cfg: &LogisticConfig,
    split: &Split,
) -> Result<ClassifierReport> {
    check_rows("logistic_probe", x, labels.len(), split)?;
    if let Some(&y) = labels.iter().find(|&&y| y >= n_classes) {
        return Err(ProbeError::InvalidArgument(format!("label {y} is not in 0..{n_classes}")));
    }
    let pick = |idx: &[usize]| -> (Array2<f64>, Vec<usize>) {
        (x.select(Axis(0), idx), idx.iter().map(|&i| labels[i]).collect())
    };
    let ((xtr, ytr), (xte, yte)) = (pick(&split.train), pick(&split.test));
    let probe = LogisticProbe::fit(&xtr, &ytr, n_classes, cfg)?;
    let mut counts = vec![0usize; n_classes];
    ytr.iter().for_each(|&y| counts[y] += 1);
    let majority = (0..n_classes).fold(0, |best, c| if counts[c] > counts[best] { c } else { best });
    Ok(ClassifierReport {
        train_accuracy: probe.accuracy(&xtr, &ytr)?,
        test_accuracy: probe.accuracy(&xte, &yte)?,
        majority_baseline: yte.iter().filter(|&&y| y == majority).count() as f64 / yte.len() as f64,
        probe,
        n_train: ytr.len(),
        n_test: yte.len(),
    })
}
