//! QK and OV circuits of attention heads, as [`FactoredMatrix`]es, and the CAT filters.
//!
//! # Conventions (row vectors, as in the model and in TransformerLens)
//! Residual vectors `x` are rows `[1, d]`. For head `h` of layer `l`:
//! - **QK**: `W_QK = W_Q[h] · W_K[h]ᵀ` `[d, d]`, so the pre-scale score of query `x_q` on key
//!   `x_k` is `x_q · W_QK · x_kᵀ` (rows of `W_QK` ↔ query-side directions, columns ↔ key side).
//! - **OV**: `W_OV = W_V[h] · W_O[h]` `[d, d]`, so a head attending to `x_v` writes
//!   `x_v · W_OV` (rows ↔ the read direction, columns ↔ the written direction).
//!
//! The circuits are the raw weight products: they leave out the score scale
//! (`ModelConfig::score_scale`, e.g. `1/√d_head`), the L2 q/k normalization and temperature,
//! RoPE's position-dependent rotation (the circuit is the relative-offset-0 one), the CAT
//! convolutions in front of q/k/v (the circuit acts on the *filtered* stream) and the
//! pre-attention norm (no LayerNorm gain or centering is folded in). With `norm = "none"`, no
//! positional encoding and no convolutions, the one-layer scores equal
//! `score_scale · E · W_QK · Eᵀ` exactly (checked in the tests).
#![warn(missing_docs)]

use ndarray::{Array1, Array2};
use tinylab_model::{Model, WeightsKind};

use crate::convert::{tensor_slice_to_array2, tensor_to_array2};
use crate::error::{ProbeError, Result};
use crate::linalg::{self, Svd};

/// A matrix `M = A · B` `[m, n]` kept as its factors `A` `[m, k]` and `B` `[k, n]`
/// (TransformerLens's `FactoredMatrix`). With `k ≪ m, n` (e.g. `k = d_head`) every
/// spectral quantity costs `O((m + n) k²)` instead of an SVD of the dense `[m, n]` product.
#[derive(Debug, Clone, PartialEq)]
pub struct FactoredMatrix {
    a: Array2<f64>,
    b: Array2<f64>,
}

impl FactoredMatrix {
    /// `A · B` from `A` `[m, k]` and `B` `[k, n]`; errors when the inner sizes differ.
    pub fn new(a: Array2<f64>, b: Array2<f64>) -> Result<Self> {
        if a.ncols() != b.nrows() {
            return Err(ProbeError::Shape(format!("FactoredMatrix: A {:?} · B {:?}", a.dim(), b.dim())));
        }
        Ok(Self { a, b })
    }

    /// A dense `M` `[m, n]` as the trivial factorization `M · I_n` (inner size `k = n`).
    pub fn from_dense(m: Array2<f64>) -> Self {
        let n = m.ncols();
        Self { a: m, b: Array2::eye(n) }
    }

    /// The left factor `A` `[m, k]`.
    pub fn a(&self) -> &Array2<f64> {
        &self.a
    }

    /// The right factor `B` `[k, n]`.
    pub fn b(&self) -> &Array2<f64> {
        &self.b
    }

    /// The factors `(A, B)`.
    pub fn into_parts(self) -> (Array2<f64>, Array2<f64>) {
        (self.a, self.b)
    }

    /// `(m, n)`, the shape of `A · B`.
    pub fn shape(&self) -> (usize, usize) {
        (self.a.nrows(), self.b.ncols())
    }

    /// `k`, the inner size (an upper bound on the rank).
    pub fn inner_dim(&self) -> usize {
        self.a.ncols()
    }

    /// The product `A · B` `[m, n]`, formed densely.
    pub fn dense(&self) -> Array2<f64> {
        self.a.dot(&self.b)
    }

    /// `(A B)ᵀ = Bᵀ · Aᵀ` `[n, m]`.
    pub fn transpose(&self) -> Self {
        Self { a: self.b.t().to_owned(), b: self.a.t().to_owned() }
    }

    /// `M · (A B) = (M A) · B` for `M` `[p, m]` → `[p, n]`.
    pub fn left_mul(&self, m: &Array2<f64>) -> Result<Self> {
        if m.ncols() != self.a.nrows() {
            return Err(ProbeError::Shape(format!("{:?} · FactoredMatrix {:?}", m.dim(), self.shape())));
        }
        Ok(Self { a: m.dot(&self.a), b: self.b.clone() })
    }

    /// `(A B) · M = A · (B M)` for `M` `[n, p]` → `[m, p]`.
    pub fn right_mul(&self, m: &Array2<f64>) -> Result<Self> {
        if m.nrows() != self.b.ncols() {
            return Err(ProbeError::Shape(format!("FactoredMatrix {:?} · {:?}", self.shape(), m.dim())));
        }
        Ok(Self { a: self.a.clone(), b: self.b.dot(m) })
    }

