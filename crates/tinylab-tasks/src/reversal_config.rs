//! The configuration of the [`Reversal`](crate::Reversal) task: how many pairs, which
//! statements a training batch holds (forward facts, identity-bridge statements, reverse facts
//! of some pairs) and which part a batch holds.

use serde::{Deserialize, Serialize};

/// Which entities get an identity-bridge statement `e → e`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ReversalBridge {
    /// No identity statement: forward facts (and reverse facts of `reverse_frac` of the pairs).
    None,
    /// `a_i → a_i` only (the literal "A → A"). `b_i` then never appears as an input.
    A,
    /// `b_i → b_i` only.
    B,
    /// `a_i → a_i` and `b_i → b_i` for every pair.
    #[default]
    Both,
}

/// Which relation token an identity statement uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ReversalBridgeRelation {
    /// The relation whose answers lie on the entity's own side: `[a_i, r_rev] → a_i` and
    /// `[b_i, r_fwd] → b_i` (`r_fwd` always answers with a `b`, `r_rev` with an `a`).
    #[default]
    AnswerSide,
    /// A dedicated identity relation: `[e, r_id] → e` ("The name of Alice is Alice"); `r_rev`
    /// then appears in training only through reverse facts (`reverse_frac`).
    Dedicated,
}

/// Which sequences a batch holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ReversalSplit {
    /// Every training statement (forward facts, reverse facts of the first
    /// `⌊num_pairs·reverse_frac⌋` pairs, identity statements), each row drawn uniformly from
    /// that list: the uniform empirical loss of the training set.
    #[default]
    Train,
    /// Forward facts `[a_i, r_fwd] → b_i` of every pair.
    Forward,
    /// The identity-bridge statements (needs `bridge ≠ "none"`).
    Bridge,
    /// Reverse facts `[b_i, r_rev] → a_i` of the trained pairs (needs `reverse_frac > 0`).
    ReverseTrain,
    /// Reverse queries `[b_i, r_rev] → a_i` of the held-out pairs: the reversal test.
    ReverseTest,
}

/// Sizes and data recipe of a [`Reversal`](crate::Reversal) task (`kind = "reversal"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReversalConfig {
    /// Number of pairs `n` (default 20): entities `a0..`, `b0..`; pair `i` is `(a_i, b_i)`.
    pub num_pairs: usize,
    /// Number of noise tokens (default 0).
    pub num_noise: usize,
    /// Sequence length `T` (default 3): `T-3` noise tokens, the subject, the relation, `eos`.
    pub seq_len: usize,
    /// Fraction of pairs whose reverse facts are trained (default 0: forward facts only):
    /// pairs `0..⌊n·reverse_frac⌋`; the others are held out for the reversal test.
    pub reverse_frac: f64,
    /// Which entities get identity statements (default `both`).
    pub bridge: ReversalBridge,
    /// Which relation the identity statements use (default `answer_side`).
    pub bridge_relation: ReversalBridgeRelation,
    /// Which sequences a batch holds (default `train`).
    pub split: ReversalSplit,
}

impl Default for ReversalConfig {
    fn default() -> Self {
        Self {
            num_pairs: 20,
            num_noise: 0,
            seq_len: 3,
            reverse_frac: 0.0,
            bridge: ReversalBridge::Both,
            bridge_relation: ReversalBridgeRelation::AnswerSide,
            split: ReversalSplit::Train,
        }
    }
}
