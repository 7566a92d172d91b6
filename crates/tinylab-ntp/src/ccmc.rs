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

use std::path::Path;

use anyhow::{bail, Result};
use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tinylab_plot::{line_plot, mean_band, LinePlot, Series};
use tinylab_train::checks::CheckSpec;
use tinylab_train::Summary;

use crate::linalg::{axpy, dot, gaussian, ls_slope, norm, solve_psd};
use crate::rundir::{resolved, row, validate_checks, Run};

/// `[estimation]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EstimationConfig {
    /// Tokens.
    #[serde(rename = "K")]
    pub k: usize,
    /// Prompt length.
    #[serde(rename = "T")]
    pub t: usize,
    /// Teacher scale: A* entries ~ N(0, σ²).
    pub sigma: f64,
    /// Sample sizes n.
    pub sizes: Vec<usize>,
    /// Independent data sets per size (errors are averaged).
    pub reps: usize,
}

/// `[coverage]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoverageConfig {
    /// Tokens, prompt length, scale, sizes and repetitions as in `[estimation]`.
    #[serde(rename = "K")]
    pub k: usize,
    /// Prompt length.
    #[serde(rename = "T")]
    pub t: usize,
    /// Teacher scale.
    pub sigma: f64,
    /// Sample sizes.
    pub sizes: Vec<usize>,
    /// Data sets per size.
    pub reps: usize,
    /// The last token whose prompts never contain `missing`.
    pub last: usize,
    /// The token never seen in prompts that end with `last`.
    pub missing: usize,
    /// The student's initial value of the uncovered entry in a second fit (shows that the
    /// data cannot move it).
    #[serde(default = "five")]
    pub alt_init: f64,
}

fn five() -> f64 {
    5.0
}

/// `[generation]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerationConfig {
    /// Tokens.
    #[serde(rename = "K")]
    pub k: usize,
    /// Window (= prompt) length.
    #[serde(rename = "T")]
    pub t: usize,
    /// Teacher scales σ: A* = σ·G for one fixed standard Gaussian G.
    pub scales: Vec<f64>,
    /// Generated tokens per trajectory.
    pub steps: usize,
    /// Trajectories (one prompt each) per scale.
    pub trajectories: usize,
    /// Metric rows every this many steps.
    #[serde(default = "fifty")]
    pub log_every: usize,
}

fn fifty() -> usize {
    50
}

/// A CCMC experiment file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CcmcExperiment {
    /// Always `"ccmc"`.
    pub kind: String,
    /// Run name (default: the file stem).
    #[serde(default)]
    pub name: String,
    /// What the experiment shows.
    #[serde(default)]
    pub description: String,
    /// Seed.
    pub seed: u64,
    /// Consistency of the cross-entropy fit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimation: Option<EstimationConfig>,
    /// Coverage failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coverage: Option<CoverageConfig>,
    /// Winner-takes-all generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<GenerationConfig>,
    /// Claim checks.
    #[serde(default)]
    pub check: Vec<CheckSpec>,
}

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

fn rng_for(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(stream);
    r
}

/// Scale label for metric names: `1` → `s1`, `0.5` → `s0p5`.
pub fn scale_tag(s: f64) -> String {
    format!("s{}", format!("{s}").replace('.', "p").replace('-', "m"))
}

/// The metric paths an experiment records (for validating its checks).
pub fn known_metrics(exp: &CcmcExperiment) -> Vec<String> {
    let mut m = Vec::new();
    if let Some(e) = &exp.estimation {
        m.push("probe.ccmc.slope".to_string());
        m.push("probe.ccmc.unconverged_rows".to_string());
        for n in &e.sizes {
            m.push(format!("probe.ccmc.rel_err_n{n}"));
        }
    }
    if exp.coverage.is_some() {
        for x in [
            "slope_covered",
            "uncovered_err_first",
            "uncovered_err_last",
            "uncovered_err_ratio",
            "uncovered_init_shift",
            "covered_entry_err_ratio",
        ] {
            m.push(format!("probe.coverage.{x}"));
        }
    }
    if let Some(g) = &exp.generation {
        for s in &g.scales {
            let tag = scale_tag(*s);
            for x in [
                "distinct_initial",
                "distinct_final",
                "entropy_initial",
                "entropy_final",
                "entropy_ratio",
                "control_distinct_final",
                "control_entropy_final",
            ] {
                m.push(format!("probe.generation.{x}_{tag}"));
            }
        }
    }
    m
}

