//! Causal attention of one block: optional CAT convolutions on the q/k/v inputs, factorized or
//! combined weights, softmax or linear scores, optional L2 q/k normalization and RoPE.

use candle_core::{Result, Tensor};

use crate::config::{AttentionKind, ModelConfig, QkNormKind, WeightsKind};
use crate::hooks::{Cache, HookPoint, HookSet};
use crate::init::Init;
use crate::ops::{causal_conv, causal_softmax, l2_normalize};
use crate::params::Params;
use crate::positional::Rope;

/// Creates the attention weights of block `l` (names as in TransformerLens):
/// factorized `W_Q, W_K` `[H, d, d_head]`, `W_V` `[H, d, d_value]`, `W_O` `[H, d_value, d]`; combined `W_QK`, `W_OV`
/// `[H, d, d]`; `conv_q|conv_k|conv_v` `[K, d]` (row i = lag i); `qk_log_temp` `[H]`: the L2-normalized
/// scores are multiplied by `τ = exp(qk_log_temp)`. The temperature is learned in log space so
/// that Adam's per-step moves (≈ lr) scale it multiplicatively: a linear τ could move by at
/// most `lr·steps` (≈ 4 in a 1500-step run) and the softmax could not sharpen enough to stay
/// selective among 4× more distractors.
pub(crate) fn init(
    cfg: &ModelConfig,
    l: usize,
    init: &mut Init,
    out: &mut Vec<(String, Tensor)>,
) -> Result<()> {
    let (h, d, dh, dv) = (cfg.n_heads, cfg.d_model, cfg.head_dim(), cfg.value_dim());
    let s = cfg.init_scale;
    let name = |w: &str| format!("blocks.{l}.attn.{w}");
    for (on, w) in [(cfg.conv_q, "conv_q"), (cfg.conv_k, "conv_k"), (cfg.conv_v, "conv_v")] {
        if on {
            let k = cfg.conv_kernel;
            out.push((name(w), init.uniform(&[k, d], 1.0 / (k as f64).sqrt())?));
        }
    }
    let sd = s / (d as f64).sqrt();
    match cfg.weights {
        WeightsKind::Factorized => {
            out.push((name("W_Q"), init.normal(&[h, d, dh], sd)?));
            out.push((name("W_K"), init.normal(&[h, d, dh], sd)?));
            out.push((name("W_V"), init.normal(&[h, d, dv], sd)?));
            out.push((name("W_O"), init.normal(&[h, dv, d], s / ((h * dv) as f64).sqrt())?));
        }
        WeightsKind::Combined => {
            out.push((name("W_QK"), init.normal(&[h, d, d], sd)?));
            out.push((name("W_OV"), init.normal(&[h, d, d], sd)?));
        }
    }
    if cfg.qk_norm == QkNormKind::L2 {
        out.push((name("qk_log_temp"), init.full(&[h], cfg.qk_scale_init.ln())?));
    }
    Ok(())
}

/// `x [B, T, d] @ W [H, d, e]` for every head at once → `[B, H, T, e]`.
fn project_heads(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let (b, t, d) = x.dims3()?;
    let (h, _, e) = w.dims3()?;
    let w2 = w.transpose(0, 1)?.contiguous()?.reshape((d, h * e))?; // [d, H·e]
    x.reshape((b * t, d))?.matmul(&w2)?.reshape((b, t, h, e))?.transpose(1, 2)?.contiguous()
}

/// Applies the CAT filter named `w` when it exists, else returns `x`.
fn conv_path(p: &Params, l: usize, w: &str, x: &Tensor) -> Result<Tensor> {
    let name = format!("blocks.{l}.attn.{w}");
    if p.contains(&name) {
        causal_conv(x, p.get(&name))
    } else {
        Ok(x.clone())
    }
}

