//! The NTP-mechanics experiment (`kind = "ntp"`): per trial, a fresh token-priority data set,
//! W_svm and W_fin, and the selector trained by normalised GD from PyTorch's default init,
//! tracking cos(W(t), W_svm), ‖Π_fin W(t) − W_fin‖ and the attention on lower SCCs — the
//! quantities plotted by `mc_next_single_layer_global_converge.ipynb`.

use std::path::Path;

use anyhow::{bail, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tinylab_plot::{bar_plot, heatmap, line_plot, mean_band, BarPlot, Colormap, Heatmap, LinePlot, Series};
use tinylab_train::checks::CheckSpec;
use tinylab_train::Summary;

use crate::linalg::{bilinear, cosine, dot, norm, project, softmax, sub};
use crate::rundir::{resolved, row, validate_checks, Run};
use crate::selector::{attention, samples, Params, Sample, Weights};
use crate::theory::{min_norm, reduced, s_fin_basis, svm_constraints, w_fin, w_svm, SvmMode};
use crate::tpg::{generate, DataConfig, Dataset, PriorityGraphs};

/// `[model]` of an NTP experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// `combined` (W, the notebooks) or `factorized` (W = W_Kᵀ W_Q).
    #[serde(default)]
    pub weights: Weights,
    /// Start from zero instead of PyTorch's default U(−1/√d, 1/√d).
    #[serde(default)]
    pub zero_init: bool,
}

/// `[train]` of an NTP experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Gradient steps (`ITN`).
    pub iterations: usize,
    /// Step size (`lr`).
    pub lr: f64,
    /// Normalised gradient g/‖g‖ (`norm_grad`).
    #[serde(default = "yes")]
    pub normalized: bool,
    /// Independent trials, each with its own data set and init (`epochs` in the notebooks).
    pub trials: usize,
    /// Metric rows every this many steps.
    #[serde(default = "twenty")]
    pub log_every: usize,
}

fn yes() -> bool {
    true
}
fn twenty() -> usize {
    20
}

/// An NTP experiment file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NtpExperiment {
    /// Always `"ntp"`.
    pub kind: String,
    /// Run name (default: the file stem).
    #[serde(default)]
    pub name: String,
    /// What the experiment shows.
    #[serde(default)]
    pub description: String,
    /// Seed of every random draw.
    pub seed: u64,
    /// The data generator.
    pub data: DataConfig,
    /// The model.
    #[serde(default)]
    pub model: ModelConfig,
    /// Training.
    pub train: TrainConfig,
    /// Claim checks.
    #[serde(default)]
    pub check: Vec<CheckSpec>,
}

/// Final metrics this experiment records (`probe.ntp.<name>`).
pub const FINAL_METRICS: &[&str] = &[
    "cos_svm_mean",
    "cos_svm_min",
    "cos_svm_fin_mean",
    "cos_svm_init_mean",
    "cos_svm_noeq_mean",
    "allstrict_infeasible_frac",
    "fin_dist_mean",
    "fin_dist_rel_mean",
    "fin_dist_ratio_mean",
    "lower_scc_attn_mean",
    "lower_scc_attn_max",
    "top_scc_min_share",
    "top_scc_tv_wfin_max",
    "w_norm_mean",
    "w_fin_norm_mean",
    "w_svm_norm_mean",
    "cyclic_trials",
];

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
    /// cos(W(T), W_svm without the equalities).
    pub cos_noeq: f64,
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
    let noeq = min_norm(&svm_constraints(&ds, &g, SvmMode::NoEquality), d * d)?.unwrap_or_default();
    let allstrict_infeasible = min_norm(&svm_constraints(&ds, &g, SvmMode::AllStrict), d * d)?.is_none();
    let (ridx, rdata) = reduced(&ds, &g);
    let basis = s_fin_basis(&ds, &g, &ridx);
    let n = ds.seqs.len();
    let wfin = w_fin(&ds.vocab, &basis, &rdata, n);
    let data = samples(&ds);
    let mut p = Params::init(exp.model.weights, d, exp.model.zero_init, rng);
    let cos_init = cosine(&p.w(d), &wsvm);
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
        ds,
        graphs: g,
        w_svm: wsvm,
        w_fin: wfin,
        s_fin_dim: basis.len(),
        w_final,
        curves: c,
        cos_init,
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

