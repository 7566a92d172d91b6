//! The figures of an NTP run (`plots/`): correlation with the theory, the finite component,
//! hard retrieval, loss, attention by SCC rank and the token-basis heat maps.

use anyhow::Result;
use tinylab_plot::{bar_plot, heatmap, line_plot, mean_band, BarPlot, Colormap, Heatmap, LinePlot, Series};

use super::{Curves, NtpExperiment, Trial};
use crate::linalg::bilinear;
use crate::rundir::Run;
use crate::selector::{attention, samples};

/// Mean ± std band over trials of one curve.
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

/// Writes every figure of an NTP run under `plots/`.
pub fn plots(run: &Run, exp: &NtpExperiment, trials: &[Trial]) -> Result<()> {
    let title = |what: &str| {
        format!("{} (seed {}): {what}, mean ± std over {} trials", exp.name, exp.seed, trials.len())
    };
    line_plot(
        &LinePlot {
            title: title("correlation with the theory"),
            x_label: "iteration".into(),
            y_label: "correlation coefficient".into(),
            series: vec![
                band_series("cos(W(t), W_svm) (Frobenius SVM)", trials, |c| &c.cos_svm),
                band_series("cos(W(t), W_svm,*) (nuclear-norm SVM)", trials, |c| &c.cos_svm_nuc),
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
        ("W_svm_nuc.png", "W_svm,* (nuclear-norm SVM)", &t0.svm_nuc.w),
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