/// Runs a CCMC experiment into a run directory.
pub fn run(mut exp: CcmcExperiment, default_name: &str, out: Option<&Path>) -> Result<Summary> {
    if exp.name.is_empty() {
        exp.name = default_name.to_string();
    }
    if exp.estimation.is_none() && exp.coverage.is_none() && exp.generation.is_none() {
        bail!("a ccmc experiment needs [estimation], [coverage] and/or [generation]");
    }
    validate_checks(&exp.check, &known_metrics(&exp))?;
    let (full, id) = resolved(&exp)?;
    let mut run = Run::create(out, &exp.name, exp.seed, &full, &id)?;
    eprintln!("run {} (seed {}) → {}", exp.name, exp.seed, run.dir.display());
    let mut steps = 0;
    if let Some(e) = exp.estimation.clone() {
        estimation(&mut run, &exp, &e)?;
        steps = *e.sizes.iter().max().unwrap_or(&0);
    }
    if let Some(c) = exp.coverage.clone() {
        coverage(&mut run, &exp, &c)?;
        steps = steps.max(*c.sizes.iter().max().unwrap_or(&0));
    }
    if let Some(g) = exp.generation.clone() {
        generation(&mut run, &exp, &g)?;
        steps = steps.max(g.steps);
    }
    run.finish(&exp.check, steps)
}

fn check_sizes(sizes: &[usize], reps: usize, k: usize, t: usize) -> Result<()> {
    if sizes.len() < 2 || sizes.contains(&0) || reps == 0 || k < 2 || t < 1 {
        bail!("need ≥ 2 positive sizes, reps ≥ 1, K ≥ 2, T ≥ 1");
    }
    Ok(())
}

fn estimation(run: &mut Run, exp: &CcmcExperiment, e: &EstimationConfig) -> Result<()> {
    check_sizes(&e.sizes, e.reps, e.k, e.t)?;
    let mut rng = rng_for(exp.seed, 1);
    let a_star = teacher(e.k, e.sigma, &mut rng);
    let mut errs = Vec::new();
    let mut unconverged = 0;
    for &n in &e.sizes {
        let mut v = Vec::new();
        for _ in 0..e.reps {
            let ex = draw_examples(&a_star, e.k, e.t, n, None, &mut rng);
            let (a, u) = fit(&ex, e.k, &vec![0.0; e.k * e.k]);
            unconverged += u;
            v.push(rel_error(&a, &a_star, e.k, None));
        }
        let m = v.iter().sum::<f64>() / v.len() as f64;
        run.write(&[row(n, "estimation", "rel_err", m)])?;
        run.write(&[row(n, "probe.ccmc", &format!("rel_err_n{n}"), m)])?;
        errs.push(m);
    }
    let lx: Vec<f64> = e.sizes.iter().map(|&n| (n as f64).ln()).collect();
    let ly: Vec<f64> = errs.iter().map(|v| v.ln()).collect();
    let slope = ls_slope(&lx, &ly);
    let last = *e.sizes.last().expect("sizes");
    run.write(&[
        row(last, "probe.ccmc", "slope", slope),
        row(last, "probe.ccmc", "unconverged_rows", unconverged as f64),
    ])?;
    let x: Vec<f64> = e.sizes.iter().map(|&n| n as f64).collect();
    let c = errs[0] * x[0].sqrt();
    line_plot(
        &LinePlot {
            title: format!(
                "{} (seed {}): CCMC estimation error, K={}, T={}, σ={}",
                exp.name, exp.seed, e.k, e.t, e.sigma
            ),
            x_label: "samples n".into(),
            y_label: "row-centred relative error".into(),
            x_log: true,
            y_log: true,
            series: vec![
                Series {
                    label: format!("cross-entropy fit (slope {slope:.3})"),
                    x: x.clone(),
                    y: errs,
                    band: None,
                },
                Series {
                    label: "∝ n^(−1/2)".into(),
                    x: x.clone(),
                    y: x.iter().map(|n| c / n.sqrt()).collect(),
                    band: None,
                },
            ],
            ..Default::default()
        },
        &run.plot("estimation_error.png"),
    )
}