/// Aggregates of the trials (the `probe.ntp.*` metrics).
pub fn final_metrics(trials: &[Trial]) -> Vec<(&'static str, f64)> {
    let mean = |v: Vec<f64>| if v.is_empty() { f64::NAN } else { v.iter().sum::<f64>() / v.len() as f64 };
    let last = |f: fn(&Curves) -> &Vec<f64>| {
        trials.iter().map(|t| *f(&t.curves).last().expect("curve")).collect::<Vec<_>>()
    };
    let cyc: Vec<&Trial> = trials.iter().filter(|t| t.s_fin_dim > 0).collect();
    // Normalised GD with a fixed step oscillates around its limit at amplitude ~lr/2, so
    // "decreasing" compares quarter means (last quarter of the run / first quarter), not
    // two single points.
    let quarters = |t: &Trial| {
        let v = &t.curves.fin_dist;
        let q = (v.len() / 4).max(1);
        let first = v[..q].iter().sum::<f64>() / q as f64;
        let lastq = v[v.len() - q..].iter().sum::<f64>() / q as f64;
        lastq / first
    };
    let cos = last(|c| &c.cos_svm);
    let tops: Vec<(f64, f64)> = trials.iter().filter_map(|t| t.top_share_tv).collect();
    vec![
        ("cos_svm_mean", mean(cos.clone())),
        ("cos_svm_min", cos.iter().cloned().fold(f64::INFINITY, f64::min)),
        ("cos_svm_fin_mean", mean(last(|c| &c.cos_svm_fin))),
        ("cos_svm_init_mean", mean(trials.iter().map(|t| t.cos_init).collect())),
        ("cos_svm_noeq_mean", mean(trials.iter().map(|t| t.cos_noeq).collect())),
        (
            "allstrict_infeasible_frac",
            mean(trials.iter().map(|t| if t.allstrict_infeasible { 1.0 } else { 0.0 }).collect()),
        ),
        ("fin_dist_mean", mean(cyc.iter().map(|t| *t.curves.fin_dist.last().expect("curve")).collect())),
        (
            "fin_dist_rel_mean",
            mean(
                cyc.iter()
                    .filter(|t| norm(&t.w_fin) > 1e-9)
                    .map(|t| t.curves.fin_dist.last().expect("curve") / norm(&t.w_fin))
                    .collect(),
            ),
        ),
        ("fin_dist_ratio_mean", mean(cyc.iter().map(|t| quarters(t)).collect())),
        ("w_fin_norm_mean", mean(cyc.iter().map(|t| norm(&t.w_fin)).collect())),
        ("w_svm_norm_mean", mean(trials.iter().map(|t| norm(&t.w_svm)).collect())),
        ("lower_scc_attn_mean", mean(trials.iter().flat_map(|t| t.lower_final.clone()).collect())),
        ("lower_scc_attn_max", trials.iter().flat_map(|t| t.lower_final.clone()).fold(0.0, f64::max)),
        ("top_scc_min_share", tops.iter().map(|x| x.0).fold(f64::NAN, f64::min)),
        ("top_scc_tv_wfin_max", tops.iter().map(|x| x.1).fold(f64::NAN, f64::max)),
        ("w_norm_mean", mean(last(|c| &c.w_norm))),
        ("cyclic_trials", cyc.len() as f64),
    ]
}

