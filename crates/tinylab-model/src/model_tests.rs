//! Behavioural tests of the assembled model: hooks, position selection, seeding, causality.

use candle_core::{DType, Device, Tensor};

use crate::config::*;
use crate::hooks::{HookPoint, HookSet};
use crate::model::{ForwardOptions, Model};

fn cfg() -> ModelConfig {
    ModelConfig {
        d_model: 8,
        n_layers: 2,
        n_heads: 2,
        vocab_size: 10,
        mlp: true,
        conv_k: true,
        positional: PositionalKind::Learned,
        max_seq_len: 16,
        ..Default::default()
    }
}

fn tokens() -> Tensor {
    Tensor::new(&[[1u32, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1]], &Device::Cpu).unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap()
}

#[test]
fn hooks_record_requested_points_with_their_shapes() {
    let m = Model::new(&cfg(), 1, &Device::Cpu, DType::F32).unwrap();
    let hooks =
        HookSet::of([HookPoint::Pattern(1), HookPoint::ResidPost(0), HookPoint::Q(0), HookPoint::FinalNorm]);
    let out = m.forward(&tokens(), ForwardOptions { select: None, hooks: Some(&hooks) }).unwrap();
    assert_eq!(out.cache.0.len(), 4);
    let pattern = out.cache.get(HookPoint::Pattern(1)).unwrap();
    assert_eq!(pattern.dims(), &[2, 2, 6, 6]);
    // Rows of a causal softmax pattern sum to 1 and put no weight on the future.
    let rows = pattern.sum(3).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert!(rows.iter().all(|r| (r - 1.0).abs() < 1e-5));
    let first = pattern.get(0).unwrap().get(0).unwrap().to_vec2::<f32>().unwrap();
    assert_eq!(first[0][1], 0.0);
    assert_eq!(out.cache.get(HookPoint::ResidPost(0)).unwrap().dims(), &[2, 6, 8]);
    assert_eq!(out.cache.get(HookPoint::Q(0)).unwrap().dims(), &[2, 2, 6, 4]);
    let none = m.forward(&tokens(), ForwardOptions::default()).unwrap();
    assert!(none.cache.0.is_empty());
    assert_eq!(max_abs_diff(&none.logits, &out.logits), 0.0, "hooks change nothing");
}

#[test]
fn selected_positions_give_the_same_logits() {
    let m = Model::new(&cfg(), 2, &Device::Cpu, DType::F32).unwrap();
    let full = m.forward(&tokens(), ForwardOptions::default()).unwrap().logits.reshape((12, 10)).unwrap();
    let idx = Tensor::new(&[0u32, 5, 7, 11], &Device::Cpu).unwrap();
    let sel = m.forward(&tokens(), ForwardOptions { select: Some(&idx), hooks: None }).unwrap().logits;
    assert_eq!(sel.dims(), &[4, 10]);
    assert!(max_abs_diff(&sel, &full.index_select(&idx, 0).unwrap()) < 1e-6);
}

#[test]
fn same_seed_same_weights_other_seed_other_weights() {
    let a = Model::new(&cfg(), 5, &Device::Cpu, DType::F32).unwrap();
    let b = Model::new(&cfg(), 5, &Device::Cpu, DType::F32).unwrap();
    let c = Model::new(&cfg(), 6, &Device::Cpu, DType::F32).unwrap();
    let w = |m: &Model| m.params().get("blocks.1.attn.W_Q").flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(w(&a), w(&b));
    assert_ne!(w(&a), w(&c));
}

#[test]
fn outputs_are_causal_for_every_attention_kind() {
    for (attention, weights) in
        [(AttentionKind::Softmax, WeightsKind::Factorized), (AttentionKind::Linear, WeightsKind::Combined)]
    {
        let m = Model::new(
            &ModelConfig { attention, weights, conv_q: true, conv_v: true, ..cfg() },
            3,
            &Device::Cpu,
            DType::F32,
        )
        .unwrap();
        let a = Tensor::new(&[[1u32, 2, 3, 4, 5, 6]], &Device::Cpu).unwrap();
        let b = Tensor::new(&[[1u32, 2, 3, 9, 9, 9]], &Device::Cpu).unwrap();
        let la = m.forward(&a, ForwardOptions::default()).unwrap().logits.narrow(1, 0, 3).unwrap();
        let lb = m.forward(&b, ForwardOptions::default()).unwrap().logits.narrow(1, 0, 3).unwrap();
        assert!(max_abs_diff(&la, &lb) < 1e-6, "{attention:?}: a future token changed a past logit");
        let la4 = m.forward(&a, ForwardOptions::default()).unwrap().logits.narrow(1, 3, 1).unwrap();
        let lb4 = m.forward(&b, ForwardOptions::default()).unwrap().logits.narrow(1, 3, 1).unwrap();
        assert!(max_abs_diff(&la4, &lb4) > 1e-4, "the changed token must matter where it is visible");
    }
}

