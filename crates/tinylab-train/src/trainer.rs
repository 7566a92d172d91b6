//! The training loop of one run: data → model → loss → optimizer, with metrics, evaluation,
//! checkpoints, early stop, exact resume and the final checks.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device};
use serde::{Deserialize, Serialize};
use tinylab_model::{ForwardOptions, Model};

use crate::checkpoint;
use crate::checks::{CheckResult, CheckSpec};
use crate::data::{DataSource, DeviceBatch};
use crate::eval::{batch_loss_and_correct, batch_mse, EvalData};
use crate::experiment::Experiment;
use crate::layer_targets;
use crate::metrics::{truncate_after, MetricRow, MetricsWriter};
use crate::optim::clip::clip_grad_norm;
use crate::progress::Progress;
use crate::rundir::{git_sha, host_name, now_unix, write_atomic, RunDir, RunReport};
use crate::stage_cursor::{StageCursor, StageEnd};

/// How to run (not part of the experiment, so not part of the run id).
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The run directory.
    pub dir: PathBuf,
    /// Start from scratch even if the directory holds a run (deletes it).
    pub force: bool,
    /// Compute threads recorded in `run.json` (set by the caller via RAYON_NUM_THREADS).
    pub threads: usize,
    /// Stop after this step as if interrupted (tests of resume).
    pub stop_after: Option<usize>,
    /// No progress output.
    pub quiet: bool,
}

/// `summary.json`: final metrics and the claim checks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// Run id.
    pub run_id: String,
    /// Experiment name.
    pub name: String,
    /// Seed.
    pub seed: u64,
    /// Steps trained.
    pub steps: usize,
    /// Whether early stop ended training.
    pub stopped_early: bool,
    /// Wall time of the invocation that finished the run, seconds.
    pub wall_time_s: f64,
    /// Last value of every metric path.
    pub final_metrics: BTreeMap<String, f64>,
    /// Check outcomes.
    pub checks: Vec<CheckResult>,
    /// Whether every check passed.
    pub all_passed: bool,
}

/// What a call to [`run`] did.
#[derive(Debug, Clone)]
pub enum RunOutcome {
    /// Training finished (now or in an earlier invocation: `already_done`).
    Finished {
        /// The run's summary.
        summary: Summary,
        /// True when the directory already held this finished run (nothing was trained).
        already_done: bool,
    },
    /// Stopped at `stop_after` before the end (resumable).
    Interrupted {
        /// Last completed step.
        step: usize,
    },
}

/// Prepares a run directory (also each member's of a seed-batched run): `force` deletes it;
/// a directory holding another configuration is refused; a finished run returns its summary;
/// otherwise `config.toml` is (re)written and `None` returned.
pub(crate) fn prepare_dir(exp: &Experiment, rd: &RunDir, force: bool) -> Result<Option<Summary>> {
    if force && rd.root.exists() {
        std::fs::remove_dir_all(&rd.root).with_context(|| format!("removing {}", rd.root.display()))?;
    }
    if rd.config().exists() {
        let old_text = std::fs::read_to_string(rd.config())?;
        let old = Experiment::from_str(&old_text, &rd.config().display().to_string(), &exp.name, &[], None)
            .map(|e| e.training_toml)
            .unwrap_or(old_text);
        if old != exp.training_toml {
            bail!(
                "{} holds a run of a different configuration; choose another --out or pass --force to overwrite",
                rd.root.display()
            );
        }
        write_atomic(&rd.config(), exp.resolved_toml.as_bytes())?; // checks/probes may have changed
        if rd.summary().exists() {
            let s: Summary = serde_json::from_slice(&std::fs::read(rd.summary())?)?;
            return Ok(Some(s));
        }
    }
    std::fs::create_dir_all(rd.checkpoints()).with_context(|| format!("creating {}", rd.root.display()))?;
    write_atomic(&rd.config(), exp.resolved_toml.as_bytes())?;
    Ok(None)
}

