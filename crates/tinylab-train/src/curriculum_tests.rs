//! Tests of the curriculum engine: stages change the task, end on their metric or their cap,
//! reset the optimizer, leave their boundaries in the metrics and their weights on disk, resume
//! exactly across a boundary; bad stage tables are named in errors. Plus the seconds-long
//! version of the k = 4 Log-ICoT claim with its negative control.

use std::path::PathBuf;

use crate::experiment::Experiment;
use crate::metrics::MetricRow;
use crate::trainer::{run, RunOptions, RunOutcome, Summary};

fn tmp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tinylab-cur-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Parity n = 6, k = 4 on a tiny model; three stages, the middle one ends on a target that the
/// first evaluation meets (train.loss ≥ 0 is always true), the others at their caps.
pub(crate) const STAGED: &str = r#"
name = "staged"
seed = 1
[task]
kind = "parity"
n_bits = 6
k = 4
[model]
d_model = 16
n_layers = 2
positional = "learned"
max_seq_len = 16
[train]
batch_size = 16
eval_every = 4
log_every = 2
checkpoint_every = 5
keep_checkpoints = 1
optimizer = { lr = 3e-3 }
[curriculum]
reset_optimizer = true
[[curriculum.stage]]
name = "explicit"
task = { zero_filled = 0 }
max_steps = 6
[[curriculum.stage]]
name = "early"
task = { zero_filled = 1 }
max_steps = 50
until = { metric = "train.loss", at_least = 0.0 }
[[curriculum.stage]]
name = "all"
task = { zero_filled = 2 }
max_steps = 7
reset_optimizer = false
[[eval]]
name = "stage"
samples = 32
[[eval]]
name = "fixed"
zero_filled = 2
samples = 32
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

