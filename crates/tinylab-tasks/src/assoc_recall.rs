//! N-gram associative recall with a single query, in the layout of H3/safari's
//! `generate_assoc_recall` (Fu, Dao et al., "Hungry Hungry Hippos", 2023).

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::config::{ensure, ensure_vocab};
use crate::{Batch, Task, TaskError, TaskRng};

/// Sizes of an [`AssocRecall`] task (`kind = "assoc_recall"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AssocRecallConfig {
    /// Number of token ids `V` (default 32): 3 special tokens, then `(V-3)/2` keys, then values.
    pub vocab_size: usize,
    /// Sequence length `T` (default 64).
    pub seq_len: usize,
    /// Tokens per key tuple `N` (default 1, plain associative recall).
    pub key_len: usize,
    /// Key-value pairs before the query; absent (the default) means as many as fit,
    /// `(T - 1 - N) / (N + 1)`, as safari does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_pairs: Option<usize>,
    /// Query a uniformly random key tuple that may be absent from the pairs, whose target is
    /// then [`AssocRecall::DOT`] `NIL` (safari's `allow_dot`; default false: the query is always a present tuple).
    pub allow_dot: bool,
}

impl Default for AssocRecallConfig {
    fn default() -> Self {
        Self { vocab_size: 32, seq_len: 64, key_len: 1, num_pairs: None, allow_dot: false }
    }
}

/// N-gram associative recall: recall the value that followed a key tuple.
///
/// Per sequence, each key tuple gets one value (drawn uniformly from the values the first
/// time it appears; values may repeat across tuples). The sequence is `P` pairs
/// `(key tuple, value)` whose tuples are drawn uniformly with replacement (a tuple may recur,
/// always with its value), then [`QUERY`](Self::QUERY) `=>`, then a query tuple: one of the
/// distinct tuples present, chosen uniformly (with `allow_dot`, any tuple). Only the last
/// position is labelled, with the query tuple's value ([`DOT`](Self::DOT) if absent). When the
/// pairs do not fill the sequence, it starts with [`BLANK`](Self::BLANK) padding.
///
/// Token names: `_`, `=>`, `NIL` for the specials, `k{i}` for key id `3 + i`, `v{j}` for value
/// id `3 + (V-3)/2 + j`.
///
/// # Example
/// `vocab_size = 11, seq_len = 12, key_len = 2` (3 pairs; pinned in the tests, seed 0,
/// sequence 1; `.` marks an ignored target):
/// ```text
/// input:  k3 k2 v2 k1 k0 v3 k2 k0 v2 => k2 k0
/// target: .  .  .  .  .  .  .  .  .  .  .  v2
/// ```
/// With `key_len = 1, num_pairs = 3, allow_dot = true` (4 pads; sequence 0):
/// ```text
/// input:  _ _ _ _ k2 v2 k0 v2 k2 v2 => k3
/// target: . . . . .  .  .  .  .  .  .  NIL
/// ```
///
/// # Shapes
/// `inputs` and `targets`: `[batch_size, seq_len]`, one label per sequence (the last position).
#[derive(Debug, Clone)]
pub struct AssocRecall {
    cfg: AssocRecallConfig,
    num_pairs: usize,
}

impl AssocRecall {
    /// Padding before the pairs when they do not fill the sequence (`_`).
    pub const BLANK: u32 = 0;
    /// The query marker (`=>`, safari's `copy_prefix`), followed by the query tuple.
    pub const QUERY: u32 = 1;
    /// Target of a query tuple absent from the pairs (`NIL`, safari's `noop` `.`; only with
    /// `allow_dot`).
    pub const DOT: u32 = 2;
    /// Number of special ids before the first key.
    const SPECIALS: u32 = 3;

