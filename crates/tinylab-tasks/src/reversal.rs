//! The reversal curse and the identity bridge as synthetic factual recall, after Ma, Huang,
//! Zhu, Sojoudi, "Breaking the Reversal Curse in Autoregressive Language Models via Identity
//! Bridge" (arXiv 2602.02470): forward facts `a → b`, identity statements `e → e`, and the
//! reverse query `b → a` of pairs whose reverse was never trained. The sequence layout is the
//! one of the OCR task ([`Ocr`](crate::Ocr)), whose model family the paper's theorem uses.

use std::ops::Range;

use rand::Rng;

use crate::config::ensure;
use crate::{
    Batch, ReversalBridge, ReversalBridgeRelation, ReversalConfig, ReversalSplit, Task, TaskError, TaskRng,
};

/// One statement: `[subject, relation] → answer` (token ids).
type Statement = (u32, u32, u32);

/// Reversal curse with an identity bridge: can a model trained on `[a_i, r_fwd] → b_i` answer
/// `[b_i, r_rev] → a_i`?
///
/// Vocabulary: `a0..a{n-1}` (ids `0..n`), `b0..b{n-1}` (`n..2n`), the relations `r_fwd`
/// (`2n`, answers with a `b`), `r_rev` (`2n+1`, answers with an `a`) and `r_id` (`2n+2`, the
/// dedicated identity relation), `noise0..` and `eos` last: `vocab_size = 2n + 4 + num_noise`.
/// Pair `i` is `(a_i, b_i)`.
///
/// Statements (`[subject, relation] → answer`):
/// * forward facts `[a_i, r_fwd] → b_i`, every pair;
/// * reverse facts `[b_i, r_rev] → a_i`, trained for pairs `0..⌊n·reverse_frac⌋` only, and the
///   reversal test for the others (the held-out pairs; all pairs with the default
///   `reverse_frac = 0`);
/// * identity-bridge statements `e → e` for the entities `bridge` selects, with the relation
///   `bridge_relation` selects: `[a_i, r_rev] → a_i` and `[b_i, r_fwd] → b_i`
///   (`answer_side`), or `[e, r_id] → e` (`dedicated`).
///
/// Each sequence is laid out as in the OCR task: `T-3` noise tokens drawn uniformly with
/// replacement, the subject inserted at `randint(0, T-2)` and the relation at
/// `randint(subject_index+1, T-1)` (Python `list.insert`), then `eos`. The one label is the
/// answer, at the last position (`eos`); every other target is [`IGNORE`](crate::IGNORE). With
/// the default `T = 3` there is no noise: `[subject, relation, eos]`. A batch's rows are
/// statements of the split drawn uniformly with replacement.
///
/// # Example
/// Defaults (`num_pairs = 20`, `T = 3`, `bridge = "both"`, `bridge_relation = "answer_side"`,
/// `split = "train"`; pinned in the tests, seed 0, sequences 0, 4 and 7): an identity
/// statement of a `b`, an identity statement of an `a`, a forward fact (`.` marks an ignored
/// target):
/// ```text
/// input:  b2 r_fwd eos
/// target: .  .     b2
/// input:  a5 r_rev eos
/// target: .  .     a5
/// input:  a17 r_fwd eos
/// target: .   .     b17
/// ```
/// The reversal test (`split = "reverse_test"`, seed 0, sequence 0), never trained:
/// ```text
/// input:  b14 r_rev eos
/// target: .   .     a14
/// ```
/// With noise, as the OCR layout (`seq_len = 8`, `num_noise = 3`, `split = "forward"`, seed 0,
/// sequence 0):
/// ```text
/// input:  noise2 a14 noise1 noise1 noise2 r_fwd noise1 eos
/// target: .      .   .      .      .      .     .      b14
/// ```
///
/// # Shapes
/// `inputs` and `targets`: `[batch_size, seq_len]`, one label per sequence (the last position).
#[derive(Debug, Clone)]
pub struct Reversal {
    cfg: ReversalConfig,
    num_reverse: usize,
    train: Vec<Statement>,
    forward: Vec<Statement>,
    bridge: Vec<Statement>,
    reverse_train: Vec<Statement>,
    reverse_test: Vec<Statement>,
}

