//! The seed-batched model against its solo members: same initial weights, same logits and the
//! same gradients (in f64, to rounding) for every switchable part; member slicing, retaining
//! and loading.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::*;
use crate::ensemble::EnsembleModel;
use crate::model::{ForwardOptions, Model};

const SEEDS: [u64; 3] = [5, 9, 11];
const B: usize = 2;
const T: usize = 6;
const N: usize = 4;

/// Largest `|a − b| / max(|a|, |b|, 1e-3)` over two tensors of one shape.
fn rel_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims());
    let a = a.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let b = b.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    a.iter().zip(&b).map(|(x, y)| (x - y).abs() / x.abs().max(y.abs()).max(1e-3)).fold(0.0, f64::max)
}

/// Per member: tokens `[B, T]`, selected flat positions `[N]`, logit weights `[N, V]`.
fn member_inputs(cfg: &ModelConfig, t: usize, rng: &mut ChaCha8Rng) -> (Tensor, Tensor, Tensor) {
    let dev = Device::Cpu;
    let v = cfg.vocab_size;
    let toks: Vec<u32> = (0..B * t).map(|_| rng.gen_range(0..v as u32)).collect();
    let mut sel: Vec<u32> = (0..(B * t) as u32).collect();
    for i in 0..N {
        let j = rng.gen_range(i..sel.len());
        sel.swap(i, j);
    }
    sel.truncate(N);
    let r: Vec<f64> = (0..N * v).map(|_| rng.gen_range(-1.0..1.0)).collect();
    (
        Tensor::from_vec(toks, (B, t), &dev).unwrap(),
        Tensor::from_vec(sel, N, &dev).unwrap(),
        Tensor::from_vec(r, (N, v), &dev).unwrap(),
    )
}

/// Builds the ensemble of `SEEDS` and the solo models; checks initial weights, logits and the
/// gradient of `Σ_i Σ logits_i ⊙ R_i` for every weight of every member.
fn check_against_solo(cfg: &ModelConfig) {
    check_against_solo_at(cfg, T);
}

/// [`check_against_solo`] with sequences of length `t`.
fn check_against_solo_at(cfg: &ModelConfig, t: usize) {
    let dev = Device::Cpu;
    let ens = EnsembleModel::new(cfg, &SEEDS, &dev, DType::F64).unwrap();
    let solo: Vec<Model> = SEEDS.iter().map(|&s| Model::new(cfg, s, &dev, DType::F64).unwrap()).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let inputs: Vec<_> = solo.iter().map(|_| member_inputs(cfg, t, &mut rng)).collect();
    let stack = |f: fn(&(Tensor, Tensor, Tensor)) -> &Tensor| {
        Tensor::stack(&inputs.iter().map(f).collect::<Vec<_>>(), 0).unwrap()
    };
    let (tokens, select, r) = (stack(|x| &x.0), stack(|x| &x.1), stack(|x| &x.2));
    let logits = ens.forward(&tokens, Some(&select)).unwrap();
    let ens_grads = logits.mul(&r).unwrap().sum_all().unwrap().backward().unwrap();
    for (i, (m, (tok, sel, ri))) in solo.iter().zip(&inputs).enumerate() {
        let opts = ForwardOptions { select: Some(sel), hooks: None };
        let l = m.forward(tok, opts).unwrap().logits;
        let d = rel_diff(&logits.get(i).unwrap(), &l);
        assert!(d < 1e-9, "member {i}: logits differ by {d}");
        let grads = l.mul(ri).unwrap().sum_all().unwrap().backward().unwrap();
        for (name, t) in m.params().all() {
            let stacked = ens.params().get(&name);
            assert_eq!(rel_diff(&stacked.get(i).unwrap(), &t), 0.0, "{name}: initial weights differ");
            assert_eq!(ens.params().is_frozen(&name), m.params().is_frozen(&name), "{name}");
            match (grads.get(&t), ens_grads.get(stacked)) {
                (Some(g), Some(eg)) => {
                    let d = rel_diff(&eg.get(i).unwrap(), g);
                    assert!(d < 1e-9, "member {i}: gradient of {name} differs by {d}");
                }
                (None, None) => assert!(m.params().is_frozen(&name), "{name}: no gradient"),
                (g, eg) => panic!("{name}: solo gradient {}, ensemble {}", g.is_some(), eg.is_some()),
            }
        }
    }
}