fn coverage(run: &mut Run, exp: &CcmcExperiment, c: &CoverageConfig) -> Result<()> {
    check_sizes(&c.sizes, c.reps, c.k, c.t)?;
    if c.last >= c.k || c.missing >= c.k || c.last == c.missing {
        bail!("coverage: need last ≠ missing, both < K");
    }
    let pair = (c.last, c.missing);
    let mut rng = rng_for(exp.seed, 2);
    let a_star = teacher(c.k, c.sigma, &mut rng);
    let (mut cov, mut unc, mut full_entry) = (Vec::new(), Vec::new(), Vec::new());
    let mut shift = f64::NAN;
    let zero = vec![0.0; c.k * c.k];
    for (si, &n) in c.sizes.iter().enumerate() {
        let (mut vc, mut vu, mut vf) = (Vec::new(), Vec::new(), Vec::new());
        for r in 0..c.reps {
            let ex = draw_examples(&a_star, c.k, c.t, n, Some(pair), &mut rng);
            let (a, _) = fit(&ex, c.k, &zero);
            vc.push(rel_error(&a, &a_star, c.k, Some(pair)));
            vu.push(entry_error(&a, &a_star, c.k, pair));
            if si + 1 == c.sizes.len() && r == 0 {
                let mut init = zero.clone();
                init[c.last * c.k + c.missing] = c.alt_init;
                let (a2, _) = fit(&ex, c.k, &init);
                shift = (a2[c.last * c.k + c.missing] - a[c.last * c.k + c.missing]).abs();
            }
            // Control: the same entry with full coverage.
            let exf = draw_examples(&a_star, c.k, c.t, n, None, &mut rng);
            let (af, _) = fit(&exf, c.k, &zero);
            vf.push(entry_error(&af, &a_star, c.k, pair));
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        cov.push(mean(&vc));
        unc.push(mean(&vu));
        full_entry.push(mean(&vf));
        run.write(&[
            row(n, "coverage", "covered_rel_err", cov[si]),
            row(n, "coverage", "uncovered_entry_err", unc[si]),
            row(n, "coverage", "same_entry_full_coverage_err", full_entry[si]),
        ])?;
    }
    let lx: Vec<f64> = c.sizes.iter().map(|&n| (n as f64).ln()).collect();
    let slope = ls_slope(&lx, &cov.iter().map(|v| v.ln()).collect::<Vec<_>>());
    let last = *c.sizes.last().expect("sizes");
    let nl = unc.len() - 1;
    run.write(&[
        row(last, "probe.coverage", "slope_covered", slope),
        row(last, "probe.coverage", "uncovered_err_first", unc[0]),
        row(last, "probe.coverage", "uncovered_err_last", unc[nl]),
        row(last, "probe.coverage", "uncovered_err_ratio", unc[nl] / unc[0]),
        row(last, "probe.coverage", "uncovered_init_shift", shift),
        row(last, "probe.coverage", "covered_entry_err_ratio", full_entry[nl] / full_entry[0]),
    ])?;
    let x: Vec<f64> = c.sizes.iter().map(|&n| n as f64).collect();
    line_plot(
        &LinePlot {
            title: format!(
                "{} (seed {}): coverage — prompts ending in {} never contain {}",
                exp.name, exp.seed, c.last, c.missing
            ),
            x_label: "samples n".into(),
            y_label: "error".into(),
            x_log: true,
            y_log: true,
            series: vec![
                Series { label: "covered entries (relative)".into(), x: x.clone(), y: cov, band: None },
                Series {
                    label: format!("uncovered entry ({}, {})", c.last, c.missing),
                    x: x.clone(),
                    y: unc,
                    band: None,
                },
                Series { label: "same entry, full coverage".into(), x, y: full_entry, band: None },
            ],
            ..Default::default()
        },
        &run.plot("coverage.png"),
    )
}

fn generation(run: &mut Run, exp: &CcmcExperiment, g: &GenerationConfig) -> Result<()> {
    if g.k < 2 || g.t < 1 || g.steps == 0 || g.trajectories == 0 || g.scales.is_empty() || g.log_every == 0 {
        bail!("generation: need K ≥ 2, T ≥ 1, steps, trajectories, log_every ≥ 1 and some scales");
    }
    let mut rng = rng_for(exp.seed, 3);
    let base = teacher(g.k, 1.0, &mut rng);
    let prompts: Vec<Vec<usize>> =
        (0..g.trajectories).map(|_| (0..g.t).map(|_| rng.gen_range(0..g.k)).collect()).collect();
    let (mut distinct_series, mut entropy_series) = (Vec::new(), Vec::new());
    for (si, &s) in g.scales.iter().enumerate() {
        let a: Vec<f64> = base.iter().map(|v| v * s).collect();
        let tag = scale_tag(s);
        let mut grng = rng_for(exp.seed, 100 + si as u64);
        let traj: Vec<Vec<(f64, f64)>> =
            prompts.iter().map(|p| generate(&a, g.k, p, g.steps, false, &mut grng)).collect();
        let ctrl: Vec<Vec<(f64, f64)>> =
            prompts.iter().map(|p| generate(&a, g.k, p, g.steps, true, &mut grng)).collect();
        let avg = |tr: &[Vec<(f64, f64)>], step: usize, f: fn(&(f64, f64)) -> f64| {
            tr.iter().map(|t| f(&t[step])).sum::<f64>() / tr.len() as f64
        };
        let mut rows = Vec::new();
        for step in (0..=g.steps).filter(|st| st % g.log_every == 0 || *st == g.steps) {
            let split = format!("generation.{tag}");
            rows.push(row(step, &split, "distinct", avg(&traj, step, |x| x.0)));
            rows.push(row(step, &split, "entropy", avg(&traj, step, |x| x.1)));
            rows.push(row(step, &split, "control_distinct", avg(&ctrl, step, |x| x.0)));
            rows.push(row(step, &split, "control_entropy", avg(&ctrl, step, |x| x.1)));
        }
        let (d0, d1) = (avg(&traj, 0, |x| x.0), avg(&traj, g.steps, |x| x.0));
        let (h0, h1) = (avg(&traj, 0, |x| x.1), avg(&traj, g.steps, |x| x.1));
        for (m, v) in [
            ("distinct_initial", d0),
            ("distinct_final", d1),
            ("entropy_initial", h0),
            ("entropy_final", h1),
            ("entropy_ratio", h1 / h0),
            ("control_distinct_final", avg(&ctrl, g.steps, |x| x.0)),
            ("control_entropy_final", avg(&ctrl, g.steps, |x| x.1)),
        ] {
            rows.push(row(g.steps, "probe.generation", &format!("{m}_{tag}"), v));
        }
        run.write(&rows)?;
        let band = |tr: &[Vec<(f64, f64)>], f: fn(&(f64, f64)) -> f64, label: String| {
            let runs: Vec<Vec<(f64, f64)>> = tr
                .iter()
                .map(|t| {
                    t.iter().enumerate().step_by(g.log_every.max(1)).map(|(i, x)| (i as f64, f(x))).collect()
                })
                .collect();
            let (x, m, lo, hi) = mean_band(&runs);
            Series { label, x, y: m, band: Some((lo, hi)) }
        };
        distinct_series.push(band(&traj, |x| x.0, format!("CCMC ‖W*‖ scale σ={s}")));
        entropy_series.push(band(&traj, |x| x.1, format!("CCMC σ={s}")));
        if si + 1 == g.scales.len() {
            distinct_series.push(band(&ctrl, |x| x.0, format!("control: base chain σ={s}")));
            entropy_series.push(band(&ctrl, |x| x.1, format!("control: base chain σ={s}")));
        }
    }
    let title = |what: &str| {
        format!("{} (seed {}): {what}, K={}, T={}, {} prompts", exp.name, exp.seed, g.k, g.t, g.trajectories)
    };
    line_plot(
        &LinePlot {
            title: title("distinct tokens in the window"),
            x_label: "generation step".into(),
            y_label: "distinct tokens in the window".into(),
            series: distinct_series,
            ..Default::default()
        },
        &run.plot("generation_distinct.png"),
    )?;
    line_plot(
        &LinePlot {
            title: title("window entropy"),
            x_label: "generation step".into(),
            y_label: "entropy of the window histogram (nats)".into(),
            series: entropy_series,
            ..Default::default()
        },
        &run.plot("generation_entropy.png"),
    )
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