impl Reversal {
    /// Validates `cfg` and builds the task and its statements.
    ///
    /// # Errors
    /// `num_pairs < 2` (the reversal block needs an off-diagonal); `seq_len < 3`;
    /// `num_noise = 0` with `seq_len > 3`; `reverse_frac` outside `[0, 1)` or leaving no
    /// held-out pair; `split = "bridge"` with `bridge = "none"`, or `split = "reverse_train"`
    /// with no trained reverse fact; a vocabulary beyond `i32::MAX`.
    pub fn new(cfg: ReversalConfig) -> Result<Self, TaskError> {
        let n = cfg.num_pairs;
        ensure(n >= 2, "num_pairs", || {
            format!("{n}; need at least 2 (a reversal block has an off-diagonal)")
        })?;
        ensure(cfg.seq_len >= 3, "seq_len", || {
            format!("{} is too short; need at least 3 (subject, relation, eos)", cfg.seq_len)
        })?;
        ensure(cfg.num_noise >= 1 || cfg.seq_len == 3, "num_noise", || {
            format!("0, but seq_len {} needs noise; need ≥ 1 (or seq_len = 3)", cfg.seq_len)
        })?;
        let vocab =
            n.checked_mul(2).and_then(|v| v.checked_add(4)).and_then(|v| v.checked_add(cfg.num_noise));
        ensure(vocab.is_some_and(|v| v <= i32::MAX as usize), "num_pairs", || {
            format!("the vocabulary exceeds {}; use fewer pairs or noise tokens", i32::MAX)
        })?;
        let f = cfg.reverse_frac;
        ensure(f.is_finite() && (0.0..1.0).contains(&f), "reverse_frac", || {
            format!("{f}; must be in [0, 1)")
        })?;
        let num_reverse = (n as f64 * f).floor() as usize;
        ensure(num_reverse < n, "reverse_frac", || {
            format!(
                "{f} of {n} pairs leaves no held-out pair for the reversal test; need ⌊n·reverse_frac⌋ < n"
            )
        })?;
        ensure(cfg.split != ReversalSplit::Bridge || cfg.bridge != ReversalBridge::None, "split", || {
            "bridge, but bridge = \"none\" has no identity statement; set bridge or use another split".into()
        })?;
        ensure(cfg.split != ReversalSplit::ReverseTrain || num_reverse > 0, "split", || {
            format!(
                "reverse_train, but reverse_frac {f} of {n} pairs trains no reverse fact; raise reverse_frac"
            )
        })?;
        let mut task = Self {
            cfg,
            num_reverse,
            train: Vec::new(),
            forward: Vec::new(),
            bridge: Vec::new(),
            reverse_train: Vec::new(),
            reverse_test: Vec::new(),
        };
        task.build_statements();
        Ok(task)
    }

    fn build_statements(&mut self) {
        let n = self.cfg.num_pairs as u32;
        let (a, b) = (|i: u32| i, |i: u32| n + i);
        let (fwd, rev, id) = (self.r_fwd(), self.r_rev(), self.r_id());
        self.forward = (0..n).map(|i| (a(i), fwd, b(i))).collect();
        let reverse: Vec<Statement> = (0..n).map(|i| (b(i), rev, a(i))).collect();
        self.reverse_train = reverse[..self.num_reverse].to_vec();
        self.reverse_test = reverse[self.num_reverse..].to_vec();
        let (rel_a, rel_b) = match self.cfg.bridge_relation {
            ReversalBridgeRelation::AnswerSide => (rev, fwd),
            ReversalBridgeRelation::Dedicated => (id, id),
        };
        let (on_a, on_b) = match self.cfg.bridge {
            ReversalBridge::None => (false, false),
            ReversalBridge::A => (true, false),
            ReversalBridge::B => (false, true),
            ReversalBridge::Both => (true, true),
        };
        self.bridge = (0..n)
            .filter(|_| on_a)
            .map(|i| (a(i), rel_a, a(i)))
            .chain((0..n).filter(|_| on_b).map(|i| (b(i), rel_b, b(i))))
            .collect();
        self.train =
            [&self.forward, &self.reverse_train, &self.bridge].into_iter().flatten().copied().collect();
    }

    /// The validated configuration.
    pub fn config(&self) -> &ReversalConfig {
        &self.cfg
    }

    /// Token ids of the `a` entities (the reverse query's answers).
    pub fn a_tokens(&self) -> Range<u32> {
        0..self.cfg.num_pairs as u32
    }

