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
use toml::Table;

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
