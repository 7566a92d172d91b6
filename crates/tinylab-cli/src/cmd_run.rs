//! `tinylab run CONFIG`: train, evaluate, check.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use tinylab_train::checks::format_table;
use tinylab_train::ensemble_trainer::{run_ensemble, EnsembleRunOptions};
use tinylab_train::{run, Experiment, RunOptions, RunOutcome, Summary};

use crate::{EXIT_CHECK_FAILED, EXIT_CONFIG};

/// Arguments of `tinylab run`.
#[derive(Args)]
pub struct RunArgs {
    /// The experiment file (TOML with [task], [model], [train], [[eval]], [[check]]).
    pub config: PathBuf,
    /// Override a config value: `--set model.d_model=32` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Seed (overrides the file's `seed`).
    #[arg(long, conflicts_with = "seeds")]
    pub seed: Option<u64>,
    /// Several seeds, each its own one-thread process, summarized as mean ± std
    /// (run directories OUT/seed<N>, OUT defaulting to runs/<name>).
    #[arg(long, value_delimiter = ',')]
    pub seeds: Vec<u64>,
    /// With --seeds: train all seeds in this process as one seed-batched graph (as
    /// `train.seeds = [..]` in the config does) instead of one process per seed.
    #[arg(long)]
    pub batched: bool,
    /// Train on the fused engine: the seed-batched graph with one member (fused ops with
    /// hand-written backward; docs/perf.md). Same run directory, metrics equal to the default
    /// engine's to float tolerance (not bit for bit), curricula included; refused with the
    /// reason for continuous-input tasks and attention masks. With --seeds, every seed's
    /// process uses it.
    #[arg(long)]
    pub fused: bool,
    /// With --seeds: how many seeds run at once.
    #[arg(long, default_value_t = 2)]
    pub jobs: usize,
    /// Run directory (default: runs/<name>/<run-id>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Compute threads (default 1: tiny models scale by runs, not by threads). With --fused or
    /// --batched each thread trains a slice of every step's batch (data-parallel, candle
    /// single-threaded); otherwise candle's ops use them.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Start over even if the run directory holds a finished or partial run.
    #[arg(long)]
    pub force: bool,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
}

impl RunArgs {
    /// Whether the file asks for seed-batched training (`train.seeds`), read before any
    /// computation sets up candle's threads (a file that does not parse is reported later).
    fn config_has_seeds(&self) -> bool {
        let seeds = |t: toml::Table| t.get("train")?.get("seeds")?.as_array().map(|a| !a.is_empty());
        std::fs::read_to_string(&self.config)
            .ok()
            .and_then(|text| text.parse::<toml::Table>().ok())
            .and_then(seeds)
            .unwrap_or(false)
    }
}

/// Runs the command; returns the process exit code.
pub fn main(a: RunArgs) -> Result<u8> {
    // The fused and batched engines use the threads for data-parallel slices of each step's
    // batch, each slice single-threaded; the default engine gives them to candle's ops.
    let data_parallel = a.fused || (a.batched || a.config_has_seeds()) && a.seed.is_none();
    crate::set_threads(if data_parallel { 1 } else { a.threads });
    if std::fs::read_to_string(&a.config).is_ok_and(|t| tinylab_ntp::is_selector_experiment(&t)) {
        return crate::cmd_run_selector::main(&a);
    }
    let exp = match Experiment::load(&a.config, &a.sets, a.seed) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(EXIT_CONFIG);
        }
    };
    for (i, p) in exp.probes.iter().enumerate() {
        if let Err(m) = crate::probe_stage::validate(p, &exp) {
            eprintln!("error: {}: probe[{i}]: {m}", a.config.display());
            return Ok(EXIT_CONFIG);
        }
    }
    if let Some(seeds) = crate::cmd_run_seeds::batched_seeds(&a, &exp) {
        return crate::cmd_run_seeds::main_batched(&a, &exp, &seeds);
    }
    if !a.seeds.is_empty() {
        return crate::cmd_run_seeds::main(&a, &exp, &a.seeds);
    }
    let dir = a.out.clone().unwrap_or_else(|| {
        PathBuf::from("runs").join(&exp.name).join(tinylab_train::rundir::run_id(&exp.training_toml))
    });
    let opts =
        RunOptions { dir: dir.clone(), force: a.force, threads: a.threads, stop_after: None, quiet: a.quiet };
    eprintln!("run {} (seed {}) → {}", exp.name, exp.seed, dir.display());
    let outcome = if a.fused {
        if let Err(e) = tinylab_train::ensemble_trainer::check_batchable(std::slice::from_ref(&exp)) {
            eprintln!("error: {}: --fused: {e:#}", a.config.display());
            return Ok(EXIT_CONFIG);
        }
        let opts = EnsembleRunOptions {
            dirs: vec![dir.clone()],
            force: a.force,
            threads: a.threads,
            shards: a.threads,
            stop_after: None,
            quiet: a.quiet,
        };
        run_ensemble(std::slice::from_ref(&exp), &opts)?.pop().expect("one member")?
    } else {
        run(&exp, &opts)?
    };
    match outcome {
        RunOutcome::Interrupted { step } => {
            eprintln!("stopped at step {step}");
            Ok(0)
        }
        RunOutcome::Finished { summary, already_done } => {
            if already_done {
                eprintln!("already finished (use --force to retrain); regenerating probes and figures");
            }
            let summary = finish_run(&exp, &dir, summary)?;
            let mut evals: Vec<_> =
                summary.final_metrics.iter().filter(|(k, _)| k.starts_with("eval.")).collect();
            evals.sort_by(|a, b| a.0.cmp(b.0));
            for (k, v) in evals {
                println!("{k:<28} {v:.4}");
            }
            println!(
                "steps {}{}  wall {:.1}s",
                summary.steps,
                if summary.stopped_early { " (early stop)" } else { "" },
                summary.wall_time_s
            );
            if !summary.checks.is_empty() {
                print!("{}", format_table(&summary.checks));
            }
            println!("summary: {}", dir.join("summary.json").display());
            Ok(if summary.all_passed { 0 } else { EXIT_CHECK_FAILED })
        }
    }
}

/// After training: learning-curve figures, the `[[probe]]` analyses, and the checks
/// re-evaluated with the probe metrics; rewrites `summary.json`.
fn finish_run(exp: &Experiment, dir: &std::path::Path, mut summary: Summary) -> Result<Summary> {
    let run = crate::runs::read_run(dir)?;
    std::fs::create_dir_all(dir.join("plots"))?;
    let title = format!("{} (seed {})", exp.name, exp.seed);
    if !exp.eval.is_empty() && exp.task.build()?.num_features() == 0 {
        crate::curves::plot_curves(
            std::slice::from_ref(&run),
            &["eval.*.acc".into()],
            None,
            false,
            &title,
            &dir.join("plots/accuracy.png"),
        )?;
    }
    crate::curves::plot_curves(
        std::slice::from_ref(&run),
        &["*.loss".into()],
        None,
        true,
        &title,
        &dir.join("plots/loss.png"),
    )?;
    if !exp.probes.is_empty() {
        let ctx = crate::probe_stage::ProbeContext::load(dir)?;
        for p in &exp.probes {
            summary.final_metrics.extend(ctx.run(p)?);
        }
    }
    summary.checks = exp.checks.iter().map(|c| c.evaluate(&summary.final_metrics)).collect();
    summary.all_passed = summary.checks.iter().all(|c| c.pass);
    tinylab_train::rundir::write_atomic(&dir.join("summary.json"), &serde_json::to_vec_pretty(&summary)?)?;
    Ok(summary)
}
