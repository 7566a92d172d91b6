//! The machine's measured FMA peak (`tinylab bench --peak`): f32 multiply-adds per second of a
//! register-only kernel, per core and on every core at once, with AVX-512 and AVX2 (whichever
//! the CPU has). The yardstick for the achieved GFLOP/s of a training step.

use std::time::Instant;

use serde_json::{json, Value};

/// Independent accumulators per kernel: enough to hide the FMA latency (4 cycles) on two FMA
/// ports.
const CHAINS: usize = 12;

/// Iterations of the inner loop per timed call (each iteration: `CHAINS` vector FMAs).
const ITERS: usize = 20_000_000;

/// GFLOP/s of one core running the AVX-512 kernel, if the CPU has AVX-512F.
fn avx512_gflops() -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the feature was detected at run time.
        return Some(time_kernel(16, || unsafe { fma_avx512(std::hint::black_box(ITERS)) }));
    }
    None
}

/// GFLOP/s of one core running the AVX2 kernel, if the CPU has AVX2 and FMA.
fn avx2_gflops() -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the features were detected at run time.
        return Some(time_kernel(8, || unsafe { fma_avx2(std::hint::black_box(ITERS)) }));
    }
    None
}

/// Best of three timed calls of `kernel` (lanes f32 per vector): `2·lanes·CHAINS·ITERS` FLOPs.
fn time_kernel(lanes: usize, kernel: impl Fn() -> f32) -> f64 {
    let flops = (2 * lanes * CHAINS * ITERS) as f64;
    let mut best = f64::INFINITY;
    let mut sink = 0.0f32;
    for _ in 0..3 {
        let t = Instant::now();
        sink += std::hint::black_box(kernel());
        best = best.min(t.elapsed().as_secs_f64());
    }
    std::hint::black_box(sink);
    flops / best / 1e9
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fma_avx512(iters: usize) -> f32 {
    use std::arch::x86_64::*;
    let a = _mm512_set1_ps(0.999_999);
    let b = _mm512_set1_ps(1e-7);
    let mut acc = [_mm512_set1_ps(1.0); CHAINS];
    for _ in 0..iters {
        for x in acc.iter_mut() {
            *x = _mm512_fmadd_ps(*x, a, b);
        }
    }
    let mut s = _mm512_setzero_ps();
    for x in acc {
        s = _mm512_add_ps(s, x);
    }
    _mm512_reduce_add_ps(s)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fma_avx2(iters: usize) -> f32 {
    use std::arch::x86_64::*;
    let a = _mm256_set1_ps(0.999_999);
    let b = _mm256_set1_ps(1e-7);
    let mut acc = [_mm256_set1_ps(1.0); CHAINS];
    for _ in 0..iters {
        for x in acc.iter_mut() {
            *x = _mm256_fmadd_ps(*x, a, b);
        }
    }
    let mut out = [0.0f32; 8];
    let mut s = _mm256_setzero_ps();
    for x in acc {
        s = _mm256_add_ps(s, x);
    }
    _mm256_storeu_ps(out.as_mut_ptr(), s);
    out.iter().sum()
}

/// Runs `f` on `threads` OS threads at once; returns the sum of their results.
fn on_threads(threads: usize, f: fn() -> Option<f64>) -> Option<f64> {
    let handles: Vec<_> = (0..threads).map(|_| std::thread::spawn(f)).collect();
    handles.into_iter().map(|h| h.join().ok().flatten()).sum()
}

/// The FMA peak as a JSON object: GFLOP/s per core and on `cores` cores at once, AVX-512 and
/// AVX2 (`null` where the CPU lacks the instructions).
pub fn measure(cores: usize) -> Value {
    json!({
        "avx512_gflops_1core": avx512_gflops(),
        "avx2_gflops_1core": avx2_gflops(),
        "avx512_gflops_all": on_threads(cores, avx512_gflops),
        "avx2_gflops_all": on_threads(cores, avx2_gflops),
        "cores": cores,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_compute_the_recurrence() {
        // x ← 0.999999·x + 1e-7 from 1.0 stays at 1.0 to f32 precision (fixed point 0.1 is far
        // away only after ~10^6 steps): every lane of every chain sums to CHAINS·lanes·~1.
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: detected above.
            let s = unsafe { fma_avx2(10) };
            assert!((s - (CHAINS * 8) as f32).abs() < 1e-2, "{s}");
        }
    }
}
