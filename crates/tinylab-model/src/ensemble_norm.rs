//! Fused normalizations of the ensemble with per-member weights and hand-written backward:
//! LayerNorm / RMSNorm over the last dim (`ops::layer_norm` / `ops::rms_norm` per member) and
//! the L2 normalization of queries/keys times a per-member, per-head temperature and a
//! constant scale. One op each instead of ~8 graph nodes on the largest tensors.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

use crate::ensemble_par::simd_fn;
use crate::ensemble_par::{dot, par_chunks, par_chunks2, storage, sum, tensor, view, with_host, Real};

const NORM_EPS: f64 = 1e-5;
const L2_EPS: f64 = 1e-6;

/// LayerNorm (`b` given) or RMSNorm of every row with its member's gain and bias.
///
/// # Shapes
/// `x`: `[S, n, d]`; `w`, `b`: `[S, d]` → `[S, n, d]`.
pub(crate) fn norm(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let (x, w) = (x.contiguous()?, w.contiguous()?);
    match b {
        Some(b) => x.apply_op3(&w, &b.contiguous()?, Norm),
        None => x.apply_op2(&w, Norm),
    }
}

/// `q/‖q‖ · c` per head row with `c = exp(log_temp[member, head]) · scale` (or `c = scale`).
///
/// # Shapes
/// `q`: `[S, B·T, H·dh]`; `log_temp`: `[S, H]` → `[S, B·T, H·dh]`.
pub(crate) fn l2_normalize(
    q: &Tensor,
    heads: usize,
    log_temp: Option<&Tensor>,
    scale: f64,
) -> Result<Tensor> {
    let q = q.contiguous()?;
    match log_temp {
        Some(lt) => q.apply_op2(&lt.contiguous()?, L2 { scale, heads }),
        None => q.apply_op1(L2 { scale, heads }),
    }
}

struct Norm;

