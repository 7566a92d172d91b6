//! `tinylab run --fused`: one run on the fused (seed-batched, one member) engine writes the run
//! directory the default engine writes, with the same metrics to float tolerance, and a
//! configuration the engine cannot train is refused with a one-line reason (exit 2).

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
    let file = file.to_str().unwrap();
    let mut sets =
        vec!["--set", "train.steps=60", "--set", "train.eval_every=20", "--set", "train.log_every=20"];
    for e in ["eval.0.samples=128", "eval.1.samples=64", "eval.2.samples=16"] {
        sets.extend(["--set", e]);
    }
    let (a, b) = (tmp("graph"), tmp("fused"));
    for (dir, fused) in [(&a, false), (&b, true)] {
        let mut args = vec!["run", file, "--seed", "2", "-q", "--out", dir.to_str().unwrap()];
        args.extend(&sets);
        if fused {
            args.push("--fused");
        }
        let out = tinylab(&args);
        assert!(dir.join("summary.json").exists(), "{}", String::from_utf8_lossy(&out.stderr));
    }
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

#[test]
fn fused_refuses_a_curriculum_with_the_reason() {
    let dir = tmp("refused");
    let file = experiment("parity/k4_logicot.toml");
    let out = tinylab(&["run", file.to_str().unwrap(), "--fused", "-q", "--out", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("k4_logicot.toml") && err.contains("--fused") && err.contains("curriculum"),
        "{err}"
    );
    assert!(!dir.exists(), "a refused run creates no directory");
}
