//! The `[task]` table of an experiment: which task to generate and its sizes.

use serde::{Deserialize, Serialize};

use crate::{
    AssocRecall, AssocRecallConfig, Copying, CopyingConfig, InductionHead, InductionHeadConfig, Mqar,
    MqarConfig, Ocr, OcrConfig, SelectiveCopying, SelectiveCopyingConfig, Task, TaskError,
};
use crate::{LinearRegression, LinearRegressionConfig};
use crate::{Parity, ParityConfig};
use crate::{Reversal, ReversalConfig};

/// A task configuration, deserialized from an experiment's `[task]` table and tagged by `kind`.
///
/// Every field of the per-kind table has a default, and an unknown field is an error:
///
/// ```toml
/// [task]
/// kind = "mqar"        # one of TaskConfig::KINDS
/// num_kv = 16          # the other fields keep their defaults
/// ```
///
/// [`TaskConfig::build`] checks the sizes and turns the configuration into a [`Task`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TaskConfig {
    /// Multi-query associative recall (`kind = "mqar"`), see [`Mqar`].
    Mqar(MqarConfig),
    /// N-gram associative recall with one query (`kind = "assoc_recall"`), see [`AssocRecall`].
    AssocRecall(AssocRecallConfig),
    /// Induction head (`kind = "induction_head"`), see [`InductionHead`].
    InductionHead(InductionHeadConfig),
    /// Copy a span after a delimiter (`kind = "copying"`), see [`Copying`].
    Copying(CopyingConfig),
    /// Copy the scattered data tokens after a delimiter (`kind = "selective_copying"`), see
    /// [`SelectiveCopying`].
    SelectiveCopying(SelectiveCopyingConfig),
    /// Out-of-context reasoning over name → city → animal facts (`kind = "ocr"`), see [`Ocr`].
    Ocr(OcrConfig),
    /// Reversal curse with an identity bridge (`kind = "reversal"`), see [`Reversal`].
    Reversal(ReversalConfig),
    /// In-context linear regression with continuous `(x, y)` tokens (`kind =
    /// "linear_regression"`), see [`LinearRegression`].
    LinearRegression(LinearRegressionConfig),
    /// Tree-structured `k`-parity with a chain of thought (`kind = "parity"`), see [`Parity`].
    Parity(ParityConfig),
}

/// `(kind, one-line description)` of every task kind, in [`TaskConfig::KINDS`] order.
const DESCRIPTIONS: [(&str, &str); 9] = [
    ("mqar", "multi-query associative recall (Zoology): k v pairs, then every key queried once later"),
    ("assoc_recall", "N-gram associative recall (H3): key-tuple/value pairs, then `=>` and one query tuple"),
    (
        "induction_head",
        "induction head (H3): random tokens; after the second trigger, recall what followed the first",
    ),
    ("copying", "copying: a span of data tokens, a delimiter, then the same span again"),
    (
        "selective_copying",
        "selective copying (Mamba): data tokens scattered among blanks, then copied in order",
    ),
    ("ocr", "out-of-context reasoning (OCR-Theory): name → city facts, city → animal implications"),
    ("reversal", "reversal curse (identity bridge): a → b facts, e → e identities, b → a queries held out"),
    (
        "linear_regression",
        "in-context linear regression: continuous (x_i, y_i = w·x_i) tokens, then (x_q, 0)",
    ),
    (
        "parity",
        "k-parity (Log-ICoT): n bits, SEP, then the XOR tree of k secret bits level by level, root last",
    ),
];

impl TaskConfig {
    /// The `kind` tag of every task, as written in a `[task]` table.
    pub const KINDS: &'static [&'static str] = &[
        DESCRIPTIONS[0].0,
        DESCRIPTIONS[1].0,
        DESCRIPTIONS[2].0,
        DESCRIPTIONS[3].0,
        DESCRIPTIONS[4].0,
        DESCRIPTIONS[5].0,
        DESCRIPTIONS[6].0,
        DESCRIPTIONS[7].0,
        DESCRIPTIONS[8].0,
    ];

    /// `(kind, one-line description)` for every entry of [`TaskConfig::KINDS`], in that order
    /// (for `tinylab tasks list`).
    pub fn describe_kinds() -> Vec<(&'static str, &'static str)> {
        DESCRIPTIONS.to_vec()
    }

    /// The `kind` tag of this configuration, e.g. `"mqar"`; equal to the built task's `name()`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Mqar(_) => Self::KINDS[0],
            Self::AssocRecall(_) => Self::KINDS[1],
            Self::InductionHead(_) => Self::KINDS[2],
            Self::Copying(_) => Self::KINDS[3],
            Self::SelectiveCopying(_) => Self::KINDS[4],
            Self::Ocr(_) => Self::KINDS[5],
            Self::Reversal(_) => Self::KINDS[6],
            Self::LinearRegression(_) => Self::KINDS[7],
            Self::Parity(_) => Self::KINDS[8],
        }
    }

    /// Validates the sizes and builds the task.
    ///
    /// # Errors
    /// [`TaskError::Invalid`] naming the first field whose value cannot produce valid
    /// sequences (e.g. more pairs than the sequence holds, a vocabulary too small for the
    /// distinct tokens needed, a zero length), with what is allowed.
    pub fn build(&self) -> Result<Box<dyn Task>, TaskError> {
        Ok(match self {
            Self::Mqar(c) => Box::new(Mqar::new(c.clone())?),
            Self::AssocRecall(c) => Box::new(AssocRecall::new(c.clone())?),
            Self::InductionHead(c) => Box::new(InductionHead::new(c.clone())?),
            Self::Copying(c) => Box::new(Copying::new(c.clone())?),
            Self::SelectiveCopying(c) => Box::new(SelectiveCopying::new(c.clone())?),
            Self::Ocr(c) => Box::new(Ocr::new(c.clone())?),
            Self::Reversal(c) => Box::new(Reversal::new(c.clone())?),
            Self::LinearRegression(c) => Box::new(LinearRegression::new(c.clone())?),
            Self::Parity(c) => Box::new(Parity::new(c.clone())?),
        })
    }
}

