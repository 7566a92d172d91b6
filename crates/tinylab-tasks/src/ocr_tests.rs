//! Tests of the [`Ocr`] task: pinned tokens, layout and world properties, the code's
//! position distribution, and validation.

use std::collections::HashSet;

use crate::testutil::{batch, check_common, render};
use crate::{Ocr, OcrConfig, OcrSplit, OcrWorldKind, Task, TaskConfig, IGNORE};

const X: i32 = IGNORE;
const SPLITS: [OcrSplit; 5] = [
    OcrSplit::Train,
    OcrSplit::TrainFacts,
    OcrSplit::TrainImplications,
    OcrSplit::TestFacts,
    OcrSplit::TestImplications,
];
const WORLDS: [OcrWorldKind; 3] = [OcrWorldKind::Ordered, OcrWorldKind::Shuffled, OcrWorldKind::Spurious];

fn small(split: OcrSplit, world: OcrWorldKind) -> Ocr {
    let cfg = OcrConfig {
        num_name: 8,
        num_city: 2,
        num_animal: 2,
        num_noise: 3,
        seq_len: 8,
        train_frac: 0.25,
        world,
        world_seed: 0,
        split,
    };
    Ocr::new(cfg).unwrap()
}

fn with(split: OcrSplit, world: OcrWorldKind, world_seed: u64) -> Ocr {
    Ocr::new(OcrConfig { split, world, world_seed, ..OcrConfig::default() }).unwrap()
}

#[test]
fn pinned_tokens_for_seed_0() {
    let task = Ocr::new(OcrConfig::default()).unwrap();
    assert_eq!(task.vocab_size(), 128);
    let b = batch(&task, 0, 3);
    println!("{}\n{}\n{}", render(&task, &b, 0), render(&task, &b, 1), render(&task, &b, 2));
    // name10 rel_lives → city10; name11 rel_animal → animal11; test name44 rel_lives → city4.
    let rows: [([u32; 16], i32); 3] = [
        ([125, 122, 126, 124, 126, 126, 124, 126, 126, 52, 0, 124, 126, 126, 124, 127], 12),
        ([125, 122, 124, 125, 125, 126, 126, 126, 53, 122, 124, 122, 126, 1, 125, 127], 33),
        ([123, 124, 126, 124, 122, 122, 122, 86, 124, 124, 125, 0, 122, 126, 124, 127], 6),
    ];
    for (r, (inputs, label)) in rows.iter().enumerate() {
        let mut targets = [X; 16];
        targets[15] = *label;
        assert_eq!((b.input_row(r), b.target_row(r)), (&inputs[..], &targets[..]), "row {r}");
    }
    assert_eq!(task.token_name(52), "name10");
    assert_eq!(task.token_name(33), "animal11");

    let task = small(OcrSplit::Train, OcrWorldKind::Ordered);
    let b = batch(&task, 0, 3);
    println!("{}\n{}\n{}", render(&task, &b, 0), render(&task, &b, 1), render(&task, &b, 2));
    let inputs = [16, 15, 14, 7, 14, 16, 0, 17, 15, 16, 6, 16, 15, 15, 1, 17, 9, 15, 15, 16, 16, 16, 0, 17];
    let targets = [X, X, X, X, X, X, X, 3, X, X, X, X, X, X, X, 4, X, X, X, X, X, X, X, 3];
    assert_eq!((&b.inputs[..], &b.targets[..]), (&inputs[..], &targets[..]));
}

#[test]
fn vocabulary_follows_the_code_order() {
    let task = Ocr::new(OcrConfig::default()).unwrap();
    assert_eq!((task.city_tokens(), task.animal_tokens()), (2..22, 22..42));
    assert_eq!((task.name_tokens(), task.noise_tokens(), task.eos_token()), (42..122, 122..127, 127));
    assert_eq!((task.train_names(), task.test_names()), (0..20, 20..80));
    let names: Vec<String> = [0, 1, 2, 22, 42, 121, 122, 127].iter().map(|&t| task.token_name(t)).collect();
    let expected = ["rel_lives", "rel_animal", "city0", "animal0", "name0", "name79", "noise0", "eos"];
    assert_eq!(names, expected);
}

