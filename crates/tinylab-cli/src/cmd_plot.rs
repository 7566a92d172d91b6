//! `tinylab plot RUNS...`: learning curves of one or many runs, seeds as mean ± band.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::curves::plot_curves;
use crate::runs::{find_runs, read_run, RunData};

/// Arguments of `tinylab plot`.
#[derive(Args)]
pub struct PlotArgs {
    /// Run directories, or directories to search for runs.
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Metric paths to draw; `*` matches anything (default: `eval.*.acc`).
    #[arg(long = "metric", short)]
    pub metrics: Vec<String>,
    /// Config key to group runs by (e.g. `model.n_layers`); seeds within a group are averaged.
    #[arg(long)]
    pub group_by: Option<String>,
    /// Logarithmic y axis.
    #[arg(long)]
    pub log_y: bool,
    /// Output file, .png or .svg.
    #[arg(short, long, default_value = "curves.png")]
    pub out: PathBuf,
}

/// Runs the command; returns the process exit code.
pub fn main(a: PlotArgs) -> Result<u8> {
    let runs: Vec<RunData> = find_runs(&a.runs)?.iter().map(|d| read_run(d)).collect::<Result<_>>()?;
    let metrics = if a.metrics.is_empty() { vec!["eval.*.acc".to_string()] } else { a.metrics.clone() };
    let title = format!("{} run(s)", runs.len());
    plot_curves(&runs, &metrics, a.group_by.as_deref(), a.log_y, &title, &a.out)?;
    eprintln!("wrote {}", a.out.display());
    Ok(0)
}
