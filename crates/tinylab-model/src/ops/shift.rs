//! Causal depthwise convolution written as shifted views times per-lag weights (candle's
//! grouped `conv1d` has wrong gradients for groups < channels; this form is exact).

use candle_core::{Result, Tensor};

use super::expand_like;

/// Shifts `x` right by `lag` positions along dim 1, filling the first `lag` slots with zeros.
///
/// # Shapes
/// `x`: `[B, T, d]` → `[B, T, d]`, `out[:, t] = x[:, t − lag]` (zero for `t < lag`).
pub fn shift_right(x: &Tensor, lag: usize) -> Result<Tensor> {
    let (b, t, d) = x.dims3()?;
    if lag == 0 {
        return Ok(x.clone());
    }
    if lag >= t {
        return x.zeros_like();
    }
    let pad = Tensor::zeros((b, lag, d), x.dtype(), x.device())?;
    Tensor::cat(&[&pad, &x.narrow(1, 0, t - lag)?], 1)
}

/// `y_t = Σ_{i<K} F_i ⊙ x_{t−i}` (causal, depthwise).
///
/// # Shapes
/// `x`: `[B, T, d]`; `filter`: `[K, d]`, row `i` = the taps of lag `i`; result `[B, T, d]`.
pub fn causal_conv(x: &Tensor, filter: &Tensor) -> Result<Tensor> {
    let k = filter.dim(0)?;
    let mut y: Option<Tensor> = None;
    for lag in 0..k {
        let tap = filter.get(lag)?; // [d]
        let term = shift_right(x, lag)?.mul(&expand_like(&tap, x)?)?;
        y = Some(match y {
            None => term,
            Some(acc) => acc.add(&term)?,
        });
    }
    Ok(y.expect("conv_kernel ≥ 1"))
}
