//! The theory objects of the NTP paper: the graph-SVM direction W_svm (a quadratic program,
//! solved with the Clarabel interior-point solver), its nuclear-norm version for the
//! factorised model (`nuclear`: [`w_svm_nuclear`]) and the finite component W_fin (the loss
//! minimiser on the within-SCC subspace S_fin, solved by Newton's method).
//!
//! W_svm = argmin ‖W‖_F subject to, for every sequence i with label y, last token k = x_{i,T}
//! and every other token j of the sequence (`W_svm_solver_cvxpy` in `nxt_token_solver.py`):
//! * (e_y − e_j)ᵀ W e_k = 0 when y and j share an SCC of G^(k);
//! * (e_y − e_j)ᵀ W e_k ≥ 1 otherwise (j is in a lower SCC).
//!
//! S_fin = span{(e_a − ē_C) e_kᵀ : a ∈ C} over the label SCCs C of the "reduced" sequences
//! (`cal_Sfin` in `utils.py`), and W_fin minimises the loss of the reduced data set (each
//! sequence cut to the tokens of its label's SCC, `generate_reduced_ds`) over S_fin.

use anyhow::{bail, Result};
use clarabel::algebra::CscMatrix;
use clarabel::solver::{
    DefaultSettings, DefaultSolver, IPSolver, NonnegativeConeT, SolverStatus, SupportedConeT, ZeroConeT,
};

use crate::linalg::{axpy, bilinear, dot, norm, orthonormal_basis, outer, solve_psd, sub};
use crate::selector::Sample;
use crate::tpg::{Dataset, PriorityGraphs};

mod nuclear;
pub use nuclear::*;

/// Which constraints the SVM keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SvmMode {
    /// The paper's graph-SVM: margins across SCC levels, equalities inside an SCC.
    Scc,
    /// Margins across SCC levels only (drops the equalities): a control.
    NoEquality,
    /// A margin on every (label, other token) pair, as if every graph were acyclic: a control
    /// that is infeasible as soon as a graph has a cycle.
    AllStrict,
}

/// Linear constraints on vec(W) (row-major): `eq` rows a with ⟨a, W⟩ = 0, `ineq` rows with
/// ⟨a, W⟩ ≥ 1.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SvmConstraints {
    /// Equality rows.
    pub eq: Vec<Vec<f64>>,
    /// Margin rows.
    pub ineq: Vec<Vec<f64>>,
}

/// The SVM constraints of a data set (deduplicated by (label, token, last token)).
pub fn svm_constraints(ds: &Dataset, g: &PriorityGraphs, mode: SvmMode) -> SvmConstraints {
    let mut seen = std::collections::BTreeSet::new();
    let mut c = SvmConstraints::default();
    for (i, seq) in ds.seqs.iter().enumerate() {
        let (k, y) = (ds.last(i), ds.labels[i]);
        let gk = g.of(k);
        for &j in seq {
            if j == y || !seen.insert((y, j, k)) {
                continue;
            }
            let row = outer(&sub(&ds.vocab[y], &ds.vocab[j]), &ds.vocab[k]);
            match (mode, gk.same(y, j)) {
                (SvmMode::Scc, true) => c.eq.push(row),
                (SvmMode::NoEquality, true) => {}
                _ => c.ineq.push(row),
            }
        }
    }
    c
}

/// Minimum-norm W (length `dim`) satisfying the constraints, `None` if they are infeasible.
/// The QP min ½‖x‖² s.t. A x + s = b, s in (zero cone × non-negative cone) goes to Clarabel.
pub fn min_norm(c: &SvmConstraints, dim: usize) -> Result<Option<Vec<f64>>> {
    Ok(min_norm_dual(c, dim)?.map(|(x, _)| x))
}

