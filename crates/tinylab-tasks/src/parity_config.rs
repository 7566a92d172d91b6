//! The configuration of the [`Parity`](crate::Parity) task: input width, secret set, and how
//! much of the chain of thought is zero-filled (the internalization schedule of ICoT and
//! Log-ICoT).

use serde::{Deserialize, Serialize};

/// Sizes and chain-of-thought schedule of a [`Parity`](crate::Parity) task (`kind = "parity"`).
///
/// ```toml
/// [task]
/// kind = "parity"
/// n_bits = 16
/// k = 8
/// zero_filled = 4        # Log-ICoT stage 2 for k = 8 (levels 1..2 zero-filled: 0, 4, 6)
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ParityConfig {
    /// Number of input bits `n` (default 16): `x ∈ {0,1}^n`, drawn uniformly per sequence.
    pub n_bits: usize,
    /// Number of secret bits `k` (default 8): a power of two, `2 ≤ k ≤ n_bits`. The tree has
    /// `L = log2 k` levels and `k - 1` nodes (the root, level `L`, is the answer).
    pub k: usize,
    /// The secret positions `s_1..s_k` (0-based, distinct, `< n_bits`, exactly `k` of them), in
    /// tree order: level 1 pairs `(s_1, s_2), (s_3, s_4), …`. Absent (the default): drawn
    /// from `secret_seed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<Vec<usize>>,
    /// Seed of the secret set when `secret` is absent (default 0): a ChaCha8 generator of its
    /// own, independent of the data RNG, so the secret is the same for every run seed, split
    /// and zero-fill stage; drawn order is kept.
    pub secret_seed: u64,
    /// Number of chain-of-thought tokens, counted from the left in level order, whose input is
    /// replaced by the `Z` token (positions kept; default 0 = full chain of thought). Allowed
    /// `0..=k-2` (the root is the answer and never zero-filled). Log-ICoT stages for `k = 8`:
    /// 0, 4, 6 (whole levels); ICoT: 0, 1, …, 6.
    pub zero_filled: usize,
    /// Removal smoothing `λ` of ICoT (Deng et al. 2024, `--removal_smoothing_lambda`; default
    /// 0.0 = off): per sequence, an offset `o ∈ 0..100` with `P(o) ∝ exp(-λ·o)` is added to
    /// `zero_filled`, capped at `k-2`. Must be finite and `≥ 0`.
    pub removal_smoothing: f64,
    /// Whether the position predicting a zero-filled node keeps that node's value as its
    /// target (default false: no loss there, as ICoT). The input stays `Z` either way.
    pub loss_on_removed: bool,
    /// The no-chain-of-thought baseline (default false): every thinking token zero-filled and
    /// the loss on the root only. Overrides `zero_filled` (acts as `zero_filled = k-2`).
    pub answer_only: bool,
    /// The Log-ICoT theory's tree-level attention mask (default `"off"`). `"tree"`: in layer
    /// `ℓ` (counted from 1, `ℓ ≤ L`), the position computing a level-`ℓ` node
    /// ([`ParityNode::probe_position`]) may attend only
    /// to the carriers of level `ℓ−1`: the input bits for `ℓ = 1`, else the slots of the
    /// level-`ℓ−1` nodes and the positions predicting them; other queries are unrestricted.
    /// `"strict"`: the same, and in layer `ℓ ≤ L` every other query attends only to itself,
    /// so level `ℓ` can be gathered by layer `ℓ` alone. Layers above `L` are unrestricted.
    /// See [`Task::attention_masks`](crate::Task::attention_masks).
    pub level_mask: LevelMask,
    /// Where the nodes are predicted (default `"next_token"`). `"next_token"`: every node is
    /// the target of the position before its slot (the root: of the last input position).
    /// `"in_place"`: a node's value lives at one position in every stage — the root gets a slot
    /// of its own (input always `Z`, one more position: `seq_len = n_bits + k`) and is
    /// predicted there; a zero-filled node (with `loss_on_removed`) is the target of its own
    /// slot, where its parent reads it in every stage; a written-out node stays the next-token
    /// target of the position before its slot unless that position holds a zero-filled node's
    /// own target (so with `loss_on_removed` the first written-out node after the zero-filled
    /// ones has no target).
    pub targets: ParityTargets,
}

/// Where a [`Parity`](crate::Parity) sequence puts the node targets, see
/// [`ParityConfig::targets`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParityTargets {
    /// Every node at the position predicting it (the next-token chain of thought).
    #[default]
    NextToken,
    /// Zero-filled nodes and the root at their own slots.
    InPlace,
}

/// Which tree-level attention mask a [`Parity`](crate::Parity) model uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LevelMask {
    /// No mask (causal attention only).
    #[default]
    Off,
    /// Level-`ℓ` queries see only level `ℓ−1` in layer `ℓ`; other queries are free.
    Tree,
    /// As `tree`, and every other query attends only to itself in layers `1..=L`.
    Strict,
}

impl Default for ParityConfig {
    fn default() -> Self {
        Self {
            n_bits: 16,
            k: 8,
            secret: None,
            secret_seed: 0,
            zero_filled: 0,
            removal_smoothing: 0.0,
            loss_on_removed: false,
            answer_only: false,
            level_mask: LevelMask::Off,
            targets: ParityTargets::NextToken,
        }
    }
}

/// One node of the parity tree, as positions of the model's input (see
/// [`Parity::nodes`](crate::Parity::nodes)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParityNode {
    /// Tree level `ℓ`: 1 for the XOR of two secret bits, `L = log2 k` for the root.
    pub level: usize,
    /// Index `j` of the node within its level (0-based; `z^ℓ_{j+1}` in the paper's notation).
    pub index: usize,
    /// Input position of the node's token, `n_bits + 1 + m` for node `m` in level order. With
    /// next-token targets the root's token would sit one past the last input (`seq_len`), so
    /// the root has no slot; with in-place targets it is the last position (input `Z`).
    pub slot: usize,
    /// The input position whose next-token target is this node (`slot - 1`; `seq_len - 1`
    /// for the root; the root's slot with in-place targets).
    pub predicted_at: usize,
    /// Where the probes read this node and where the tree-level mask puts its query: the
    /// position trained to output it when zero-filled — `predicted_at`, or the slot with
    /// `targets = "in_place"` (see [`Task::position_labels`](crate::Task::position_labels)).
    pub probe_position: usize,
    /// Input positions of the two children: the bit positions `s_{2j+1}, s_{2j+2}` at level 1,
    /// the two children's slots above.
    pub children: [usize; 2],
}
