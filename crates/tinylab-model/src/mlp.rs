//! The position-wise MLP of a block: `act(x W_in + b_in) W_out + b_out`.

use candle_core::{Result, Tensor};

use crate::config::{Activation, ModelConfig};
use crate::init::Init;
use crate::ops::expand_like;
use crate::params::Params;

/// Creates `blocks.{l}.mlp.{W_in [d, d_mlp], b_in, W_out [d_mlp, d], b_out}`.
pub(crate) fn init(
    cfg: &ModelConfig,
    l: usize,
    init: &mut Init,
    out: &mut Vec<(String, Tensor)>,
) -> Result<()> {
    let (d, m) = (cfg.d_model, cfg.mlp_dim());
    let s = cfg.init_scale;
    out.push((format!("blocks.{l}.mlp.W_in"), init.normal(&[d, m], s / (d as f64).sqrt())?));
    out.push((format!("blocks.{l}.mlp.b_in"), init.full(&[m], 0.0)?));
    out.push((format!("blocks.{l}.mlp.W_out"), init.normal(&[m, d], s / (m as f64).sqrt())?));
    out.push((format!("blocks.{l}.mlp.b_out"), init.full(&[d], 0.0)?));
    Ok(())
}

/// # Shapes
/// `x`: `[B, T, d]` → `[B, T, d]`.
pub(crate) fn forward(cfg: &ModelConfig, p: &Params, l: usize, x: &Tensor) -> Result<Tensor> {
    let (b, t, d) = x.dims3()?;
    let x2 = x.reshape((b * t, d))?;
    let h = x2.matmul(p.get(&format!("blocks.{l}.mlp.W_in")))?; // [B·T, d_mlp]
    let h = h.add(&expand_like(p.get(&format!("blocks.{l}.mlp.b_in")), &h)?)?;
    let h = match cfg.activation {
        Activation::Gelu => crate::ops::gelu(&h)?,
        Activation::Relu => h.relu()?,
    };
    let y = h.matmul(p.get(&format!("blocks.{l}.mlp.W_out")))?; // [B·T, d]
    let y = y.add(&expand_like(p.get(&format!("blocks.{l}.mlp.b_out")), &y)?)?;
    y.reshape((b, t, d))
}