fn base() -> ModelConfig {
    ModelConfig { d_model: 8, n_heads: 2, vocab_size: 7, max_seq_len: 8, ..Default::default() }
}

#[test]
fn cat_layer_matches_solo_members() {
    let cfg = ModelConfig {
        conv_q: true,
        conv_k: true,
        conv_v: true,
        qk_norm: QkNormKind::L2,
        qk_scale_init: 3.0,
        ..base()
    };
    check_against_solo(&cfg);
    // register-tiled attention products (d_head 16 = one tile, T = 37 with a ragged edge)
    let wide = ModelConfig { d_model: 32, max_seq_len: 40, ..cfg };
    check_against_solo_at(&wide, 37);
}

#[test]
fn combined_linear_rmsnorm_learned_positions_match_solo_members() {
    let cfg = ModelConfig {
        weights: WeightsKind::Combined,
        attention: AttentionKind::Linear,
        norm: NormKind::RmsNorm,
        positional: PositionalKind::Learned,
        conv_k: true,
        ..base()
    };
    check_against_solo(&cfg);
}

#[test]
fn two_layers_rope_mlp_gelu_and_relu_tied_low_rank_match_solo_members() {
    for activation in [Activation::Gelu, Activation::Relu] {
        let cfg = ModelConfig {
            n_layers: 2,
            positional: PositionalKind::Rope,
            mlp: true,
            d_mlp: 12,
            activation,
            tied_unembed: true,
            d_value: 3,
            ..base()
        };
        check_against_solo(&cfg);
    }
}

#[test]
fn frozen_identity_one_hot_no_norm_no_residual_sinusoidal_match_solo_members() {
    let cfg = ModelConfig {
        n_heads: 1,
        embedding: EmbeddingKind::OneHot,
        positional: PositionalKind::Sinusoidal,
        norm: NormKind::None,
        residual: false,
        attention: AttentionKind::Linear,
        attend_self: false,
        tied_unembed: true,
        freeze: vec!["W_K".into(), "W_V".into(), "embed.W_E".into()],
        identity_init: vec!["W_K".into(), "W_V".into()],
        ..base()
    };
    check_against_solo(&cfg);
}

#[test]
fn members_slice_retain_and_load() {
    let dev = Device::Cpu;
    let cfg = ModelConfig { conv_k: true, mlp: true, ..base() };
    let ens = EnsembleModel::new(&cfg, &SEEDS, &dev, DType::F32).unwrap();
    assert_eq!(ens.size(), 3);
    assert_eq!(ens.params().get("blocks.0.attn.W_Q").dims(), &[3, 2, 8, 4]);
    let m2 = ens.member(2).unwrap();
    let solo2 = Model::new(&cfg, SEEDS[2], &dev, DType::F32).unwrap();
    let kept = ens.retain(&[2, 0]).unwrap();
    for (name, t) in solo2.params().all() {
        let t = t.to_dtype(DType::F64).unwrap();
        let f64_of = |x: &Tensor| x.to_dtype(DType::F64).unwrap();
        assert_eq!(rel_diff(&f64_of(m2.params().get(&name)), &t), 0.0, "{name}");
        assert_eq!(rel_diff(&f64_of(&kept.params().get(&name).get(0).unwrap()), &t), 0.0, "{name}");
    }
    // a clone shares the variables (as `Model::clone`); `retain` copies them
    let mut changed = ens.clone();
    let zeros: Vec<HashMap<String, Tensor>> = (0..3)
        .map(|_| {
            ens.member_weights(0).unwrap().into_iter().map(|(n, t)| (n, t.zeros_like().unwrap())).collect()
        })
        .collect();
    changed.load_members(&zeros).unwrap();
    assert_eq!(
        ens.params().get("unembed.W_U").abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap(),
        0.0
    );
    assert!(
        kept.params().get("unembed.W_U").abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() > 0.0
    );
    assert!(ens.member(3).is_err());
    assert!(ens.retain(&[]).is_err());
}

