//! The `[generation]` section of a CCMC run: winner-takes-all collapse of autoregressive
//! generation with a sliding window, against the base Markov chain.

use anyhow::{bail, Result};
use rand::Rng;
use tinylab_plot::{line_plot, mean_band, LinePlot, Series};

use super::*;
use crate::rundir::{row, Run};

pub(crate) fn generation(run: &mut Run, exp: &CcmcExperiment, g: &GenerationConfig) -> Result<()> {
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
