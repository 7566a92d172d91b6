//! Exact (erf) GELU as one custom op with a hand-written backward.
//!
//! `gelu(x) = x·Φ(x) = ½x(1 + erf(x/√2))`, `gelu'(x) = Φ(x) + x·φ(x)` with
//! `φ(x) = e^{−x²/2}/√(2π)`. candle's built-in `gelu_erf` spends most of an MLP step in a
//! scalar libm `erff` and builds ~12 temporaries in backward (perf-notes); here forward and
//! backward are one pass each. f32 uses the Abramowitz–Stegun 7.1.26 erf (|error| ≤ 1.5e-7,
//! below f32 rounding of the result) with a polynomial `exp` that vectorizes (relative error
//! ≤ 3e-7), compiled for AVX2 + FMA when the CPU has them; f64 uses libm's `erf`.

use super::contiguous_slice;
use crate::ensemble_par::exp_neg_f32;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

/// Elementwise exact GELU of a tensor (f32 or f64), differentiable.
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Gelu)
}

struct Gelu;
struct GeluGrad;

const FRAC_1_SQRT_2: f64 = std::f64::consts::FRAC_1_SQRT_2;
const FRAC_1_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// erf via Abramowitz–Stegun 7.1.26.
#[inline(always)]
fn erf_f32(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly =
        t * (0.254_829_6 + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152_1 + t * 1.061_405_4))));
    let y = 1.0 - poly * exp_neg_f32(-a * a);
    y.copysign(x)
}

#[inline(always)]
fn cdf_f32(x: f32) -> f32 {
    0.5 * (1.0 + erf_f32(x * FRAC_1_SQRT_2 as f32))
}

/// `gelu'(x)·g` in f32.
#[inline(always)]
fn gelu_grad_f32(x: f32, g: f32) -> f32 {
    g * (cdf_f32(x) + x * FRAC_1_SQRT_2PI as f32 * exp_neg_f32(-0.5 * x * x))
}

/// `gelu(x)` of every element, compiled for AVX2 + FMA when the CPU has them (the same
/// arithmetic either way: no FMA contraction, so the result does not depend on the CPU).
fn gelu_f32_slice(x: &[f32]) -> Vec<f32> {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2,fma")]
        unsafe fn fast(x: &[f32]) -> Vec<f32> {
            // a plain loop: a closure would be compiled without the features
            let mut out = vec![0.0f32; x.len()];
            for (o, &x) in out.iter_mut().zip(x) {
                *o = x * cdf_f32(x);
            }
            out
        }
        if crate::ensemble_par::has_avx2_fma() {
            // SAFETY: the CPU has the features `fast` is compiled for.
            return unsafe { fast(x) };
        }
    }
    x.iter().map(|&x| x * cdf_f32(x)).collect()
}

/// `gelu'(x)·g` of every element pair, dispatched as [`gelu_f32_slice`].
fn gelu_grad_f32_slice(x: &[f32], g: &[f32]) -> Vec<f32> {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2,fma")]
        unsafe fn fast(x: &[f32], g: &[f32]) -> Vec<f32> {
            let mut out = vec![0.0f32; x.len()];
            for ((o, &x), &g) in out.iter_mut().zip(x).zip(g) {
                *o = gelu_grad_f32(x, g);
            }
            out
        }
        if crate::ensemble_par::has_avx2_fma() {
            // SAFETY: the CPU has the features `fast` is compiled for.
            return unsafe { fast(x, g) };
        }
    }
    x.iter().zip(g).map(|(&x, &g)| gelu_grad_f32(x, g)).collect()
}

#[inline]
fn cdf_f64(x: f64) -> f64 {
    0.5 * (1.0 + libm::erf(x * FRAC_1_SQRT_2))
}

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "gelu-erf"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let out = match s {
            CpuStorage::F32(v) => CpuStorage::F32(gelu_f32_slice(contiguous_slice(v, l, "gelu")?)),
            CpuStorage::F64(v) => {
                CpuStorage::F64(contiguous_slice(v, l, "gelu")?.iter().map(|&x| x * cdf_f64(x)).collect())
            }
            _ => candle_core::bail!("gelu supports f32 and f64"),
        };
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(arg.contiguous()?.apply_op2_no_bwd(&grad_res.contiguous()?, &GeluGrad)?))
    }
}

impl CustomOp2 for GeluGrad {
    fn name(&self) -> &'static str {
        "gelu-erf-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let out = match (s1, s2) {
            (CpuStorage::F32(x), CpuStorage::F32(g)) => CpuStorage::F32(gelu_grad_f32_slice(
                contiguous_slice(x, l1, "gelu")?,
                contiguous_slice(g, l2, "gelu")?,
            )),
            (CpuStorage::F64(x), CpuStorage::F64(g)) => {
                let it = contiguous_slice(x, l1, "gelu")?.iter().zip(contiguous_slice(g, l2, "gelu")?);
                let d = |x: f64| cdf_f64(x) + x * FRAC_1_SQRT_2PI * (-0.5 * x * x).exp();
                CpuStorage::F64(it.map(|(&x, &g)| g * d(x)).collect())
            }
            _ => candle_core::bail!("gelu backward supports f32 and f64"),
        };
        Ok((out, l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    #[test]
    fn matches_candle_gelu_erf_in_f32_and_f64() {
        let xs: Vec<f64> = (-80..=80).map(|i| i as f64 * 0.1).collect();
        let x64 = Tensor::new(xs.as_slice(), &Device::Cpu).unwrap();
        for x in [x64.clone(), x64.to_dtype(candle_core::DType::F32).unwrap()] {
            let ours = super::gelu(&x).unwrap().to_dtype(candle_core::DType::F64).unwrap();
            let theirs = x.gelu_erf().unwrap().to_dtype(candle_core::DType::F64).unwrap();
            let d = (ours - theirs).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap();
            assert!(d < 1e-6, "{:?}: max abs diff {d}", x.dtype());
        }
    }

    #[test]
    fn f32_gradient_matches_f64() {
        // the f32 kernels (polynomial exp, AVX2 when available) against the f64 reference
        let xs: Vec<f64> = (-1200..=1200).map(|i| i as f64 * 0.01).collect();
        let grad = |dtype| {
            let x = candle_core::Var::from_tensor(
                &Tensor::new(xs.as_slice(), &Device::Cpu).unwrap().to_dtype(dtype).unwrap(),
            )
            .unwrap();
            let g = super::gelu(x.as_tensor()).unwrap().sum_all().unwrap().backward().unwrap();
            g.get(x.as_tensor()).unwrap().to_dtype(candle_core::DType::F64).unwrap().to_vec1::<f64>().unwrap()
        };
        let (a, b) = (grad(candle_core::DType::F32), grad(candle_core::DType::F64));
        let worst = a.iter().zip(&b).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(worst < 1e-6, "max abs diff of gelu' {worst}");
    }
}
