//! The logit lens: each layer's residual stream read through the final norm and the
//! unembedding, scored at the labelled positions.

use tinylab_model::{ForwardOptions, HookPoint, HookSet, Model};

use crate::error::Result;
use crate::samples::{argmax_accuracy, Samples};

/// Accuracy at labelled positions when decoding the residual stream after the embedding
/// (index 0) and after each block (index `l + 1`).
pub fn logit_lens_accuracy(model: &Model, samples: &Samples) -> Result<Vec<f64>> {
    let layers = model.config().n_layers;
    let points: Vec<HookPoint> =
        std::iter::once(HookPoint::Embed).chain((0..layers).map(HookPoint::ResidPost)).collect();
    let hooks = HookSet::of(points.iter().copied());
    let out = model.forward(&samples.tokens, ForwardOptions { select: None, hooks: Some(&hooks) })?;
    let mut accs = Vec::new();
    for p in points {
        let resid = out.cache.get(p).expect("recorded");
        let (b, t, d) = resid.dims3()?;
        let rows = resid.reshape((b * t, d))?.index_select(&samples.select, 0)?;
        let logits = model.unembed_residual(&rows)?;
        accs.push(argmax_accuracy(&logits, &samples.targets)?);
    }
    Ok(accs)
}
