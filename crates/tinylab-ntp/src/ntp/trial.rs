//! One NTP trial: a fresh token-priority data set, its theory objects (W_svm, the
//! nuclear-norm W_svm,*, W_fin) and the selector trained by (normalised) GD, with the curves
//! the notebooks plot.

use anyhow::Result;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::NtpExperiment;
use crate::linalg::{bilinear, cosine, dot, norm, project, softmax, sub};
use crate::selector::{attention, samples, Params, Sample};
use crate::spectral::nuclear_norm;
use crate::theory::{
    min_norm, reduced, s_fin_basis, svm_constraints, w_fin, w_svm, w_svm_nuclear, NuclearSvm, SvmMode,
};
use crate::tpg::{generate, Dataset, PriorityGraphs};

/// Per-step curves of one trial.
#[derive(Debug, Clone, Default)]
pub struct Curves {
    /// Logged steps (0, log_every, …, iterations).
    pub steps: Vec<usize>,
    /// Training loss.
    pub loss: Vec<f64>,
    /// ‖∇L‖.
    pub grad_norm: Vec<f64>,
    /// ‖W(t)‖_F.
    pub w_norm: Vec<f64>,
    /// cos(W(t), W_svm).
    pub cos_svm: Vec<f64>,
    /// cos(W(t), W_svm,*), the nuclear-norm SVM.
    pub cos_svm_nuc: Vec<f64>,
    /// cos(W(t), W_fin + R·W_svm), R fitted at the last step (`R_solver`).
    pub cos_svm_fin: Vec<f64>,
    /// ‖Π_fin W(t) − W_fin‖_F.
    pub fin_dist: Vec<f64>,
    /// Mean over sequences of the attention outside the label's SCC.
    pub lower_attn: Vec<f64>,
}

/// Everything one trial produces.
pub struct Trial {
    /// Its data set.
    pub ds: Dataset,
    /// Its priority graphs.
    pub graphs: PriorityGraphs,
    /// W_svm.
    pub w_svm: Vec<f64>,
    /// The nuclear-norm SVM W_svm,* with its certificate.
    pub svm_nuc: NuclearSvm,
    /// W_fin.
    pub w_fin: Vec<f64>,
    /// dim S_fin.
    pub s_fin_dim: usize,
    /// W at the last step.
    pub w_final: Vec<f64>,
    /// Curves.
    pub curves: Curves,
    /// cos(W(0), W_svm).
    pub cos_init: f64,
    /// cos(W(0), W_svm,*).
    pub cos_nuc_init: f64,
    /// cos(W(T), W_svm without the equalities).
    pub cos_noeq: f64,
    /// Smallest SCC margin of W(T) per unit nuclear norm, over the optimum 1/‖W_svm,*‖_*
    /// (1 = W(T)'s direction is a nuclear-norm max-margin solution).
    pub nuc_margin_ratio: f64,
    /// The same in the Frobenius norm, over 1/‖W_svm‖_F.
    pub fro_margin_ratio: f64,
    /// Whether margins on every (label, token) pair are infeasible.
    pub allstrict_infeasible: bool,
    /// Per sequence: attention outside the label SCC at the end.
    pub lower_final: Vec<f64>,
    /// Over sequences with ≥ 2 tokens of the label's SCC: the smallest share of a top-SCC
    /// token in the top-SCC attention, and the largest TV distance between the top-SCC
    /// attention and the one W_fin predicts (`None` without such sequences).
    pub top_share_tv: Option<(f64, f64)>,
}

fn lower_mass(ds: &Dataset, g: &PriorityGraphs, w: &[f64], data: &[Sample]) -> Vec<f64> {
    data.iter()
        .enumerate()
        .map(|(i, s)| {
            let a = attention(&ds.vocab, w, s);
            g.ranks(ds, i).iter().zip(&a).filter(|(r, _)| **r > 0).map(|(_, v)| v).sum()
        })
        .collect()
}

