//! Probes over a run's saved checkpoints and over token-range blocks of its circuits.

use anyhow::{bail, Context, Result};
use serde_json::json;
use tinylab_plot::{Colormap, Heatmap, LinePlot, Series};
use tinylab_probe::circuits;
use tinylab_train::checkpoint;
use toml::Table;

use crate::probe_stage::{write_json, ProbeContext};

impl ProbeContext {
    /// Nuclear norm and effective rank of every QK and OV circuit at every saved checkpoint
    /// (keep them with `train.checkpoint_every` and a large `train.keep_checkpoints`).
    pub(crate) fn spectrum_history(&self) -> Result<Vec<(String, f64)>> {
        let cks = self.dir.list_checkpoints();
        if cks.len() < 2 {
            bail!("spectrum_history needs ≥ 2 checkpoints; set train.checkpoint_every and train.keep_checkpoints");
        }
        let mut model = self.model.clone_fresh()?;
        let mut series: std::collections::BTreeMap<String, (Vec<f64>, Vec<f64>)> = Default::default();
        let mut rows = Vec::new();
        for (step, path) in &cks {
            let (tensors, _) = checkpoint::load(path)?;
            model.load_weights(&tensors)?;
            for (l, h) in self.heads() {
                for (kind, m) in
                    [("qk", circuits::qk_circuit(&model, l, h)?), ("ov", circuits::ov_circuit(&model, l, h)?)]
                {
                    let nuc = m.nuclear_norm()?;
                    let s = series.entry(format!("L{l}H{h} {}", kind.to_uppercase())).or_default();
                    s.0.push(*step as f64);
                    s.1.push(nuc);
                    rows.push(json!({"step": step, "layer": l, "head": h, "circuit": kind, "nuclear_norm": nuc, "effective_rank": m.effective_rank()?}));
                }
            }
        }
        let plot = LinePlot {
            title: format!("{}: nuclear norm of the circuits during training", self.exp.name),
            x_label: "step".into(),
            y_label: "nuclear norm ‖·‖_*".into(),
            x_log: false,
            y_log: false,
            series: series.into_iter().map(|(label, (x, y))| Series { label, x, y, band: None }).collect(),
            vlines: vec![],
        };
        tinylab_plot::line_plot(&plot, &self.plot_file("nuclear_norm_history.png"))?;
        write_json(&self.probe_file("spectrum_history.json"), &json!({"checkpoints": rows}))?;
        Ok(vec![("checkpoints".into(), cks.len() as f64)])
    }

    /// Heat maps of blocks of the token-basis OV circuit `E · W_OV · W_U` (rows: attended
    /// token, columns: output logit), one per `"rowprefix:colprefix"` entry of `blocks`
    /// (token names starting with each prefix, e.g. `"name:city"`). Reports each block's mean
    /// diagonal minus mean off-diagonal entry (for square blocks).
    ///
    /// With `query = "<token name>"` (linear attention only) each row `x` is first scaled by
    /// the attention score that query token gives key `x`, `s_x = scale · full_QK[q, x]`, so
    /// entry `[x, y]` is what attending to `x` adds to logit `y` at the query: the margin of
    /// that block (metric `…_eff_diag_margin`, plot `ov_blocks_eff.png`) is invariant to the sign symmetry
    /// `(W_Q, W_V) → (−W_Q, −W_V)`, which flips raw OV rows without changing the model.
    pub(crate) fn ov_blocks(&self, opts: &Table) -> Result<Vec<(String, f64)>> {
        let blocks: Vec<String> = opts
            .get("blocks")
            .and_then(|v| v.as_array())
            .context("ov_blocks needs blocks = [\"rowprefix:colprefix\", …]")?
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect();
        let task = self.exp.task.build()?;
        let names: Vec<String> = (0..task.vocab_size() as u32).map(|t| task.token_name(t)).collect();
        let pick = |prefix: &str| -> Vec<usize> {
            (0..names.len()).filter(|&i| names[i].starts_with(prefix)).collect()
        };
        let query = match opts.get("query") {
            None => None,
            Some(v) => {
                let q = v.as_str().context("ov_blocks: query must be a token name, e.g. \"eos\"")?;
                if self.exp.model.attention != tinylab_model::AttentionKind::Linear {
                    bail!("ov_blocks: query = \"{q}\" needs model.attention = \"linear\" (softmax scores are not linear in the key)");
                }
                let id = names.iter().position(|n| n == q).with_context(|| {
                    format!("ov_blocks: query `{q}` is not a token name of task `{}`", task.name())
                })?;
                Some((q.to_string(), id))
            }
        };
        let tag = if query.is_some() { "_eff" } else { "" };
        let mut metrics = Vec::new();
        let mut panels = Vec::new();
        for (l, h) in self.heads() {
            let mut ov = circuits::full_ov_circuit(&self.model, l, h)?.dense();
            if let Some((_, q)) = &query {
                let qk = circuits::full_qk_circuit(&self.model, l, h)?.dense();
                let scale = self.exp.model.score_scale();
                for x in 0..ov.nrows() {
                    let s = scale * qk[[*q, x]];
                    ov.row_mut(x).mapv_inplace(|v| v * s);
                }
            }
            for b in &blocks {
                let (rp, cp) =
                    b.split_once(':').with_context(|| format!("block `{b}` must be rowprefix:colprefix"))?;
                let (rows, cols) = (pick(rp), pick(cp));
                if rows.is_empty() || cols.is_empty() {
                    bail!("block `{b}`: no token name starts with `{rp}` or `{cp}`");
                }
                let values: Vec<Vec<f64>> =
                    rows.iter().map(|&r| cols.iter().map(|&c| ov[[r, c]]).collect()).collect();
                if rows.len() == cols.len() {
                    let n = rows.len() as f64;
                    let diag: f64 = (0..rows.len()).map(|i| values[i][i]).sum::<f64>() / n;
                    let all: f64 = values.iter().flatten().sum::<f64>();
                    let off = if n > 1.0 { (all - diag * n) / (n * n - n) } else { 0.0 };
                    metrics.push((format!("l{l}h{h}_{rp}_{cp}{tag}_diag_margin"), diag - off));
                }
                panels.push(Heatmap {
                    title: match &query {
                        Some((q, _)) => format!("L{l}H{h} {rp} → {cp} at query {q}"),
                        None => format!("L{l}H{h} {rp} → {cp}"),
                    },
                    values,
                    row_labels: rows.iter().map(|&i| names[i].clone()).collect(),
                    col_labels: cols.iter().map(|&i| names[i].clone()).collect(),
                    x_label: format!("output logit ({cp})"),
                    y_label: format!("attended token ({rp})"),
                    colormap: Colormap::Diverging,
                });
            }
        }
        let title = format!("{}: OV circuit blocks (step {})", self.exp.name, self.step);
        tinylab_plot::small_multiples(
            &title,
            &panels,
            blocks.len(),
            &self.plot_file(&format!("ov_blocks{tag}.png")),
        )?;
        Ok(metrics)
    }
}
