//! Self-attention as a context-conditioned Markov chain (Ildiz, Huang, Li, Rawat, Oymak,
//! ICML 2024), `kind = "ccmc"`.
//!
//! With one-hot embeddings over K tokens and a K × K logit matrix A (row i = last token, the
//! token-basis view of W), a one-layer attention generator emits
//! P(y = j | X) = c_j(X) e^{A_{x_T j}} / Σ_l c_l(X) e^{A_{x_T l}}, c_j(X) the count of token j
//! in the window. Sections (each optional):
//! * `[estimation]`: teacher A* ~ σ N(0, 1), IID uniform prompts, labels from the CCMC; the
//!   student is the cross-entropy (maximum-likelihood) fit, by Newton's method per row; the
//!   row-centred relative error against n, and its log–log slope.
//! * `[coverage]`: the same, but prompts ending in `last` never contain `missing`: that entry
//!   gets no gradient and stays where it started (unidentified), while the others converge.
//! * `[generation]`: from one prompt, generate with a sliding window of T tokens; distinct
//!   tokens and entropy of the window against step, for several teacher scales, with the base
//!   Markov chain P̄ (no counts) as control.
//! * `[single]`: the student fitted on the (window → next token) pairs of ONE generated
//!   trajectory, for several lengths, against the same number of IID-prompt examples.
//!
//! Files: `config` (the experiment file), `experiment` (the runner), `estimation`
//! (`[estimation]`, `[coverage]`), `generation`, `single`; this file holds the model math.

use rand::Rng;

use crate::linalg::{axpy, dot, gaussian, norm, solve_psd};

mod config;
mod estimation;
mod experiment;
mod generation;
mod single;
pub use config::*;
use estimation::{coverage, estimation};
pub use experiment::*;
use generation::generation;
pub use single::*;

/// A K × K logit matrix, row-major, row = last token.
pub type Logits = Vec<f64>;

/// Teacher σ·G with G standard Gaussian.
pub fn teacher<R: Rng>(k: usize, sigma: f64, rng: &mut R) -> Logits {
    (0..k * k).map(|_| sigma * gaussian(rng)).collect()
}

/// One training example: the window's token counts and the emitted token.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// Last token of the prompt.
    pub last: usize,
    /// (token, count) for every token present in the prompt.
    pub counts: Vec<(usize, f64)>,
    /// The next token.
    pub label: usize,
}

fn counts_of(prompt: &[usize], k: usize) -> Vec<(usize, f64)> {
    let mut c = vec![0.0; k];
    for &x in prompt {
        c[x] += 1.0;
    }
    c.iter().enumerate().filter(|(_, v)| **v > 0.0).map(|(j, v)| (j, *v)).collect()
}

/// The CCMC next-token distribution over the present tokens (same order as `counts`).
pub fn ccmc_probs(a: &[f64], k: usize, last: usize, counts: &[(usize, f64)]) -> Vec<f64> {
    let row = &a[last * k..(last + 1) * k];
    let m = counts.iter().map(|(j, _)| row[*j]).fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> = counts.iter().map(|(j, c)| c * (row[*j] - m).exp()).collect();
    let z: f64 = w.iter().sum();
    w.into_iter().map(|v| v / z).collect()
}

fn sample_index<R: Rng>(p: &[f64], rng: &mut R) -> usize {
    let u: f64 = rng.gen();
    let mut acc = 0.0;
    for (i, v) in p.iter().enumerate() {
        acc += v;
        if u < acc {
            return i;
        }
    }
    p.len() - 1
}

/// n examples: IID uniform prompts of length T (with `hole = Some((last, missing))`, a prompt
/// ending in `last` never contains `missing`), labels from the CCMC of `a`.
pub fn draw_examples<R: Rng>(
    a: &[f64],
    k: usize,
    t: usize,
    n: usize,
    hole: Option<(usize, usize)>,
    rng: &mut R,
) -> Vec<Example> {
    (0..n)
        .map(|_| {
            let mut prompt: Vec<usize> = (0..t).map(|_| rng.gen_range(0..k)).collect();
            if let Some((last, missing)) = hole {
                if prompt[t - 1] == last {
                    for x in prompt[..t - 1].iter_mut() {
                        while *x == missing {
                            *x = rng.gen_range(0..k);
                        }
                    }
                }
            }
            let last = prompt[t - 1];
            let counts = counts_of(&prompt, k);
            let p = ccmc_probs(a, k, last, &counts);
            let label = counts[sample_index(&p, rng)].0;
            Example { last, counts, label }
        })
        .collect()
}

