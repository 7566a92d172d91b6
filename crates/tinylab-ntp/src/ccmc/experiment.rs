//! CCMC experiment files: the `[estimation]`, `[coverage]` and `[generation]` tables, and the
//! runner that fits students, generates trajectories, writes metrics, plots and the summary.

use std::path::Path;

use anyhow::{bail, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tinylab_plot::{line_plot, mean_band, LinePlot, Series};
use tinylab_train::checks::CheckSpec;
use tinylab_train::Summary;

use super::*;
use crate::linalg::ls_slope;
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
pub(crate) fn rng_for(seed: u64, stream: u64) -> ChaCha8Rng {
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
