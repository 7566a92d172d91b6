//! Tree-structured `k`-parity with a chain of thought, after "Transformers Provably Learn to
//! Internalize Chain-of-Thought" (Log-ICoT) and the stepwise internalization of ICoT (Deng,
//! Choi, Shieber 2024, `da03/Internalize_CoT_Step_by_Step`).

use rand::{Rng, SeedableRng};

use crate::config::ensure;
use crate::{Batch, LevelMask, ParityConfig, ParityNode, ParityTargets, Task, TaskError, TaskRng, IGNORE};

/// Offsets of the removal smoothing run over `0..SMOOTHING_OFFSETS`, as ICoT's
/// `compute_lambda_distribution(truncate_length=100)`.
const SMOOTHING_OFFSETS: f64 = 100.0;

/// Parity of `k` secret bits of `x ∈ {0,1}^n`, computed by a binary XOR tree whose nodes are
/// written out as a chain of thought.
///
/// Vocabulary (4): `0`, `1`, `SEP` (2) and `Z` (3, a zero-filled thinking token).
///
/// The full sequence is `x_1 … x_n SEP z¹_1 … z¹_{k/2} z²_1 … z²_{k/4} … root` (`n + k`
/// tokens): `z¹_j = x_{s_{2j-1}} ⊕ x_{s_{2j}}` over the secret `s_1..s_k`, level `ℓ` XORs
/// adjacent pairs of level `ℓ-1`, and the root, level `L = log2 k`, is the parity of all
/// secret bits. The inputs are the first `n + k - 1` tokens ([`Task::seq_len`]), with the first
/// `zero_filled` thinking tokens (level order, plus the removal-smoothing offset) replaced by
/// `Z`; the targets are the next tokens at the positions predicting a thinking token or the
/// root (positions `n..n+k-1`), [`IGNORE`] elsewhere (no loss on the bits or `SEP`), and
/// [`IGNORE`] at a position predicting a zero-filled node unless `loss_on_removed`. The root
/// target, at the last position, is always present. With `targets = "in_place"` the root
/// gets a slot of its own (`n + k` inputs) and zero-filled nodes are predicted at their own
/// slots (see [`ParityConfig::targets`]).
///
/// Per sequence the generator draws the `n` bits, then exactly one uniform `f64` (the
/// smoothing offset, used only when `removal_smoothing > 0`): the same seed yields the same
/// bits whatever the zero-fill settings, so a curriculum sees one pool at every stage.
///
/// # Example
/// `n_bits = 8, k = 4, secret = [5, 1, 6, 3]` (pinned in the tests, seed 0, sequence 0; `.`
/// marks an ignored target): `z¹_1 = x_5 ⊕ x_1 = 0`, `z¹_2 = x_6 ⊕ x_3 = 1`, root `1`. Full
/// chain of thought, then `zero_filled = 1`:
/// ```text
/// input:  1 1 1 0 1 1 1 0 SEP 0 1
/// target: . . . . . . . . 0   1 1
/// input:  1 1 1 0 1 1 1 0 SEP Z 1
/// target: . . . . . . . . .   1 1
/// ```
///
/// # Shapes
/// `inputs` and `targets`: `[batch_size, n_bits + k - 1]`; `k - 1` labels per sequence minus
/// the zero-filled ones (without `loss_on_removed`).
#[derive(Debug, Clone)]
pub struct Parity {
    cfg: ParityConfig,
    secret: Vec<usize>,
    nodes: Vec<ParityNode>,
}

impl Parity {
    /// Token `0`.
    pub const ZERO: u32 = 0;
    /// Token `1`.
    pub const ONE: u32 = 1;
    /// The separator between the bits and the chain of thought.
    pub const SEP: u32 = 2;
    /// A zero-filled (removed) thinking token.
    pub const Z: u32 = 3;

    /// Validates `cfg`, draws the secret (unless given) and builds the tree.
    ///
    /// # Errors
    /// `n_bits < 2`; `k` not a power of two or outside `2..=n_bits`; `secret` not `k` distinct
    /// positions `< n_bits`; `zero_filled > k - 2`; `removal_smoothing` negative or not finite.
    pub fn new(cfg: ParityConfig) -> Result<Self, TaskError> {
        let (n, k) = (cfg.n_bits, cfg.k);
        ensure(n >= 2, "n_bits", || format!("{n}; need at least 2 (k ≥ 2 secret bits)"))?;
        ensure(n <= i32::MAX as usize / 2, "n_bits", || {
            format!("{n} is too large; at most {}", i32::MAX / 2)
        })?;
        ensure(k.is_power_of_two() && (2..=n).contains(&k), "k", || {
            format!("{k}; must be a power of two in 2..={n} (n_bits)")
        })?;
        ensure(cfg.zero_filled <= k - 2, "zero_filled", || {
            format!("{}; allowed 0..={} (k - 2: the root is never zero-filled)", cfg.zero_filled, k - 2)
        })?;
        let lambda = cfg.removal_smoothing;
        ensure(lambda.is_finite() && lambda >= 0.0, "removal_smoothing", || {
            format!("{lambda}; must be finite and ≥ 0 (0 = off)")
        })?;
        let secret = match &cfg.secret {
            Some(s) => {
                ensure(s.len() == k, "secret", || format!("{} positions; need exactly k = {k}", s.len()))?;
                if let Some(&p) = s.iter().find(|&&p| p >= n) {
                    return Err(TaskError::invalid(
                        "secret",
                        format!("position {p}; allowed 0..{n} (n_bits)"),
                    ));
                }
                if let Some(p) = s.iter().enumerate().find_map(|(i, p)| s[..i].contains(p).then_some(p)) {
                    return Err(TaskError::invalid("secret", format!("position {p} twice; need k distinct")));
                }
                s.clone()
            }
            None => draw_secret(cfg.secret_seed, n, k),
        };
        let nodes = build_nodes(n, &secret, cfg.targets == ParityTargets::InPlace);
        Ok(Self { cfg, secret, nodes })
    }

