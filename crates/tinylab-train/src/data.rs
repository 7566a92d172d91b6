//! Training batches from a task: fresh per step or drawn from a fixed pool, and their
//! conversion to tensors (inputs plus the labelled positions only).

use candle_core::{Device, Result, Tensor};
use rand::{Rng, SeedableRng};
use tinylab_tasks::{Batch, Task, TaskRng, IGNORE};

use crate::experiment::DataMode;

/// RNG stream of the training data (model init uses stream 0 of the same seed).
pub const TRAIN_STREAM: u64 = 1;
/// RNG stream of the fixed training pool.
pub const POOL_STREAM: u64 = 2;
/// First RNG stream of the evaluation sets (set `i` uses `EVAL_STREAM + i`).
pub const EVAL_STREAM: u64 = 1000;

/// A seeded RNG on a given stream.
pub fn rng(seed: u64, stream: u64) -> TaskRng {
    let mut r = TaskRng::seed_from_u64(seed);
    r.set_stream(stream);
    r
}

/// A batch on the device: token ids and the labelled positions with their targets, plus, for a
/// continuous task, the input vectors and the real-valued targets.
///
/// # Shapes
/// `tokens`: `[B, T]` u32; `select`: `[N]` u32 flat indices into `B·T`; `targets`: `[N]` u32;
/// `features`: `[B, T, F]` f32; `values`: `[N]` f32.
pub struct DeviceBatch {
    /// Input token ids.
    pub tokens: Tensor,
    /// Flat indices of labelled positions.
    pub select: Tensor,
    /// Target token at each labelled position.
    pub targets: Tensor,
    /// Targets on the host (for accuracy).
    pub host_targets: Vec<u32>,
    /// Continuous inputs (`None` for a token task).
    pub features: Option<Tensor>,
    /// Real-valued target at each labelled position (`None` for a token task).
    pub values: Option<Tensor>,
}

impl DeviceBatch {
    /// Uploads a generated batch; errors if it has no labelled position.
    pub fn new(batch: &Batch, device: &Device) -> Result<Self> {
        let mut select = Vec::new();
        let mut targets = Vec::new();
        let mut values = Vec::new();
        for (i, &t) in batch.targets.iter().enumerate() {
            if t != IGNORE {
                select.push(i as u32);
                targets.push(t as u32);
                if batch.is_continuous() {
                    values.push(batch.values[i]);
                }
            }
        }
        let (features, values) = if batch.is_continuous() {
            let shape = (batch.batch_size, batch.seq_len, batch.num_features);
            let n = values.len();
            (
                Some(Tensor::from_slice(&batch.features, shape, device)?),
                Some(Tensor::from_vec(values, n, device)?),
            )
        } else {
            (None, None)
        };
        if select.is_empty() {
            candle_core::bail!("the task generated a batch with no labelled position");
        }
        Ok(Self {
            tokens: Tensor::from_slice(&batch.inputs, (batch.batch_size, batch.seq_len), device)?,
            select: Tensor::from_slice(&select, select.len(), device)?,
            targets: Tensor::from_slice(&targets, targets.len(), device)?,
            host_targets: targets,
            features,
            values,
        })
    }
}

/// Where training batches come from.
pub struct DataSource {
    task: Box<dyn Task>,
    batch_size: usize,
    rng: TaskRng,
    pool: Option<Batch>,
}

impl DataSource {
    /// Fresh batches, or a pool of `pool_size` sequences generated once (stream `POOL_STREAM`).
    pub fn new(task: Box<dyn Task>, mode: DataMode, pool_size: usize, batch_size: usize, seed: u64) -> Self {
        let pool = match mode {
            DataMode::Fresh => None,
            DataMode::Pool => Some(task.generate(&mut rng(seed, POOL_STREAM), pool_size)),
        };
        Self { task, batch_size, rng: rng(seed, TRAIN_STREAM), pool }
    }

    /// The task generating the data.
    pub fn task(&self) -> &dyn Task {
        self.task.as_ref()
    }

    /// The next training batch.
    pub fn next_batch(&mut self) -> Batch {
        match &self.pool {
            None => self.task.generate(&mut self.rng, self.batch_size),
            Some(pool) => {
                let t = pool.seq_len;
                let mut b = if pool.is_continuous() {
                    Batch::continuous(self.batch_size, t, pool.num_features)
                } else {
                    Batch::empty(self.batch_size, t)
                };
                let w = t * pool.num_features;
                for i in 0..self.batch_size {
                    let j = self.rng.gen_range(0..pool.batch_size);
                    b.inputs[i * t..(i + 1) * t].copy_from_slice(pool.input_row(j));
                    b.targets[i * t..(i + 1) * t].copy_from_slice(pool.target_row(j));
                    if pool.is_continuous() {
                        b.features[i * w..(i + 1) * w].copy_from_slice(pool.feature_row(j));
                        b.values[i * t..(i + 1) * t].copy_from_slice(pool.value_row(j));
                    }
                }
                b
            }
        }
    }

    /// Position of the data RNG in its stream (saved in checkpoints).
    pub fn rng_word_pos(&self) -> u128 {
        self.rng.get_word_pos()
    }

    /// Restores the data RNG position (on resume).
    pub fn set_rng_word_pos(&mut self, pos: u128) {
        self.rng.set_word_pos(pos);
    }
}
