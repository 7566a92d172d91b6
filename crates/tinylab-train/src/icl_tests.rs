//! The in-context-regression mechanism in seconds: a one-layer linear self-attention trained on
//! Gaussian linear regression (d = 10, N = 10) matches optimal one-step GD in loss, weights and
//! input sensitivity; with W_QK frozen at a random init (negative control) it does not.

use candle_core::{DType, Device};
use tinylab_model::Model;
use tinylab_tasks::{LinearRegression, Task, TaskConfig};

use crate::experiment::Experiment;
use crate::trainer::{run, RunOptions, RunOutcome};

const LSA: &str = r#"
name = "icl_test"
seed = 0
[task]
kind = "linear_regression"
dim = 10
num_points = 10
[model]
input = "continuous"
readout = "last_coordinate"
d_model = 11
attention = "linear"
weights = "combined"
attn_scale = 0.1
attend_self = false
norm = "none"
init_scale = 0.002
[train]
steps = 800
batch_size = 256
optimizer = { lr = 1e-2 }
schedule = { kind = "cosine", warmup_steps = 0 }
eval_every = 800
log_every = 100
checkpoint_every = 800
[[eval]]
name = "test"
samples = 4096
"#;

/// Trains, then returns the final eval metrics and the mechanism metrics on fresh samples.
fn train(tag: &str, sets: &[&str]) -> (f64, Vec<(String, f64)>) {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    let exp = Experiment::from_str(LSA, "icl.toml", "icl", &sets, None).unwrap();
    let dir = std::env::temp_dir().join(format!("tinylab-icl-{tag}-{}", std::process::id()));
    let opts = RunOptions { dir: dir.clone(), force: true, quiet: true, ..Default::default() };
    let RunOutcome::Finished { summary, .. } = run(&exp, &opts).unwrap() else { panic!("interrupted") };
    let ratio = summary.final_metrics["eval.test.loss_over_gd"];
    let mut model = Model::new(&exp.model, exp.seed, &Device::Cpu, DType::F32).unwrap();
    let (tensors, _) = crate::checkpoint::load(&dir.join("checkpoints/step-000800.safetensors")).unwrap();
    model.load_weights(&tensors).unwrap();
    let TaskConfig::LinearRegression(c) = &exp.task else { unreachable!() };
    let task = LinearRegression::new(c.clone()).unwrap();
    let batch = task.generate(&mut crate::data::rng(1, 7_000), 2048);
    let report = crate::icl::analyse(&model, &task, &batch).unwrap();
    let _ = std::fs::remove_dir_all(&dir);

    (ratio, report.metrics)
}

fn get(m: &[(String, f64)], k: &str) -> f64 {
    m.iter().find(|(n, _)| n == k).unwrap_or_else(|| panic!("no metric {k}")).1
}

#[test]
fn one_lsa_layer_learns_one_step_of_gd_and_a_frozen_w_qk_does_not() {
    let (ratio, m) = train("lsa", &[]);
    println!("trained: loss/gd {ratio:.4} {m:?}");
    assert!(ratio < 1.03, "loss / one-step-GD loss {ratio}");
    assert!(get(&m, "sens_cos_gd") > 0.99, "{m:?}");
    assert!(get(&m, "kq_cos_identity") > 0.98, "{m:?}");
    // 800 small-batch steps leave SGD noise (~0.01) on the zero-mean x-entries of W_PV's y-row;
    // the paper-setting experiment (batch 2048, 5000 steps) checks the 0.05 of the issue.
    assert!(get(&m, "pv_off_energy") < 0.1, "{m:?}");
    assert!((get(&m, "eta_ratio") - 1.0).abs() < 0.1, "{m:?}");

    // Negative control: W_QK frozen at a random O(1) init (W_OV still trained).
    let (ratio, m) = train("frozen", &["model.freeze=[\"W_QK\"]", "model.init_scale=1.0"]);
    println!("frozen W_QK: loss/gd {ratio:.4} {m:?}");
    assert!(ratio > 1.3, "a random fixed W_QK cannot match GD: {ratio}");
    assert!(get(&m, "sens_cos_gd") < 0.5, "{m:?}");
    assert!(get(&m, "kq_cos_identity") < 0.5, "{m:?}");
}