/// Every row: noise, then the name, later the relation, `eos` last with the one label, which is
/// the name's city (fact) or `world[city[name]]` (implication); names from the split's set.
/// Returns how many rows were (train fact, train implication, test fact, test implication).
fn check_layout(task: &Ocr, b: &crate::Batch) -> [usize; 4] {
    let t = task.seq_len();
    let w = task.world();
    let mut counts = [0; 4];
    for r in 0..b.batch_size {
        let (input, target) = (b.input_row(r), b.target_row(r));
        assert_eq!(input[t - 1], task.eos_token());
        assert!(target[..t - 1].iter().all(|&y| y == IGNORE), "row {r}");
        let name_pos: Vec<usize> = (0..t).filter(|&p| task.name_tokens().contains(&input[p])).collect();
        let rel_pos: Vec<usize> = (0..t).filter(|&p| input[p] <= Ocr::REL_ANIMAL).collect();
        assert_eq!((name_pos.len(), rel_pos.len()), (1, 1), "row {r}: {input:?}");
        let (np, rp) = (name_pos[0], rel_pos[0]);
        assert!(np < rp && rp < t - 1, "row {r}: name at {np}, relation at {rp}");
        let others = (0..t - 1).filter(|&p| p != np && p != rp);
        assert!(others.clone().all(|p| task.noise_tokens().contains(&input[p])), "row {r}");
        let name = (input[np] - task.name_tokens().start) as usize;
        let test = task.test_names().contains(&name);
        let (expected, kind) = if input[rp] == Ocr::REL_LIVES {
            (task.city_tokens().start as usize + w.city_of(name), 0)
        } else {
            (task.animal_tokens().start as usize + w.animal_of_city(w.city_of(name)), 1)
        };
        assert_eq!(target[t - 1], expected as i32, "row {r}");
        counts[kind + 2 * test as usize] += 1;
    }
    counts
}

#[test]
fn layout_and_common_properties() {
    for world in WORLDS {
        for split in SPLITS {
            let task = with(split, world, 3);
            check_common(&task, false);
            let counts = check_layout(&task, &batch(&task, 5, 300));
            let expected = match split {
                OcrSplit::Train => [100, 100, 100, 0],
                OcrSplit::TrainFacts => [300, 0, 0, 0],
                OcrSplit::TrainImplications => [0, 300, 0, 0],
                OcrSplit::TestFacts => [0, 0, 300, 0],
                OcrSplit::TestImplications => [0, 0, 0, 300],
            };
            assert_eq!(counts, expected, "{world:?} {split:?}");
            let small = small(split, world);
            check_common(&small, false);
            check_layout(&small, &batch(&small, 5, 64));
        }
    }
    // The shortest sequence: name, relation, eos; no noise needed.
    let cfg = OcrConfig { seq_len: 3, num_noise: 0, ..OcrConfig::default() };
    let task = Ocr::new(cfg).unwrap();
    check_common(&task, false);
    check_layout(&task, &batch(&task, 1, 50));
}

#[test]
fn train_split_is_a_third_each_with_the_remainder_in_test_facts() {
    let task = Ocr::new(OcrConfig::default()).unwrap();
    assert_eq!(check_layout(&task, &batch(&task, 2, 252)), [84, 84, 84, 0]);
    assert_eq!(check_layout(&task, &batch(&task, 2, 11)), [3, 3, 5, 0]);
    // Rows are shuffled: the first third is not all facts of train names.
    let b = batch(&task, 2, 252);
    let first: HashSet<u32> =
        (0..84).map(|r| b.input_row(r).iter().copied().find(|&x| x <= 1).unwrap()).collect();
    assert_eq!(first.len(), 2);
}

