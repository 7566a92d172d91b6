//! `[single]`: learning the CCMC from ONE trajectory (papers.md §4, "learning from a single
//! trajectory").
//!
//! From one random prompt of T tokens the teacher generates L tokens with a sliding window;
//! every step gives one (window → next token) example. The student is the cross-entropy fit
//! ([`fit`]) on the first L examples, for several L. Because generation collapses onto a few
//! winner tokens (winner-takes-all), the trajectory stops carrying information:
//! * a token absent from the window can never come back, so no entry (i, j) with i or j
//!   outside the initial prompt is ever seen: coverage ≤ (distinct prompt tokens / K)²;
//! * once the window holds a single token, each further example has probability 1 under
//!   every A and adds nothing to the likelihood.
//!
//! Entry (i, j) is *covered* when j appears in a window that ends in i and holds ≥ 2 distinct
//! tokens (only such windows depend on A). Within row i the covered tokens split into
//! connected components (tokens linked by sharing a window); only differences inside a
//! component are identifiable, so [`covered_error`] centres each component separately. The
//! control is the same fit on n = L IID-prompt examples ([`draw_examples`]).

use anyhow::{bail, Result};
use rand::Rng;
use tinylab_plot::{line_plot, mean_band, LinePlot, Series};

use super::*;
use crate::rundir::{row, Run};

/// Generates `steps` tokens from `prompt` with a sliding window and returns the examples
/// (window counts, last token → next token) and the number of distinct tokens in the window
/// before each step and after the last one (`steps + 1` values).
pub fn trajectory<R: Rng>(
    a: &[f64],
    k: usize,
    prompt: &[usize],
    steps: usize,
    rng: &mut R,
) -> (Vec<Example>, Vec<usize>) {
    let mut w: std::collections::VecDeque<usize> = prompt.iter().copied().collect();
    let mut ex = Vec::with_capacity(steps);
    let mut distinct = Vec::with_capacity(steps + 1);
    for _ in 0..steps {
        let buf: Vec<usize> = w.iter().copied().collect();
        let counts = counts_of(&buf, k);
        distinct.push(counts.len());
        let last = *w.back().expect("window");
        let p = ccmc_probs(a, k, last, &counts);
        let label = counts[sample_index(&p, rng)].0;
        ex.push(Example { last, counts, label });
        w.pop_front();
        w.push_back(label);
    }
    let buf: Vec<usize> = w.iter().copied().collect();
    distinct.push(counts_of(&buf, k).len());
    (ex, distinct)
}

/// Whether an example depends on A at all (its window holds ≥ 2 distinct tokens).
pub fn informative(e: &Example) -> bool {
    e.counts.len() >= 2
}

/// Per row i, the connected components (each sorted, size ≥ 2) of the tokens that share an
/// informative window ending in i.
pub fn covered_components(examples: &[Example], k: usize) -> Vec<Vec<Vec<usize>>> {
    let mut parent: Vec<Vec<usize>> = (0..k).map(|_| (0..k).collect()).collect();
    let mut seen = vec![vec![false; k]; k];
    fn find(p: &mut [usize], x: usize) -> usize {
        let mut r = x;
        while p[r] != r {
            r = p[r];
        }
        let mut y = x;
        while p[y] != r {
            let next = p[y];
            p[y] = r;
            y = next;
        }
        r
    }
    for e in examples.iter().filter(|e| informative(e)) {
        let (i, first) = (e.last, e.counts[0].0);
        for &(j, _) in &e.counts {
            seen[i][j] = true;
            let (ra, rb) = (find(&mut parent[i], first), find(&mut parent[i], j));
            parent[i][ra] = rb;
        }
    }
    (0..k)
        .map(|i| {
            let mut comps: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
            for j in (0..k).filter(|&j| seen[i][j]) {
                let r = find(&mut parent[i], j);
                comps.entry(r).or_default().push(j);
            }
            comps.into_values().filter(|c| c.len() >= 2).collect()
        })
        .collect()
}

/// Fraction of the K² entries that are covered.
pub fn coverage_of(comps: &[Vec<Vec<usize>>], k: usize) -> f64 {
    comps.iter().flatten().map(|c| c.len()).sum::<usize>() as f64 / (k * k) as f64
}

/// Relative error on the covered entries, each component of each row centred on its own mean
/// (the identifiable part): ‖Ã − Ã*‖ / ‖Ã*‖ over those entries (NaN if none is covered).
pub fn covered_error(a: &[f64], a_star: &[f64], k: usize, comps: &[Vec<Vec<usize>>]) -> f64 {
    let (mut num, mut den) = (0.0, 0.0);
    for (i, row_comps) in comps.iter().enumerate() {
        for c in row_comps {
            let mean = |m: &[f64]| c.iter().map(|&j| m[i * k + j]).sum::<f64>() / c.len() as f64;
            let (ma, ms) = (mean(a), mean(a_star));
            for &j in c {
                let (x, y) = (a[i * k + j] - ma, a_star[i * k + j] - ms);
                num += (x - y).powi(2);
                den += y * y;
            }
        }
    }
    if den == 0.0 {
        f64::NAN
    } else {
        (num / den).sqrt()
    }
}

