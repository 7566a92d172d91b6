//! Curricula: a run as a sequence of named stages, each training on the task with some fields
//! changed (e.g. how many chain-of-thought tokens are zero-filled), ending when a metric
//! reaches a target or at a step cap, optionally with a fresh optimizer.
//!
//! ```toml
//! [curriculum]
//! reset_optimizer = true                  # default of every stage
//!
//! [[curriculum.stage]]
//! name = "explicit"
//! task = { zero_filled = 0 }              # fields of [task] changed in this stage
//! max_steps = 2000                        # step cap of the stage
//! until = { metric = "eval.stage.acc", at_least = 0.99 }   # optional; tested at evaluations
//!
//! [[curriculum.stage]]
//! name = "level1"
//! task = { zero_filled = 4 }
//! max_steps = 2000
//! ```
//!
//! Every `[[eval]]` set is re-derived for each stage: the stage's task with the eval's own
//! overrides on top, so an eval without overrides follows the stage and one that sets the
//! field (e.g. `zero_filled = 6`) stays fixed. The learning-rate schedule restarts at every
//! stage over its `max_steps`; `train.steps` is replaced by the sum of the caps. Metrics:
//! `curriculum.stage` (index, at each stage's first step), `curriculum.<name>.steps` and
//! `curriculum.<name>.reached` (1 if `until` was met, else 0) when the stage ends.

use serde::{Deserialize, Serialize};
use tinylab_tasks::TaskConfig;
use toml::{Table, Value};

use crate::experiment::{err, typed, ConfigError, EvalSet, RawExperiment};
use crate::train_config::EarlyStop;

/// The `[curriculum]` table as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CurriculumConfig {
    /// Start every stage with a fresh optimizer (moments and step count zeroed), unless the
    /// stage says otherwise (ICoT resets at every removal).
    #[serde(default)]
    pub reset_optimizer: bool,
    /// The stages, in order.
    pub stage: Vec<StageConfig>,
}

/// One `[[curriculum.stage]]` entry as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageConfig {
    /// Stage name, used in metric paths `curriculum.<name>.steps`.
    pub name: String,
    /// Fields of `[task]` changed in this stage (the task's `kind` stays).
    #[serde(default)]
    pub task: Table,
    /// Step cap of the stage (≥ 1).
    pub max_steps: usize,
    /// End the stage early once this metric reaches the target (tested at evaluations).
    #[serde(default)]
    pub until: Option<EarlyStop>,
    /// Overrides `[curriculum] reset_optimizer` for this stage.
    #[serde(default)]
    pub reset_optimizer: Option<bool>,
}

/// A validated stage: the task it trains on and the task of every eval set during it.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    /// Stage name.
    pub name: String,
    /// Training task of the stage.
    pub task: TaskConfig,
    /// Task of each `[[eval]]` set (same order as `Experiment::eval`) during the stage.
    pub eval_tasks: Vec<TaskConfig>,
    /// Step cap.
    pub max_steps: usize,
    /// Early end of the stage.
    pub until: Option<EarlyStop>,
    /// Whether the optimizer is rebuilt when the stage starts (never for the first stage,
    /// whose optimizer is new anyway).
    pub reset_optimizer: bool,
}

/// The stages of a run. A run without `[curriculum]` is one unnamed stage over `train.steps`.
#[derive(Debug, Clone, PartialEq)]
pub struct Curriculum {
    /// The stages in order.
    pub stages: Vec<Stage>,
    /// False for the implicit single stage of a run without `[curriculum]` (no curriculum
    /// metrics are written then).
    pub explicit: bool,
}

impl Curriculum {
    /// Total step budget: the sum of the stage caps.
    pub fn total_steps(&self) -> usize {
        self.stages.iter().map(|s| s.max_steps).sum()
    }

    /// Stage `i`.
    pub fn stage(&self, i: usize) -> &Stage {
        &self.stages[i]
    }
}

/// Checks a stage name: non-empty, no dots, commas, quotes or spaces (it is a metric path part).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['.', ',', '"', ' '])
}

/// Resolves `[curriculum]` (or the implicit single stage): every stage's task and eval tasks,
/// validated; sets `train.steps` to the sum of the caps and the eval sets to the last stage.
pub(crate) fn resolve_curriculum(
    raw: &mut RawExperiment,
    task_table: &Table,
    eval: &mut [EvalSet],
    file: &str,
) -> Result<Curriculum, ConfigError> {
    let Some(cfg) = raw.curriculum.clone() else {
        let stage = Stage {
            name: "train".into(),
            task: raw.task.clone(),
            eval_tasks: eval.iter().map(|e| e.task.clone()).collect(),
            max_steps: raw.train.steps,
            until: None,
            reset_optimizer: false,
        };
        return Ok(Curriculum { stages: vec![stage], explicit: false });
    };
    if cfg.stage.is_empty() {
        return Err(err(file, "curriculum.stage", "needs at least one [[curriculum.stage]]"));
    }
    let mut stages: Vec<Stage> = Vec::new();
    for (i, sc) in cfg.stage.iter().enumerate() {
        let key = |k: &str| format!("curriculum.stage[{i}].{k}");
        if !valid_name(&sc.name) {
            return Err(err(file, key("name"), "must be non-empty without dots, commas, quotes or spaces"));
        }
        if stages.iter().any(|s| s.name == sc.name) {
            return Err(err(file, key("name"), format!("`{}` is used twice", sc.name)));
        }
        if sc.max_steps == 0 {
            return Err(err(file, key("max_steps"), "must be ≥ 1"));
        }
        if sc.task.contains_key("kind") {
            return Err(err(file, key("task.kind"), "a stage keeps the training task's kind"));
        }
        let mut merged = task_table.clone();
        merged.extend(sc.task.clone());
        let task: TaskConfig = typed(file, &key("task"), Value::Table(merged.clone()))?;
        task.build().map_err(|e| err(file, key(&format!("task.{}", e.key())), e.to_string()))?;
        let mut eval_tasks = Vec::new();
        for e in eval.iter() {
            let mut m = merged.clone();
            m.extend(e.overrides.clone());
            let t: TaskConfig =
                typed(file, &format!("eval `{}` in stage `{}`", e.name, sc.name), Value::Table(m))?;
            t.build().map_err(|x| {
                err(file, format!("eval `{}` in stage `{}`: {}", e.name, sc.name, x.key()), x.to_string())
            })?;
            eval_tasks.push(t);
        }
        stages.push(Stage {
            name: sc.name.clone(),
            task,
            eval_tasks,
            max_steps: sc.max_steps,
            until: sc.until.clone(),
            reset_optimizer: i > 0 && sc.reset_optimizer.unwrap_or(cfg.reset_optimizer),
        });
    }
    let last = stages.last().expect("non-empty");
    for (e, t) in eval.iter_mut().zip(&last.eval_tasks) {
        e.task = t.clone();
    }
    let c = Curriculum { stages, explicit: true };
    raw.train.steps = c.total_steps();
    Ok(c)
}
