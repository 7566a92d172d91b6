//! Causal attention of every member, sequence and head as one op with a hand-written backward:
//! `z_i = Σ_{j≤i} P_ij v_j` with `P = causal_softmax(scale · q kᵀ)` (or, for linear attention,
//! `P_ij = scale · q_i·k_j` for `j ≤ i`, `j < i` without `attend_self`). Only the causal half
//! of `q kᵀ` is computed, and neither the scores nor the pattern enter candle's graph (the
//! pattern is kept by the op for its backward when gradients are wanted).

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

use crate::ensemble_par::simd_fn;
use crate::ensemble_par::{par_chunks2, par_chunks3, storage, sum, tensor, view, with_host, Real};
use crate::ensemble_tile::{causal_cols, matmul_acc, transpose, Mat};

/// What the attention computes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AttnSpec {
    /// Sequence length `T` (rows of one sequence in the `B·T` dim).
    pub t: usize,
    /// Heads `H`.
    pub heads: usize,
    /// Factor on `q·k`.
    pub scale: f64,
    /// Softmax (else linear) attention.
    pub softmax: bool,
    /// Whether a position attends to itself (linear attention only).
    pub attend_self: bool,
}

/// Fused causal attention; `train` keeps the pattern for the backward pass.
///
/// # Shapes
/// `q`, `k`: `[S, B·T, H·dh]`; `v`: `[S, B·T, H·dv]` → `[S, B·T, H·dv]`.
pub(crate) fn causal_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    spec: AttnSpec,
    train: bool,
) -> Result<Tensor> {
    let op = Attn { spec, train, pattern: Mutex::new(None) };
    q.contiguous()?.apply_op3(&k.contiguous()?, &v.contiguous()?, op)
}

struct Attn {
    spec: AttnSpec,
    train: bool,
    /// `P` of every block `[S·B·H, T, T]`, block-major (kept for the backward pass).
    pattern: Mutex<Option<CpuStorage>>,
}

/// Block geometry: `(blocks = S·B·H, dh, dv)`.
fn geometry(spec: &AttnSpec, q: &[usize], v: &[usize]) -> Result<(usize, usize, usize)> {
    let ([s, bt, hq], [_, _, hv]) = (q, v) else { candle_core::bail!("ensemble attention: rank-3 inputs") };
    let h = spec.heads;
    if bt % spec.t != 0 || hq % h != 0 || hv % h != 0 {
        candle_core::bail!("ensemble attention: shapes {q:?} {v:?} do not fit T = {} and H = {h}", spec.t);
    }
    Ok((s * bt / spec.t * h, hq / h, hv / h))
}

/// Keys visible to query `i`.
#[inline(always)]
fn visible(spec: &AttnSpec, i: usize) -> usize {
    if spec.attend_self || spec.softmax {
        i + 1
    } else {
        i
    }
}

/// Copies block `blk`'s rows (`T` rows of width `e`) out of a `[S, B·T, H·e]` buffer.
#[inline(always)]
fn gather<T: Real>(x: &[T], blk: usize, h: usize, t: usize, e: usize, out: &mut [T]) {
    let (seq, head) = (blk / h, blk % h);
    for i in 0..t {
        let o = ((seq * t + i) * h + head) * e;
        out[i * e..(i + 1) * e].copy_from_slice(&x[o..o + e]);
    }
}

/// Block-major `[S·B·H, T, e]` → `[S, B·T, H·e]` (a copy only when `H > 1`).
fn unblock<T: Real>(x: Vec<T>, h: usize, t: usize, e: usize) -> Vec<T> {
    if h == 1 {
        return x;
    }
    let mut out = vec![T::ZERO; x.len()];
    for (blk, rows) in x.chunks_exact(t * e).enumerate() {
        let (seq, head) = (blk / h, blk % h);
        for i in 0..t {
            let o = ((seq * t + i) * h + head) * e;
            out[o..o + e].copy_from_slice(&rows[i * e..(i + 1) * e]);
        }
    }
    out
}

