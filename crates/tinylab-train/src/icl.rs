//! Mechanism analysis of a one-layer linear self-attention (LSA) model trained on in-context
//! linear regression: does it implement one step of (preconditioned) gradient descent?
//!
//! Conventions. Our attention scores are `s · e_j W_QK e_iᵀ` (query `j`, key `i`, row vectors)
//! and the values are `e_i W_OV`; the papers write `e_iᵀ W_KQ e_j` and `W_PV e_i` (column
//! vectors), so `W_KQ = W_QKᵀ` and `W_PV = W_OVᵀ`. With `W_QK = [[A, ·], [·, ·]]` (x-block
//! `A`, `d×d`) and `W_OV` concentrated on its `(y, y)` entry `p`, the prediction read from the
//! query's y-slot is `ŷ = s p Σ_i (x_qᵀ A x_i) y_i`, i.e. one step of GD from `w₀ = 0` with
//! preconditioner `Γ_model = s N p A`: `ŷ = x_qᵀ Γ_model (1/N) Σ_i y_i x_i`.
//! (google-research's code reads `−y`; the sign of `p` is free, so nothing changes.)

use candle_core::{Result, Tensor, Var};
use tinylab_model::{ForwardOptions, Model, WeightsKind};
use tinylab_tasks::{gd_predictions, Batch, LinearRegression};

use crate::data::DeviceBatch;

/// `W_QK` and `W_OV` of layer 0, head 0, as dense `F×F` row-major matrices (products of the
/// factors when the weights are factorized).
pub fn lsa_matrices(model: &Model) -> Result<(Vec<f64>, Vec<f64>, usize)> {
    let p = model.params();
    let head0 = |name: &str| -> Result<Tensor> { p.get(&format!("blocks.0.attn.{name}")).get(0) };
    let (qk, ov) = match model.config().weights {
        WeightsKind::Combined => (head0("W_QK")?, head0("W_OV")?),
        WeightsKind::Factorized => {
            let (q, k, v, o) = (head0("W_Q")?, head0("W_K")?, head0("W_V")?, head0("W_O")?);
            (q.matmul(&k.t()?)?, v.matmul(&o)?)
        }
    };
    let f = qk.dim(0)?;
    let flat = |t: Tensor| -> Result<Vec<f64>> {
        t.to_dtype(candle_core::DType::F64)?.flatten_all()?.to_vec1::<f64>()
    };
    Ok((flat(qk)?, flat(ov)?, f))
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (na * nb).max(f64::MIN_POSITIVE)
}

/// `‖m outside keep‖_F / ‖m‖_F` for an `f×f` matrix.
fn off_energy(m: &[f64], f: usize, keep: impl Fn(usize, usize) -> bool) -> f64 {
    let total: f64 = m.iter().map(|x| x * x).sum();
    let off: f64 = (0..f * f).filter(|&i| !keep(i / f, i % f)).map(|i| m[i] * m[i]).sum();
    (off / total.max(f64::MIN_POSITIVE)).sqrt()
}

/// The mechanism metrics of one model on one batch of the task, and the matrices for figures.
#[derive(Debug, Clone)]
pub struct IclReport {
    /// `(name, value)` scalars (see [`analyse`]).
    pub metrics: Vec<(String, f64)>,
    /// `W_KQ = W_QKᵀ`, `F×F` row-major (paper convention).
    pub w_kq: Vec<f64>,
    /// `W_PV = W_OVᵀ`, `F×F` row-major (paper convention).
    pub w_pv: Vec<f64>,
    /// The model's implied preconditioner `Γ_model = s N p A`, `d×d` row-major.
    pub gamma_model: Vec<f64>,
    /// The task's optimal preconditioner (diagonal).
    pub gamma_opt: Vec<f64>,
    /// Feature width `F = d + 1`.
    pub f: usize,
}

