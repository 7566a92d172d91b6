//! The forward and backward pass of one seed-batched training step, optionally data-parallel:
//! every member's batch split by rows into `shards` slices, each slice's forward and backward
//! run on its own OS thread (candle itself single-threaded, `RAYON_NUM_THREADS=1`), the
//! gradients summed. A small model gains little from candle's intra-op threads (each op is
//! too short to split well); whole independent graphs per thread scale like separate
//! processes do.

use candle_core::backprop::GradStore;
use candle_core::{DType, Result, Tensor, Var};
use tinylab_model::EnsembleModel;
use tinylab_tasks::{Batch, IGNORE};

use crate::ensemble_batch::EnsembleBatch;

/// The outcome of [`forward_backward`].
pub struct StepGrads {
    /// `∂(Σ_i mean-CE_i)/∂θ` for every trainable weight.
    pub grads: GradStore,
    /// With `observe`: each member's mean cross-entropy over its labelled positions.
    pub losses: Option<Vec<f64>>,
    /// With `observe`: each member's number of labelled positions predicted right.
    pub correct: Option<Vec<usize>>,
    /// Each member's number of labelled positions.
    pub labelled: Vec<usize>,
}

/// Forward and backward of `model` on one batch per member. `shards = 1`: one graph on the
/// calling thread (candle's own threads as configured). `shards > 1`: the rows of every
/// member's batch split into `shards` contiguous slices (fewer if a slice would hold a member
/// with no labelled position), one graph per slice on its own thread, each slice's loss
/// weighted `−1/N_i` with `N_i` member `i`'s labelled count over the *whole* batch, so the
/// summed gradients equal the one-graph gradient up to float rounding (summation order).
/// With `observe` the losses and correct counts are read back to the host (logging steps
/// only: a host read waits for the whole step).
///
/// `params`: the trainable weights whose gradients are summed across slices.
pub fn forward_backward(
    model: &EnsembleModel,
    batches: &[Batch],
    params: &[(String, Var)],
    shards: usize,
    observe: bool,
) -> Result<StepGrads> {
    let labelled: Vec<usize> =
        batches.iter().map(|b| b.targets.iter().filter(|&&y| y != IGNORE).count()).collect();
    // one slice: its forward, backward, per-member loss `[S]` and (observed) correct counts
    let run = |(r0, r1): (usize, usize)| -> Result<(GradStore, Tensor, Option<Vec<usize>>)> {
        let whole = r0 == 0 && r1 == batches[0].batch_size;
        let sliced: Vec<Batch>;
        let parts = if whole {
            batches
        } else {
            sliced = batches.iter().map(|b| rows(b, r0, r1)).collect();
            &sliced
        };
        let eb = EnsembleBatch::with_denominators(parts, model.device(), &labelled)?;
        let logits = model.forward(&eb.tokens, Some(&eb.select))?;
        let (loss, per_member) = eb.loss(&logits)?;
        let correct = if observe { Some(eb.correct(&logits)?) } else { None };
        Ok((loss.backward()?, per_member, correct))
    };
    let slices = row_slices(batches, shards);
    let results: Vec<Result<_>> = if slices.len() == 1 {
        vec![run(slices[0])]
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = slices[1..].iter().map(|&s| scope.spawn(move || run(s))).collect();
            let first = run(slices[0]);
            std::iter::once(first)
                .chain(handles.into_iter().map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))))
                .collect()
        })
    };
    let mut results = results.into_iter().collect::<Result<Vec<_>>>()?.into_iter();
    let (mut grads, mut per_member, mut correct) = results.next().expect("at least one slice");
    for (g, l, c) in results {
        for (_, var) in params {
            let t = var.as_tensor();
            if let Some(add) = g.get(t) {
                let sum = match grads.get(t) {
                    Some(acc) => (acc + add)?,
                    None => add.clone(),
                };
                grads.insert(t, sum);
            }
        }
        per_member = (per_member + l)?;
        if let (Some(acc), Some(c)) = (correct.as_mut(), c) {
            acc.iter_mut().zip(c).for_each(|(a, b)| *a += b);
        }
    }
    let losses = if observe { Some(per_member.to_dtype(DType::F64)?.to_vec1::<f64>()?) } else { None };
    Ok(StepGrads { grads, losses, correct, labelled })
}