/// Per length: (full row-centred error, covered error, coverage) of the fit on `ex[..L]`.
fn fit_prefixes(ex: &[Example], a_star: &[f64], k: usize, lengths: &[usize]) -> (Vec<[f64; 3]>, usize) {
    let zero = vec![0.0; k * k];
    let mut unconverged = 0;
    let out = lengths
        .iter()
        .map(|&l| {
            // Uninformative examples have zero loss gradient: leaving them out is exact.
            let inf: Vec<Example> = ex[..l].iter().filter(|e| informative(e)).cloned().collect();
            let (a, u) = fit(&inf, k, &zero);
            unconverged += u;
            let comps = covered_components(&inf, k);
            [rel_error(&a, a_star, k, None), covered_error(&a, a_star, k, &comps), coverage_of(&comps, k)]
        })
        .collect();
    (out, unconverged)
}

/// Runs the `[single]` section: metrics `probe.single.*` and three figures.
pub(crate) fn single(run: &mut Run, exp: &CcmcExperiment, c: &SingleConfig) -> Result<()> {
    let mut lengths = c.lengths.clone();
    lengths.sort_unstable();
    lengths.dedup();
    if c.k < 2 || c.t < 1 || c.trajectories == 0 || lengths.len() < 2 || lengths[0] == 0 {
        bail!("single: need K ≥ 2, T ≥ 1, trajectories ≥ 1 and ≥ 2 positive lengths");
    }
    let Some(ref_idx) = lengths.iter().position(|&l| l == c.plateau_from) else {
        bail!("single: plateau_from = {} must be one of the lengths", c.plateau_from);
    };
    let lmax = *lengths.last().expect("lengths");
    let mut rng = rng_for(exp.seed, 4);
    let a_star = teacher(c.k, c.sigma, &mut rng);
    let (mut single_m, mut iid_m) = (Vec::new(), Vec::new());
    let (mut distinct, mut informative_frac, mut bound) = (Vec::new(), 0.0, 0.0);
    let mut unconverged = 0;
    for r in 0..c.trajectories {
        let mut trng = rng_for(exp.seed, 200 + r as u64);
        let prompt: Vec<usize> = (0..c.t).map(|_| trng.gen_range(0..c.k)).collect();
        bound += (counts_of(&prompt, c.k).len() as f64 / c.k as f64).powi(2);
        let (ex, dist) = trajectory(&a_star, c.k, &prompt, lmax, &mut trng);
        informative_frac += ex.iter().filter(|e| informative(e)).count() as f64 / lmax as f64;
        distinct.push(dist);
        let (m, u) = fit_prefixes(&ex, &a_star, c.k, &lengths);
        single_m.push(m);
        unconverged += u;
        // Control: n = L examples from IID uniform prompts (one draw of L_max, prefixes).
        let iid = draw_examples(&a_star, c.k, c.t, lmax, None, &mut trng);
        iid_m.push(fit_prefixes(&iid, &a_star, c.k, &lengths).0);
    }
    let nt = c.trajectories as f64;
    let avg = |m: &[Vec<[f64; 3]>], li: usize, q: usize| m.iter().map(|v| v[li][q]).sum::<f64>() / nt;
    let mut rows = Vec::new();
    for (li, &l) in lengths.iter().enumerate() {
        for (name, v) in [
            ("rel_err", avg(&single_m, li, 0)),
            ("covered_err", avg(&single_m, li, 1)),
            ("coverage", avg(&single_m, li, 2)),
            ("iid_rel_err", avg(&iid_m, li, 0)),
            ("iid_coverage", avg(&iid_m, li, 2)),
        ] {
            rows.push(row(l, "single", name, v));
            rows.push(row(lmax, "probe.single", &format!("{name}_L{l}"), v));
        }
    }
    let last = lengths.len() - 1;
    let d_at = |step: usize| distinct.iter().map(|d| d[step] as f64).sum::<f64>() / nt;
    for (name, v) in [
        ("distinct_initial", d_at(0)),
        ("distinct_final", d_at(lmax)),
        ("informative_frac", informative_frac / nt),
        ("prompt_coverage_bound", bound / nt),
        ("err_ratio", avg(&single_m, last, 0) / avg(&single_m, ref_idx, 0)),
        ("covered_err_ratio", avg(&single_m, last, 1) / avg(&single_m, ref_idx, 1)),
        ("iid_err_ratio", avg(&iid_m, last, 0) / avg(&iid_m, ref_idx, 0)),
        ("coverage_growth", avg(&single_m, last, 2) - avg(&single_m, ref_idx, 2)),
        ("coverage_vs_iid", avg(&single_m, last, 2) / avg(&iid_m, last, 2)),
        ("unconverged_rows", unconverged as f64),
    ] {
        rows.push(row(lmax, "probe.single", name, v));
    }
    run.write(&rows)?;
    single_plots(run, exp, c, &lengths, &single_m, &iid_m, &distinct)
}

