//! Selective copying (Gu & Dao, "Mamba: Linear-Time Sequence Modeling with Selective State
//! Spaces", 2023, §3.1): copy the data tokens scattered among blanks, in order, ignoring the
//! blanks.

use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::config::{ensure, ensure_vocab};
use crate::copying::{copy_token_name, write_copy_span, BLANK, DATA, SEP};
use crate::{Batch, Task, TaskError, TaskRng};

/// Sizes of a [`SelectiveCopying`] task (`kind = "selective_copying"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SelectiveCopyingConfig {
    /// Number of token ids `V` (default 18): `_`, `SEP` and `V-2` data tokens (16 as in Mamba).
    pub vocab_size: usize,
    /// Sequence length `T` (default 64): a region of `T - n` positions, then the `n` outputs.
    pub seq_len: usize,
    /// Data tokens to copy `n` (default 16); `2·n ≤ seq_len`.
    pub num_tokens: usize,
}

impl Default for SelectiveCopyingConfig {
    fn default() -> Self {
        Self { vocab_size: 18, seq_len: 64, num_tokens: 16 }
    }
}

/// Selective copying with teacher forcing.
///
/// The first `T - n` positions are blanks [`BLANK`](Self::BLANK) except `n` distinct
/// positions drawn uniformly, which hold uniformly random data tokens. Then
/// [`SEP`](Self::SEP) at `T-n` and the first `n-1` data tokens in order of position. As
/// next-token prediction, targets `T-n..T` are the `n` data tokens in order (at `SEP` the
/// first one), all others [`IGNORE`](crate::IGNORE).
///
/// Token names: `_`, `SEP`, `d{i}` for data id `2 + i`.
///
/// # Example
/// `vocab_size = 6, seq_len = 12, num_tokens = 3` (pinned in the tests, seed 0, sequence 1;
/// `.` marks an ignored target):
/// ```text
/// input:  _ _ _ d3 d2 _ d3 _ _ SEP d3 d2
/// target: . . . .  .  . .  . . d3  d2 d3
/// ```
///
/// # Shapes
/// `inputs` and `targets`: `[batch_size, seq_len]`, `num_tokens` labels per sequence.
#[derive(Debug, Clone)]
pub struct SelectiveCopying {
    cfg: SelectiveCopyingConfig,
}

impl SelectiveCopying {
    /// Blank (noise) token among which the data tokens are scattered (`_`).
    pub const BLANK: u32 = BLANK;
    /// Delimiter after which the data tokens are reproduced (`SEP`).
    pub const SEP: u32 = SEP;

    /// Validates `cfg` and builds the task.
    ///
    /// # Errors
    /// `num_tokens` is 0 or `2·num_tokens > seq_len`; `vocab_size < 3` (`_`, `SEP` and at least
    /// one data token).
    pub fn new(cfg: SelectiveCopyingConfig) -> Result<Self, TaskError> {
        let n = cfg.num_tokens;
        ensure(n >= 1, "num_tokens", || "0; need at least 1 token to copy".into())?;
        ensure(2 * n <= cfg.seq_len, "num_tokens", || {
            format!(
                "{n} does not fit in seq_len {}; need 2·num_tokens ≤ seq_len \
                 (a region of at least n positions, then n outputs)",
                cfg.seq_len
            )
        })?;
        ensure_vocab(cfg.vocab_size, 3, "`_`, `SEP` and at least 1 data token")?;
        Ok(Self { cfg })
    }

    /// The validated configuration.
    pub fn config(&self) -> &SelectiveCopyingConfig {
        &self.cfg
    }
}

impl Task for SelectiveCopying {
    fn name(&self) -> &'static str {
        "selective_copying"
    }

    fn vocab_size(&self) -> usize {
        self.cfg.vocab_size
    }

    fn seq_len(&self) -> usize {
        self.cfg.seq_len
    }

    fn generate(&self, rng: &mut TaskRng, batch_size: usize) -> Batch {
        let (t, n, v) = (self.cfg.seq_len, self.cfg.num_tokens, self.cfg.vocab_size as u32);
        let mut batch = Batch::empty(batch_size, t);
        // Permuted in place: a partial shuffle draws n distinct positions whatever order
        // earlier rows left the pool in.
        let mut positions: Vec<usize> = (0..t - n).collect();
        let rows = batch.inputs.chunks_mut(t).zip(batch.targets.chunks_mut(t));
        for (input, target) in rows {
            let (chosen, _) = positions.partial_shuffle(rng, n);
            // The region is BLANK (0) apart from the chosen positions.
            for &p in chosen.iter() {
                input[p] = rng.gen_range(DATA..v);
            }
            write_copy_span(input, target, n);
        }
        batch
    }

    fn token_name(&self, token: u32) -> String {
        copy_token_name(token, self.cfg.vocab_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{batch, check_common, render};
    use crate::IGNORE;

    fn task(vocab_size: usize, seq_len: usize, num_tokens: usize) -> SelectiveCopying {
        SelectiveCopying::new(SelectiveCopyingConfig { vocab_size, seq_len, num_tokens }).unwrap()
    }

    #[test]
    fn pinned_tokens_for_seed_0() {
        let task = task(6, 12, 3);
        let b = batch(&task, 0, 2);
        println!("{}\n{}", render(&task, &b, 0), render(&task, &b, 1));
        assert_eq!(b.inputs, [4, 0, 0, 0, 4, 0, 5, 0, 0, 1, 4, 4, 0, 0, 0, 5, 4, 0, 5, 0, 0, 1, 5, 4]);
        let ignored = [IGNORE; 9];
        assert_eq!(b.targets, [&ignored[..], &[4, 4, 5], &ignored, &[5, 4, 5]].concat());
    }

    #[test]
    fn layout_and_common_properties() {
        for (v, t, n) in [(6, 12, 3), (18, 64, 16), (18, 256, 16), (3, 2, 1), (4, 8, 4)] {
            let task = task(v, t, n);
            check_common(&task, v == 3 && t == 2 * n);
            let b = batch(&task, 13, 64);
            let mut first_positions = vec![0usize; t - n];
            for r in 0..b.batch_size {
                let (input, target) = (b.input_row(r), b.target_row(r));
                let region = &input[..t - n];
                let data: Vec<u32> = region.iter().copied().filter(|&x| x != BLANK).collect();
                assert_eq!(data.len(), n, "{region:?}");
                assert!(data.iter().all(|&x| x >= DATA));
                first_positions[region.iter().position(|&x| x != BLANK).unwrap()] += 1;
                assert_eq!(input[t - n], SEP);
                assert_eq!(&input[t - n + 1..], &data[..n - 1], "teacher-forced copy");
                assert!(target[..t - n].iter().all(|&y| y == IGNORE));
                let expected: Vec<i32> = data.iter().map(|&x| x as i32).collect();
                assert_eq!(&target[t - n..], &expected[..]);
            }
            assert_eq!(b.num_labelled(), 64 * n);
            if t - n > 2 * n {
                let spread = first_positions.iter().filter(|&&c| c > 0).count();
                assert!(spread > 1, "data positions never move: {first_positions:?}");
            }
        }
    }
}
