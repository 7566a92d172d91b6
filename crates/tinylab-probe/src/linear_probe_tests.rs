//! Probes recover planted linear structure and stay at chance on shuffled labels.

use ndarray::{Array1, Array2, Axis};

use super::*;
use crate::linalg::gaussian_matrix;

/// A planted feature: class `c` (uniform) shifts a Gaussian row by `4·μ_c`, where the `μ_c` are
/// orthonormal directions in `d` dims; rows get a non-standard offset and scale on purpose.
/// Bayes accuracy ≈ 0.995 (class means 4√2 apart: error ≈ 2·Φ(−2√2) ≈ 0.005).
fn planted_classes(n: usize, d: usize, classes: usize, seed: u64) -> (Array2<f64>, Vec<usize>) {
    let labels: Vec<usize> = permutation(n, seed).iter().map(|i| i % classes).collect();
    let mu = crate::linalg::random_orthonormal(d, classes, seed + 1); // [d, C]
    let mut x = gaussian_matrix(n, d, seed + 2);
    for (mut row, &y) in x.rows_mut().into_iter().zip(&labels) {
        row.scaled_add(4.0, &mu.column(y));
    }
    (x * 2.0 + 0.5, labels)
}

/// One-sided 4σ binomial margin over `p` for `n` trials (false alarm < 4·10⁻⁵ per check).
fn four_sigma(p: f64, n: usize) -> f64 {
    4.0 * (p * (1.0 - p) / n as f64).sqrt()
}

#[test]
fn splits_are_seeded_disjoint_and_cover_every_row() {
    let s = train_test_split(10, 0.3, 7).unwrap();
    assert_eq!((s.train.len(), s.test.len()), (7, 3));
    let mut all: Vec<usize> = s.train.iter().chain(&s.test).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..10).collect::<Vec<_>>());
    assert_eq!(s, train_test_split(10, 0.3, 7).unwrap());
    assert_ne!(s, train_test_split(10, 0.3, 8).unwrap());
    assert!(train_test_split(1, 0.5, 0).is_err() && train_test_split(10, 1.0, 0).is_err());
    let mut p = permutation(50, 3);
    p.sort_unstable();
    assert_eq!(p, (0..50).collect::<Vec<_>>());
}

#[test]
fn logistic_probe_recovers_a_planted_linear_feature() {
    let (x, labels) = planted_classes(600, 12, 3, 1);
    let split = train_test_split(600, 1.0 / 3.0, 2).unwrap();
    let r = logistic_probe(&x, &labels, 3, &LogisticConfig::default(), &split).unwrap();
    assert_eq!((r.n_train, r.n_test), (400, 200));
    assert!(r.test_accuracy >= 0.95, "test accuracy {}", r.test_accuracy);
    assert!(r.train_accuracy >= r.test_accuracy - 0.02);
    assert!(r.majority_baseline < 0.6);
    // Deterministic, and the raw-feature weights give the same logits.
    let again = logistic_probe(&x, &labels, 3, &LogisticConfig::default(), &split).unwrap();
    assert_eq!(again, r);
    let (w, b) = r.probe.raw_weights();
    let diff = (x.dot(&w) + &b) - r.probe.logits(&x).unwrap();
    assert!(diff.iter().all(|v| v.abs() < 1e-9));
    let p = r.probe.predict_proba(&x).unwrap();
    assert!(p.sum_axis(Axis(1)).iter().all(|s| (s - 1.0).abs() < 1e-12));
}

#[test]
fn logistic_probe_is_at_chance_on_shuffled_labels() {
    // Labels permuted independently of the features: any classifier's test predictions are
    // independent of the test labels, so its accuracy has mean Σ_c P(ŷ = c)·p_c ≤ p_max (the
    // largest test-class frequency) and binomial spread √(p(1−p)/n_test). We allow 4σ.
    let (x, labels) = planted_classes(600, 12, 3, 1);
    for seed in 0..4 {
        let perm = permutation(600, 100 + seed);
        let shuffled: Vec<usize> = perm.iter().map(|&i| labels[i]).collect();
        let split = train_test_split(600, 1.0 / 3.0, seed).unwrap();
        let r = logistic_probe(&x, &shuffled, 3, &LogisticConfig::default(), &split).unwrap();
        let p_max = (0..3)
            .map(|c| split.test.iter().filter(|&&i| shuffled[i] == c).count() as f64 / 200.0)
            .fold(0.0, f64::max);
        let bound = p_max + four_sigma(p_max, 200);
        assert!(r.test_accuracy <= bound, "seed {seed}: {} > {bound}", r.test_accuracy);
        assert!(r.train_accuracy > r.test_accuracy, "it can only memorize");
    }
}

#[test]
fn ridge_probe_recovers_a_planted_linear_target() {
    let x = gaussian_matrix(400, 10, 5);
    let w = gaussian_matrix(10, 2, 6);
    let y = x.dot(&w) + 3.0 + gaussian_matrix(400, 2, 7) * 0.1;
    let split = train_test_split(400, 0.5, 8).unwrap();
    let r = ridge_probe(&x, &y, 1e-3, &split).unwrap();
    assert!(r.test_r2 > 0.99 && r.train_r2 > 0.99, "{} {}", r.train_r2, r.test_r2);
    assert!((&r.probe.weights - &w).iter().all(|v| v.abs() < 0.05));
    assert!(r.probe.bias.iter().all(|b| (b - 3.0).abs() < 0.05));
}

#[test]
fn ridge_probe_is_at_chance_on_shuffled_targets() {
    // With targets independent of the features the out-of-sample R² is ≤ corr(y, ŷ)² up to
    // sign, and corr ~ N(0, 1/n_test); 4σ gives R² ≤ 16 / n_test = 0.08 for n_test = 200.
    let x = gaussian_matrix(400, 10, 5);
    let y = x.dot(&gaussian_matrix(10, 1, 6));
    for seed in 0..4 {
        let perm = permutation(400, 50 + seed);
        let shuffled = y.select(Axis(0), &perm);
        let split = train_test_split(400, 0.5, seed).unwrap();
        let r = ridge_probe(&x, &shuffled, 1.0, &split).unwrap();
        assert!(r.test_r2 <= 16.0 / 200.0, "seed {seed}: test R² {}", r.test_r2);
    }
}

#[test]
fn probes_reject_bad_inputs() {
    let x = Array2::<f64>::zeros((4, 2));
    let split = Split { train: vec![0, 1], test: vec![2, 9] };
    assert!(ridge_probe(&x, &Array2::zeros((4, 1)), 0.1, &split).is_err());
    let ok = Split { train: vec![0, 1], test: vec![2, 3] };
    assert!(logistic_probe(&x, &[0, 1, 2, 0], 2, &LogisticConfig::default(), &ok).is_err());
    assert!(logistic_probe(&x, &[0, 1], 2, &LogisticConfig::default(), &ok).is_err());
    assert!(r_squared(&Array2::zeros((2, 1)), &Array2::zeros((3, 1))).is_err());
    let y = Array1::from_vec(vec![1.0, 2.0, 3.0]).insert_axis(Axis(1));
    assert_eq!(r_squared(&y, &y).unwrap(), 1.0);
    let probe = RidgeProbe::fit(&x, &Array2::zeros((4, 1)), 0.1).unwrap();
    assert!(probe.predict(&Array2::zeros((1, 3))).is_err());
}