/// Runs an NTP experiment into a run directory.
pub fn run(mut exp: NtpExperiment, default_name: &str, out: Option<&Path>) -> Result<Summary> {
    if exp.name.is_empty() {
        exp.name = default_name.to_string();
    }
    let t = &exp.train;
    if t.iterations == 0 || t.trials == 0 || t.log_every == 0 || t.lr.is_nan() || t.lr <= 0.0 {
        bail!("train: iterations, trials, log_every and lr must be positive");
    }
    let known: Vec<String> = FINAL_METRICS
        .iter()
        .map(|m| format!("probe.ntp.{m}"))
        .chain(
            ["loss", "grad_norm", "w_norm", "cos_svm", "cos_svm_fin", "fin_dist", "lower_scc_attn"]
                .map(|m| format!("train.{m}")),
        )
        .collect();
    validate_checks(&exp.check, &known)?;
    let (full, id) = resolved(&exp)?;
    let mut run = Run::create(out, &exp.name, exp.seed, &full, &id)?;
    eprintln!("run {} (seed {}) → {}", exp.name, exp.seed, run.dir.display());
    let trials: Vec<Trial> =
        (0..exp.train.trials).map(|j| run_trial(&exp, &mut trial_rng(exp.seed, j))).collect::<Result<_>>()?;
    // Metric rows: per trial (split `trial<j>`) and the mean over trials (split `train`).
    let steps = trials[0].curves.steps.clone();
    type Get = fn(&Curves) -> &Vec<f64>;
    let curves: [(&str, Get); 7] = [
        ("loss", |c| &c.loss),
        ("grad_norm", |c| &c.grad_norm),
        ("w_norm", |c| &c.w_norm),
        ("cos_svm", |c| &c.cos_svm),
        ("cos_svm_fin", |c| &c.cos_svm_fin),
        ("fin_dist", |c| &c.fin_dist),
        ("lower_scc_attn", |c| &c.lower_attn),
    ];
    for (si, &step) in steps.iter().enumerate() {
        let mut rows = Vec::new();
        for (name, get) in &curves {
            let vals: Vec<f64> = trials.iter().map(|t| get(&t.curves)[si]).collect();
            for (j, v) in vals.iter().enumerate() {
                rows.push(row(step, &format!("trial{j}"), name, *v));
            }
            rows.push(row(step, "train", name, vals.iter().sum::<f64>() / vals.len() as f64));
        }
        run.write(&rows)?;
    }
    let last = *steps.last().expect("steps");
    let fm = final_metrics(&trials);
    // Metrics that do not apply (e.g. W_fin distances with no cyclic trial) are NaN: no row.
    run.write(
        &fm.iter()
            .filter(|(_, v)| !v.is_nan())
            .map(|(k, v)| row(last, "probe.ntp", k, *v))
            .collect::<Vec<_>>(),
    )?;
    plots(&run, &exp, &trials)?;
    run.finish(&exp.check, exp.train.iterations)
}

fn band_series(label: &str, trials: &[Trial], get: fn(&Curves) -> &Vec<f64>) -> Series {
    let runs: Vec<Vec<(f64, f64)>> = trials
        .iter()
        .map(|t| t.curves.steps.iter().zip(get(&t.curves)).map(|(s, v)| (*s as f64, *v)).collect())
        .collect();
    let (x, m, lo, hi) = mean_band(&runs);
    Series { label: label.to_string(), x, y: m, band: Some((lo, hi)) }
}

/// The token-basis matrix Eᵀ W E: entry (a, k) = e_aᵀ W e_k (context token a, last token k).
pub fn token_basis(vocab: &[Vec<f64>], w: &[f64]) -> Vec<Vec<f64>> {
    vocab.iter().map(|a| vocab.iter().map(|k| bilinear(a, w, k)).collect()).collect()
}