/// Cross-entropy of one row's examples under logits `row`, with gradient and Hessian.
fn row_objective(row: &[f64], ex: &[&Example], want_h: bool) -> (f64, Vec<f64>, Vec<f64>) {
    let k = row.len();
    let mut loss = 0.0;
    let mut g = vec![0.0; k];
    let mut h = if want_h { vec![0.0; k * k] } else { Vec::new() };
    for e in ex {
        let m = e.counts.iter().map(|(j, _)| row[*j]).fold(f64::NEG_INFINITY, f64::max);
        let w: Vec<f64> = e.counts.iter().map(|(j, c)| c * (row[*j] - m).exp()).collect();
        let z: f64 = w.iter().sum();
        loss += z.ln() + m - row[e.label];
        g[e.label] -= 1.0;
        for (idx, (j, _)) in e.counts.iter().enumerate() {
            let p = w[idx] / z;
            g[*j] += p;
            if want_h {
                h[j * k + j] += p;
                for (idx2, (j2, _)) in e.counts.iter().enumerate() {
                    h[j * k + j2] -= p * w[idx2] / z;
                }
            }
        }
    }
    (loss, g, h)
}

/// The cross-entropy (maximum-likelihood) student: each row of A minimised by damped Newton
/// from `init`. Entries of a row that never appear in a prompt with that last token get no
/// gradient and keep their initial value. Returns the fit and the number of rows whose
/// gradient or Newton decrement did not get small in 100 Newton steps (no finite MLE).
pub fn fit(examples: &[Example], k: usize, init: &[f64]) -> (Logits, usize) {
    let mut a = init.to_vec();
    let mut unconverged = 0;
    for i in 0..k {
        let ex: Vec<&Example> = examples.iter().filter(|e| e.last == i).collect();
        if ex.is_empty() {
            continue;
        }
        let mut row = a[i * k..(i + 1) * k].to_vec();
        let tol = 1e-8 * ex.len() as f64;
        let mut done = false;
        for _ in 0..100 {
            let (loss, g, h) = row_objective(&row, &ex, true);
            if norm(&g) < tol {
                done = true;
                break;
            }
            let step = solve_psd(&h, &g, k, 1e-10);
            let slope = -dot(&g, &step);
            // Newton decrement below rounding of the loss: converged (a line search could
            // not see any decrease).
            if -slope < 1e-13 * (1.0 + loss.abs()) {
                done = true;
                break;
            }
            let mut t = 1.0;
            loop {
                let mut cand = row.clone();
                axpy(&mut cand, -t, &step);
                if row_objective(&cand, &ex, false).0 <= loss + 1e-4 * t * slope || t < 1e-10 {
                    row = cand;
                    break;
                }
                t *= 0.5;
            }
        }
        if !done {
            unconverged += 1;
        }
        a[i * k..(i + 1) * k].copy_from_slice(&row);
    }
    (a, unconverged)
}

/// Each row minus its mean over the columns `cols(i)` (all columns: `None`).
pub fn centre(a: &[f64], k: usize, skip: Option<(usize, usize)>) -> Logits {
    let mut out = a.to_vec();
    for i in 0..k {
        let cols: Vec<usize> = (0..k).filter(|&j| skip != Some((i, j))).collect();
        let m = cols.iter().map(|&j| a[i * k + j]).sum::<f64>() / cols.len() as f64;
        for j in 0..k {
            out[i * k + j] -= m;
        }
    }
    out
}

/// ‖Ã − Ã*‖_F / ‖Ã*‖_F over the row-centred matrices, leaving out entry `skip` (which is
/// also left out of the row means).
pub fn rel_error(a: &[f64], a_star: &[f64], k: usize, skip: Option<(usize, usize)>) -> f64 {
    let (c, cs) = (centre(a, k, skip), centre(a_star, k, skip));
    let mut num = 0.0;
    let mut den = 0.0;
    for i in 0..k {
        for j in 0..k {
            if skip == Some((i, j)) {
                continue;
            }
            num += (c[i * k + j] - cs[i * k + j]).powi(2);
            den += cs[i * k + j].powi(2);
        }
    }
    (num / den).sqrt()
}

