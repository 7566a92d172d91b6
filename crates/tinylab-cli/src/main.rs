//! `tinylab`: train tiny attention models on synthetic tasks, check papers' claims, inspect
//! what was learned.

mod alloc;
mod bench;
mod bench_ensemble;
mod bench_peak;
mod cmd_collect;
mod cmd_inspect;
mod cmd_plot;
mod cmd_probe;
mod cmd_run;
mod cmd_run_seeds;
mod cmd_run_selector;
mod cmd_sweep;
mod cmd_tasks;
mod curves;
mod jobs;
mod probe_activations;
mod probe_history;
mod probe_icl;
mod probe_levels;
mod probe_stage;
mod runs;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code for a configuration error (bad file, key or value).
pub const EXIT_CONFIG: u8 = 2;
/// Exit code when training finished but a claim check failed.
pub const EXIT_CHECK_FAILED: u8 = 1;

#[derive(Parser)]
#[command(
    name = "tinylab",
    version,
    about = "Train tiny attention models on synthetic tasks and check papers' claims"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train an experiment, evaluate it, print the claim checks (exit 1 if one fails).
    Run(cmd_run::RunArgs),
    /// Run every point of a grid of config values for every seed (one-thread processes) and
    /// summarize each point as mean ± std.
    Sweep(cmd_sweep::SweepArgs),
    /// List the synthetic tasks, or show decoded samples of one.
    #[command(subcommand)]
    Tasks(cmd_tasks::TasksCommand),
    /// Show a run's parameters (shapes, norms, frozen or not), metrics and checks.
    Inspect(cmd_inspect::InspectArgs),
    /// Time forward+backward+AdamW steps against the PyTorch reference in scripts/.
    Bench(bench::BenchArgs),
    /// Learning curves of one or many runs (seeds as mean ± band), grouped by a config key.
    Plot(cmd_plot::PlotArgs),
    /// Run one analysis (spectrum, circuits, conv, attention, logit_lens, ablate) on a run.
    Probe(cmd_probe::ProbeArgs),
    /// Merge the metrics of many runs into one long CSV table (run id, config columns, step,
    /// split, metric, value) for pandas / polars.
    Collect(cmd_collect::CollectArgs),
}

fn main() -> ExitCode {
    alloc::tune_glibc_malloc();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(a) => cmd_run::main(a),
        Command::Sweep(a) => cmd_sweep::main(a),
        Command::Tasks(c) => cmd_tasks::main(c),
        Command::Inspect(a) => cmd_inspect::main(a),
        Command::Bench(a) => bench::main(a),
        Command::Collect(a) => cmd_collect::main(a),
        Command::Plot(a) => cmd_plot::main(a),
        Command::Probe(a) => cmd_probe::main(a),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// Sets the compute thread count for candle (read once when its thread pool starts).
pub fn set_threads(n: usize) {
    std::env::set_var("RAYON_NUM_THREADS", n.max(1).to_string());
}
