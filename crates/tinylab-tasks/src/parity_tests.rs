//! Tests of the [`Parity`] task: pinned tokens, node values, zero-filling and its smoothing,
//! RNG independence of the zero-fill settings, probe labels, and validation.

use crate::testutil::{batch, check_common, render};
use crate::{Batch, Parity, ParityConfig, Task, TaskConfig, IGNORE};

fn task(cfg: ParityConfig) -> Parity {
    Parity::new(cfg).unwrap()
}

fn small(zero_filled: usize) -> Parity {
    task(ParityConfig { n_bits: 8, k: 4, secret: Some(vec![5, 1, 6, 3]), zero_filled, ..Default::default() })
}

/// Number of `Z` inputs of row `r`.
fn zeros(b: &Batch, r: usize) -> usize {
    b.input_row(r).iter().filter(|&&x| x == Parity::Z).count()
}

#[test]
fn pinned_tokens_for_seed_0() {
    let t = small(0);
    assert_eq!((t.vocab_size(), t.seq_len(), t.num_levels()), (4, 11, 2));
    let b = batch(&t, 0, 1);
    println!("{}", render(&t, &b, 0));
    assert_eq!(render(&t, &b, 0), "input:  1 1 1 0 1 1 1 0 SEP 0 1\ntarget: . . . . . . . . 0   1 1");
    let t = small(1);
    let b = batch(&t, 0, 1);
    println!("{}", render(&t, &b, 0));
    assert_eq!(render(&t, &b, 0), "input:  1 1 1 0 1 1 1 0 SEP Z 1\ntarget: . . . . . . . . .   1 1");
    let names: Vec<String> = (0..5).map(|x| t.token_name(x)).collect();
    assert_eq!(names, ["0", "1", "SEP", "Z", "?4"]);
}

#[test]
fn common_properties() {
    for (n_bits, k) in [(16, 8), (2, 2), (5, 4), (32, 16)] {
        for zero_filled in [0, k - 2] {
            let t = task(ParityConfig { n_bits, k, zero_filled, ..Default::default() });
            check_common(&t, false);
            assert_eq!(t.seq_len(), n_bits + k - 1);
        }
    }
}

#[test]
fn node_values_match_a_brute_force_xor() {
    for (n_bits, k, seed) in [(16, 8, 0), (9, 8, 3), (6, 2, 1), (40, 32, 2)] {
        let t =
            task(ParityConfig { n_bits, k, secret_seed: seed, loss_on_removed: true, ..Default::default() });
        let s = t.secret();
        let b = batch(&t, seed, 200);
        for r in 0..200 {
            let (input, target) = (b.input_row(r), b.target_row(r));
            assert!(input[..n_bits].iter().all(|&x| x <= 1));
            assert_eq!(input[n_bits], Parity::SEP);
            assert!(target[..n_bits].iter().all(|&y| y == IGNORE), "no loss on the bits");
            // Brute force: level ℓ node j is the XOR of the 2^ℓ secret bits s[j·2^ℓ..(j+1)·2^ℓ].
            let mut m = 0;
            for l in 1..=t.num_levels() {
                for j in 0..k >> l {
                    let span = &s[j << l..(j + 1) << l];
                    let v = span.iter().fold(0, |a, &p| a ^ input[p]) as i32;
                    assert_eq!(target[n_bits + m], v, "row {r} level {l} node {j}");
                    if m + 2 < k {
                        assert_eq!(input[n_bits + 1 + m], v as u32);
                    }
                    m += 1;
                }
            }
            let root = s.iter().fold(0, |a, &p| a ^ input[p]) as i32;
            assert_eq!(target[n_bits + k - 2], root);
        }
    }
}

#[test]
fn zero_filled_positions_are_z_with_ignored_or_kept_targets() {
    let full = batch(&task(ParityConfig::default()), 4, 50);
    let (n, k) = (16, 8);
    for z in 0..=k - 2 {
        for keep in [false, true] {
            let t = task(ParityConfig { zero_filled: z, loss_on_removed: keep, ..Default::default() });
            let b = batch(&t, 4, 50);
            for r in 0..50 {
                let (input, target) = (b.input_row(r), b.target_row(r));
                let (fi, ft) = (full.input_row(r), full.target_row(r));
                assert_eq!(&input[..=n], &fi[..=n]);
                for m in 0..k - 1 {
                    let removed = m < z;
                    if m + 1 < k - 1 {
                        let expected = if removed { Parity::Z } else { fi[n + 1 + m] };
                        assert_eq!(input[n + 1 + m], expected, "z {z} node {m}");
                    }
                    let expected = if removed && !keep { IGNORE } else { ft[n + m] };
                    assert_eq!(target[n + m], expected, "z {z} keep {keep} node {m}");
                }
                assert_ne!(target[n + k - 2], IGNORE, "root target always present");
            }
            let labelled = if keep { k - 1 } else { k - 1 - z };
            assert_eq!(b.num_labelled(), 50 * labelled);
        }
    }
}

