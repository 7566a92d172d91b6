//! CAT's causal depthwise convolution for every member as one op with a hand-written
//! backward: `y_t = Σ_{i<K} F_i ⊙ x_{t−i}` per sequence, with the member's filter (the solo
//! `ops::causal_conv` is `K` shifted views, products and sums: ~4K graph nodes).

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

use crate::ensemble_par::simd_fn;
use crate::ensemble_par::{par_chunks, par_chunks2, storage, tensor, view, with_host};

/// Causal depthwise convolution of every sequence with its member's filter.
///
/// # Shapes
/// `x`: `[S, B·T, d]` (sequences of length `t`); `filter`: `[S, K, d]`, row `i` = the taps of
/// lag `i` → `[S, B·T, d]`.
pub(crate) fn causal_conv(x: &Tensor, filter: &Tensor, t: usize) -> Result<Tensor> {
    x.contiguous()?.apply_op2(&filter.contiguous()?, Conv { t })
}

struct Conv {
    t: usize,
}

impl Conv {
    /// `(S, B, T, K, d)` from the two shapes.
    fn sizes(&self, x: &[usize], f: &[usize]) -> Result<(usize, usize, usize, usize, usize)> {
        let ([s, bt, d], [s2, k, d2]) = (x, f) else {
            candle_core::bail!("ensemble conv: bad ranks {x:?} {f:?}")
        };
        if d != d2 || s != s2 || self.t == 0 || bt % self.t != 0 {
            candle_core::bail!("ensemble conv: input {x:?} does not match filter {f:?} and T = {}", self.t);
        }
        Ok((*s, bt / self.t, self.t, *k, *d))
    }
}

simd_fn! {
    fn fwd<T>(x: &[T], f: &[T], dims: (usize, usize, usize, usize, usize)) -> Vec<T> {
        let (_, b, t, k, d) = dims;
        let mut y = vec![T::ZERO; x.len()];
        par_chunks(&mut y, t * d, |q, yq| {
            let (xq, fm) = (&x[q * t * d..(q + 1) * t * d], &f[(q / b) * k * d..(q / b + 1) * k * d]);
            for p in 0..t {
                let yr = &mut yq[p * d..(p + 1) * d];
                let xr = &xq[p * d..(p + 1) * d];
                (0..d).for_each(|c| yr[c] = xr[c] * fm[c]);
                for lag in 1..k.min(p + 1) {
                    let (xl, fl) = (&xq[(p - lag) * d..(p - lag + 1) * d], &fm[lag * d..(lag + 1) * d]);
                    (0..d).for_each(|c| yr[c] += xl[c] * fl[c]);
                }
            }
        });
        y
    }
}

simd_fn! {
    /// `(dx, dfilter)`; one task per member.
    fn bwd<T>(x: &[T], f: &[T], g: &[T], dims: (usize, usize, usize, usize, usize)) -> (Vec<T>, Vec<T>) {
        let (s, b, t, k, d) = dims;
        let mut dx = vec![T::ZERO; x.len()];
        let mut df = vec![T::ZERO; s * k * d];
        par_chunks2(&mut dx, b * t * d, &mut df, k * d, |m, dxm, dfm| {
            let fm = &f[m * k * d..(m + 1) * k * d];
            for q in 0..b {
                let o = (m * b + q) * t * d;
                let (xq, gq) = (&x[o..o + t * d], &g[o..o + t * d]);
                let dxq = &mut dxm[q * t * d..(q + 1) * t * d];
                for p in 0..t {
                    let gr = &gq[p * d..(p + 1) * d];
                    for lag in 0..k.min(p + 1) {
                        let xl = &xq[(p - lag) * d..(p - lag + 1) * d];
                        let dfl = &mut dfm[lag * d..(lag + 1) * d];
                        (0..d).for_each(|c| dfl[c] += gr[c] * xl[c]);
                        let (dxl, fl) = (&mut dxq[(p - lag) * d..(p - lag + 1) * d], &fm[lag * d..(lag + 1) * d]);
                        (0..d).for_each(|c| dxl[c] += gr[c] * fl[c]);
                    }
                }
            }
        });
        (dx, df)
    }
}

impl CustomOp2 for Conv {
    fn name(&self) -> &'static str {
        "ensemble-causal-conv"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        lx: &Layout,
        f: &CpuStorage,
        lf: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let dims = self.sizes(lx.dims(), lf.dims())?;
        let out = match x {
            CpuStorage::F64(_) => {
                storage(fwd::<f64>(view(x, lx, "ensemble conv")?, view(f, lf, "ensemble conv")?, dims))
            }
            _ => storage(fwd::<f32>(view(x, lx, "ensemble conv")?, view(f, lf, "ensemble conv")?, dims)),
        };
        Ok((out, lx.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        f: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dims = self.sizes(x.dims(), f.dims())?;
        macro_rules! go {
            ($t:ty) => {
                with_host::<$t, _>(x, "ensemble conv", |xs| {
                    with_host::<$t, _>(f, "ensemble conv", |fs| {
                        with_host::<$t, _>(g, "ensemble conv", |gs| {
                            let (dx, df) = bwd(xs, fs, gs, dims);
                            Ok((Some(tensor(dx, x.dims())?), Some(tensor(df, f.dims())?)))
                        })
                    })
                })
            };
        }
        match x.dtype() {
            candle_core::DType::F64 => go!(f64),
            _ => go!(f32),
        }
    }
}
