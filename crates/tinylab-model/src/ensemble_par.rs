//! Shared plumbing of the ensemble's fused CPU ops: a float trait for f32/f64 kernels, host
//! views of tensors, and a parallel loop over disjoint output chunks on candle's own thread
//! pool (so `RAYON_NUM_THREADS` governs it like every other candle op).

use std::ops::{Add, AddAssign, Div, Mul, MulAssign, Sub};

use candle_core::{CpuStorage, Layout, Result, Storage, Tensor};

/// The float types the fused ops support (f32 for training, f64 for gradient tests).
pub(crate) trait Real:
    Copy
    + Send
    + Sync
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + AddAssign
    + MulAssign
    + candle_core::WithDType
{
    /// 0.
    const ZERO: Self;
    /// −∞.
    const NEG_INF: Self;
    /// Rounds an f64 to this type.
    fn of(x: f64) -> Self;
    /// Square root.
    fn sqrt(self) -> Self;
    /// `e^x`.
    fn exp(self) -> Self;
    /// `e^x` for `x ≤ 0` as softmax needs it, in plain arithmetic that vectorizes (f32: a
    /// degree-6 polynomial after range reduction, relative error ≤ 3e-7, 2 ulp; f64: `exp`).
    fn exp_neg(self) -> Self;
    /// Natural logarithm.
    fn ln(self) -> Self;
    /// `self · a + b` with one rounding (an FMA instruction where the target has one).
    fn mul_add(self, a: Self, b: Self) -> Self;
    /// The host slice of a CPU storage of this type.
    fn slice(s: &CpuStorage) -> Option<&[Self]>;
}

macro_rules! real {
    ($t:ty, $v:ident, $exp_neg:path) => {
        impl Real for $t {
            const ZERO: Self = 0.0;
            const NEG_INF: Self = <$t>::NEG_INFINITY;
            fn of(x: f64) -> Self {
                x as $t
            }
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            #[inline(always)]
            fn exp_neg(self) -> Self {
                $exp_neg(self)
            }
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            #[inline(always)]
            fn mul_add(self, a: Self, b: Self) -> Self {
                <$t>::mul_add(self, a, b)
            }
            fn slice(s: &CpuStorage) -> Option<&[Self]> {
                match s {
                    CpuStorage::$v(v) => Some(v),
                    _ => None,
                }
            }
        }
    };
}
real!(f32, F32, exp_neg_f32);
real!(f64, F64, f64::exp);

/// `e^x` for `x ≤ 0` (values below −87 give 0): `e^x = 2^n · e^r`, `r = x − n·ln 2 ∈
/// [−ln2/2, ln2/2]`, `e^r` by its Taylor polynomial to degree 6 (Horner), `2^n` by the
/// exponent bits.
#[inline(always)]
pub(crate) fn exp_neg_f32(x: f32) -> f32 {
    // round to nearest by adding and removing 1.5·2^23 (plain SSE2 arithmetic, unlike `round`)
    const MAGIC: f32 = 12_582_912.0;
    let x = x.max(-87.0);
    let n = (x * std::f32::consts::LOG2_E + MAGIC) - MAGIC;
    let r = x - n * 0.693_145_75; // ln 2 split in a high part (exact product) …
    let r = r - n * 1.428_606_8e-6; // … and a low part
    let p = 1.0 / 720.0;
    let p = p * r + 1.0 / 120.0;
    let p = p * r + 1.0 / 24.0;
    let p = p * r + 1.0 / 6.0;
    let p = p * r + 0.5;
    let p = p * r + 1.0;
    let p = p * r + 1.0;
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// Whether the CPU has AVX2 and FMA (checked once, then cached by std).
#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx2_fma() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
}

/// Defines a kernel `fn name<T: Real>(…) -> …` whose body runs compiled for AVX2 + FMA when
/// the CPU has them (closures in the body, e.g. the per-row work handed to [`par_chunks`],
/// inherit the features), else compiled for the baseline target.
macro_rules! simd_fn {
    ($(#[$m:meta])* $vis:vis fn $name:ident<$t:ident>($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty $body:block) => {
        $(#[$m])*
        $vis fn $name<$t: $crate::ensemble_par::Real>($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                $(#[$m])*
                #[target_feature(enable = "avx2,fma")]
                unsafe fn fast<$t: $crate::ensemble_par::Real>($($arg: $ty),*) -> $ret $body
                if $crate::ensemble_par::has_avx2_fma() {
                    // SAFETY: the CPU has the features `fast` is compiled for.
                    return unsafe { fast::<$t>($($arg),*) };
                }
            }
            $body
        }
    };
}
pub(crate) use simd_fn;

/// The contiguous elements of `storage` that `layout` covers, as `T`.
pub(crate) fn view<'a, T: Real>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Result<&'a [T]> {
    let Some(v) = T::slice(storage) else { candle_core::bail!("{op}: unsupported dtype") };
    match layout.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => candle_core::bail!("{op} needs contiguous inputs"),
    }
}

/// Calls `f` with the contiguous host data of `t` (contiguous CPU f32/f64 tensor).
pub(crate) fn with_host<T: Real, R>(t: &Tensor, op: &str, f: impl FnOnce(&[T]) -> Result<R>) -> Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else { candle_core::bail!("{op} runs on the CPU only") };
    f(view(cpu, layout, op)?)
}

