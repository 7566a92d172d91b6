//! The parts of an [`EnsembleModel`](crate::EnsembleModel)'s forward pass: each computes what
//! its solo counterpart (`ops::layer_norm`, `attention::forward`, `mlp::forward`) computes,
//! with the member dimension `S` in front, per-member weights applied by batched matmuls, and
//! the element-wise chains fused into single ops with hand-written backward (norms, CAT
//! convolutions, q/k normalization, scaled causal softmax): on `S`-fold tensors every graph
//! node costs candle's backward a zero-filled buffer and an add, so fewer nodes is faster.

use candle_core::{Result, Tensor, D};

use crate::config::{Activation, AttentionKind, ModelConfig, NormKind, QkNormKind, WeightsKind};
use crate::ensemble_attn::{causal_attention, AttnSpec};
use crate::ensemble_conv::causal_conv;
use crate::ensemble_norm::{l2_normalize, norm as fused_norm};
use crate::ensemble_softmax::scaled_causal_softmax;
use crate::ops::gelu;
use crate::params::Params;
use crate::positional::Rope;

/// Sizes of one ensemble forward pass: members, batch, sequence, width.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dims {
    pub s: usize,
    pub b: usize,
    pub t: usize,
    pub d: usize,
}

/// Repeats each member's weight row over `n` positions by a batched matmul with a ones column
/// (the gradient is a gemm, as in the solo `expand_like`).
///
/// # Shapes
/// `p`: `[S, k]`; `ones`: `[S, n, 1]` → `[S, n, k]`.
pub(crate) fn expand_rows(p: &Tensor, ones: &Tensor) -> Result<Tensor> {
    let (s, k) = (p.dim(0)?, p.dim(D::Minus1)?);
    ones.matmul(&p.reshape((s, 1, k))?)
}

/// Pre-norm of `prefix` (`blocks.0.ln1`, `ln_final`, …) as configured.
///
/// # Shapes
/// `x`: `[S, n, d]` → `[S, n, d]`.
pub(crate) fn norm(cfg: &ModelConfig, p: &Params, prefix: &str, x: &Tensor) -> Result<Tensor> {
    match cfg.norm {
        NormKind::LayerNorm => {
            fused_norm(x, p.get(&format!("{prefix}.w")), Some(p.get(&format!("{prefix}.b"))))
        }
        NormKind::RmsNorm => fused_norm(x, p.get(&format!("{prefix}.w")), None),
        NormKind::None => Ok(x.clone()),
    }
}

/// `x [S, B·T, d] @ W [S, H, d, e]` for every member and head → `[S, B·T, H·e]`.
fn project(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let (s, h, d, e) = w.dims4()?;
    x.matmul(&w.transpose(1, 2)?.contiguous()?.reshape((s, d, h * e))?)
}

/// `[S, B·T, H·e]` → `[S·B, H, T, e]` (the layout of batched per-head matmuls).
fn heads(x: &Tensor, dims: Dims, h: usize) -> Result<Tensor> {
    let Dims { s, b, t, .. } = dims;
    let e = x.dim(2)? / h;
    x.reshape((s * b, t, h, e))?.transpose(1, 2)?.contiguous()
}