/// The attention sub-layer of block `l`; `mask` `[T, T]` (1 = may attend) restricts the
/// keys on top of causality.
///
/// # Shapes
/// `x`: `[B, T, d]` (already normalized) → `[B, T, d]`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward(
    cfg: &ModelConfig,
    p: &Params,
    l: usize,
    x: &Tensor,
    rope: Option<&Rope>,
    mask: Option<&Tensor>,
    hooks: &HookSet,
    cache: &mut Cache,
) -> Result<Tensor> {
    let (b, t, d) = x.dims3()?;
    let name = |w: &str| format!("blocks.{l}.attn.{w}");
    let xq = conv_path(p, l, "conv_q", x)?;
    let xk = conv_path(p, l, "conv_k", x)?;
    let xv = conv_path(p, l, "conv_v", x)?;
    let h = cfg.n_heads;

    // scores [B, H, T, T] and values [B, H, T, e]
    let (scores, v) = match cfg.weights {
        WeightsKind::Factorized => {
            let mut q = project_heads(&xq, p.get(&name("W_Q")))?; // [B, H, T, dh]
            let mut k = project_heads(&xk, p.get(&name("W_K")))?;
            let v = project_heads(&xv, p.get(&name("W_V")))?;
            if cfg.qk_norm == QkNormKind::L2 {
                let temp = p.get(&name("qk_log_temp")).exp()?.reshape((1, h, 1, 1))?;
                q = l2_normalize(&q)?.broadcast_mul(&temp)?;
                k = l2_normalize(&k)?;
            }
            if let Some(r) = rope {
                q = r.apply(&q)?;
                k = r.apply(&k)?;
            }
            cache.record(hooks, HookPoint::Q(l), &q);
            cache.record(hooks, HookPoint::K(l), &k);
            cache.record(hooks, HookPoint::V(l), &v);
            (q.matmul(&k.t()?.contiguous()?)?, v)
        }
        WeightsKind::Combined => {
            let a = project_heads(&xq, p.get(&name("W_QK")))?; // [B, H, T, d]
            let kt = xk.t()?.unsqueeze(1)?.broadcast_as((b, h, d, t))?.contiguous()?; // [B, H, d, T]
            let v = project_heads(&xv, p.get(&name("W_OV")))?; // [B, H, T, d]
            (a.matmul(&kt)?, v)
        }
    };
    let scale = cfg.score_scale();
    let scores = if scale != 1.0 { (scores * scale)? } else { scores };
    if let Some(m) = mask {
        if m.dims() != [t, t] {
            candle_core::bail!("layer {l}: attention mask is {:?} but the sequence length is {t}", m.dims());
        }
    }
    let scores = match (mask, cfg.attention) {
        (Some(m), AttentionKind::Softmax) => scores.broadcast_add(&((m - 1.0)? * 1e9)?)?,
        _ => scores,
    };
    cache.record(hooks, HookPoint::AttnScores(l), &scores);
    let pattern = match cfg.attention {
        AttentionKind::Softmax => causal_softmax(&scores)?,
        AttentionKind::Linear => {
            let mut causal = Tensor::tril2(t, scores.dtype(), scores.device())?;
            if !cfg.attend_self {
                causal = (causal - Tensor::eye(t, scores.dtype(), scores.device())?)?;
            }
            if let Some(m) = mask {
                causal = (causal * m)?;
            }
            scores.broadcast_mul(&causal)?
        }
    };
    cache.record(hooks, HookPoint::Pattern(l), &pattern);
    let z = pattern.matmul(&v)?; // [B, H, T, e]
    match cfg.weights {
        WeightsKind::Factorized => {
            let dv = cfg.value_dim();
            let z = z.transpose(1, 2)?.contiguous()?.reshape((b * t, h * dv))?;
            let wo = p.get(&name("W_O")).reshape((h * dv, d))?;
            z.matmul(&wo)?.reshape((b, t, d))
        }
        WeightsKind::Combined => z.sum(1),
    }
}
