//! Global gradient-norm clipping, as `torch.nn.utils.clip_grad_norm_`.

use std::collections::HashSet;

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, DType, Storage, Tensor, Var};

/// The gradients of `params` found in `grads`, each parameter once.
fn param_grads<'a>(
    grads: &'a GradStore,
    params: &'a [(String, Var)],
) -> impl Iterator<Item = (&'a Var, &'a Tensor)> + 'a {
    let mut seen = HashSet::new();
    params.iter().filter_map(move |(_, v)| grads.get(v).filter(|_| seen.insert(v.id())).map(|g| (v, g)))
}

/// $\sum_i x_i^2$ in f64, with independent accumulators so that it vectorizes.
fn sum_sq(xs: &[f32]) -> f64 {
    let mut acc = [0f64; 8];
    let chunks = xs.chunks_exact(8);
    let tail: f64 = chunks.remainder().iter().map(|&x| x as f64 * x as f64).sum();
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += x as f64 * x as f64;
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// The global L2 norm $\lVert g \rVert = \sqrt{\sum_p \sum_i g_{p,i}^2}$ over the
/// gradients of `params` present in `grads` (parameters without one are ignored).
///
/// Contiguous f32 CPU gradients are summed directly from their storage in f64; any other
/// gradient is reduced with tensor ops into one scalar that is read back once.
pub fn grad_norm(grads: &GradStore, params: &[(String, Var)]) -> candle_core::Result<f64> {
    let mut host = 0.0;
    let mut other: Option<Tensor> = None;
    for (_, g) in param_grads(grads, params) {
        let direct = {
            let (storage, layout) = g.storage_and_layout();
            match (&*storage, layout.contiguous_offsets()) {
                (Storage::Cpu(CpuStorage::F32(v)), Some((a, b))) => Some(sum_sq(&v[a..b])),
                _ => None,
            }
        };
        match direct {
            Some(s) => host += s,
            None => {
                let s = g.to_dtype(DType::F64)?.sqr()?.sum_all()?;
                other = Some(match other {
                    Some(acc) => (acc + s)?,
                    None => s,
                });
            }
        }
    }
    if let Some(t) = other {
        host += t.to_scalar::<f64>()?;
    }
    Ok(host.sqrt())
}

/// Clips the gradients of `params` to a global L2 norm of at most `max_norm` and returns
/// the norm before clipping.
///
/// As in PyTorch, when $\lVert g \rVert > $ `max_norm` every gradient is multiplied by
/// $c = \text{max\_norm} / (\lVert g \rVert + 10^{-6})$ (the scaled tensors replace the
/// originals in `grads`), so the clipped norm equals `max_norm` up to that $10^{-6}$.
/// Unlike PyTorch, a non-finite norm leaves the gradients untouched: the caller sees it in
/// the returned value and can skip the step. `max_norm` must be positive.
pub fn clip_grad_norm(
    grads: &mut GradStore,
    params: &[(String, Var)],
    max_norm: f64,
) -> candle_core::Result<f64> {
    if max_norm.is_nan() || max_norm <= 0.0 {
        candle_core::bail!("max_norm must be positive, got {max_norm}");
    }
    let norm = grad_norm(grads, params)?;
    let coef = max_norm / (norm + 1e-6);
    if norm.is_finite() && coef < 1.0 {
        let scaled = param_grads(grads, params)
            .map(|(v, g)| Ok((v.clone(), g.affine(coef, 0.0)?)))
            .collect::<candle_core::Result<Vec<_>>>()?;
        for (v, g) in scaled {
            grads.insert(&v, g);
        }
    }
    Ok(norm)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{grads, var};
    use super::*;
    use candle_core::Device;

    fn named(vars: &[&Var]) -> Vec<(String, Var)> {
        vars.iter().enumerate().map(|(i, v)| (format!("p{i}"), (*v).clone())).collect()
    }

    #[test]
    fn norm_over_params_only() {
        let (a, b, c) = (var(&[0.0; 2], &[2]), var(&[0.0; 1], &[1]), var(&[0.0; 1], &[1]));
        let mut store = grads(&[(&a, &[3.0, 4.0]), (&b, &[12.0])]);
        let other = Tensor::new(&[100f32], &Device::Cpu).unwrap();
        store.insert(&other, other.clone()); // not a parameter: ignored
                                             // `c` has no gradient; `a` listed twice counts once.
        let params = named(&[&a, &b, &c, &a]);
        assert!((grad_norm(&store, &params).unwrap() - 13.0).abs() < 1e-12);
        // Non-contiguous and f64 gradients take the tensor-op path.
        let t = Var::from_slice(&[0f64; 4], (2, 2), &Device::Cpu).unwrap();
        let g = Tensor::new(&[[1f32, 2.], [2., 4.]], &Device::Cpu).unwrap().t().unwrap();
        store.insert(&t, g.to_dtype(DType::F64).unwrap());
        let d = var(&[0.0; 4], &[2, 2]);
        store.insert(&d, Tensor::new(&[[0f32, 1.], [0., 0.]], &Device::Cpu).unwrap().t().unwrap());
        let n = grad_norm(&store, &named(&[&a, &b, &t, &d])).unwrap();
        assert!((n - 195f64.sqrt()).abs() < 1e-12, "{n}");
    }

    #[test]
    fn clipping_scales_to_max_norm() {
        let (a, b) = (var(&[0.0; 2], &[2]), var(&[0.0; 1], &[1]));
        let mut store = grads(&[(&a, &[3.0, 4.0]), (&b, &[12.0])]);
        let params = named(&[&a, &b]);
        let pre = clip_grad_norm(&mut store, &params, 6.5).unwrap();
        assert!((pre - 13.0).abs() < 1e-12);
        let post = grad_norm(&store, &params).unwrap();
        assert!((post - 6.5).abs() < 1e-5, "{post}");
        let ga: Vec<f32> = store.get(&a).unwrap().to_vec1().unwrap();
        assert!((ga[0] - 1.5).abs() < 1e-5 && (ga[1] - 2.0).abs() < 1e-5, "{ga:?}");
        // Under the limit: untouched (same tensor).
        let before = store.get(&a).unwrap().id();
        assert!((clip_grad_norm(&mut store, &params, 100.0).unwrap() - post).abs() < 1e-12);
        assert_eq!(store.get(&a).unwrap().id(), before);
        assert!(clip_grad_norm(&mut store, &params, 0.0).is_err());
    }

    #[test]
    fn non_finite_norm_leaves_grads() {
        let a = var(&[0.0; 2], &[2]);
        let mut store = grads(&[(&a, &[f32::INFINITY, 1.0])]);
        let n = clip_grad_norm(&mut store, &named(&[&a]), 1.0).unwrap();
        assert!(n.is_infinite());
        assert_eq!(store.get(&a).unwrap().to_vec1::<f32>().unwrap()[1], 1.0);
    }
}