/// Softmax (or scaling) of row `i`'s visible scores `row[..n]`; zeros after them.
#[inline(always)]
fn normalize_row<T: Real>(sp: &AttnSpec, row: &mut [T], n: usize) {
    let scale = T::of(sp.scale);
    if sp.softmax {
        let mut max = T::NEG_INF;
        for s in row[..n].iter_mut() {
            *s *= scale;
            if *s > max {
                max = *s;
            }
        }
        row[..n].iter_mut().for_each(|s| *s = (*s - max).exp_neg());
        let inv = T::of(1.0) / sum(&row[..n]);
        row[..n].iter_mut().for_each(|s| *s *= inv);
    } else {
        row[..n].iter_mut().for_each(|s| *s *= scale);
    }
    row[n..].iter_mut().for_each(|s| *s = T::ZERO);
}

simd_fn! {
    /// `(z, pattern)`, both block-major.
    fn fwd<T>(
        sp: &AttnSpec,
        q: &[T],
        k: &[T],
        v: &[T],
        blocks: usize,
        dh: usize,
        dv: usize,
    ) -> (Vec<T>, Vec<T>) {
        let (t, h) = (sp.t, sp.heads);
        let mut z = vec![T::ZERO; blocks * t * dv];
        let mut p = vec![T::ZERO; blocks * t * t];
        par_chunks2(&mut z, t * dv, &mut p, t * t, |blk, zb, pb| {
            let (mut qb, mut kb, mut vb) = (vec![T::ZERO; t * dh], vec![T::ZERO; t * dh], vec![T::ZERO; t * dv]);
            gather(q, blk, h, t, dh, &mut qb);
            gather(k, blk, h, t, dh, &mut kb);
            gather(v, blk, h, t, dv, &mut vb);
            let mut kt = vec![T::ZERO; t * dh];
            transpose(&kb, t, dh, &mut kt);
            let causal = |i1: usize| causal_cols(i1, t);
            matmul_acc(t, Mat { data: &qb, ld: dh }, Mat { data: &kt, ld: t }, pb, t, causal, |_, _| (0, dh));
            for (i, row) in pb.chunks_exact_mut(t).enumerate() {
                normalize_row(sp, row, visible(sp, i));
            }
            matmul_acc(
                t,
                Mat { data: pb, ld: t },
                Mat { data: &vb, ld: dv },
                zb,
                dv,
                |_| dv,
                |_, i1| (0, i1.min(t)),
            );
        });
        (z, p)
    }
}

simd_fn! {
    /// `(dq, dk, dv)`, each in the layout of its input.
    #[allow(clippy::too_many_arguments)]
    fn bwd<T>(
        sp: &AttnSpec,
        q: &[T],
        k: &[T],
        v: &[T],
        p: &[T],
        g: &[T],
        dh: usize,
        dv: usize,
    ) -> (Vec<T>, Vec<T>, Vec<T>) {
        let (t, h) = (sp.t, sp.heads);
        let scale = T::of(sp.scale);
        let (mut dq, mut dk, mut dvv) = (vec![T::ZERO; q.len()], vec![T::ZERO; k.len()], vec![T::ZERO; v.len()]);
        par_chunks3(&mut dq, t * dh, &mut dk, t * dh, &mut dvv, t * dv, |blk, dqb, dkb, dvb| {
            let pb = &p[blk * t * t..(blk + 1) * t * t];
            let (mut qb, mut kb, mut vb, mut gb) =
                (vec![T::ZERO; t * dh], vec![T::ZERO; t * dh], vec![T::ZERO; t * dv], vec![T::ZERO; t * dv]);
            gather(q, blk, h, t, dh, &mut qb);
            gather(k, blk, h, t, dh, &mut kb);
            gather(v, blk, h, t, dv, &mut vb);
            gather(g, blk, h, t, dv, &mut gb);
            let causal = |i1: usize| causal_cols(i1, t);
            let below = |j0: usize, _: usize| (j0, t);
            let (mut pt, mut vt, mut ds) = (vec![T::ZERO; t * t], vec![T::ZERO; t * dv], vec![T::ZERO; t * t]);
            transpose(pb, t, t, &mut pt);
            matmul_acc(t, Mat { data: &pt, ld: t }, Mat { data: &gb, ld: dv }, dvb, dv, |_| dv, below); // dV = Pᵀ dZ
            transpose(&vb, t, dv, &mut vt);
            matmul_acc(t, Mat { data: &gb, ld: dv }, Mat { data: &vt, ld: t }, &mut ds, t, causal, |_, _| {
                (0, dv)
            }); // dP
            for (i, row) in ds.chunks_exact_mut(t).enumerate() {
                let n = visible(sp, i);
                let prow = &pb[i * t..i * t + n];
                if sp.softmax {
                    let dot = prow.iter().zip(&row[..n]).fold(T::ZERO, |a, (&p, &d)| a + p * d);
                    row[..n].iter_mut().zip(prow).for_each(|(d, &p)| *d = scale * p * (*d - dot));
                } else {
                    row[..n].iter_mut().for_each(|d| *d *= scale);
                }
                row[n..].iter_mut().for_each(|d| *d = T::ZERO);
            }
            matmul_acc(
                t,
                Mat { data: &ds, ld: t },
                Mat { data: &kb, ld: dh },
                dqb,
                dh,
                |_| dh,
                |_, i1| (0, i1.min(t)),
            ); // dQ = dS K
            transpose(&ds, t, t, &mut pt);
            matmul_acc(t, Mat { data: &pt, ld: t }, Mat { data: &qb, ld: dh }, dkb, dh, |_| dh, below);
            // dK = dSᵀ Q
        });
        (unblock(dq, h, t, dh), unblock(dk, h, t, dh), unblock(dvv, h, t, dv))
    }
}