#[test]
fn answer_only_is_zero_filled_k_minus_2() {
    let a = task(ParityConfig { answer_only: true, ..Default::default() });
    let z = task(ParityConfig { zero_filled: 6, ..Default::default() });
    assert_eq!((a.base_zero_filled(), z.base_zero_filled()), (6, 6));
    assert_eq!(batch(&a, 9, 64), batch(&z, 9, 64));
    // answer_only overrides zero_filled.
    let both = task(ParityConfig { answer_only: true, zero_filled: 2, ..Default::default() });
    assert_eq!(batch(&both, 9, 64), batch(&z, 9, 64));
    assert_eq!(batch(&a, 9, 64).num_labelled(), 64);
}

#[test]
fn removal_smoothing_is_a_truncated_geometric_offset() {
    let rows = 20_000;
    let with = |lambda: f64, zero_filled: usize| {
        let cfg = ParityConfig { removal_smoothing: lambda, zero_filled, ..Default::default() };
        let b = batch(&task(cfg), 5, rows);
        let mut counts = [0usize; 7];
        (0..rows).for_each(|r| counts[zeros(&b, r)] += 1);
        counts
    };
    let freq = |c: usize| c as f64 / rows as f64;
    // Off: never an offset.
    assert_eq!(with(0.0, 0)[0], rows);
    assert_eq!(with(0.0, 3)[3], rows);
    // λ = 4: P(0) = 1 - e^-4 ≈ 0.982, P(1) ≈ 0.018; never above k - 2.
    let c = with(4.0, 0);
    assert!((freq(c[0]) - (1.0 - (-4.0f64).exp())).abs() < 0.005, "{c:?}");
    assert!(c[1] > 200 && c[1] < 500 && c[0] > c[1] && c[1] > c[2], "{c:?}");
    // λ = 0.5: geometric with ratio e^-0.5, the tail P(o ≥ 6) = e^-3 capped at k - 2 = 6.
    let c = with(0.5, 0);
    for o in 0..6 {
        let p = (-0.5 * o as f64).exp() * (1.0 - (-0.5f64).exp());
        assert!((freq(c[o]) - p).abs() < 0.01, "offset {o}: {c:?}");
    }
    assert!((freq(c[6]) - (-3.0f64).exp()).abs() < 0.01, "{c:?}");
    // Added to zero_filled and capped.
    let c = with(0.5, 4);
    assert_eq!(c[..4].iter().sum::<usize>(), 0);
    assert!(c[4] > c[5] && c[5] > 0 && c[6] > 0, "{c:?}");
}

#[test]
fn zero_fill_settings_do_not_change_the_bits_or_the_values() {
    let base = ParityConfig { loss_on_removed: true, ..Default::default() };
    let reference = batch(&task(base.clone()), 11, 100);
    let variants = [
        ParityConfig { zero_filled: 4, ..base.clone() },
        ParityConfig { zero_filled: 6, removal_smoothing: 1.0, ..base.clone() },
        ParityConfig { answer_only: true, ..base.clone() },
        ParityConfig { zero_filled: 4, loss_on_removed: false, ..base.clone() },
    ];
    for cfg in variants {
        let t = task(cfg.clone());
        let b = batch(&t, 11, 100);
        for r in 0..100 {
            assert_eq!(&b.input_row(r)[..16], &reference.input_row(r)[..16], "{cfg:?}");
            assert_eq!(t.tree_values(b.input_row(r)), t.tree_values(reference.input_row(r)));
            if cfg.loss_on_removed {
                assert_eq!(b.target_row(r), reference.target_row(r), "{cfg:?}");
            }
        }
        // The generators end at the same position: the next batch is the same too.
        let mut rng_a = <crate::TaskRng as rand::SeedableRng>::seed_from_u64(3);
        let mut rng_b = rng_a.clone();
        t.generate(&mut rng_a, 7);
        task(base.clone()).generate(&mut rng_b, 7);
        assert_eq!(rng_a.get_word_pos(), rng_b.get_word_pos());
    }
}

