//! Composition scores on constructed head pairs with known answers.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use ndarray::{Array1, Array2};
use tinylab_model::{Model, ModelConfig, WeightsKind};

use super::*;
use crate::linalg::{frobenius_norm, gaussian_matrix, random_orthonormal};

fn outer(u: &Array1<f64>, v: &Array1<f64>) -> Array2<f64> {
    u.view().insert_axis(Axis(1)).dot(&v.view().insert_axis(Axis(0)))
}

fn dense(m: Array2<f64>) -> FactoredMatrix {
    FactoredMatrix::from_dense(m)
}

/// Four orthonormal directions `u, v, w, z` in `d = 8`.
fn directions() -> [Array1<f64>; 4] {
    let q = random_orthonormal(8, 4, 17);
    [0, 1, 2, 3].map(|i| q.column(i).to_owned())
}

#[test]
fn a_receiver_reading_exactly_the_written_direction_scores_one() {
    let [u, v, w, z] = directions();
    let sender = dense(outer(&u, &v) * 2.0); // reads u, writes v
    let reads_v_as_query = dense(outer(&v, &w) * 3.0); // score x_q W_QK x_kᵀ: query side reads v
    let reads_v_as_key = dense(outer(&w, &v) * 0.5); // key side reads v
    let q = |r: &FactoredMatrix| composition_score(&sender, r).unwrap();
    let k = |r: &FactoredMatrix| composition_score(&sender, &r.transpose()).unwrap();
    assert!((q(&reads_v_as_query) - 1.0).abs() < 1e-12);
    assert!(k(&reads_v_as_query).abs() < 1e-12, "the key side reads w ⟂ v");
    assert!((k(&reads_v_as_key) - 1.0).abs() < 1e-12);
    assert!(q(&reads_v_as_key).abs() < 1e-12);
    assert!((composition_score(&sender, &dense(outer(&v, &z))).unwrap() - 1.0).abs() < 1e-12);
    assert!((composition_score_bound(&sender, &reads_v_as_query).unwrap() - 1.0).abs() < 1e-12);
}

#[test]
fn coinciding_rank_r_subspaces_reach_the_bound_and_orthogonal_ones_score_zero() {
    let d = 12;
    let basis = random_orthonormal(d, d, 5);
    let (reads, writes, other) =
        (random_orthonormal(d, 3, 6), basis.slice(ndarray::s![.., ..3]), random_orthonormal(d, 3, 7));
    let sender = FactoredMatrix::new(reads, writes.t().to_owned()).unwrap(); // U_r V_rᵀ, flat
    let receiver = FactoredMatrix::new(writes.to_owned(), other.t().to_owned()).unwrap(); // V_r W_rᵀ
    let score = composition_score(&sender, &receiver).unwrap();
    assert!((score - 1.0 / 3f64.sqrt()).abs() < 1e-12, "{score}");
    assert!((composition_score_bound(&sender, &receiver).unwrap() - score).abs() < 1e-12);
    // The receiver reads the orthogonal complement of what the sender writes.
    let complement = basis.slice(ndarray::s![.., 3..]).to_owned();
    let blind = FactoredMatrix::new(complement, gaussian_matrix(d - 3, d, 8)).unwrap();
    assert!(composition_score(&sender, &blind).unwrap() < 1e-14);
}

#[test]
fn random_gaussian_pairs_score_about_one_over_sqrt_d() {
    let d = 64;
    for seed in 0..6 {
        let s = dense(gaussian_matrix(d, d, 100 + seed));
        let r = dense(gaussian_matrix(d, d, 200 + seed));
        let x = composition_score(&s, &r).unwrap() * (d as f64).sqrt();
        assert!((0.85..1.15).contains(&x), "dense seed {seed}: √d·score = {x}");
        // Low-rank Gaussian factors (d_head = 16) have the same expectation: E‖S R‖² = d³k².
        let s = FactoredMatrix::new(gaussian_matrix(d, 16, 300 + seed), gaussian_matrix(16, d, 400 + seed));
        let r = FactoredMatrix::new(gaussian_matrix(d, 16, 500 + seed), gaussian_matrix(16, d, 600 + seed));
        let x = composition_score(&s.unwrap(), &r.unwrap()).unwrap() * (d as f64).sqrt();
        assert!((0.75..1.25).contains(&x), "factored seed {seed}: √d·score = {x}");
    }
}

