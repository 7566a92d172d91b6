//! Tests of the [`Reversal`] task: pinned tokens, layout and statement properties, and
//! validation.

use std::collections::HashSet;

use crate::testutil::{batch, check_common, render};
use crate::{
    Reversal, ReversalBridge, ReversalBridgeRelation, ReversalConfig, ReversalSplit, Task, TaskConfig, IGNORE,
};

const X: i32 = IGNORE;
const SPLITS: [ReversalSplit; 5] = [
    ReversalSplit::Train,
    ReversalSplit::Forward,
    ReversalSplit::Bridge,
    ReversalSplit::ReverseTrain,
    ReversalSplit::ReverseTest,
];
const BRIDGES: [ReversalBridge; 4] =
    [ReversalBridge::None, ReversalBridge::A, ReversalBridge::B, ReversalBridge::Both];
const RELATIONS: [ReversalBridgeRelation; 2] =
    [ReversalBridgeRelation::AnswerSide, ReversalBridgeRelation::Dedicated];

fn task(cfg: ReversalConfig) -> Reversal {
    Reversal::new(cfg).unwrap()
}

fn with_split(split: ReversalSplit) -> Reversal {
    task(ReversalConfig { split, ..ReversalConfig::default() })
}

#[test]
fn pinned_tokens_for_seed_0() {
    let t = task(ReversalConfig::default());
    assert_eq!((t.vocab_size(), t.seq_len()), (44, 3));
    let b = batch(&t, 0, 8);
    println!("{}\n{}\n{}", render(&t, &b, 0), render(&t, &b, 4), render(&t, &b, 7));
    // Identities b2, b12, b12, b5, a5, a0, a14, then the forward fact a17 → b17: rows are drawn
    // uniformly from the 60 training statements.
    let inputs =
        [22, 40, 43, 32, 40, 43, 32, 40, 43, 25, 40, 43, 5, 41, 43, 0, 41, 43, 14, 41, 43, 17, 40, 43];
    let targets = [X, X, 22, X, X, 32, X, X, 32, X, X, 25, X, X, 5, X, X, 0, X, X, 14, X, X, 37];
    assert_eq!((&b.inputs[..], &b.targets[..]), (&inputs[..], &targets[..]));
    assert_eq!(render(&t, &b, 0), "input:  b2 r_fwd eos\ntarget: .  .     b2 ");
    assert_eq!(render(&t, &b, 4), "input:  a5 r_rev eos\ntarget: .  .     a5 ");
    assert_eq!(render(&t, &b, 7), "input:  a17 r_fwd eos\ntarget: .   .     b17");

    let t = with_split(ReversalSplit::ReverseTest);
    let b = batch(&t, 0, 2);
    println!("{}\n{}", render(&t, &b, 0), render(&t, &b, 1));
    assert_eq!((&b.inputs[..], &b.targets[..]), (&[34, 41, 43, 37, 41, 43][..], &[X, X, 14, X, X, 17][..]));
    assert_eq!(render(&t, &b, 0), "input:  b14 r_rev eos\ntarget: .   .     a14");

    let cfg =
        ReversalConfig { seq_len: 8, num_noise: 3, split: ReversalSplit::Forward, ..Default::default() };
    let t = task(cfg);
    assert_eq!(t.vocab_size(), 47);
    let b = batch(&t, 0, 2);
    println!("{}\n{}", render(&t, &b, 0), render(&t, &b, 1));
    let inputs = [45, 14, 44, 44, 45, 40, 44, 46, 45, 45, 44, 8, 45, 45, 40, 46];
    let targets = [X, X, X, X, X, X, X, 34, X, X, X, X, X, X, X, 28];
    assert_eq!((&b.inputs[..], &b.targets[..]), (&inputs[..], &targets[..]));
}

#[test]
fn vocabulary_order_and_names() {
    let t = task(ReversalConfig { num_noise: 2, seq_len: 5, ..Default::default() });
    assert_eq!((t.a_tokens(), t.b_tokens()), (0..20, 20..40));
    assert_eq!((t.r_fwd(), t.r_rev(), t.r_id()), (40, 41, 42));
    assert_eq!((t.noise_tokens(), t.eos_token(), t.vocab_size()), (43..45, 45, 46));
    let names: Vec<String> = [0, 19, 20, 39, 40, 41, 42, 43, 45].iter().map(|&x| t.token_name(x)).collect();
    assert_eq!(names, ["a0", "a19", "b0", "b19", "r_fwd", "r_rev", "r_id", "noise0", "eos"]);
    // Every name starts with a prefix that selects exactly its block (as `ov_blocks` does).
    for (prefix, block) in [("a", t.a_tokens()), ("b", t.b_tokens()), ("noise", t.noise_tokens())] {
        let picked: Vec<u32> = (0..46).filter(|&x| t.token_name(x).starts_with(prefix)).collect();
        assert_eq!(picked, block.collect::<Vec<_>>(), "{prefix}");
    }
}

