//! Task samples on the model's device, and accuracy at their labelled positions.

use candle_core::Tensor;
use tinylab_model::{ForwardOptions, Model};
use tinylab_tasks::{Batch, IGNORE};

use crate::error::Result;

/// A generated batch with its tensors: tokens `[B, T]`, the flat indices of labelled
/// positions `[N]` and their targets (host).
pub struct Samples {
    /// The batch as generated.
    pub batch: Batch,
    /// `[B, T]` u32 token ids.
    pub tokens: Tensor,
    /// `[N]` u32 flat indices into `B·T` of labelled positions.
    pub select: Tensor,
    /// Flat indices of labelled positions (host copy of `select`).
    pub positions: Vec<usize>,
    /// Target at each labelled position.
    pub targets: Vec<u32>,
}

impl Samples {
    /// Uploads a batch.
    pub fn new(batch: Batch, model: &Model) -> Result<Self> {
        let (positions, targets): (Vec<usize>, Vec<u32>) = batch
            .targets
            .iter()
            .enumerate()
            .filter(|(_, &t)| t != IGNORE)
            .map(|(i, &t)| (i, t as u32))
            .unzip();
        let idx: Vec<u32> = positions.iter().map(|&p| p as u32).collect();
        let dev = model.device();
        Ok(Self {
            tokens: Tensor::from_slice(&batch.inputs, (batch.batch_size, batch.seq_len), dev)?,
            select: Tensor::from_slice(&idx, idx.len(), dev)?,
            positions,
            targets,
            batch,
        })
    }

    /// Fraction of labelled positions where the model's arg-max is the target.
    pub fn accuracy(&self, model: &Model) -> Result<f64> {
        let logits =
            model.forward(&self.tokens, ForwardOptions { select: Some(&self.select), hooks: None })?.logits;
        Ok(argmax_accuracy(&logits, &self.targets)?)
    }
}

/// Fraction of rows of `logits` `[N, V]` whose arg-max equals `targets[i]`.
pub fn argmax_accuracy(logits: &Tensor, targets: &[u32]) -> candle_core::Result<f64> {
    let pred = logits.argmax(candle_core::D::Minus1)?.to_vec1::<u32>()?;
    let hits = pred.iter().zip(targets).filter(|(p, t)| p == t).count();
    Ok(hits as f64 / targets.len().max(1) as f64)
}
