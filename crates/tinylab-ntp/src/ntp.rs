//! The NTP-mechanics experiment (`kind = "ntp"`): per trial, a fresh token-priority data set,
//! W_svm, the nuclear-norm W_svm,* (the factorised model's direction) and W_fin, and the
//! selector trained by normalised GD from PyTorch's default init, tracking cos(W(t), W_svm),
//! cos(W(t), W_svm,*), ‖Π_fin W(t) − W_fin‖ and the attention on lower SCCs — the quantities
//! plotted by `mc_next_single_layer_global_converge.ipynb`.
//!
//! Files: `config` (the experiment file), `trial` (one trial), `metrics` (the `probe.ntp.*`
//! aggregates), `plots` (figures); this file runs them into a run directory.

use std::path::Path;

use anyhow::{bail, Result};
use tinylab_train::Summary;

use crate::rundir::{resolved, row, validate_checks, Run};

mod config;
mod metrics;
mod plots;
mod trial;
pub use config::*;
pub use metrics::*;
pub use plots::*;
pub use trial::*;

/// Runs an NTP experiment into a run directory.
pub fn run(mut exp: NtpExperiment, default_name: &str, out: Option<&Path>) -> Result<Summary> {
    if exp.name.is_empty() {
        exp.name = default_name.to_string();
    }
    let t = &exp.train;
    if t.iterations == 0 || t.trials == 0 || t.log_every == 0 || t.lr.is_nan() || t.lr <= 0.0 {
        bail!("train: iterations, trials, log_every and lr must be positive");
    }
    let known: Vec<String> = FINAL_METRICS
        .iter()
        .map(|m| format!("probe.ntp.{m}"))
        .chain(
            [
                "loss",
                "grad_norm",
                "w_norm",
                "cos_svm",
                "cos_svm_nuc",
                "cos_svm_fin",
                "fin_dist",
                "lower_scc_attn",
            ]
            .map(|m| format!("train.{m}")),
        )
        .collect();
    validate_checks(&exp.check, &known)?;
    let (full, id) = resolved(&exp)?;
    let mut run = Run::create(out, &exp.name, exp.seed, &full, &id)?;
    eprintln!("run {} (seed {}) → {}", exp.name, exp.seed, run.dir.display());
    let trials: Vec<Trial> =
        (0..exp.train.trials).map(|j| run_trial(&exp, &mut trial_rng(exp.seed, j))).collect::<Result<_>>()?;
    // Metric rows: per trial (split `trial<j>`) and the mean over trials (split `train`).
    let steps = trials[0].curves.steps.clone();
    type Get = fn(&Curves) -> &Vec<f64>;
    let curves: [(&str, Get); 8] = [
        ("loss", |c| &c.loss),
        ("grad_norm", |c| &c.grad_norm),
        ("w_norm", |c| &c.w_norm),
        ("cos_svm", |c| &c.cos_svm),
        ("cos_svm_nuc", |c| &c.cos_svm_nuc),
        ("cos_svm_fin", |c| &c.cos_svm_fin),
        ("fin_dist", |c| &c.fin_dist),
        ("lower_scc_attn", |c| &c.lower_attn),
    ];
    for (si, &step) in steps.iter().enumerate() {
        let mut rows = Vec::new();
        for (name, get) in &curves {
            let vals: Vec<f64> = trials.iter().map(|t| get(&t.curves)[si]).collect();
            for (j, v) in vals.iter().enumerate() {
                rows.push(row(step, &format!("trial{j}"), name, *v));
            }
            rows.push(row(step, "train", name, vals.iter().sum::<f64>() / vals.len() as f64));
        }
        run.write(&rows)?;
    }
    let last = *steps.last().expect("steps");
    let fm = final_metrics(&trials);
    // Metrics that do not apply (e.g. W_fin distances with no cyclic trial) are NaN: no row.
    run.write(
        &fm.iter()
            .filter(|(_, v)| !v.is_nan())
            .map(|(k, v)| row(last, "probe.ntp", k, *v))
            .collect::<Vec<_>>(),
    )?;
    plots(&run, &exp, &trials)?;
    run.finish(&exp.check, exp.train.iterations)
}