/// [`min_norm`] with the multipliers: `(x, μ, λ)` with x = Σ λ_i ineq_i + Σ μ_j eq_j
/// (λ ≥ 0, one per margin row; μ one per equality row), the KKT form of the solution.
pub fn min_norm_dual(c: &SvmConstraints, dim: usize) -> Result<Option<(Vec<f64>, Multipliers)>> {
    if c.ineq.is_empty() {
        // 0 satisfies the equalities
        let m = Multipliers { eq: vec![0.0; c.eq.len()], ineq: vec![] };
        return Ok(Some((vec![0.0; dim], m)));
    }
    let (mut rows, mut cols, mut vals, mut b) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut push = |r: usize, a: &[f64], sign: f64| {
        for (j, v) in a.iter().enumerate() {
            if *v != 0.0 {
                rows.push(r);
                cols.push(j);
                vals.push(sign * v);
            }
        }
    };
    for (r, a) in c.eq.iter().enumerate() {
        push(r, a, 1.0);
        b.push(0.0);
    }
    for (r, a) in c.ineq.iter().enumerate() {
        push(c.eq.len() + r, a, -1.0); // −⟨a, x⟩ + s = −1, s ≥ 0  ⇔  ⟨a, x⟩ ≥ 1
        b.push(-1.0);
    }
    let m = c.eq.len() + c.ineq.len();
    let a = CscMatrix::new_from_triplets(m, dim, rows, cols, vals);
    let p = CscMatrix::identity(dim);
    let q = vec![0.0; dim];
    let mut cones: Vec<SupportedConeT<f64>> = Vec::new();
    if !c.eq.is_empty() {
        cones.push(ZeroConeT(c.eq.len()));
    }
    cones.push(NonnegativeConeT(c.ineq.len()));
    let settings = DefaultSettings::<f64> {
        verbose: false,
        tol_gap_abs: 1e-10,
        tol_gap_rel: 1e-10,
        tol_feas: 1e-10,
        ..Default::default()
    };
    let mut solver = match DefaultSolver::new(&p, &q, &a, &b, &cones, settings) {
        Ok(s) => s,
        Err(e) => bail!("clarabel setup: {e:?}"),
    };
    solver.solve();
    match solver.solution.status {
        SolverStatus::Solved | SolverStatus::AlmostSolved => {
            // KKT: x + Aᵀz = 0 with the signs above, so x = Σ z_ineq·a − Σ z_eq·a.
            let z = &solver.solution.z;
            let mult = Multipliers {
                eq: z[..c.eq.len()].iter().map(|v| -v).collect(),
                ineq: z[c.eq.len()..].iter().map(|v| v.max(0.0)).collect(),
            };
            Ok(Some((solver.solution.x.clone(), mult)))
        }
        SolverStatus::PrimalInfeasible | SolverStatus::AlmostPrimalInfeasible => Ok(None),
        s => bail!("clarabel: {s:?}"),
    }
}

/// Lagrange multipliers of the SVM constraints.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Multipliers {
    /// One per equality row (any sign).
    pub eq: Vec<f64>,
    /// One per margin row (≥ 0).
    pub ineq: Vec<f64>,
}

/// W_svm of the paper (zero when no constraint asks for a margin).
pub fn w_svm(ds: &Dataset, g: &PriorityGraphs) -> Result<Vec<f64>> {
    let d = ds.d;
    match min_norm(&svm_constraints(ds, g, SvmMode::Scc), d * d)? {
        Some(w) => Ok(w),
        None => bail!("graph-SVM infeasible (cannot happen for realisable data)"),
    }
}

/// The reduced data set (`generate_reduced_ds`): for each sequence whose label shares its
/// SCC with another token of the sequence, the sequence cut to the tokens of that SCC (the
/// query stays the original last token). Returns the original indices and the samples.
pub fn reduced(ds: &Dataset, g: &PriorityGraphs) -> (Vec<usize>, Vec<Sample>) {
    let mut idx = Vec::new();
    let mut out = Vec::new();
    for (i, seq) in ds.seqs.iter().enumerate() {
        let (k, y) = (ds.last(i), ds.labels[i]);
        let gk = g.of(k);
        if !seq.iter().any(|&x| x != y && gk.same(x, y)) {
            continue;
        }
        let ctx: Vec<usize> = seq.iter().copied().filter(|&x| gk.same(x, y)).collect();
        idx.push(i);
        out.push(Sample { ctx, query: k, label: y });
    }
    (idx, out)
}

