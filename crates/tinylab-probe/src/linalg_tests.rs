//! Tests of `linalg` against matrices with known decompositions `U · diag(s) · Vᵀ`.

use ndarray::{array, Array1, Array2, Axis};

use super::*;

fn max_abs(a: &Array2<f64>) -> f64 {
    a.iter().fold(0.0, |m, x| m.max(x.abs()))
}

/// `U diag(s) Vᵀ` `[m, n]` with Haar-random orthonormal `U` `[m, r]`, `V` `[n, r]`, `r = s.len()`.
fn planted(m: usize, n: usize, s: &[f64], seed: u64) -> (Array2<f64>, Array2<f64>, Array2<f64>) {
    let u = random_orthonormal(m, s.len(), seed);
    let v = random_orthonormal(n, s.len(), seed + 1000);
    let s = Array1::from_vec(s.to_vec());
    let a = (&u * &s.view().insert_axis(Axis(0))).dot(&v.t());
    (a, u, v)
}

#[test]
fn random_orthonormal_columns_are_orthonormal() {
    let q = random_orthonormal(9, 6, 3);
    assert!(max_abs(&(q.t().dot(&q) - Array2::<f64>::eye(6))) < 1e-13);
    assert_eq!(q, random_orthonormal(9, 6, 3), "seeded");
}

#[test]
fn svd_recovers_planted_singular_values_and_vectors() {
    let s = [4.0, 2.5, 1.0, 0.3, 0.01];
    for (m, n) in [(7, 5), (5, 7), (5, 5)] {
        let (a, u, v) = planted(m, n, &s, 11);
        let d = svd(&a).unwrap();
        assert_eq!(d.u.dim(), (m, 5));
        assert_eq!(d.vt.dim(), (5, n));
        for (got, want) in d.s.iter().zip(s) {
            assert!((got - want).abs() < 1e-10, "{m}x{n}: {got} vs {want}");
        }
        assert!(max_abs(&(d.reconstruct() - &a)) < 1e-12);
        assert!(max_abs(&(d.u.t().dot(&d.u) - Array2::<f64>::eye(5))) < 1e-12);
        assert!(max_abs(&(d.vt.dot(&d.vt.t()) - Array2::<f64>::eye(5))) < 1e-12);
        // Distinct singular values: vectors are unique up to a common sign per pair.
        for i in 0..5 {
            let cu = d.u.column(i).dot(&u.column(i));
            let cv = d.vt.row(i).dot(&v.column(i));
            assert!((cu.abs() - 1.0).abs() < 1e-8 && (cu - cv).abs() < 1e-8, "pair {i}: {cu} {cv}");
        }
        let sv = singular_values(&a).unwrap();
        assert!(sv.iter().zip(s).all(|(g, w)| (g - w).abs() < 1e-10));
    }
}

#[test]
fn norms_match_the_planted_spectrum() {
    let s = [3.0, 2.0, 0.5, 0.25];
    let (a, _, _) = planted(6, 8, &s, 5);
    let sum: f64 = s.iter().sum();
    let fro = s.iter().map(|x| x * x).sum::<f64>().sqrt();
    assert!((nuclear_norm(&a).unwrap() - sum).abs() < 1e-10);
    assert!((spectral_norm(&a).unwrap() - 3.0).abs() < 1e-10);
    assert!((frobenius_norm(&a) - fro).abs() < 1e-12);
    assert_eq!(spectral_norm(&Array2::zeros((0, 3))).unwrap(), 0.0);
}

#[test]
fn effective_rank_of_identity_rank_one_and_zero() {
    for n in [1, 4, 10] {
        assert!((effective_rank(&Array2::eye(n)).unwrap() - n as f64).abs() < 1e-10);
    }
    let x = gaussian_matrix(7, 1, 1);
    let y = gaussian_matrix(1, 5, 2);
    assert!((effective_rank(&x.dot(&y)).unwrap() - 1.0).abs() < 1e-10);
    assert_eq!(effective_rank(&Array2::zeros((3, 3))).unwrap(), 0.0);
    // Two equal values and one twice as large: p = (1/2, 1/4, 1/4), H = 1.5 ln 2.
    let e = effective_rank_from_singular_values(&[2.0, 1.0, 1.0]);
    assert!((e - (1.5 * 2f64.ln()).exp()).abs() < 1e-12);
}

