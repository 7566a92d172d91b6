//! Fixed positional signals: sinusoidal tables and rotary embeddings (RoPE).

use candle_core::{DType, Device, Result, Tensor, D};

/// Sinusoidal positions `[T, d]`: `PE[t, 2i] = sin(t/10000^{2i/d})`, `PE[t, 2i+1] = cos(…)`.
pub fn sinusoidal(t: usize, d: usize, dtype: DType, device: &Device) -> Result<Tensor> {
    let mut v = vec![0f64; t * d];
    for pos in 0..t {
        for i in 0..d {
            let freq = 1.0 / 10_000f64.powf((2 * (i / 2)) as f64 / d as f64);
            let a = pos as f64 * freq;
            v[pos * d + i] = if i % 2 == 0 { a.sin() } else { a.cos() };
        }
    }
    Tensor::from_vec(v, (t, d), device)?.to_dtype(dtype)
}

/// Rotary tables for one sequence length: `cos`, `sin` of shape `[T, d_head/2]`.
pub struct Rope {
    cos: Tensor,
    sin: Tensor,
}

impl Rope {
    /// Angles `θ_{t,i} = t · base^{−2i/d_head}`.
    pub fn new(t: usize, d_head: usize, base: f64, dtype: DType, device: &Device) -> Result<Self> {
        let half = d_head / 2;
        let mut c = vec![0f64; t * half];
        let mut s = vec![0f64; t * half];
        for pos in 0..t {
            for i in 0..half {
                let a = pos as f64 * base.powf(-2.0 * i as f64 / d_head as f64);
                c[pos * half + i] = a.cos();
                s[pos * half + i] = a.sin();
            }
        }
        Ok(Self {
            cos: Tensor::from_vec(c, (t, half), device)?.to_dtype(dtype)?,
            sin: Tensor::from_vec(s, (t, half), device)?.to_dtype(dtype)?,
        })
    }

    /// Rotates pairs `(x_i, x_{i+d/2})` by `θ_{t,i}` (rotate-half convention).
    ///
    /// # Shapes
    /// `x`: `[B, H, T, d_head]` → same.
    pub fn apply(&self, x: &Tensor) -> Result<Tensor> {
        let half = x.dim(D::Minus1)? / 2;
        let x1 = x.narrow(D::Minus1, 0, half)?;
        let x2 = x.narrow(D::Minus1, half, half)?;
        let a = (x1.broadcast_mul(&self.cos)? - x2.broadcast_mul(&self.sin)?)?;
        let b = (x1.broadcast_mul(&self.sin)? + x2.broadcast_mul(&self.cos)?)?;
        Tensor::cat(&[&a, &b], D::Minus1)
    }
}