    /// The validated configuration.
    pub fn config(&self) -> &ParityConfig {
        &self.cfg
    }

    /// The secret positions `s_1..s_k` (0-based), in tree order.
    pub fn secret(&self) -> &[usize] {
        &self.secret
    }

    /// Number of tree levels `L = log2 k`.
    pub fn num_levels(&self) -> usize {
        self.cfg.k.trailing_zeros() as usize
    }

    /// The `k - 1` tree nodes in level order (level 1 left to right, …, the root last), with
    /// their input positions and their children's.
    pub fn nodes(&self) -> &[ParityNode] {
        &self.nodes
    }

    /// How many thinking tokens are zero-filled before the smoothing offset: `k - 2` with
    /// `answer_only`, else `zero_filled`.
    pub fn base_zero_filled(&self) -> usize {
        if self.cfg.answer_only {
            self.cfg.k - 2
        } else {
            self.cfg.zero_filled
        }
    }

    /// The `k - 1` node values (0/1, level order, root last) of the bits `x` (`x[i] != 0` is a
    /// 1; only the secret positions are read).
    ///
    /// # Panics
    /// If `x` is shorter than `n_bits`.
    pub fn tree_values(&self, x: &[u32]) -> Vec<u32> {
        self.nodes
            .iter()
            .scan(Vec::with_capacity(self.nodes.len()), |values: &mut Vec<u32>, node| {
                let [a, b] = node.children.map(|c| {
                    if node.level == 1 {
                        (x[c] != 0) as u32
                    } else {
                        values[c - self.cfg.n_bits - 1]
                    }
                });
                values.push(a ^ b);
                values.last().copied()
            })
            .collect()
    }

    /// The smoothing offset of a uniform draw `u ∈ [0, 1)`: inverse CDF of
    /// `P(o) ∝ exp(-λ·o)` over `o ∈ 0..100`; 0 when smoothing is off.
    fn offset(&self, u: f64) -> usize {
        let lambda = self.cfg.removal_smoothing;
        if lambda == 0.0 {
            return 0;
        }
        // P(O ≥ o) = (q^o - q^100) / (1 - q^100), q = e^{-λ}.
        let mass = -(-SMOOTHING_OFFSETS * lambda).exp_m1();
        let o = ((-u * mass).ln_1p() / -lambda).floor();
        o.clamp(0.0, SMOOTHING_OFFSETS - 1.0) as usize
    }

    /// Writes one sequence: draws the bits and the smoothing uniform, then fills the row.
    fn fill_row(&self, rng: &mut TaskRng, input: &mut [u32], target: &mut [i32]) {
        let (n, k) = (self.cfg.n_bits, self.cfg.k);
        for x in input[..n].iter_mut() {
            *x = rng.gen::<bool>() as u32;
        }
        let u: f64 = rng.gen();
        let removed = (self.base_zero_filled() + self.offset(u)).min(k - 2);
        let values = self.tree_values(&input[..n]);
        input[n] = Self::SEP;
        let in_place = self.in_place();
        target[n..].fill(IGNORE);
        let last = values.len() - 1; // the root
        for (m, &v) in values.iter().enumerate() {
            let zero = m < removed;
            let slot = n + 1 + m;
            if m < last {
                input[slot] = if zero { Self::Z } else { v };
            }
            let v = v as i32;
            if in_place {
                if m == last {
                    input[slot] = Self::Z;
                    target[slot] = v;
                } else if zero {
                    if self.cfg.loss_on_removed {
                        target[slot] = v;
                    }
                } else if m > removed || removed == 0 || !self.cfg.loss_on_removed {
                    target[slot - 1] = v;
                }
            } else if !zero || self.cfg.loss_on_removed {
                target[slot - 1] = v;
            }
        }
    }

    /// Whether the targets are in place (`targets = "in_place"`).
    fn in_place(&self) -> bool {
        self.cfg.targets == ParityTargets::InPlace
    }
}