/// Runs one trial with its own RNG.
pub fn run_trial(exp: &NtpExperiment, rng: &mut ChaCha8Rng) -> Result<Trial> {
    let ds = generate(&exp.data, rng)?;
    let d = ds.d;
    let g = PriorityGraphs::build(&ds);
    let wsvm = w_svm(&ds, &g)?;
    let nuc = w_svm_nuclear(&ds, &g)?;
    let noeq = min_norm(&svm_constraints(&ds, &g, SvmMode::NoEquality), d * d)?.unwrap_or_default();
    let allstrict_infeasible = min_norm(&svm_constraints(&ds, &g, SvmMode::AllStrict), d * d)?.is_none();
    let (ridx, rdata) = reduced(&ds, &g);
    let basis = s_fin_basis(&ds, &g, &ridx);
    let n = ds.seqs.len();
    let wfin = w_fin(&ds.vocab, &basis, &rdata, n);
    let data = samples(&ds);
    let mut p = Params::init(exp.model.weights, d, exp.model.zero_init, rng);
    let cos_init = cosine(&p.w(d), &wsvm);
    let cos_nuc_init = cosine(&p.w(d), &nuc.w);
    let t = &exp.train;
    let mut c = Curves::default();
    let mut ws = Vec::new();
    for step in 0..=t.iterations {
        if step % t.log_every == 0 || step == t.iterations {
            // Rows at `step` describe the weights after `step` updates.
            let w = p.w(d);
            let (loss, grads) = p.loss_grads(&ds.vocab, &data, n);
            c.steps.push(step);
            c.loss.push(loss);
            c.grad_norm.push(grads.iter().map(|g| dot(g, g)).sum::<f64>().sqrt());
            c.w_norm.push(norm(&w));
            c.cos_svm.push(cosine(&w, &wsvm));
            c.cos_svm_nuc.push(cosine(&w, &nuc.w));
            c.fin_dist.push(norm(&sub(&project(&basis, &w), &wfin)));
            let lm = lower_mass(&ds, &g, &w, &data);
            c.lower_attn.push(lm.iter().sum::<f64>() / lm.len() as f64);
            ws.push(w);
        }
        if step < t.iterations {
            p.step(&ds.vocab, &data, n, t.lr, t.normalized);
        }
    }
    let w_final = p.w(d);
    // R = argmin_R ‖W_fin + R·W_svm − W(T)‖ (`R_solver`), then cos(W(t), W_fin + R·W_svm).
    let ss = dot(&wsvm, &wsvm);
    let r = if ss > 0.0 { dot(&sub(&w_final, &wfin), &wsvm) / ss } else { 0.0 };
    let target: Vec<f64> = wfin.iter().zip(&wsvm).map(|(f, s)| f + r * s).collect();
    c.cos_svm_fin = ws.iter().map(|w| cosine(w, &target)).collect();
    let lower_final = lower_mass(&ds, &g, &w_final, &data);
    // Smallest margin ⟨A_i, W(T)⟩ over the SCC margin rows (the equalities are left out: the
    // finite part keeps them off by O(1)).
    let margin = svm_constraints(&ds, &g, SvmMode::Scc)
        .ineq
        .iter()
        .map(|a| dot(a, &w_final))
        .fold(f64::INFINITY, f64::min);
    let mut top: Option<(f64, f64)> = None;
    for s in &rdata {
        // The top SCC of sequence i = the reduced context; its attention under W(T) vs W_fin.
        let sc = |w: &[f64]| -> Vec<f64> {
            softmax(&s.ctx.iter().map(|&x| bilinear(&ds.vocab[x], w, &ds.vocab[s.query])).collect::<Vec<_>>())
        };
        let (meas, pred) = (sc(&w_final), sc(&wfin));
        let min_share = meas.iter().cloned().fold(f64::INFINITY, f64::min);
        let tv = 0.5 * meas.iter().zip(&pred).map(|(a, b)| (a - b).abs()).sum::<f64>();
        top = Some(match top {
            None => (min_share, tv),
            Some((m, v)) => (m.min(min_share), v.max(tv)),
        });
    }
    Ok(Trial {
        cos_noeq: cosine(&w_final, &noeq),
        nuc_margin_ratio: margin * nuc.nuclear / nuclear_norm(&w_final, d),
        fro_margin_ratio: margin * norm(&wsvm) / norm(&w_final),
        ds,
        graphs: g,
        w_svm: wsvm,
        svm_nuc: nuc,
        w_fin: wfin,
        s_fin_dim: basis.len(),
        w_final,
        curves: c,
        cos_init,
        cos_nuc_init,
        allstrict_infeasible,
        lower_final,
        top_share_tv: top,
    })
}

/// The RNG of trial `j` of an experiment seeded `seed`.
pub fn trial_rng(seed: u64, j: usize) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(j as u64 + 1);
    r
}
