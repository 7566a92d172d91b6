//! The `[train]` table: steps, batch, optimizer, schedule, data, logging, checkpoints.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::optim::schedule::LrSchedule;
use crate::optim::OptimConfig;

/// Where training batches come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DataMode {
    /// A fresh batch from the generator at every step.
    #[default]
    Fresh,
    /// A fixed pool of `pool_size` sequences generated once; batches are drawn from it.
    Pool,
}

/// Stop training once a metric reaches a target (checked at every evaluation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EarlyStop {
    /// Metric path, e.g. `eval.len64.acc`.
    pub metric: String,
    /// Stop when the metric is ≥ this.
    pub at_least: f64,
}

/// The `[train]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Number of optimizer steps.
    pub steps: usize,
    /// Sequences per step.
    pub batch_size: usize,
    /// Optimizer and its hyper-parameters.
    pub optimizer: OptimConfig,
    /// Learning-rate schedule.
    pub schedule: LrSchedule,
    /// Clip the global gradient norm to this (0 = off).
    pub grad_clip: f64,
    /// Fresh data per step or a fixed pool.
    pub data: DataMode,
    /// Size of the fixed training pool (`data = "pool"`).
    pub pool_size: usize,
    /// Evaluate every this many steps (and at step 0 and at the end).
    pub eval_every: usize,
    /// Log training loss/accuracy every this many steps.
    pub log_every: usize,
    /// Write a checkpoint every this many steps (and at the end); 0 = only at the end.
    pub checkpoint_every: usize,
    /// How many periodic checkpoints to keep (the newest ones).
    pub keep_checkpoints: usize,
    /// Optional early stop on a metric.
    pub early_stop: Option<EarlyStop>,
    /// Seeds to train together in one process as one seed-batched graph (`tinylab run` writes
    /// `seed<i>/` for each, as `--seeds` does); empty: one run of the top-level `seed`. Read
    /// from the file but never written out, so each member's `config.toml` and run id are
    /// those of a solo run of its seed.
    #[serde(skip_serializing)]
    pub seeds: Vec<u64>,
    /// Deep supervision (default empty = off): label sets of the task's position labels
    /// (`Task::position_labels`, e.g. parity's `level1`, `level2`) trained at the output of a
    /// block (numbered from 1) through the logit lens — the final norm and the unembedding
    /// applied to `blocks.{l-1}.hook_resid_post` — so that, e.g., `{ level1 = 1, level2 = 2 }`
    /// asks for tree level ℓ to be computed by layer ℓ. Each set adds its mean cross-entropy
    /// over its labelled positions, times `layer_target_weight`, to the training loss (the
    /// evaluations are unchanged).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub layer_targets: BTreeMap<String, usize>,
    /// Weight of each `layer_targets` loss (default 1.0; must be finite and ≥ 0).
    #[serde(skip_serializing_if = "is_one")]
    pub layer_target_weight: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            steps: 1000,
            batch_size: 64,
            optimizer: OptimConfig::default(),
            schedule: LrSchedule::default(),
            grad_clip: 0.0,
            data: DataMode::Fresh,
            pool_size: 10_000,
            eval_every: 100,
            log_every: 10,
            checkpoint_every: 500,
            keep_checkpoints: 2,
            early_stop: None,
            seeds: Vec::new(),
            layer_targets: BTreeMap::new(),
            layer_target_weight: 1.0,
        }
    }
}

/// Whether `x` is the default weight 1 (left out of the resolved config, so configurations
/// without deep supervision keep their run ids).
fn is_one(x: &f64) -> bool {
    *x == 1.0
}