#[test]
fn component_scores_split_the_composed_norm() {
    let [u, v, w, z] = directions();
    let sender = dense(outer(&u, &v) * 3.0 + outer(&w, &z)); // σ = 3 writes v, σ = 1 writes z
    let comps = component_composition_scores(&sender, &dense(outer(&v, &u))).unwrap();
    assert!((comps[0].sigma - 3.0).abs() < 1e-12 && (comps[1].sigma - 1.0).abs() < 1e-12);
    assert!((comps[0].score - 1.0).abs() < 1e-12 && comps[1].score.abs() < 1e-12);
    assert!((comps[0].share - 1.0).abs() < 1e-12 && comps[1].share.abs() < 1e-12);
    assert!(comps[2..].iter().all(|c| c.sigma < 1e-12));
    // Random: shares sum to 1 and Σ σᵢ² scoreᵢ² = (score · ‖S‖_F)².
    let s = FactoredMatrix::new(gaussian_matrix(10, 4, 1), gaussian_matrix(4, 10, 2)).unwrap();
    let r = FactoredMatrix::new(gaussian_matrix(10, 3, 3), gaussian_matrix(3, 10, 4)).unwrap();
    let comps = component_composition_scores(&s, &r).unwrap();
    assert_eq!(comps.len(), 4);
    assert!((comps.iter().map(|c| c.share).sum::<f64>() - 1.0).abs() < 1e-12);
    let lhs: f64 = comps.iter().map(|c| (c.sigma * c.score).powi(2)).sum();
    let rhs = (composition_score(&s, &r).unwrap() * s.frobenius_norm().unwrap()).powi(2);
    assert!((lhs - rhs).abs() < 1e-10 * rhs);
}

/// Overwrites head `h` of the `[H, d, d]` weight `name`.
fn set_head(m: &mut Model, name: &str, h: usize, w: &Array2<f64>) {
    // Fresh copies: candle refuses to set a `Var` from a tensor sharing its storage.
    let mut all: HashMap<String, Tensor> =
        m.params().all().into_iter().map(|(n, t)| (n, t.copy().unwrap())).collect();
    let t = &all[name];
    let (n, r, c) = t.dims3().unwrap();
    let mut v = t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
    v[h * r * c..(h + 1) * r * c].copy_from_slice(w.as_standard_layout().as_slice().unwrap());
    let new = Tensor::from_vec(v, (n, r, c), &Device::Cpu).unwrap().to_dtype(t.dtype()).unwrap();
    all.insert(name.to_string(), new);
    m.load_weights(&all).unwrap();
}

fn model(weights: WeightsKind, n_layers: usize) -> Model {
    let c = ModelConfig { d_model: 8, n_layers, n_heads: 2, vocab_size: 5, weights, ..Default::default() };
    Model::new(&c, 9, &Device::Cpu, DType::F64).unwrap()
}

#[test]
fn model_heads_compose_through_the_planted_directions() {
    let [u, v, w, z] = directions();
    let mut m = model(WeightsKind::Combined, 2);
    set_head(&mut m, "blocks.0.attn.W_OV", 0, &outer(&u, &v)); // L0H0 writes v
    set_head(&mut m, "blocks.1.attn.W_QK", 1, &outer(&v, &w)); // L1H1 queries with v
    set_head(&mut m, "blocks.1.attn.W_OV", 0, &outer(&v, &z)); // L1H0 moves v
    let score = |s, r, k| head_composition_score(&m, s, r, k).unwrap();
    assert!((score((0, 0), (1, 1), CompositionKind::Q) - 1.0).abs() < 1e-12);
    assert!(score((0, 0), (1, 1), CompositionKind::K).abs() < 1e-12);
    assert!((score((0, 0), (1, 0), CompositionKind::V) - 1.0).abs() < 1e-12);
    assert!(head_composition_score(&m, (1, 0), (0, 1), CompositionKind::Q).is_err());
    assert!(head_composition_score(&m, (1, 0), (1, 1), CompositionKind::Q).is_err());
    let comps = head_component_scores(&m, (0, 0), (1, 1), CompositionKind::Q).unwrap();
    assert!((comps[0].score - 1.0).abs() < 1e-12 && (comps[0].share - 1.0).abs() < 1e-12);
    for kind in CompositionKind::ALL {
        let all = all_composition_scores(&m, kind).unwrap();
        assert_eq!(all.dim(), (2, 2, 2, 2));
        for (idx, &x) in all.indexed_iter() {
            let (l1, h1, l2, h2) = idx;
            if l1 < l2 {
                assert_eq!(x, score((l1, h1), (l2, h2), kind));
            } else {
                assert_eq!(x, 0.0, "{idx:?}");
            }
        }
    }
}

#[test]
fn factored_scores_equal_the_dense_formula_on_a_factorized_model() {
    let m = model(WeightsKind::Factorized, 3);
    let all = all_composition_scores(&m, CompositionKind::K).unwrap();
    for (l1, l2) in [(0, 1), (0, 2), (1, 2)] {
        for (h1, h2) in [(0, 0), (0, 1), (1, 0)] {
            let s = crate::circuits::ov_circuit(&m, l1, h1).unwrap().dense();
            let r = crate::circuits::qk_circuit(&m, l2, h2).unwrap().dense().reversed_axes();
            let want = frobenius_norm(&s.dot(&r)) / (frobenius_norm(&s) * frobenius_norm(&r));
            assert!((all[[l1, h1, l2, h2]] - want).abs() < 1e-12);
        }
    }
}