/// The secret of `secret_seed`: the first `k` steps of a Fisher–Yates shuffle of `0..n`.
fn draw_secret(seed: u64, n: usize, k: usize) -> Vec<usize> {
    let mut rng = TaskRng::seed_from_u64(seed);
    let mut all: Vec<usize> = (0..n).collect();
    for i in 0..k {
        let j = rng.gen_range(i..n);
        all.swap(i, j);
    }
    all.truncate(k);
    all
}

/// The `k - 1` nodes of the tree over `secret` (level order), for `n` input bits; with
/// `in_place` every node is predicted (the root) or probed at its own slot.
fn build_nodes(n: usize, secret: &[usize], in_place: bool) -> Vec<ParityNode> {
    let k = secret.len();
    let mut nodes = Vec::with_capacity(k - 1);
    let (mut level, mut width, mut first) = (1, k / 2, 0);
    while width >= 1 {
        for j in 0..width {
            let m = first + j;
            let slot = n + 1 + m;
            let predicted_at = if in_place && width == 1 { slot } else { slot - 1 };
            let children = if level == 1 {
                [secret[2 * j], secret[2 * j + 1]]
            } else {
                let below = first - 2 * width;
                [n + 1 + below + 2 * j, n + 1 + below + 2 * j + 1]
            };
            nodes.push(ParityNode {
                level,
                index: j,
                slot,
                predicted_at,
                probe_position: if in_place { slot } else { predicted_at },
                children,
            });
        }
        first += width;
        level += 1;
        width /= 2;
    }
    nodes
}

impl Task for Parity {
    fn name(&self) -> &'static str {
        "parity"
    }

    fn vocab_size(&self) -> usize {
        4
    }

    fn seq_len(&self) -> usize {
        self.cfg.n_bits + self.cfg.k - usize::from(!self.in_place())
    }

    fn generate(&self, rng: &mut TaskRng, batch_size: usize) -> Batch {
        let t = self.seq_len();
        let mut batch = Batch::empty(batch_size, t);
        for (input, target) in batch.inputs.chunks_mut(t).zip(batch.targets.chunks_mut(t)) {
            self.fill_row(rng, input, target);
        }
        batch
    }

    fn token_name(&self, token: u32) -> String {
        match token {
            Self::ZERO => "0".into(),
            Self::ONE => "1".into(),
            Self::SEP => "SEP".into(),
            Self::Z => "Z".into(),
            t => format!("?{t}"),
        }
    }

    /// `"level1"`, …, `"level{L}"`: the value of each level-`ℓ` node at its
    /// [`probe_position`](ParityNode::probe_position) (the position trained to output the node
    /// when it is zero-filled: the one predicting it, or its slot with `targets =
    /// "in_place"`), whether or not it is zero-filled; [`IGNORE`] elsewhere. The values
    /// are recomputed from the bits in the inputs.
    /// With `level_mask`: layer `ℓ ≤ L` restricts the probe positions of level-`ℓ` nodes to
    /// the carriers of level `ℓ−1` (see [`ParityConfig::level_mask`]).
    fn attention_masks(&self, n_layers: usize) -> Vec<Option<Vec<bool>>> {
        if self.cfg.level_mask == LevelMask::Off {
            return Vec::new();
        }
        let strict = self.cfg.level_mask == LevelMask::Strict;
        let t = self.seq_len();
        let carriers = |level: usize| -> Vec<usize> {
            if level == 0 {
                return (0..self.cfg.n_bits).collect();
            }
            self.nodes
                .iter()
                .filter(|n| n.level == level)
                .flat_map(|n| [n.predicted_at, n.slot])
                .filter(|&p| p < t)
                .collect()
        };
        (1..=n_layers)
            .map(|level| {
                if level > self.num_levels() {
                    return None;
                }
                let mut allowed = vec![true; t * t];
                if strict {
                    for q in 0..t {
                        for k in 0..t {
                            allowed[q * t + k] = k == q;
                        }
                    }
                }
                let keys = carriers(level - 1);
                for node in self.nodes.iter().filter(|n| n.level == level) {
                    let q = node.probe_position;
                    for k in 0..t {
                        allowed[q * t + k] = keys.contains(&k);
                    }
                }
                Some(allowed)
            })
            .collect()
    }

    fn position_labels(&self, batch: &Batch) -> Vec<(String, Vec<i32>)> {
        let (t, n) = (batch.seq_len, self.cfg.n_bits);
        let mut labels: Vec<(String, Vec<i32>)> = (1..=self.num_levels())
            .map(|l| (format!("level{l}"), vec![IGNORE; batch.batch_size * t]))
            .collect();
        for b in 0..batch.batch_size {
            let values = self.tree_values(&batch.input_row(b)[..n]);
            for (node, v) in self.nodes.iter().zip(values) {
                labels[node.level - 1].1[b * t + node.probe_position] = v as i32;
            }
        }
        labels
    }
}
