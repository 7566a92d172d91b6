//! Finite-difference gradient checks (f64) for every op and configuration the model uses.
//! candle 0.11.1 silently detaches some ops and computes wrong gradients for others, so each
//! switchable part is checked here against central differences of the scalar loss.

use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::*;
use crate::model::{ForwardOptions, Model};
use crate::ops;

/// Scalar loss `Σ logits ⊙ R` for a fixed random `R`, so every logit matters.
fn loss(model: &Model, tokens: &Tensor, r: &Tensor, select: Option<&Tensor>) -> Tensor {
    let out = model.forward(tokens, ForwardOptions { select, hooks: None }).unwrap();
    out.logits.mul(r).unwrap().sum_all().unwrap()
}

/// Checks `probes` random entries of every trainable weight; returns the worst relative error.
fn check_model(cfg: &ModelConfig, select_positions: bool) -> f64 {
    let dev = Device::Cpu;
    let model = Model::new(cfg, 7, &dev, DType::F64).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (b, t, v) = (2usize, 5usize, cfg.vocab_size);
    let toks: Vec<u32> = (0..b * t).map(|_| rng.gen_range(0..v as u32)).collect();
    let tokens = Tensor::from_vec(toks, (b, t), &dev).unwrap();
    let select = select_positions.then(|| Tensor::new(&[1u32, 4, 7, 9], &dev).unwrap());
    let n_out = if select_positions { 4 * v } else { b * t * v };
    let rv: Vec<f64> = (0..n_out).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let r = if select_positions {
        Tensor::from_vec(rv, (4, v), &dev).unwrap()
    } else {
        Tensor::from_vec(rv, (b, t, v), &dev).unwrap()
    };
    let grads = loss(&model, &tokens, &r, select.as_ref()).backward().unwrap();
    let mut worst = 0f64;
    let trainable = model.params().trainable();
    assert!(!trainable.is_empty());
    for (name, var) in trainable {
        let g = grads.get(var.as_tensor()).unwrap_or_else(|| panic!("no gradient for {name} (detached?)"));
        let g = g.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let base = var.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        for _ in 0..4 {
            let i = rng.gen_range(0..base.len());
            let eps = 1e-5;
            let eval = |delta: f64| {
                let mut w = base.clone();
                w[i] += delta;
                var.set(&Tensor::from_vec(w, var.shape(), &dev).unwrap()).unwrap();
                loss(&model, &tokens, &r, select.as_ref()).to_scalar::<f64>().unwrap()
            };
            let fd = (eval(eps) - eval(-eps)) / (2.0 * eps);
            var.set(&Tensor::from_vec(base.clone(), var.shape(), &dev).unwrap()).unwrap();
            let err = (fd - g[i]).abs() / (fd.abs() + g[i].abs()).max(1e-6);
            assert!(err < 1e-4, "{name}[{i}]: finite difference {fd}, backward {}", g[i]);
            worst = worst.max(err);
        }
    }
    worst
}

fn base() -> ModelConfig {
    ModelConfig { d_model: 8, n_heads: 2, vocab_size: 6, max_seq_len: 8, ..Default::default() }
}

#[test]
fn softmax_factorized_with_qkv_convolutions() {
    let cfg = ModelConfig { conv_q: true, conv_k: true, conv_v: true, ..base() };
    check_model(&cfg, false);
}

#[test]
fn softmax_combined_with_qkv_convolutions() {
    let cfg =
        ModelConfig { weights: WeightsKind::Combined, conv_q: true, conv_k: true, conv_v: true, ..base() };
    check_model(&cfg, false);
}

#[test]
fn linear_factorized_and_combined() {
    for weights in [WeightsKind::Factorized, WeightsKind::Combined] {
        let cfg = ModelConfig { attention: AttentionKind::Linear, weights, conv_k: true, ..base() };
        check_model(&cfg, false);
    }
}

#[test]
fn l2_qk_norm_rope_mlp_two_layers() {
    let cfg = ModelConfig {
        n_layers: 2,
        qk_norm: QkNormKind::L2,
        qk_scale_init: 2.0,
        positional: PositionalKind::Rope,
        mlp: true,
        d_mlp: 12,
        ..base()
    };
    check_model(&cfg, true);
}

#[test]
fn learned_positions_rmsnorm_relu_tied() {
    let cfg = ModelConfig {
        positional: PositionalKind::Learned,
        norm: NormKind::RmsNorm,
        mlp: true,
        activation: Activation::Relu,
        tied_unembed: true,
        ..base()
    };
    check_model(&cfg, false);
}

#[test]
fn low_rank_value_width() {
    let cfg = ModelConfig { d_value: 3, ..base() };
    check_model(&cfg, false);
    let m = Model::new(&cfg, 0, &Device::Cpu, DType::F64).unwrap();
    let (h, d) = (cfg.n_heads, cfg.d_model);
    assert_eq!(m.params().get("blocks.0.attn.W_V").dims(), &[h, d, 3]);
    assert_eq!(m.params().get("blocks.0.attn.W_O").dims(), &[h, 3, d]);
}

#[test]
fn no_norm_no_residual_sinusoidal_frozen_identity_key() {
    let cfg = ModelConfig {
        n_heads: 1,
        embedding: EmbeddingKind::Orthonormal,
        positional: PositionalKind::Sinusoidal,
        norm: NormKind::None,
        residual: false,
        attention: AttentionKind::Linear,
        freeze: vec!["W_K".into(), "W_E".into()],
        identity_init: vec!["W_K".into()],
        ..base()
    };
    check_model(&cfg, false);
    let m = Model::new(&cfg, 0, &Device::Cpu, DType::F64).unwrap();
    assert!(m.params().is_frozen("blocks.0.attn.W_K"));
    let wk = m.params().get("blocks.0.attn.W_K").squeeze(0).unwrap().to_vec2::<f64>().unwrap();
    assert_eq!(wk[3][3], 1.0);
    assert_eq!(wk[3][2], 0.0);
}

#[test]
fn causal_softmax_matches_masked_softmax() {
    let dev = Device::Cpu;
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let x: Vec<f64> = (0..2 * 3 * 4 * 4).map(|_| rng.gen_range(-3.0..3.0)).collect();
    let x = Tensor::from_vec(x, (2, 3, 4, 4), &dev).unwrap();
    let ours = ops::causal_softmax(&x).unwrap();
    let mask = Tensor::tril2(4, DType::F64, &dev).unwrap();
    let neg = ((mask.ones_like().unwrap() - &mask).unwrap() * -1e30).unwrap();
    let reference = candle_nn::ops::softmax(&x.broadcast_add(&neg).unwrap(), candle_core::D::Minus1).unwrap();
    let diff = (ours - reference).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap();
    assert!(diff < 1e-12, "max abs diff {diff}");
}

#[test]
fn causal_conv_is_a_causal_shift_filter() {
    let dev = Device::Cpu;
    // x_t = t+1 in one channel; filter: lag0 = 1, lag1 = 10 → y_t = x_t + 10·x_{t−1}.
    let x = Tensor::new(&[[[1f64], [2.], [3.]]], &dev).unwrap();
    let f = Tensor::new(&[[1f64], [10.]], &dev).unwrap();
    let y = ops::causal_conv(&x, &f).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
    assert_eq!(y, vec![1.0, 12.0, 23.0]);
}