/// Row ranges `[r0, r1)` splitting the batches (all of one size) into `shards` near-equal
/// slices; a single range if `shards ≤ 1`, the batch has fewer rows than shards, or some slice
/// would hold no labelled position of some member.
fn row_slices(batches: &[Batch], shards: usize) -> Vec<(usize, usize)> {
    let rows = batches.first().map_or(0, |b| b.batch_size);
    let whole = vec![(0, rows)];
    if shards <= 1 || rows < shards {
        return whole;
    }
    let slices: Vec<(usize, usize)> =
        (0..shards).map(|k| (k * rows / shards, (k + 1) * rows / shards)).collect();
    let every_slice_labelled = batches.iter().all(|b| {
        let t = b.seq_len;
        slices.iter().all(|&(r0, r1)| b.targets[r0 * t..r1 * t].iter().any(|&y| y != IGNORE))
    });
    if every_slice_labelled {
        slices
    } else {
        whole
    }
}

/// Rows `r0..r1` of a token batch.
pub(crate) fn rows(batch: &Batch, r0: usize, r1: usize) -> Batch {
    let t = batch.seq_len;
    let mut out = Batch::empty(r1 - r0, t);
    out.inputs.copy_from_slice(&batch.inputs[r0 * t..r1 * t]);
    out.targets.copy_from_slice(&batch.targets[r0 * t..r1 * t]);
    out
}

/// Largest absolute elementwise difference of two tensors (test helper).
#[cfg(test)]
pub(crate) fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b)
        .and_then(|d| d.abs())
        .and_then(|d| d.to_dtype(DType::F64))
        .and_then(|d| d.max_all())
        .and_then(|d| d.to_scalar::<f64>())
        .unwrap_or(f64::INFINITY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use tinylab_model::{ModelConfig, PositionalKind};

    /// One batch per member: random tokens, labels at every third position of member 0 and
    /// every second of member 1 (different counts, so the per-member denominators matter).
    fn batches(b: usize, t: usize, v: u32) -> Vec<Batch> {
        (0..2u32)
            .map(|m| {
                let mut batch = Batch::empty(b, t);
                for (i, (x, y)) in batch.inputs.iter_mut().zip(batch.targets.iter_mut()).enumerate() {
                    *x = (i as u32 * 7 + m * 3 + 1) % v;
                    if i % (3 - m as usize) == 0 {
                        *y = ((i as u32 * 5 + m) % v) as i32;
                    }
                }
                batch
            })
            .collect()
    }

    #[test]
    fn slices_on_threads_give_the_one_graph_gradient_and_losses() {
        let cfg = ModelConfig {
            d_model: 16,
            n_layers: 2,
            n_heads: 2,
            vocab_size: 11,
            max_seq_len: 9,
            positional: PositionalKind::Learned,
            mlp: true,
            ..Default::default()
        };
        let model = EnsembleModel::new(&cfg, &[3, 4], &Device::Cpu, DType::F64).unwrap();
        let params = model.params().trainable();
        let data = batches(7, 9, 11);
        let one = forward_backward(&model, &data, &params, 1, true).unwrap();
        for shards in [2, 3] {
            let many = forward_backward(&model, &data, &params, shards, true).unwrap();
            for (a, b) in one.losses.as_ref().unwrap().iter().zip(many.losses.as_ref().unwrap()) {
                assert!((a - b).abs() < 1e-12, "{shards} slices: loss {a} vs {b}");
            }
            assert_eq!(one.correct, many.correct);
            assert_eq!(one.labelled, many.labelled);
            for (name, var) in &params {
                let (a, b) =
                    (one.grads.get(var.as_tensor()).unwrap(), many.grads.get(var.as_tensor()).unwrap());
                let scale = a.abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap().max(1e-6);
                let d = max_abs_diff(a, b);
                assert!(d <= 1e-12 * scale.max(1.0), "{shards} slices: gradient of {name} differs by {d}");
            }
        }
    }

    #[test]
    fn slices_fall_back_to_one_when_some_slice_has_no_label() {
        let mut data = batches(4, 9, 11);
        assert_eq!(row_slices(&data, 2), vec![(0, 2), (2, 4)]);
        assert_eq!(row_slices(&data, 8), vec![(0, 4)], "fewer rows than slices");
        data[1].targets[2 * 9..].iter_mut().for_each(|y| *y = IGNORE);
        assert_eq!(row_slices(&data, 2), vec![(0, 4)]);
    }
}
