//! Multi-query associative recall (MQAR), in the layout of Zoology's `multiquery_ar`
//! (Arora, Eyuboglu et al., "Zoology: Measuring and improving recall in efficient language
//! models", 2023).

use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::config::{ensure, ensure_vocab};
use crate::{Batch, Task, TaskError, TaskRng};

/// Sizes of an [`Mqar`] task (`kind = "mqar"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqarConfig {
    /// Number of token ids `V` (default 256): keys are `1..V/2`, values `V/2..V`, 0 is filler.
    pub vocab_size: usize,
    /// Sequence length `T` (default 64).
    pub seq_len: usize,
    /// Key-value pairs per sequence, each queried once (default 8); `4·num_kv ≤ seq_len`.
    pub num_kv: usize,
    /// Exponent `a` of the power law `p(gap) ∝ a·gap^(a-1)`, `gap = 1, 2, …`, over the pair
    /// slots after the context (default 0.01: strongly favours early queries; 1.0 is uniform).
    pub power_a: f64,
    /// Replace every filler slot by a uniformly random token in `0..V` (default true, as Zoology).
    pub random_non_queries: bool,
}

impl Default for MqarConfig {
    fn default() -> Self {
        Self { vocab_size: 256, seq_len: 64, num_kv: 8, power_a: 0.01, random_non_queries: true }
    }
}

/// Multi-query associative recall.
///
/// Per sequence, `num_kv` distinct keys (from `1..V/2`) and `num_kv` distinct values (from
/// `V/2..V`) are drawn; positions `0..2·num_kv` hold `key₁ value₁ key₂ value₂ …`. The rest is split in
/// pair slots `(2·num_kv + 2g, 2·num_kv + 2g + 1)`, `g = 0..(T - 2·num_kv)/2`; every key
/// reappears once, at the first position of a slot `g` drawn without replacement with
/// `p(g) ∝ (g+1)^(a-1)`. The target at that position is the key's value (the model sees the
/// key and predicts its value); every other target is [`IGNORE`](crate::IGNORE). All other
/// positions hold 0 (`_`), or a uniform random token in `0..V` when `random_non_queries`.
///
/// Token names: `_` for 0, `k{i}` for key id `1 + i`, `v{j}` for value id `V/2 + j`.
///
/// # Example
/// `vocab_size = 16, seq_len = 16, num_kv = 2, power_a = 1.0, random_non_queries = false`
/// (pinned in the tests, seed 0; `.` marks an ignored target):
/// ```text
/// input:  k6 v0 k4 v4 _ _ _ _ k4 _ _ _ _ _ k6 _
/// target: .  .  .  .  . . . . v4 . . . . . v0 .
/// ```
/// Same sizes with the default `power_a = 0.01, random_non_queries = true` (queries come early; the
/// random filler may repeat a key or value without a label, as in Zoology):
/// ```text
/// input:  k6 v0 k4 v4 v5 v5 k4 v6 k1 v6 v4 v0 k6 v4 v1 v2
/// target: .  .  .  .  .  .  v4 .  .  .  .  .  v0 .  .  .
/// ```
///
/// # Shapes
/// `inputs` and `targets`: `[batch_size, seq_len]`, `num_kv` labels per sequence.
#[derive(Debug, Clone)]
pub struct Mqar {
    cfg: MqarConfig,
    /// Unnormalized power-law weight of each query slot `g`: `(g+1)^(a-1)`.
    slot_weights: Vec<f64>,
}

impl Mqar {
    /// Validates `cfg` and builds the task.
    ///
    /// # Errors
    /// `num_kv` is 0 or `4·num_kv > seq_len`; `vocab_size` has fewer than `num_kv` keys in
    /// `1..V/2` (i.e. `V < 2·num_kv + 2`); `power_a` is not finite and positive.
    pub fn new(cfg: MqarConfig) -> Result<Self, TaskError> {
        let n = cfg.num_kv;
        ensure(n >= 1, "num_kv", || "0 pairs; need at least 1".into())?;
        ensure(4 * n <= cfg.seq_len, "num_kv", || {
            format!(
                "{n} pairs do not fit in seq_len {}; need 4·num_kv ≤ seq_len \
                 (2·num_kv context tokens plus num_kv query slots of 2)",
                cfg.seq_len
            )
        })?;
        ensure_vocab(cfg.vocab_size, 2 * n + 2, "num_kv distinct keys in 1..V/2")?;
        ensure(cfg.power_a.is_finite() && cfg.power_a > 0.0, "power_a", || {
            format!("{} is invalid; must be finite and > 0 (1.0 is uniform)", cfg.power_a)
        })?;
        let slots = (cfg.seq_len - 2 * n) / 2;
        let slot_weights = (1..=slots).map(|g| (g as f64).powf(cfg.power_a - 1.0)).collect();
        Ok(Self { cfg, slot_weights })
    }