#[test]
fn secret_is_drawn_from_its_own_seed_and_nodes_point_at_children() {
    let t = task(ParityConfig::default());
    let mut sorted = t.secret().to_vec();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 8);
    assert!(sorted.iter().all(|&p| p < 16));
    assert_ne!(t.secret(), &sorted[..], "drawn order is kept (secret_seed 0)");
    assert_eq!(t.secret(), task(ParityConfig { zero_filled: 6, ..Default::default() }).secret());
    assert_ne!(t.secret(), task(ParityConfig { secret_seed: 1, ..Default::default() }).secret());

    let t = small(0);
    let nodes = t.nodes();
    let got: Vec<(usize, usize, usize, usize, [usize; 2])> =
        nodes.iter().map(|n| (n.level, n.index, n.slot, n.probe_position, n.children)).collect();
    assert_eq!(got, [(1, 0, 9, 8, [5, 1]), (1, 1, 10, 9, [6, 3]), (2, 0, 11, 10, [9, 10])]);
    assert!(nodes.iter().all(|n| n.predicted_at + 1 == n.slot));
    let t = task(ParityConfig::default());
    let roots: Vec<usize> = t.nodes().iter().map(|n| n.level).collect();
    assert_eq!(roots, [1, 1, 1, 1, 2, 2, 3]);
    assert_eq!(t.nodes()[6].children, [16 + 1 + 4, 16 + 1 + 5]);
    assert_eq!(t.nodes()[4].children, [17, 18]);
    assert_eq!(t.nodes()[6].probe_position, t.seq_len() - 1);
}

#[test]
fn position_labels_sit_where_the_nodes_are_predicted() {
    let t = small(2);
    let b = batch(&t, 1, 30);
    let full = batch(&small(0), 1, 30);
    let labels = t.position_labels(&b);
    let names: Vec<&str> = labels.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["level1", "level2"]);
    let (l1, l2) = (&labels[0].1, &labels[1].1);
    assert_eq!((l1.len(), l2.len()), (30 * 11, 30 * 11));
    for r in 0..30 {
        let row = |v: &Vec<i32>| v[r * 11..(r + 1) * 11].to_vec();
        let (fi, ft) = (full.input_row(r), full.target_row(r));
        let mut e1 = vec![IGNORE; 11];
        e1[8] = fi[9] as i32; // node z¹_1 sits at slot 9 and is predicted at position 8 (SEP)
        e1[9] = fi[10] as i32;
        let mut e2 = vec![IGNORE; 11];
        e2[10] = ft[10];
        assert_eq!((row(l1), row(l2)), (e1, e2), "row {r}: zero-filled nodes keep their labels");
    }
    assert!(crate::Ocr::new(Default::default()).unwrap().position_labels(&b).is_empty());
}

#[test]
fn toml_round_trip_through_task_config() {
    let text = "kind = \"parity\"\nn_bits = 12\nk = 4\nsecret = [3, 0, 11, 7]\nzero_filled = 2\n\
                removal_smoothing = 4.0\nloss_on_removed = true\n";
    let table: toml::Table = text.parse().unwrap();
    let cfg: TaskConfig = table.try_into().unwrap();
    let expected = ParityConfig {
        n_bits: 12,
        k: 4,
        secret: Some(vec![3, 0, 11, 7]),
        zero_filled: 2,
        removal_smoothing: 4.0,
        loss_on_removed: true,
        ..Default::default()
    };
    assert_eq!(cfg, TaskConfig::Parity(expected));
    let back: TaskConfig = toml::to_string(&cfg).unwrap().parse::<toml::Table>().unwrap().try_into().unwrap();
    assert_eq!(back, cfg);
    let built = cfg.build().unwrap();
    assert_eq!((built.name(), built.seq_len()), ("parity", 15));
}

#[test]
fn invalid_configs_name_the_field() {
    let cases = [
        ("k = 6", "k"),
        ("k = 1", "k"),
        ("k = 0", "k"),
        ("n_bits = 4\nk = 8", "k"),
        ("n_bits = 1\nk = 2", "n_bits"),
        ("zero_filled = 7", "zero_filled"),
        ("k = 2\nzero_filled = 1", "zero_filled"),
        ("removal_smoothing = -1.0", "removal_smoothing"),
        ("removal_smoothing = inf", "removal_smoothing"),
        ("k = 4\nsecret = [0, 1, 2]", "secret"),
        ("k = 4\nsecret = [0, 1, 2, 16]", "secret"),
        ("k = 4\nsecret = [0, 1, 2, 1]", "secret"),
    ];
    for (body, key) in cases {
        let table: toml::Table = format!("kind = \"parity\"\n{body}\n").parse().unwrap();
        let cfg: TaskConfig = table.try_into().unwrap();
        let err = cfg.build().err().unwrap_or_else(|| panic!("{body} built"));
        assert_eq!(err.key(), key, "{body}: {err}");
        assert!(err.to_string().contains(';'), "{err} should say what is allowed");
    }
    let table: toml::Table = "kind = \"parity\"\nsecrets = [1]\n".parse().unwrap();
    let msg = table.try_into::<TaskConfig>().unwrap_err().to_string();
    assert!(msg.contains("unknown field `secrets`"), "{msg}");
}