#[test]
fn bad_configs_name_their_key() {
    let e = Model::new(&ModelConfig { freeze: vec!["W_X".into()], ..cfg() }, 0, &Device::Cpu, DType::F32)
        .unwrap_err();
    assert!(e.to_string().starts_with("freeze: no parameter named `W_X`"), "{e}");
    let e = ModelConfig { n_heads: 3, ..cfg() }.validate().unwrap_err();
    assert_eq!(e.key, "n_heads");
    let e = ModelConfig { embedding: EmbeddingKind::OneHot, ..cfg() }.validate().unwrap_err();
    assert_eq!(e.key, "embedding");
}

/// The one-layer linear self-attention of von Oswald et al. / Mahankali et al.: continuous
/// `(x, y)` tokens, no norm, no MLP, no positions, combined weights, readout = the query's y-slot.
fn lsa(attend_self: bool) -> ModelConfig {
    ModelConfig {
        d_model: 3,
        input: InputKind::Continuous,
        readout: ReadoutKind::LastCoordinate,
        attention: AttentionKind::Linear,
        weights: WeightsKind::Combined,
        norm: NormKind::None,
        attn_scale: 0.5,
        attend_self,
        ..Default::default()
    }
}

#[test]
fn continuous_lsa_with_gd_weights_computes_one_step_of_gd() {
    let m = Model::new(&lsa(false), 0, &Device::Cpu, DType::F32).unwrap();
    let names: Vec<&str> = m.params().names().collect();
    assert!(!names.iter().any(|n| n.starts_with("embed") || n.starts_with("unembed")), "{names:?}");
    // W_QK = η·I on the x-block (row = query side), W_OV = e_y e_yᵀ: ŷ = (η/N) Σ_i (x_q·x_i) y_i.
    let eta = 0.7f32;
    let qk = Tensor::new(&[[[eta, 0., 0.], [0., eta, 0.], [0., 0., 0.]]], &Device::Cpu).unwrap();
    let ov = Tensor::new(&[[[0f32, 0., 0.], [0., 0., 0.], [0., 0., 1.]]], &Device::Cpu).unwrap();
    let mut m = m;
    m.load_weights(&[("blocks.0.attn.W_QK".to_string(), qk), ("blocks.0.attn.W_OV".to_string(), ov)].into())
        .unwrap();
    let z = [[1f32, 2., 3.], [-1., 0.5, -2.], [0.3, -0.7, 0.]];
    let x = Tensor::new(&[z], &Device::Cpu).unwrap();
    let out = m.forward_features(&x, ForwardOptions::default()).unwrap();
    assert_eq!(out.logits.dims(), &[1, 3]);
    let pred = out.logits.to_vec2::<f32>().unwrap()[0][2];
    let dot = |a: &[f32; 3], b: &[f32; 3]| a[0] * b[0] + a[1] * b[1];
    let gd = 0.5 * eta * (dot(&z[2], &z[0]) * z[0][2] + dot(&z[2], &z[1]) * z[1][2]);
    assert!((pred - gd).abs() < 1e-5, "{pred} vs {gd}");
    // Selected positions give one prediction each; token entry points refuse.
    let sel = Tensor::new(&[2u32], &Device::Cpu).unwrap();
    let out = m.forward_features(&x, ForwardOptions { select: Some(&sel), hooks: None }).unwrap();
    assert_eq!(out.logits.dims(), &[1]);
    assert!(m.forward(&tokens(), ForwardOptions::default()).is_err());
    assert!(m.unembedding().is_err());
}

#[test]
fn attend_self_false_masks_the_diagonal_and_is_validated() {
    let x = Tensor::new(&[[[1f32, 2., 3.], [-1., 0.5, -2.], [0.3, -0.7, 0.5]]], &Device::Cpu).unwrap();
    let hooks = HookSet::of([HookPoint::Pattern(0)]);
    let opts = ForwardOptions { select: None, hooks: Some(&hooks) };
    let m = Model::new(&lsa(false), 3, &Device::Cpu, DType::F32).unwrap();
    let p = m.forward_features(&x, opts).unwrap().cache.get(HookPoint::Pattern(0)).unwrap().clone();
    let p = p.squeeze(0).unwrap().squeeze(0).unwrap().to_vec2::<f32>().unwrap();
    for (i, row) in p.iter().enumerate() {
        for (j, v) in row.iter().enumerate() {
            if j >= i {
                assert_eq!(*v, 0.0, "({i},{j})");
            }
        }
    }
    let bad = ModelConfig { attention: AttentionKind::Softmax, ..lsa(false) };
    assert_eq!(bad.validate().unwrap_err().key, "attend_self");
    let bad = ModelConfig { readout: ReadoutKind::Unembed, ..lsa(true) };
    assert_eq!(bad.validate().unwrap_err().key, "readout");
}