/// Trains (or resumes) the experiment in `opts.dir`, evaluates, checks, writes the summary.
pub fn run(exp: &Experiment, opts: &RunOptions) -> Result<RunOutcome> {
    let rd = RunDir::new(&opts.dir);
    let run_id = crate::rundir::run_id(&exp.training_toml);
    if let Some(summary) = prepare_dir(exp, &rd, opts.force)? {
        return Ok(RunOutcome::Finished { summary, already_done: true });
    }
    let started = Instant::now();
    let device = Device::Cpu;
    let tr = &exp.train;
    let mut model = exp.build_model(&device)?;
    let mut opt = tr.optimizer.build(model.params().trainable())?;
    let cur = &exp.curriculum;
    let continuous = exp.task.build()?.num_features() > 0;
    let mut stage = StageCursor::default();
    let (mut data, mut evals) = stage_data(exp, 0, None)?;
    let mut start_step = 0usize;
    let mut resumed_from = None;
    let mut rows: Vec<MetricRow> = Vec::new();
    if let Some((step, path)) = rd.last_checkpoint() {
        let (tensors, meta) = checkpoint::load(&path)?;
        model.load_weights(&tensors)?;
        opt.load_state(&tensors)?;
        let pos: u128 =
            meta.get("data_rng_word_pos").context("checkpoint lacks data_rng_word_pos")?.parse()?;
        stage = StageCursor::from_meta(&meta)?;
        if stage.index >= cur.stages.len() {
            bail!(
                "checkpoint {} is in stage {}, but the curriculum has {}",
                path.display(),
                stage.index,
                cur.stages.len()
            );
        }
        (data, evals) = stage_data(exp, stage.index, Some(pos))?;
        start_step = step;
        resumed_from = Some(step);
        rows = truncate_after(&rd.root, step)?;
    } else {
        // Interrupted before the first checkpoint: start over with empty metrics.
        for f in ["metrics.jsonl", "metrics.csv"] {
            let _ = std::fs::remove_file(rd.root.join(f));
        }
    }
    let mut report = RunReport {
        run_id: run_id.clone(),
        name: exp.name.clone(),
        seed: exp.seed,
        tinylab_version: env!("CARGO_PKG_VERSION").into(),
        git_sha: git_sha(),
        host: host_name(),
        threads: opts.threads,
        start_unix: now_unix(),
        end_unix: None,
        wall_time_s: None,
        resumed_from_step: resumed_from,
        steps_done: start_step,
    };
    write_atomic(&rd.run_json(), &serde_json::to_vec_pretty(&report)?)?;
    let mut writer = MetricsWriter::open(&rd.root)?;
    let mut progress = Progress::new(tr.steps, start_step, opts.quiet);

    let evaluate = |evals: &[EvalData], model: &Model, step: usize| -> Result<Vec<MetricRow>> {
        let mut out = Vec::new();
        for e in evals {
            let r = e.evaluate(model)?;
            let split = format!("eval.{}", e.name);
            out.push(MetricRow { step, split: split.clone(), metric: "loss".into(), value: r.loss });
            if !continuous {
                out.push(MetricRow { step, split, metric: "acc".into(), value: r.acc });
            } else if let Some(g) = r.gd_loss {
                out.push(MetricRow { step, split: split.clone(), metric: "gd_loss".into(), value: g });
                let ratio = r.loss / g;
                out.push(MetricRow { step, split, metric: "loss_over_gd".into(), value: ratio });
            }
        }
        Ok(out)
    };
    let early_hit = |rows: &[MetricRow]| match &tr.early_stop {
        Some(es) => rows.iter().any(|r| r.path() == es.metric && r.value >= es.at_least),
        None => false,
    };

    if start_step == 0 {
        let mut r = evaluate(&evals, &model, 0)?;
        if cur.explicit {
            r.push(MetricRow { step: 0, split: "curriculum".into(), metric: "stage".into(), value: 0.0 });
        }
        writer.write(&r)?;
        progress.eval(&r);
        rows.extend(r);
    }
    let mut step = start_step;
    let mut stopped_early = false;
    while step < tr.steps {
        let lr = stage.lr(exp, step);
        let batch = data.next_batch();
        step += 1;
        let log_now = step.is_multiple_of(tr.log_every) || step == tr.steps;
        let db = DeviceBatch::new(&batch, &device)?;
        let mut layer_loss = None;
        let (loss, correct) = if continuous {
            (batch_mse(&model, &db)?.1, log_now.then_some(0))
        } else if !tr.layer_targets.is_empty() {
            let (total, main, aux, correct) =
                layer_targets::step_loss(&model, &db, data.task(), &batch, tr, log_now)?;
            layer_loss = Some((main, aux));
            (total, correct)
        } else if log_now {
            let (l, c) = batch_loss_and_correct(&model, &db)?;
            (l, Some(c))
        } else {
            let out = model.forward(&db.tokens, ForwardOptions { select: Some(&db.select), hooks: None })?;
            (candle_nn::loss::cross_entropy(&out.logits, &db.targets)?, None)
        };
        let mut grads = loss.backward()?;
        let grad_norm = if tr.grad_clip > 0.0 {
            Some(clip_grad_norm(&mut grads, opt.params(), tr.grad_clip)?)
        } else {
            None
        };
        opt.step(&grads, lr)?;
        let mut new_rows = Vec::new();
        let mut train_log = None;
        if let Some(c) = correct {
            let scalar = |t: &candle_core::Tensor| t.to_dtype(DType::F64)?.to_scalar::<f64>();
            let lv = scalar(layer_loss.as_ref().map_or(&loss, |(main, _)| main))?;
            if !lv.is_finite() {
                bail!("training loss became {lv} at step {step}; lower train.optimizer.lr or set train.grad_clip");
            }
            let acc = if continuous { f64::NAN } else { c as f64 / db.host_targets.len() as f64 };
            for (m, v) in [("loss", lv), ("acc", acc), ("lr", lr)] {
                if !(continuous && m == "acc") {
                    new_rows.push(MetricRow { step, split: "train".into(), metric: m.into(), value: v });
                }
            }
            if let Some((_, aux)) = &layer_loss {
                let value = scalar(aux)?;
                new_rows.push(MetricRow { step, split: "train".into(), metric: "layer_loss".into(), value });
            }
            if let Some(g) = grad_norm {
                new_rows.push(MetricRow {
                    step,
                    split: "train".into(),
                    metric: "grad_norm".into(),
                    value: g,
                });
            }
            train_log = Some((lv, acc));
        }
        let cap_reached = stage.cap_reached(exp, step);
        let eval_now = step.is_multiple_of(tr.eval_every) || step == tr.steps || cap_reached;
        let mut until_hit = false;
        if eval_now {
            let r = evaluate(&evals, &model, step)?;
            progress.eval(&r);
            stopped_early = early_hit(&r) && step < tr.steps;
            until_hit = stage.until_hit(exp, r.iter().chain(&new_rows));
            new_rows.extend(r);
        }
        let mut curriculum_done = false;
        if (cap_reached || until_hit) && cur.explicit {
            let weights = model.params().all();
            match stage.end_stage(exp, &rd, step, until_hit, &weights, &mut new_rows)? {
                StageEnd::Next { reset_optimizer } => {
                    (data, evals) = stage_data(exp, stage.index, Some(data.rng_word_pos()))?;
                    if reset_optimizer {
                        opt = tr.optimizer.build(model.params().trainable())?;
                    }
                    let name = &cur.stage(stage.index).name;
                    progress.message(&format!("stage {name} ({}) from step {step}", stage.index));
                }
                StageEnd::Done => curriculum_done = true,
            }
        }
        if let Some((lv, acc)) = train_log {
            progress.train(step, lv, acc);
        }
        writer.write(&new_rows)?;
        rows.extend(new_rows);
        let last = step == tr.steps || stopped_early || curriculum_done;
        if last || (tr.checkpoint_every > 0 && step.is_multiple_of(tr.checkpoint_every)) {
            save_checkpoint(&rd, step, &model, opt.as_ref(), &data, stage, tr.keep_checkpoints)?;
            report.steps_done = step;
            write_atomic(&rd.run_json(), &serde_json::to_vec_pretty(&report)?)?;
        }
        if stopped_early || curriculum_done {
            break;
        }
        if opts.stop_after == Some(step) && !last {
            progress.finish();
            return Ok(RunOutcome::Interrupted { step });
        }
    }
    progress.finish();
    let final_metrics: BTreeMap<String, f64> = rows.iter().map(|r| (r.path(), r.value)).collect();
    let checks: Vec<CheckResult> =
        exp.checks.iter().map(|c: &CheckSpec| c.evaluate(&final_metrics)).collect();
    let wall = started.elapsed().as_secs_f64();
    let summary = Summary {
        run_id,
        name: exp.name.clone(),
        seed: exp.seed,
        steps: step,
        stopped_early,
        wall_time_s: wall,
        all_passed: checks.iter().all(|c| c.pass),
        final_metrics,
        checks,
    };
    report.end_unix = Some(now_unix());
    report.wall_time_s = Some(wall);
    report.steps_done = step;
    write_atomic(&rd.run_json(), &serde_json::to_vec_pretty(&report)?)?;
    write_atomic(&rd.summary(), &serde_json::to_vec_pretty(&summary)?)?;
    Ok(RunOutcome::Finished { summary, already_done: false })
}

