//! Q-, K- and V-composition scores between attention heads (Elhage et al. 2021, "A Mathematical
//! Framework for Transformer Circuits"), as TransformerLens computes them
//! (`HookedTransformer.all_composition_scores` → `utils.composition_scores`), plus the
//! per-singular-component decomposition of "Talking Heads" (Merullo et al. 2024).
//!
//! # Convention
//! Row vectors (see [`crate::circuits`]): a sender head `h₁` in layer `l₁` writes `x · W_OV¹`; a
//! receiver `h₂` in a later layer `l₂ > l₁` reads that output through
//! - **Q**: its query side, `(x W_OV¹) · W_QK² · x_kᵀ` → `R = W_QK²`,
//! - **K**: its key side, `x_q · W_QK² · (x W_OV¹)ᵀ`, i.e. `(x W_OV¹) · W_QK²ᵀ · x_qᵀ` → `R = W_QK²ᵀ`,
//! - **V**: its value side, `(x W_OV¹) · W_OV²` → `R = W_OV²`,
//!
//! and the score is `‖W_OV¹ · R‖_F / (‖W_OV¹‖_F ‖R‖_F)` — TransformerLens's `left = OV`,
//! `right = QK | QK.T | OV`, `(left @ right).norm() / left.norm() / right.norm()`. In the
//! paper's column-vector notation (`W_QK^col = W_QK`, `W_OV^col = W_OVᵀ`) this is the same
//! number as `‖W_QKᵀ W_OV‖_F / (‖W_QK‖_F ‖W_OV‖_F)` for Q, `‖W_QK W_OV‖_F / …` for K.
//!
//! # Range
//! `‖A B‖_F ≤ min(‖A‖₂ ‖B‖_F, ‖A‖_F ‖B‖₂)`, so a score is at most
//! [`composition_score_bound`] `= min(‖A‖₂/‖A‖_F, ‖B‖₂/‖B‖_F) ≤ 1`. It reaches 1 only for
//! rank-1 `A = σ u vᵀ`, `B = τ p qᵀ` with `v = ±p` (the receiver reads exactly the direction the
//! sender writes); two rank-`r` maps with flat spectra whose subspaces coincide score
//! `1/√r` (= the bound); orthogonal subspaces score 0; independent Gaussian `[d, d]` matrices
//! score ≈ `1/√d` (`E‖AB‖²_F = d³`, `‖A‖²_F ≈ ‖B‖²_F ≈ d²`). No random baseline is subtracted.
#![warn(missing_docs)]

use ndarray::{Array4, Axis};
use tinylab_model::Model;

use crate::circuits::{ov_circuit, qk_circuit, FactoredMatrix};
use crate::error::{ProbeError, Result};

/// Which input of the receiver head reads the sender's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompositionKind {
    /// The receiver's queries: `R = W_QK²`.
    Q,
    /// The receiver's keys: `R = W_QK²ᵀ`.
    K,
    /// The receiver's values: `R = W_OV²`.
    V,
}

impl CompositionKind {
    /// `[Q, K, V]`.
    pub const ALL: [CompositionKind; 3] = [CompositionKind::Q, CompositionKind::K, CompositionKind::V];
}

/// The receiver-side matrix `R` `[d_model, d_model]` of head `(layer, head)` for `kind`
/// (`W_QK`, `W_QKᵀ` or `W_OV`), so that composition is `W_OV¹ · R`.
pub fn receiver_matrix(
    model: &Model,
    layer: usize,
    head: usize,
    kind: CompositionKind,
) -> Result<FactoredMatrix> {
    Ok(match kind {
        CompositionKind::Q => qk_circuit(model, layer, head)?,
        CompositionKind::K => qk_circuit(model, layer, head)?.transpose(),
        CompositionKind::V => ov_circuit(model, layer, head)?,
    })
}

/// `‖S · R‖_F / (‖S‖_F ‖R‖_F)` for a sender OV circuit `S` `[d, d]` and a receiver matrix `R`
/// `[d, n]` (from [`receiver_matrix`]). NaN if either is zero.
pub fn composition_score(sender_ov: &FactoredMatrix, receiver: &FactoredMatrix) -> Result<f64> {
    let num = sender_ov.compose(receiver)?.frobenius_norm()?;
    Ok(num / (sender_ov.frobenius_norm()? * receiver.frobenius_norm()?))
}

/// The largest score [`composition_score`] could give for these two spectra:
/// `min(‖S‖₂/‖S‖_F, ‖R‖₂/‖R‖_F)` (1 for rank-1 matrices, `1/√r` for flat rank-`r` ones).
pub fn composition_score_bound(sender_ov: &FactoredMatrix, receiver: &FactoredMatrix) -> Result<f64> {
    let ratio = |m: &FactoredMatrix| -> Result<f64> { Ok(m.spectral_norm()? / m.frobenius_norm()?) };
    Ok(ratio(sender_ov)?.min(ratio(receiver)?))
}

