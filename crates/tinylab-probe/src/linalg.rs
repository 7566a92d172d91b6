//! Dense linear algebra on `ndarray::Array2<f64>`, computed by [faer](https://docs.rs/faer)
//! (pure Rust, backward-stable Householder QR and bidiagonal SVD).
//!
//! Conventions: a matrix `A` is `[m, n]` (m rows, n columns); `r = min(m, n)`. Singular values
//! are non-negative and sorted non-increasing. Every decomposition rejects NaN/±∞ entries with
//! [`ProbeError::InvalidArgument`] instead of returning garbage. Shape mismatches between two
//! operands are [`ProbeError::Shape`].
#![warn(missing_docs)]

use faer::{Mat, MatRef};
use ndarray::{Array1, Array2, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{ProbeError, Result};

fn to_faer(a: &Array2<f64>) -> Mat<f64> {
    Mat::from_fn(a.nrows(), a.ncols(), |i, j| a[[i, j]])
}

fn from_faer(m: MatRef<'_, f64>) -> Array2<f64> {
    Array2::from_shape_fn((m.nrows(), m.ncols()), |(i, j)| m[(i, j)])
}

fn check_finite(a: &Array2<f64>, what: &str) -> Result<()> {
    if a.iter().all(|x| x.is_finite()) {
        Ok(())
    } else {
        Err(ProbeError::InvalidArgument(format!("{what}: matrix {:?} has non-finite entries", a.dim())))
    }
}

/// A thin singular value decomposition `A = U · diag(s) · Vᵀ` of `A` `[m, n]`, `r = min(m, n)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Svd {
    /// Left singular vectors as orthonormal columns, `[m, r]`.
    pub u: Array2<f64>,
    /// Singular values `[r]`, non-negative, non-increasing.
    pub s: Array1<f64>,
    /// Right singular vectors as orthonormal rows, `[r, n]` (i.e. `Vᵀ`).
    pub vt: Array2<f64>,
}

impl Svd {
    /// `U · diag(s) · Vᵀ` `[m, n]`: the matrix the decomposition came from (up to rounding).
    pub fn reconstruct(&self) -> Array2<f64> {
        (&self.u * &self.s.view().insert_axis(Axis(0))).dot(&self.vt)
    }

    /// Number of singular values above `rcond · s_max` (0 for an empty or zero matrix).
    pub fn rank(&self, rcond: f64) -> usize {
        let tol = rcond * self.s.first().copied().unwrap_or(0.0);
        self.s.iter().filter(|&&x| x > tol && x > 0.0).count()
    }
}

/// Thin SVD of `A` `[m, n]`: `U` `[m, r]`, `s` `[r]`, `Vᵀ` `[r, n]` with `r = min(m, n)`.
pub fn svd(a: &Array2<f64>) -> Result<Svd> {
    check_finite(a, "svd")?;
    let (m, n) = a.dim();
    if m.min(n) == 0 {
        return Ok(Svd { u: Array2::zeros((m, 0)), s: Array1::zeros(0), vt: Array2::zeros((0, n)) });
    }
    let d = to_faer(a).thin_svd().map_err(|_| ProbeError::NoConvergence("svd"))?;
    let s = d.S().column_vector().iter().copied().collect();
    Ok(Svd { u: from_faer(d.U()), s, vt: from_faer(d.V().transpose()) })
}

/// The `min(m, n)` singular values of `A`, non-increasing (no singular vectors are formed).
pub fn singular_values(a: &Array2<f64>) -> Result<Array1<f64>> {
    check_finite(a, "singular_values")?;
    if a.is_empty() {
        return Ok(Array1::zeros(0));
    }
    let s = to_faer(a).singular_values().map_err(|_| ProbeError::NoConvergence("singular_values"))?;
    Ok(Array1::from_vec(s))
}

/// Thin QR `A = Q · R` of `A` `[m, n]`: `Q` `[m, r]` with orthonormal columns and `R` `[r, n]`
/// upper trapezoidal, `r = min(m, n)` (Householder, no pivoting).
pub fn thin_qr(a: &Array2<f64>) -> Result<(Array2<f64>, Array2<f64>)> {
    check_finite(a, "thin_qr")?;
    let (m, n) = a.dim();
    if m.min(n) == 0 {
        return Ok((Array2::zeros((m, 0)), Array2::zeros((0, n))));
    }
    let qr = to_faer(a).qr();
    Ok((from_faer(qr.compute_thin_Q().as_ref()), from_faer(qr.thin_R())))
}

