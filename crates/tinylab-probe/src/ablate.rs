//! Ablations by weight surgery: zero a head's output, or remove chosen singular components
//! of its OV circuit, and measure the accuracy change. The edited model is a deep copy.

use std::collections::HashMap;

use candle_core::{DType, Tensor};
use tinylab_model::{Model, WeightsKind};

use crate::error::{ProbeError, Result};

/// A copy of `model` whose weights are `edit`ed (name → new tensor); the original is untouched.
pub fn edited(model: &Model, edit: impl FnOnce(&mut HashMap<String, Tensor>) -> Result<()>) -> Result<Model> {
    let mut tensors: HashMap<String, Tensor> =
        model.params().all().into_iter().map(|(n, t)| Ok((n, t.copy()?))).collect::<Result<_>>()?;
    edit(&mut tensors)?;
    let mut copy = model.clone_fresh().map_err(|e| ProbeError::InvalidArgument(e.to_string()))?;
    copy.load_weights(&tensors)?;
    Ok(copy)
}

/// The output matrix of a head: `W_O` (factorized, `[H, d_head, d]`) or `W_OV` (combined).
fn output_name(model: &Model, layer: usize) -> String {
    match model.config().weights {
        WeightsKind::Factorized => format!("blocks.{layer}.attn.W_O"),
        WeightsKind::Combined => format!("blocks.{layer}.attn.W_OV"),
    }
}

fn check_head(model: &Model, layer: usize, head: usize) -> Result<()> {
    let c = model.config();
    if layer >= c.n_layers || head >= c.n_heads {
        return Err(ProbeError::NotFound(format!(
            "head {layer}.{head}: the model has {} layers × {} heads",
            c.n_layers, c.n_heads
        )));
    }
    Ok(())
}

/// Zero-ablation of head `(layer, head)`: its contribution to the residual stream is removed.
pub fn zero_head(model: &Model, layer: usize, head: usize) -> Result<Model> {
    check_head(model, layer, head)?;
    let name = output_name(model, layer);
    edited(model, |w| {
        let t = &w[&name];
        let mask: Vec<f32> = (0..t.dim(0)?).map(|h| if h == head { 0.0 } else { 1.0 }).collect();
        let mask = Tensor::from_vec(mask, (t.dim(0)?, 1, 1), t.device())?.to_dtype(t.dtype())?;
        let z = t.broadcast_mul(&mask)?;
        w.insert(name.clone(), z);
        Ok(())
    })
}

/// Removes the right singular directions `v_i` (rows `[k, d]`, orthonormal) from the output of
/// head `(layer, head)`: `OV ← OV (I − Σ v_i v_iᵀ)`, implemented on the output matrix
/// (`W_O` or `W_OV`) so that factorized and combined models are edited alike.
pub fn remove_output_directions(model: &Model, layer: usize, head: usize, dirs: &Tensor) -> Result<Model> {
    check_head(model, layer, head)?;
    let name = output_name(model, layer);
    edited(model, |w| {
        let t = &w[&name];
        let d = t.dim(2)?;
        let v = dirs.to_dtype(DType::F64)?;
        let proj = (Tensor::eye(d, DType::F64, t.device())? - v.t()?.matmul(&v)?)?; // [d, d]
        let slice = t.get(head)?.to_dtype(DType::F64)?.matmul(&proj)?.to_dtype(t.dtype())?;
        let mut heads: Vec<Tensor> = (0..t.dim(0)?).map(|h| t.get(h)).collect::<candle_core::Result<_>>()?;
        heads[head] = slice;
        w.insert(name.clone(), Tensor::stack(&heads, 0)?);
        Ok(())
    })
}