/// The training data of stage `si` (its RNG continued at `pos` when given) and its eval sets.
pub(crate) fn stage_data(
    exp: &Experiment,
    si: usize,
    pos: Option<u128>,
) -> Result<(DataSource, Vec<EvalData>)> {
    let tr = &exp.train;
    let stage = exp.curriculum.stage(si);
    let mut data = DataSource::new(stage.task.build()?, tr.data, tr.pool_size, tr.batch_size, exp.seed);
    if let Some(p) = pos {
        data.set_rng_word_pos(p);
    }
    let mut evals = Vec::new();
    for (i, (e, t)) in exp.eval.iter().zip(&stage.eval_tasks).enumerate() {
        let t = t.build()?;
        evals.push(EvalData::new(
            &e.name,
            t.as_ref(),
            e.samples,
            tr.batch_size,
            exp.model.n_heads,
            exp.seed,
            i,
        ));
    }
    Ok((data, evals))
}

/// Writes weights, optimizer moments, step and data-RNG position; prunes old checkpoints.
fn save_checkpoint(
    rd: &RunDir,
    step: usize,
    model: &Model,
    opt: &dyn crate::optim::Optimizer,
    data: &DataSource,
    stage: StageCursor,
    keep: usize,
) -> Result<()> {
    let mut tensors = model.params().all();
    tensors.extend(opt.state());
    let mut meta: BTreeMap<String, String> = [
        ("format".to_string(), "tinylab-checkpoint-v1".to_string()),
        ("step".to_string(), step.to_string()),
        ("data_rng_word_pos".to_string(), data.rng_word_pos().to_string()),
    ]
    .into();
    meta.extend(stage.meta());
    checkpoint::save_atomic(&rd.checkpoint(step), &tensors, &meta)?;
    let all = rd.list_checkpoints();
    if all.len() > keep.max(1) {
        for (_, p) in &all[..all.len() - keep.max(1)] {
            std::fs::remove_file(p).ok();
        }
    }
    Ok(())
}
