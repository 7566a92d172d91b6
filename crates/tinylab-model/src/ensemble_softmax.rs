//! Row-parallel softmax ops of the ensemble with hand-written backward: the scaled causal
//! softmax of the attention scores (the solo `scores · scale` then `ops::causal_softmax`, in
//! one op that uses every compute thread), and the weighted log-likelihood of targets under
//! `log_softmax(logits)` (the solo `log_softmax` + `gather` + `mean`, in one op).

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor, D};

use crate::ensemble_par::simd_fn;
use crate::ensemble_par::{par_chunks, par_chunks2, storage, sum, tensor, view, with_host, Real};

/// `causal_softmax(scale · scores)`: row `i` of each `[T_q, T_k]` block (query at absolute
/// position `i + T_k − T_q`) is a softmax over keys `0..=i + T_k − T_q`, zeros after.
///
/// # Shapes
/// `scores`: `[…, T_q, T_k]` → same.
pub(crate) fn scaled_causal_softmax(scores: &Tensor, scale: f64) -> Result<Tensor> {
    scores.contiguous()?.apply_op1(Softmax { scale })
}

/// `out[r] = w[r] · log_softmax(logits[r])[targets[r]]`: with `w = −1/N` over a member's `N`
/// rows, the sum of its rows is its mean cross-entropy (gradient as the solo
/// `cross_entropy`); rows with `w = 0` (padding) contribute nothing.
///
/// # Shapes
/// `logits`: `[…, V]` with `M` rows in all; `targets`, `weights`: `M` each → `[…]`.
pub fn weighted_log_likelihood(logits: &Tensor, targets: &[u32], weights: &[f64]) -> Result<Tensor> {
    let v = logits.dim(D::Minus1)?;
    let m = logits.elem_count() / v.max(1);
    if targets.len() != m || weights.len() != m || targets.iter().any(|&y| y as usize >= v) {
        candle_core::bail!(
            "weighted_log_likelihood: {m} rows of {v} logits, {} targets, {} weights",
            targets.len(),
            weights.len()
        );
    }
    let keep = logits.track_op();
    let op = Picked { targets: targets.to_vec(), weights: weights.to_vec(), keep, probs: Mutex::new(None) };
    logits.contiguous()?.apply_op1(op)
}

struct Softmax {
    scale: f64,
}

fn dims(shape: &[usize]) -> Result<(usize, usize)> {
    match shape {
        [.., tq, tk] if tk >= tq => Ok((*tq, *tk)),
        _ => candle_core::bail!("scaled causal softmax needs [.., T_q, T_k] with T_k ≥ T_q, got {shape:?}"),
    }
}

simd_fn! {
    fn softmax_fwd<T>(x: &[T], tq: usize, tk: usize, scale: f64) -> Vec<T> {
        let mut out = vec![T::ZERO; x.len()];
        let scale = T::of(scale);
        par_chunks(&mut out, tk, |r, yr| {
            let valid = r % tq + (tk - tq) + 1;
            let xr = &x[r * tk..r * tk + valid];
            let mut max = T::NEG_INF;
            for &v in xr {
                if v * scale > max {
                    max = v * scale;
                }
            }
            yr[..valid].iter_mut().zip(xr).for_each(|(y, &v)| *y = (v * scale - max).exp_neg());
            let inv = T::of(1.0) / sum(&yr[..valid]);
            yr[..valid].iter_mut().for_each(|y| *y *= inv);
        });
        out
    }
}

simd_fn! {
    fn softmax_bwd<T>(y: &[T], g: &[T], tq: usize, tk: usize, scale: f64) -> Vec<T> {
        let mut out = vec![T::ZERO; y.len()];
        let scale = T::of(scale);
        par_chunks(&mut out, tk, |r, o| {
            let valid = r % tq + (tk - tq) + 1;
            let (yr, gr) = (&y[r * tk..r * tk + valid], &g[r * tk..r * tk + valid]);
            let dot = yr.iter().zip(gr).fold(T::ZERO, |a, (&y, &g)| a + y * g);
            for ((o, &y), &g) in o.iter_mut().zip(yr).zip(gr) {
                *o = scale * y * (g - dot);
            }
        });
        out
    }
}

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "ensemble-scaled-causal-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (tq, tk) = dims(l.dims())?;
        let out = match s {
            CpuStorage::F64(_) => storage(softmax_fwd::<f64>(view(s, l, "softmax")?, tq, tk, self.scale)),
            _ => storage(softmax_fwd::<f32>(view(s, l, "softmax")?, tq, tk, self.scale)),
        };
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        let (tq, tk) = dims(res.dims())?;
        macro_rules! go {
            ($t:ty) => {
                with_host::<$t, _>(res, "softmax", |y| {
                    with_host::<$t, _>(g, "softmax", |gs| {
                        tensor(softmax_bwd(y, gs, tq, tk, self.scale), res.dims())
                    })
                })
            };
        }
        Ok(Some(match res.dtype() {
            candle_core::DType::F64 => go!(f64)?,
            _ => go!(f32)?,
        }))
    }
}