    /// `(A₁ B₁) · (A₂ B₂)` `[m₁, n₂]`, kept factored through the smaller of the two inner sizes:
    /// `A₁ · (B₁ A₂ B₂)` if `k₁ ≤ k₂`, else `(A₁ B₁ A₂) · B₂`.
    pub fn compose(&self, other: &FactoredMatrix) -> Result<Self> {
        if self.b.ncols() != other.a.nrows() {
            return Err(ProbeError::Shape(format!(
                "FactoredMatrix {:?} · FactoredMatrix {:?}",
                self.shape(),
                other.shape()
            )));
        }
        let mid = self.b.dot(&other.a); // [k₁, k₂]
        Ok(if self.inner_dim() <= other.inner_dim() {
            Self { a: self.a.clone(), b: mid.dot(&other.b) }
        } else {
            Self { a: self.a.dot(&mid), b: other.b.clone() }
        })
    }

    /// `A B = Q_A · C · Q_Bᵀ` with `A = Q_A R_A`, `Bᵀ = Q_B R_B` (thin QRs) and the small core
    /// `C = R_A R_Bᵀ` `[min(m, k), min(n, k)]`; `Q_A`, `Q_B` have orthonormal columns.
    fn core(&self) -> Result<(Array2<f64>, Array2<f64>, Array2<f64>)> {
        let (qa, ra) = linalg::thin_qr(&self.a)?;
        let (qb, rb) = linalg::thin_qr(&self.b.t().to_owned())?;
        Ok((qa, ra.dot(&rb.t()), qb))
    }

    /// The `min(m, n, k)` leading singular values of `A · B`, non-increasing (the other
    /// `min(m, n) − min(m, n, k)` are exactly zero), from the SVD of the small core `R_A R_Bᵀ`.
    pub fn singular_values(&self) -> Result<Array1<f64>> {
        linalg::singular_values(&self.core()?.1)
    }

    /// Thin SVD of `A · B` with `r = min(m, n, k)`: `U` `[m, r]`, `s` `[r]`, `Vᵀ` `[r, n]`,
    /// assembled as `U = Q_A U_C`, `Vᵀ = V_Cᵀ Q_Bᵀ` from the core's SVD `C = U_C S V_Cᵀ`.
    pub fn svd(&self) -> Result<Svd> {
        let (qa, c, qb) = self.core()?;
        let d = linalg::svd(&c)?;
        Ok(Svd { u: qa.dot(&d.u), s: d.s, vt: d.vt.dot(&qb.t()) })
    }

    /// `‖A B‖_*`, the sum of singular values.
    pub fn nuclear_norm(&self) -> Result<f64> {
        Ok(self.singular_values()?.sum())
    }

    /// `‖A B‖_F = ‖R_A R_Bᵀ‖_F` (no cancellation-prone Gram products, no dense `[m, n]`).
    pub fn frobenius_norm(&self) -> Result<f64> {
        Ok(linalg::frobenius_norm(&self.core()?.1))
    }

    /// `‖A B‖₂`, the largest singular value (0 when empty).
    pub fn spectral_norm(&self) -> Result<f64> {
        Ok(self.singular_values()?.first().copied().unwrap_or(0.0))
    }

    /// Effective rank (Roy & Vetterli 2007) of `A · B`; see
    /// [`linalg::effective_rank_from_singular_values`].
    pub fn effective_rank(&self) -> Result<f64> {
        let s = self.singular_values()?;
        Ok(linalg::effective_rank_from_singular_values(s.as_slice().expect("contiguous")))
    }
}

/// Checks that `layer` and `head` exist in `model`.
pub(crate) fn check_head(model: &Model, layer: usize, head: usize) -> Result<()> {
    let cfg = model.config();
    if layer >= cfg.n_layers || head >= cfg.n_heads {
        return Err(ProbeError::NotFound(format!(
            "no head L{layer}H{head}: the model has {} layers of {} heads",
            cfg.n_layers, cfg.n_heads
        )));
    }
    Ok(())
}

/// Slice `head` of `blocks.{layer}.attn.{w}` as `[rows, cols]`.
fn head_weight(model: &Model, layer: usize, w: &str, head: usize) -> Result<Array2<f64>> {
    let name = format!("blocks.{layer}.attn.{w}");
    if !model.params().contains(&name) {
        return Err(ProbeError::NotFound(format!("model has no weight `{name}`")));
    }
    tensor_slice_to_array2(model.params().get(&name), head)
}

