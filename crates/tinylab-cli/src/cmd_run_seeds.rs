//! `tinylab run CONFIG --seeds 0,1,2 [--jobs 2]`: one single-thread process per seed, then
//! every check and eval metric as mean ± std.

use std::path::PathBuf;

use anyhow::Result;
use tinylab_train::Experiment;

use crate::cmd_run::RunArgs;
use crate::jobs::{report, run_all, Job};
use crate::EXIT_CHECK_FAILED;

/// Runs every seed; prints the aggregate; returns the exit code.
pub fn main(a: &RunArgs, exp: &Experiment, seeds: &[u64]) -> Result<u8> {
    let root = a.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(&exp.name));
    let jobs: Vec<Job> = seeds
        .iter()
        .map(|&s| Job { sets: a.sets.clone(), seed: s, dir: root.join(format!("seed{s}")) })
        .collect();
    eprintln!("{} seeds of {} → {}/seed*, {} at a time", seeds.len(), exp.name, root.display(), a.jobs);
    let failed = run_all(&a.config, &jobs, a.jobs, a.force)?;
    if !failed.is_empty() {
        eprintln!("non-zero exit (a failed check or an error): {failed:?}");
    }
    let dirs = jobs.into_iter().map(|j| j.dir).collect();
    Ok(if report(exp, &[(String::new(), dirs)]) { 0 } else { EXIT_CHECK_FAILED })
}