#[test]
fn matrix_cosine_is_the_frobenius_angle() {
    let a = array![[1.0, 0.0], [0.0, 1.0]];
    let b = array![[0.0, 1.0], [1.0, 0.0]];
    assert_eq!(matrix_cosine(&a, &b).unwrap(), 0.0);
    assert!((matrix_cosine(&a, &(&a * -2.0)).unwrap() + 1.0).abs() < 1e-15);
    assert!((matrix_cosine(&a, &(&a + &b)).unwrap() - 0.5f64.sqrt()).abs() < 1e-15);
    assert!(matrix_cosine(&a, &Array2::zeros((2, 2))).unwrap().is_nan());
    assert!(matches!(matrix_cosine(&a, &Array2::zeros((2, 3))), Err(ProbeError::Shape(_))));
}

#[test]
fn lstsq_recovers_exact_and_least_squares_solutions() {
    // Square, well conditioned.
    let (a, _, _) = planted(6, 6, &[3.0, 2.0, 1.5, 1.0, 0.7, 0.5], 21);
    let x0 = gaussian_matrix(6, 2, 22);
    let sol = lstsq(&a, &a.dot(&x0)).unwrap();
    assert_eq!(sol.rank, 6);
    assert!(max_abs(&(&sol.x - &x0)) < 1e-12);
    // Over-determined, inconsistent: the residual is orthogonal to the columns of A.
    let a = gaussian_matrix(20, 4, 23);
    let b = gaussian_matrix(20, 1, 24);
    let x = lstsq(&a, &b).unwrap().x;
    assert!(max_abs(&a.t().dot(&(a.dot(&x) - &b))) < 1e-12);
}

#[test]
fn lstsq_gives_the_minimum_norm_solution_when_rank_deficient() {
    // Rank 3 in a 8×6 system: planted with three zero singular values.
    let (a, _, v) = planted(8, 6, &[2.0, 1.0, 0.5], 31);
    let x0 = gaussian_matrix(6, 1, 32);
    let sol = lstsq(&a, &a.dot(&x0)).unwrap();
    assert_eq!(sol.rank, 3);
    // Minimum-norm solution = projection of x0 onto the row space of A (span of V's columns).
    let want = v.dot(&v.t().dot(&x0));
    assert!(max_abs(&(&sol.x - &want)) < 1e-12);
    // Under-determined 2×5: also the minimum-norm one, A⁺ b = Aᵀ (A Aᵀ)⁻¹ b.
    let a = gaussian_matrix(2, 5, 33);
    let b = array![[1.0], [-2.0]];
    let x = lstsq(&a, &b).unwrap().x;
    let gram = a.dot(&a.t());
    let det = gram[[0, 0]] * gram[[1, 1]] - gram[[0, 1]] * gram[[1, 0]];
    let inv = array![[gram[[1, 1]], -gram[[0, 1]]], [-gram[[1, 0]], gram[[0, 0]]]] / det;
    assert!(max_abs(&(&x - &a.t().dot(&inv.dot(&b)))) < 1e-12);
    assert!(matches!(lstsq(&a, &Array2::zeros((3, 1))), Err(ProbeError::Shape(_))));
}

#[test]
fn ridge_shrinks_like_the_normal_equations() {
    let a = gaussian_matrix(15, 4, 41);
    let b = gaussian_matrix(15, 2, 42);
    let lambda = 0.7;
    let x = ridge_solve(&a, &b, lambda).unwrap();
    // (AᵀA + λI) X = AᵀB
    let lhs = (a.t().dot(&a) + Array2::<f64>::eye(4) * lambda).dot(&x);
    assert!(max_abs(&(lhs - a.t().dot(&b))) < 1e-12);
    assert!(ridge_solve(&a, &b, -1.0).is_err());
}

#[test]
fn low_rank_is_the_eckart_young_truncation() {
    let s = [5.0, 3.0, 2.0, 1.0];
    let (a, _, _) = planted(7, 6, &s, 51);
    let a2 = low_rank(&a, 2).unwrap();
    let err = frobenius_norm(&(&a - &a2));
    assert!((err - (4.0f64 + 1.0).sqrt()).abs() < 1e-10);
    let sv = singular_values(&a2).unwrap();
    assert!((sv[1] - 3.0).abs() < 1e-10 && sv[2] < 1e-10);
    assert!(max_abs(&(low_rank(&a, 10).unwrap() - &a)) < 1e-12);
}

#[test]
fn non_finite_input_is_an_error() {
    let a = array![[1.0, f64::NAN], [0.0, 1.0]];
    assert!(matches!(svd(&a), Err(ProbeError::InvalidArgument(_))));
    assert!(matches!(singular_values(&a), Err(ProbeError::InvalidArgument(_))));
}