/// Analyses the LSA model against optimal one-step GD on `batch` (a batch of `task`).
///
/// Metrics:
/// * `kq_cos_identity`: cosine of the x-block of `W_KQ` with `I` (≈ c·I ⇒ 1), times the sign
///   of `p = W_PV[y, y]` (the pair's overall sign is a symmetry of the model);
/// * `kq_cos_precond`: cosine of that block with the task's optimal preconditioner `Γ`
///   (`∝ Σ⁻¹` for Mahankali's non-isotropic setting; equal to `kq_cos_identity` when `Γ ∝ I`);
/// * `kq_off_energy`: share of `‖W_KQ‖_F` outside the x-block;
/// * `pv_off_energy`: share of `‖W_PV‖_F` outside the `(y, y)` entry;
/// * `eta_implied`: `tr(Γ_model)/d`; `eta_opt`: `tr(Γ)/d`; `eta_star`: `N/(N+d+1)`;
///   `eta_ratio = eta_implied / eta_opt`;
/// * `sens_cos_gd`: mean over sequences of the cosine between `∂ŷ/∂x_q` of the model and of
///   optimal one-step GD (google-research's "model cos"); `sens_cos_plain_gd`: the same against
///   unpreconditioned GD (`Γ = I`); `sens_y_cos_gd`: the same for `∂ŷ/∂(y_1..y_N)`;
/// * `pred_rel_diff`: `‖ŷ_model − ŷ_GD‖ / ‖ŷ_GD‖`; `loss`, `gd_loss`, `loss_over_gd`: mean
///   squared errors on this batch.
pub fn analyse(model: &Model, task: &LinearRegression, batch: &Batch) -> Result<IclReport> {
    let (qk, ov, f) = lsa_matrices(model)?;
    let d = f - 1;
    let (t, bsz) = (batch.seq_len, batch.batch_size);
    let n = (t - 1) as f64;
    let s = model.config().score_scale();
    let p = ov[d * f + d];
    let a: Vec<f64> = (0..d * d).map(|i| qk[(i / d) * f + i % d]).collect();
    let gamma_model: Vec<f64> = a.iter().map(|x| s * n * p * x).collect();
    let gamma_opt = task.gd_preconditioner();
    let diag =
        |v: &[f64]| -> Vec<f64> { (0..d * d).map(|i| if i / d == i % d { v[i / d] } else { 0.0 }).collect() };
    let eye = diag(&vec![1.0; d]);
    let transpose = |m: &[f64]| -> Vec<f64> { (0..f * f).map(|i| m[(i % f) * f + i / f]).collect() };
    // (W_QK, W_OV) → (−W_QK, −W_OV) leaves the model unchanged, so c in W_KQ ≈ c·I may be
    // negative (google-research reads −y); the structure is compared in the gauge p > 0.
    let a_fixed: Vec<f64> = a.iter().map(|x| x * p.signum()).collect();
    let mut metrics = vec![
        ("kq_cos_identity".to_string(), cosine(&a_fixed, &eye)),
        ("kq_cos_precond".to_string(), cosine(&a_fixed, &diag(&gamma_opt))),
        ("kq_off_energy".to_string(), off_energy(&qk, f, |r, c| r < d && c < d)),
        ("pv_off_energy".to_string(), off_energy(&ov, f, |r, c| r == d && c == d)),
    ];
    let eta_implied = (0..d).map(|j| gamma_model[j * d + j]).sum::<f64>() / d as f64;
    let eta_opt = gamma_opt.iter().sum::<f64>() / d as f64;
    metrics.push(("eta_implied".into(), eta_implied));
    metrics.push(("eta_opt".into(), eta_opt));
    metrics.push(("eta_star".into(), task.eta_star()));
    metrics.push(("eta_ratio".into(), eta_implied / eta_opt));

    // Sensitivities of the prediction to the inputs, by autograd through the model.
    let db = DeviceBatch::new(batch, model.device())?;
    let x = Var::from_tensor(db.features.as_ref().expect("continuous batch"))?;
    let pred =
        model.forward_features(x.as_tensor(), ForwardOptions { select: Some(&db.select), hooks: None })?;
    let grads = pred.logits.sum_all()?.backward()?;
    let g = grads.get(x.as_tensor()).expect("input gradient").flatten_all()?.to_vec1::<f32>()?;
    let model_pred: Vec<f64> = pred.logits.to_dtype(candle_core::DType::F64)?.to_vec1()?;
    let gd_pred = gd_predictions(batch, &gamma_opt);
    let (mut cos_gd, mut cos_plain, mut cos_y) = (0.0, 0.0, 0.0);
    for b in 0..bsz {
        let rows = batch.feature_row(b);
        let gb = &g[b * t * f..(b + 1) * t * f];
        let model_xq: Vec<f64> = gb[(t - 1) * f..(t - 1) * f + d].iter().map(|&v| v as f64).collect();
        let model_y: Vec<f64> = (0..t - 1).map(|i| gb[i * f + d] as f64).collect();
        let mut xy = vec![0f64; d];
        for tok in rows[..(t - 1) * f].chunks(f) {
            for (acc, &xv) in xy.iter_mut().zip(&tok[..d]) {
                *acc += tok[d] as f64 * xv as f64 / n;
            }
        }
        let gd_xq: Vec<f64> = xy.iter().zip(&gamma_opt).map(|(v, c)| v * c).collect();
        let q = &rows[(t - 1) * f..(t - 1) * f + d];
        let gd_y: Vec<f64> = rows[..(t - 1) * f]
            .chunks(f)
            .map(|tok| (0..d).map(|j| q[j] as f64 * gamma_opt[j] * tok[j] as f64 / n).sum())
            .collect();
        cos_gd += cosine(&model_xq, &gd_xq);
        cos_plain += cosine(&model_xq, &xy);
        cos_y += cosine(&model_y, &gd_y);
    }
    let m = bsz.max(1) as f64;
    metrics.push(("sens_cos_gd".into(), cos_gd / m));
    metrics.push(("sens_cos_plain_gd".into(), cos_plain / m));
    metrics.push(("sens_y_cos_gd".into(), cos_y / m));
    let y: Vec<f64> = (0..bsz).map(|b| batch.value_row(b)[t - 1] as f64).collect();
    let sq = |u: &[f64], v: &[f64]| u.iter().zip(v).map(|(a, b)| (a - b).powi(2)).sum::<f64>();
    let norm = gd_pred.iter().map(|v| v * v).sum::<f64>().sqrt();
    metrics.push(("pred_rel_diff".into(), sq(&model_pred, &gd_pred).sqrt() / norm.max(f64::MIN_POSITIVE)));
    let (loss, gd_loss) = (sq(&model_pred, &y) / m, sq(&gd_pred, &y) / m);
    metrics.push(("loss".into(), loss));
    metrics.push(("gd_loss".into(), gd_loss));
    metrics.push(("loss_over_gd".into(), loss / gd_loss));
    Ok(IclReport { metrics, w_kq: transpose(&qk), w_pv: transpose(&ov), gamma_model, gamma_opt, f })
}