    /// Validates `cfg` and builds the task.
    ///
    /// # Errors
    /// `key_len` is 0; `seq_len` is shorter than one pair plus `=>` plus a query tuple
    /// (`2·key_len + 2`); `num_pairs` is 0 or its pairs plus the query exceed `seq_len`;
    /// `vocab_size` is below 5 (3 specials, at least 1 key and 1 value).
    pub fn new(cfg: AssocRecallConfig) -> Result<Self, TaskError> {
        let (n, t) = (cfg.key_len, cfg.seq_len);
        ensure(n >= 1, "key_len", || "0; need at least 1 token per key".into())?;
        ensure(t >= 2 * n + 2, "seq_len", || {
            format!("{t} is too short; need at least 2·key_len + 2 = {} (one pair and a query)", 2 * n + 2)
        })?;
        let fit = (t - 1 - n) / (n + 1);
        let num_pairs = cfg.num_pairs.unwrap_or(fit);
        ensure((1..=fit).contains(&num_pairs), "num_pairs", || {
            format!("{num_pairs} pairs do not fit; with seq_len {t} and key_len {n}, 1..={fit} fit")
        })?;
        ensure_vocab(cfg.vocab_size, 5, "3 specials, at least 1 key and 1 value")?;
        Ok(Self { cfg, num_pairs })
    }

    /// The validated configuration.
    pub fn config(&self) -> &AssocRecallConfig {
        &self.cfg
    }

    /// Number of key-value pairs in every sequence.
    pub fn num_pairs(&self) -> usize {
        self.num_pairs
    }

    /// First value id; keys are `3..value_base()`.
    fn value_base(&self) -> u32 {
        Self::SPECIALS + (self.cfg.vocab_size as u32 - Self::SPECIALS) / 2
    }
}

/// The value paired with the first of `pairs` (chunks of `key_len + 1`) whose tuple is `key`.
fn lookup(pairs: &[u32], key: &[u32]) -> Option<u32> {
    let n = key.len();
    pairs.chunks_exact(n + 1).find(|p| &p[..n] == key).map(|p| p[n])
}

