//! `tinylab run CONFIG --seeds 0,1,2 [--jobs 2]`: one single-thread process per seed (tiny
//! models scale by runs, not by threads), then every check and eval metric as mean ± std.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result};
use tinylab_train::{Experiment, Summary};

use crate::cmd_run::RunArgs;
use crate::EXIT_CHECK_FAILED;

/// Mean and population standard deviation.
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let m = v.iter().sum::<f64>() / n;
    (m, (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n).sqrt())
}

fn spawn(a: &RunArgs, seed: u64, dir: &Path) -> Result<Child> {
    let mut c = Command::new(std::env::current_exe()?);
    c.arg("run").arg(&a.config).args(["--seed", &seed.to_string(), "--threads", "1", "-q", "--out"]).arg(dir);
    for s in &a.sets {
        c.args(["--set", s]);
    }
    if a.force {
        c.arg("--force");
    }
    c.env("RAYON_NUM_THREADS", "1").stdout(Stdio::null());
    c.spawn().with_context(|| format!("starting seed {seed}"))
}

/// Runs every seed, at most `jobs` at a time; prints the aggregate; returns the exit code.
pub fn main(a: &RunArgs, exp: &Experiment, seeds: &[u64]) -> Result<u8> {
    let root = a.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(&exp.name));
    let dirs: Vec<PathBuf> = seeds.iter().map(|s| root.join(format!("seed{s}"))).collect();
    eprintln!("{} seeds of {} → {}/seed*, {} at a time", seeds.len(), exp.name, root.display(), a.jobs);
    let mut running: Vec<(u64, Child)> = Vec::new();
    let mut failed = Vec::new();
    for (seed, dir) in seeds.iter().zip(&dirs) {
        while running.len() >= a.jobs.max(1) {
            let (s, mut child) = running.remove(0);
            if !child.wait()?.success() {
                failed.push(s);
            }
        }
        running.push((*seed, spawn(a, *seed, dir)?));
    }
    for (s, mut child) in running {
        if !child.wait()?.success() {
            failed.push(s);
        }
    }
    let summaries: Vec<Summary> = dirs
        .iter()
        .filter_map(|d| std::fs::read(d.join("summary.json")).ok())
        .filter_map(|b| serde_json::from_slice(&b).ok())
        .collect();
    let mut by_metric: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for s in &summaries {
        for (k, v) in &s.final_metrics {
            if k.starts_with("eval.") || exp.checks.iter().any(|c| &c.metric == k) {
                by_metric.entry(k.clone()).or_default().push(*v);
            }
        }
    }
    println!("{:<48} {:>9} {:>9}  n", "metric", "mean", "std");
    for (k, v) in &by_metric {
        let (m, sd) = mean_std(v);
        println!("{k:<48} {m:>9.4} {sd:>9.4}  {}", v.len());
    }
    for c in &exp.checks {
        let passed = summaries.iter().filter(|s| s.checks.iter().any(|r| r.name == c.name && r.pass)).count();
        let status = if passed == seeds.len() { "PASS" } else { "FAIL" };
        println!("{status:<6} {passed}/{} seeds  {}", seeds.len(), c.name);
    }
    let walls: Vec<f64> = summaries.iter().map(|s| s.wall_time_s).collect();
    let (wm, ws) = mean_std(&walls);
    println!("wall per seed {wm:.1} ± {ws:.1} s");
    if !failed.is_empty() {
        eprintln!(
            "seeds {failed:?} exited non-zero (a check failed or the run errored; see their run directories)"
        );
    }
    let all = summaries.len() == seeds.len() && summaries.iter().all(|s| s.all_passed);
    Ok(if all { 0 } else { EXIT_CHECK_FAILED })
}
