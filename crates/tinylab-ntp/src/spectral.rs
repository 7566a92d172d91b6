//! Spectral tools for small dense matrices (row-major `f64`, at most a few dozen rows): the
//! symmetric eigendecomposition by cyclic Jacobi rotations and singular values by one-sided
//! (Hestenes) Jacobi, which keeps small singular values accurate relative to themselves.
//! Used by the nuclear-norm SVM ([`crate::theory::w_svm_nuclear`]) and its reports.

/// Eigen-decomposition of a symmetric `n × n` row-major matrix by cyclic Jacobi sweeps.
/// Returns the eigenvalues (descending) and the eigenvectors as the columns of a row-major
/// `n × n` matrix, in the same order.
pub fn sym_eigen(a: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut m = a.to_vec();
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| m[i * n + j].powi(2))
            .sum();
        let diag: f64 = (0..n).map(|i| m[i * n + i].powi(2)).sum();
        if off <= 1e-30 * diag.max(1e-300) {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = m[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                let (app, aqq) = (m[p * n + p], m[q * n + q]);
                let theta = (aqq - app) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                // M ← Jᵀ M J with the rotation J in the (p, q) plane.
                for k in 0..n {
                    let (mkp, mkq) = (m[k * n + p], m[k * n + q]);
                    m[k * n + p] = c * mkp - s * mkq;
                    m[k * n + q] = s * mkp + c * mkq;
                }
                for k in 0..n {
                    let (mpk, mqk) = (m[p * n + k], m[q * n + k]);
                    m[p * n + k] = c * mpk - s * mqk;
                    m[q * n + k] = s * mpk + c * mqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| m[j * n + j].total_cmp(&m[i * n + i]));
    let vals = order.iter().map(|&i| m[i * n + i]).collect();
    let mut vecs = vec![0.0; n * n];
    for (col, &i) in order.iter().enumerate() {
        for k in 0..n {
            vecs[k * n + col] = v[k * n + i];
        }
    }
    (vals, vecs)
}

/// Singular values (descending) of a row-major `m × n` matrix, by one-sided Jacobi on its
/// columns: rotations orthogonalise the columns, whose norms are then the singular values.
pub fn singular_values(a: &[f64], m: usize, n: usize) -> Vec<f64> {
    // Work on the columns as contiguous vectors.
    let mut cols: Vec<Vec<f64>> = (0..n).map(|j| (0..m).map(|i| a[i * n + j]).collect()).collect();
    for _sweep in 0..100 {
        let mut rotated = false;
        for p in 0..n {
            for q in p + 1..n {
                let alpha: f64 = cols[p].iter().map(|x| x * x).sum();
                let beta: f64 = cols[q].iter().map(|x| x * x).sum();
                let gamma: f64 = cols[p].iter().zip(&cols[q]).map(|(x, y)| x * y).sum();
                if gamma.abs() <= 1e-15 * (alpha * beta).sqrt() || gamma == 0.0 {
                    continue;
                }
                rotated = true;
                let zeta = (beta - alpha) / (2.0 * gamma);
                let t = zeta.signum() / (zeta.abs() + (1.0 + zeta * zeta).sqrt());
                let t = if zeta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (1.0 + t * t).sqrt();
                let s = c * t;
                let (left, right) = cols.split_at_mut(q);
                for (x, y) in left[p].iter_mut().zip(right[0].iter_mut()) {
                    let (x0, y0) = (*x, *y);
                    *x = c * x0 - s * y0;
                    *y = s * x0 + c * y0;
                }
            }
        }
        if !rotated {
            break;
        }
    }
    let mut sv: Vec<f64> = cols.iter().map(|c| c.iter().map(|x| x * x).sum::<f64>().sqrt()).collect();
    sv.sort_by(|x, y| y.total_cmp(x));
    sv.truncate(m.min(n));
    sv
}

/// Nuclear norm (sum of singular values) of a row-major `d × d` matrix.
pub fn nuclear_norm(w: &[f64], d: usize) -> f64 {
    singular_values(w, d, d).iter().sum()
}

/// Spectral (operator) norm, the largest singular value, of a row-major `d × d` matrix.
pub fn op_norm(w: &[f64], d: usize) -> f64 {
    singular_values(w, d, d).first().copied().unwrap_or(0.0)
}

/// f(S) for a symmetric positive semi-definite `n × n` matrix S = Q diag(λ) Qᵀ: the matrix
/// Q diag(f(max(λ, 0))) Qᵀ (e.g. an inverse square root with a floor).
pub fn psd_function(s: &[f64], n: usize, f: impl Fn(f64) -> f64) -> Vec<f64> {
    let (vals, q) = sym_eigen(s, n);
    let fv: Vec<f64> = vals.iter().map(|&l| f(l.max(0.0))).collect();
    let mut out = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            out[i * n + j] = (0..n).map(|k| q[i * n + k] * fv[k] * q[j * n + k]).sum();
        }
    }
    out
}