fn single_plots(
    run: &Run,
    exp: &CcmcExperiment,
    c: &SingleConfig,
    lengths: &[usize],
    single_m: &[Vec<[f64; 3]>],
    iid_m: &[Vec<[f64; 3]>],
    distinct: &[Vec<usize>],
) -> Result<()> {
    let title = |what: &str| {
        format!(
            "{} (seed {}): {what}, K={}, T={}, σ={}, {} traj.",
            exp.name, exp.seed, c.k, c.t, c.sigma, c.trajectories
        )
    };
    let band = |m: &[Vec<[f64; 3]>], q: usize, label: &str| {
        let runs: Vec<Vec<(f64, f64)>> =
            m.iter().map(|v| lengths.iter().zip(v).map(|(l, x)| (*l as f64, x[q])).collect()).collect();
        let (x, y, lo, hi) = mean_band(&runs);
        Series { label: label.to_string(), x, y, band: Some((lo, hi)) }
    };
    line_plot(
        &LinePlot {
            title: title("error vs length"),
            x_label: "trajectory length L (= examples)".into(),
            y_label: "relative error (row-centred)".into(),
            x_log: true,
            y_log: true,
            series: vec![
                band(single_m, 0, "single trajectory: all entries"),
                band(single_m, 1, "single trajectory: covered entries"),
                band(iid_m, 0, "control: n = L IID prompts"),
            ],
            ..Default::default()
        },
        &run.plot("single_trajectory_error.png"),
    )?;
    line_plot(
        &LinePlot {
            title: title("coverage"),
            x_label: "trajectory length L (= examples)".into(),
            y_label: "fraction of the K² entries covered".into(),
            x_log: true,
            series: vec![
                band(single_m, 2, "single trajectory"),
                band(iid_m, 2, "control: n = L IID prompts"),
            ],
            ..Default::default()
        },
        &run.plot("single_trajectory_coverage.png"),
    )?;
    // Distinct tokens in the window at log-spaced steps.
    let lmax = distinct[0].len() - 1;
    let mut steps: Vec<usize> = vec![0];
    let mut s = 1.0f64;
    while (s as usize) < lmax {
        if *steps.last().expect("steps") != s as usize {
            steps.push(s as usize);
        }
        s *= 1.25;
    }
    steps.push(lmax);
    let runs: Vec<Vec<(f64, f64)>> =
        distinct.iter().map(|d| steps.iter().map(|&t| ((t + 1) as f64, d[t] as f64)).collect()).collect();
    let (x, y, lo, hi) = mean_band(&runs);
    line_plot(
        &LinePlot {
            title: title("collapse"),
            x_label: "generation step + 1".into(),
            y_label: "distinct tokens in the window".into(),
            x_log: true,
            series: vec![Series {
                label: "mean ± std over trajectories".into(), x, y, band: Some((lo, hi))
            }],
            ..Default::default()
        },
        &run.plot("single_trajectory_distinct.png"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(last: usize, toks: &[usize], label: usize) -> Example {
        Example { last, counts: toks.iter().map(|&j| (j, 1.0)).collect(), label }
    }

    #[test]
    fn components_coverage_and_covered_error() {
        // Row 0: windows {0,1} and {2,3} give two components; {4} alone is uninformative.
        let e =
            vec![ex(0, &[0, 1], 1), ex(0, &[2, 3], 2), ex(0, &[4], 4), ex(1, &[1, 2], 2), ex(1, &[2, 3], 3)];
        let c = covered_components(&e, 5);
        assert_eq!(c[0], vec![vec![0, 1], vec![2, 3]]);
        assert_eq!(c[1], vec![vec![1, 2, 3]]);
        assert!(c[2].is_empty());
        assert!((coverage_of(&c, 5) - 7.0 / 25.0).abs() < 1e-15);
        // A per-component shift is invisible; a change inside a component is not.
        let a_star: Vec<f64> = (0..25).map(|i| (i as f64 * 0.37).sin()).collect();
        let mut a = a_star.clone();
        a[2] += 3.0;
        a[3] += 3.0; // row 0, component {2, 3}
        assert!(covered_error(&a, &a_star, 5, &c) < 1e-12);
        a[5 + 1] += 1.0; // row 1, entry 1
        assert!(covered_error(&a, &a_star, 5, &c) > 0.1);
    }

    #[test]
    fn a_trajectory_never_leaves_its_prompt_and_collapses() {
        let mut rng = rng_for(3, 0);
        let (k, t) = (20, 20);
        let a = teacher(k, 1.0, &mut rng);
        let prompt: Vec<usize> = (0..t).map(|_| rng.gen_range(0..k)).collect();
        let (e, d) = trajectory(&a, k, &prompt, 3000, &mut rng);
        assert!(e.iter().all(|x| prompt.contains(&x.label)), "absent tokens have probability 0");
        assert!(d.windows(2).all(|w| w[1] <= w[0]) && d[3000] < d[0], "the window's token set only shrinks");
        let m0 = counts_of(&prompt, k).len() as f64 / k as f64;
        assert!(coverage_of(&covered_components(&e, k), k) <= m0 * m0);
    }
}
