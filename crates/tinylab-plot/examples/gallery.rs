//! Renders one of every plot kind (PNG and SVG) into a directory, for eyeballing the look:
//! `cargo run --release -p tinylab-plot --example gallery -- /tmp/plotcheck`.

use std::path::PathBuf;

use tinylab_plot::{
    bar_plot, heatmap, line_plot, mean_band, small_multiples, spectrum_plot, BarPlot, Colormap, Heatmap,
    LinePlot, Series,
};

fn main() -> anyhow::Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "plotcheck".into()));
    std::fs::create_dir_all(&dir)?;
    let both = |name: &str, f: &dyn Fn(&std::path::Path) -> anyhow::Result<()>| -> anyhow::Result<()> {
        for ext in ["png", "svg"] {
            f(&dir.join(format!("{name}.{ext}")))?;
        }
        Ok(())
    };

    // Learning curves: three seeds per model, mean ± std bands, curriculum stages.
    let mut series = Vec::new();
    for (m, (name, rate)) in [("attention", 1500.0), ("hyena", 3500.0), ("based", 2500.0)].iter().enumerate()
    {
        let runs: Vec<Vec<(f64, f64)>> = (0..3)
            .map(|seed| {
                (0..=200)
                    .map(|i| {
                        let s = i as f64 * 50.0;
                        let noise = 0.08 * ((s * 0.013 + seed as f64 * 1.7 + m as f64).sin());
                        (s, 3.2 * (-s / rate).exp() * (1.0 + noise) + 0.02 + 0.01 * seed as f64)
                    })
                    .collect()
            })
            .collect();
        let (x, mean, lo, hi) = mean_band(&runs);
        series.push(Series { label: name.to_string(), x, y: mean, band: Some((lo, hi)) });
    }
    let curves = LinePlot {
        title: "MQAR: training loss (mean ± std over 3 seeds)".into(),
        x_label: "training step".into(),
        y_label: "cross-entropy loss".into(),
        x_log: false,
        y_log: true,
        series,
        vlines: vec![(2500.0, "stage 2: 128 tokens".into()), (5000.0, "stage 3: 256 tokens".into())],
    };
    both("loss_log", &|p| line_plot(&curves, p))?;
    both("loss_linear", &|p| line_plot(&LinePlot { y_log: false, ..curves.clone() }, p))?;

    // Accuracy rising to 1 (upper right busy), with crowded stage markers.
    let steps: Vec<f64> = (0..=100).map(|i| i as f64 * 100.0).collect();
    let sig = |c: f64| steps.iter().map(|s| 1.0 / (1.0 + (-(s - c) / 600.0).exp())).collect::<Vec<_>>();
    let acc_curves = LinePlot {
        title: "Validation accuracy".into(),
        x_label: "training step".into(),
        y_label: "accuracy".into(),
        series: (0..4)
            .map(|k| Series {
                label: format!("d_model = {}", 32 << k),
                x: steps.clone(),
                y: sig(6000.0 - 1200.0 * k as f64),
                band: None,
            })
            .collect(),
        vlines: (1..6).map(|k| (k as f64 * 1000.0, format!("stage {}", k + 1))).collect(),
        ..Default::default()
    };
    both("accuracy", &|p| line_plot(&acc_curves, p))?;

    // Accuracy against sequence length: few points, so markers.
    let lens = [64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0];
    let acc = |d: f64| lens.iter().map(|l: &f64| 1.0 / (1.0 + (l / d).powi(2))).collect::<Vec<_>>();
    let lengths = LinePlot {
        title: "Accuracy vs. sequence length".into(),
        x_label: "sequence length".into(),
        y_label: "accuracy".into(),
        x_log: true,
        y_log: false,
        series: vec![
            Series { label: "attention".into(), x: lens.to_vec(), y: acc(4000.0), band: None },
            Series { label: "hyena".into(), x: lens.to_vec(), y: acc(500.0), band: None },
        ],
        vlines: vec![(256.0, "train length".into())],
    };
    both("acc_vs_len", &|p| line_plot(&lengths, p))?;

    let spectra: Vec<(String, Vec<f64>)> = ["W_q", "W_k", "W_v", "W_o"]
        .iter()
        .enumerate()
        .map(|(j, n)| {
            (n.to_string(), (0..64).map(|i| 8.0 * (-(i as f64) / (3.0 + 3.0 * j as f64)).exp()).collect())
        })
        .collect();
    both("spectrum", &|p| spectrum_plot("Layer 0 singular values", &spectra, true, p))?;
    // Heatmaps: a causal attention pattern with token labels, a signed weight matrix, a big one.
    let attn = |n: usize, sharp: f64, shift: usize| -> Vec<Vec<f64>> {
        (0..n)
            .map(|i| {
                let row: Vec<f64> = (0..n)
                    .map(|j| if j <= i { (-sharp * (i - j).abs_diff(shift) as f64).exp() } else { 0.0 })
                    .collect();
                let s: f64 = row.iter().sum();
                row.into_iter().map(|v| v / s).collect()
            })
            .collect()
    };
    let tokens: Vec<String> = "the cat sat on a mat and the cat ate"
        .split(' ')
        .map(String::from)
        .chain((0..6).map(|i| format!("k{i}")))
        .collect();
    let att = Heatmap {
        title: "Layer 1, head 3: induction pattern".into(),
        values: attn(16, 1.5, 1),
        row_labels: tokens.clone(),
        col_labels: tokens,
        x_label: "key".into(),
        y_label: "query".into(),
        colormap: Colormap::Sequential,
    };
    both("attention", &|p| heatmap(&att, p))?;
    let words: Vec<String> = (0..48)
        .map(|i| ["alpha", "beta", "gamma", "delta", "eps"][i % 5].to_string() + &i.to_string())
        .collect();
    let att48 = Heatmap {
        title: "48 named tokens".into(),
        values: attn(48, 0.8, 2),
        row_labels: words.clone(),
        col_labels: words,
        ..att.clone()
    };
    both("attention_tokens", &|p| heatmap(&att48, p))?;
    let w = Heatmap {
        title: "W_q (layer 0)".into(),
        values: (0..32)
            .map(|i| {
                (0..64)
                    .map(|j| ((i * 7 + j * 3) as f64 * 0.37).sin() * 0.2 * (1.0 + (i as f64 / 10.0)))
                    .collect()
            })
            .collect(),
        x_label: "d_model".into(),
        y_label: "d_head".into(),
        ..Default::default()
    };
    both("weights", &|p| heatmap(&w, p))?;
    let big = Heatmap {
        title: "Attention, 512 tokens".into(),
        values: attn(512, 0.02, 0)
            .iter()
            .enumerate()
            .map(|(i, r)| r.iter().map(|v| v * (i + 1) as f64 / 8.0).collect())
            .collect(),
        x_label: "key position".into(),
        y_label: "query position".into(),
        colormap: Colormap::Sequential,
        ..Default::default()
    };
    both("attention_512", &|p| heatmap(&big, p))?;
    let panels: Vec<Heatmap> = (0..8)
        .map(|k| Heatmap {
            title: format!("layer {} head {}", k / 4, k % 4),
            values: attn(24, 0.3 + 0.4 * k as f64, k % 3),
            x_label: "key".into(),
            y_label: "query".into(),
            colormap: Colormap::Sequential,
            ..Default::default()
        })
        .collect();
    both("heads", &|p| small_multiples("Attention patterns (layers × heads)", &panels, 4, p))?;
    let taps = BarPlot {
        title: "Short-conv filter taps, layer 0".into(),
        x_label: "lag".into(),
        y_label: "tap weight".into(),
        groups: (0..4).map(|i| format!("lag {i}")).collect(),
        series: vec![
            ("q".into(), vec![0.92, -0.31, 0.12, 0.02]),
            ("k".into(), vec![0.08, 0.85, -0.42, 0.05]),
            ("v".into(), vec![-0.55, 0.21, 0.33, -0.1]),
        ],
    };
    both("taps", &|p| bar_plot(&taps, p))?;
    println!("wrote plots to {}", dir.display());
    Ok(())
}
