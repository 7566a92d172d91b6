//! Induction head, in the layout of H3/safari's `generate_induction_head` with one trigger and
//! `induction_len = 1` (Fu, Dao et al., "Hungry Hungry Hippos", 2023).

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::config::{ensure, ensure_vocab};
use crate::{Batch, Task, TaskError, TaskRng};

/// Sizes of an [`InductionHead`] task (`kind = "induction_head"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InductionHeadConfig {
    /// Number of token ids `V` (default 32): the trigger `=>` (id 0) and `V-1` data tokens.
    pub vocab_size: usize,
    /// Sequence length `T` (default 64), including the final trigger.
    pub seq_len: usize,
}

impl Default for InductionHeadConfig {
    fn default() -> Self {
        Self { vocab_size: 32, seq_len: 64 }
    }
}

/// Induction head: after the second trigger, predict the token that followed the first.
///
/// Positions `0..T-1` hold uniformly random data tokens; the trigger
/// [`TRIGGER`](Self::TRIGGER) replaces the token at a position `p` drawn uniformly from
/// `0..T-3` (so the token it precedes is never the one right before the end) and is repeated
/// at the last position `T-1`. Only the last position is labelled, with `input[p + 1]`.
/// The trigger appears exactly twice.
///
/// Token names: `=>` for the trigger, `t{i}` for data id `1 + i`.
///
/// # Example
/// `vocab_size = 8, seq_len = 12` (pinned in the tests, seed 0; `.` marks an ignored target):
/// ```text
/// input:  t4 t5 t3 t3 => t1 t6 t4 t3 t5 t5 =>
/// target: .  .  .  .  .  .  .  .  .  .  .  t1
/// ```
///
/// # Shapes
/// `inputs` and `targets`: `[batch_size, seq_len]`, one label per sequence (the last position).
#[derive(Debug, Clone)]
pub struct InductionHead {
    cfg: InductionHeadConfig,
}

impl InductionHead {
    /// The trigger token (`=>`, safari's `copy_prefix`).
    pub const TRIGGER: u32 = 0;

    /// Validates `cfg` and builds the task.
    ///
    /// # Errors
    /// `seq_len < 4` (a trigger, the token to recall, one more token and the final trigger);
    /// `vocab_size < 2` (the trigger and at least one data token).
    pub fn new(cfg: InductionHeadConfig) -> Result<Self, TaskError> {
        ensure(cfg.seq_len >= 4, "seq_len", || format!("{} is too short; need at least 4", cfg.seq_len))?;
        ensure_vocab(cfg.vocab_size, 2, "the trigger and at least 1 data token")?;
        Ok(Self { cfg })
    }

    /// The validated configuration.
    pub fn config(&self) -> &InductionHeadConfig {
        &self.cfg
    }
}

impl Task for InductionHead {
    fn name(&self) -> &'static str {
        "induction_head"
    }

    fn vocab_size(&self) -> usize {
        self.cfg.vocab_size
    }

    fn seq_len(&self) -> usize {
        self.cfg.seq_len
    }

    fn generate(&self, rng: &mut TaskRng, batch_size: usize) -> Batch {
        let (t, v) = (self.cfg.seq_len, self.cfg.vocab_size as u32);
        let mut batch = Batch::empty(batch_size, t);
        let rows = batch.inputs.chunks_mut(t).zip(batch.targets.chunks_mut(t));
        for (input, target) in rows {
            input[..t - 1].iter_mut().for_each(|x| *x = rng.gen_range(1..v));
            let p = rng.gen_range(0..t - 3);
            input[p] = Self::TRIGGER;
            input[t - 1] = Self::TRIGGER;
            target[t - 1] = input[p + 1] as i32;
        }
        batch
    }

    fn token_name(&self, token: u32) -> String {
        match token {
            Self::TRIGGER => "=>".into(),
            t if (t as usize) < self.cfg.vocab_size => format!("t{}", t - 1),
            t => format!("?{t}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{batch, check_common, render};
    use crate::IGNORE;

    fn task(vocab_size: usize, seq_len: usize) -> InductionHead {
        InductionHead::new(InductionHeadConfig { vocab_size, seq_len }).unwrap()
    }

    #[test]
    fn pinned_tokens_for_seed_0() {
        let task = task(8, 12);
        let b = batch(&task, 0, 2);
        println!("{}\n{}", render(&task, &b, 0), render(&task, &b, 1));
        assert_eq!(b.inputs, [5, 6, 4, 4, 0, 2, 7, 5, 4, 6, 6, 0, 6, 7, 2, 4, 7, 0, 6, 4, 4, 5, 3, 0]);
        assert_eq!(b.targets, [&[IGNORE; 11][..], &[2], &[IGNORE; 11], &[6]].concat());
    }

    #[test]
    fn layout_and_common_properties() {
        for (v, t) in [(8, 12), (32, 64), (2, 4), (3, 5), (100, 256)] {
            let task = task(v, t);
            check_common(&task, v == 2);
            let b = batch(&task, 9, 64);
            for r in 0..b.batch_size {
                let (input, target) = (b.input_row(r), b.target_row(r));
                let triggers: Vec<usize> = (0..t).filter(|&i| input[i] == 0).collect();
                assert_eq!(triggers.len(), 2, "{input:?}");
                assert!(triggers[0] + 3 < t && triggers[1] == t - 1);
                assert_eq!(target.iter().filter(|&&y| y != IGNORE).count(), 1);
                assert_eq!(target[t - 1], input[triggers[0] + 1] as i32);
            }
            assert_eq!(b.num_labelled(), 64);
        }
    }
}