/// A raw pointer that may cross threads: the loops below hand each task a disjoint range.
struct SharedMut<T>(*mut T);
unsafe impl<T: Send> Send for SharedMut<T> {}
unsafe impl<T: Send> Sync for SharedMut<T> {}

impl<T> SharedMut<T> {
    fn ptr(&self) -> *mut T {
        self.0
    }
}

/// Runs `f(i, &mut out[i·len..(i+1)·len])` for every chunk `i`, in parallel on candle's pool.
pub(crate) fn par_chunks<T: Send>(out: &mut [T], len: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    let n = out.len().checked_div(len).unwrap_or(0);
    let base = SharedMut(out.as_mut_ptr());
    candle_core::utils::barrier_pool().execute_chunked(n, |range| {
        for i in range {
            // SAFETY: chunk i is out[i·len..(i+1)·len], disjoint from every other chunk, and
            // `out` outlives the call (execute_chunked returns after every task finished).
            let chunk = unsafe { std::slice::from_raw_parts_mut(base.ptr().add(i * len), len) };
            f(i, chunk);
        }
    });
}

/// Like [`par_chunks`] over two outputs chunked in step (`a` by `la`, `b` by `lb`).
pub(crate) fn par_chunks2<T: Send, U: Send>(
    a: &mut [T],
    la: usize,
    b: &mut [U],
    lb: usize,
    f: impl Fn(usize, &mut [T], &mut [U]) + Sync,
) {
    let n = a.len().checked_div(la).unwrap_or(0);
    assert_eq!(b.len(), n * lb, "par_chunks2: outputs of different chunk counts");
    let (pa, pb) = (SharedMut(a.as_mut_ptr()), SharedMut(b.as_mut_ptr()));
    candle_core::utils::barrier_pool().execute_chunked(n, |range| {
        for i in range {
            // SAFETY: as in `par_chunks`, chunk i of each output is disjoint from the others.
            let (ca, cb) = unsafe {
                (
                    std::slice::from_raw_parts_mut(pa.ptr().add(i * la), la),
                    std::slice::from_raw_parts_mut(pb.ptr().add(i * lb), lb),
                )
            };
            f(i, ca, cb);
        }
    });
}

/// Like [`par_chunks`] over three outputs chunked in step (by `la`, `lb`, `lc`).
pub(crate) fn par_chunks3<T: Send>(
    a: &mut [T],
    la: usize,
    b: &mut [T],
    lb: usize,
    c: &mut [T],
    lc: usize,
    f: impl Fn(usize, &mut [T], &mut [T], &mut [T]) + Sync,
) {
    let n = a.len().checked_div(la).unwrap_or(0);
    assert!(b.len() == n * lb && c.len() == n * lc, "par_chunks3: outputs of different chunk counts");
    let (pa, pb, pc) = (SharedMut(a.as_mut_ptr()), SharedMut(b.as_mut_ptr()), SharedMut(c.as_mut_ptr()));
    candle_core::utils::barrier_pool().execute_chunked(n, |range| {
        for i in range {
            // SAFETY: as in `par_chunks`, chunk i of each output is disjoint from the others.
            let (ca, cb, cc) = unsafe {
                (
                    std::slice::from_raw_parts_mut(pa.ptr().add(i * la), la),
                    std::slice::from_raw_parts_mut(pb.ptr().add(i * lb), lb),
                    std::slice::from_raw_parts_mut(pc.ptr().add(i * lc), lc),
                )
            };
            f(i, ca, cb, cc);
        }
    });
}

/// A host buffer as a CPU storage of its type.
pub(crate) fn storage<T: Real>(v: Vec<T>) -> CpuStorage {
    T::to_cpu_storage_owned(v)
}

/// A host buffer as a tensor of `shape` on the CPU.
pub(crate) fn tensor<T: Real>(v: Vec<T>, shape: &[usize]) -> Result<Tensor> {
    Tensor::from_vec(v, shape, &candle_core::Device::Cpu)
}

/// `Σ x` with eight accumulators (so that it vectorizes).
#[inline(always)]
pub(crate) fn sum<T: Real>(x: &[T]) -> T {
    let mut acc = [T::ZERO; 8];
    let chunks = x.chunks_exact(8);
    let tail = chunks.remainder().iter().fold(T::ZERO, |a, &v| a + v);
    for c in chunks {
        for k in 0..8 {
            acc[k] += c[k];
        }
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// `Σ a_i b_i` with eight accumulators (so that it vectorizes).
#[inline(always)]
pub(crate) fn dot<T: Real>(a: &[T], b: &[T]) -> T {
    let mut acc = [T::ZERO; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let mut tail = T::ZERO;
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        tail += *x * *y;
    }
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

#[cfg(test)]
mod tests {
    #[test]
    fn exp_neg_f32_is_accurate_on_the_softmax_range() {
        let mut worst = 0f64;
        for i in 0..=200_000 {
            let x = -87.0 * i as f64 / 200_000.0;
            let got = super::exp_neg_f32(x as f32) as f64;
            let want = (x as f32 as f64).exp();
            worst = worst.max((got - want).abs() / want);
        }
        assert!(worst < 3e-7, "worst relative error {worst:e}");
        assert_eq!(super::exp_neg_f32(0.0), 1.0);
        assert_eq!(super::exp_neg_f32(-200.0), super::exp_neg_f32(-87.0));
    }
}