#[test]
fn continuous_inputs_are_refused_with_the_key() {
    let cfg = ModelConfig {
        input: InputKind::Continuous,
        readout: ReadoutKind::LastCoordinate,
        vocab_size: 0,
        d_model: 4,
        ..Default::default()
    };
    let err = EnsembleModel::new(&cfg, &[0, 1], &Device::Cpu, DType::F32).unwrap_err();
    assert!(err.to_string().contains("input"), "{err}");
}

#[test]
fn weighted_log_likelihood_is_cross_entropy_with_its_gradient() {
    let dev = Device::Cpu;
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let (m, v) = (5usize, 7usize);
    let x: Vec<f64> = (0..m * v).map(|_| rng.gen_range(-3.0..3.0)).collect();
    let targets: Vec<u32> = (0..m).map(|_| rng.gen_range(0..v as u32)).collect();
    let logits = candle_core::Var::from_vec(x, (m, v), &dev).unwrap();
    // rows 0..4 weighted −1/4 (their mean), row 4 padding: compare against the CE of rows 0..4
    let w = [-0.25, -0.25, -0.25, -0.25, 0.0];
    let ours = crate::ensemble::weighted_log_likelihood(logits.as_tensor(), &targets, &w)
        .unwrap()
        .sum_all()
        .unwrap();
    let g = ours.backward().unwrap().get(logits.as_tensor()).unwrap().clone();
    let four = logits.as_tensor().narrow(0, 0, 4).unwrap();
    let ce4 = candle_nn::loss::cross_entropy(&four, &Tensor::new(&targets[..4], &dev).unwrap()).unwrap();
    let (a, b) = (ours.to_scalar::<f64>().unwrap(), ce4.to_scalar::<f64>().unwrap());
    assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    let g4 = g.narrow(0, 0, 4).unwrap();
    let g4_ce = ce4.backward().unwrap().get(logits.as_tensor()).unwrap().narrow(0, 0, 4).unwrap();
    assert!(rel_diff(&g4, &g4_ce) < 1e-12);
    assert_eq!(g.get(4).unwrap().abs().unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap(), 0.0);
}

#[test]
fn plain_softmax_heads_low_rank_learned_positions_match_solo_members() {
    let cfg = ModelConfig { positional: PositionalKind::Learned, d_value: 3, conv_v: true, ..base() };
    check_against_solo(&cfg);
}

#[test]
fn evaluation_and_unselected_logits_match_training_forward_and_solo() {
    let dev = Device::Cpu;
    let cfg = ModelConfig { conv_k: true, qk_norm: QkNormKind::L2, ..base() };
    let ens = EnsembleModel::new(&cfg, &SEEDS, &dev, DType::F64).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let toks: Vec<u32> = (0..3 * B * T).map(|_| rng.gen_range(0..cfg.vocab_size as u32)).collect();
    let tokens = Tensor::from_vec(toks, (3, B, T), &dev).unwrap();
    let all = ens.forward(&tokens, None).unwrap();
    assert_eq!(all.dims(), &[3, B, T, cfg.vocab_size]);
    assert_eq!(rel_diff(&all, &ens.evaluate(&tokens, None).unwrap()), 0.0);
    for (i, &seed) in SEEDS.iter().enumerate() {
        let solo = Model::new(&cfg, seed, &dev, DType::F64).unwrap();
        let l = solo.forward(&tokens.get(i).unwrap(), ForwardOptions::default()).unwrap().logits;
        assert!(rel_diff(&all.get(i).unwrap(), &l) < 1e-9, "member {i}");
    }
}
