//! Seed-batched training: `S` seeds of one experiment trained in one process as one graph
//! (an [`EnsembleModel`] with the weights stacked on a leading member dimension), each seed's
//! run directory written exactly as a solo run of that seed writes it.
//!
//! The loop is the solo loop of `trainer.rs` for `S` members: each member draws its own
//! batches from its own data stream and is evaluated on its own evaluation sets; the loss is
//! `Σ_i mean-CE_i`, so each member's gradient is its solo gradient; AdamW/SGD update the
//! stacked weights element-wise (weight decay by the member rank, clipping per member, see
//! `ensemble_optim`); the learning-rate schedule is shared. A member whose early stop fires,
//! or whose last step is done, gets its final checkpoint and `summary.json` and leaves the
//! ensemble (the others continue, faster); a member whose loss becomes non-finite fails as
//! its solo run would and leaves too.
//!
//! A `[curriculum]` runs with one member (`tinylab run --fused`): its stages, their ends,
//! optimizer resets and end-of-stage weights as in the solo loop (`stage_cursor`).
//!
//! Not supported (a clear error): a curriculum with several members, continuous-input tasks,
//! and resuming when the members' directories hold partial runs at different steps.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{anyhow, bail, ensure, Result};
use candle_core::{DType, Device, Tensor};
use tinylab_model::EnsembleModel;

use crate::ensemble_batch::evaluate;
use crate::ensemble_member::Member;
use crate::ensemble_optim::{clip_per_member, EnsembleOptimizer};
use crate::ensemble_step::{forward_backward, StepGrads};
use crate::experiment::Experiment;
use crate::metrics::MetricRow;
use crate::progress::Progress;
use crate::rundir::RunDir;
use crate::stage_cursor::StageEnd;
use crate::trainer::RunOutcome;
use crate::trainer::{prepare_dir, stage_data};

/// How to run a seed-batched run.
#[derive(Debug, Clone, Default)]
pub struct EnsembleRunOptions {
    /// One run directory per member (e.g. `runs/<name>/seed<i>`).
    pub dirs: Vec<PathBuf>,
    /// Start every member from scratch (deletes its directory).
    pub force: bool,
    /// Compute threads recorded in each `run.json`.
    pub threads: usize,
    /// Data-parallel slices of every step's batch, each on its own thread (1 = one graph on
    /// the calling thread; see [`forward_backward`]). With more than one, run candle
    /// single-threaded (`RAYON_NUM_THREADS=1`).
    pub shards: usize,
    /// Stop after this step as if interrupted (tests of resume).
    pub stop_after: Option<usize>,
    /// No progress output.
    pub quiet: bool,
}

/// Checks that the experiments differ only in their (distinct) seeds and can be batched.
pub fn check_batchable(exps: &[Experiment]) -> Result<()> {
    let Some(first) = exps.first() else { bail!("no seeds to train") };
    for e in exps {
        let same = e.model == first.model
            && e.task == first.task
            && e.train == first.train
            && e.eval == first.eval
            && e.curriculum == first.curriculum;
        ensure!(same, "seed-batched members must share one configuration (seed {} differs)", e.seed);
    }
    let mut seeds: Vec<u64> = exps.iter().map(|e| e.seed).collect();
    seeds.sort_unstable();
    seeds.dedup();
    ensure!(seeds.len() == exps.len(), "seeds must be distinct");
    ensure!(
        !first.curriculum.explicit || exps.len() == 1,
        "seed-batched training of a [curriculum] takes one seed per process (its members' stages \
         would end at different steps); run the seeds as separate processes (--seeds without \
         --batched, with --fused for the fused engine)"
    );
    ensure!(
        first.train.layer_targets.is_empty(),
        "train.layer_targets (deep supervision) runs on the default engine only; drop --fused/--batched"
    );
    ensure!(
        first.task.build()?.num_features() == 0,
        "seed-batched training supports token tasks only; run the seeds as separate processes"
    );
    ensure!(
        first.task.build()?.attention_masks(first.model.n_layers).is_empty(),
        "seed-batched training does not support the task's attention masks yet; run the seeds as \
         separate processes"
    );
    EnsembleModel::supports(&first.model).map_err(|e| anyhow!("model.{}: {}", e.key, e.message))?;
    Ok(())
}

