//! Batches of a seed-batched run: every member's own batch stacked, the labelled positions
//! padded to a common count, and the loss `Σ_i mean-CE_i` whose gradient for member `i` is its
//! solo gradient. Also the batched evaluation of every member on its own evaluation sets.

use candle_core::{DType, Device, Result, Tensor, D};
use tinylab_model::ensemble::weighted_log_likelihood;
use tinylab_model::EnsembleModel;
use tinylab_tasks::{Batch, IGNORE};

use crate::ensemble_step::rows;
use crate::eval::EvalData;
use crate::metrics::MetricRow;

/// One step's batches of `S` members on the device.
///
/// # Shapes
/// `tokens`: `[S, B, T]` u32; `select`: `[S, N]` u32 flat indices into `B·T` (`N` = the largest
/// labelled count, shorter members padded with position 0); `targets`, `weights`: `S·N`.
pub struct EnsembleBatch {
    /// Input token ids.
    pub tokens: Tensor,
    /// Labelled positions, padded.
    pub select: Tensor,
    /// Target at each (padded) labelled position.
    pub targets: Vec<u32>,
    /// `−1/N_i` at member `i`'s labelled positions (so the weighted log-likelihood is its mean
    /// cross-entropy, with the solo gradient), 0 at padding.
    pub weights: Vec<f64>,
    /// Each member's targets, unpadded (for accuracy).
    pub host_targets: Vec<Vec<u32>>,
}

impl EnsembleBatch {
    /// Stacks one token batch per member (all of one size). With `mean`, member `i`'s weights
    /// are `−1/N_i` (training: mean cross-entropy); otherwise `−1` (evaluation: summed).
    pub fn new(batches: &[Batch], device: &Device, mean: bool) -> Result<Self> {
        Self::build(batches, device, |_, n| if mean { -1.0 / n as f64 } else { -1.0 })
    }

    /// Stacks one slice of every member's batch for data-parallel training: member `i`'s
    /// weights are `−1/denominators[i]` (its labelled count over the whole batch), so the
    /// slices' losses and gradients add up to the whole batch's mean cross-entropy.
    pub fn with_denominators(batches: &[Batch], device: &Device, denominators: &[usize]) -> Result<Self> {
        if denominators.len() != batches.len() {
            candle_core::bail!("{} denominators for {} members", denominators.len(), batches.len());
        }
        Self::build(batches, device, |i, _| -1.0 / denominators[i].max(1) as f64)
    }

    /// Stacks the batches; `weight(i, n_i)` is the weight of each of member `i`'s `n_i`
    /// labelled positions.
    fn build(batches: &[Batch], device: &Device, weight: impl Fn(usize, usize) -> f64) -> Result<Self> {
        let Some(first) = batches.first() else { candle_core::bail!("no member batches") };
        let (b, t) = (first.batch_size, first.seq_len);
        let mut tokens = Vec::with_capacity(batches.len() * b * t);
        let mut labelled: Vec<Vec<(u32, u32)>> = Vec::with_capacity(batches.len());
        for batch in batches {
            if (batch.batch_size, batch.seq_len) != (b, t) || batch.is_continuous() {
                candle_core::bail!("member batches must be token batches of one size");
            }
            tokens.extend_from_slice(&batch.inputs);
            let l: Vec<(u32, u32)> = (batch.targets.iter().enumerate())
                .filter(|(_, &y)| y != IGNORE)
                .map(|(i, &y)| (i as u32, y as u32))
                .collect();
            if l.is_empty() {
                candle_core::bail!("the task generated a batch with no labelled position");
            }
            labelled.push(l);
        }
        let s = batches.len();
        let n = labelled.iter().map(Vec::len).max().unwrap_or(0);
        let (mut select, mut targets, mut weights) =
            (vec![0u32; s * n], vec![0u32; s * n], vec![0f64; s * n]);
        for (i, l) in labelled.iter().enumerate() {
            let w = weight(i, l.len());
            for (j, &(pos, y)) in l.iter().enumerate() {
                (select[i * n + j], targets[i * n + j], weights[i * n + j]) = (pos, y, w);
            }
        }
        Ok(Self {
            tokens: Tensor::from_vec(tokens, (s, b, t), device)?,
            select: Tensor::from_vec(select, (s, n), device)?,
            targets,
            weights,
            host_targets: labelled.into_iter().map(|l| l.into_iter().map(|(_, y)| y).collect()).collect(),
        })
    }

