//! Evaluation: loss and accuracy at the labelled positions of a fixed set of sequences; for a
//! continuous task, the mean squared error and that of the task's reference predictor.

use candle_core::{Result, Tensor};
use tinylab_model::{ForwardOptions, Model};
use tinylab_tasks::{Batch, Task};

use crate::data::{rng, DeviceBatch, EVAL_STREAM};

/// Loss and accuracy of one evaluation set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvalResult {
    /// Mean cross-entropy over labelled positions (token task), or mean squared error
    /// (continuous task).
    pub loss: f64,
    /// Fraction of labelled positions whose arg-max logit is the target (NaN for a continuous
    /// task, where it is not recorded).
    pub acc: f64,
    /// Mean squared error of the task's reference predictor on the same sequences (for
    /// `linear_regression`: optimal one-step GD), if the task has one.
    pub gd_loss: Option<f64>,
}

/// Mean loss and the number of correct arg-max predictions for one device batch.
pub fn batch_loss_and_correct(model: &Model, b: &DeviceBatch) -> Result<(Tensor, usize)> {
    let out = model.forward(&b.tokens, ForwardOptions { select: Some(&b.select), hooks: None })?;
    let loss = candle_nn::loss::cross_entropy(&out.logits, &b.targets)?;
    Ok((loss, count_correct(&out.logits, &b.host_targets)?))
}

/// How many rows of `logits` (`[N, V]`) have their argmax at the target.
pub fn count_correct(logits: &Tensor, targets: &[u32]) -> Result<usize> {
    let pred = logits.argmax(1)?.to_vec1::<u32>()?;
    Ok(pred.iter().zip(targets).filter(|(p, t)| p == t).count())
}

/// Predictions `[N]` and mean squared error at the labelled positions of a continuous batch.
pub fn batch_mse(model: &Model, b: &DeviceBatch) -> Result<(Tensor, Tensor)> {
    let (Some(x), Some(y)) = (&b.features, &b.values) else {
        candle_core::bail!("batch_mse needs a continuous batch");
    };
    let pred = model.forward_features(x, ForwardOptions { select: Some(&b.select), hooks: None })?.logits;
    let loss = (&pred - y)?.sqr()?.mean_all()?;
    Ok((pred, loss))
}

/// A fixed evaluation set: its sequences are generated once from `(seed, EVAL_STREAM + index)`.
pub struct EvalData {
    /// Name in metric paths (`eval.<name>`).
    pub name: String,
    batches: Vec<Batch>,
    /// Per batch, the reference predictor's squared-error sum and count (continuous tasks).
    reference: Vec<Option<(f64, usize)>>,
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
        let reference = batches.iter().map(|b| reference_sse(task, b)).collect();
        Self { name: name.to_string(), batches, reference }
    }

    /// The generated batches.
    pub fn batches(&self) -> &[Batch] {
        &self.batches
    }

    /// Evaluates the model on every batch (no gradient is built: weights are read through
    /// `forward`, and the loss is only read back).
    pub fn evaluate(&self, model: &Model) -> Result<EvalResult> {
        let (mut loss_sum, mut correct, mut n) = (0f64, 0usize, 0usize);
        let continuous = self.batches.first().is_some_and(|b| b.is_continuous());
        for b in &self.batches {
            let db = DeviceBatch::new(b, model.device())?;
            let k = db.host_targets.len();
            let loss = if continuous {
                batch_mse(model, &db)?.1
            } else {
                let (loss, c) = batch_loss_and_correct(model, &db)?;
                correct += c;
                loss
            };
            loss_sum += loss.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()? * k as f64;
            n += k;
        }
        let gd_loss =
            self.reference.iter().try_fold((0f64, 0usize), |(s, m), r| r.map(|(a, b)| (s + a, m + b)));
        Ok(EvalResult {
            loss: loss_sum / n.max(1) as f64,
            acc: if continuous { f64::NAN } else { correct as f64 / n.max(1) as f64 },
            gd_loss: gd_loss.filter(|&(_, m)| m > 0).map(|(s, m)| s / m as f64),
        })
    }
}

/// Squared-error sum and count of the task's reference predictor on a continuous batch.
fn reference_sse(task: &dyn Task, b: &Batch) -> Option<(f64, usize)> {
    if !b.is_continuous() {
        return None;
    }
    let pred = task.reference_predictions(b)?;
    let y = b.targets.iter().zip(&b.values).filter(|(&t, _)| t != tinylab_tasks::IGNORE).map(|(_, &v)| v);
    let sse = pred.iter().zip(y).map(|(p, y)| (p - y as f64).powi(2)).sum();
    Some((sse, pred.len()))
}