impl Task for AssocRecall {
    fn name(&self) -> &'static str {
        "assoc_recall"
    }

    fn vocab_size(&self) -> usize {
        self.cfg.vocab_size
    }

    fn seq_len(&self) -> usize {
        self.cfg.seq_len
    }

    fn generate(&self, rng: &mut TaskRng, batch_size: usize) -> Batch {
        let (t, n, p) = (self.cfg.seq_len, self.cfg.key_len, self.num_pairs);
        let (base, v) = (self.value_base(), self.cfg.vocab_size as u32);
        let pad = t - p * (n + 1) - 1 - n;
        let mut batch = Batch::empty(batch_size, t);
        let rows = batch.inputs.chunks_mut(t).zip(batch.targets.chunks_mut(t));
        for (input, target) in rows {
            let (pairs, tail) = input[pad..].split_at_mut(p * (n + 1));
            for i in 0..p {
                let (done, pair) = pairs.split_at_mut(i * (n + 1));
                pair[..n].iter_mut().for_each(|k| *k = rng.gen_range(Self::SPECIALS..base));
                pair[n] = lookup(done, &pair[..n]).unwrap_or_else(|| rng.gen_range(base..v));
            }
            tail[0] = Self::QUERY;
            let query = &mut tail[1..];
            if self.cfg.allow_dot {
                query.iter_mut().for_each(|k| *k = rng.gen_range(Self::SPECIALS..base));
            } else {
                // Uniform over the distinct tuples present: accept a pair only at the first
                // occurrence of its tuple.
                let chunk = loop {
                    let i = rng.gen_range(0..p) * (n + 1);
                    let key = &pairs[i..i + n];
                    if lookup(&pairs[..i], key).is_none() {
                        break i;
                    }
                };
                query.copy_from_slice(&pairs[chunk..chunk + n]);
            }
            target[t - 1] = lookup(pairs, query).unwrap_or(Self::DOT) as i32;
        }
        batch
    }

    fn token_name(&self, token: u32) -> String {
        let base = self.value_base();
        match token {
            Self::BLANK => "_".into(),
            Self::QUERY => "=>".into(),
            Self::DOT => "NIL".into(),
            t if t < base => format!("k{}", t - Self::SPECIALS),
            t if (t as usize) < self.cfg.vocab_size => format!("v{}", t - base),
            t => format!("?{t}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{batch, check_common, render};
    use crate::IGNORE;

    fn task(vocab_size: usize, seq_len: usize, key_len: usize, allow_dot: bool) -> AssocRecall {
        let cfg = AssocRecallConfig { vocab_size, seq_len, key_len, num_pairs: None, allow_dot };
        AssocRecall::new(cfg).unwrap()
    }

    #[test]
    fn pinned_tokens_for_seed_0() {
        const X: i32 = IGNORE;
        let task = task(11, 12, 2, false);
        let b = batch(&task, 0, 2);
        println!("{}\n{}", render(&task, &b, 0), render(&task, &b, 1));
        assert_eq!(b.inputs, [5, 5, 7, 5, 5, 7, 6, 6, 10, 1, 5, 5, 6, 5, 9, 4, 3, 10, 5, 3, 9, 1, 5, 3]);
        assert_eq!(b.targets, [&[X; 11][..], &[7], &[X; 11], &[9]].concat());

        let cfg = AssocRecallConfig { key_len: 1, num_pairs: Some(3), allow_dot: true, ..task.cfg };
        let task = AssocRecall::new(cfg).unwrap();
        let b = batch(&task, 0, 2);
        println!("{}\n{}", render(&task, &b, 0), render(&task, &b, 1));
        assert_eq!(b.inputs, [0, 0, 0, 0, 5, 9, 3, 9, 5, 9, 1, 6, 0, 0, 0, 0, 6, 10, 6, 10, 5, 9, 1, 4]);
        assert_eq!(b.targets, [&[X; 11][..], &[2], &[X; 11], &[2]].concat());
    }

    /// The pairs are consistent, the query follows `=>`, and the one label is the query's
    /// value (or `NIL` for an absent tuple, only with `allow_dot`).
    fn check_layout(task: &AssocRecall) {
        let (t, n, p) = (task.cfg.seq_len, task.cfg.key_len, task.num_pairs);
        let base = task.value_base();
        let pad = t - p * (n + 1) - 1 - n;
        let b = batch(task, 5, 64);
        let mut dots = 0;
        for r in 0..b.batch_size {
            let (input, target) = (b.input_row(r), b.target_row(r));
            assert!(input[..pad].iter().all(|&x| x == AssocRecall::BLANK));
            let pairs = &input[pad..t - 1 - n];
            for (i, pair) in pairs.chunks_exact(n + 1).enumerate() {
                assert!(pair[..n].iter().all(|&k| (3..base).contains(&k)));
                assert!(pair[n] >= base);
                let first = lookup(&pairs[..i * (n + 1)], &pair[..n]);
                assert!(first.is_none() || first == Some(pair[n]), "tuple recurs, other value");
            }
            assert_eq!(input[t - 1 - n], AssocRecall::QUERY);
            assert_eq!(target.iter().filter(|&&y| y != IGNORE).count(), 1);
            let y = target[t - 1];
            match lookup(pairs, &input[t - n..]) {
                Some(v) => assert_eq!(y, v as i32),
                None => {
                    assert!(task.cfg.allow_dot && y == AssocRecall::DOT as i32);
                    dots += 1;
                }
            }
        }
        assert_eq!(b.num_labelled(), 64);
        if task.cfg.allow_dot && base - 3 > 4 {
            assert!(dots > 0, "allow_dot never produced an absent query");
        }
    }

    #[test]
    fn layout_and_common_properties() {
        for (v, t, n) in [(11, 12, 2), (32, 64, 1), (32, 64, 3), (8, 9, 1), (40, 30, 2)] {
            for allow_dot in [false, true] {
                let task = task(v, t, n, allow_dot);
                check_common(&task, false);
                check_layout(&task);
            }
        }
        let cfg = AssocRecallConfig { num_pairs: Some(5), ..AssocRecallConfig::default() };
        let padded = AssocRecall::new(cfg).unwrap();
        check_common(&padded, false);
        check_layout(&padded);
    }
}
