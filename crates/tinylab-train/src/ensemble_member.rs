//! One member of a seed-batched run: its run directory, written exactly as a solo run of its
//! seed writes it (`config.toml`, `run.json`, `metrics.jsonl|csv`, checkpoints with weights,
//! optimizer state and data-RNG position under the solo names, `summary.json`).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{ensure, Context, Result};
use candle_core::Tensor;

use crate::checkpoint;
use crate::checks::CheckResult;
use crate::data::DataSource;
use crate::eval::EvalData;
use crate::experiment::Experiment;
use crate::metrics::{truncate_after, MetricRow, MetricsWriter};
use crate::rundir::{git_sha, host_name, now_unix, write_atomic, RunDir, RunReport};
use crate::stage_cursor::StageCursor;
use crate::trainer::stage_data;
use crate::trainer::Summary;

/// A member being trained.
pub struct Member<'a> {
    /// Its experiment (the shared config with its seed).
    pub exp: &'a Experiment,
    /// Its run directory.
    pub rd: RunDir,
    /// Its training data stream (seed `exp.seed`, as a solo run).
    pub data: DataSource,
    /// Its evaluation sets (generated from its seed).
    pub evals: Vec<EvalData>,
    /// Every metric row so far (for the final metrics).
    pub rows: Vec<MetricRow>,
    /// Whether early stop ended it.
    pub stopped_early: bool,
    /// Its curriculum stage.
    pub stage: StageCursor,
    writer: Option<MetricsWriter>,
    report: Option<RunReport>,
    seeds: Vec<u64>,
}

impl<'a> Member<'a> {
    /// A member of the run of `seeds` (recorded in `run.json`), with fresh data and eval sets
    /// of the first curriculum stage.
    pub fn new(exp: &'a Experiment, dir: &Path, seeds: &[u64]) -> Result<Self> {
        let (data, evals) = stage_data(exp, 0, None)?;
        let rd = RunDir::new(dir);
        Ok(Self {
            exp,
            rd,
            data,
            evals,
            rows: vec![],
            stopped_early: false,
            stage: StageCursor::default(),
            writer: None,
            report: None,
            seeds: seeds.to_vec(),
        })
    }

    /// The checkpoint at `step` (`None` at step 0: start afresh, clearing partial metrics):
    /// tensors to load, and the data stream positioned as saved; metrics truncated to `step`.
    pub fn resume(&mut self, step: usize) -> Result<Option<HashMap<String, Tensor>>> {
        if step == 0 {
            for f in ["metrics.jsonl", "metrics.csv"] {
                let _ = std::fs::remove_file(self.rd.root.join(f));
            }
            return Ok(None);
        }
        let path = self.rd.checkpoint(step);
        let (tensors, meta) = checkpoint::load(&path)?;
        let pos: u128 =
            meta.get("data_rng_word_pos").context("checkpoint lacks data_rng_word_pos")?.parse()?;
        self.stage = StageCursor::from_meta(&meta)?;
        let stages = self.exp.curriculum.stages.len();
        ensure!(
            self.stage.index < stages,
            "checkpoint {} is in stage {}, but the curriculum has {stages}",
            path.display(),
            self.stage.index
        );
        (self.data, self.evals) = stage_data(self.exp, self.stage.index, Some(pos))?;
        self.rows = truncate_after(&self.rd.root, step)?;
        Ok(Some(tensors))
    }

    /// Writes `run.json` and opens the metric files (after [`Member::resume`]).
    pub fn start(&mut self, threads: usize, resumed_from: Option<usize>) -> Result<()> {
        let report = RunReport {
            run_id: crate::rundir::run_id(&self.exp.training_toml),
            name: self.exp.name.clone(),
            seed: self.exp.seed,
            tinylab_version: env!("CARGO_PKG_VERSION").into(),
            git_sha: git_sha(),
            host: host_name(),
            threads,
            start_unix: now_unix(),
            end_unix: None,
            wall_time_s: None,
            resumed_from_step: resumed_from,
            steps_done: resumed_from.unwrap_or(0),
        };
        self.report = Some(report);
        self.write_report()?;
        self.writer = Some(MetricsWriter::open(&self.rd.root)?);
        Ok(())
    }

    /// `run.json`: the solo report plus `ensemble_seeds`, the seeds trained with this one.
    fn write_report(&self) -> Result<()> {
        let mut v = serde_json::to_value(self.report.as_ref().context("member not started")?)?;
        v["ensemble_seeds"] = serde_json::json!(self.seeds);
        Ok(write_atomic(&self.rd.run_json(), &serde_json::to_vec_pretty(&v)?)?)
    }

    /// Appends metric rows to the files and to [`Member::rows`].
    pub fn write(&mut self, rows: Vec<MetricRow>) -> Result<()> {
        self.writer.as_mut().context("member not started")?.write(&rows)?;
        self.rows.extend(rows);
        Ok(())
    }

    /// Saves a solo checkpoint at `step` (weights, optimizer state, data position) and prunes
    /// old ones as the solo trainer does.
    pub fn save_checkpoint(
        &mut self,
        step: usize,
        mut tensors: Vec<(String, Tensor)>,
        state: Vec<(String, Tensor)>,
    ) -> Result<()> {
        tensors.extend(state);
        let mut meta: BTreeMap<String, String> = [
            ("format".to_string(), "tinylab-checkpoint-v1".to_string()),
            ("step".to_string(), step.to_string()),
            ("data_rng_word_pos".to_string(), self.data.rng_word_pos().to_string()),
        ]
        .into();
        meta.extend(self.stage.meta());
        checkpoint::save_atomic(&self.rd.checkpoint(step), &tensors, &meta)?;
        let keep = self.exp.train.keep_checkpoints.max(1);
        let all = self.rd.list_checkpoints();
        if all.len() > keep {
            for (_, p) in &all[..all.len() - keep] {
                std::fs::remove_file(p).ok();
            }
        }
        if let Some(r) = self.report.as_mut() {
            r.steps_done = step;
        }
        self.write_report()
    }

    /// Evaluates the checks and writes `summary.json` and the final `run.json`.
    pub fn finish(&mut self, step: usize, wall: f64) -> Result<Summary> {
        let final_metrics: BTreeMap<String, f64> = self.rows.iter().map(|r| (r.path(), r.value)).collect();
        let checks: Vec<CheckResult> = self.exp.checks.iter().map(|c| c.evaluate(&final_metrics)).collect();
        let summary = Summary {
            run_id: crate::rundir::run_id(&self.exp.training_toml),
            name: self.exp.name.clone(),
            seed: self.exp.seed,
            steps: step,
            stopped_early: self.stopped_early,
            wall_time_s: wall,
            all_passed: checks.iter().all(|c| c.pass),
            final_metrics,
            checks,
        };
        if let Some(r) = self.report.as_mut() {
            (r.end_unix, r.wall_time_s, r.steps_done) = (Some(now_unix()), Some(wall), step);
        }
        self.write_report()?;
        write_atomic(&self.rd.summary(), &serde_json::to_vec_pretty(&summary)?)?;
        Ok(summary)
    }
}
