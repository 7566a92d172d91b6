//! A small register-tiled matrix product for the fused attention's per-block products
//! (`T × T` by `T × d_head` and the like), with per-row-tile column and depth limits so that
//! causal blocks skip the half that is zero. Plain Rust written so that LLVM keeps a 4 × 16
//! accumulator tile in vector registers.

use crate::ensemble_par::Real;

/// Rows of one register tile.
const MR: usize = 4;
/// Columns of one register tile.
const NR: usize = 16;

/// Row-major matrix view: data and row stride.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a, T> {
    /// Elements, row-major.
    pub data: &'a [T],
    /// Distance between rows.
    pub ld: usize,
}

/// `C[i, j] += Σ_{k ∈ depth(i0, i1)} A[i, k] · B[k, j]` for rows `i < m` and columns
/// `j < cols(i1)`, where `i0..i1` is the row tile holding `i` (at most [`MR`] rows); other
/// columns are left untouched. `cols` and `depth` let a causal product skip the blocks that
/// are zero. Uses AVX2 and FMA when the CPU has them.
pub(crate) fn matmul_acc<T: Real>(
    m: usize,
    a: Mat<'_, T>,
    b: Mat<'_, T>,
    c: &mut [T],
    ldc: usize,
    cols: impl Fn(usize) -> usize,
    depth: impl Fn(usize, usize) -> (usize, usize),
) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports the features the function is compiled for.
        return unsafe { matmul_acc_avx2(m, a, b, c, ldc, cols, depth) };
    }
    matmul_acc_with::<T, false>(m, a, b, c, ldc, cols, depth)
}

/// [`matmul_acc`] compiled for AVX2 + FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn matmul_acc_avx2<T: Real>(
    m: usize,
    a: Mat<'_, T>,
    b: Mat<'_, T>,
    c: &mut [T],
    ldc: usize,
    cols: impl Fn(usize) -> usize,
    depth: impl Fn(usize, usize) -> (usize, usize),
) {
    matmul_acc_with::<T, true>(m, a, b, c, ldc, cols, depth)
}

/// The product, with fused multiply-adds when `FMA`.
#[inline(always)]
fn matmul_acc_with<T: Real, const FMA: bool>(
    m: usize,
    a: Mat<'_, T>,
    b: Mat<'_, T>,
    c: &mut [T],
    ldc: usize,
    cols: impl Fn(usize) -> usize,
    depth: impl Fn(usize, usize) -> (usize, usize),
) {
    let mut i0 = 0;
    while i0 < m {
        let rows = if m - i0 >= MR { MR } else { 1 };
        let (n, (k0, k1)) = (cols(i0 + rows), depth(i0, i0 + rows));
        let mut j0 = 0;
        while j0 + NR <= n {
            match rows {
                MR => tile::<T, MR, NR, FMA>(a, b, c, ldc, i0, j0, k0, k1),
                _ => tile::<T, 1, NR, FMA>(a, b, c, ldc, i0, j0, k0, k1),
            }
            j0 += NR;
        }
        // a half-width tile for narrow products (d_head = 8) and the remainder of wider ones
        while j0 + NR / 2 <= n {
            match rows {
                MR => tile::<T, MR, { NR / 2 }, FMA>(a, b, c, ldc, i0, j0, k0, k1),
                _ => tile::<T, 1, { NR / 2 }, FMA>(a, b, c, ldc, i0, j0, k0, k1),
            }
            j0 += NR / 2;
        }
        for i in i0..i0 + rows {
            for j in j0..n {
                let mut s = T::ZERO;
                for k in k0..k1 {
                    s += a.data[i * a.ld + k] * b.data[k * b.ld + j];
                }
                c[i * ldc + j] += s;
            }
        }
        i0 += rows;
    }
}

/// One `R × W` tile of `C` at `(i0, j0)` over depth `k0..k1`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn tile<T: Real, const R: usize, const W: usize, const FMA: bool>(
    a: Mat<'_, T>,
    b: Mat<'_, T>,
    c: &mut [T],
    ldc: usize,
    i0: usize,
    j0: usize,
    k0: usize,
    k1: usize,
) {
    let mut acc = [[T::ZERO; W]; R];
    for k in k0..k1 {
        let br: &[T; W] = b.data[k * b.ld + j0..k * b.ld + j0 + W].try_into().expect("tile width");
        for (r, row) in acc.iter_mut().enumerate() {
            let av = a.data[(i0 + r) * a.ld + k];
            for j in 0..W {
                row[j] = if FMA { av.mul_add(br[j], row[j]) } else { row[j] + av * br[j] };
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        let cr = &mut c[(i0 + r) * ldc + j0..(i0 + r) * ldc + j0 + W];
        for j in 0..W {
            cr[j] += row[j];
        }
    }
}

/// `min(t, i1 rounded up to a whole tile)`: the columns a causal row tile ending at `i1` needs,
/// padded so that no ragged scalar edge remains (the caller masks the extra columns).
pub(crate) fn causal_cols(i1: usize, t: usize) -> usize {
    i1.div_ceil(NR).saturating_mul(NR).min(t)
}

/// `[rows, cols]` → `[cols, rows]`.
#[inline(always)]
pub(crate) fn transpose<T: Real>(x: &[T], rows: usize, cols: usize, out: &mut [T]) {
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = x[r * cols + c];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_naive_product_with_limits() {
        for n in [37usize, 8, 13, 24] {
            check(n);
        }
    }

    fn check(n: usize) {
        let (m, k) = (7usize, 19usize);
        let a: Vec<f64> = (0..m * k).map(|i| ((i * 7) % 13) as f64 - 6.0).collect();
        let b: Vec<f64> = (0..k * n).map(|i| ((i * 5) % 11) as f64 - 5.0).collect();
        let mut c = vec![1.0; m * n];
        let cols = |i1: usize| (i1 * 5).min(n);
        let depth = |i0: usize, _: usize| (i0, k);
        matmul_acc(m, Mat { data: &a, ld: k }, Mat { data: &b, ld: n }, &mut c, n, cols, depth);
        let mut i0 = 0;
        while i0 < m {
            let rows = if m - i0 >= MR { MR } else { 1 };
            for i in i0..i0 + rows {
                for j in 0..cols(i0 + rows) {
                    let s: f64 = (i0..k).map(|kk| a[i * k + kk] * b[kk * n + j]).sum();
                    assert!((c[i * n + j] - 1.0 - s).abs() < 1e-9, "({i}, {j})");
                }
                for j in cols(i0 + rows)..n {
                    assert_eq!(c[i * n + j], 1.0, "({i}, {j}) untouched");
                }
            }
            i0 += rows;
        }
    }
}