/// The step every unfinished member resumes from: 0 when none has a checkpoint, else the
/// newest step all of them have a checkpoint of.
fn common_resume_step(members: &[Member]) -> Result<usize> {
    let lists: Vec<Vec<usize>> =
        members.iter().map(|m| m.rd.list_checkpoints().into_iter().map(|(s, _)| s).collect()).collect();
    if lists.iter().all(Vec::is_empty) {
        return Ok(0);
    }
    let common = lists[0].iter().rev().find(|s| lists.iter().all(|l| l.contains(s)));
    common.copied().ok_or_else(|| {
        let at: Vec<String> = members
            .iter()
            .zip(&lists)
            .map(|(m, l)| {
                format!("seed {}: {}", m.exp.seed, l.last().map_or("none".into(), |s| s.to_string()))
            })
            .collect();
        anyhow!(
            "the seed directories hold partial runs at different steps ({}); resume them one by one \
             (tinylab run --seed N --out DIR) or pass --force",
            at.join(", ")
        )
    })
}

/// Mean of each metric path over members' rows (for the progress display).
fn mean_rows(per_member: &[Vec<MetricRow>]) -> Vec<MetricRow> {
    let Some(first) = per_member.first() else { return vec![] };
    let n = per_member.len() as f64;
    let mut out = first.clone();
    for (j, r) in out.iter_mut().enumerate() {
        r.value = per_member.iter().map(|m| m[j].value).sum::<f64>() / n;
    }
    out
}

