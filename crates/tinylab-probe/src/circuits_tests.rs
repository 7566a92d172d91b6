//! Tests of `FactoredMatrix` against dense algebra and of the circuits against the model.

use candle_core::{DType, Device, Tensor};
use ndarray::{s, Array2};
use tinylab_model::{
    ForwardOptions, HookPoint, HookSet, Model, ModelConfig, NormKind, PositionalKind, WeightsKind,
};

use super::*;
use crate::convert::tensor_to_array2;
use crate::linalg::{gaussian_matrix, singular_values};

fn max_abs(a: &Array2<f64>) -> f64 {
    a.iter().fold(0.0, |m, x| m.max(x.abs()))
}

#[test]
fn factored_spectrum_equals_the_dense_spectrum() {
    for (m, k, n) in [(9, 3, 7), (6, 8, 5), (4, 4, 10)] {
        let f = FactoredMatrix::new(gaussian_matrix(m, k, 1), gaussian_matrix(k, n, 2)).unwrap();
        let dense = f.dense();
        let want = singular_values(&dense).unwrap();
        let got = f.singular_values().unwrap();
        let r = m.min(n).min(k);
        assert_eq!(got.len(), r);
        assert!(max_abs(&(&got - &want.slice(s![..r])).insert_axis(ndarray::Axis(0))) < 1e-10);
        assert!(want.slice(s![r..]).iter().all(|x| *x < 1e-10), "beyond k the dense spectrum is 0");
        let d = f.svd().unwrap();
        assert!(max_abs(&(d.reconstruct() - &dense)) < 1e-10);
        assert!(max_abs(&(d.u.t().dot(&d.u) - Array2::<f64>::eye(r))) < 1e-10);
        assert!(max_abs(&(d.vt.dot(&d.vt.t()) - Array2::<f64>::eye(r))) < 1e-10);
        assert!((f.nuclear_norm().unwrap() - want.sum()).abs() < 1e-9);
        assert!((f.frobenius_norm().unwrap() - crate::linalg::frobenius_norm(&dense)).abs() < 1e-10);
        assert!((f.spectral_norm().unwrap() - want[0]).abs() < 1e-10);
    }
}

#[test]
fn factored_products_and_transpose() {
    let f = FactoredMatrix::new(gaussian_matrix(6, 2, 3), gaussian_matrix(2, 5, 4)).unwrap();
    assert_eq!(f.shape(), (6, 5));
    assert_eq!(f.transpose().dense(), f.dense().t());
    let l = gaussian_matrix(3, 6, 5);
    let r = gaussian_matrix(5, 4, 6);
    assert!(max_abs(&(f.left_mul(&l).unwrap().dense() - l.dot(&f.dense()))) < 1e-12);
    assert!(max_abs(&(f.right_mul(&r).unwrap().dense() - f.dense().dot(&r))) < 1e-12);
    let g = FactoredMatrix::new(gaussian_matrix(5, 3, 7), gaussian_matrix(3, 8, 8)).unwrap();
    let fg = f.compose(&g).unwrap();
    assert_eq!(fg.inner_dim(), 2, "kept through the smaller inner size");
    assert!(max_abs(&(fg.dense() - f.dense().dot(&g.dense()))) < 1e-12);
    let gf = g.transpose().compose(&f.transpose()).unwrap();
    assert_eq!(gf.inner_dim(), 2);
    assert!(max_abs(&(gf.dense() - g.dense().t().dot(&f.dense().t()))) < 1e-12);
    assert!(f.left_mul(&r).is_err() && f.right_mul(&l).is_err() && f.compose(&f).is_err());
    assert!(FactoredMatrix::new(gaussian_matrix(2, 3, 0), gaussian_matrix(2, 3, 0)).is_err());
    let dense = gaussian_matrix(4, 4, 9);
    assert_eq!(FactoredMatrix::from_dense(dense.clone()).dense(), dense);
}

fn cfg(weights: WeightsKind) -> ModelConfig {
    ModelConfig {
        d_model: 8,
        n_layers: 1,
        n_heads: 2,
        vocab_size: 11,
        weights,
        norm: NormKind::None,
        positional: PositionalKind::None,
        ..Default::default()
    }
}

fn head(model: &Model, name: &str, h: usize) -> Tensor {
    model.params().get(name).get(h).unwrap()
}