    /// The validated configuration.
    pub fn config(&self) -> &MqarConfig {
        &self.cfg
    }

    /// First value id, `V/2`; keys are `1..V/2`.
    fn value_base(&self) -> u32 {
        (self.cfg.vocab_size / 2) as u32
    }
}

/// Draws `out.len()` distinct indices into `weights`, each with probability proportional to
/// its weight among those not yet drawn (sequential weighted sampling without replacement).
/// Zeroes the weights of the drawn indices.
fn sample_weighted_distinct(rng: &mut TaskRng, weights: &mut [f64], out: &mut [usize]) {
    for slot in out {
        let total: f64 = weights.iter().sum();
        let mut u = rng.gen::<f64>() * total;
        let mut pick = None;
        for (i, &w) in weights.iter().enumerate() {
            if w > 0.0 {
                pick = Some(i);
                if u < w {
                    break;
                }
                u -= w;
            }
        }
        let i = pick.expect("fewer positive weights than draws");
        weights[i] = 0.0;
        *slot = i;
    }
}

impl Task for Mqar {
    fn name(&self) -> &'static str {
        "mqar"
    }

    fn vocab_size(&self) -> usize {
        self.cfg.vocab_size
    }

    fn seq_len(&self) -> usize {
        self.cfg.seq_len
    }

    fn generate(&self, rng: &mut TaskRng, batch_size: usize) -> Batch {
        let (t, n, v) = (self.cfg.seq_len, self.cfg.num_kv, self.cfg.vocab_size as u32);
        let half = self.value_base();
        let mut batch = Batch::empty(batch_size, t);
        // Pools permuted in place: a partial shuffle leaves a uniform draw without
        // replacement at its front, whatever order earlier rows left the pool in.
        let mut keys: Vec<u32> = (1..half).collect();
        let mut values: Vec<u32> = (half..v).collect();
        let mut weights = self.slot_weights.clone();
        let mut slots = vec![0usize; n];
        let rows = batch.inputs.chunks_mut(t).zip(batch.targets.chunks_mut(t));
        for (input, target) in rows {
            let (ks, _) = keys.partial_shuffle(rng, n);
            let (vs, _) = values.partial_shuffle(rng, n);
            weights.copy_from_slice(&self.slot_weights);
            sample_weighted_distinct(rng, &mut weights, &mut slots);
            for (i, (&k, &val)) in ks.iter().zip(vs.iter()).enumerate() {
                input[2 * i] = k;
                input[2 * i + 1] = val;
                let q = 2 * n + 2 * slots[i];
                input[q] = k;
                target[q] = val as i32;
            }
            if self.cfg.random_non_queries {
                for x in input.iter_mut().filter(|x| **x == 0) {
                    *x = rng.gen_range(0..v);
                }
            }
        }
        batch
    }

    fn token_name(&self, token: u32) -> String {
        let half = self.value_base();
        match token {
            0 => "_".into(),
            t if t < half => format!("k{}", t - 1),
            t if (t as usize) < self.cfg.vocab_size => format!("v{}", t - half),
            t => format!("?{t}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{batch, check_common, render};
    use crate::IGNORE;

    fn task(random_non_queries: bool, power_a: f64) -> Mqar {
        let cfg = MqarConfig { vocab_size: 16, seq_len: 16, num_kv: 2, power_a, random_non_queries };
        Mqar::new(cfg).unwrap()
    }

    const X: i32 = IGNORE;

    #[test]
    fn pinned_tokens_for_seed_0() {
        let task = task(false, 1.0);
        let b = batch(&task, 0, 2);
        println!("{}\n{}", render(&task, &b, 0), render(&task, &b, 1));
        let inputs = [7, 8, 5, 12, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 7, 0];
        let targets = [X, X, X, X, X, X, X, X, 12, X, X, X, X, X, 8, X];
        assert_eq!((b.input_row(0), b.target_row(0)), (&inputs[..], &targets[..]));
        let inputs = [5, 12, 7, 8, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 7, 0];
        assert_eq!((b.input_row(1), b.target_row(1)), (&inputs[..], &targets[..]));

        let task = self::task(true, 0.01);
        let b = batch(&task, 0, 2);
        println!("{}\n{}", render(&task, &b, 0), render(&task, &b, 1));
        let inputs = [7, 8, 5, 12, 13, 13, 5, 14, 2, 14, 12, 8, 7, 12, 9, 10];
        let targets = [X, X, X, X, X, X, 12, X, X, X, X, X, 8, X, X, X];
        assert_eq!((b.input_row(0), b.target_row(0)), (&inputs[..], &targets[..]));
        let inputs = [2, 15, 1, 11, 13, 12, 2, 8, 1, 12, 15, 15, 11, 8, 9, 5];
        let targets = [X, X, X, X, X, X, 15, X, 11, X, X, X, X, X, X, X];
        assert_eq!((b.input_row(1), b.target_row(1)), (&inputs[..], &targets[..]));
    }

    /// Every labelled position holds a key whose value (next to its first occurrence in the
    /// context) is the target; every key of the context is queried exactly once.
    fn check_layout(task: &Mqar, random_non_queries: bool) {
        let (n, t) = (task.cfg.num_kv, task.cfg.seq_len);
        let half = task.value_base();
        let b = batch(task, 3, 64);
        for r in 0..b.batch_size {
            let (input, target) = (b.input_row(r), b.target_row(r));
            let context = &input[..2 * n];
            let mut keys: Vec<u32> = context.iter().step_by(2).copied().collect();
            assert!(keys.iter().all(|&k| (1..half).contains(&k)));
            assert!(context.iter().skip(1).step_by(2).all(|&x| x >= half));
            keys.sort_unstable();
            keys.dedup();
            assert_eq!(keys.len(), n, "keys must be distinct");
            let mut queried = Vec::new();
            for (p, &y) in target.iter().enumerate().filter(|(_, &y)| y != IGNORE) {
                assert!(p >= 2 * n && (p - 2 * n) % 2 == 0, "query at {p}");
                let k = context.iter().position(|&x| x == input[p]).unwrap();
                assert_eq!((k % 2, context[k + 1] as i32), (0, y), "row {r} pos {p}");
                queried.push(input[p]);
            }
            queried.sort_unstable();
            assert_eq!(queried, keys);
            if !random_non_queries {
                let filler = (2 * n..t).filter(|&p| target[p] == IGNORE);
                assert!(filler.clone().all(|p| input[p] == 0));
            }
        }
        assert_eq!(b.num_labelled(), 64 * n);
    }

    #[test]
    fn layout_and_common_properties() {
        for random in [false, true] {
            for a in [0.01, 1.0, 3.0] {
                let task = task(random, a);
                check_common(&task, false);
                check_layout(&task, random);
            }
        }
        let large = Mqar::new(MqarConfig { num_kv: 16, ..MqarConfig::default() }).unwrap();
        check_common(&large, false);
        check_layout(&large, true);
    }

    #[test]
    fn small_power_a_favours_early_queries() {
        let cfg = MqarConfig { num_kv: 1, seq_len: 256, ..MqarConfig::default() };
        let (skewed, uniform) = (Mqar::new(cfg.clone()).unwrap(), MqarConfig { power_a: 1.0, ..cfg });
        let uniform = Mqar::new(uniform).unwrap();
        let mean_query_pos = |task: &Mqar| {
            let b = batch(task, 1, 400);
            let pos = b.targets.iter().enumerate().filter(|(_, &y)| y != IGNORE);
            pos.map(|(i, _)| (i % 256) as f64).sum::<f64>() / 400.0
        };
        let (s, u) = (mean_query_pos(&skewed), mean_query_pos(&uniform));
        assert!(s + 40.0 < u, "power_a 0.01 mean {s}, uniform mean {u}");
    }
}