/// `Σ (x − m)²` with eight accumulators.
#[inline(always)]
fn centered_sq<T: Real>(x: &[T], m: T) -> T {
    let mut acc = [T::ZERO; 8];
    let chunks = x.chunks_exact(8);
    let tail = chunks.remainder().iter().fold(T::ZERO, |a, &v| a + (v - m) * (v - m));
    for c in chunks {
        for k in 0..8 {
            acc[k] += (c[k] - m) * (c[k] - m);
        }
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// `(mean, denominator)` of one row: LayerNorm centers, RMSNorm does not.
#[inline(always)]
fn row_stats<T: Real>(x: &[T], centered: bool) -> (T, T) {
    let d = T::of(x.len() as f64);
    let mean = if centered { sum(x) / d } else { T::ZERO };
    (mean, (centered_sq(x, mean) / d + T::of(NORM_EPS)).sqrt())
}

simd_fn! {
    fn norm_fwd<T>(x: &[T], w: &[T], b: Option<&[T]>, d: usize) -> Vec<T> {
        let rows_per = x.len() / w.len().max(1);
        let mut y = vec![T::ZERO; x.len()];
        par_chunks(&mut y, d, |r, yr| {
            let m = r / rows_per;
            let xr = &x[r * d..(r + 1) * d];
            let (mean, den) = row_stats(xr, b.is_some());
            let wm = &w[m * d..(m + 1) * d];
            match b {
                Some(b) => {
                    let bm = &b[m * d..(m + 1) * d];
                    for i in 0..d {
                        yr[i] = (xr[i] - mean) / den * wm[i] + bm[i];
                    }
                }
                None => (0..d).for_each(|i| yr[i] = xr[i] / den * wm[i]),
            }
        });
        y
    }
}

simd_fn! {
    /// `(dx, dw, db)` of a LayerNorm (`centered`) or RMSNorm; one task per member.
    fn norm_bwd<T>(x: &[T], w: &[T], g: &[T], d: usize, centered: bool) -> (Vec<T>, Vec<T>, Vec<T>) {
        let s = w.len() / d;
        let per = x.len() / s; // elements of one member
        let mut dx = vec![T::ZERO; x.len()];
        let mut dwb = vec![T::ZERO; 2 * s * d];
        par_chunks2(&mut dx, per, &mut dwb, 2 * d, |m, dxm, dwbm| {
            let (dw, db) = dwbm.split_at_mut(d);
            let wm = &w[m * d..(m + 1) * d];
            let (mut xhat, mut gh) = (vec![T::ZERO; d], vec![T::ZERO; d]);
            let dn = T::of(d as f64);
            for (r, dxr) in dxm.chunks_exact_mut(d).enumerate() {
                let o = m * per + r * d;
                let (xr, gr) = (&x[o..o + d], &g[o..o + d]);
                let (mean, den) = row_stats(xr, centered);
                for i in 0..d {
                    xhat[i] = (xr[i] - mean) / den;
                    dw[i] += gr[i] * xhat[i];
                    db[i] += gr[i];
                    gh[i] = gr[i] * wm[i];
                }
                let (mg, mgx) = (sum(&gh), crate::ensemble_par::dot(&gh, &xhat));
                let (mg, mgx) = (if centered { mg / dn } else { T::ZERO }, mgx / dn);
                for i in 0..d {
                    dxr[i] = (gh[i] - mg - xhat[i] * mgx) / den;
                }
            }
        });
        let db = dwb.chunks_exact(2 * d).flat_map(|c| c[d..].to_vec()).collect();
        let dw = dwb.chunks_exact(2 * d).flat_map(|c| c[..d].to_vec()).collect();
        (dx, dw, db)
    }
}

fn norm_cpu<T: Real>(
    x: &CpuStorage,
    lx: &Layout,
    w: &CpuStorage,
    lw: &Layout,
    b: Option<(&CpuStorage, &Layout)>,
) -> Result<CpuStorage> {
    let d = *lw.dims().last().unwrap_or(&1);
    let b = b.map(|(s, l)| view::<T>(s, l, "ensemble norm")).transpose()?;
    Ok(storage(norm_fwd(view::<T>(x, lx, "ensemble norm")?, view(w, lw, "ensemble norm")?, b, d)))
}

/// Host backward of a norm: gradients for `x`, `w` (and `b`) as tensors.
fn norm_grads(x: &Tensor, w: &Tensor, g: &Tensor, centered: bool) -> Result<(Tensor, Tensor, Tensor)> {
    let d = w.dim(1)?;
    macro_rules! go {
        ($t:ty) => {
            with_host::<$t, _>(x, "ensemble norm", |xs| {
                with_host::<$t, _>(w, "ensemble norm", |ws| {
                    with_host::<$t, _>(g, "ensemble norm", |gs| {
                        let (dx, dw, db) = norm_bwd(xs, ws, gs, d, centered);
                        Ok((tensor(dx, x.dims())?, tensor(dw, w.dims())?, tensor(db, w.dims())?))
                    })
                })
            })
        };
    }
    match x.dtype() {
        candle_core::DType::F64 => go!(f64),
        _ => go!(f32),
    }
}

impl CustomOp2 for Norm {
    fn name(&self) -> &'static str {
        "ensemble-rms-norm"
    }
    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        lx: &Layout,
        w: &CpuStorage,
        lw: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let out = match x {
            CpuStorage::F64(_) => norm_cpu::<f64>(x, lx, w, lw, None)?,
            _ => norm_cpu::<f32>(x, lx, w, lw, None)?,
        };
        Ok((out, lx.shape().clone()))
    }
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, _) = norm_grads(x, w, g, false)?;
        Ok((Some(dx), Some(dw)))
    }
}

impl CustomOp3 for Norm {
    fn name(&self) -> &'static str {
        "ensemble-layer-norm"
    }
    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        lx: &Layout,
        w: &CpuStorage,
        lw: &Layout,
        b: &CpuStorage,
        lb: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let out = match x {
            CpuStorage::F64(_) => norm_cpu::<f64>(x, lx, w, lw, Some((b, lb)))?,
            _ => norm_cpu::<f32>(x, lx, w, lw, Some((b, lb)))?,
        };
        Ok((out, lx.shape().clone()))
    }
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, db) = norm_grads(x, w, g, true)?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

struct L2 {
    scale: f64,
    heads: usize,
}

/// The factor `c` of each `(member, head)` (`lt` = log temperatures `[S·H]`, or none).
fn l2_factors<T: Real>(lt: Option<&[T]>, scale: f64) -> Vec<T> {
    match lt {
        Some(lt) => lt.iter().map(|&v| v.exp() * T::of(scale)).collect(),
        None => vec![T::of(scale)],
    }
}

/// `(S, rows per member, dh)` of a `[S, B·T, H·dh]` shape with `h` heads.
fn l2_sizes(shape: &[usize], h: usize) -> (usize, usize, usize) {
    let (s, bt, hd) = (shape[0], shape[1], shape[2]);
    (s, bt * h, hd / h.max(1))
}

