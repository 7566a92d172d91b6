//! `tinylab sweep CONFIG --grid key=v1,v2 ... [--seeds 0,1] [--jobs 2]`: every point of the
//! grid (the Cartesian product of the `--grid` values) for every seed, each run a one-thread
//! process, then per point every check and eval metric as mean ± std over seeds.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use tinylab_train::Experiment;

use crate::jobs::{report, run_all, Job};
use crate::{EXIT_CHECK_FAILED, EXIT_CONFIG};

/// Arguments of `tinylab sweep`.
#[derive(Args)]
pub struct SweepArgs {
    /// The experiment file.
    pub config: PathBuf,
    /// A swept key and its values: `--grid model.d_head=8,16,32` (repeatable; values are
    /// split at commas).
    #[arg(long = "grid", value_name = "KEY=V1,V2,...", required = true)]
    pub grid: Vec<String>,
    /// Fixed overrides applied to every point: `--set key=value` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Seeds run at every point.
    #[arg(long, value_delimiter = ',', default_value = "0")]
    pub seeds: Vec<u64>,
    /// How many runs at once.
    #[arg(long, default_value_t = 2)]
    pub jobs: usize,
    /// Root of the run directories (default runs/<name>-sweep): ROOT/<point>/seed<N>.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Retrain runs that already finished.
    #[arg(long)]
    pub force: bool,
}

/// The Cartesian product of `key=v1,v2` specs as lists of `key=v` assignments.
pub fn expand(grid: &[String]) -> Result<Vec<Vec<String>>> {
    let mut points: Vec<Vec<String>> = vec![vec![]];
    for g in grid {
        let Some((key, values)) = g.split_once('=') else { bail!("--grid `{g}`: expected key=v1,v2,...") };
        let values: Vec<&str> = values.split(',').map(str::trim).filter(|v| !v.is_empty()).collect();
        if values.is_empty() {
            bail!("--grid `{g}`: no values");
        }
        points = points
            .into_iter()
            .flat_map(|p| {
                values.iter().map(move |v| [p.clone(), vec![format!("{}={v}", key.trim())]].concat())
            })
            .collect();
    }
    Ok(points)
}

/// Runs the command; returns the process exit code.
pub fn main(a: SweepArgs) -> Result<u8> {
    let points = expand(&a.grid)?;
    let mut first = None;
    for p in &points {
        let sets = [a.sets.clone(), p.clone()].concat();
        match Experiment::load(&a.config, &sets, None) {
            Ok(e) => first = first.or(Some(e)),
            Err(e) => {
                eprintln!("error: {e} (sweep point {})", p.join(" "));
                return Ok(EXIT_CONFIG);
            }
        }
    }
    let exp = first.expect("at least one point");
    let root = a.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(format!("{}-sweep", exp.name)));
    let mut jobs = Vec::new();
    let mut groups = Vec::new();
    for p in &points {
        let label = p.join(" ");
        let dir = root.join(p.join("_").replace(['/', ' '], "-"));
        let dirs: Vec<PathBuf> = a.seeds.iter().map(|s| dir.join(format!("seed{s}"))).collect();
        for (s, d) in a.seeds.iter().zip(&dirs) {
            jobs.push(Job {
                sets: [a.sets.clone(), p.clone()].concat(),
                seed: *s,
                dir: d.clone(),
                fused: false,
            });
        }
        groups.push((label, dirs));
    }
    eprintln!("{} points × {} seeds → {}, {} at a time", points.len(), a.seeds.len(), root.display(), a.jobs);
    run_all(&a.config, &jobs, a.jobs, a.force)?;
    Ok(if report(&exp, &groups) { 0 } else { EXIT_CHECK_FAILED })
}

#[cfg(test)]
mod tests {
    use super::expand;

    #[test]
    fn grid_is_the_cartesian_product() {
        let p = expand(&["a=1,2".into(), "b=x,y,z".into()]).unwrap();
        assert_eq!(p.len(), 6);
        assert_eq!(p[0], ["a=1", "b=x"]);
        assert_eq!(p[5], ["a=2", "b=z"]);
        assert!(expand(&["nokey".into()]).is_err());
        assert!(expand(&["a=".into()]).is_err());
    }
}