/// The attention sub-layer of block `l` for every member. Factorized weights without RoPE
/// (e.g. CAT) take the fused causal attention; RoPE and combined weights take batched
/// per-head matmuls and the scaled causal softmax.
///
/// # Shapes
/// `x`: `[S, B·T, d]` (already normalized) → `[S, B·T, d]`.
pub(crate) fn attention(
    cfg: &ModelConfig,
    p: &Params,
    l: usize,
    x: &Tensor,
    dims: Dims,
    rope: Option<&Rope>,
    train: bool,
) -> Result<Tensor> {
    let Dims { s, b, t, d } = dims;
    let name = |w: &str| format!("blocks.{l}.attn.{w}");
    let conv = |w: &str| match p.contains(&name(w)) {
        true => causal_conv(x, p.get(&name(w)), t),
        false => Ok(x.clone()),
    };
    let (xq, xk, xv) = (conv("conv_q")?, conv("conv_k")?, conv("conv_v")?);
    let h = cfg.n_heads;
    if cfg.weights == WeightsKind::Combined {
        return combined(cfg, p, l, (&xq, &xk, &xv), dims);
    }
    let (mut q, mut k) = (project(&xq, p.get(&name("W_Q")))?, project(&xk, p.get(&name("W_K")))?);
    let v = project(&xv, p.get(&name("W_V")))?; // [S, B·T, H·dv]
    let mut scale = cfg.score_scale();
    if cfg.qk_norm == QkNormKind::L2 {
        // the score scale is folded into the query factor τ·scale
        q = l2_normalize(&q, h, Some(p.get(&name("qk_log_temp"))), scale)?;
        k = l2_normalize(&k, h, None, 1.0)?;
        scale = 1.0;
    }
    let dv = cfg.value_dim();
    let z = match rope {
        None => {
            let softmax = cfg.attention == AttentionKind::Softmax;
            let spec = AttnSpec { t, heads: h, scale, softmax, attend_self: cfg.attend_self };
            causal_attention(&q, &k, &v, spec, train)? // [S, B·T, H·dv]
        }
        Some(r) => {
            let (q, k) = (r.apply(&heads(&q, dims, h)?)?, r.apply(&heads(&k, dims, h)?)?);
            let scores = q.matmul(&k.t()?)?; // [S·B, H, T, T]
            let z = pattern(cfg, &scores, scale, t)?.matmul(&heads(&v, dims, h)?)?;
            z.transpose(1, 2)?.contiguous()?.reshape((s, b * t, h * dv))?
        }
    };
    z.matmul(&p.get(&name("W_O")).reshape((s, h * dv, d))?)
}

/// Combined weights: scores `(x_q W_QK)·x_k`, values `x_v W_OV`, heads summed.
fn combined(
    cfg: &ModelConfig,
    p: &Params,
    l: usize,
    (xq, xk, xv): (&Tensor, &Tensor, &Tensor),
    dims: Dims,
) -> Result<Tensor> {
    let Dims { s, b, t, d } = dims;
    let h = cfg.n_heads;
    let name = |w: &str| format!("blocks.{l}.attn.{w}");
    let a = heads(&project(xq, p.get(&name("W_QK")))?, dims, h)?; // [S·B, H, T, d]
    let kt = xk.reshape((s * b, t, d))?.t()?.unsqueeze(1)?; // [S·B, 1, d, T]
    let kt = kt.broadcast_as((s * b, h, d, t))?.contiguous()?;
    let v = heads(&project(xv, p.get(&name("W_OV")))?, dims, h)?; // [S·B, H, T, d]
    let z = pattern(cfg, &a.matmul(&kt)?, cfg.score_scale(), t)?.matmul(&v)?;
    z.sum(1)?.reshape((s, b * t, d))
}

/// The attention pattern of `scores` `[S·B, H, T, T]` (times `scale`).
fn pattern(cfg: &ModelConfig, scores: &Tensor, scale: f64, t: usize) -> Result<Tensor> {
    match cfg.attention {
        AttentionKind::Softmax => scaled_causal_softmax(scores, scale),
        AttentionKind::Linear => {
            let scores = if scale != 1.0 { (scores * scale)? } else { scores.clone() };
            let mut mask = Tensor::tril2(t, scores.dtype(), scores.device())?;
            if !cfg.attend_self {
                mask = (mask - Tensor::eye(t, scores.dtype(), scores.device())?)?;
            }
            scores.broadcast_mul(&mask)
        }
    }
}

/// The MLP of block `l` for every member.
///
/// # Shapes
/// `x`: `[S, B·T, d]` → `[S, B·T, d]`.
pub(crate) fn mlp(cfg: &ModelConfig, p: &Params, l: usize, x: &Tensor, ones: &Tensor) -> Result<Tensor> {
    let name = |w: &str| format!("blocks.{l}.mlp.{w}");
    let h = x.matmul(p.get(&name("W_in")))?; // [S, B·T, d_mlp]
    let h = h.add(&expand_rows(p.get(&name("b_in")), ones)?)?;
    let h = match cfg.activation {
        Activation::Gelu => gelu(&h)?,
        Activation::Relu => h.relu()?,
    };
    let y = h.matmul(p.get(&name("W_out")))?; // [S, B·T, d]
    y.add(&expand_rows(p.get(&name("b_out")), ones)?)
}
