//! Where a run is in its curriculum, and what the end of a stage logs and saves: shared by the
//! solo trainer (`trainer.rs`) and the fused one-member engine (`ensemble_trainer.rs`), so
//! both walk a curriculum the same way.

use std::collections::BTreeMap;

use anyhow::Result;
use candle_core::Tensor;

use crate::checkpoint;
use crate::experiment::Experiment;
use crate::metrics::MetricRow;
use crate::rundir::RunDir;

/// The current stage of a run: its index and the steps done before it began.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct StageCursor {
    /// Index of the current stage in `exp.curriculum.stages`.
    pub index: usize,
    /// Global step at which the current stage began.
    pub start: usize,
}

/// What happened at the end of a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StageEnd {
    /// The next stage begins; rebuild the training data and eval sets (and the optimizer when
    /// `reset_optimizer`).
    Next {
        /// Whether the new stage starts with a fresh optimizer.
        reset_optimizer: bool,
    },
    /// That was the last stage: the run is done.
    Done,
}

impl StageCursor {
    /// The cursor saved in a checkpoint's metadata (`stage`, `stage_start`; 0 when absent).
    pub fn from_meta(meta: &BTreeMap<String, String>) -> Result<Self> {
        let get = |k: &str| -> Result<usize> { Ok(meta.get(k).map(|v| v.parse()).transpose()?.unwrap_or(0)) };
        Ok(Self { index: get("stage")?, start: get("stage_start")? })
    }

    /// The checkpoint metadata entries of this cursor.
    pub fn meta(&self) -> [(String, String); 2] {
        [("stage".into(), self.index.to_string()), ("stage_start".into(), self.start.to_string())]
    }

    /// The learning rate of the step after `step` (the schedule restarts at every stage, over
    /// the stage's cap).
    pub fn lr(&self, exp: &Experiment, step: usize) -> f64 {
        let tr = &exp.train;
        let stage = exp.curriculum.stage(self.index);
        tr.schedule.lr_at(tr.optimizer.lr, step - self.start, stage.max_steps)
    }

    /// Whether `step` is the current stage's last allowed step.
    pub fn cap_reached(&self, exp: &Experiment, step: usize) -> bool {
        step - self.start == exp.curriculum.stage(self.index).max_steps
    }

    /// Whether the stage's `until` target is met by one of `rows` (this step's metrics).
    pub fn until_hit<'r>(&self, exp: &Experiment, rows: impl IntoIterator<Item = &'r MetricRow>) -> bool {
        let until = exp.curriculum.stage(self.index).until.as_ref();
        until.is_some_and(|u| rows.into_iter().any(|m| m.path() == u.metric && m.value >= u.at_least))
    }

    /// Ends the current stage at `step`: appends `curriculum.<name>.steps` and `.reached` to
    /// `rows`, saves `weights` as the stage's end-of-stage checkpoint, and moves to the next
    /// stage (appending `curriculum.stage`) if there is one.
    pub fn end_stage(
        &mut self,
        exp: &Experiment,
        rd: &RunDir,
        step: usize,
        reached: bool,
        weights: &[(String, Tensor)],
        rows: &mut Vec<MetricRow>,
    ) -> Result<StageEnd> {
        let cur = &exp.curriculum;
        let stage = cur.stage(self.index);
        let split = format!("curriculum.{}", stage.name);
        let used = (step - self.start) as f64;
        rows.push(MetricRow { step, split: split.clone(), metric: "steps".into(), value: used });
        let value = if reached { 1.0 } else { 0.0 };
        rows.push(MetricRow { step, split, metric: "reached".into(), value });
        let meta: BTreeMap<String, String> = [
            ("format".to_string(), "tinylab-stage-weights-v1".to_string()),
            ("step".to_string(), step.to_string()),
            ("stage".to_string(), self.index.to_string()),
            ("stage_name".to_string(), stage.name.clone()),
        ]
        .into();
        checkpoint::save_atomic(&rd.stage_checkpoint(self.index), weights, &meta)?;
        if self.index + 1 == cur.stages.len() {
            return Ok(StageEnd::Done);
        }
        *self = Self { index: self.index + 1, start: step };
        let value = self.index as f64;
        rows.push(MetricRow { step, split: "curriculum".into(), metric: "stage".into(), value });
        Ok(StageEnd::Next { reset_optimizer: cur.stage(self.index).reset_optimizer })
    }
}