/// The statements each split draws from, as `(subject, relation, answer)` in token names.
fn statements(t: &Reversal, split: ReversalSplit) -> HashSet<(String, String, String)> {
    t.statements(split).iter().map(|&(s, r, a)| (t.token_name(s), t.token_name(r), t.token_name(a))).collect()
}

fn set(items: &[(&str, &str, &str)]) -> HashSet<(String, String, String)> {
    items.iter().map(|&(s, r, a)| (s.into(), r.into(), a.into())).collect()
}

#[test]
fn statements_follow_the_recipe() {
    let small = |bridge, bridge_relation, reverse_frac| {
        task(ReversalConfig { num_pairs: 2, bridge, bridge_relation, reverse_frac, ..Default::default() })
    };
    use ReversalBridge as B;
    use ReversalBridgeRelation as R;
    let t = small(B::Both, R::AnswerSide, 0.0);
    assert_eq!(statements(&t, ReversalSplit::Forward), set(&[("a0", "r_fwd", "b0"), ("a1", "r_fwd", "b1")]));
    let bridge = [("a0", "r_rev", "a0"), ("a1", "r_rev", "a1"), ("b0", "r_fwd", "b0"), ("b1", "r_fwd", "b1")];
    assert_eq!(statements(&t, ReversalSplit::Bridge), set(&bridge));
    assert_eq!(
        statements(&t, ReversalSplit::ReverseTest),
        set(&[("b0", "r_rev", "a0"), ("b1", "r_rev", "a1")])
    );
    assert!(t.statements(ReversalSplit::ReverseTrain).is_empty());
    assert_eq!(t.statements(ReversalSplit::Train).len(), 6);

    let t = small(B::A, R::Dedicated, 0.5);
    assert_eq!(statements(&t, ReversalSplit::Bridge), set(&[("a0", "r_id", "a0"), ("a1", "r_id", "a1")]));
    assert_eq!(statements(&t, ReversalSplit::ReverseTrain), set(&[("b0", "r_rev", "a0")]));
    assert_eq!(statements(&t, ReversalSplit::ReverseTest), set(&[("b1", "r_rev", "a1")]));
    let train = [("a0", "r_fwd", "b0"), ("a1", "r_fwd", "b1"), ("b0", "r_rev", "a0")];
    let train: Vec<_> = train.iter().chain(&[("a0", "r_id", "a0"), ("a1", "r_id", "a1")]).copied().collect();
    assert_eq!(statements(&t, ReversalSplit::Train), set(&train));
    assert_eq!((t.reverse_trained_pairs(), t.held_out_pairs()), (0..1, 1..2));

    let t = small(B::B, R::AnswerSide, 0.0);
    assert_eq!(statements(&t, ReversalSplit::Bridge), set(&[("b0", "r_fwd", "b0"), ("b1", "r_fwd", "b1")]));
    let t = small(B::None, R::AnswerSide, 0.0);
    assert_eq!(statements(&t, ReversalSplit::Train), statements(&t, ReversalSplit::Forward));
}

#[test]
fn the_reversal_test_is_never_trained_and_never_contradicted() {
    for bridge in BRIDGES {
        for bridge_relation in RELATIONS {
            for reverse_frac in [0.0, 0.25, 0.5, 0.9] {
                let t = task(ReversalConfig { bridge, bridge_relation, reverse_frac, ..Default::default() });
                let train = t.statements(ReversalSplit::Train);
                // No input of the test appears in training with any answer.
                for &(s, r, _) in t.statements(ReversalSplit::ReverseTest) {
                    assert!(train.iter().all(|&(ts, tr, _)| (ts, tr) != (s, r)), "{bridge:?} {reverse_frac}");
                }
                // Training is a function of the input: one answer per (subject, relation).
                let inputs: HashSet<(u32, u32)> = train.iter().map(|&(s, r, _)| (s, r)).collect();
                assert_eq!(inputs.len(), train.len());
                let held = t.held_out_pairs().len();
                assert_eq!(t.statements(ReversalSplit::ReverseTest).len(), held);
                assert_eq!(held, 20 - (20.0 * reverse_frac).floor() as usize);
            }
        }
    }
}

