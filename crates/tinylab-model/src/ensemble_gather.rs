//! Row gathers of the ensemble as single ops with scatter-add backward, so that neither the
//! member offsets nor reshapes of the largest tensors enter candle's graph: the token
//! embedding (member `i` reads its own table) and the selection of labelled positions.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

use crate::ensemble_par::{par_chunks, storage, tensor, view, with_host, Real};

/// Member `i`'s rows `table[i, ids[i, r]]`.
///
/// # Shapes
/// `table`: `[S, V, d]`; `ids`: `S·n` (member-major, each `< V`) → `[S, n, d]`.
pub(crate) fn gather_rows(table: &Tensor, ids: Vec<u32>) -> Result<Tensor> {
    let (s, v, _) = table.dims3()?;
    if s == 0 || !ids.len().is_multiple_of(s) || ids.iter().any(|&i| i as usize >= v) {
        candle_core::bail!("gather_rows: {} ids for {s} members of {v} rows (ids must be < {v})", ids.len());
    }
    table.contiguous()?.apply_op1(Gather { ids })
}

struct Gather {
    ids: Vec<u32>,
}

impl Gather {
    fn fwd<T: Real>(&self, x: &[T], s: usize, v: usize, d: usize) -> Vec<T> {
        let n = self.ids.len() / s;
        let mut out = vec![T::ZERO; self.ids.len() * d];
        par_chunks(&mut out, d, |r, o| {
            let row = (r / n) * v + self.ids[r] as usize;
            o.copy_from_slice(&x[row * d..(row + 1) * d]);
        });
        out
    }

    /// Scatter-add of the output gradient into `[S, V, d]`; one task per member.
    fn bwd<T: Real>(&self, g: &[T], s: usize, v: usize, d: usize) -> Vec<T> {
        let n = self.ids.len() / s;
        let mut out = vec![T::ZERO; s * v * d];
        par_chunks(&mut out, v * d, |m, om| {
            for r in 0..n {
                let (i, gr) = (self.ids[m * n + r] as usize, &g[(m * n + r) * d..(m * n + r + 1) * d]);
                om[i * d..(i + 1) * d].iter_mut().zip(gr).for_each(|(o, &g)| *o += g);
            }
        });
        out
    }
}

impl CustomOp1 for Gather {
    fn name(&self) -> &'static str {
        "ensemble-gather-rows"
    }

    fn cpu_fwd(&self, x: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (s, v, d) = l.shape().dims3()?;
        let out = match x {
            CpuStorage::F64(_) => storage(self.fwd::<f64>(view(x, l, "gather")?, s, v, d)),
            _ => storage(self.fwd::<f32>(view(x, l, "gather")?, s, v, d)),
        };
        Ok((out, Shape::from((s, self.ids.len() / s, d))))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        let (s, v, d) = x.dims3()?;
        let grad = match x.dtype() {
            candle_core::DType::F64 => {
                with_host::<f64, _>(g, "gather", |gs| tensor(self.bwd(gs, s, v, d), x.dims()))?
            }
            _ => with_host::<f32, _>(g, "gather", |gs| tensor(self.bwd(gs, s, v, d), x.dims()))?,
        };
        Ok(Some(grad))
    }
}
