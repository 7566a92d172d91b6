//! Seeded weight initialization: every random number comes from our own ChaCha8 stream
//! (candle's CPU RNG cannot be seeded).

use candle_core::{DType, Device, Result, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A seeded source of initial weights.
pub struct Init {
    rng: ChaCha8Rng,
    device: Device,
    dtype: DType,
}

impl Init {
    /// A generator seeded with `seed`, producing tensors of `dtype` on `device`.
    pub fn new(seed: u64, device: &Device, dtype: DType) -> Self {
        Self { rng: ChaCha8Rng::seed_from_u64(seed), device: device.clone(), dtype }
    }

    /// One standard normal draw (Box–Muller; stable across platforms).
    fn standard_normal(&mut self) -> f64 {
        let u1: f64 = 1.0 - self.rng.gen::<f64>(); // (0, 1]
        let u2: f64 = self.rng.gen::<f64>();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    fn tensor(&self, values: Vec<f64>, shape: &[usize]) -> Result<Tensor> {
        Tensor::from_vec(values, shape, &self.device)?.to_dtype(self.dtype)
    }

    /// Entries i.i.d. `N(0, std²)`.
    pub fn normal(&mut self, shape: &[usize], std: f64) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let values = (0..n).map(|_| std * self.standard_normal()).collect();
        self.tensor(values, shape)
    }

    /// Entries i.i.d. uniform on `[-bound, bound]`.
    pub fn uniform(&mut self, shape: &[usize], bound: f64) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let values = (0..n).map(|_| bound * (2.0 * self.rng.gen::<f64>() - 1.0)).collect();
        self.tensor(values, shape)
    }

    /// A constant tensor.
    pub fn full(&self, shape: &[usize], value: f64) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        self.tensor(vec![value; n], shape)
    }

    /// `[rows, cols]` with orthonormal rows (needs `rows ≤ cols`): Gram–Schmidt on Gaussian rows.
    pub fn orthonormal_rows(&mut self, rows: usize, cols: usize) -> Result<Tensor> {
        assert!(rows <= cols, "orthonormal_rows needs rows ≤ cols");
        let mut basis: Vec<Vec<f64>> = Vec::with_capacity(rows);
        while basis.len() < rows {
            let mut v: Vec<f64> = (0..cols).map(|_| self.standard_normal()).collect();
            for b in &basis {
                let dot: f64 = v.iter().zip(b).map(|(x, y)| x * y).sum();
                v.iter_mut().zip(b).for_each(|(x, y)| *x -= dot * y);
            }
            let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
            if norm > 1e-6 {
                basis.push(v.into_iter().map(|x| x / norm).collect());
            }
        }
        self.tensor(basis.concat(), &[rows, cols])
    }

    /// `[n, rows, cols]`: `n` copies of the identity (ones on the main diagonal).
    pub fn identity_stack(&self, n: usize, rows: usize, cols: usize) -> Result<Tensor> {
        let mut values = vec![0.0; n * rows * cols];
        for h in 0..n {
            for i in 0..rows.min(cols) {
                values[h * rows * cols + i * cols + i] = 1.0;
            }
        }
        self.tensor(values, &[n, rows, cols])
    }
}
