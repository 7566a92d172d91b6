//! The IID-prompt sections of a CCMC run: `[estimation]` (consistency of the cross-entropy
//! fit, error against n) and `[coverage]` (an uncovered entry stays unidentified).

use anyhow::{bail, Result};
use tinylab_plot::{line_plot, LinePlot, Series};

use super::*;
use crate::linalg::ls_slope;
use crate::rundir::{row, Run};

pub(crate) fn estimation(run: &mut Run, exp: &CcmcExperiment, e: &EstimationConfig) -> Result<()> {
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

pub(crate) fn coverage(run: &mut Run, exp: &CcmcExperiment, c: &CoverageConfig) -> Result<()> {
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

/// Rejects fewer than two sizes, a zero size, zero repetitions, K < 2 or T < 1.
fn check_sizes(sizes: &[usize], reps: usize, k: usize, t: usize) -> Result<()> {
    if sizes.len() < 2 || sizes.contains(&0) || reps == 0 || k < 2 || t < 1 {
        bail!("need ≥ 2 positive sizes, reps ≥ 1, K ≥ 2, T ≥ 1");
    }
    Ok(())
}
