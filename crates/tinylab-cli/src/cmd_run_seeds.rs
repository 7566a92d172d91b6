//! `tinylab run CONFIG --seeds 0,1,2 [--jobs 2]`: one single-thread process per seed, then
//! every check and eval metric as mean ± std.
//!
//! Seed-batched: `--seeds 0,1,2 --batched`, or `train.seeds = [0, 1, 2]` in the config, trains
//! all seeds in this process as one batched graph (`tinylab_train::ensemble_trainer`), writing
//! the same `OUT/seed<N>` directories a solo run of each seed writes; then each directory is
//! finished (figures, probes, checks) by `tinylab run --seed N --out OUT/seed<N>`, which finds
//! the finished run and only re-analyses it, and the same mean ± std report is printed.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use tinylab_train::ensemble_trainer::{check_batchable, run_ensemble, EnsembleRunOptions};
use tinylab_train::Experiment;

use crate::cmd_run::RunArgs;
use crate::jobs::{report, run_all, Job};
use crate::{EXIT_CHECK_FAILED, EXIT_CONFIG};

/// Runs every seed; prints the aggregate; returns the exit code.
pub fn main(a: &RunArgs, exp: &Experiment, seeds: &[u64]) -> Result<u8> {
    let root = root_dir(a, exp);
    let jobs = jobs(a, &root, seeds);
    eprintln!("{} seeds of {} → {}/seed*, {} at a time", seeds.len(), exp.name, root.display(), a.jobs);
    let failed = run_all(&a.config, &jobs, a.jobs, a.force)?;
    if !failed.is_empty() {
        eprintln!("non-zero exit (a failed check or an error): {failed:?}");
    }
    let dirs = jobs.into_iter().map(|j| j.dir).collect();
    Ok(if report(exp, &[(String::new(), dirs)]) { 0 } else { EXIT_CHECK_FAILED })
}

/// The seeds to train seed-batched, if this invocation asks for it: `--batched` (with
/// `--seeds`, else the config's `train.seeds`), or a config with `train.seeds` (`--seeds`
/// overrides the list). Never with `--seed N`, which is one solo run.
pub fn batched_seeds(a: &RunArgs, exp: &Experiment) -> Option<Vec<u64>> {
    let asked = a.batched || !exp.train.seeds.is_empty();
    if a.seed.is_some() || !asked {
        return None;
    }
    Some(if a.seeds.is_empty() { exp.train.seeds.clone() } else { a.seeds.clone() })
}

/// Trains every seed in one batched graph, finishes each seed's directory, prints the
/// aggregate; returns the exit code.
pub fn main_batched(a: &RunArgs, exp: &Experiment, seeds: &[u64]) -> Result<u8> {
    let file = a.config.display();
    if seeds.is_empty() {
        eprintln!("error: {file}: --batched needs --seeds or train.seeds");
        return Ok(EXIT_CONFIG);
    }
    let mut exps = Vec::with_capacity(seeds.len());
    for &s in seeds {
        match Experiment::load(&a.config, &a.sets, Some(s)) {
            Ok(e) => exps.push(e),
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(EXIT_CONFIG);
            }
        }
    }
    if let Err(e) = check_batchable(&exps) {
        eprintln!("error: {file}: {e:#}");
        return Ok(EXIT_CONFIG);
    }
    let root = root_dir(a, exp);
    let jobs = jobs(a, &root, seeds);
    eprintln!(
        "{} seeds of {} batched in one process ({} thread(s)) → {}/seed*",
        seeds.len(),
        exp.name,
        a.threads,
        root.display()
    );
    let started = Instant::now();
    let dirs: Vec<PathBuf> = jobs.iter().map(|j| j.dir.clone()).collect();
    let opts = EnsembleRunOptions {
        dirs: dirs.clone(),
        force: a.force,
        threads: a.threads,
        shards: a.threads,
        stop_after: None,
        quiet: a.quiet,
    };
    let outcomes = run_ensemble(&exps, &opts)?;
    eprintln!("trained {} seeds in {:.1} s", seeds.len(), started.elapsed().as_secs_f64());
    let mut finish = Vec::new();
    for (job, outcome) in jobs.into_iter().zip(outcomes) {
        match outcome {
            Ok(_) => finish.push(job),
            Err(e) => eprintln!("error: {e:#}"),
        }
    }
    eprintln!("figures, probes and checks of each seed ({} at a time)", a.jobs);
    let failed = run_all(&a.config, &finish, a.jobs, false)?;
    if !failed.is_empty() {
        eprintln!("non-zero exit (a failed check or an error): {failed:?}");
    }
    Ok(if report(exp, &[(String::new(), dirs)]) { 0 } else { EXIT_CHECK_FAILED })
}

/// `--out`, or `runs/<name>`.
fn root_dir(a: &RunArgs, exp: &Experiment) -> PathBuf {
    a.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(&exp.name))
}

/// One job per seed: directory `ROOT/seed<N>`.
fn jobs(a: &RunArgs, root: &std::path::Path, seeds: &[u64]) -> Vec<Job> {
    seeds
        .iter()
        .map(|&s| Job { sets: a.sets.clone(), seed: s, dir: root.join(format!("seed{s}")), fused: a.fused })
        .collect()
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    fn args(cli: &[&str]) -> RunArgs {
        Cli::parse_from(std::iter::once("run").chain(cli.iter().copied())).run
    }

    fn exp(seeds: &str) -> Experiment {
        let text =
            format!("[task]\nkind = \"mqar\"\nvocab_size = 32\nseq_len = 16\nnum_kv = 2\n[train]\n{seeds}\n");
        Experiment::from_str(&text, "t.toml", "t", &[], None).unwrap()
    }

    #[test]
    fn batched_when_asked_by_flag_or_config_never_with_one_seed() {
        let (plain, listed) = (exp(""), exp("seeds = [4, 5]"));
        assert_eq!(batched_seeds(&args(&["c.toml", "--seeds", "1,2"]), &plain), None);
        assert_eq!(
            batched_seeds(&args(&["c.toml", "--seeds", "1,2", "--batched"]), &plain),
            Some(vec![1, 2])
        );
        assert_eq!(batched_seeds(&args(&["c.toml", "--batched"]), &plain), Some(vec![]));
        assert_eq!(batched_seeds(&args(&["c.toml"]), &listed), Some(vec![4, 5]));
        assert_eq!(batched_seeds(&args(&["c.toml", "--seeds", "7"]), &listed), Some(vec![7]));
        assert_eq!(batched_seeds(&args(&["c.toml", "--seed", "4"]), &listed), None);
        // `train.seeds` is never written back: a member's config is the solo config
        assert!(!listed.resolved_toml.contains("seeds") && listed.training_toml == plain.training_toml);
    }
}