#[test]
fn worlds_follow_the_code_and_depend_only_on_world_seed() {
    let ordered = with(OcrSplit::Train, OcrWorldKind::Ordered, 0);
    for i in 0..80 {
        assert_eq!(ordered.world().city_of(i), i % 20);
        assert_eq!(ordered.world().animal_of(i), i % 20);
    }
    assert_eq!(ordered.world(), with(OcrSplit::TestFacts, OcrWorldKind::Ordered, 9).world());
    for kind in [OcrWorldKind::Shuffled, OcrWorldKind::Spurious] {
        let a = with(OcrSplit::Train, kind, 4);
        // Same world for every split and batch seed; another world_seed gives another world.
        assert_eq!(a.world(), with(OcrSplit::TestImplications, kind, 4).world());
        assert_ne!(a.world(), with(OcrSplit::Train, kind, 5).world());
        assert_ne!(a.world(), ordered.world());
        // 4 names per city, and each city has exactly one train name.
        for c in 0..20 {
            let names: Vec<usize> = (0..80).filter(|&i| a.world().city_of(i) == c).collect();
            assert_eq!(names.len(), 4);
            assert_eq!(names.iter().filter(|&&i| i < 20).count(), 1);
        }
        let animals: HashSet<usize> = (0..20).map(|c| a.world().animal_of_city(c)).collect();
        match kind {
            OcrWorldKind::Shuffled => assert_eq!(animals.len(), 20, "a bijection"),
            _ => assert!(animals.len() < 20, "random pairs repeat animals (world_seed 4)"),
        }
    }
}

#[test]
fn positions_follow_python_list_insert() {
    // randint(0, T-2) into T-3 noise tokens: slot T-3 is hit by two draws (2/(T-1)), others 1/(T-1).
    let task = Ocr::new(OcrConfig::default()).unwrap();
    let (n, t) = (30_000, 16);
    let b = batch(&task, 11, n);
    let mut name_at = [0usize; 16];
    let mut rel_last = 0;
    for r in 0..n {
        let row = b.input_row(r);
        name_at[row.iter().position(|x| task.name_tokens().contains(x)).unwrap()] += 1;
        rel_last += (row[t - 2] <= 1) as usize;
    }
    let freq = |c: usize| c as f64 / n as f64;
    for (p, &c) in name_at.iter().enumerate().take(t - 3) {
        assert!((freq(c) - 1.0 / 15.0).abs() < 0.008, "name at {p}: {}", freq(c));
    }
    assert!((freq(name_at[t - 3]) - 2.0 / 15.0).abs() < 0.01, "{}", freq(name_at[t - 3]));
    assert_eq!(name_at[t - 2] + name_at[t - 1], 0);
    // P(relation at T-2) = Σ_k P(name_idx = k) · P(signal_idx ∈ {T-2, T-1} | k).
    let p: f64 = (0..=t - 2).map(|k| (2.0f64).min((t - 1 - k) as f64) / (t - 1 - k) as f64 / 15.0).sum();
    assert!((freq(rel_last) - p).abs() < 0.01, "relation last {} vs {p}", freq(rel_last));
}

#[test]
fn invalid_sizes_name_the_field() {
    let cases = [
        ("num_name = 0", "num_name"),
        ("num_city = 0", "num_city"),
        ("num_animal = 0", "num_animal"),
        ("seq_len = 2", "seq_len"),
        ("num_noise = 0", "num_noise"),
        ("train_frac = 1.5", "train_frac"),
        ("train_frac = 0.01", "train_frac"),
        ("train_frac = 1.0", "train_frac"),
        ("num_name = 1", "train_frac"),
        ("num_name = 4294967296", "num_name"),
    ];
    for (body, key) in cases {
        let table: toml::Table = format!("kind = \"ocr\"\n{body}\n").parse().unwrap();
        let cfg: TaskConfig = table.try_into().unwrap();
        let err = cfg.build().err().unwrap_or_else(|| panic!("{body} built"));
        assert_eq!(err.key(), key, "{body}: {err}");
        assert!(err.to_string().contains(';'), "{err} should say what is allowed");
    }
    let table: toml::Table = "kind = \"ocr\"\nsplit = \"test\"\n".parse().unwrap();
    let msg = table.try_into::<TaskConfig>().unwrap_err().to_string();
    assert!(msg.contains("test_implications"), "{msg}");
}