/// Every row: noise, the subject, later the relation, `eos` last with the one label, which is
/// the answer of one of the split's statements.
fn check_layout(t: &Reversal, b: &crate::Batch, split: ReversalSplit) {
    let n = t.seq_len();
    let allowed: HashSet<_> = t.statements(split).iter().copied().collect();
    let relations = [t.r_fwd(), t.r_rev(), t.r_id()];
    for r in 0..b.batch_size {
        let (input, target) = (b.input_row(r), b.target_row(r));
        assert_eq!(input[n - 1], t.eos_token());
        assert!(target[..n - 1].iter().all(|&y| y == IGNORE), "row {r}");
        let subj: Vec<usize> = (0..n).filter(|&p| input[p] < t.r_fwd()).collect();
        let rel: Vec<usize> = (0..n).filter(|&p| relations.contains(&input[p])).collect();
        assert_eq!((subj.len(), rel.len()), (1, 1), "row {r}: {input:?}");
        let (sp, rp) = (subj[0], rel[0]);
        assert!(sp < rp && rp < n - 1, "row {r}: subject at {sp}, relation at {rp}");
        assert!((0..n - 1).filter(|&p| p != sp && p != rp).all(|p| t.noise_tokens().contains(&input[p])));
        let statement = (input[sp], input[rp], target[n - 1] as u32);
        assert!(allowed.contains(&statement), "row {r}: {statement:?} not in {split:?}");
    }
}

#[test]
fn layout_and_common_properties() {
    for split in SPLITS {
        for (seq_len, num_noise) in [(3, 0), (16, 5)] {
            let cfg = ReversalConfig { split, seq_len, num_noise, reverse_frac: 0.5, ..Default::default() };
            let t = task(cfg);
            check_common(&t, false);
            check_layout(&t, &batch(&t, 5, 300), split);
        }
    }
}

#[test]
fn batches_draw_statements_uniformly() {
    // 20 forward facts + 40 identity statements: each about 1/60 of 60 000 rows, a third forward.
    let t = task(ReversalConfig::default());
    let b = batch(&t, 3, 60_000);
    let mut counts = std::collections::HashMap::new();
    for r in 0..b.batch_size {
        let row = b.input_row(r);
        *counts.entry((row[0], row[1])).or_insert(0usize) += 1;
    }
    assert_eq!(counts.len(), 60);
    assert!(counts.values().all(|&c| (800..1200).contains(&c)), "{counts:?}");
    let forward: usize = counts.iter().filter(|(k, _)| k.1 == t.r_fwd() && k.0 < 20).map(|(_, c)| c).sum();
    assert!((forward as f64 / 60_000.0 - 1.0 / 3.0).abs() < 0.01, "{forward}");
}

#[test]
fn invalid_fields_are_named() {
    let cases = [
        ("num_pairs = 1", "num_pairs"),
        ("num_pairs = 0", "num_pairs"),
        ("seq_len = 2", "seq_len"),
        ("seq_len = 5", "num_noise"),
        ("reverse_frac = 1.0", "reverse_frac"),
        ("reverse_frac = -0.1", "reverse_frac"),
        ("reverse_frac = nan", "reverse_frac"),
        ("bridge = \"none\"\nsplit = \"bridge\"", "split"),
        ("split = \"reverse_train\"", "split"),
        ("num_pairs = 3\nreverse_frac = 0.3\nsplit = \"reverse_train\"", "split"),
        ("num_pairs = 2147483647", "num_pairs"),
    ];
    for (body, key) in cases {
        let table: toml::Table = format!("kind = \"reversal\"\n{body}\n").parse().unwrap();
        let cfg: TaskConfig = table.try_into().unwrap();
        let err = cfg.build().err().unwrap_or_else(|| panic!("{body} built"));
        assert_eq!(err.key(), key, "{body}: {err}");
        assert!(err.to_string().contains(';'), "{err} should say what is allowed");
    }
    for (body, expected) in [("split = \"test\"", "reverse_test"), ("bridge = \"all\"", "both")] {
        let table: toml::Table = format!("kind = \"reversal\"\n{body}\n").parse().unwrap();
        let msg = table.try_into::<TaskConfig>().unwrap_err().to_string();
        assert!(msg.contains(expected), "{msg}");
    }
    // The smallest valid task: two pairs, one trained reverse fact, one held out.
    let t = task(ReversalConfig {
        num_pairs: 2,
        reverse_frac: 0.5,
        split: ReversalSplit::ReverseTrain,
        ..Default::default()
    });
    check_common(&t, true);
}
