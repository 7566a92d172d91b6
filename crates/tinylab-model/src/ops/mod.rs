//! Differentiable building blocks with correct gradients on candle 0.11.1 CPU (every one is
//! covered by a finite-difference check in `crate::gradcheck`).

mod causal_softmax;
mod gelu;
mod shift;

pub use causal_softmax::causal_softmax;
pub use gelu::gelu;
pub use shift::{causal_conv, shift_right};

use candle_core::{Layout, Result, Tensor, D};

/// The elements of a contiguous CPU buffer that `layout` covers (custom ops need contiguous
/// inputs; `op` names the op in the error).
pub(crate) fn contiguous_slice<'a, T>(v: &'a [T], layout: &Layout, op: &str) -> Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => candle_core::bail!("{op} needs a contiguous input"),
    }
}

/// Repeats a parameter row over the leading dims of `like` by a matmul with a ones column,
/// so that the gradient of the parameter is a gemm instead of candle's scalar broadcast-reduce.
///
/// # Shapes
/// `p`: `[d]`; `like`: `[…, d]`; result: the shape of `like`.
pub fn expand_like(p: &Tensor, like: &Tensor) -> Result<Tensor> {
    let d = p.dim(0)?;
    let n = like.elem_count() / d;
    let ones = Tensor::ones((n, 1), p.dtype(), p.device())?;
    ones.matmul(&p.reshape((1, d))?)?.reshape(like.shape())
}

/// LayerNorm over the last dim with gain `w` and bias `b` (`[d]`), ε = 1e-5.
pub fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    let d = x.dim(D::Minus1)? as f64;
    let mean = (x.sum_keepdim(D::Minus1)? / d)?;
    let xc = x.broadcast_sub(&mean)?;
    let var = (xc.sqr()?.sum_keepdim(D::Minus1)? / d)?;
    let xn = xc.broadcast_div(&(var + 1e-5)?.sqrt()?)?;
    xn.mul(&expand_like(w, &xn)?)?.add(&expand_like(b, &xn)?)
}

/// RMSNorm over the last dim with gain `w` (`[d]`), ε = 1e-5.
pub fn rms_norm(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let d = x.dim(D::Minus1)? as f64;
    let ms = (x.sqr()?.sum_keepdim(D::Minus1)? / d)?;
    let xn = x.broadcast_div(&(ms + 1e-5)?.sqrt()?)?;
    xn.mul(&expand_like(w, &xn)?)
}

/// `x / ‖x‖₂` over the last dim (ε = 1e-6 inside the root).
pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let n = (x.sqr()?.sum_keepdim(D::Minus1)? + 1e-6)?.sqrt()?;
    x.broadcast_div(&n)
}
