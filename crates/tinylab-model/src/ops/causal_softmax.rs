//! Causal softmax as one custom op with a hand-written backward.
//!
//! For scores `S` of shape `[…, T_q, T_k]` whose query `i` sits at absolute position
//! `i + (T_k − T_q)`, the output row is `softmax(S[i, 0..=p])` padded with zeros for `j > p`.
//! Fusing the mask into the op avoids building a gradient for a constant mask tensor and the
//! five temporaries of `ops::softmax` (perf-notes: ≈2× on the attention block).
//! Backward: `dS = Y ⊙ (dY − Σ_j Y_j dY_j)` row by row.

use super::contiguous_slice;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

/// Row-wise causal softmax of a contiguous `[…, T_q, T_k]` tensor (f32 or f64).
pub fn causal_softmax(scores: &Tensor) -> Result<Tensor> {
    scores.contiguous()?.apply_op1(CausalSoftmax)
}

struct CausalSoftmax;
struct CausalSoftmaxGrad;

/// `(rows, t_q, t_k)` of a rank ≥ 2 layout.
fn dims(shape: &Shape) -> Result<(usize, usize, usize)> {
    let d = shape.dims();
    if d.len() < 2 {
        candle_core::bail!("causal_softmax needs rank ≥ 2, got {d:?}");
    }
    let (tq, tk) = (d[d.len() - 2], d[d.len() - 1]);
    if tk < tq {
        candle_core::bail!("causal_softmax needs T_k ≥ T_q, got {d:?}");
    }
    Ok((shape.elem_count() / tk, tq, tk))
}

trait Float: Copy + PartialOrd + std::ops::Sub<Output = Self> + std::ops::Mul<Output = Self> {
    const ZERO: Self;
    const NEG_INF: Self;
    fn exp(self) -> Self;
    fn add(self, o: Self) -> Self;
    fn recip(self) -> Self;
}
impl Float for f32 {
    const ZERO: Self = 0.0;
    const NEG_INF: Self = f32::NEG_INFINITY;
    fn exp(self) -> Self {
        f32::exp(self)
    }
    fn add(self, o: Self) -> Self {
        self + o
    }
    fn recip(self) -> Self {
        1.0 / self
    }
}
impl Float for f64 {
    const ZERO: Self = 0.0;
    const NEG_INF: Self = f64::NEG_INFINITY;
    fn exp(self) -> Self {
        f64::exp(self)
    }
    fn add(self, o: Self) -> Self {
        self + o
    }
    fn recip(self) -> Self {
        1.0 / self
    }
}

fn forward<T: Float>(x: &[T], rows: usize, tq: usize, tk: usize) -> Vec<T> {
    let mut out = vec![T::ZERO; x.len()];
    for r in 0..rows {
        let valid = r % tq + (tk - tq) + 1;
        let xr = &x[r * tk..r * tk + valid];
        let yr = &mut out[r * tk..r * tk + valid];
        let mut max = T::NEG_INF;
        for &v in xr {
            if v > max {
                max = v;
            }
        }
        let mut sum = T::ZERO;
        for (y, &v) in yr.iter_mut().zip(xr) {
            *y = (v - max).exp();
            sum = sum.add(*y);
        }
        let inv = sum.recip();
        yr.iter_mut().for_each(|y| *y = *y * inv);
    }
    out
}

fn backward<T: Float>(y: &[T], dy: &[T], rows: usize, tq: usize, tk: usize) -> Vec<T> {
    let mut out = vec![T::ZERO; y.len()];
    for r in 0..rows {
        let valid = r % tq + (tk - tq) + 1;
        let (a, b) = (r * tk, r * tk + valid);
        let mut dot = T::ZERO;
        for (&yv, &g) in y[a..b].iter().zip(&dy[a..b]) {
            dot = dot.add(yv * g);
        }
        for ((o, &yv), &g) in out[a..b].iter_mut().zip(&y[a..b]).zip(&dy[a..b]) {
            *o = yv * (g - dot);
        }
    }
    out
}

impl CustomOp1 for CausalSoftmax {
    fn name(&self) -> &'static str {
        "causal-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (rows, tq, tk) = dims(l.shape())?;
        let out = match s {
            CpuStorage::F32(v) => {
                CpuStorage::F32(forward(contiguous_slice(v, l, "causal_softmax")?, rows, tq, tk))
            }
            CpuStorage::F64(v) => {
                CpuStorage::F64(forward(contiguous_slice(v, l, "causal_softmax")?, rows, tq, tk))
            }
            _ => candle_core::bail!("causal_softmax supports f32 and f64"),
        };
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let g = res.apply_op2_no_bwd(&grad_res.contiguous()?, &CausalSoftmaxGrad)?;
        Ok(Some(g))
    }
}

impl CustomOp2 for CausalSoftmaxGrad {
    fn name(&self) -> &'static str {
        "causal-softmax-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (rows, tq, tk) = dims(l1.shape())?;
        let out = match (s1, s2) {
            (CpuStorage::F32(y), CpuStorage::F32(g)) => CpuStorage::F32(backward(
                contiguous_slice(y, l1, "causal_softmax")?,
                contiguous_slice(g, l2, "causal_softmax")?,
                rows,
                tq,
                tk,
            )),
            (CpuStorage::F64(y), CpuStorage::F64(g)) => CpuStorage::F64(backward(
                contiguous_slice(y, l1, "causal_softmax")?,
                contiguous_slice(g, l2, "causal_softmax")?,
                rows,
                tq,
                tk,
            )),
            _ => candle_core::bail!("causal_softmax backward supports f32 and f64"),
        };
        Ok((out, l1.shape().clone()))
    }
}
