//! Many runs at once: each `tinylab run` in its own one-thread process (tiny models scale by
//! runs, not by threads), at most `jobs` at a time, then their summaries aggregated as
//! mean ± std per group (e.g. per sweep point, over seeds).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result};
use tinylab_train::{Experiment, Summary};

/// One run to launch.
pub struct Job {
    /// `--set` overrides.
    pub sets: Vec<String>,
    /// Seed.
    pub seed: u64,
    /// Run directory.
    pub dir: PathBuf,
    /// Train on the fused engine (`tinylab run --fused`).
    pub fused: bool,
}

/// Mean and population standard deviation.
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let m = v.iter().sum::<f64>() / n;
    (m, (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n).sqrt())
}

fn spawn(config: &Path, job: &Job, force: bool) -> Result<Child> {
    let mut c = Command::new(std::env::current_exe()?);
    c.arg("run")
        .arg(config)
        .args(["--seed", &job.seed.to_string(), "--threads", "1", "-q", "--out"])
        .arg(&job.dir);
    for s in &job.sets {
        c.args(["--set", s]);
    }
    if force {
        c.arg("--force");
    }
    if job.fused {
        c.arg("--fused");
    }
    c.env("RAYON_NUM_THREADS", "1").stdout(Stdio::null());
    c.spawn().with_context(|| format!("starting {}", job.dir.display()))
}

/// Runs every job, at most `parallel` at a time; returns the directories whose process
/// exited non-zero (a failed check or an error).
pub fn run_all(config: &Path, jobs: &[Job], parallel: usize, force: bool) -> Result<Vec<PathBuf>> {
    let mut running: Vec<(PathBuf, Child)> = Vec::new();
    let mut failed = Vec::new();
    let reap = |(dir, mut child): (PathBuf, Child), failed: &mut Vec<PathBuf>| -> Result<()> {
        if !child.wait()?.success() {
            failed.push(dir);
        }
        Ok(())
    };
    for job in jobs {
        while running.len() >= parallel.max(1) {
            reap(running.remove(0), &mut failed)?;
        }
        running.push((job.dir.clone(), spawn(config, job, force)?));
    }
    for r in running {
        reap(r, &mut failed)?;
    }
    Ok(failed)
}

/// Prints, per group, every eval and checked metric as mean ± std and how many runs passed
/// each check; returns whether every run of every group passed every check.
pub fn report(exp: &Experiment, groups: &[(String, Vec<PathBuf>)]) -> bool {
    let mut all = true;
    for (label, dirs) in groups {
        let summaries: Vec<Summary> = dirs
            .iter()
            .filter_map(|d| std::fs::read(d.join("summary.json")).ok())
            .filter_map(|b| serde_json::from_slice(&b).ok())
            .collect();
        if !label.is_empty() {
            println!("\n== {label}");
        }
        let mut by_metric: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        for s in &summaries {
            for (k, v) in &s.final_metrics {
                if k.starts_with("eval.") || exp.checks.iter().any(|c| &c.metric == k) {
                    by_metric.entry(k.as_str()).or_default().push(*v);
                }
            }
        }
        println!("{:<48} {:>9} {:>9}  n", "metric", "mean", "std");
        for (k, v) in &by_metric {
            let (m, sd) = mean_std(v);
            println!("{k:<48} {m:>9.4} {sd:>9.4}  {}", v.len());
        }
        for c in &exp.checks {
            let passed =
                summaries.iter().filter(|s| s.checks.iter().any(|r| r.name == c.name && r.pass)).count();
            let status = if passed == dirs.len() { "PASS" } else { "FAIL" };
            println!("{status:<6} {passed}/{} runs  {}", dirs.len(), c.name);
        }
        let (wm, ws) = mean_std(&summaries.iter().map(|s| s.wall_time_s).collect::<Vec<_>>());
        println!("wall per run {wm:.1} ± {ws:.1} s");
        all &= summaries.len() == dirs.len() && summaries.iter().all(|s| s.all_passed);
    }
    all
}