    /// The summed loss (to differentiate) and each member's loss `[S]` (its mean
    /// cross-entropy, or its summed cross-entropy for an evaluation batch).
    pub fn loss(&self, logits: &Tensor) -> Result<(Tensor, Tensor)> {
        let (s, n, v) = logits.dims3()?;
        let picked = weighted_log_likelihood(&logits.reshape((s * n, v))?, &self.targets, &self.weights)?;
        let per_member = picked.reshape((s, n))?.sum(1)?;
        Ok((per_member.sum_all()?, per_member))
    }

    /// Number of labelled positions whose arg-max logit is the target, per member.
    pub fn correct(&self, logits: &Tensor) -> Result<Vec<usize>> {
        let pred = logits.argmax(D::Minus1)?.to_vec2::<u32>()?;
        Ok(pred
            .iter()
            .zip(&self.host_targets)
            .map(|(p, y)| p.iter().zip(y).filter(|(a, b)| a == b).count())
            .collect())
    }
}

/// Evaluates member `i` of `model` on `evals[i]` (its own sets, generated from its seed): mean
/// loss and accuracy over each set, as `EvalData::evaluate` computes them for a solo model.
/// Batches are split so that one attention score tensor of all members stays around 2^25
/// floats, and with `shards > 1` into at least `shards` row chunks evaluated on as many
/// threads (candle single-threaded); the chunks' sums are added in chunk order either way.
/// Returns one list of `eval.<name>` rows per member.
pub fn evaluate(
    model: &EnsembleModel,
    evals: &[&[EvalData]],
    step: usize,
    shards: usize,
) -> Result<Vec<Vec<MetricRow>>> {
    let s = model.size();
    if evals.len() != s {
        candle_core::bail!("{} eval lists for {s} members", evals.len());
    }
    let shards = shards.max(1);
    let mut out = vec![Vec::new(); s];
    for (e, first) in evals[0].iter().enumerate() {
        // (batch, first row, end row) of every chunk
        let mut chunks = Vec::new();
        for (j, b0) in first.batches().iter().enumerate() {
            let t = b0.seq_len;
            let fit = (1usize << 25) / (s * t * t * model.config().n_heads).max(1);
            let chunk = fit.min(b0.batch_size.div_ceil(shards)).clamp(1, b0.batch_size);
            chunks
                .extend((0..b0.batch_size).step_by(chunk).map(|r0| (j, r0, (r0 + chunk).min(b0.batch_size))));
        }
        let one = |&(j, r0, r1): &(usize, usize, usize)| -> Result<(Vec<f64>, Vec<usize>, Vec<usize>)> {
            let parts: Vec<Batch> = evals.iter().map(|m| rows(&m[e].batches()[j], r0, r1)).collect();
            let eb = EnsembleBatch::new(&parts, model.device(), false)?;
            let logits = model.evaluate(&eb.tokens, Some(&eb.select))?;
            let sums = eb.loss(&logits)?.1.to_dtype(DType::F64)?.to_vec1::<f64>()?;
            let counts = eb.host_targets.iter().map(Vec::len).collect();
            Ok((sums, eb.correct(&logits)?, counts))
        };
        let results = par_map(&chunks, shards, one)?;
        let (mut loss, mut correct, mut count) = (vec![0f64; s], vec![0usize; s], vec![0usize; s]);
        for (sums, c, n) in results {
            for i in 0..s {
                (loss[i], correct[i], count[i]) = (loss[i] + sums[i], correct[i] + c[i], count[i] + n[i]);
            }
        }
        let split = format!("eval.{}", first.name);
        for i in 0..s {
            let n = count[i].max(1) as f64;
            out[i].push(MetricRow { step, split: split.clone(), metric: "loss".into(), value: loss[i] / n });
            out[i].push(MetricRow {
                step,
                split: split.clone(),
                metric: "acc".into(),
                value: correct[i] as f64 / n,
            });
        }
    }
    Ok(out)
}

/// `f` of every item, in order; with `threads > 1` the items are split into that many
/// contiguous groups, each mapped on its own thread.
fn par_map<I: Sync, O: Send>(
    items: &[I],
    threads: usize,
    f: impl Fn(&I) -> Result<O> + Sync,
) -> Result<Vec<O>> {
    if threads <= 1 || items.len() <= 1 {
        return items.iter().map(&f).collect();
    }
    let per = items.len().div_ceil(threads);
    let f = &f;
    let groups: Vec<Result<Vec<O>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(per)
            .map(|g| scope.spawn(move || g.iter().map(f).collect::<Result<Vec<O>>>()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
    });
    Ok(groups.into_iter().collect::<Result<Vec<_>>>()?.into_iter().flatten().collect())
}