struct Picked {
    targets: Vec<u32>,
    weights: Vec<f64>,
    /// Whether to keep the probabilities for the backward pass (when gradients are wanted).
    keep: bool,
    /// `softmax(logits)` `[M, V]`, kept by the forward pass.
    probs: Mutex<Option<CpuStorage>>,
}

impl Picked {
    /// `(out, probabilities)`: the probabilities are computed in passing (kept if `keep`).
    fn fwd<T: Real>(&self, x: &[T], v: usize) -> (Vec<T>, Vec<T>) {
        let mut out = vec![T::ZERO; self.targets.len()];
        let mut p = vec![T::ZERO; if self.keep { x.len() } else { 0 }];
        let row = |r: usize, o: &mut [T], pr: &mut [T]| {
            let xr = &x[r * v..(r + 1) * v];
            let max = xr.iter().fold(T::NEG_INF, |m, &v| if v > m { v } else { m });
            let mut scratch = Vec::new();
            let e = if pr.is_empty() {
                scratch.resize(v, T::ZERO);
                &mut scratch[..]
            } else {
                pr
            };
            e.iter_mut().zip(xr).for_each(|(p, &x)| *p = (x - max).exp_neg());
            let total = sum(e);
            let inv = T::of(1.0) / total;
            e.iter_mut().for_each(|p| *p *= inv);
            o[0] = T::of(self.weights[r]) * ((xr[self.targets[r] as usize] - max) - total.ln());
        };
        match self.keep {
            true => par_chunks2(&mut out, 1, &mut p, v, |r, o, pr| row(r, o, pr)),
            false => par_chunks(&mut out, 1, |r, o| row(r, o, &mut [])),
        }
        (out, p)
    }

    /// `g · w · (onehot − softmax)` per row, from the kept probabilities (or recomputed).
    fn bwd<T: Real>(&self, x: &[T], kept: Option<&[T]>, g: &[T], v: usize) -> Vec<T> {
        let mut out = vec![T::ZERO; x.len()];
        par_chunks(&mut out, v, |r, o| {
            let w = T::of(self.weights[r]) * g[r];
            if w == T::ZERO {
                return;
            }
            match kept {
                Some(p) => o.iter_mut().zip(&p[r * v..(r + 1) * v]).for_each(|(o, &p)| *o = T::ZERO - w * p),
                None => {
                    let xr = &x[r * v..(r + 1) * v];
                    let max = xr.iter().fold(T::NEG_INF, |m, &v| if v > m { v } else { m });
                    let lse = xr.iter().fold(T::ZERO, |a, &v| a + (v - max).exp()).ln();
                    o.iter_mut().zip(xr).for_each(|(o, &x)| *o = T::ZERO - w * ((x - max) - lse).exp());
                }
            }
            o[self.targets[r] as usize] += w;
        });
        out
    }
}

impl CustomOp1 for Picked {
    fn name(&self) -> &'static str {
        "ensemble-weighted-log-likelihood"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let dims = l.dims();
        let v = dims[dims.len() - 1];
        macro_rules! go {
            ($t:ty) => {{
                let (out, p) = self.fwd::<$t>(view(s, l, "log-likelihood")?, v);
                if self.keep {
                    *self.probs.lock().expect("probabilities lock") = Some(storage(p));
                }
                storage(out)
            }};
        }
        let out = match s {
            CpuStorage::F64(_) => go!(f64),
            _ => go!(f32),
        };
        Ok((out, Shape::from(&dims[..dims.len() - 1])))
    }

    fn bwd(&self, logits: &Tensor, _res: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        let v = logits.dim(D::Minus1)?;
        let kept = self.probs.lock().expect("probabilities lock");
        macro_rules! go {
            ($t:ty) => {
                with_host::<$t, _>(logits, "log-likelihood", |x| {
                    let p = kept.as_ref().and_then(|p| <$t as Real>::slice(p));
                    with_host::<$t, _>(g, "log-likelihood", |gs| tensor(self.bwd(x, p, gs, v), logits.dims()))
                })
            };
        }
        Ok(Some(match logits.dtype() {
            candle_core::DType::F64 => go!(f64)?,
            _ => go!(f32)?,
        }))
    }
}
