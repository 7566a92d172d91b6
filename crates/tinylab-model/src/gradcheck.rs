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
    check_masked_model(cfg, select_positions, &[])
}

/// [`check_model`] with per-layer attention masks (`T = 5`).
fn check_masked_model(cfg: &ModelConfig, select_positions: bool, masks: &[Option<Vec<bool>>]) -> f64 {
    let dev = Device::Cpu;
    let mut model = Model::new(cfg, 7, &dev, DType::F64).unwrap();
    model.set_attention_masks(masks, 5).unwrap();
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

/// A `5 × 5` mask: query 3 may attend only keys 0 and 1, query 4 only key 2.
fn tree_like_mask() -> Vec<bool> {
    let mut m = vec![true; 25];
    for k in 0..5 {
        m[3 * 5 + k] = k < 2;
        m[4 * 5 + k] = k == 2;
    }
    m
}

#[test]
fn attention_masks_softmax_and_linear() {
    for attention in [AttentionKind::Softmax, AttentionKind::Linear] {
        let cfg = ModelConfig { n_layers: 2, attention, mlp: true, ..base() };
        check_masked_model(&cfg, false, &[Some(tree_like_mask()), None]);
    }
    // The mask is applied: masked keys get no attention.
    let cfg = ModelConfig { n_layers: 2, ..base() };
    let mut m = Model::new(&cfg, 0, &Device::Cpu, DType::F64).unwrap();
    m.set_attention_masks(&[Some(tree_like_mask()), None], 5).unwrap();
    let hooks = crate::HookSet::of([crate::HookPoint::Pattern(0)]);
    let tokens = Tensor::new(&[[1u32, 2, 3, 4, 5]], &Device::Cpu).unwrap();
    let out = m.forward(&tokens, ForwardOptions { select: None, hooks: Some(&hooks) }).unwrap();
    let p = out.cache.get(crate::HookPoint::Pattern(0)).unwrap().get(0).unwrap().get(0).unwrap();
    let p = p.to_vec2::<f64>().unwrap();
    assert!(p[3][2] < 1e-12 && p[3][3] < 1e-12 && (p[3][0] + p[3][1] - 1.0).abs() < 1e-9);
    assert!((p[4][2] - 1.0).abs() < 1e-9);
    // Bad masks are refused; another sequence length is an error, not a silent broadcast.
    assert!(m.set_attention_masks(&[Some(vec![true; 24])], 5).is_err());
    let mut none_for_query_0 = vec![true; 25];
    none_for_query_0[0] = false;
    assert!(m.set_attention_masks(&[Some(none_for_query_0)], 5).is_err());
    let short = Tensor::new(&[[1u32, 2, 3]], &Device::Cpu).unwrap();
    m.set_attention_masks(&[Some(tree_like_mask())], 5).unwrap();
    assert!(m.forward(&short, ForwardOptions::default()).is_err());
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