#[test]
fn level_mask_restricts_each_levels_queries_to_the_level_below() {
    assert!(small(0).attention_masks(2).is_empty(), "off by default");
    let cfg = ParityConfig { n_bits: 8, k: 4, secret: Some(vec![5, 1, 6, 3]), ..Default::default() };
    let t = task(ParityConfig { level_mask: crate::LevelMask::Tree, ..cfg.clone() });
    let masks = t.attention_masks(3);
    assert_eq!(masks.len(), 3);
    assert!(masks[2].is_none(), "no level 3 for k = 4: layer 3 is unrestricted");
    let (l1, l2) = (masks[0].as_ref().unwrap(), masks[1].as_ref().unwrap());
    let n = 11; // seq_len = 8 + 4 - 1
    let keys = |m: &Vec<bool>, q: usize| -> Vec<usize> { (0..n).filter(|&k| m[q * n + k]).collect() };
    // Layer 1: the positions predicting level-1 nodes (8 = SEP, 9) see the 8 bits only.
    assert_eq!(keys(l1, 8), (0..8).collect::<Vec<_>>());
    assert_eq!(keys(l1, 9), (0..8).collect::<Vec<_>>());
    assert_eq!(keys(l1, 10), (0..n).collect::<Vec<_>>(), "the root's query is free in layer 1");
    // Layer 2: the root (predicted at 10) sees the level-1 carriers: predicted at 8, 9; slots 9, 10.
    assert_eq!(keys(l2, 10), [8, 9, 10]);
    assert_eq!(keys(l2, 8), (0..n).collect::<Vec<_>>());
    // Strict: every other query attends only to itself in layers 1..=L.
    let strict = task(ParityConfig { level_mask: crate::LevelMask::Strict, ..cfg }).attention_masks(2);
    let (s1, s2) = (strict[0].as_ref().unwrap(), strict[1].as_ref().unwrap());
    assert_eq!(keys(s1, 8), (0..8).collect::<Vec<_>>());
    assert_eq!(keys(s1, 10), [10]);
    assert_eq!(keys(s1, 3), [3]);
    assert_eq!(keys(s2, 10), [8, 9, 10]);
    assert_eq!(keys(s2, 8), [8]);
}

#[test]
fn in_place_targets_sit_at_the_nodes_own_slots() {
    use crate::ParityTargets::InPlace;
    let cfg = |zero_filled, loss_on_removed| ParityConfig {
        n_bits: 8,
        k: 4,
        secret: Some(vec![5, 1, 6, 3]),
        zero_filled,
        loss_on_removed,
        targets: InPlace,
        ..Default::default()
    };
    // k = 4 (z¹_1 = 0, z¹_2 = 1, root 1): the root has its own slot (11, input Z). Written
    // out, the level-1 nodes are next-token targets; zero-filled, each is its slot's target;
    // the written-out z¹_2 right after the zero-filled z¹_1 has no target.
    let rendered = |c| {
        let t = task(c);
        render(&t, &batch(&t, 0, 1), 0)
    };
    assert_eq!(
        rendered(cfg(0, false)),
        "input:  1 1 1 0 1 1 1 0 SEP 0 1 Z
target: . . . . . . . . 0   1 . 1"
    );
    assert_eq!(
        rendered(cfg(1, true)),
        "input:  1 1 1 0 1 1 1 0 SEP Z 1 Z
target: . . . . . . . . .   0 . 1"
    );
    assert_eq!(
        rendered(cfg(1, false)),
        "input:  1 1 1 0 1 1 1 0 SEP Z 1 Z
target: . . . . . . . . .   1 . 1"
    );
    assert_eq!(
        rendered(cfg(2, true)),
        "input:  1 1 1 0 1 1 1 0 SEP Z Z Z
target: . . . . . . . . .   0 1 1"
    );
    let t = task(cfg(2, true));
    assert_eq!(t.seq_len(), 12);
    let at: Vec<(usize, usize, usize)> =
        t.nodes().iter().map(|n| (n.slot, n.predicted_at, n.probe_position)).collect();
    assert_eq!(at, [(9, 8, 9), (10, 9, 10), (11, 11, 11)]);
    check_common(&t, false);

    // k = 8, levels 1-2 zero-filled: all seven nodes at their own slots (17..=23).
    let t =
        task(ParityConfig { zero_filled: 6, loss_on_removed: true, targets: InPlace, ..Default::default() });
    let b = batch(&t, 5, 30);
    for r in 0..30 {
        let values: Vec<i32> = t.tree_values(b.input_row(r)).iter().map(|&v| v as i32).collect();
        assert_eq!(&b.target_row(r)[17..], &values[..]);
        assert!(b.target_row(r)[..17].iter().all(|&y| y == IGNORE));
        assert_eq!(zeros(&b, r), 7, "six zero-filled nodes and the root's slot");
    }
}