impl CustomOp3 for Attn {
    fn name(&self) -> &'static str {
        "ensemble-causal-attention"
    }

    fn cpu_fwd(
        &self,
        q: &CpuStorage,
        lq: &Layout,
        k: &CpuStorage,
        lk: &Layout,
        v: &CpuStorage,
        lv: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        if lq.dims() != lk.dims() || lq.dims()[..2] != lv.dims()[..2] {
            candle_core::bail!("ensemble attention: q {:?}, k {:?}, v {:?}", lq.dims(), lk.dims(), lv.dims());
        }
        let (blocks, dh, dv) = geometry(&self.spec, lq.dims(), lv.dims())?;
        let (h, t) = (self.spec.heads, self.spec.t);
        macro_rules! go {
            ($t:ty) => {{
                let (z, p) = fwd::<$t>(
                    &self.spec,
                    view(q, lq, "attention")?,
                    view(k, lk, "attention")?,
                    view(v, lv, "attention")?,
                    blocks,
                    dh,
                    dv,
                );
                if self.train {
                    *self.pattern.lock().expect("attention pattern lock") = Some(storage(p));
                }
                storage(unblock(z, h, t, dv))
            }};
        }
        let out = match q {
            CpuStorage::F64(_) => go!(f64),
            _ => go!(f32),
        };
        Ok((out, lv.shape().clone()))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let guard = self.pattern.lock().expect("attention pattern lock");
        let Some(p) = guard.as_ref() else {
            candle_core::bail!("ensemble attention: no pattern kept (evaluation mode)")
        };
        let (_, dh, dv) = geometry(&self.spec, q.dims(), v.dims())?;
        macro_rules! go {
            ($t:ty) => {{
                let Some(ps) = <$t as Real>::slice(p) else {
                    candle_core::bail!("ensemble attention: pattern dtype")
                };
                with_host::<$t, _>(q, "attention", |qs| {
                    with_host::<$t, _>(k, "attention", |ks| {
                        with_host::<$t, _>(v, "attention", |vs| {
                            with_host::<$t, _>(g, "attention", |gs| {
                                let (dq, dk, dvv) = bwd(&self.spec, qs, ks, vs, ps, gs, dh, dv);
                                Ok((
                                    Some(tensor(dq, q.dims())?),
                                    Some(tensor(dk, k.dims())?),
                                    Some(tensor(dvv, v.dims())?),
                                ))
                            })
                        })
                    })
                })
            }};
        }
        match q.dtype() {
            candle_core::DType::F64 => go!(f64),
            _ => go!(f32),
        }
    }
}