fn rows(dir: &std::path::Path) -> Vec<MetricRow> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn stages_change_the_task_end_on_target_or_cap_and_leave_their_marks() {
    let e = exp(STAGED, &[]);
    assert_eq!(e.train.steps, 6 + 50 + 7, "train.steps is the sum of the caps");
    assert_eq!(e.curriculum.stages.len(), 3);
    assert!(!e.curriculum.stages[0].reset_optimizer && e.curriculum.stages[1].reset_optimizer);
    assert!(!e.curriculum.stages[2].reset_optimizer, "a stage overrides the default");
    let d = tmp_dir("stages");
    let s = summary(finish(&e, &d, None));
    // explicit: 6 steps (cap); early: ends at its first evaluation (step 8, 2 steps); all: 7.
    assert_eq!(s.steps, 6 + 2 + 7);
    let m = &s.final_metrics;
    assert_eq!(m["curriculum.explicit.steps"], 6.0);
    assert_eq!(m["curriculum.explicit.reached"], 0.0);
    assert_eq!(m["curriculum.early.steps"], 2.0);
    assert_eq!(m["curriculum.early.reached"], 1.0);
    assert_eq!(m["curriculum.all.steps"], 7.0);
    let r = rows(&d);
    let starts: Vec<(usize, f64)> =
        r.iter().filter(|r| r.path() == "curriculum.stage").map(|r| (r.step, r.value)).collect();
    assert_eq!(starts, [(0, 0.0), (6, 1.0), (8, 2.0)]);
    // Every stage ends with an evaluation, also off the eval_every grid (step 6 and 15).
    let eval_steps: Vec<usize> = r.iter().filter(|r| r.path() == "eval.stage.loss").map(|r| r.step).collect();
    assert_eq!(eval_steps, [0, 4, 6, 8, 12, 15], "{r:?}");
    // The `stage` eval follows the stage; `fixed` always zero-fills the whole CoT.
    let zero_filled = |t: &tinylab_tasks::TaskConfig| match t {
        tinylab_tasks::TaskConfig::Parity(c) => c.zero_filled,
        _ => unreachable!(),
    };
    let per_stage: Vec<(usize, usize)> = e
        .curriculum
        .stages
        .iter()
        .map(|s| (zero_filled(&s.eval_tasks[0]), zero_filled(&s.eval_tasks[1])))
        .collect();
    assert_eq!(per_stage, [(0, 2), (1, 2), (2, 2)]);
    assert_eq!(zero_filled(&e.eval[0].task), 2, "after training, eval sets are those of the last stage");
    // End-of-stage weights are kept (not pruned with the step checkpoints).
    let rd = crate::RunDir::new(&d);
    let stages: Vec<usize> = rd.list_stage_checkpoints().into_iter().map(|(i, _)| i).collect();
    assert_eq!(stages, [0, 1, 2]);
    assert_eq!(rd.list_checkpoints().len(), 1);
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn resume_across_a_stage_boundary_is_exact() {
    let e = exp(STAGED, &[]);
    let (straight, resumed) = (tmp_dir("straight"), tmp_dir("resumed"));
    summary(finish(&e, &straight, None));
    // Checkpoint at step 5 (stage 0), interrupted at 7 (stage 1, past the optimizer reset),
    // then at 10 (stage 2): resumes from 5 and from 10.
    assert!(matches!(finish(&e, &resumed, Some(7)), RunOutcome::Interrupted { step: 7 }));
    assert!(matches!(finish(&e, &resumed, Some(12)), RunOutcome::Interrupted { step: 12 }));
    summary(finish(&e, &resumed, None));
    let strip = |d: &PathBuf| std::fs::read_to_string(d.join("metrics.jsonl")).unwrap();
    assert_eq!(strip(&straight), strip(&resumed));
    for d in [straight, resumed] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn bad_stage_tables_are_named() {
    let cases: [(&str, &str); 6] = [
        ("curriculum.stage.0.max_steps=0", "curriculum.stage[0].max_steps"),
        ("curriculum.stage.1.name=\"explicit\"", "curriculum.stage[1].name"),
        ("curriculum.stage.0.task.zero_filled=9", "curriculum.stage[0].task.zero_filled"),
        ("curriculum.stage.0.task.kind=\"mqar\"", "curriculum.stage[0].task.kind"),
        ("curriculum.stage.1.until.metric=\"eval.nope.acc\"", "curriculum.stage[1].until.metric"),
        ("curriculum.stage.2.colour=1", "curriculum.stage[2].colour"),
    ];
    for (set, key) in cases {
        let err = Experiment::from_str(STAGED, "t.toml", "t", &[set.to_string()], None).unwrap_err();
        assert_eq!(err.key, key, "{set}: {err}");
    }
    let no_stages = STAGED.split("[[curriculum.stage]]").next().unwrap().to_string()
        + "[[eval]]\nname = \"stage\"\nsamples = 8\n";
    let err = Experiment::from_str(&no_stages, "t.toml", "t", &[], None).unwrap_err();
    assert!(err.key.starts_with("curriculum"), "{err}");
}

fn experiment(rel: &str, sets: &[&str]) -> Experiment {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments").join(rel);
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    Experiment::load(&path, &sets, None).unwrap()
}

/// The positive half of the k = 4 claim in seconds: experiments/parity/k4_logicot.toml with a
/// smaller, one-layer-deeper model (d = 32, 3 layers, batch 128; each stage ends when its
/// 500-sequence evaluation is right everywhere) internalizes the chain of thought on seeds
/// 0, 1, 2 (measured 300–400 steps, 6–9 s each): the root with every CoT position zero-filled
/// is ≥ 0.99. No answer-only control here: at this depth answer-only training learns 4-parity
/// of 8 bits directly in 300–500 steps (measured), so it is no negative control; with
/// log2 k = 2 layers it is on seed 0 (the ignored test below; seeds 1 and 2 learn it directly
/// too, experiments/parity/README.md), but 2-layer Log-ICoT at d = 32 fails on seeds 2 and 4
/// (root 0.75, 0.63).
#[test]
fn log_icot_internalizes_4_parity_in_seconds() {
    let sets = [
        "model.d_model=32",
        "model.n_layers=3",
        "train.batch_size=128",
        "train.eval_every=25",
        "eval.0.samples=500",
        "eval.1.samples=500",
        "curriculum.stage.0.until.at_least=1.0",
        "curriculum.stage.1.until.at_least=1.0",
    ];
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments/parity/k4_logicot.toml");
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    for seed in 0..3 {
        let d = tmp_dir(&format!("k4-fast-{seed}"));
        let e = Experiment::load(&path, &sets, Some(seed)).unwrap();
        let s = summary(finish(&e, &d, None));
        let root = s.final_metrics["eval.final.acc"];
        assert!(
            root >= 0.99,
            "seed {seed}: root accuracy with the CoT zero-filled {root} after {} steps",
            s.steps
        );
        assert_eq!(s.final_metrics["curriculum.level1.reached"], 1.0, "seed {seed}");
        std::fs::remove_dir_all(d).unwrap();
    }
}

/// The k = 4 claim on experiments/parity/k4_logicot.toml itself (n = 8, 2 layers, d = 64;
/// seed 0 needs 900 steps, then 900 answer-only steps). Ignored by default: it costs about
/// 10 CPU-minutes (≈ 0.3 s per step of batch 256); run it with
/// `cargo test --release -p tinylab-train -- --ignored log_icot`. Log-ICoT (explicit CoT, then level 1
/// zero-filled with its loss kept) answers the root with every CoT position zero-filled; the
/// same model trained on the answer alone for the same number of steps stays at chance.
#[test]
#[ignore = "about 10 CPU-minutes; run with --ignored"]
fn log_icot_internalizes_4_parity_and_answer_only_does_not() {
    let d = tmp_dir("k4");
    // Fewer evaluation sequences than the experiment file (2000 → 500 per set): the same
    // training, cheaper evaluations.
    let small_evals = ["eval.0.samples=500", "eval.1.samples=500"];
    let s = summary(finish(&experiment("parity/k4_logicot.toml", &small_evals), &d, None));
    let budget = s.steps;
    let d2 = tmp_dir("k4-answer");
    let steps = format!("train.steps={budget}");
    let sets = [steps.as_str(), "eval.0.samples=500", "eval.1.samples=500", "train.eval_every=300"];
    let a = summary(finish(&experiment("parity/k4_answer_only.toml", &sets), &d2, None));
    let (l, n) = (s.final_metrics["eval.final.acc"], a.final_metrics["eval.final.acc"]);
    assert!(l >= 0.99, "Log-ICoT root accuracy with the CoT zero-filled: {l} after {budget} steps");
    assert!(n <= 0.6, "answer-only root accuracy after the same {budget} steps: {n}");
    assert_eq!(s.final_metrics["curriculum.level1.reached"], 1.0);
    for d in [d, d2] {
        std::fs::remove_dir_all(d).unwrap();
    }
}