/// `Err(TaskError::invalid(key, message()))` unless `ok`.
pub(crate) fn ensure(ok: bool, key: &str, message: impl FnOnce() -> String) -> Result<(), TaskError> {
    if ok {
        Ok(())
    } else {
        Err(TaskError::invalid(key, message()))
    }
}

/// Checks `vocab_size` against the `min` distinct tokens the task needs (`need` says which)
/// and against the largest id a target (`i32`) can hold.
pub(crate) fn ensure_vocab(vocab_size: usize, min: usize, need: &str) -> Result<(), TaskError> {
    ensure(vocab_size >= min, "vocab_size", || {
        format!("{vocab_size} is too small; need at least {min} ({need})")
    })?;
    ensure(vocab_size <= i32::MAX as usize, "vocab_size", || {
        format!("{vocab_size} is too large; at most {}", i32::MAX)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Serialize, Deserialize)]
    struct Experiment {
        task: TaskConfig,
    }

    fn parse(text: &str) -> Result<TaskConfig, toml::de::Error> {
        toml::from_str::<Experiment>(text).map(|e| e.task)
    }

    #[test]
    fn every_kind_parses_with_defaults_and_builds() {
        assert_eq!(TaskConfig::describe_kinds().len(), TaskConfig::KINDS.len());
        for (&kind, (described, text)) in TaskConfig::KINDS.iter().zip(TaskConfig::describe_kinds()) {
            assert_eq!(kind, described);
            assert!(!text.is_empty());
            let cfg = parse(&format!("[task]\nkind = \"{kind}\"\n")).unwrap();
            assert_eq!(cfg.kind(), kind);
            let task = cfg.build().unwrap();
            assert_eq!(task.name(), kind);
        }
    }

    #[test]
    fn fields_override_defaults() {
        let cfg = parse("[task]\nkind = \"mqar\"\nnum_kv = 4\npower_a = 1\n").unwrap();
        let expected = MqarConfig { num_kv: 4, power_a: 1.0, ..MqarConfig::default() };
        assert_eq!(cfg, TaskConfig::Mqar(expected));
    }

    #[test]
    fn unknown_field_is_rejected_inside_the_tagged_enum() {
        for kind in TaskConfig::KINDS {
            let err = parse(&format!("[task]\nkind = \"{kind}\"\nnum_kvs = 4\n")).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains("unknown field `num_kvs`"), "{kind}: {msg}");
            // Also through a `toml::Table`, as a caller merging overrides would.
            let table: toml::Table = format!("kind = \"{kind}\"\nnum_kvs = 4\n").parse().unwrap();
            let msg = table.try_into::<TaskConfig>().unwrap_err().to_string();
            assert!(msg.contains("unknown field `num_kvs`"), "{kind}: {msg}");
        }
    }

    #[test]
    fn unknown_or_missing_kind_is_rejected() {
        let msg = parse("[task]\nkind = \"mqr\"\n").unwrap_err().to_string();
        assert!(msg.contains("unknown variant `mqr`"), "{msg}");
        let msg = parse("[task]\nnum_kv = 4\n").unwrap_err().to_string();
        assert!(msg.contains("missing field `kind`"), "{msg}");
    }

    #[test]
    fn serializes_back_to_the_same_config() {
        for kind in TaskConfig::KINDS {
            let cfg = parse(&format!("[task]\nkind = \"{kind}\"\n")).unwrap();
            let text = toml::to_string(&Experiment { task: cfg.clone() }).unwrap();
            assert!(text.contains(&format!("kind = \"{kind}\"")), "{text}");
            assert_eq!(parse(&text).unwrap(), cfg, "{text}");
        }
    }

    #[test]
    fn build_reports_the_offending_field() {
        let cases = [
            ("kind = \"mqar\"\nnum_kv = 17", "num_kv"),
            ("kind = \"mqar\"\nvocab_size = 16", "vocab_size"),
            ("kind = \"mqar\"\nseq_len = 0", "num_kv"),
            ("kind = \"mqar\"\npower_a = 0.0", "power_a"),
            ("kind = \"assoc_recall\"\nseq_len = 3", "seq_len"),
            ("kind = \"assoc_recall\"\nnum_pairs = 40", "num_pairs"),
            ("kind = \"assoc_recall\"\nvocab_size = 4", "vocab_size"),
            ("kind = \"assoc_recall\"\nkey_len = 0", "key_len"),
            ("kind = \"induction_head\"\nseq_len = 3", "seq_len"),
            ("kind = \"copying\"\nnum_tokens = 33", "num_tokens"),
            ("kind = \"copying\"\nnum_tokens = 0", "num_tokens"),
            ("kind = \"selective_copying\"\nvocab_size = 2", "vocab_size"),
            ("kind = \"selective_copying\"\nseq_len = 31", "num_tokens"),
        ];
        for (body, key) in cases {
            let cfg = parse(&format!("[task]\n{body}\n")).unwrap();
            let err = cfg.build().err().unwrap_or_else(|| panic!("{body} built"));
            assert_eq!(err.key(), key, "{body}: {err}");
            assert!(err.to_string().contains(';'), "{err} should say what is allowed");
        }
    }
}