/// Inverse and log-determinant of a symmetric positive definite `n × n` row-major matrix
/// (Cholesky), or `None` if it is not positive definite.
pub fn spd_inverse_logdet(a: &[f64], n: usize) -> Option<(Vec<f64>, f64)> {
    let l = crate::linalg::cholesky(a, n, 0.0)?;
    let logdet = 2.0 * (0..n).map(|i| l[i * n + i].ln()).sum::<f64>();
    // Columns of L⁻¹ by forward substitution, then A⁻¹ = L⁻ᵀ L⁻¹.
    let mut linv = vec![0.0; n * n];
    for c in 0..n {
        for i in c..n {
            let rhs = if i == c { 1.0 } else { 0.0 };
            let s: f64 = (c..i).map(|k| l[i * n + k] * linv[k * n + c]).sum();
            linv[i * n + c] = (rhs - s) / l[i * n + i];
        }
    }
    let mut inv = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let v: f64 = (i..n).map(|k| linv[k * n + i] * linv[k * n + j]).sum();
            inv[i * n + j] = v;
            inv[j * n + i] = v;
        }
    }
    Some((inv, logdet))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linalg::{matmul, transpose};

    #[test]
    fn jacobi_reconstructs_and_matches_known_spectra() {
        // Symmetric 3 × 3 with eigenvalues 3, 1, 1.
        let s = vec![2.0, -1.0, 0.0, -1.0, 2.0, 0.0, 0.0, 0.0, 1.0];
        let (vals, q) = sym_eigen(&s, 3);
        assert!(
            (vals[0] - 3.0).abs() < 1e-12 && (vals[1] - 1.0).abs() < 1e-12 && (vals[2] - 1.0).abs() < 1e-12
        );
        let qtq = matmul(&transpose(&q, 3, 3), &q, 3, 3, 3);
        for i in 0..3 {
            for j in 0..3 {
                assert!((qtq[i * 3 + j] - if i == j { 1.0 } else { 0.0 }).abs() < 1e-12);
            }
        }
        // f = identity reconstructs S; f = sqrt squares back to S.
        let id = psd_function(&s, 3, |l| l);
        let r = psd_function(&s, 3, f64::sqrt);
        let rr = matmul(&r, &r, 3, 3, 3);
        for i in 0..9 {
            assert!((id[i] - s[i]).abs() < 1e-12 && (rr[i] - s[i]).abs() < 1e-12);
        }
        // [[1,1],[0,1]]: singular values (√5 ± 1)/2; a rank-1 matrix has σ₂ = 0 to rounding.
        let sv = singular_values(&[1.0, 1.0, 0.0, 1.0], 2, 2);
        assert!((sv[0] - (5f64.sqrt() + 1.0) / 2.0).abs() < 1e-14);
        assert!((sv[1] - (5f64.sqrt() - 1.0) / 2.0).abs() < 1e-14);
        let sv1 = singular_values(&[1.0, 2.0, 3.0, 2.0, 4.0, 6.0], 2, 3);
        assert!(sv1[1] < 1e-14 && (sv1[0] - 70f64.sqrt()).abs() < 1e-12);
        assert!((nuclear_norm(&[3.0, 0.0, 0.0, -4.0], 2) - 7.0).abs() < 1e-14);
        assert!((op_norm(&[3.0, 0.0, 0.0, -4.0], 2) - 4.0).abs() < 1e-14);
        let (inv, ld) = spd_inverse_logdet(&s, 3).unwrap();
        let prod = matmul(&inv, &s, 3, 3, 3);
        for i in 0..3 {
            for j in 0..3 {
                assert!((prod[i * 3 + j] - if i == j { 1.0 } else { 0.0 }).abs() < 1e-12);
            }
        }
        assert!((ld - 3f64.ln()).abs() < 1e-12);
        assert!(spd_inverse_logdet(&[1.0, 2.0, 2.0, 1.0], 2).is_none());
    }
}