/// Nuclear (trace) norm `‖A‖_* = Σᵢ σᵢ`.
pub fn nuclear_norm(a: &Array2<f64>) -> Result<f64> {
    Ok(singular_values(a)?.sum())
}

/// Frobenius norm `‖A‖_F = √(Σᵢⱼ Aᵢⱼ²) = √(Σᵢ σᵢ²)` (computed from the entries, no SVD).
pub fn frobenius_norm(a: &Array2<f64>) -> f64 {
    a.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// Spectral norm `‖A‖₂ = σ₁`, the largest singular value (0 for an empty matrix).
pub fn spectral_norm(a: &Array2<f64>) -> Result<f64> {
    Ok(singular_values(a)?.first().copied().unwrap_or(0.0))
}

/// Effective rank of Roy & Vetterli (2007), from singular values `σ`:
/// `erank = exp(H(p))` with `pᵢ = σᵢ / Σⱼ σⱼ` and `H(p) = −Σᵢ pᵢ ln pᵢ` (`0 ln 0 = 0`).
///
/// It lies in `[1, #σ]`: `k` equal non-zero singular values give exactly `k`, a rank-1 matrix
/// gives 1. By convention an all-zero (or empty) spectrum gives 0.
pub fn effective_rank_from_singular_values(s: &[f64]) -> f64 {
    let total: f64 = s.iter().map(|x| x.abs()).sum();
    if total <= 0.0 {
        return 0.0;
    }
    let h: f64 = s.iter().map(|x| x.abs() / total).filter(|&p| p > 0.0).map(|p| -p * p.ln()).sum();
    h.exp()
}

/// Effective rank of `A` (Roy & Vetterli 2007): `exp` of the Shannon entropy of the
/// L1-normalized singular values; see [`effective_rank_from_singular_values`].
pub fn effective_rank(a: &Array2<f64>) -> Result<f64> {
    Ok(effective_rank_from_singular_values(singular_values(a)?.as_slice().expect("contiguous")))
}

/// Cosine similarity of two matrices of the same shape: `⟨A, B⟩_F / (‖A‖_F ‖B‖_F)`, in
/// `[−1, 1]`, with `⟨A, B⟩_F = Σᵢⱼ Aᵢⱼ Bᵢⱼ = tr(AᵀB)`. NaN if either matrix is zero.
pub fn matrix_cosine(a: &Array2<f64>, b: &Array2<f64>) -> Result<f64> {
    if a.dim() != b.dim() {
        return Err(ProbeError::Shape(format!("matrix_cosine of {:?} and {:?}", a.dim(), b.dim())));
    }
    let dot: f64 = a.iter().zip(b.iter()).map(|(x, y)| x * y).sum();
    Ok(dot / (frobenius_norm(a) * frobenius_norm(b)))
}

/// A least-squares solution and the numerical rank used to get it.
#[derive(Debug, Clone, PartialEq)]
pub struct Lstsq {
    /// The minimum-norm minimizer `X` `[n, k]` of `‖A X − B‖_F`.
    pub x: Array2<f64>,
    /// Number of singular values of `A` kept (those `> rcond · σ₁`).
    pub rank: usize,
    /// All singular values of `A`, non-increasing.
    pub singular_values: Array1<f64>,
}

/// Least squares `min_X ‖A X − B‖_F` for `A` `[m, n]`, `B` `[m, k]` (one column per right-hand
/// side; a vector `b` is `b.insert_axis(Axis(1))`), with the default cut-off
/// `rcond = max(m, n) · ε` (NumPy's `lstsq` default). See [`lstsq_rcond`].
pub fn lstsq(a: &Array2<f64>, b: &Array2<f64>) -> Result<Lstsq> {
    lstsq_rcond(a, b, a.nrows().max(a.ncols()) as f64 * f64::EPSILON)
}

/// Least squares through the SVD: `X = V · diag(1/σᵢ if σᵢ > rcond·σ₁ else 0) · Uᵀ · B`.
///
/// Singular values at or below the cut-off are treated as exact zeros, so a rank-deficient
/// (or under-determined) system gets the minimum-norm solution (the pseudo-inverse's), and an
/// over-determined one the ordinary least-squares solution.
pub fn lstsq_rcond(a: &Array2<f64>, b: &Array2<f64>, rcond: f64) -> Result<Lstsq> {
    if a.nrows() != b.nrows() {
        return Err(ProbeError::Shape(format!("lstsq: A is {:?} but B is {:?}", a.dim(), b.dim())));
    }
    check_finite(b, "lstsq")?;
    let d = svd(a)?;
    let rank = d.rank(rcond);
    let inv: Array1<f64> =
        d.s.iter().enumerate().map(|(i, &s)| if i < rank { 1.0 / s } else { 0.0 }).collect();
    let x = spectral_filter_solve(&d, b, &inv);
    Ok(Lstsq { x, rank, singular_values: d.s })
}

/// `V · diag(f) · Uᵀ · B` for a filter `f` over the singular values.
fn spectral_filter_solve(d: &Svd, b: &Array2<f64>, f: &Array1<f64>) -> Array2<f64> {
    let utb = d.u.t().dot(b) * f.view().insert_axis(Axis(1)); // [r, k]
    d.vt.t().dot(&utb)
}

/// Ridge (Tikhonov) solution `X = (AᵀA + λI)⁻¹ AᵀB` for `A` `[m, n]`, `B` `[m, k]`, `λ ≥ 0`,
/// computed stably as `V · diag(σᵢ / (σᵢ² + λ)) · Uᵀ · B`. `λ = 0` is [`lstsq`].
pub fn ridge_solve(a: &Array2<f64>, b: &Array2<f64>, lambda: f64) -> Result<Array2<f64>> {
    if !(lambda >= 0.0 && lambda.is_finite()) {
        return Err(ProbeError::InvalidArgument(format!(
            "ridge lambda must be finite and ≥ 0, got {lambda}"
        )));
    }
    if lambda == 0.0 {
        return Ok(lstsq(a, b)?.x);
    }
    if a.nrows() != b.nrows() {
        return Err(ProbeError::Shape(format!("ridge: A is {:?} but B is {:?}", a.dim(), b.dim())));
    }
    check_finite(b, "ridge")?;
    let d = svd(a)?;
    let f = d.s.mapv(|s| s / (s * s + lambda));
    Ok(spectral_filter_solve(&d, b, &f))
}

/// Best rank-`k` approximation of `A` in Frobenius and spectral norm (Eckart–Young):
/// `Σ_{i<k} σᵢ uᵢ vᵢᵀ`. `k ≥ min(m, n)` returns `A` (as reconstructed from its SVD).
pub fn low_rank(a: &Array2<f64>, k: usize) -> Result<Array2<f64>> {
    let d = svd(a)?;
    let k = k.min(d.s.len());
    let u = d.u.slice(ndarray::s![.., ..k]);
    let s = d.s.slice(ndarray::s![..k]);
    let vt = d.vt.slice(ndarray::s![..k, ..]);
    Ok((&u * &s.insert_axis(Axis(0))).dot(&vt))
}

/// `[rows, cols]` with i.i.d. standard normal entries from a ChaCha8 stream seeded with `seed`
/// (Box–Muller; identical on every platform). For random baselines and tests.
pub fn gaussian_matrix(rows: usize, cols: usize, seed: u64) -> Array2<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_simple_fn((rows, cols), || {
        let u1: f64 = 1.0 - rng.gen::<f64>(); // (0, 1]
        let u2: f64 = rng.gen::<f64>();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    })
}

/// `[n, k]` (`k ≤ n`) with orthonormal columns, Haar-distributed: the `Q` of a seeded Gaussian
/// matrix's QR with signs fixed so that `diag(R) > 0`.
pub fn random_orthonormal(n: usize, k: usize, seed: u64) -> Array2<f64> {
    assert!(k <= n, "random_orthonormal needs k ≤ n (got n = {n}, k = {k})");
    let (mut q, r) = thin_qr(&gaussian_matrix(n, k, seed)).expect("finite Gaussian matrix");
    for (j, mut col) in q.axis_iter_mut(Axis(1)).enumerate() {
        if r[[j, j]] < 0.0 {
            col.mapv_inplace(|x| -x);
        }
    }
    q
}

#[cfg(test)]
#[path = "linalg_tests.rs"]
mod tests;
