//! `tinylab run --fused`: one run on the fused (seed-batched, one member) engine writes the run
//! directory the default engine writes, with the same metrics to float tolerance — also
//! through a curriculum — and a configuration the engine cannot train is refused with a
//! one-line reason (exit 2).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn experiment(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments").join(rel)
}

fn tinylab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tinylab")).args(args).output().unwrap()
}

fn tmp(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tinylab-fused-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The metric rows of a run: `(step, split, metric) -> value`.
fn rows(dir: &Path) -> Vec<(u64, String, String, f64)> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let s = |k: &str| v[k].as_str().unwrap().to_string();
            (v["step"].as_u64().unwrap(), s("split"), s("metric"), v["value"].as_f64().unwrap())
        })
        .collect()
}

#[test]
fn fused_run_matches_the_default_engine() {
    // The CAT experiment shortened to 60 steps, smaller eval sets (train loss and three eval sets
    // every 20 steps).
    let file = experiment("cat/cat_mqar.toml");
    let mut sets = vec![
        "--seed",
        "2",
        "--set",
        "train.steps=60",
        "--set",
        "train.eval_every=20",
        "--set",
        "train.log_every=20",
    ];
    for e in ["eval.0.samples=128", "eval.1.samples=64", "eval.2.samples=16"] {
        sets.extend(["--set", e]);
    }
    let (a, b) = both_engines(&file, "cat", &sets);
    let (ra, rb) = (rows(&a), rows(&b));
    assert_eq!(ra.len(), rb.len());
    assert!(ra.iter().any(|r| r.1 == "eval.len256" && r.0 == 60));
    for (x, y) in ra.iter().zip(&rb) {
        assert_eq!((x.0, &x.1, &x.2), (y.0, &y.1, &y.2));
        if x.2 != "wall_time_s" && x.2 != "steps_per_s" {
            assert!((x.3 - y.3).abs() <= 1e-4 * x.3.abs().max(1.0), "{x:?} vs {y:?}");
        }
    }
    let run_json =
        |d: &Path| -> Value { serde_json::from_slice(&std::fs::read(d.join("run.json")).unwrap()).unwrap() };
    assert_eq!(run_json(&a)["run_id"], run_json(&b)["run_id"]);
    for d in [a, b] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

/// Runs `file` with `sets` into a fresh directory per engine; returns the two directories.
fn both_engines(file: &Path, tag: &str, sets: &[&str]) -> (PathBuf, PathBuf) {
    let (a, b) = (tmp(&format!("{tag}-graph")), tmp(&format!("{tag}-fused")));
    for (dir, fused) in [(&a, false), (&b, true)] {
        let mut args = vec!["run", file.to_str().unwrap(), "-q", "--out", dir.to_str().unwrap()];
        args.extend(sets);
        if fused {
            args.push("--fused");
        }
        let out = tinylab(&args);
        assert!(dir.join("summary.json").exists(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    (a, b)
}

#[test]
fn fused_curriculum_matches_the_default_engine() {
    // Log-ICoT on 4-parity, small: both stages end on their target or at a 60-step cap, with
    // an optimizer reset; the stage rows, end-of-stage weights and probes as the default engine.
    let file = experiment("parity/k4_logicot.toml");
    let mut sets = vec!["--seed", "1"];
    for s in [
        "model.d_model=32",
        "train.batch_size=64",
        "train.eval_every=10",
        "train.log_every=10",
        "curriculum.stage.0.max_steps=60",
        "curriculum.stage.1.max_steps=60",
        "eval.0.samples=200",
        "eval.1.samples=200",
        "probe.0.samples=200",
    ] {
        sets.extend(["--set", s]);
    }
    let (a, b) = both_engines(&file, "cur", &sets);
    let (ra, rb) = (rows(&a), rows(&b));
    assert_eq!(ra.len(), rb.len());
    let stage_rows: Vec<_> = ra.iter().filter(|r| r.1.starts_with("curriculum")).collect();
    assert!(stage_rows.iter().any(|r| r.1 == "curriculum" && r.3 == 1.0), "{stage_rows:?}");
    assert!(stage_rows.iter().any(|r| r.1 == "curriculum.level1" && r.2 == "steps"), "{stage_rows:?}");
    for (x, y) in ra.iter().zip(&rb) {
        assert_eq!((x.0, &x.1, &x.2), (y.0, &y.1, &y.2));
        assert!((x.3 - y.3).abs() <= 1e-4 * x.3.abs().max(1.0), "{x:?} vs {y:?}");
    }
    for d in [&a, &b] {
        for s in ["stage-00", "stage-01"] {
            assert!(d.join(format!("checkpoints/{s}.safetensors")).exists(), "{}: {s}", d.display());
        }
        assert!(d.join("plots/layer_probe.png").exists());
    }
    let summary = |d: &Path| -> Value {
        serde_json::from_slice(&std::fs::read(d.join("summary.json")).unwrap()).unwrap()
    };
    let (sa, sb) = (summary(&a), summary(&b));
    assert_eq!(sa["steps"], sb["steps"]);
    let probe = "probe.layer_probe.level1_l1_acc";
    let (pa, pb) =
        (sa["final_metrics"][probe].as_f64().unwrap(), sb["final_metrics"][probe].as_f64().unwrap());
    assert!((pa - pb).abs() <= 0.02, "{probe}: {pa} vs {pb}");
    for d in [a, b] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn fused_refuses_attention_masks_with_the_reason() {
    let dir = tmp("refused");
    let file = experiment("parity/k4_logicot.toml");
    let args = ["run", file.to_str().unwrap(), "--fused", "-q", "--set", "task.level_mask=\"tree\""];
    let out = tinylab(&[&args[..], &["--out", dir.to_str().unwrap()]].concat());
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("k4_logicot.toml") && err.contains("--fused") && err.contains("attention masks"),
        "{err}"
    );
    assert!(!dir.exists(), "a refused run creates no directory");
}
