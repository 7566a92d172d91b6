//! End-to-end tests of the training loop: determinism, exact resume, claim checks, and the
//! CAT mechanism with its negative control.

use std::path::PathBuf;

use crate::experiment::Experiment;
use crate::trainer::{run, RunOptions, RunOutcome, Summary};

fn tmp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tinylab-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

const TINY: &str = r#"
name = "tiny"
seed = 3
[task]
kind = "mqar"
vocab_size = 32
seq_len = 16
num_kv = 2
[model]
d_model = 16
conv_k = true
[train]
steps = 40
batch_size = 8
eval_every = 10
log_every = 5
checkpoint_every = 10
optimizer = { lr = 3e-3 }
[[eval]]
name = "same"
samples = 16
[[eval]]
name = "long"
seq_len = 32
num_kv = 4
samples = 16
[[check]]
name = "loss is finite"
metric = "train.loss"
at_most = 1e9
"#;

fn exp(text: &str, sets: &[&str]) -> Experiment {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    Experiment::from_str(text, "test.toml", "test", &sets, None).unwrap()
}

fn finish(e: &Experiment, dir: &std::path::Path, stop_after: Option<usize>) -> RunOutcome {
    let opts = RunOptions { dir: dir.to_path_buf(), force: false, threads: 1, stop_after, quiet: true };
    run(e, &opts).unwrap()
}

fn summary(o: RunOutcome) -> Summary {
    match o {
        RunOutcome::Finished { summary, .. } => summary,
        RunOutcome::Interrupted { step } => panic!("interrupted at {step}"),
    }
}

#[test]
fn same_config_and_seed_give_identical_metrics() {
    let e = exp(TINY, &[]);
    let (a, b) = (tmp_dir("det-a"), tmp_dir("det-b"));
    summary(finish(&e, &a, None));
    summary(finish(&e, &b, None));
    let ma = std::fs::read(a.join("metrics.jsonl")).unwrap();
    assert!(ma.len() > 1000, "metrics were written");
    assert_eq!(ma, std::fs::read(b.join("metrics.jsonl")).unwrap());
    // A different seed gives a different curve (the comparison above can fail).
    let c = tmp_dir("det-c");
    summary(finish(&exp(TINY, &["seed=4"]), &c, None));
    assert_ne!(ma, std::fs::read(c.join("metrics.jsonl")).unwrap());
    for d in [a, b, c] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn resume_gives_the_same_curve_and_weights() {
    let e = exp(TINY, &[]);
    let (straight, resumed) = (tmp_dir("straight"), tmp_dir("resumed"));
    summary(finish(&e, &straight, None));
    match finish(&e, &resumed, Some(20)) {
        RunOutcome::Interrupted { step } => assert_eq!(step, 20),
        other => panic!("expected an interruption, got {other:?}"),
    }
    // Simulate a crash after step 20's checkpoint: a torn extra row must be discarded.
    let mut m = std::fs::read_to_string(resumed.join("metrics.jsonl")).unwrap();
    m.push_str("{\"step\":21,\"split\":\"train\",\"metric\":\"loss\",\"value\":9}\n");
    std::fs::write(resumed.join("metrics.jsonl"), m).unwrap();
    summary(finish(&e, &resumed, None));
    for f in ["metrics.jsonl", "metrics.csv", "summary.json"] {
        let a = std::fs::read_to_string(straight.join(f)).unwrap();
        let b = std::fs::read_to_string(resumed.join(f)).unwrap();
        if f == "summary.json" {
            let strip = |s: &str| s.lines().filter(|l| !l.contains("wall_time_s")).collect::<String>();
            assert_eq!(strip(&a), strip(&b));
        } else {
            assert_eq!(a, b, "{f} differs after resume");
        }
    }
    // Weights and optimizer moments equal bit for bit (the header's metadata order may differ).
    let ck = |d: &PathBuf| crate::checkpoint::load(&d.join("checkpoints/step-000040.safetensors")).unwrap();
    let ((ta, ma), (tb, mb)) = (ck(&straight), ck(&resumed));
    assert_eq!(ma, mb);
    assert_eq!(ta.len(), tb.len());
    for (name, a) in &ta {
        let bits = |t: &candle_core::Tensor| {
            t.flatten_all().unwrap().to_dtype(candle_core::DType::F64).unwrap().to_vec1::<f64>().unwrap()
        };
        assert_eq!(bits(a), bits(&tb[name]), "{name} differs after resume");
    }
    // A finished run is not retrained.
    match finish(&e, &resumed, None) {
        RunOutcome::Finished { already_done, .. } => assert!(already_done),
        other => panic!("{other:?}"),
    }
    for d in [straight, resumed] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn refuses_a_directory_holding_another_config() {
    let d = tmp_dir("other");
    summary(finish(&exp(TINY, &["train.steps=5"]), &d, None));
    let opts = RunOptions { dir: d.clone(), quiet: true, threads: 1, ..Default::default() };
    let err = run(&exp(TINY, &["train.steps=6"]), &opts).unwrap_err().to_string();
    assert!(err.contains("different configuration"), "{err}");
    std::fs::remove_dir_all(d).unwrap();
}

/// MQAR small enough to train in seconds: one layer, d = 32, no positions.
const SMALL_MQAR: &str = r#"
seed = 0
[task]
kind = "mqar"
vocab_size = 64
seq_len = 32
num_kv = 4
[model]
d_model = 32
qk_norm = "l2"
[train]
steps = 400
batch_size = 32
eval_every = 400
log_every = 400
checkpoint_every = 0
optimizer = { lr = 3e-3 }
schedule = { kind = "cosine", warmup_steps = 20 }
[[eval]]
name = "test"
samples = 256
"#;

#[test]
fn one_cat_layer_learns_mqar_and_one_attention_layer_does_not() {
    let cat = exp(SMALL_MQAR, &["model.conv_q=true", "model.conv_k=true", "model.conv_v=true"]);
    let attn = exp(SMALL_MQAR, &["model.positional=learned"]);
    let (dc, da) = (tmp_dir("cat"), tmp_dir("attn"));
    let sc = summary(finish(&cat, &dc, None));
    let sa = summary(finish(&attn, &da, None));
    let (acc_cat, acc_attn) = (sc.final_metrics["eval.test.acc"], sa.final_metrics["eval.test.acc"]);
    eprintln!("CAT {acc_cat:.3}, attention {acc_attn:.3}");
    assert!(acc_cat >= 0.95, "one CAT layer should solve small MQAR, got {acc_cat}");
    // Guessing among the 4 values present gives 0.25.
    assert!(acc_attn <= 0.4, "one attention layer should not solve MQAR, got {acc_attn}");
    for d in [dc, da] {
        std::fs::remove_dir_all(d).unwrap();
    }
}