/// The QK circuit of head `(layer, head)`: `W_QK` `[d_model, d_model]` with
/// `score = x_q · W_QK · x_kᵀ` (rows = query side, columns = key side; unscaled, see the
/// module docs). Factorized weights: `A = W_Q[h]` `[d, d_head]`, `B = W_K[h]ᵀ` `[d_head, d]`;
/// combined weights: the dense `W_QK[h]` as [`FactoredMatrix::from_dense`].
pub fn qk_circuit(model: &Model, layer: usize, head: usize) -> Result<FactoredMatrix> {
    check_head(model, layer, head)?;
    match model.config().weights {
        WeightsKind::Factorized => FactoredMatrix::new(
            head_weight(model, layer, "W_Q", head)?,
            head_weight(model, layer, "W_K", head)?.reversed_axes(),
        ),
        WeightsKind::Combined => Ok(FactoredMatrix::from_dense(head_weight(model, layer, "W_QK", head)?)),
    }
}

/// The OV circuit of head `(layer, head)`: `W_OV` `[d_model, d_model]`; a head attending to
/// `x_v` writes `x_v · W_OV` (rows = read side, columns = written side). Factorized:
/// `A = W_V[h]` `[d, d_head]`, `B = W_O[h]` `[d_head, d]`; combined: the dense `W_OV[h]`.
pub fn ov_circuit(model: &Model, layer: usize, head: usize) -> Result<FactoredMatrix> {
    check_head(model, layer, head)?;
    match model.config().weights {
        WeightsKind::Factorized => FactoredMatrix::new(
            head_weight(model, layer, "W_V", head)?,
            head_weight(model, layer, "W_O", head)?,
        ),
        WeightsKind::Combined => Ok(FactoredMatrix::from_dense(head_weight(model, layer, "W_OV", head)?)),
    }
}

/// The token embedding `W_E` `[vocab, d_model]` (row `t` = embedding of token `t`).
pub fn embedding(model: &Model) -> Result<Array2<f64>> {
    tensor_to_array2(model.params().get("embed.W_E"))
}

/// The unembedding `W_U` `[d_model, vocab]` (`W_Eᵀ` when tied); logits are `x · W_U`.
pub fn unembedding(model: &Model) -> Result<Array2<f64>> {
    tensor_to_array2(&model.unembedding()?)
}

/// The QK circuit in the token basis ("full QK circuit"): `W_E · W_QK · W_Eᵀ` `[vocab, vocab]`;
/// entry `[q, k]` is the unscaled score of query token `q` on key token `k` through the
/// direct embedding path (no positions, norm, convolution; see the module docs).
pub fn full_qk_circuit(model: &Model, layer: usize, head: usize) -> Result<FactoredMatrix> {
    let e = embedding(model)?;
    qk_circuit(model, layer, head)?.left_mul(&e)?.right_mul(&e.t().to_owned())
}

/// The OV circuit in the token basis ("full OV circuit"): `W_E · W_OV · W_U` `[vocab, vocab]`;
/// entry `[s, o]` is the logit of output token `o` that the head adds per unit of attention on
/// source token `s` (direct path, no norms).
pub fn full_ov_circuit(model: &Model, layer: usize, head: usize) -> Result<FactoredMatrix> {
    ov_circuit(model, layer, head)?.left_mul(&embedding(model)?)?.right_mul(&unembedding(model)?)
}

/// The CAT filters of `layer` that exist, in the order `conv_q`, `conv_k`, `conv_v`, each as
/// `(path name, taps [K, d_model])`: row `i` is lag `i`, so the filtered stream is
/// `y_t[c] = Σᵢ taps[i, c] · x_{t−i}[c]`.
pub fn conv_filters(model: &Model, layer: usize) -> Result<Vec<(String, Array2<f64>)>> {
    check_head(model, layer, 0)?;
    let mut out = Vec::new();
    for w in ["conv_q", "conv_k", "conv_v"] {
        let name = format!("blocks.{layer}.attn.{w}");
        if model.params().contains(&name) {
            out.push((w.to_string(), tensor_to_array2(model.params().get(&name))?));
        }
    }
    Ok(out)
}

/// Statistics of one lag of a CAT filter over the `d_model` channels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LagSummary {
    /// The lag `i` (row of the filter): the tap multiplies `x_{t−i}`.
    pub lag: usize,
    /// `mean_c |taps[i, c]|`: how much the path looks `i` tokens back, whatever the sign.
    pub mean_abs: f64,
    /// `mean_c taps[i, c]`: the signed average tap.
    pub mean: f64,
}

/// Per-lag summary of a filter `taps [K, d_model]` (as from [`conv_filters`]), one entry per lag.
pub fn conv_lag_summary(taps: &Array2<f64>) -> Vec<LagSummary> {
    let d = taps.ncols().max(1) as f64;
    taps.rows()
        .into_iter()
        .enumerate()
        .map(|(lag, row)| LagSummary {
            lag,
            mean_abs: row.iter().map(|x| x.abs()).sum::<f64>() / d,
            mean: row.sum() / d,
        })
        .collect()
}

#[cfg(test)]
#[path = "circuits_tests.rs"]
mod tests;