    /// Token ids of the `b` entities (the forward facts' answers, the reverse query's subjects).
    pub fn b_tokens(&self) -> Range<u32> {
        let n = self.cfg.num_pairs as u32;
        n..2 * n
    }

    /// The forward relation token (answers with a `b`).
    pub fn r_fwd(&self) -> u32 {
        2 * self.cfg.num_pairs as u32
    }

    /// The reverse relation token (answers with an `a`).
    pub fn r_rev(&self) -> u32 {
        self.r_fwd() + 1
    }

    /// The dedicated identity relation token (used by `bridge_relation = "dedicated"`).
    pub fn r_id(&self) -> u32 {
        self.r_fwd() + 2
    }

    /// Token ids of the noise tokens.
    pub fn noise_tokens(&self) -> Range<u32> {
        let start = self.r_id() + 1;
        start..start + self.cfg.num_noise as u32
    }

    /// The end-of-sequence token (the last id), where the answer is read.
    pub fn eos_token(&self) -> u32 {
        self.noise_tokens().end
    }

    /// Pairs whose reverse facts are trained: `0..⌊n·reverse_frac⌋`.
    pub fn reverse_trained_pairs(&self) -> Range<usize> {
        0..self.num_reverse
    }

    /// Held-out pairs, whose reverse query is the test: the others.
    pub fn held_out_pairs(&self) -> Range<usize> {
        self.num_reverse..self.cfg.num_pairs
    }

    /// The statements `(subject, relation, answer)` a batch of `split` draws from.
    pub fn statements(&self, split: ReversalSplit) -> &[Statement] {
        match split {
            ReversalSplit::Train => &self.train,
            ReversalSplit::Forward => &self.forward,
            ReversalSplit::Bridge => &self.bridge,
            ReversalSplit::ReverseTrain => &self.reverse_train,
            ReversalSplit::ReverseTest => &self.reverse_test,
        }
    }

    /// Writes one sequence of statement `(subject, relation, answer)`.
    fn fill_row(
        &self,
        rng: &mut TaskRng,
        (subject, relation, answer): Statement,
        input: &mut [u32],
        target: &mut [i32],
    ) {
        let t = self.cfg.seq_len;
        let noise = self.noise_tokens();
        for x in input[..t - 3].iter_mut() {
            *x = rng.gen_range(noise.clone());
        }
        // Python: insert(randint(0, T-2), subject) into T-3 noise tokens, then
        // insert(randint(subject_idx+1, T-1), relation); an index past the end appends.
        let subject_idx = rng.gen_range(0..=t - 2);
        let relation_idx = rng.gen_range(subject_idx + 1..=t - 1);
        let (subject_pos, relation_pos) = (subject_idx.min(t - 3), relation_idx.min(t - 2));
        input.copy_within(subject_pos..t - 3, subject_pos + 1);
        input[subject_pos] = subject;
        input.copy_within(relation_pos..t - 2, relation_pos + 1);
        input[relation_pos] = relation;
        input[t - 1] = self.eos_token();
        target[t - 1] = answer as i32;
    }
}

impl Task for Reversal {
    fn name(&self) -> &'static str {
        "reversal"
    }

    fn vocab_size(&self) -> usize {
        self.eos_token() as usize + 1
    }

    fn seq_len(&self) -> usize {
        self.cfg.seq_len
    }

    fn generate(&self, rng: &mut TaskRng, batch_size: usize) -> Batch {
        let t = self.cfg.seq_len;
        let statements = self.statements(self.cfg.split);
        let mut batch = Batch::empty(batch_size, t);
        for (input, target) in batch.inputs.chunks_mut(t).zip(batch.targets.chunks_mut(t)) {
            let s = statements[rng.gen_range(0..statements.len())];
            self.fill_row(rng, s, input, target);
        }
        batch
    }

    fn token_name(&self, token: u32) -> String {
        match token {
            t if self.a_tokens().contains(&t) => format!("a{t}"),
            t if self.b_tokens().contains(&t) => format!("b{}", t - self.b_tokens().start),
            t if t == self.r_fwd() => "r_fwd".into(),
            t if t == self.r_rev() => "r_rev".into(),
            t if t == self.r_id() => "r_id".into(),
            t if self.noise_tokens().contains(&t) => format!("noise{}", t - self.noise_tokens().start),
            t if t == self.eos_token() => "eos".into(),
            t => format!("?{t}"),
        }
    }
}
