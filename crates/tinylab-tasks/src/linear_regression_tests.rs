//! Tests of the [`LinearRegression`](super::LinearRegression) task (a child module of
//! `linear_regression`, in its own file).

use super::*;
use crate::testutil::batch;
use crate::IGNORE;

fn task(cfg: LinearRegressionConfig) -> LinearRegression {
    LinearRegression::new(cfg).unwrap()
}

#[test]
fn pinned_layout_for_seed_0() {
    let t = task(LinearRegressionConfig { dim: 2, num_points: 3, ..Default::default() });
    let b = batch(&t, 0, 1);
    assert_eq!((b.batch_size, b.seq_len, b.num_features), (1, 4, 3));
    let r = |v: f32| (v * 100.0).round() / 100.0;
    let rows: Vec<Vec<f32>> = b.features.chunks(3).map(|c| c.iter().map(|&v| r(v)).collect()).collect();
    println!("{rows:?} y_q {}", b.values[3]);
    assert_eq!(b.targets, [IGNORE, IGNORE, IGNORE, 0]);
    assert_eq!(b.inputs, [0; 4]);
    assert_eq!(rows[3][2], 0.0, "the query's y-slot is 0");
    assert_eq!(&b.values[..3], &[0.0; 3]);
    let pinned = [[-1.96, 1.73, 5.49], [1.02, 0.27, -1.19], [-0.72, -1.06, -0.42], [-0.59, 1.04, 0.0]];
    assert_eq!(rows, pinned.iter().map(|r| r.to_vec()).collect::<Vec<_>>());
    assert_eq!(r(b.values[3]), 2.4);
}

#[test]
fn labels_are_linear_in_the_context_and_seeded() {
    for cov in [Covariates::Gaussian, Covariates::Uniform] {
        let t = task(LinearRegressionConfig { dim: 3, num_points: 5, covariates: cov, ..Default::default() });
        let b = batch(&t, 3, 8);
        assert_eq!(b, batch(&t, 3, 8));
        assert_ne!(b, batch(&t, 4, 8));
        assert_eq!(b.num_labelled(), 8);
        assert_eq!(b.features.len(), 8 * 6 * 4);
        for s in 0..8 {
            // Solve for w from the first 3 (generic) context points, then check the rest.
            let rows = b.feature_row(s);
            let a: Vec<[f64; 4]> = (0..3).map(|i| [0, 1, 2, 3].map(|j| rows[i * 4 + j] as f64)).collect();
            let w = solve3(&a);
            for i in 0..6 {
                let x = &rows[i * 4..i * 4 + 3];
                let y = (0..3).map(|j| w[j] * x[j] as f64).sum::<f64>();
                let label = if i < 5 { rows[i * 4 + 3] as f64 } else { b.value_row(s)[5] as f64 };
                assert!((y - label).abs() < 1e-3, "{y} vs {label}");
            }
            if cov == Covariates::Uniform {
                assert!(rows.chunks(4).all(|c| c[..3].iter().all(|x| x.abs() <= 0.5)));
            }
        }
    }
}

fn solve3(a: &[[f64; 4]]) -> [f64; 3] {
    let mut m: Vec<[f64; 4]> = a.to_vec();
    for c in 0..3 {
        let p = (c..3).max_by(|&i, &j| m[i][c].abs().total_cmp(&m[j][c].abs())).unwrap();
        m.swap(c, p);
        let pivot = m[c];
        for (r, row) in m.iter_mut().enumerate() {
            if r != c {
                let k = row[c] / pivot[c];
                row.iter_mut().zip(&pivot).for_each(|(v, p)| *v -= k * p);
            }
        }
    }
    [m[0][3] / m[0][0], m[1][3] / m[1][1], m[2][3] / m[2][2]]
}

#[test]
fn covariance_and_moments() {
    let t = task(LinearRegressionConfig { dim: 4, cov_condition: 8.0, ..Default::default() });
    let v = t.covariance_diag();
    assert!((v[0] - 1.0).abs() < 1e-12 && (v[3] - 0.125).abs() < 1e-12);
    let b = batch(&t, 1, 4000);
    let f = 5;
    for (j, lj) in v.iter().enumerate() {
        let xs: Vec<f64> = b.features.chunks(f).map(|c| c[j] as f64).collect();
        let m2 = xs.iter().map(|x| x * x).sum::<f64>() / xs.len() as f64;
        assert!((m2 / lj - 1.0).abs() < 0.05, "coordinate {j}: {m2} vs {lj}");
    }
}

#[test]
fn preconditioner_matches_eta_star_and_minimizes_the_empirical_loss() {
    let iso = task(LinearRegressionConfig::default());
    let eta = iso.eta_star();
    assert!((eta - 10.0 / 21.0).abs() < 1e-12);
    assert!(iso.gd_preconditioner().iter().all(|g| (g - eta).abs() < 1e-12));
    let inv = task(LinearRegressionConfig {
        cov_condition: 10.0,
        weight_prior: WeightPrior::InverseCovariance,
        ..Default::default()
    });
    for (g, l) in inv.gd_preconditioner().iter().zip(inv.covariance_diag()) {
        assert!((g * l - eta).abs() < 1e-12, "Γ = η* Σ⁻¹");
    }
    // The closed form is the minimizer of the empirical loss over a scalar multiple.
    for cfg in [
        LinearRegressionConfig::default(),
        LinearRegressionConfig { covariates: Covariates::Uniform, ..Default::default() },
        LinearRegressionConfig { noise_std: 0.5, ..Default::default() },
    ] {
        let t = task(cfg);
        let b = batch(&t, 5, 40_000);
        let g = t.gd_preconditioner();
        let y: Vec<f64> = (0..b.batch_size).map(|s| b.value_row(s)[b.seq_len - 1] as f64).collect();
        let loss = |c: f64| {
            let gs: Vec<f64> = g.iter().map(|x| x * c).collect();
            let p = gd_predictions(&b, &gs);
            p.iter().zip(&y).map(|(p, y)| (p - y).powi(2)).sum::<f64>() / y.len() as f64
        };
        let (l0, lo, hi) = (loss(1.0), loss(0.9), loss(1.1));
        assert!(l0 < lo && l0 < hi, "{:?}: {l0} {lo} {hi}", t.config().covariates);
    }
}

#[test]
fn invalid_configs_name_the_field() {
    let cases = [
        (LinearRegressionConfig { dim: 0, ..Default::default() }, "dim"),
        (LinearRegressionConfig { num_points: 0, ..Default::default() }, "num_points"),
        (LinearRegressionConfig { cov_diag: vec![1.0; 3], ..Default::default() }, "cov_diag"),
        (LinearRegressionConfig { cov_condition: 0.5, ..Default::default() }, "cov_condition"),
        (
            LinearRegressionConfig {
                covariates: Covariates::Uniform,
                cov_condition: 2.0,
                ..Default::default()
            },
            "covariates",
        ),
        (LinearRegressionConfig { noise_std: -1.0, ..Default::default() }, "noise_std"),
    ];
    for (cfg, key) in cases {
        assert_eq!(LinearRegression::new(cfg).unwrap_err().key(), key);
    }
}
