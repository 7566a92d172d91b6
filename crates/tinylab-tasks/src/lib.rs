//! Seeded synthetic-task generators for tinylab.
//!
//! Pure data: no candle. A [`TaskConfig`] (deserialized from an experiment's `[task]` table)
//! is validated into a boxed [`Task`]; a task fills a whole [`Batch`] (inputs and targets for
//! `batch_size` sequences) into flat row-major buffers from a caller-owned [`TaskRng`], so the
//! same seed always yields the same tokens.
//!
//! | `kind` | task | labels per sequence |
//! |---|---|---|
//! | `mqar` | [`Mqar`]: multi-query associative recall (Zoology layout) | `num_kv` |
//! | `assoc_recall` | [`AssocRecall`]: N-gram associative recall, one query (H3 layout) | 1 |
//! | `induction_head` | [`InductionHead`]: recall what followed the trigger (H3 layout) | 1 |
//! | `copying` | [`Copying`]: copy a span after `SEP` | `num_tokens` |
//! | `selective_copying` | [`SelectiveCopying`]: copy the scattered data tokens (Mamba) | `num_tokens` |
//! | `ocr` | [`Ocr`]: out-of-context reasoning, name → city → animal facts (OCR-Theory layout) | 1 |
//! | `reversal` | [`Reversal`]: reversal curse, forward facts and identity bridge, held-out `b → a` | 1 |
//! | `linear_regression` | [`LinearRegression`]: in-context regression, continuous `(x, y)` tokens | 1 |
//! | `parity` | [`Parity`]: tree-structured `k`-parity with a (partly zero-filled) chain of thought | `k - 1` |
//!
//! Targets follow next-token prediction with teacher forcing: the target at position `t` is
//! what the model must predict from the inputs at positions `≤ t`; unlabelled positions hold
//! [`IGNORE`].

mod assoc_recall;
mod batch;
mod config;
mod copying;
mod error;
mod induction_head;
mod linear_regression;
mod mqar;
mod ocr;
mod ocr_config;
#[cfg(test)]
mod ocr_tests;
mod parity;
mod parity_config;
#[cfg(test)]
mod parity_tests;
mod reversal;
mod reversal_config;
#[cfg(test)]
mod reversal_tests;
mod selective_copying;
#[cfg(test)]
mod testutil;

pub use assoc_recall::{AssocRecall, AssocRecallConfig};
pub use batch::{Batch, IGNORE};
pub use config::TaskConfig;
pub use copying::{Copying, CopyingConfig};
pub use error::TaskError;
pub use induction_head::{InductionHead, InductionHeadConfig};
pub use linear_regression::{
    gd_predictions, Covariates, LinearRegression, LinearRegressionConfig, WeightPrior,
};
pub use mqar::{Mqar, MqarConfig};
pub use ocr::Ocr;
pub use ocr_config::{OcrConfig, OcrSplit, OcrWorld, OcrWorldKind};
pub use parity::Parity;
pub use parity_config::{LevelMask, ParityConfig, ParityNode, ParityTargets};
pub use reversal::Reversal;
pub use reversal_config::{ReversalBridge, ReversalBridgeRelation, ReversalConfig, ReversalSplit};
pub use selective_copying::{SelectiveCopying, SelectiveCopyingConfig};

/// The random-number generator every task draws from: ChaCha8, whose stream is fixed by the
/// `rand_chacha` crate across platforms and versions, and whose position can be saved and
/// restored (`get_word_pos` / `set_word_pos`) for exact resume.
pub type TaskRng = rand_chacha::ChaCha8Rng;

/// A seeded synthetic task: a generator of token sequences with per-position targets.
pub trait Task: Send + Sync {
    /// Short stable name of the task kind, e.g. `"mqar"`.
    fn name(&self) -> &'static str;
    /// Number of distinct token ids; every input and target is `< vocab_size()`.
    fn vocab_size(&self) -> usize;
    /// Length `T` of every generated sequence.
    fn seq_len(&self) -> usize;
    /// Fills one batch of `batch_size` sequences, drawing every random choice from `rng`.
    fn generate(&self, rng: &mut TaskRng, batch_size: usize) -> Batch;
    /// Human-readable name of a token id for display (e.g. `"k17"`, `"v3"`, `"SEP"`).
    fn token_name(&self, token: u32) -> String;
    /// Width `F` of the continuous input vectors (`features` of a [`Batch`]); 0 (the default)
    /// for a token task.
    fn num_features(&self) -> usize {
        0
    }
    /// Predictions of the task's reference predictor at every labelled position of `batch`, in
    /// order (for `linear_regression`: the optimal one-step gradient-descent predictor); `None`
    /// (the default) if the task has none.
    fn reference_predictions(&self, _batch: &Batch) -> Option<Vec<f64>> {
        None
    }
    /// Per-layer restrictions of which keys each query may attend to (on top of causality)
    /// that the task's model must use, e.g. the parity tree-level mask: entry `l` is `None` or
    /// a row-major `seq_len × seq_len` list, `allowed[q·T + k]`. Empty (the default): none.
    fn attention_masks(&self, _n_layers: usize) -> Vec<Option<Vec<bool>>> {
        Vec::new()
    }

    /// Per-position ground-truth labels for linear probes: named arrays aligned with the
    /// `batch`'s `[batch_size, seq_len]` input positions (row-major), [`IGNORE`] where a label
    /// does not apply (for `parity`: the value of each tree level's nodes). Empty (the
    /// default) if the task has none.
    fn position_labels(&self, _batch: &Batch) -> Vec<(String, Vec<i32>)> {
        Vec::new()
    }
}