simd_fn! {
    fn l2_fwd<T>(q: &[T], shape: &[usize], h: usize, lt: Option<&[T]>, scale: f64) -> Vec<T> {
        let (_, per, dh) = l2_sizes(shape, h);
        let c = l2_factors(lt, scale);
        let mut out = vec![T::ZERO; q.len()];
        par_chunks(&mut out, dh, |r, o| {
            let qr = &q[r * dh..(r + 1) * dh];
            let n = (dot(qr, qr) + T::of(L2_EPS)).sqrt();
            let c = if lt.is_some() { c[(r / per) * h + r % h] } else { c[0] };
            (0..dh).for_each(|i| o[i] = qr[i] / n * c);
        });
        out
    }
}

simd_fn! {
    /// `(dq, dlog_temp)`; one task per member.
    fn l2_bwd<T>(
        q: &[T],
        g: &[T],
        shape: &[usize],
        h: usize,
        lt: Option<&[T]>,
        scale: f64,
    ) -> (Vec<T>, Vec<T>) {
        let (s, per, dh) = l2_sizes(shape, h);
        let c = l2_factors(lt, scale);
        let mut dq = vec![T::ZERO; q.len()];
        let mut dlt = vec![T::ZERO; s * h];
        par_chunks2(&mut dq, per * dh, &mut dlt, h, |m, dqm, dltm| {
            for (i, dqr) in dqm.chunks_exact_mut(dh).enumerate() {
                let r = m * per + i;
                let (qr, gr) = (&q[r * dh..(r + 1) * dh], &g[r * dh..(r + 1) * dh]);
                let n = (dot(qr, qr) + T::of(L2_EPS)).sqrt();
                let c = if lt.is_some() { c[m * h + i % h] } else { c[0] };
                let gu = dot(qr, gr) / n; // Σ u·g with u = q/n
                dltm[i % h] += c * gu;
                (0..dh).for_each(|k| dqr[k] = c * (gr[k] - qr[k] / n * gu) / n);
            }
        });
        (dq, dlt)
    }
}

fn l2_grads(op: &L2, q: &Tensor, lt: Option<&Tensor>, g: &Tensor) -> Result<(Tensor, Option<Tensor>)> {
    macro_rules! go {
        ($t:ty) => {
            with_host::<$t, _>(q, "ensemble l2", |qs| {
                with_host::<$t, _>(g, "ensemble l2", |gs| {
                    let lts = lt.map(|l| l.flatten_all()?.to_vec1::<$t>()).transpose()?;
                    let (dq, dlt) = l2_bwd(qs, gs, q.dims(), op.heads, lts.as_deref(), op.scale);
                    let dlt = lt.map(|l| tensor(dlt, l.dims())).transpose()?;
                    Ok((tensor(dq, q.dims())?, dlt))
                })
            })
        };
    }
    match q.dtype() {
        candle_core::DType::F64 => go!(f64),
        _ => go!(f32),
    }
}

fn l2_cpu<T: Real>(
    op: &L2,
    q: &CpuStorage,
    lq: &Layout,
    lt: Option<(&CpuStorage, &Layout)>,
) -> Result<CpuStorage> {
    let lt = lt.map(|(s, l)| view::<T>(s, l, "ensemble l2")).transpose()?;
    Ok(storage(l2_fwd(view::<T>(q, lq, "ensemble l2")?, lq.dims(), op.heads, lt, op.scale)))
}

impl CustomOp1 for L2 {
    fn name(&self) -> &'static str {
        "ensemble-l2-normalize"
    }
    fn cpu_fwd(&self, q: &CpuStorage, lq: &Layout) -> Result<(CpuStorage, Shape)> {
        let out = match q {
            CpuStorage::F64(_) => l2_cpu::<f64>(self, q, lq, None)?,
            _ => l2_cpu::<f32>(self, q, lq, None)?,
        };
        Ok((out, lq.shape().clone()))
    }
    fn bwd(&self, q: &Tensor, _res: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(l2_grads(self, q, None, g)?.0))
    }
}

impl CustomOp2 for L2 {
    fn name(&self) -> &'static str {
        "ensemble-l2-normalize-temp"
    }
    fn cpu_fwd(
        &self,
        q: &CpuStorage,
        lq: &Layout,
        lt: &CpuStorage,
        ll: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let out = match q {
            CpuStorage::F64(_) => l2_cpu::<f64>(self, q, lq, Some((lt, ll)))?,
            _ => l2_cpu::<f32>(self, q, lq, Some((lt, ll)))?,
        };
        Ok((out, lq.shape().clone()))
    }
    fn bwd(
        &self,
        q: &Tensor,
        lt: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dq, dlt) = l2_grads(self, q, Some(lt), g)?;
        Ok((Some(dq), dlt))
    }
}