fn plots(run: &Run, exp: &NtpExperiment, trials: &[Trial]) -> Result<()> {
    let title = |what: &str| {
        format!("{} (seed {}): {what}, mean ± std over {} trials", exp.name, exp.seed, trials.len())
    };
    line_plot(
        &LinePlot {
            title: title("correlation with the theory"),
            x_label: "iteration".into(),
            y_label: "correlation coefficient".into(),
            series: vec![
                band_series("cos(W(t), W_svm)", trials, |c| &c.cos_svm),
                band_series("cos(W(t), W_fin + R·W_svm)", trials, |c| &c.cos_svm_fin),
            ],
            ..Default::default()
        },
        &run.plot("correlation.png"),
    )?;
    if trials.iter().any(|t| t.s_fin_dim > 0) {
        line_plot(
            &LinePlot {
                title: title("finite component"),
                x_label: "iteration".into(),
                y_label: "‖Π_fin W(t) − W_fin‖_F".into(),
                y_log: true,
                series: vec![band_series("‖Π_fin W(t) − W_fin‖", trials, |c| &c.fin_dist)],
                ..Default::default()
            },
            &run.plot("fin_dist.png"),
        )?;
    }
    line_plot(
        &LinePlot {
            title: title("hard retrieval"),
            x_label: "iteration".into(),
            y_label: "attention outside the label's SCC".into(),
            y_log: true,
            series: vec![band_series("mean attention on lower SCCs", trials, |c| &c.lower_attn)],
            ..Default::default()
        },
        &run.plot("lower_scc_attention.png"),
    )?;
    line_plot(
        &LinePlot {
            title: title("loss and ‖W(t)‖"),
            x_label: "iteration".into(),
            y_label: "value".into(),
            y_log: true,
            series: vec![
                band_series("loss", trials, |c| &c.loss),
                band_series("‖W(t)‖_F", trials, |c| &c.w_norm),
            ],
            ..Default::default()
        },
        &run.plot("loss.png"),
    )?;
    // Attention per token of trial 0 at the end, grouped by SCC rank.
    let t0 = &trials[0];
    let data = samples(&t0.ds);
    let mut groups = Vec::new();
    let max_rank = (0..data.len()).flat_map(|i| t0.graphs.ranks(&t0.ds, i)).max().unwrap_or(0);
    let mut series: Vec<(String, Vec<f64>)> = (0..=max_rank)
        .map(|r| {
            (if r == 0 { "top SCC (label's)".to_string() } else { format!("SCC rank {r} below") }, Vec::new())
        })
        .collect();
    for (i, s) in data.iter().enumerate() {
        let a = attention(&t0.ds.vocab, &t0.w_final, s);
        let ranks = t0.graphs.ranks(&t0.ds, i);
        for (pos, &x) in s.ctx.iter().enumerate() {
            groups.push(format!("s{i}:{x}{}", if x == s.label { "*" } else { "" }));
            for (r, se) in series.iter_mut().enumerate() {
                se.1.push(if ranks[pos] == r { a[pos] } else { f64::NAN });
            }
        }
    }
    bar_plot(
        &BarPlot {
            title: format!(
                "{} (seed {}), trial 0: final attention per token (s<seq>:<token>, * = label)",
                exp.name, exp.seed
            ),
            x_label: "sequence:token".into(),
            y_label: "attention of the last token".into(),
            groups,
            series,
        },
        &run.plot("attention_by_scc.png"),
    )?;
    let labels: Vec<String> = (0..t0.ds.k()).map(|k| k.to_string()).collect();
    for (file, what, w) in [
        ("W_svm.png", "W_svm", &t0.w_svm),
        ("W_fin.png", "W_fin", &t0.w_fin),
        ("W_final.png", "W(T)", &t0.w_final),
    ] {
        heatmap(
            &Heatmap {
                title: format!("{}, trial 0: {what} in the token basis (e_aᵀ W e_k)", exp.name),
                values: token_basis(&t0.ds.vocab, w),
                row_labels: labels.clone(),
                col_labels: labels.clone(),
                x_label: "last token k".into(),
                y_label: "context token a".into(),
                colormap: Colormap::Diverging,
            },
            &run.plot(file),
        )?;
    }
    Ok(())
}
