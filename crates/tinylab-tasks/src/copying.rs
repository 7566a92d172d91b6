//! Copying: reproduce a span of random tokens after a delimiter (the copy-memory task of
//! Arjovsky et al. 2016 when `seq_len > 2·num_tokens` leaves blanks between span and delimiter).

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::config::{ensure, ensure_vocab};
use crate::{Batch, Task, TaskError, TaskRng};

/// Blank filler token (`_`), shared by [`Copying`] and the selective-copying task.
pub(crate) const BLANK: u32 = 0;
/// Delimiter token (`SEP`) after which the data tokens are reproduced.
pub(crate) const SEP: u32 = 1;
/// First data token id (`d0`).
pub(crate) const DATA: u32 = 2;

/// Readable name of a token of the copying tasks: `_`, `SEP`, `d{i}` for id `2 + i`.
pub(crate) fn copy_token_name(token: u32, vocab_size: usize) -> String {
    match token {
        BLANK => "_".into(),
        SEP => "SEP".into(),
        t if (t as usize) < vocab_size => format!("d{}", t - DATA),
        t => format!("?{t}"),
    }
}

/// Fills the output span of a copying row: `input[t-n]` is `SEP`, `input[t-n+1..]` the first
/// `n-1` of `data` (teacher forcing), and `target[t-n+i] = data[i]` for `i < n`.
pub(crate) fn write_copy_span(input: &mut [u32], target: &mut [i32], n: usize) {
    let start = input.len() - n;
    let (source, output) = input.split_at_mut(start);
    output[0] = SEP;
    let mut data = source.iter().copied().filter(|&x| x != BLANK);
    for i in 0..n {
        let d = data.next().expect("fewer data tokens than num_tokens");
        target[start + i] = d as i32;
        if i + 1 < n {
            output[1 + i] = d;
        }
    }
}

/// Sizes of a [`Copying`] task (`kind = "copying"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CopyingConfig {
    /// Number of token ids `V` (default 18): `_`, `SEP` and `V-2` data tokens.
    pub vocab_size: usize,
    /// Sequence length `T` (default 64); `T - 2·num_tokens` blanks separate span and `SEP`.
    pub seq_len: usize,
    /// Data tokens to copy `n` (default 32); `2·n ≤ seq_len`.
    pub num_tokens: usize,
}

impl Default for CopyingConfig {
    fn default() -> Self {
        Self { vocab_size: 18, seq_len: 64, num_tokens: 32 }
    }
}

/// Copying with teacher forcing.
///
/// Positions `0..n` hold uniformly random data tokens `d`, then `T - 2n` blanks `_`, then
/// [`SEP`](Self::SEP) at `T-n`, then the first `n-1` data tokens again. As next-token
/// prediction, the target at `SEP` is the first data token and the target at each copied
/// token is the next one: targets `T-n..T` are the `n` data tokens, all others
/// [`IGNORE`](crate::IGNORE).
///
/// Token names: `_`, `SEP`, `d{i}` for data id `2 + i`.
///
/// # Example
/// `vocab_size = 6, seq_len = 10, num_tokens = 4` (pinned in the tests, seed 0, sequence 1;
/// `.` marks an ignored target):
/// ```text
/// input:  d2 d3 d3 d3 _ _ SEP d2 d3 d3
/// target: .  .  .  .  . . d2  d3 d3 d3
/// ```
///
/// # Shapes
/// `inputs` and `targets`: `[batch_size, seq_len]`, `num_tokens` labels per sequence.
#[derive(Debug, Clone)]
pub struct Copying {
    cfg: CopyingConfig,
}

impl Copying {
    /// Blank filler between the span and the delimiter (`_`).
    pub const BLANK: u32 = BLANK;
    /// Delimiter after which the span is reproduced (`SEP`).
    pub const SEP: u32 = SEP;

    /// Validates `cfg` and builds the task.
    ///
    /// # Errors
    /// `num_tokens` is 0 or `2·num_tokens > seq_len`; `vocab_size < 3` (`_`, `SEP` and at least
    /// one data token).
    pub fn new(cfg: CopyingConfig) -> Result<Self, TaskError> {
        let n = cfg.num_tokens;
        ensure(n >= 1, "num_tokens", || "0; need at least 1 token to copy".into())?;
        ensure(2 * n <= cfg.seq_len, "num_tokens", || {
            format!("{n} does not fit in seq_len {}; need 2·num_tokens ≤ seq_len", cfg.seq_len)
        })?;
        ensure_vocab(cfg.vocab_size, 3, "`_`, `SEP` and at least 1 data token")?;
        Ok(Self { cfg })
    }

    /// The validated configuration.
    pub fn config(&self) -> &CopyingConfig {
        &self.cfg
    }
}

impl Task for Copying {
    fn name(&self) -> &'static str {
        "copying"
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
        let rows = batch.inputs.chunks_mut(t).zip(batch.targets.chunks_mut(t));
        for (input, target) in rows {
            input[..n].iter_mut().for_each(|x| *x = rng.gen_range(DATA..v));
            // Positions n..t-n are already BLANK (0).
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

    fn task(vocab_size: usize, seq_len: usize, num_tokens: usize) -> Copying {
        Copying::new(CopyingConfig { vocab_size, seq_len, num_tokens }).unwrap()
    }

    #[test]
    fn pinned_tokens_for_seed_0() {
        let task = task(6, 10, 4);
        let b = batch(&task, 0, 2);
        println!("{}\n{}", render(&task, &b, 0), render(&task, &b, 1));
        assert_eq!(b.inputs, [4, 4, 2, 4, 0, 0, 1, 4, 4, 2, 4, 5, 5, 5, 0, 0, 1, 4, 5, 5]);
        let ignored = [IGNORE; 6];
        assert_eq!(b.targets, [&ignored[..], &[4, 4, 2, 4], &ignored, &[4, 5, 5, 5]].concat());
    }

    #[test]
    fn layout_and_common_properties() {
        for (v, t, n) in [(6, 10, 4), (18, 64, 32), (18, 64, 16), (3, 2, 1), (3, 7, 3)] {
            let task = task(v, t, n);
            check_common(&task, v == 3);
            let b = batch(&task, 11, 64);
            for r in 0..b.batch_size {
                let (input, target) = (b.input_row(r), b.target_row(r));
                assert!(input[..n].iter().all(|&x| x >= DATA));
                assert!(input[n..t - n].iter().all(|&x| x == BLANK));
                assert_eq!(input[t - n], SEP);
                assert_eq!(&input[t - n + 1..], &input[..n - 1], "teacher-forced copy");
                assert!(target[..t - n].iter().all(|&y| y == IGNORE));
                let expected: Vec<i32> = input[..n].iter().map(|&x| x as i32).collect();
                assert_eq!(&target[t - n..], &expected[..]);
            }
            assert_eq!(b.num_labelled(), 64 * n);
        }
    }
}
