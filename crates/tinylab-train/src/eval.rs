//! Evaluation: loss and accuracy at the labelled positions of a fixed set of sequences.

use candle_core::{Result, Tensor};
use tinylab_model::{ForwardOptions, Model};
use tinylab_tasks::{Batch, Task};

use crate::data::{rng, DeviceBatch, EVAL_STREAM};

/// Loss and accuracy of one evaluation set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvalResult {
    /// Mean cross-entropy over labelled positions.
    pub loss: f64,
    /// Fraction of labelled positions whose arg-max logit is the target.
    pub acc: f64,
}

/// Mean loss and the number of correct arg-max predictions for one device batch.
pub fn batch_loss_and_correct(model: &Model, b: &DeviceBatch) -> Result<(Tensor, usize)> {
    let out = model.forward(&b.tokens, ForwardOptions { select: Some(&b.select), hooks: None })?;
    let loss = candle_nn::loss::cross_entropy(&out.logits, &b.targets)?;
    let pred = out.logits.argmax(1)?.to_vec1::<u32>()?;
    let correct = pred.iter().zip(&b.host_targets).filter(|(p, t)| p == t).count();
    Ok((loss, correct))
}

/// A fixed evaluation set: its sequences are generated once from `(seed, EVAL_STREAM + index)`.
pub struct EvalData {
    /// Name in metric paths (`eval.<name>`).
    pub name: String,
    batches: Vec<Batch>,
}

impl EvalData {
    /// Generates `samples` sequences, split into batches small enough that one attention
    /// score tensor stays around 2^25 floats.
    pub fn new(
        name: &str,
        task: &dyn Task,
        samples: usize,
        max_batch: usize,
        n_heads: usize,
        seed: u64,
        index: usize,
    ) -> Self {
        let t = task.seq_len();
        let fit = (1usize << 25) / (t * t * n_heads.max(1)).max(1);
        let bs = fit.clamp(1, max_batch.max(1));
        let mut r = rng(seed, EVAL_STREAM + index as u64);
        let mut batches = Vec::new();
        let mut left = samples;
        while left > 0 {
            let n = left.min(bs);
            batches.push(task.generate(&mut r, n));
            left -= n;
        }
        Self { name: name.to_string(), batches }
    }

    /// Evaluates the model on every batch (no gradient is built: weights are read through
    /// `forward`, and the loss is only read back).
    pub fn evaluate(&self, model: &Model) -> Result<EvalResult> {
        let (mut loss_sum, mut correct, mut n) = (0f64, 0usize, 0usize);
        for b in &self.batches {
            let db = DeviceBatch::new(b, model.device())?;
            let (loss, c) = batch_loss_and_correct(model, &db)?;
            let k = db.host_targets.len();
            loss_sum += loss.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()? * k as f64;
            correct += c;
            n += k;
        }
        Ok(EvalResult { loss: loss_sum / n.max(1) as f64, acc: correct as f64 / n.max(1) as f64 })
    }
}