fn check_order(sender: (usize, usize), receiver: (usize, usize)) -> Result<()> {
    if sender.0 >= receiver.0 {
        return Err(ProbeError::InvalidArgument(format!(
            "the sender L{}H{} must sit in an earlier layer than the receiver L{}H{}",
            sender.0, sender.1, receiver.0, receiver.1
        )));
    }
    Ok(())
}

/// The `kind`-composition score of sender head `(l₁, h₁)` into receiver head `(l₂, h₂)`,
/// `l₁ < l₂` (else [`ProbeError::InvalidArgument`]).
pub fn head_composition_score(
    model: &Model,
    sender: (usize, usize),
    receiver: (usize, usize),
    kind: CompositionKind,
) -> Result<f64> {
    check_order(sender, receiver)?;
    let s = ov_circuit(model, sender.0, sender.1)?;
    composition_score(&s, &receiver_matrix(model, receiver.0, receiver.1, kind)?)
}

/// All `kind`-composition scores as `[n_layers, n_heads, n_layers, n_heads]`: entry
/// `[l₁, h₁, l₂, h₂]` is sender `(l₁, h₁)` → receiver `(l₂, h₂)`, and 0 unless `l₁ < l₂`
/// (TransformerLens's layout and mask).
pub fn all_composition_scores(model: &Model, kind: CompositionKind) -> Result<Array4<f64>> {
    let (nl, nh) = (model.config().n_layers, model.config().n_heads);
    let senders: Vec<Vec<FactoredMatrix>> = (0..nl.saturating_sub(1))
        .map(|l| (0..nh).map(|h| ov_circuit(model, l, h)).collect())
        .collect::<Result<_>>()?;
    let mut out = Array4::zeros((nl, nh, nl, nh));
    for l2 in 1..nl {
        for h2 in 0..nh {
            let r = receiver_matrix(model, l2, h2, kind)?;
            for (l1, heads) in senders.iter().enumerate().take(l2) {
                for (h1, s) in heads.iter().enumerate() {
                    out[[l1, h1, l2, h2]] = composition_score(s, &r)?;
                }
            }
        }
    }
    Ok(out)
}

/// The composition of one singular component `σᵢ uᵢ vᵢᵀ` of the sender's `W_OV¹`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ComponentScore {
    /// Index `i` of the component, in non-increasing order of `σᵢ`.
    pub index: usize,
    /// Its singular value `σᵢ`.
    pub sigma: f64,
    /// Composition score of the rank-1 component alone:
    /// `‖σᵢ uᵢ vᵢᵀ R‖_F / (σᵢ ‖R‖_F) = ‖vᵢᵀ R‖ / ‖R‖_F` (`vᵢ` = the direction it writes).
    pub score: f64,
    /// Its share of the squared composed norm, `σᵢ² ‖vᵢᵀ R‖² / ‖W_OV¹ R‖²_F`; shares sum to 1
    /// (NaN if the composed map is zero).
    pub share: f64,
}

/// Per-component composition ("Talking Heads", Merullo et al. 2024): decompose the sender
/// `W_OV¹ = Σᵢ σᵢ uᵢ vᵢᵀ` (thin SVD; row convention: reads `uᵢ`, writes `vᵢ`) and score every
/// rank-1 component against the receiver matrix `R`. Since the `uᵢ` are orthonormal,
/// `‖W_OV¹ R‖²_F = Σᵢ σᵢ² ‖vᵢᵀ R‖²`, which the `share`s split exactly.
pub fn component_composition_scores(
    sender_ov: &FactoredMatrix,
    receiver: &FactoredMatrix,
) -> Result<Vec<ComponentScore>> {
    if sender_ov.shape().1 != receiver.shape().0 {
        return Err(ProbeError::Shape(format!(
            "sender {:?} · receiver {:?}",
            sender_ov.shape(),
            receiver.shape()
        )));
    }
    let d = sender_ov.svd()?;
    let r_norm = receiver.frobenius_norm()?;
    let vr = d.vt.dot(receiver.a()).dot(receiver.b()); // row i = vᵢᵀ R
    let row_norms: Vec<f64> = vr.map_axis(Axis(1), |row| row.dot(&row).sqrt()).to_vec();
    let total: f64 = d.s.iter().zip(&row_norms).map(|(s, n)| (s * n).powi(2)).sum();
    Ok(d.s
        .iter()
        .zip(&row_norms)
        .enumerate()
        .map(|(index, (&sigma, &n))| ComponentScore {
            index,
            sigma,
            score: n / r_norm,
            share: (sigma * n).powi(2) / total,
        })
        .collect())
}

/// [`component_composition_scores`] of sender head `(l₁, h₁)` into receiver `(l₂, h₂)`
/// (`l₁ < l₂`) through `kind`.
pub fn head_component_scores(
    model: &Model,
    sender: (usize, usize),
    receiver: (usize, usize),
    kind: CompositionKind,
) -> Result<Vec<ComponentScore>> {
    check_order(sender, receiver)?;
    let s = ov_circuit(model, sender.0, sender.1)?;
    component_composition_scores(&s, &receiver_matrix(model, receiver.0, receiver.1, kind)?)
}

#[cfg(test)]
#[path = "composition_tests.rs"]
mod tests;
