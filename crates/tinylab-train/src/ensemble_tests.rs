//! Seed-batched runs against solo runs: member `i` of a batched run writes the run directory a
//! solo run of seed `i` writes (same config and run id, metrics and final weights to float
//! tolerance), with per-member early stop, clipping and weight decay; exact resume; refusals.

use std::path::{Path, PathBuf};

use candle_core::{DType, Tensor};

use crate::ensemble_trainer::{run_ensemble, EnsembleRunOptions};
use crate::experiment::Experiment;
use crate::metrics::{read_rows, MetricRow};
use crate::trainer::{run, RunOptions, RunOutcome, Summary};

/// A small CAT model on MQAR with decay, clipping, two eval sets and periodic checkpoints.
const CAT: &str = r#"
name = "ens"
seed = 0
[task]
kind = "mqar"
vocab_size = 32
seq_len = 16
num_kv = 2
[model]
d_model = 16
conv_q = true
conv_k = true
conv_v = true
qk_norm = "l2"
[train]
steps = 30
batch_size = 8
eval_every = 10
log_every = 5
checkpoint_every = 10
grad_clip = 0.5
optimizer = { lr = 1e-2, weight_decay = 0.1 }
schedule = { kind = "cosine", warmup_steps = 5 }
[[eval]]
name = "same"
samples = 16
[[eval]]
name = "long"
seq_len = 32
num_kv = 4
samples = 12
[[check]]
name = "loss is finite"
metric = "train.loss"
at_most = 1e9
"#;

fn tmp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tinylab-ens-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn exp(text: &str, sets: &[&str], seed: u64) -> Experiment {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    Experiment::from_str(text, "test.toml", "test", &sets, Some(seed)).unwrap()
}

fn solo(e: &Experiment, dir: &Path) -> Summary {
    let opts = RunOptions { dir: dir.to_path_buf(), force: false, threads: 1, stop_after: None, quiet: true };
    match run(e, &opts).unwrap() {
        RunOutcome::Finished { summary, .. } => summary,
        RunOutcome::Interrupted { step } => panic!("interrupted at {step}"),
    }
}

fn batched(exps: &[Experiment], dirs: &[PathBuf], stop_after: Option<usize>) -> Vec<RunOutcome> {
    let opts = EnsembleRunOptions {
        dirs: dirs.to_vec(),
        force: false,
        threads: 1,
        shards: 1,
        stop_after,
        quiet: true,
    };
    run_ensemble(exps, &opts).unwrap().into_iter().map(|o| o.unwrap()).collect()
}

/// Metric rows equal up to float tolerance (same steps, splits and metrics in the same order).
fn assert_rows_close(a: &[MetricRow], b: &[MetricRow], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: row counts");
    for (x, y) in a.iter().zip(b) {
        assert_eq!((x.step, &x.split, &x.metric), (y.step, &y.split, &y.metric), "{what}");
        let tol = if x.metric == "acc" { 1e-9 } else { 1e-4 * x.value.abs().max(1.0) };
        assert!(
            (x.value - y.value).abs() <= tol,
            "{what}: {} at step {}: {} vs {}",
            x.path(),
            x.step,
            x.value,
            y.value
        );
    }
}

/// Largest absolute difference over the tensors of two checkpoints (same names required).
fn checkpoint_diff(a: &Path, b: &Path) -> f64 {
    let (ta, ma) = crate::checkpoint::load(a).unwrap();
    let (tb, mb) = crate::checkpoint::load(b).unwrap();
    assert_eq!(ma, mb, "checkpoint metadata");
    let mut names: Vec<&String> = ta.keys().collect();
    names.sort();
    assert_eq!(names, {
        let mut n: Vec<&String> = tb.keys().collect();
        n.sort();
        n
    });
    let f = |t: &Tensor| t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
    names
        .iter()
        .map(|n| f(&ta[*n]).iter().zip(f(&tb[*n])).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max))
        .fold(0.0, f64::max)
}