/// Trains every seed of `exps` (one experiment per seed, identical otherwise) into
/// `opts.dirs`; returns one outcome per member, in order (`Err` for a member that failed).
pub fn run_ensemble(exps: &[Experiment], opts: &EnsembleRunOptions) -> Result<Vec<Result<RunOutcome>>> {
    check_batchable(exps)?;
    ensure!(opts.dirs.len() == exps.len(), "{} directories for {} seeds", opts.dirs.len(), exps.len());
    let started = Instant::now();
    let seeds: Vec<u64> = exps.iter().map(|e| e.seed).collect();
    let mut outcomes: Vec<Option<Result<RunOutcome>>> = exps.iter().map(|_| None).collect();
    let mut members: Vec<Member> = Vec::new();
    let mut ids: Vec<usize> = Vec::new(); // index in `exps` of each active member
    for (i, (exp, dir)) in exps.iter().zip(&opts.dirs).enumerate() {
        match prepare_dir(exp, &RunDir::new(dir), opts.force)? {
            Some(summary) => outcomes[i] = Some(Ok(RunOutcome::Finished { summary, already_done: true })),
            None => {
                members.push(Member::new(exp, dir, &seeds)?);
                ids.push(i);
            }
        }
    }
    if members.is_empty() {
        return Ok(outcomes.into_iter().map(|o| o.expect("every member finished")).collect());
    }
    let exp = members[0].exp;
    let tr = &exp.train;
    let device = Device::Cpu;
    let active_seeds: Vec<u64> = members.iter().map(|m| m.exp.seed).collect();
    let mut model = EnsembleModel::new(&exp.model, &active_seeds, &device, DType::F32)?;
    let mut opt = EnsembleOptimizer::new(&tr.optimizer, model.params().trainable(), model.size())?;
    let start_step = common_resume_step(&members)?;
    let mut saved: Vec<HashMap<String, Tensor>> = Vec::new();
    for m in &mut members {
        saved.extend(m.resume(start_step)?);
        m.start(opts.threads, (start_step > 0).then_some(start_step))?;
    }
    if start_step > 0 {
        model.load_members(&saved)?;
        opt.load_member_states(&saved)?;
    }
    drop(saved);
    let mut progress = Progress::new(tr.steps, start_step, opts.quiet);
    if start_step == 0 {
        let evals: Vec<_> = members.iter().map(|m| m.evals.as_slice()).collect();
        let mut rows = evaluate(&model, &evals, 0, opts.shards)?;
        progress.eval(&mean_rows(&rows));
        if exp.curriculum.explicit {
            for r in &mut rows {
                r.push(MetricRow { step: 0, split: "curriculum".into(), metric: "stage".into(), value: 0.0 });
            }
        }
        members.iter_mut().zip(rows).try_for_each(|(m, r)| m.write(r))?;
    }
    let mut step = start_step;
    while step < tr.steps && !members.is_empty() {
        // One stage for every member (a curriculum runs with one member).
        let lr = members[0].stage.lr(exp, step);
        let batches: Vec<_> = members.iter_mut().map(|m| m.data.next_batch()).collect();
        step += 1;
        let log_now = step.is_multiple_of(tr.log_every) || step == tr.steps;
        let StepGrads { mut grads, losses, correct, labelled } =
            forward_backward(&model, &batches, opt.params(), opts.shards, log_now)?;
        let norms = match tr.grad_clip > 0.0 {
            true => Some(clip_per_member(&mut grads, opt.params(), model.size(), tr.grad_clip)?),
            false => None,
        };
        opt.step(&grads, lr)?;
        drop(grads);
        let mut rows: Vec<Vec<MetricRow>> = vec![Vec::new(); members.len()];
        let mut failed: Vec<Option<String>> = vec![None; members.len()];
        let mut train_log = None;
        if let (Some(correct), Some(losses)) = (correct, losses) {
            let (mut mean_loss, mut mean_acc) = (0.0, 0.0);
            for (k, r) in rows.iter_mut().enumerate() {
                let lv = losses[k];
                if !lv.is_finite() {
                    failed[k] = Some(format!(
                        "training loss became {lv} at step {step}; lower train.optimizer.lr or set train.grad_clip"
                    ));
                    continue;
                }
                let acc = correct[k] as f64 / labelled[k] as f64;
                for (m, v) in [("loss", lv), ("acc", acc), ("lr", lr)] {
                    r.push(MetricRow { step, split: "train".into(), metric: m.into(), value: v });
                }
                if let Some(n) = &norms {
                    r.push(MetricRow {
                        step,
                        split: "train".into(),
                        metric: "grad_norm".into(),
                        value: n[k],
                    });
                }
                (mean_loss, mean_acc) = (mean_loss + lv, mean_acc + acc);
            }
            let n = members.len() as f64;
            train_log = Some((mean_loss / n, mean_acc / n));
        }
        let caps: Vec<bool> = members.iter().map(|m| m.stage.cap_reached(exp, step)).collect();
        let eval_now = step.is_multiple_of(tr.eval_every) || step == tr.steps || caps.contains(&true);
        let mut curriculum_done = vec![false; members.len()];
        if eval_now {
            let evals: Vec<_> = members.iter().map(|m| m.evals.as_slice()).collect();
            let eval_rows = evaluate(&model, &evals, step, opts.shards)?;
            progress.eval(&mean_rows(&eval_rows));
            for (k, (m, r)) in members.iter_mut().zip(eval_rows).enumerate() {
                if let Some(es) = &tr.early_stop {
                    m.stopped_early =
                        r.iter().any(|x| x.path() == es.metric && x.value >= es.at_least) && step < tr.steps;
                }
                let until_hit = m.stage.until_hit(exp, r.iter().chain(&rows[k]));
                rows[k].extend(r);
                if (caps[k] || until_hit) && exp.curriculum.explicit {
                    let weights = model.member_weights(k)?;
                    match m.stage.end_stage(exp, &m.rd, step, until_hit, &weights, &mut rows[k])? {
                        StageEnd::Next { reset_optimizer } => {
                            let pos = m.data.rng_word_pos();
                            (m.data, m.evals) = stage_data(exp, m.stage.index, Some(pos))?;
                            if reset_optimizer {
                                opt = EnsembleOptimizer::new(
                                    &tr.optimizer,
                                    model.params().trainable(),
                                    model.size(),
                                )?;
                            }
                            let name = &exp.curriculum.stage(m.stage.index).name;
                            progress.message(&format!("stage {name} ({}) from step {step}", m.stage.index));
                        }
                        StageEnd::Done => curriculum_done[k] = true,
                    }
                }
            }
        }
        if let Some((loss, acc)) = train_log {
            progress.train(step, loss, acc);
        }
        let mut keep = Vec::new();
        for (k, (m, r)) in members.iter_mut().zip(rows).enumerate() {
            if let Some(msg) = failed[k].take() {
                outcomes[ids[k]] = Some(Err(anyhow!("seed {}: {msg}", m.exp.seed)));
                continue;
            }
            m.write(r)?;
            let last = step == tr.steps || m.stopped_early || curriculum_done[k];
            if last || (tr.checkpoint_every > 0 && step.is_multiple_of(tr.checkpoint_every)) {
                m.save_checkpoint(step, model.member_weights(k)?, opt.member_state(k)?)?;
            }
            if last {
                let summary = m.finish(step, started.elapsed().as_secs_f64())?;
                outcomes[ids[k]] = Some(Ok(RunOutcome::Finished { summary, already_done: false }));
            } else {
                keep.push(k);
            }
        }
        if keep.len() < members.len() && !keep.is_empty() {
            model = model.retain(&keep)?;
            opt = opt.retain(&tr.optimizer, model.params().trainable(), &keep)?;
        }
        members = members.into_iter().enumerate().filter(|(k, _)| keep.contains(k)).map(|(_, m)| m).collect();
        ids = keep.iter().map(|&k| ids[k]).collect();
        if opts.stop_after == Some(step) && !members.is_empty() {
            for &i in &ids {
                outcomes[i] = Some(Ok(RunOutcome::Interrupted { step }));
            }
            break;
        }
    }
    progress.finish();
    Ok(outcomes.into_iter().map(|o| o.expect("every member has an outcome")).collect())
}