/// Error of one entry after centring its row on the other entries (gauge-free).
pub fn entry_error(a: &[f64], a_star: &[f64], k: usize, (i, j): (usize, usize)) -> f64 {
    let (c, cs) = (centre(a, k, Some((i, j))), centre(a_star, k, Some((i, j))));
    (c[i * k + j] - cs[i * k + j]).abs()
}

/// Window statistics: number of distinct tokens and entropy (nats) of the histogram.
pub fn window_stats(window: &[usize], k: usize) -> (f64, f64) {
    let c = counts_of(window, k);
    let n = window.len() as f64;
    let h = -c.iter().map(|(_, v)| (v / n) * (v / n).ln()).sum::<f64>();
    (c.len() as f64, h)
}

/// Generates `steps` tokens from `prompt` with a sliding window; with `base_chain`, samples
/// from the base Markov chain softmax(A_{x_T,·}) over all K tokens instead (the control).
/// Returns the window's (distinct, entropy) after each step, index 0 = the prompt.
pub fn generate<R: Rng>(
    a: &[f64],
    k: usize,
    prompt: &[usize],
    steps: usize,
    base_chain: bool,
    rng: &mut R,
) -> Vec<(f64, f64)> {
    let mut w: std::collections::VecDeque<usize> = prompt.iter().copied().collect();
    let mut out = Vec::with_capacity(steps + 1);
    let all: Vec<(usize, f64)> = (0..k).map(|j| (j, 1.0)).collect();
    let buf: Vec<usize> = w.iter().copied().collect();
    out.push(window_stats(&buf, k));
    for _ in 0..steps {
        let last = *w.back().expect("window");
        let buf: Vec<usize> = w.iter().copied().collect();
        let counts = if base_chain { all.clone() } else { counts_of(&buf, k) };
        let p = ccmc_probs(a, k, last, &counts);
        let y = counts[sample_index(&p, rng)].0;
        w.pop_front();
        w.push_back(y);
        let buf: Vec<usize> = w.iter().copied().collect();
        out.push(window_stats(&buf, k));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newton_fit_is_a_stationary_point_and_leaves_uncovered_entries() {
        let mut rng = rng_for(7, 0);
        let k = 5;
        let a_star = teacher(k, 1.0, &mut rng);
        let ex = draw_examples(&a_star, k, 8, 3000, Some((0, 1)), &mut rng);
        let mut init = vec![0.0; k * k];
        init[1] = 3.0;
        let (a, unconv) = fit(&ex, k, &init);
        assert_eq!(unconv, 0);
        assert_eq!(a[1], 3.0, "the uncovered entry keeps its initial value");
        for i in 0..k {
            let rows: Vec<&Example> = ex.iter().filter(|e| e.last == i).collect();
            let (_, g, _) = row_objective(&a[i * k..(i + 1) * k], &rows, false);
            assert!(norm(&g) < 1e-6 * rows.len() as f64);
        }
        // Finite-difference check of the row gradient.
        let rows: Vec<&Example> = ex.iter().filter(|e| e.last == 2).collect();
        let r0: Vec<f64> = (0..k).map(|j| 0.3 * j as f64 - 0.5).collect();
        let (_, g, _) = row_objective(&r0, &rows, false);
        for j in 0..k {
            let (mut p, mut m) = (r0.clone(), r0.clone());
            p[j] += 1e-6;
            m[j] -= 1e-6;
            let fd = (row_objective(&p, &rows, false).0 - row_objective(&m, &rows, false).0) / 2e-6;
            assert!((fd - g[j]).abs() < 1e-5 * (1.0 + fd.abs()));
        }
    }

    #[test]
    fn window_statistics() {
        assert_eq!(window_stats(&[1, 1, 1], 3), (1.0, 0.0));
        let (d, h) = window_stats(&[0, 1], 3);
        assert_eq!(d, 2.0);
        assert!((h - 2f64.ln()).abs() < 1e-12);
        assert_eq!(scale_tag(0.5), "s0p5");
    }
}