/// Runs seeds `seeds` batched and solo; asserts the member directories match.
fn compare_with_solo(text: &str, sets: &[&str], seeds: &[u64], tag: &str) -> Vec<Summary> {
    let root = tmp_dir(tag);
    let exps: Vec<Experiment> = seeds.iter().map(|&s| exp(text, sets, s)).collect();
    let dirs: Vec<PathBuf> = seeds.iter().map(|s| root.join(format!("batched/seed{s}"))).collect();
    let outs = batched(&exps, &dirs, None);
    let mut summaries = Vec::new();
    for ((e, dir), out) in exps.iter().zip(&dirs).zip(outs) {
        let RunOutcome::Finished { summary: sb, already_done: false } = out else { panic!("not finished") };
        let sdir = root.join(format!("solo/seed{}", e.seed));
        let ss = solo(e, &sdir);
        assert_eq!(
            (sb.run_id.as_str(), sb.steps, sb.stopped_early),
            (ss.run_id.as_str(), ss.steps, ss.stopped_early)
        );
        assert_eq!(
            sb.checks.iter().map(|c| c.pass).collect::<Vec<_>>(),
            ss.checks.iter().map(|c| c.pass).collect::<Vec<_>>()
        );
        assert_eq!(
            std::fs::read(dir.join("config.toml")).unwrap(),
            std::fs::read(sdir.join("config.toml")).unwrap()
        );
        let (rb, rs) =
            (read_rows(&dir.join("metrics.jsonl")).unwrap(), read_rows(&sdir.join("metrics.jsonl")).unwrap());
        assert_rows_close(&rb, &rs, &format!("seed {}", e.seed));
        let csv = |d: &Path| std::fs::read_to_string(d.join("metrics.csv")).unwrap().lines().count();
        assert_eq!(csv(dir), csv(&sdir));
        let names = |d: &Path| {
            crate::rundir::RunDir::new(d).list_checkpoints().into_iter().map(|(s, _)| s).collect::<Vec<_>>()
        };
        assert_eq!(names(dir), names(&sdir), "checkpoint steps");
        let last = crate::rundir::RunDir::new(dir).last_checkpoint().unwrap().1;
        let d = checkpoint_diff(&last, &crate::rundir::RunDir::new(&sdir).last_checkpoint().unwrap().1);
        assert!(d < 1e-4, "seed {}: final weights and moments differ by {d}", e.seed);
        summaries.push(sb);
    }
    std::fs::remove_dir_all(root).unwrap();
    summaries
}

#[test]
fn batched_seeds_equal_solo_runs() {
    compare_with_solo(CAT, &[], &[3, 4], "equal");
}

#[test]
fn members_stop_early_on_their_own_and_the_rest_continue() {
    let sets = ["train.early_stop={ metric = \"eval.same.acc\", at_least = 0.12 }", "train.steps=60"];
    let s = compare_with_solo(CAT, &sets, &[0, 1, 2], "early");
    let steps: Vec<usize> = s.iter().map(|x| x.steps).collect();
    assert!(steps.iter().any(|&x| x < 60), "some member stops early: {steps:?}");
    assert!(steps.iter().any(|&x| x != steps[0]), "members stop at different steps: {steps:?}");
}

