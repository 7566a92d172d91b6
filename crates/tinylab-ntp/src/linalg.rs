//! Tiny dense linear algebra on `f64` slices: square matrices are row-major `Vec<f64>` of
//! length `d·d`. Everything here is at most a few hundred entries, so plain loops are exact,
//! deterministic and faster than any library call overhead.

use rand::Rng;

/// Frobenius (Euclidean) inner product of two equally long slices.
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Euclidean / Frobenius norm.
pub fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

/// `⟨a, b⟩ / (‖a‖ ‖b‖)`, or 0 when either is zero.
pub fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let (na, nb) = (norm(a), norm(b));
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot(a, b) / (na * nb)
    }
}

/// `a − b`.
pub fn sub(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x - y).collect()
}

/// `x ← x + s·y`.
pub fn axpy(x: &mut [f64], s: f64, y: &[f64]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += s * b;
    }
}

/// The outer product `u vᵀ` flattened row-major (`u.len() × v.len()`).
pub fn outer(u: &[f64], v: &[f64]) -> Vec<f64> {
    let mut out = Vec::with_capacity(u.len() * v.len());
    for a in u {
        for b in v {
            out.push(a * b);
        }
    }
    out
}

/// `uᵀ W v` for a row-major `W` of shape `u.len() × v.len()`.
pub fn bilinear(u: &[f64], w: &[f64], v: &[f64]) -> f64 {
    let n = v.len();
    u.iter().enumerate().map(|(a, ua)| ua * dot(&w[a * n..(a + 1) * n], v)).sum()
}

/// Row-major product `A (m×k) · B (k×n)`.
pub fn matmul(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for p in 0..k {
            let aip = a[i * k + p];
            if aip == 0.0 {
                continue;
            }
            for j in 0..n {
                c[i * n + j] += aip * b[p * n + j];
            }
        }
    }
    c
}

/// Transpose of a row-major `m × n` matrix.
pub fn transpose(a: &[f64], m: usize, n: usize) -> Vec<f64> {
    let mut t = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            t[j * m + i] = a[i * n + j];
        }
    }
    t
}

/// A standard normal draw (Box–Muller; `rand` 0.8 has no normal distribution without
/// `rand_distr`).
pub fn gaussian<R: Rng>(rng: &mut R) -> f64 {
    let u1: f64 = 1.0 - rng.gen::<f64>(); // (0, 1]
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Numerically stable softmax of `s` (empty in, empty out).
pub fn softmax(s: &[f64]) -> Vec<f64> {
    let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
    let z: f64 = e.iter().sum();
    e.into_iter().map(|x| x / z).collect()
}

/// Orthonormal basis (Gram–Schmidt, twice for stability) of the span of `vecs`; vectors whose
/// residual norm is below `tol · max(1, ‖v‖)` are dropped as dependent.
pub fn orthonormal_basis(vecs: &[Vec<f64>], tol: f64) -> Vec<Vec<f64>> {
    let mut basis: Vec<Vec<f64>> = Vec::new();
    for v in vecs {
        let mut r = v.clone();
        for _ in 0..2 {
            for b in &basis {
                let c = dot(b, &r);
                axpy(&mut r, -c, b);
            }
        }
        let nr = norm(&r);
        if nr > tol * norm(v).max(1.0) {
            r.iter_mut().for_each(|x| *x /= nr);
            basis.push(r);
        }
    }
    basis
}

/// Orthogonal projection of `w` onto the span of an orthonormal `basis` (zero if empty).
pub fn project(basis: &[Vec<f64>], w: &[f64]) -> Vec<f64> {
    let mut p = vec![0.0; w.len()];
    for b in basis {
        axpy(&mut p, dot(b, w), b);
    }
    p
}

/// Solves `(H + λI) x = g` for a symmetric positive semi-definite `n × n` row-major `H` by
/// Cholesky, raising `λ` (from `lambda0`, ×10 each try) until the factorisation succeeds.
pub fn solve_psd(h: &[f64], g: &[f64], n: usize, lambda0: f64) -> Vec<f64> {
    let scale = (0..n).map(|i| h[i * n + i].abs()).fold(0.0, f64::max).max(1e-300);
    let mut lambda = lambda0 * scale;
    loop {
        if let Some(l) = cholesky(h, n, lambda) {
            // forward then backward substitution
            let mut y = vec![0.0; n];
            for i in 0..n {
                let s: f64 = (0..i).map(|k| l[i * n + k] * y[k]).sum();
                y[i] = (g[i] - s) / l[i * n + i];
            }
            let mut x = vec![0.0; n];
            for i in (0..n).rev() {
                let s: f64 = (i + 1..n).map(|k| l[k * n + i] * x[k]).sum();
                x[i] = (y[i] - s) / l[i * n + i];
            }
            return x;
        }
        lambda = if lambda == 0.0 { 1e-14 * scale } else { lambda * 10.0 };
    }
}

/// Cholesky factor L (row-major, lower triangular) of `H + λI` for a symmetric `n × n`
/// row-major `H`, or `None` if that matrix is not (numerically) positive definite.
pub fn cholesky(h: &[f64], n: usize, lambda: f64) -> Option<Vec<f64>> {
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let mut s = h[i * n + j] + if i == j { lambda } else { 0.0 };
            for k in 0..j {
                s -= l[i * n + k] * l[j * n + k];
            }
            if i == j {
                if s <= 0.0 || !s.is_finite() {
                    return None;
                }
                l[i * n + i] = s.sqrt();
            } else {
                l[i * n + j] = s / l[j * n + j];
            }
        }
    }
    Some(l)
}

/// Mean and (population) standard deviation.
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let m = v.iter().sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len() as f64;
    (m, var.sqrt())
}

/// Least-squares slope of `y` on `x`.
pub fn ls_slope(x: &[f64], y: &[f64]) -> f64 {
    let (mx, _) = mean_std(x);
    let (my, _) = mean_std(y);
    let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let sxx: f64 = x.iter().map(|a| (a - mx) * (a - mx)).sum();
    sxy / sxx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psd_solve_and_basis() {
        let h = vec![4.0, 1.0, 1.0, 3.0];
        let x = solve_psd(&h, &[1.0, 2.0], 2, 0.0);
        assert!((4.0 * x[0] + x[1] - 1.0).abs() < 1e-12 && (x[0] + 3.0 * x[1] - 2.0).abs() < 1e-12);
        let b = orthonormal_basis(&[vec![1.0, 1.0, 0.0], vec![2.0, 2.0, 0.0], vec![0.0, 1.0, 1.0]], 1e-10);
        assert_eq!(b.len(), 2);
        assert!(dot(&b[0], &b[1]).abs() < 1e-12);
        let p = project(&b, &[1.0, 0.0, 0.0]);
        assert!(norm(&sub(&project(&b, &p), &p)) < 1e-12, "a projection is idempotent");
        assert!((ls_slope(&[0.0, 1.0, 2.0], &[1.0, 3.0, 5.0]) - 2.0).abs() < 1e-12);
        assert_eq!(matmul(&[1.0, 2.0], &[3.0, 4.0], 1, 2, 1), vec![11.0]);
        assert_eq!(transpose(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3), vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    }
}
