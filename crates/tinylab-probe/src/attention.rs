//! Attention patterns and where they point: the mass a query puts on the position right after
//! an earlier occurrence of its own token (the retrieval target of associative recall and of
//! induction heads: key `k` at `j−1`, its value at `j`, query `k` at `q > j`).

use candle_core::Tensor;
use tinylab_model::{ForwardOptions, HookPoint, HookSet, Model};

use crate::error::Result;
use crate::samples::Samples;

/// Attention patterns of every layer, `[B, H, T, T]` each (row = query, column = key).
pub fn patterns(model: &Model, samples: &Samples) -> Result<Vec<Tensor>> {
    let layers = model.config().n_layers;
    let hooks = HookSet::of((0..layers).map(HookPoint::Pattern));
    let out = model.forward(&samples.tokens, ForwardOptions { select: None, hooks: Some(&hooks) })?;
    Ok((0..layers).map(|l| out.cache.get(HookPoint::Pattern(l)).expect("recorded").clone()).collect())
}

/// Mean attention mass, per layer and head, that a labelled query at `q` (token `x_q`) puts on
/// the positions `p = m + offset < q` where `x_m = x_q` is an earlier copy of its token
/// (`offset = 1`: "the position right after its matching key"). Queries without such a
/// position are skipped. Returns `[layer][head]` means and the number of queries averaged.
pub fn mass_after_match(model: &Model, samples: &Samples, offset: usize) -> Result<(Vec<Vec<f64>>, usize)> {
    let pats = patterns(model, samples)?;
    let (t, batch) = (samples.batch.seq_len, &samples.batch);
    let mut per: Vec<Vec<f64>> = Vec::new();
    let mut n = 0usize;
    for pat in &pats {
        let (_, h, _, _) = pat.dims4()?;
        let flat = pat.flatten_all()?.to_dtype(candle_core::DType::F64)?.to_vec1::<f64>()?;
        let mut sums = vec![0.0; h];
        n = 0;
        for &pos in &samples.positions {
            let (b, q) = (pos / t, pos % t);
            let row = batch.input_row(b);
            let matches: Vec<usize> =
                (0..q).filter(|&m| row[m] == row[q] && m + offset < q).map(|m| m + offset).collect();
            if matches.is_empty() {
                continue;
            }
            n += 1;
            for (head, s) in sums.iter_mut().enumerate() {
                let base = ((b * h + head) * t + q) * t;
                *s += matches.iter().map(|&j| flat[base + j]).sum::<f64>();
            }
        }
        per.push(sums.into_iter().map(|s| s / n.max(1) as f64).collect());
    }
    Ok((per, n))
}