/// Orthonormal basis of S_fin (`cal_Sfin`): centred embeddings of each reduced sample's label
/// SCC, times the last token's embedding.
pub fn s_fin_basis(ds: &Dataset, g: &PriorityGraphs, reduced_idx: &[usize]) -> Vec<Vec<f64>> {
    let d = ds.d;
    let mut gens = Vec::new();
    for &i in reduced_idx {
        let (k, y) = (ds.last(i), ds.labels[i]);
        let members = g.of(k).members(y);
        let mut mean = vec![0.0; d];
        for &a in &members {
            axpy(&mut mean, 1.0 / members.len() as f64, &ds.vocab[a]);
        }
        for &a in &members {
            gens.push(outer(&sub(&ds.vocab[a], &mean), &ds.vocab[k]));
        }
    }
    orthonormal_basis(&gens, 1e-9)
}

/// W_fin: the minimiser over S_fin (coordinates in `basis`) of the reduced loss
/// `Σ_i −log(attention on the label) / n`, by damped Newton from zero (the loss is convex
/// there: every position of the label token has the same score). Zero if S_fin is empty.
pub fn w_fin(vocab: &[Vec<f64>], basis: &[Vec<f64>], data: &[Sample], n: usize) -> Vec<f64> {
    let d = vocab[0].len();
    let m = basis.len();
    if m == 0 {
        return vec![0.0; d * d];
    }
    // Features Φ[i][t][r] = x_tᵀ B_r z_i.
    let phi: Vec<Vec<Vec<f64>>> = data
        .iter()
        .map(|s| {
            s.ctx
                .iter()
                .map(|&x| basis.iter().map(|b| bilinear(&vocab[x], b, &vocab[s.query])).collect())
                .collect()
        })
        .collect();
    let nn = n as f64;
    let eval = |theta: &[f64], want_h: bool| -> (f64, Vec<f64>, Vec<f64>) {
        let mut loss = 0.0;
        let mut grad = vec![0.0; m];
        let mut hess = if want_h { vec![0.0; m * m] } else { Vec::new() };
        for (s, ph) in data.iter().zip(&phi) {
            let sc: Vec<f64> = ph.iter().map(|f| dot(f, theta)).collect();
            let mx = sc.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = sc.iter().map(|v| (v - mx).exp()).sum();
            let a: Vec<f64> = sc.iter().map(|v| (v - mx).exp() / z).collect();
            let py: f64 = s.ctx.iter().zip(&a).filter(|(x, _)| **x == s.label).map(|(_, v)| v).sum();
            loss -= py.ln();
            let ty = s.ctx.iter().position(|&x| x == s.label).expect("label in reduced sequence");
            let mut mu = vec![0.0; m];
            for (t, f) in ph.iter().enumerate() {
                axpy(&mut mu, a[t], f);
            }
            axpy(&mut grad, 1.0, &mu);
            axpy(&mut grad, -1.0, &ph[ty]);
            if want_h {
                for (t, f) in ph.iter().enumerate() {
                    for r in 0..m {
                        for c in 0..m {
                            hess[r * m + c] += a[t] * f[r] * f[c];
                        }
                    }
                }
                for r in 0..m {
                    for c in 0..m {
                        hess[r * m + c] -= mu[r] * mu[c];
                    }
                }
            }
        }
        grad.iter_mut().for_each(|v| *v /= nn);
        hess.iter_mut().for_each(|v| *v /= nn);
        (loss / nn, grad, hess)
    };
    let mut theta = vec![0.0; m];
    for _ in 0..200 {
        let (loss, grad, hess) = eval(&theta, true);
        if norm(&grad) < 1e-13 {
            break;
        }
        let step = solve_psd(&hess, &grad, m, 1e-12);
        let slope = -dot(&grad, &step);
        if -slope < 1e-15 * (1.0 + loss.abs()) {
            break; // Newton decrement below the loss's rounding
        }
        let mut t = 1.0;
        loop {
            let mut cand = theta.clone();
            axpy(&mut cand, -t, &step);
            if eval(&cand, false).0 <= loss + 1e-4 * t * slope || t < 1e-12 {
                theta = cand;
                break;
            }
            t *= 0.5;
        }
    }
    let mut w = vec![0.0; d * d];
    for (th, b) in theta.iter().zip(basis) {
        axpy(&mut w, *th, b);
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selector::{Params, Weights};
    use crate::tpg::{generate, DataConfig, Embedding, GraphKind};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn one_margin_has_the_textbook_solution() {
        // Orthonormal e_0, e_1, e_2 in R^3; one constraint (e_0 − e_1)ᵀ W e_2 ≥ 1:
        // W = (e_0 − e_1) e_2ᵀ / 2, with norm 1/√2.
        let e = |i: usize| (0..3).map(|j| if i == j { 1.0 } else { 0.0 }).collect::<Vec<f64>>();
        let c = SvmConstraints { eq: vec![], ineq: vec![outer(&sub(&e(0), &e(1)), &e(2))] };
        let w = min_norm(&c, 9).unwrap().unwrap();
        let want = outer(&sub(&e(0), &e(1)), &e(2)).into_iter().map(|v| v / 2.0).collect::<Vec<_>>();
        assert!(norm(&sub(&w, &want)) < 1e-7, "{w:?}");
        // A contradictory pair of margins is infeasible.
        let c2 = SvmConstraints {
            eq: vec![],
            ineq: vec![outer(&sub(&e(0), &e(1)), &e(2)), outer(&sub(&e(1), &e(0)), &e(2))],
        };
        assert!(min_norm(&c2, 9).unwrap().is_none());
    }

    #[test]
    fn svm_solution_is_feasible_and_wfin_lives_in_sfin() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let cfg = DataConfig {
            n: 6,
            t: 4,
            k: 6,
            d: 8,
            embedding: Embedding::Random,
            rho: 0.5,
            graph: GraphKind::Cyclic,
        };
        let ds = generate(&cfg, &mut rng).unwrap();
        let g = PriorityGraphs::build(&ds);
        let c = svm_constraints(&ds, &g, SvmMode::Scc);
        let w = w_svm(&ds, &g).unwrap();
        for a in &c.eq {
            assert!(dot(a, &w).abs() < 1e-6);
        }
        for a in &c.ineq {
            assert!(dot(a, &w) > 1.0 - 1e-6);
        }
        assert!(min_norm(&svm_constraints(&ds, &g, SvmMode::AllStrict), 64).unwrap().is_none());
        let (idx, red) = reduced(&ds, &g);
        assert!(!red.is_empty());
        let basis = s_fin_basis(&ds, &g, &idx);
        let wf = w_fin(&ds.vocab, &basis, &red, 6);
        // W_svm ⟂ S_fin, W_fin ∈ S_fin, and W_fin is a stationary point of the reduced loss.
        assert!(crate::linalg::norm(&crate::linalg::project(&basis, &w)) < 1e-6);
        assert!(norm(&sub(&crate::linalg::project(&basis, &wf), &wf)) < 1e-9);
        let (_, grad) = crate::selector::loss_grad(&ds.vocab, &wf, &red, 6);
        assert!(norm(&grad) < 1e-9, "{}", norm(&grad));
        // Normalised GD from zero (the official train_Wfin) lands within a few steps of it.
        let mut p = Params::init(Weights::Combined, 8, true, &mut rng);
        for _ in 0..4000 {
            p.step(&ds.vocab, &red, 6, 0.01, true);
        }
        assert!(norm(&sub(&p.w(8), &wf)) < 0.05, "{}", norm(&sub(&p.w(8), &wf)));
    }
}