#[test]
fn data_parallel_slices_train_like_one_graph() {
    // The same two seeds with every step's batch (and every evaluation) split over 3 threads:
    // metrics within float tolerance of the one-graph run, same final weights to 1e-4.
    let exps: Vec<Experiment> = [1, 2].iter().map(|&s| exp(CAT, &[], s)).collect();
    let (a, b) = (tmp_dir("dp-one"), tmp_dir("dp-three"));
    let dirs = |r: &Path| vec![r.join("seed1"), r.join("seed2")];
    batched(&exps, &dirs(&a), None);
    let opts = EnsembleRunOptions { dirs: dirs(&b), shards: 3, quiet: true, ..Default::default() };
    run_ensemble(&exps, &opts).unwrap().into_iter().for_each(|o| drop(o.unwrap()));
    for (x, y) in dirs(&a).iter().zip(dirs(&b)) {
        let m = |d: &Path| read_rows(&d.join("metrics.jsonl")).unwrap();
        assert_rows_close(&m(x), &m(&y), "3 slices vs one graph");
        let last = |d: &Path| crate::rundir::RunDir::new(d).last_checkpoint().unwrap().1;
        let d = checkpoint_diff(&last(x), &last(&y));
        assert!(d < 1e-4, "final weights and moments differ by {d}");
    }
    for d in [a, b] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn interrupted_batched_run_resumes_exactly() {
    let exps: Vec<Experiment> = [5, 6].iter().map(|&s| exp(CAT, &[], s)).collect();
    let (a, b) = (tmp_dir("resume-a"), tmp_dir("resume-b"));
    let dirs = |r: &Path| vec![r.join("seed5"), r.join("seed6")];
    batched(&exps, &dirs(&a), None);
    let outs = batched(&exps, &dirs(&b), Some(20));
    assert!(outs.iter().all(|o| matches!(o, RunOutcome::Interrupted { step: 20 })));
    batched(&exps, &dirs(&b), None);
    for (x, y) in dirs(&a).iter().zip(dirs(&b)) {
        let m = |d: &Path| std::fs::read(d.join("metrics.jsonl")).unwrap();
        assert_eq!(m(x), m(&y), "resumed metrics are byte-identical");
    }
    // A finished batched run is a no-op; a member's directory also resumes as a solo run.
    assert!(batched(&exps, &dirs(&b), None)
        .iter()
        .all(|o| matches!(o, RunOutcome::Finished { already_done: true, .. })));
    let s = solo(&exps[0], &dirs(&b)[0]);
    assert_eq!(s.steps, 30);
    for d in [a, b] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn unsupported_runs_are_refused_with_a_reason() {
    let root = tmp_dir("refuse");
    let dirs = vec![root.join("s0"), root.join("s1")];
    let opts = EnsembleRunOptions { dirs: dirs.clone(), quiet: true, ..Default::default() };
    let cur = format!("{CAT}\n[curriculum]\n[[curriculum.stage]]\nname = \"a\"\nmax_steps = 5\n");
    let err = run_ensemble(&[exp(&cur, &[], 0), exp(&cur, &[], 1)], &opts).unwrap_err();
    assert!(err.to_string().contains("curriculum"), "{err}");
    let err = run_ensemble(&[exp(CAT, &[], 0), exp(CAT, &["model.d_model=8"], 1)], &opts).unwrap_err();
    assert!(err.to_string().contains("share one configuration"), "{err}");
    let err = run_ensemble(&[exp(CAT, &[], 0), exp(CAT, &[], 0)], &opts).unwrap_err();
    assert!(err.to_string().contains("distinct"), "{err}");
    // partial runs at different steps
    let exps = [exp(CAT, &[], 0), exp(CAT, &[], 1)];
    batched(&exps, &dirs, Some(10));
    std::fs::remove_dir_all(dirs[1].join("checkpoints")).unwrap();
    let err = run_ensemble(&exps, &opts).unwrap_err();
    assert!(err.to_string().contains("different steps"), "{err}");
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn one_member_curriculum_equals_the_solo_run_and_resumes_across_stages() {
    // The curriculum tests' three-stage parity run (a target-ended stage, optimizer resets,
    // checkpoints every 5 steps) on the fused engine: the solo run's rows and stage weights;
    // interrupted in stage 1 (after a reset) and in stage 2, it resumes to the same rows.
    let e = exp(crate::curriculum_tests::STAGED, &[], 1);
    let root = tmp_dir("cur");
    let (s, f, r) = (root.join("solo"), root.join("fused"), root.join("resumed"));
    solo(&e, &s);
    batched(std::slice::from_ref(&e), std::slice::from_ref(&f), None);
    let read = |d: &Path| read_rows(&d.join("metrics.jsonl")).unwrap();
    assert_rows_close(&read(&s), &read(&f), "fused vs solo");
    assert!(read(&f).iter().any(|x| x.path() == "curriculum.early.reached" && x.value == 1.0));
    for i in 0..3 {
        let stage = format!("checkpoints/stage-{i:02}.safetensors");
        assert!(checkpoint_diff(&s.join(&stage), &f.join(&stage)) < 1e-4, "{stage}");
    }
    for stop in [7, 12] {
        let out = batched(std::slice::from_ref(&e), std::slice::from_ref(&r), Some(stop));
        assert!(matches!(out[0], RunOutcome::Interrupted { step } if step == stop));
    }
    batched(std::slice::from_ref(&e), std::slice::from_ref(&r), None);
    assert_eq!(read(&f), read(&r), "resumed vs straight");
    std::fs::remove_dir_all(root).unwrap();
}