#[test]
fn circuits_equal_the_dense_weight_products() {
    let m =
        Model::new(&ModelConfig { n_layers: 2, ..cfg(WeightsKind::Factorized) }, 7, &Device::Cpu, DType::F32)
            .unwrap();
    for (l, h) in [(0, 0), (1, 1)] {
        let p = |w: &str| head(&m, &format!("blocks.{l}.attn.{w}"), h);
        let qk = tensor_to_array2(&p("W_Q").matmul(&p("W_K").t().unwrap()).unwrap()).unwrap();
        let ov = tensor_to_array2(&p("W_V").matmul(&p("W_O")).unwrap()).unwrap();
        let fqk = qk_circuit(&m, l, h).unwrap();
        assert_eq!((fqk.shape(), fqk.inner_dim()), ((8, 8), 4));
        assert!(max_abs(&(fqk.dense() - qk)) < 1e-5);
        assert!(max_abs(&(ov_circuit(&m, l, h).unwrap().dense() - ov)) < 1e-5);
    }
    let c =
        Model::new(&ModelConfig { n_layers: 2, ..cfg(WeightsKind::Combined) }, 7, &Device::Cpu, DType::F32)
            .unwrap();
    let w = tensor_to_array2(&head(&c, "blocks.1.attn.W_QK", 1)).unwrap();
    assert_eq!(qk_circuit(&c, 1, 1).unwrap().dense(), w);
    let w = tensor_to_array2(&head(&c, "blocks.0.attn.W_OV", 0)).unwrap();
    assert_eq!(ov_circuit(&c, 0, 0).unwrap().dense(), w);
    assert!(matches!(qk_circuit(&c, 2, 0), Err(ProbeError::NotFound(_))));
    assert!(matches!(ov_circuit(&c, 0, 2), Err(ProbeError::NotFound(_))));
}

/// One layer, no norm, no positions: the recorded scores are `scale · E[tᵢ] W_QK E[tⱼ]ᵀ` and the
/// head outputs read out through `W_U` are `Σ_h pattern_h · full_OV_h[t, :]`.
#[test]
fn token_circuits_reproduce_the_forward_pass() {
    for weights in [WeightsKind::Factorized, WeightsKind::Combined] {
        for tied in [false, true] {
            let c = ModelConfig { tied_unembed: tied, ..cfg(weights) };
            let m = Model::new(&c, 3, &Device::Cpu, DType::F32).unwrap();
            let toks = [3usize, 5, 1, 7, 3];
            let t = Tensor::new(&[toks.map(|x| x as u32)], &Device::Cpu).unwrap();
            let hooks = HookSet::of([HookPoint::AttnScores(0), HookPoint::Pattern(0), HookPoint::AttnOut(0)]);
            let out = m.forward(&t, ForwardOptions { select: None, hooks: Some(&hooks) }).unwrap();
            let get = |p: HookPoint| out.cache.get(p).unwrap().get(0).unwrap();
            let readout =
                tensor_to_array2(&get(HookPoint::AttnOut(0))).unwrap().dot(&unembedding(&m).unwrap());
            let mut want_readout = Array2::<f64>::zeros((toks.len(), c.vocab_size));
            for h in 0..c.n_heads {
                let scores = tensor_to_array2(&get(HookPoint::AttnScores(0)).get(h).unwrap()).unwrap();
                let pattern = tensor_to_array2(&get(HookPoint::Pattern(0)).get(h).unwrap()).unwrap();
                let qk = full_qk_circuit(&m, 0, h).unwrap().dense();
                let ov = full_ov_circuit(&m, 0, h).unwrap().dense();
                assert_eq!(qk.dim(), (11, 11));
                for (i, &ti) in toks.iter().enumerate() {
                    for (j, &tj) in toks.iter().enumerate() {
                        let want = c.score_scale() * qk[[ti, tj]];
                        assert!((scores[[i, j]] - want).abs() < 1e-4, "{weights:?} h{h} [{i},{j}]");
                    }
                    for (j, &tj) in toks.iter().enumerate() {
                        let mut row = want_readout.row_mut(i);
                        row.scaled_add(pattern[[i, j]], &ov.row(tj));
                    }
                }
            }
            assert!(max_abs(&(readout - want_readout)) < 1e-4, "{weights:?} tied={tied}");
        }
    }
}

#[test]
fn conv_filters_and_lag_summary() {
    let c = ModelConfig { conv_q: true, conv_v: true, conv_kernel: 3, ..cfg(WeightsKind::Factorized) };
    let m = Model::new(&c, 1, &Device::Cpu, DType::F32).unwrap();
    let f = conv_filters(&m, 0).unwrap();
    let names: Vec<&str> = f.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["conv_q", "conv_v"]);
    assert_eq!(f[0].1, tensor_to_array2(m.params().get("blocks.0.attn.conv_q")).unwrap());
    assert_eq!(f[1].1.dim(), (3, 8));
    assert!(conv_filters(&Model::new(&cfg(WeightsKind::Combined), 1, &Device::Cpu, DType::F32).unwrap(), 0)
        .unwrap()
        .is_empty());
    let taps = ndarray::array![[1.0, -3.0], [0.5, 0.5], [0.0, 0.0]];
    let sum = conv_lag_summary(&taps);
    assert_eq!(sum.len(), 3);
    assert_eq!((sum[0].lag, sum[0].mean_abs, sum[0].mean), (0, 2.0, -1.0));
    assert_eq!((sum[1].mean_abs, sum[1].mean), (0.5, 0.5));
    assert_eq!((sum[2].lag, sum[2].mean_abs), (2, 0.0));
}
